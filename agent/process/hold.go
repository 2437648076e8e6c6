package process

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicenet/sluice/agent/api"
)

// Holding events of unnamed containers. A container's first processes exec
// before the kubelet has put the container into its Pod's status: the
// cgroup names the pod and the container id, but the container's name and
// image are not known yet. Rather than publish such an exec (and the
// events of the process and its descendants after it) without them, the
// manager holds those events, asks again every holdRetry, and publishes
// them in order, named, as soon as the Pod object lists the container, or
// as they are once Config.HoldUnnamed has passed. Events of other processes
// are not delayed.

// Defaults of holding.
const (
	DefaultHoldUnnamed = 5 * time.Second
	holdRetry          = 200 * time.Millisecond
	// maxHeld bounds the held events: beyond it the oldest pod's events
	// go out unnamed.
	maxHeld = 4096
)

// heldPod is a pod value whose container is not named yet, and how to ask
// for it again.
type heldPod struct {
	pid      uint32
	cgroupID uint64
	netns    uint32
	since    time.Time
}

type heldEvent struct {
	ev *api.ProcessEvent
	l  lineage
}

// unnamed reports whether pod names a container by id only.
func unnamed(pod *api.Pod) bool {
	return pod != nil && pod.Container != nil && pod.Container.ID != "" && pod.Container.Name == ""
}

// hold registers pod (an exec's) as waiting for its container's name.
func (m *Manager) hold(pod *api.Pod, pid uint32, cgroupID uint64, netns uint32) {
	if m.cfg.HoldUnnamed < 0 || !unnamed(pod) {
		return
	}
	m.holdMu.Lock()
	defer m.holdMu.Unlock()
	if m.held == nil {
		m.held = map[*api.Pod]heldPod{}
	}
	m.held[pod] = heldPod{pid: pid, cgroupID: cgroupID, netns: netns, since: time.Now()}
}

// holds reports whether an event of l waits for a held pod: the process's,
// its parent's or an ancestor's. Called with holdMu held.
func (m *Manager) holds(l lineage) bool {
	if len(m.held) == 0 {
		return false
	}
	if p := l.proc; p != nil && p.Pod != nil {
		if _, ok := m.held[p.Pod]; ok {
			return true
		}
	}
	if p := l.parent; p != nil && p.Pod != nil {
		if _, ok := m.held[p.Pod]; ok {
			return true
		}
	}
	for _, p := range l.ancestors {
		if p != nil && p.Pod != nil {
			if _, ok := m.held[p.Pod]; ok {
				return true
			}
		}
	}
	return false
}

// releaseHeld asks again for the container names of the held pods and
// publishes, in order, the held events none of whose pods is still held:
// named when the name came, as they are when they waited HoldUnnamed or
// overflowed (all, with flush).
func (m *Manager) releaseHeld(now time.Time, flush bool) {
	m.holdMu.Lock()
	defer m.holdMu.Unlock()
	if len(m.held) == 0 {
		return
	}
	renamed := map[*api.Pod]*api.Pod{}
	for old, h := range m.held {
		var named *api.Pod
		if m.cfg.Pods != nil {
			if p := m.cfg.Pods.PodFor(h.pid, h.cgroupID, h.netns); p != nil && p.Container != nil &&
				p.Container.ID == old.Container.ID && p.Container.Name != "" {
				named = p
			}
		}
		switch {
		case named != nil:
			renamed[old] = named
			m.heldOut.WithLabelValues("named").Inc()
		case flush || now.Sub(h.since) >= m.cfg.HoldUnnamed:
			m.heldOut.WithLabelValues("timeout").Inc()
		case len(m.queue) > maxHeld:
			m.heldOut.WithLabelValues("overflow").Inc()
		default:
			continue
		}
		delete(m.held, old)
	}
	if len(renamed) > 0 {
		m.mu.Lock()
		m.cache.renamePods(renamed)
		m.mu.Unlock()
	}
	rest := m.queue[:0]
	for _, he := range m.queue {
		he.ev = renameEvent(he.ev, renamed)
		if m.holds(he.l) { // its lineage has the old pod values: those renamed are no longer held
			rest = append(rest, he)
			continue
		}
		m.sink.Publish(he.ev)
	}
	clear(m.queue[len(rest):])
	m.queue = rest
}

// releaseLoop releases held events every holdRetry until ctx ends, then
// publishes what is still held.
func (m *Manager) releaseLoop(ctx context.Context) {
	t := time.NewTicker(holdRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.releaseHeld(time.Now(), true)
			return
		case now := <-t.C:
			m.releaseHeld(now, false)
		}
	}
}

// renamePod returns p with its pod replaced when renamed has it.
func renamePod(p *api.Process, renamed map[*api.Pod]*api.Pod) *api.Process {
	if p == nil || p.Pod == nil {
		return p
	}
	n, ok := renamed[p.Pod]
	if !ok {
		return p
	}
	cp := *p
	cp.Pod = n
	return &cp
}

func renameAll(ps []*api.Process, renamed map[*api.Pod]*api.Pod) []*api.Process {
	for i, p := range ps {
		ps[i] = renamePod(p, renamed)
	}
	return ps
}

// renameEvent rewrites the processes of a held event (not yet published:
// nothing else reads it).
func renameEvent(ev *api.ProcessEvent, renamed map[*api.Pod]*api.Pod) *api.ProcessEvent {
	if len(renamed) == 0 {
		return ev
	}
	switch {
	case ev.ProcessExec != nil:
		e := ev.ProcessExec
		e.Process, e.Parent, e.Ancestors = renamePod(e.Process, renamed), renamePod(e.Parent, renamed), renameAll(e.Ancestors, renamed)
	case ev.ProcessExit != nil:
		e := ev.ProcessExit
		e.Process, e.Parent, e.Ancestors = renamePod(e.Process, renamed), renamePod(e.Parent, renamed), renameAll(e.Ancestors, renamed)
	case ev.ProcessConnect != nil:
		e := ev.ProcessConnect
		e.Process, e.Parent, e.Ancestors = renamePod(e.Process, renamed), renamePod(e.Parent, renamed), renameAll(e.Ancestors, renamed)
	case ev.ProcessTracepoint != nil:
		e := ev.ProcessTracepoint
		e.Process, e.Parent, e.Ancestors = renamePod(e.Process, renamed), renamePod(e.Parent, renamed), renameAll(e.Ancestors, renamed)
	}
	return ev
}

// renamePods replaces the processes whose pod value renamed has (they are
// replaced, never modified, once handed out).
func (c *cache) renamePods(renamed map[*api.Pod]*api.Pod) {
	for _, e := range c.byKey {
		if n := renamePod(e.proc, renamed); n != e.proc {
			e.proc = n
		}
	}
}

func newHeldCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_process_events_held_pods_total",
		Help: "Pods of new containers whose events were held until the Pod's status named the container, by outcome " +
			"(named; timeout: published without the name; overflow: too many held events).",
	}, []string{"outcome"})
}
