package process

import (
	"net/netip"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/policy"
)

func (m *Manager) handleExec(e *procsensor.Exec) {
	pod := m.podOf(e)
	m.hold(pod, e.Key.TGID, e.CgroupID, e.NS.Net)
	m.mu.Lock()
	l := m.cache.exec(e.Key, e.Parent, func(cloned bool) *api.Process { return m.buildExec(e, pod, cloned) })
	m.mu.Unlock()
	m.publish(execEvent(l), l, e.Time)
}

func (m *Manager) handleFork(f *procsensor.Fork) {
	m.mu.Lock()
	miss := m.cache.fork(f, m.unknown)
	m.mu.Unlock()
	if miss {
		m.misses.Inc()
	}
}

func (m *Manager) handleExit(x *procsensor.Exit) {
	m.mu.Lock()
	l, ok := m.cache.exit(x.Key)
	m.mu.Unlock()
	if !ok {
		l.proc = m.unknown(x.Key)
	}
	ev := &api.ProcessEvent{ProcessExit: &api.ProcessExit{
		Process: l.proc, Parent: l.parent, Ancestors: l.ancestors,
		Signal: SignalName(x.Signal), Status: x.Status,
	}}
	m.publish(ev, l, x.Time)
	m.mu.Lock()
	m.cache.release(x.Key)
	m.mu.Unlock()
}

func (m *Manager) handleConnect(c *procsensor.Connect) {
	m.mu.Lock()
	l, ok := m.cache.lookup(c.Key)
	m.mu.Unlock()
	if !ok {
		l.proc = m.unknown(c.Key)
	}
	l.proc = m.enteredPod(l.proc, c.NetNS)
	pc := &api.ProcessConnect{
		Process: l.proc, Parent: l.parent, Ancestors: l.ancestors, Failed: c.Failed,
		Protocol: policy.ProtoName(c.Proto), Source: c.Src.String(), Destination: c.Dst.String(),
	}
	dst := m.connectService(pc, c)
	if m.cfg.PodIPs != nil && dst.IsValid() {
		pc.DestinationPod = m.cfg.PodIPs.PodByIP(dst.Addr())
	}
	if !c.Failed {
		ref := api.ProcessRef{ExecID: l.proc.ExecID, PID: l.proc.PID, Binary: l.proc.Binary}
		m.conns.add(connKey{c.Proto, c.Src, c.Dst}, ref)
		if dst != c.Dst && dst.IsValid() {
			m.conns.add(connKey{c.Proto, c.Src, dst}, ref)
		}
	}
	m.publish(&api.ProcessEvent{ProcessConnect: pc}, l, c.Time)
}

// connectService names the service a connection asked for and returns its
// backend: translated at the socket (OrigDst), or per packet after it (the
// socket saw the frontend; the conntrack entry knows the backend). The
// zero AddrPort when the backend is not known.
func (m *Manager) connectService(pc *api.ProcessConnect, c *procsensor.Connect) netip.AddrPort {
	if c.OrigDst.IsValid() {
		pc.Service = &api.ServiceRef{Address: c.OrigDst.String()}
		if m.cfg.Services != nil {
			pc.Service.Namespace, pc.Service.Name, _ = m.cfg.Services.ServiceByFrontend(c.Proto, c.OrigDst)
		}
		return c.Dst
	}
	if m.cfg.Services == nil {
		return c.Dst
	}
	ns, name, ok := m.cfg.Services.ServiceByFrontend(c.Proto, c.Dst)
	if !ok {
		return c.Dst
	}
	pc.Service = &api.ServiceRef{Namespace: ns, Name: name, Address: c.Dst.String()}
	if m.cfg.Backends == nil {
		return netip.AddrPort{}
	}
	be, ok := m.cfg.Backends.BackendFor(c.Proto, c.Src, c.Dst)
	if !ok {
		return netip.AddrPort{}
	}
	pc.Destination = be.String()
	return be
}

// enteredPod attributes a host process that connects from a pod's network
// namespace (it entered it with setns) to that pod.
func (m *Manager) enteredPod(p *api.Process, netns uint32) *api.Process {
	if p.Pod != nil || m.cfg.Pods == nil || netns == 0 || netns == m.cfg.HostNS.Net {
		return p
	}
	pod := m.cfg.Pods.PodFor(0, 0, netns)
	if pod == nil {
		return p
	}
	cp := *p
	cp.Pod = pod
	return &cp
}

func execEvent(l lineage) *api.ProcessEvent {
	return &api.ProcessEvent{ProcessExec: &api.ProcessExec{Process: l.proc, Parent: l.parent, Ancestors: l.ancestors}}
}

// podOf resolves the pod of an exec (outside the cache lock: it may read
// /proc and stat namespace files).
func (m *Manager) podOf(e *procsensor.Exec) *api.Pod {
	if m.cfg.Pods == nil {
		return nil
	}
	return m.cfg.Pods.PodFor(e.Key.TGID, e.CgroupID, e.NS.Net)
}

// buildExec returns the process an exec (or a /proc entry) describes.
func (m *Manager) buildExec(e *procsensor.Exec, pod *api.Pod, cloned bool) *api.Process {
	p := m.unknown(e.Key)
	p.UID, p.EUID, p.AUID = e.UID, e.EUID, e.AUID
	p.Cwd, p.Binary, p.Flags = e.Cwd, e.Filename, execFlags(e, cloned)
	if len(e.Args) > 1 {
		p.Arguments = strings.Join(e.Args[1:], " ")
	}
	p.Pod, p.CgroupID = pod, e.CgroupID
	p.Cap = &api.Capabilities{Permitted: CapNames(e.CapPermitted), Effective: CapNames(e.CapEffective)}
	host := m.cfg.HostNS
	p.NS = &api.Namespaces{
		PID: api.Namespace{Inum: e.NS.PID, IsHost: e.NS.PID == host.PID},
		Mnt: api.Namespace{Inum: e.NS.Mnt, IsHost: e.NS.Mnt == host.Mnt},
		Net: api.Namespace{Inum: e.NS.Net, IsHost: e.NS.Net == host.Net},
	}
	return p
}

// unknown returns what a key alone says of a process: exec id, pid, start.
func (m *Manager) unknown(k procsensor.Key) *api.Process {
	return &api.Process{ExecID: ExecID(m.cfg.NodeName, k), PID: k.TGID, StartTime: m.boot.Add(time.Duration(k.StartTime))}
}

// bootTime returns the wall time at which CLOCK_MONOTONIC was zero, to
// convert task start times.
func bootTime() time.Time {
	var ts unix.Timespec
	now := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return time.Time{}
	}
	return now.Add(-time.Duration(ts.Nano()))
}
