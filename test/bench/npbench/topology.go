package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/test/bench/benchrun"
	"github.com/sluicenet/sluice/test/bench/services"
	"github.com/sluicenet/sluice/test/bench/tcpcrr"
	"github.com/sluicenet/sluice/test/harness"
)

// The client's network: a /24 between node 1's ext0 and the client's eth0,
// only inside the namespaces (192.168.250.0/24 is not a route of the host).
const (
	nodeExtIP  = "192.168.250.1"
	clientIP   = "192.168.250.2"
	extDev     = "ext0"
	backendPod = 8080
)

// nodePorts of the two services (each for TCP and UDP).
var nodePorts = map[string]uint16{backendLocal: 30080, backendRemote: 30081}

// Sysctls of the client (many short connections) and the backends.
var (
	clientSysctls = map[string]string{
		"net/ipv4/ip_local_port_range": "1024 65535",
		"net/ipv4/tcp_tw_reuse":        "1",
	}
	serverSysctls = map[string]string{"net/core/somaxconn": "8192"}
	nodeSysctls   = map[string]string{"net/ipv4/ip_forward": "1"}
)

// topology is two simulated nodes joined by an underlay veth, a client
// namespace wired to node 1's ext0, a backend pod on each node (local on
// node 1, remote on node 2) serving TCP_CRR and UDP_RR, and the NodePort
// services programmed the configuration's way.
type topology struct {
	n1, n2  *harness.Node
	ul      *harness.Underlay
	client  *harness.NetNS
	crr     string
	pods    map[string]*harness.Pod // backend placement → pod
	ext0    uint32                  // node 1's ifindex of ext0
	ulIndex uint32                  // node 1's ifindex of the underlay
}

// newTopology builds everything for config; r's cleanups undo it.
func newTopology(ctx context.Context, r *harness.Runner, crr, config string) *topology {
	t := &topology{crr: crr, pods: map[string]*harness.Pod{}}
	t.n1 = harness.NewNode(r, harness.NodeOptions{Index: 1})
	t.n2 = harness.NewNode(r, harness.NodeOptions{Index: 2})
	t.ul = harness.ConnectNodes(r, t.n1, t.n2)
	t.client = harness.NewNetNS(r, "sl-npc-")
	t.n1.NS.Run(r, "ip", "link", "add", extDev, "type", "veth", "peer", "name", "eth0", "netns", t.client.Name)
	t.n1.NS.Run(r, "ip", "addr", "add", nodeExtIP+"/24", "dev", extDev)
	t.n1.NS.Run(r, "ip", "link", "set", extDev, "up")
	t.client.Run(r, "ip", "addr", "add", clientIP+"/24", "dev", "eth0")
	t.client.Run(r, "ip", "link", "set", "eth0", "up")
	t.client.Run(r, "ip", "route", "add", "default", "via", nodeExtIP)
	// The ends XDP may send frames to, in every configuration alike.
	harness.XDPPeer(r, t.client, "eth0")
	harness.XDPPeer(r, t.n2.NS, t.ul.IfName)
	benchrun.Sysctls(r, t.client, clientSysctls)
	for _, n := range []*harness.Node{t.n1, t.n2} {
		benchrun.Sysctls(r, n.NS, nodeSysctls)
	}
	t.ext0, t.ulIndex = ifindex(r, t.n1.NS, extDev), ifindex(r, t.n1.NS, t.ul.IfName)

	nodes := harness.NodeYAML(t.n1, t.ul.AddrA) + harness.NodeYAML(t.n2, t.ul.AddrB)
	for _, n := range []*harness.Node{t.n1, t.n2} {
		writeFile(r, n, "nodes.yaml", nodes)
	}
	// Native routing between the nodes in every configuration; Sluice's
	// NodePort programs on node 1's devices only in the Sluice ones.
	args1 := []string{"--routing", "native", "--node-ip", t.ul.AddrA.String(), "--log-level", "info"}
	switch config {
	case cfgSluiceTC:
		args1 = append(args1, "--devices", t.ul.IfName+","+extDev, "--lb-acceleration", "disabled")
	case cfgSluiceXDP:
		args1 = append(args1, "--devices", t.ul.IfName+","+extDev, "--lb-acceleration", "native")
	}
	t.n1.StartAgentArgs(r, args1...)
	t.n2.StartAgentArgs(r, "--routing", "native", "--node-ip", t.ul.AddrB.String(), "--log-level", "info")

	t.pods[backendLocal] = t.n1.AddPod(r, "local")
	t.pods[backendRemote] = t.n2.AddPod(r, "remote")
	var pods strings.Builder
	for _, b := range allBackends {
		p := t.pods[b]
		benchrun.Sysctls(r, p.NS, serverSysctls)
		benchrun.ServeCRR(r, p.NS, crr, p.Addr(backendPod), p.Name, "--udp")
		pods.WriteString(podYAML(p))
	}
	for _, n := range []*harness.Node{t.n1, t.n2} {
		writeFile(r, n, "pods.yaml", pods.String())
	}
	if err := t.waitRoute(ctx); err != nil {
		r.Fatal(err)
	}

	svcs := t.services()
	switch config {
	case cfgIPTables:
		o := services.IPTablesOptions{ClusterCIDR: netip.MustParsePrefix(harness.PodCIDR)}
		if _, err := benchrun.IPTablesRestore(t.n1.NS, services.IPTablesRestore(svcs, o), false); err != nil {
			r.Fatal(err)
		}
	default:
		var b strings.Builder
		if err := services.WriteManifests(&b, svcs); err != nil {
			r.Fatal(err)
		}
		writeFile(r, t.n1, "services.yaml", b.String())
		if err := t.waitProgrammed(ctx, svcs); err != nil {
			r.Fatal(err)
		}
	}
	if config == cfgSluiceXDP {
		st, err := t.n1.Client().Status(ctx)
		if err != nil {
			r.Fatalf("sluice status: %v", err)
		}
		if got := st.KubeProxy.NodePortXDP[extDev]; got != "xdp native" {
			r.Fatalf("node 1's %s runs %q, want xdp native (status %v)", extDev, got, st.KubeProxy.NodePortXDP)
		}
	}
	return t
}

// services are the NodePort services: per backend placement one for TCP
// and one for UDP on the same node port, each with that backend only.
func (t *topology) services() []services.Service {
	var out []services.Service
	vip := services.FirstVIP
	for _, b := range allBackends {
		for _, p := range allProtos {
			proto := "tcp"
			if p == tcpcrr.UDPRR {
				proto = "udp"
			}
			out = append(out, services.Service{Namespace: "default", Name: fmt.Sprintf("np-%s-%s", b, proto), PortName: proto,
				VIP: vip, Port: services.ServicePort, Protocol: proto, NodePort: nodePorts[b],
				Backends: []netip.AddrPort{netip.AddrPortFrom(t.pods[b].IP, backendPod)}})
			vip = vip.Next()
		}
	}
	return out
}

// target is the NodePort address the client sends to for backend b.
func target(b string) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(nodeExtIP), nodePorts[b])
}

// waitRoute waits for node 1's agent to route node 2's PodCIDR.
func (t *topology) waitRoute(ctx context.Context) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := t.n1.NS.Command("ip", "route", "show", "exact", t.n2.PodCIDR.String()).Output()
		if err == nil && strings.Contains(string(out), "via "+t.ul.AddrB.String()) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("node 1 has no route to %s via %s: %q", t.n2.PodCIDR, t.ul.AddrB, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitProgrammed waits until node 1's LB maps hold every service's node
// port frontend with a backend (`sluice bpf lb list`).
func (t *topology) waitProgrammed(ctx context.Context, svcs []services.Service) error {
	want := map[string]bool{}
	for _, s := range svcs {
		want[fmt.Sprintf("%s/0.0.0.0:%d", strings.ToUpper(s.Proto()), s.NodePort)] = true
	}
	deadline := time.Now().Add(time.Minute)
	for {
		m, err := t.n1.Client().LBMaps(ctx)
		n := 0
		if err == nil {
			for _, s := range m.Services {
				if len(s.BackendIDs) > 0 && want[strings.ToUpper(s.Protocol)+"/"+s.Frontend] {
					n++
				}
			}
			if n == len(want) {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%d of %d node ports in node 1's LB maps (last error: %v)", n, len(want), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ask returns the name of the backend that answered one request to addr
// from the client (`crr ask`, over UDP for UDP_RR).
func (t *topology) ask(ctx context.Context, addr netip.AddrPort, p tcpcrr.Proto) (string, error) {
	args := []string{"ask", "--target", addr.String(), "--timeout", "2s"}
	if p == tcpcrr.UDPRR {
		args = append(args, "--udp")
	}
	out, err := t.crrOutput(ctx, args...)
	if err != nil {
		return "", fmt.Errorf("crr ask %s %s: %w", p, addr, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// crrOutput runs the crr tool with args in the client namespace, killed
// when ctx ends, and returns its standard output; a failure carries its
// standard error.
func (t *topology) crrOutput(ctx context.Context, args ...string) ([]byte, error) {
	cmd := t.client.Command(t.crr, args...)
	stop := context.AfterFunc(ctx, func() {
		if cmd.Process != nil {
			cmd.Process.Kill()
		}
	})
	defer stop()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// counters is node 1's metrics map: packets per device, reason and
// direction.
func (t *topology) counters() (map[metricsmap.Counter]uint64, error) {
	cs, err := metricsmap.PinnedCounters(t.n1.BPFRoot)
	if err != nil {
		return nil, err
	}
	out := map[metricsmap.Counter]uint64{}
	for _, c := range cs {
		n := c.Packets
		c.Packets, c.Bytes = 0, 0
		out[c] += n
	}
	return out, nil
}

// xdpPackets is how many packets node 1's XDP program translated between
// two readings of counters: requests on ext0 (DNAT+SNAT to the remote
// backend) and replies on the underlay (reverse SNAT).
func (t *topology) xdpPackets(before, after map[metricsmap.Counter]uint64) (fwd, rev uint64) {
	for c, n := range after {
		if c.Direction != metricsmap.DirIngress {
			continue
		}
		switch {
		case c.Ifindex == t.ext0 && c.Reason == metricsmap.ReasonXDPLBSNAT:
			fwd += n - before[c]
		case c.Ifindex == t.ulIndex && c.Reason == metricsmap.ReasonXDPLBRevSNAT:
			rev += n - before[c]
		}
	}
	return fwd, rev
}

// drops is what node 1's programs dropped between two readings, per reason.
func drops(before, after map[metricsmap.Counter]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for c, n := range after {
		if c.Reason.IsDrop() && n > before[c] {
			out[c.Reason.String()] += n - before[c]
		}
	}
	return out
}

func podYAML(p *harness.Pod) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: default
  labels: {app: %s}
spec:
  nodeName: %s
  containers: [{name: app, image: none}]
status:
  phase: Running
  podIP: %s
  podIPs: [{ip: %s}]
---
`, p.Name, p.Name, p.Node.Name, p.IP, p.IP)
}

func writeFile(r *harness.Runner, n *harness.Node, name, content string) {
	if err := writeAtomic(n.ManifestsDir, name, content); err != nil {
		r.Fatal(err)
	}
}

func ifindex(r *harness.Runner, ns *harness.NetNS, dev string) uint32 {
	var idx uint32
	ns.Do(r, func() {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			r.Fatalf("%s in %s: %v", dev, ns.Name, err)
		}
		idx = uint32(ifc.Index)
	})
	return idx
}
