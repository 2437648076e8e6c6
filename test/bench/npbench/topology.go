package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/test/bench/benchrun"
	"github.com/sluicenet/sluice/test/bench/services"
	"github.com/sluicenet/sluice/test/bench/tcpcrr"
	"github.com/sluicenet/sluice/test/harness"
)

// The client's network: a /24 between node 1's ext0 and the client's eth0,
// and another between node 2's dsr0 and the client's eth1 (the way DSR
// replies come back), only inside the namespaces (neither is a route of the
// host).
const (
	clientNet    = "192.168.250.0/24"
	nodeExtIP    = "192.168.250.1"
	clientIP     = "192.168.250.2"
	extDev       = "ext0"
	clientDev    = "eth0"
	node2DSRIP   = "192.168.251.1"
	clientDSRIP  = "192.168.251.2"
	dsrDev       = "dsr0" // node 2's end
	clientDSRDev = "eth1"
	backendPod   = 8080
)

// nodePorts of the two services (each for TCP and UDP).
var nodePorts = map[string]uint16{backendLocal: 30080, backendRemote: 30081}

// Sysctls of the client (many short connections) and the backends.
var (
	clientSysctls = map[string]string{
		"net/ipv4/ip_local_port_range": "1024 65535",
		"net/ipv4/tcp_tw_reuse":        "1",
		// DSR replies come from node 1's address (the NodePort) over
		// the link to node 2: no reverse-path filter on that link.
		"net/ipv4/conf/all/rp_filter":                  "0",
		"net/ipv4/conf/" + clientDSRDev + "/rp_filter": "0",
	}
	serverSysctls = map[string]string{"net/core/somaxconn": "8192"}
	nodeSysctls   = map[string]string{"net/ipv4/ip_forward": "1"}
)

// topology is two simulated nodes joined by an underlay veth, a client
// namespace wired to node 1's ext0 (its default route) and to node 2's dsr0
// (used only by DSR replies), a backend pod on each node (local on node 1,
// remote on node 2) serving TCP_CRR and UDP_RR, and the NodePort services
// programmed the configuration's way (none for direct).
type topology struct {
	n1, n2  *harness.Node
	ul      *harness.Underlay
	client  *harness.NetNS
	crr     string
	pods    map[string]*harness.Pod // backend placement → pod
	ext0    uint32                  // node 1's ifindex of ext0
	ulIndex uint32                  // node 1's ifindex of the underlay
	n2UL    uint32                  // node 2's ifindex of the underlay
	n2DSR   uint32                  // node 2's ifindex of dsr0
	xdp     bool                    // node 1 runs XDP on its devices
}

// newTopology builds everything for config; r's cleanups undo it.
func newTopology(ctx context.Context, r *harness.Runner, crr, config string) *topology {
	t := &topology{crr: crr, pods: map[string]*harness.Pod{}, xdp: isXDP(config)}
	t.n1 = harness.NewNode(r, harness.NodeOptions{Index: 1})
	t.n2 = harness.NewNode(r, harness.NodeOptions{Index: 2})
	t.ul = harness.ConnectNodes(r, t.n1, t.n2)
	t.client = harness.NewNetNS(r, "sl-npc-")
	t.n1.NS.Run(r, "ip", "link", "add", extDev, "type", "veth", "peer", "name", "eth0", "netns", t.client.Name)
	t.n1.NS.Run(r, "ip", "addr", "add", nodeExtIP+"/24", "dev", extDev)
	t.n1.NS.Run(r, "ip", "link", "set", extDev, "up")
	t.client.Run(r, "ip", "addr", "add", clientIP+"/24", "dev", clientDev)
	t.client.Run(r, "ip", "link", "set", clientDev, "up")
	// The default route covers the pod CIDRs too (direct).
	t.client.Run(r, "ip", "route", "add", "default", "via", nodeExtIP)
	t.n2.NS.Run(r, "ip", "link", "add", dsrDev, "type", "veth", "peer", "name", clientDSRDev, "netns", t.client.Name)
	t.n2.NS.Run(r, "ip", "addr", "add", node2DSRIP+"/24", "dev", dsrDev)
	t.n2.NS.Run(r, "ip", "link", "set", dsrDev, "up")
	t.client.Run(r, "ip", "addr", "add", clientDSRIP+"/24", "dev", clientDSRDev)
	t.client.Run(r, "ip", "link", "set", clientDSRDev, "up")
	// Node 2 answers the client through node 1 (direct's remote
	// replies; the SNAT configurations answer node 1 itself), except in
	// DSR, where the backend's node reaches the client over its own link.
	t.n2.NS.Run(r, "ip", "route", "add", clientNet, "via", t.ul.AddrA.String())
	if isDSR(config) {
		t.n2.NS.Run(r, "ip", "route", "add", clientIP+"/32", "via", clientDSRIP, "dev", dsrDev)
	}
	// The ends XDP may send frames to, in every configuration alike.
	harness.XDPPeer(r, t.client, clientDev)
	harness.XDPPeer(r, t.n2.NS, t.ul.IfName)
	benchrun.Sysctls(r, t.client, clientSysctls)
	for _, n := range []*harness.Node{t.n1, t.n2} {
		benchrun.Sysctls(r, n.NS, nodeSysctls)
	}
	t.ext0, t.ulIndex = ifindex(r, t.n1.NS, extDev), ifindex(r, t.n1.NS, t.ul.IfName)
	t.n2UL, t.n2DSR = ifindex(r, t.n2.NS, t.ul.IfName), ifindex(r, t.n2.NS, dsrDev)

	nodes := harness.NodeYAML(t.n1, t.ul.AddrA) + harness.NodeYAML(t.n2, t.ul.AddrB)
	for _, n := range []*harness.Node{t.n1, t.n2} {
		writeFile(r, n, "nodes.yaml", nodes)
	}
	// Native routing between the nodes in every configuration; Sluice's
	// NodePort programs on node 1's devices only in the Sluice ones, and
	// on node 2's (decapsulation on the underlay, the replies' reverse
	// translation on dsr0) only in DSR. Node 2 would decapsulate without
	// --lb-mode (tc takes any IP-in-IP to a local pod); it gets the flag
	// as the README asks of every node.
	args1 := []string{"--routing", "native", "--node-ip", t.ul.AddrA.String(), "--log-level", "info"}
	args2 := []string{"--routing", "native", "--node-ip", t.ul.AddrB.String(), "--log-level", "info"}
	if isSluice(config) {
		accel := "disabled"
		if isXDP(config) {
			accel = "native"
		}
		args1 = append(args1, "--devices", t.ul.IfName+","+extDev, "--lb-acceleration", accel)
	}
	if isDSR(config) {
		args1 = append(args1, "--lb-mode", "dsr")
		args2 = append(args2, "--devices", t.ul.IfName+","+dsrDev, "--lb-mode", "dsr")
	}
	t.n1.StartAgentArgs(r, args1...)
	t.n2.StartAgentArgs(r, args2...)

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
	switch {
	case config == cfgIPTables:
		o := services.IPTablesOptions{ClusterCIDR: netip.MustParsePrefix(harness.PodCIDR)}
		if _, err := benchrun.IPTablesRestore(t.n1.NS, services.IPTablesRestore(svcs, o), false); err != nil {
			r.Fatal(err)
		}
	case isSluice(config):
		var b strings.Builder
		if err := services.WriteManifests(&b, svcs); err != nil {
			r.Fatal(err)
		}
		// In DSR node 2 knows the Services too: it decapsulates only
		// packets to a frontend.
		nodes := []*harness.Node{t.n1}
		if isDSR(config) {
			nodes = append(nodes, t.n2)
		}
		for _, n := range nodes {
			writeFile(r, n, "services.yaml", b.String())
			if err := waitProgrammed(ctx, n, svcs); err != nil {
				r.Fatal(err)
			}
		}
	}
	if isSluice(config) {
		st, err := t.n1.Client().Status(ctx)
		if err != nil {
			r.Fatalf("sluice status: %v", err)
		}
		want := "tc"
		if isXDP(config) {
			want = "xdp native"
		}
		if got := st.KubeProxy.NodePortXDP[extDev]; got != want {
			r.Fatalf("node 1's %s runs %q, want %s (status %v)", extDev, got, want, st.KubeProxy.NodePortXDP)
		}
	}
	if isDSR(config) {
		for _, n := range []*harness.Node{t.n1, t.n2} {
			st, err := n.Client().Status(ctx)
			if err != nil {
				r.Fatalf("sluice status: %v", err)
			}
			if st.KubeProxy.LBMode != "dsr" {
				r.Fatalf("%s's LB mode is %q, want dsr", n.Name, st.KubeProxy.LBMode)
			}
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

// target is the address the client sends to for backend b: the NodePort,
// or in direct the backend pod itself.
func (t *topology) target(config, b string) netip.AddrPort {
	if config == cfgDirect {
		return netip.AddrPortFrom(t.pods[b].IP, backendPod)
	}
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

// waitProgrammed waits until n's LB maps hold every service's node port
// frontend with a backend (`sluice bpf lb list`).
func waitProgrammed(ctx context.Context, n *harness.Node, svcs []services.Service) error {
	want := map[string]bool{}
	for _, s := range svcs {
		want[fmt.Sprintf("%s/0.0.0.0:%d", strings.ToUpper(s.Proto()), s.NodePort)] = true
	}
	deadline := time.Now().Add(time.Minute)
	for {
		m, err := n.Client().LBMaps(ctx)
		got := 0
		if err == nil {
			for _, s := range m.Services {
				if len(s.BackendIDs) > 0 && want[strings.ToUpper(s.Protocol)+"/"+s.Frontend] {
					got++
				}
			}
			if got == len(want) {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%d of %d node ports in %s's LB maps (last error: %v)", got, len(want), n.Name, err)
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

// reading is what a sample's checks compare before and after its load:
// both nodes' metrics maps (packets per device, reason and direction) and
// the packet counts of the links that tell which way the flows went.
type reading struct {
	n1, n2 map[metricsmap.Counter]uint64
	links  linkPackets
}

// linkPackets are the packet counts of the links a reply can take:
// node 1's ext0 sent (to the client) and underlay received (from node 2),
// the client's eth0 received (from node 1) and eth1 received (from node 2).
type linkPackets struct {
	N1ExtTx, N1ULRx, ClientRx, ClientDSRRx uint64
}

func (t *topology) read() (reading, error) {
	var rd reading
	var err error
	if rd.n1, err = counters(t.n1); err != nil {
		return rd, err
	}
	if rd.n2, err = counters(t.n2); err != nil {
		return rd, err
	}
	for _, l := range []struct {
		ns  *harness.NetNS
		dev string
		tx  bool
		to  *uint64
	}{
		{t.n1.NS, extDev, true, &rd.links.N1ExtTx},
		{t.n1.NS, t.ul.IfName, false, &rd.links.N1ULRx},
		{t.client, clientDev, false, &rd.links.ClientRx},
		{t.client, clientDSRDev, false, &rd.links.ClientDSRRx},
	} {
		rx, tx, err := linkStats(l.ns, l.dev)
		if err != nil {
			return rd, err
		}
		*l.to = rx
		if l.tx {
			*l.to = tx
		}
	}
	return rd, nil
}

// counters is n's metrics map: packets per device, reason and direction.
func counters(n *harness.Node) (map[metricsmap.Counter]uint64, error) {
	cs, err := metricsmap.PinnedCounters(n.BPFRoot)
	if err != nil {
		return nil, fmt.Errorf("%s's counters: %w", n.Name, err)
	}
	out := map[metricsmap.Counter]uint64{}
	for _, c := range cs {
		n := c.Packets
		c.Packets, c.Bytes = 0, 0
		out[c] += n
	}
	return out, nil
}

// linkStats is dev's received and sent packets in ns.
func linkStats(ns *harness.NetNS, dev string) (rx, tx uint64, err error) {
	h, err := netns.GetFromPath(ns.Path())
	if err != nil {
		return 0, 0, err
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return 0, 0, err
	}
	defer nl.Close()
	l, err := nl.LinkByName(dev)
	if err != nil {
		return 0, 0, fmt.Errorf("%s in %s: %w", dev, ns.Name, err)
	}
	st := l.Attrs().Statistics
	if st == nil {
		return 0, 0, fmt.Errorf("%s in %s: no statistics", dev, ns.Name)
	}
	return st.RxPackets, st.TxPackets, nil
}

// delta is counter (ifindex, reason, direction)'s packets between two
// readings of one node's counters.
func delta(before, after map[metricsmap.Counter]uint64, ifindex uint32, r metricsmap.Reason, dir metricsmap.Direction) uint64 {
	var n uint64
	for c, v := range after {
		if c.Ifindex == ifindex && c.Reason == r && c.Direction == dir {
			n += v - before[c]
		}
	}
	return n
}

// paths is what a sample moved between two readings on the ways its flows
// can take.
func (t *topology) paths(before, after reading) paths {
	encap := metricsmap.ReasonLBDSR
	if t.xdp {
		encap = metricsmap.ReasonXDPLBDSR
	}
	return paths{
		XDPFwd: delta(before.n1, after.n1, t.ext0, metricsmap.ReasonXDPLBSNAT, metricsmap.DirIngress),
		XDPRev: delta(before.n1, after.n1, t.ulIndex, metricsmap.ReasonXDPLBRevSNAT, metricsmap.DirIngress),
		Encap:  delta(before.n1, after.n1, t.ext0, encap, metricsmap.DirIngress),
		Decap:  delta(before.n2, after.n2, t.n2UL, metricsmap.ReasonLBDSRRx, metricsmap.DirIngress),
		RevNAT: delta(before.n2, after.n2, t.n2DSR, metricsmap.ReasonLBDSRRevNAT, metricsmap.DirEgress),
		linkPackets: linkPackets{
			N1ExtTx:     after.links.N1ExtTx - before.links.N1ExtTx,
			N1ULRx:      after.links.N1ULRx - before.links.N1ULRx,
			ClientRx:    after.links.ClientRx - before.links.ClientRx,
			ClientDSRRx: after.links.ClientDSRRx - before.links.ClientDSRRx,
		},
	}
}

// drops is what a node's programs dropped between two readings, per
// reason (prefixed).
func drops(before, after map[metricsmap.Counter]uint64, prefix string) map[string]uint64 {
	out := map[string]uint64{}
	for c, n := range after {
		if c.Reason.IsDrop() && n > before[c] {
			out[prefix+c.Reason.String()] += n - before[c]
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
