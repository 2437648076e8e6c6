package integration

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/test/harness"
)

// dsrNodes: two simulated nodes joined by an underlay (pod routes), and a
// LAN: a bridge in its own netns with node 1 (lan0, npNodeIP), node 2 (lan0,
// dsrNode2LAN) and an outside client (eth0, npClientIP), as the local
// cluster's nodes share an L2 segment. The client asks node 1's NodePort; the
// backend is pod-b on node 2, which reaches the client directly on the LAN.
// Both agents run the host programs on the underlay and lan0 with the same
// --lb-mode.
type dsrNodes struct {
	n1, n2 *harness.Node
	ul     *harness.Underlay
	client *harness.NetNS
	podB   *harness.Pod
}

const (
	dsrNode2LAN = "192.168.250.3"
	dsrNodePort = 30085
	dsrEchoPort = 30086
	dsrUDPPort  = 30087
	dsrEchoPod  = podPort + 1
)

func newDSRNodes(t *testing.T, mode string) *dsrNodes {
	t.Helper()
	return newDSRNodesXDP(t, mode, "")
}

// newDSRNodesXDP is newDSRNodes with both agents' --lb-acceleration accel
// (none when empty).
func newDSRNodesXDP(t *testing.T, mode, accel string) *dsrNodes {
	t.Helper()
	c := &dsrNodes{}
	c.n1 = harness.NewNode(t, harness.NodeOptions{Index: 1})
	c.n2 = harness.NewNode(t, harness.NodeOptions{Index: 2})
	c.ul = harness.ConnectNodes(t, c.n1, c.n2)
	sw := harness.NewNetNS(t, "sl-sw-")
	sw.Run(t, "ip", "link", "add", "br0", "type", "bridge")
	sw.Run(t, "ip", "link", "set", "br0", "up")
	c.client = harness.NewNetNS(t, "sl-cl-")
	for i, end := range []struct {
		ns   *harness.NetNS
		dev  string
		addr string
	}{{c.n1.NS, "lan0", npNodeIP}, {c.n2.NS, "lan0", dsrNode2LAN}, {c.client, "eth0", npClientIP}} {
		port := fmt.Sprintf("s%d", i)
		end.ns.Run(t, "ip", "link", "add", end.dev, "type", "veth", "peer", "name", port, "netns", sw.Name)
		sw.Run(t, "ip", "link", "set", port, "master", "br0")
		sw.Run(t, "ip", "link", "set", port, "up")
		end.ns.Run(t, "ip", "addr", "add", end.addr+"/24", "dev", end.dev)
		end.ns.Run(t, "ip", "link", "set", end.dev, "up")
	}
	// The client sends MTU-sized segments (no TSO: no checksum offload),
	// as over a wire, not GSO packets a veth would pass whole: node 1's
	// encapsulation then has to fit them (the MSS clamp).
	harness.TxNoCsumOffload(t, c.client, "eth0")
	nodes := harness.NodeYAML(c.n1, c.ul.AddrA) + harness.NodeYAML(c.n2, c.ul.AddrB)
	for _, n := range []*harness.Node{c.n1, c.n2} {
		ip := c.ul.AddrA
		if n == c.n2 {
			ip = c.ul.AddrB
		}
		writeManifest(t, n, "nodes.yaml", nodes)
		args := []string{"--routing", "native", "--devices", c.ul.IfName + ",lan0", "--node-ip", ip.String(), "--lb-mode", mode}
		if accel != "" {
			args = append(args, "--lb-acceleration", accel)
		}
		n.StartAgentWith(t, harness.AgentOptions{Args: args})
	}
	podA := c.n1.AddPod(t, "pod-a")
	c.podB = c.n2.AddPod(t, "pod-b")
	pods := crossPodYAML(podA) + crossPodYAML(c.podB)
	servePeer(t, c.podB.NS, c.podB.Addr(podPort), c.podB.Name)
	harness.ServeTCP(t, c.podB.NS, c.podB.Addr(dsrEchoPod), c.podB.Name)
	harness.ServeUDP(t, c.podB.NS, c.podB.Addr(podPort), c.podB.Name)
	ep := [5]string{c.podB.IP.String(), c.n2.Name, "true", "true", "false"}
	echo := strings.ReplaceAll(nodePortYAML("np-dsr-echo", "10.96.0.86", dsrEchoPort, false, "")+sliceYAML("np-dsr-echo", ep)+"---\n",
		strconv.Itoa(podPort), strconv.Itoa(dsrEchoPod))
	udp := strings.ReplaceAll(nodePortYAML("np-dsr-udp", "10.96.0.87", dsrUDPPort, false, "")+sliceYAML("np-dsr-udp", ep)+"---\n",
		"protocol: TCP", "protocol: UDP")
	for _, n := range []*harness.Node{c.n1, c.n2} {
		writeManifest(t, n, "pods.yaml", pods)
		// Every node knows the Services (node 2 checks that a DSR
		// packet's inner destination is a frontend).
		writeManifest(t, n, "np-dsr.yaml", nodePortYAML("np-dsr", "10.96.0.85", dsrNodePort, false, "")+sliceYAML("np-dsr", ep)+"---\n"+echo+udp)
	}
	for _, n := range []*harness.Node{c.n1, c.n2} {
		waitBackends(t, n, fmt.Sprintf("0.0.0.0:%d", dsrNodePort), 1)
		waitBackends(t, n, fmt.Sprintf("0.0.0.0:%d", dsrEchoPort), 1)
	}
	waitRoute(t, c.n1, c.n2.PodCIDR.String(), "via "+c.ul.AddrB.String())
	return c
}

// txPackets is the transmitted-packet count of dev in n.
func txPackets(t *testing.T, n *harness.Node, dev string) uint64 {
	t.Helper()
	var v uint64
	n.NS.Do(t, func() {
		l, err := netlink.LinkByName(dev)
		require.NoError(t, err)
		require.NotNil(t, l.Attrs().Statistics)
		v = l.Attrs().Statistics.TxPackets
	})
	return v
}

func nodeCounter(t *testing.T, n *harness.Node, dev string, r metricsmap.Reason, dir metricsmap.Direction) uint64 {
	t.Helper()
	var idx uint32
	n.NS.Do(t, func() {
		ifc, err := net.InterfaceByName(dev)
		require.NoError(t, err)
		idx = uint32(ifc.Index)
	})
	cs, err := metricsmap.PinnedCounters(n.BPFRoot)
	require.NoError(t, err)
	var sum uint64
	for _, x := range cs {
		if x.Ifindex == idx && x.Reason == r && x.Direction == dir {
			sum += x.Packets
		}
	}
	return sum
}

// asks is how many connections each check makes.
const dsrAsks = 20

// requireTCP asks node 1's NodePort dsrAsks times: pod-b answers every
// time; it returns the peers pod-b saw and how many packets node 1 and
// node 2 sent on lan0 meanwhile.
func (c *dsrNodes) askTCP(t *testing.T) (peers map[string]bool, n1Tx, n2Tx uint64) {
	t.Helper()
	tx1, tx2 := txPackets(t, c.n1, "lan0"), txPackets(t, c.n2, "lan0")
	names, peers := askManyPeer(t, c.client, fmt.Sprintf("%s:%d", npNodeIP, dsrNodePort), dsrAsks)
	require.Equal(t, map[string]int{"pod-b": dsrAsks}, names, "NodePort on node 1 answered by pod-b on node 2")
	return peers, txPackets(t, c.n1, "lan0") - tx1, txPackets(t, c.n2, "lan0") - tx2
}

// requireDSRTCP: the client's address reaches pod-b, whose replies leave
// node 2's lan0 and never node 1's; a 2 MiB echo each way survives the
// encapsulation (MSS clamped on pod-b's SYN-ACK).
func (c *dsrNodes) requireDSRTCP(t *testing.T) {
	t.Helper()
	rx, rev := nodeCounter(t, c.n2, c.ul.IfName, metricsmap.ReasonLBDSRRx, metricsmap.DirIngress),
		nodeCounter(t, c.n2, "lan0", metricsmap.ReasonLBDSRRevNAT, metricsmap.DirEgress)
	enc := nodeCounter(t, c.n1, "lan0", metricsmap.ReasonLBDSR, metricsmap.DirIngress)
	peers, n1Tx, n2Tx := c.askTCP(t)
	t.Logf("%d connections: node 1 lan0 sent %d packets, node 2 lan0 sent %d", dsrAsks, n1Tx, n2Tx)
	assert.Equal(t, map[string]bool{npClientIP: true}, peers, "client IP preserved at the backend")
	// Each connection's replies are at least SYN-ACK, data and FIN.
	assert.Less(t, n1Tx, uint64(dsrAsks/2), "replies did not pass node 1's lan0 (only ARP may)")
	assert.GreaterOrEqual(t, n2Tx, uint64(3*dsrAsks), "replies left node 2's lan0 straight to the client")
	assert.GreaterOrEqual(t, nodeCounter(t, c.n1, "lan0", metricsmap.ReasonLBDSR, metricsmap.DirIngress)-enc, uint64(3*dsrAsks), "node 1 encapsulated")
	assert.GreaterOrEqual(t, nodeCounter(t, c.n2, c.ul.IfName, metricsmap.ReasonLBDSRRx, metricsmap.DirIngress)-rx, uint64(3*dsrAsks), "node 2 decapsulated")
	assert.GreaterOrEqual(t, nodeCounter(t, c.n2, "lan0", metricsmap.ReasonLBDSRRevNAT, metricsmap.DirEgress)-rev, uint64(3*dsrAsks), "node 2 reverse-translated")

	name, err := harness.Echo(c.client, fmt.Sprintf("%s:%d", npNodeIP, dsrEchoPort), transferSize, 30*time.Second)
	require.NoError(t, err, "%d bytes through DSR and back", transferSize)
	assert.Equal(t, "pod-b", name)
}

// requireUDP asks the UDP NodePort: pod-b answers; it returns node 1's
// lan0 packets meanwhile.
func (c *dsrNodes) askUDP(t *testing.T) uint64 {
	t.Helper()
	tx1 := txPackets(t, c.n1, "lan0")
	for i := 0; i < dsrAsks; i++ {
		got, err := harness.AskUDP(c.client, fmt.Sprintf("%s:%d", npNodeIP, dsrUDPPort), timeout)
		require.NoError(t, err)
		require.Equal(t, "pod-b", got)
	}
	return txPackets(t, c.n1, "lan0") - tx1
}

func TestPrivilegedCrossNodeNodePortDSR(t *testing.T) {
	c := newDSRNodes(t, "dsr")
	c.requireDSRTCP(t)
	assert.Less(t, c.askUDP(t), uint64(dsrAsks/2), "dsr: UDP replies do not pass node 1")
	st, err := c.n1.Client().Status(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "dsr", st.KubeProxy.LBMode)
}

func TestPrivilegedCrossNodeNodePortHybrid(t *testing.T) {
	c := newDSRNodes(t, "hybrid")
	c.requireDSRTCP(t)
	assert.GreaterOrEqual(t, c.askUDP(t), uint64(dsrAsks), "hybrid: UDP is SNATed, its replies pass node 1")
}

// The same topology in snat mode: pod-b sees node 1's address and the
// replies pass node 1's lan0 (the control for the DSR checks above).
func TestPrivilegedCrossNodeNodePortSNATControl(t *testing.T) {
	c := newDSRNodes(t, "snat")
	peers, n1Tx, n2Tx := c.askTCP(t)
	t.Logf("%d connections: node 1 lan0 sent %d packets, node 2 lan0 sent %d", dsrAsks, n1Tx, n2Tx)
	assert.Equal(t, map[string]bool{c.ul.AddrA.String(): true}, peers, "SNAT to node 1")
	assert.GreaterOrEqual(t, n1Tx, uint64(3*dsrAsks), "replies pass node 1's lan0")
	assert.GreaterOrEqual(t, c.askUDP(t), uint64(dsrAsks))
}

// With --lb-acceleration native on both nodes, node 1's XDP program
// encapsulates (its xdp-lb-dsr counter moves) and node 2's passes the
// IP-in-IP packets to tc: the same answers as at tc.
func TestPrivilegedCrossNodeNodePortDSRXDP(t *testing.T) {
	c := newDSRNodesXDP(t, "dsr", "native")
	// A veth delivers a frame XDP sent out only to a peer running XDP:
	// node 2's agent attached its own to its end of the underlay.
	st, err := c.n1.Client().Status(t.Context())
	require.NoError(t, err)
	require.Equal(t, "xdp native", st.KubeProxy.NodePortXDP["lan0"])
	x := nodeCounter(t, c.n1, "lan0", metricsmap.ReasonXDPLBDSR, metricsmap.DirIngress)
	peers, n1Tx, n2Tx := c.askTCP(t)
	t.Logf("%d connections: node 1 lan0 sent %d packets, node 2 lan0 sent %d", dsrAsks, n1Tx, n2Tx)
	assert.Equal(t, map[string]bool{npClientIP: true}, peers, "client IP preserved at the backend")
	assert.Less(t, n1Tx, uint64(dsrAsks/2), "replies did not pass node 1's lan0")
	assert.GreaterOrEqual(t, nodeCounter(t, c.n1, "lan0", metricsmap.ReasonXDPLBDSR, metricsmap.DirIngress)-x, uint64(3*dsrAsks), "node 1's XDP program encapsulated")
	name, err := harness.Echo(c.client, fmt.Sprintf("%s:%d", npNodeIP, dsrEchoPort), transferSize, 30*time.Second)
	require.NoError(t, err, "%d bytes through XDP DSR and back", transferSize)
	assert.Equal(t, "pod-b", name)
}

// Both agents run --lb-mode snat; a NodePort Service annotated
// service.sluice.io/lb-mode: dsr goes by DSR all the same (node 1
// encapsulates, node 2 decapsulates although its own mode is snat): pod-b
// sees the client's address and its replies do not pass node 1. The
// unannotated NodePort to the same pod is still SNATed, and service list
// shows each one's mode.
func TestPrivilegedCrossNodeNodePortAnnotatedDSR(t *testing.T) {
	c := newDSRNodes(t, "snat")
	const annPort = 30088
	c.annotatedNodePort(t, "np-ann", "10.96.0.88", annPort, "service.sluice.io/lb-mode: dsr")
	svcs, err := c.n1.Client().ListServices(t.Context())
	require.NoError(t, err)
	modes := map[string]string{}
	for _, s := range svcs {
		modes[s.Frontend] = s.Mode
	}
	assert.Equal(t, "dsr", modes[fmt.Sprintf("0.0.0.0:%d", annPort)])
	assert.Equal(t, "snat", modes[fmt.Sprintf("0.0.0.0:%d", dsrNodePort)])
	assert.Equal(t, "", modes["10.96.0.88:"+strconv.Itoa(svcPort)], "ClusterIP: no mode")

	enc := nodeCounter(t, c.n1, "lan0", metricsmap.ReasonLBDSR, metricsmap.DirIngress)
	rx := nodeCounter(t, c.n2, c.ul.IfName, metricsmap.ReasonLBDSRRx, metricsmap.DirIngress)
	tx1, tx2 := txPackets(t, c.n1, "lan0"), txPackets(t, c.n2, "lan0")
	names, peers := askManyPeer(t, c.client, fmt.Sprintf("%s:%d", npNodeIP, annPort), dsrAsks)
	n1Tx, n2Tx := txPackets(t, c.n1, "lan0")-tx1, txPackets(t, c.n2, "lan0")-tx2
	t.Logf("annotated dsr: %d connections: node 1 lan0 sent %d packets, node 2 lan0 sent %d", dsrAsks, n1Tx, n2Tx)
	require.Equal(t, map[string]int{"pod-b": dsrAsks}, names)
	assert.Equal(t, map[string]bool{npClientIP: true}, peers, "client IP preserved at the backend")
	assert.Less(t, n1Tx, uint64(dsrAsks/2), "replies did not pass node 1's lan0")
	assert.GreaterOrEqual(t, n2Tx, uint64(3*dsrAsks), "replies left node 2's lan0 straight to the client")
	assert.GreaterOrEqual(t, nodeCounter(t, c.n1, "lan0", metricsmap.ReasonLBDSR, metricsmap.DirIngress)-enc, uint64(3*dsrAsks), "node 1 encapsulated")
	assert.GreaterOrEqual(t, nodeCounter(t, c.n2, c.ul.IfName, metricsmap.ReasonLBDSRRx, metricsmap.DirIngress)-rx, uint64(3*dsrAsks),
		"node 2 (snat mode) decapsulated")

	// The unannotated Service: SNAT, as the node's mode says.
	enc = nodeCounter(t, c.n1, "lan0", metricsmap.ReasonLBDSR, metricsmap.DirIngress)
	peers, n1Tx, _ = c.askTCP(t)
	assert.Equal(t, map[string]bool{c.ul.AddrA.String(): true}, peers, "SNAT to node 1")
	assert.GreaterOrEqual(t, n1Tx, uint64(3*dsrAsks), "replies pass node 1's lan0")
	assert.Equal(t, enc, nodeCounter(t, c.n1, "lan0", metricsmap.ReasonLBDSR, metricsmap.DirIngress), "nothing encapsulated")
}

// The other way round: both agents run --lb-mode dsr; a NodePort Service
// annotated with Cilium's service.cilium.io/forwarding-mode: snat is SNATed
// (pod-b sees node 1, replies pass node 1), the unannotated one still goes
// by DSR.
func TestPrivilegedCrossNodeNodePortAnnotatedSNAT(t *testing.T) {
	c := newDSRNodes(t, "dsr")
	const annPort = 30089
	c.annotatedNodePort(t, "np-ann-snat", "10.96.0.89", annPort, "service.cilium.io/forwarding-mode: snat")
	out, err := c.n1.NS.Command(harness.Bin(t, "sluice"), "--socket", c.n1.Socket(), "service", "list").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Regexp(t, fmt.Sprintf(`(?m)^default/np-ann-snat:http +NodePort +0\.0\.0\.0:%d/TCP +random +snat +`, annPort), string(out))
	assert.Regexp(t, fmt.Sprintf(`(?m)^default/np-dsr:http +NodePort +0\.0\.0\.0:%d/TCP +random +dsr +`, dsrNodePort), string(out))
	assert.Regexp(t, `(?m)^default/np-dsr:http +ClusterIP +10\.96\.0\.85:80/TCP +random +- +`, string(out))

	enc := nodeCounter(t, c.n1, "lan0", metricsmap.ReasonLBDSR, metricsmap.DirIngress)
	tx1 := txPackets(t, c.n1, "lan0")
	names, peers := askManyPeer(t, c.client, fmt.Sprintf("%s:%d", npNodeIP, annPort), dsrAsks)
	require.Equal(t, map[string]int{"pod-b": dsrAsks}, names)
	assert.Equal(t, map[string]bool{c.ul.AddrA.String(): true}, peers, "SNAT to node 1")
	assert.GreaterOrEqual(t, txPackets(t, c.n1, "lan0")-tx1, uint64(3*dsrAsks), "replies pass node 1's lan0")
	assert.Equal(t, enc, nodeCounter(t, c.n1, "lan0", metricsmap.ReasonLBDSR, metricsmap.DirIngress), "nothing encapsulated")

	c.requireDSRTCP(t)
}

// annotatedNodePort gives both nodes a NodePort Service (name, ClusterIP
// vip, node port) to pod-b with one annotation ("key: value") and waits
// until both program it.
func (c *dsrNodes) annotatedNodePort(t *testing.T, name, vip string, port int, annotation string) {
	t.Helper()
	ep := [5]string{c.podB.IP.String(), c.n2.Name, "true", "true", "false"}
	svc := strings.Replace(nodePortYAML(name, vip, port, false, ""),
		"  namespace: default\n", "  namespace: default\n  annotations:\n    "+annotation+"\n", 1)
	for _, n := range []*harness.Node{c.n1, c.n2} {
		writeManifest(t, n, "np-ann.yaml", svc+sliceYAML(name, ep)+"---\n")
	}
	for _, n := range []*harness.Node{c.n1, c.n2} {
		waitBackends(t, n, fmt.Sprintf("0.0.0.0:%d", port), 1)
	}
}
