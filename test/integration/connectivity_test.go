package integration

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/test/harness"
)

// Three pods on one node reach each other (redirected by the pod program
// straight into the peer, never through the host veth's egress), reach the
// node, and the node reaches them; the counters show each path.
func TestPrivilegedPodConnectivity(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgent(t)
	pods := []*harness.Pod{node.AddPod(t, "a"), node.AddPod(t, "b"), node.AddPod(t, "c")}
	servePods(t, pods...)
	harness.ServeTCP(t, node.NS, fmt.Sprintf("%s:%d", node.Gateway, nodePort), "node")

	// Pin the gateway's MAC in every pod so that no ARP exchange (which the
	// node answers through the host veth) mixes into the counters below.
	for _, p := range pods {
		p.NS.Run(t, "ip", "neigh", "replace", node.Gateway.String(), "lladdr", p.HostMAC.String(), "dev", "eth0", "nud", "permanent")
	}

	for _, from := range pods {
		for _, to := range pods {
			if from == to {
				continue
			}
			localBefore := count(t, from, "egress", "forward-local")
			toEPBefore := count(t, to, "ingress", "forward-to-endpoint")
			requireReply(t, from.NS, to.Addr(podPort), to.Name)
			assert.GreaterOrEqual(t, count(t, from, "egress", "forward-local")-localBefore, uint64(3),
				"%s→%s: handshake, request and close redirected by the pod program", from.Name, to.Name)
			assert.Equal(t, toEPBefore, count(t, to, "ingress", "forward-to-endpoint"),
				"%s→%s: delivered with bpf_redirect_peer, not via the host veth", from.Name, to.Name)
		}
	}

	// Pod → node and node → pod go through the node's stack.
	for _, p := range pods {
		stackBefore := count(t, p, "egress", "forward-stack")
		requireReply(t, p.NS, fmt.Sprintf("%s:%d", node.Gateway, nodePort), "node")
		assert.Greater(t, count(t, p, "egress", "forward-stack"), stackBefore, "%s→node counted", p.Name)

		inBefore := count(t, p, "ingress", "forward-to-endpoint")
		requireReply(t, node.NS, p.Addr(podPort), p.Name)
		assert.Greater(t, count(t, p, "ingress", "forward-to-endpoint"), inBefore, "node→%s counted", p.Name)
	}

	// Addresses are distinct, in the node's PodCIDR, and the agent agrees.
	seen := map[string]bool{}
	for _, p := range pods {
		require.True(t, node.PodCIDR.Contains(p.IP), "%s in %s", p.IP, node.PodCIDR)
		require.False(t, seen[p.IP.String()], "duplicate IP %s", p.IP)
		seen[p.IP.String()] = true
		ep := endpointOf(t, p)
		assert.Equal(t, p.IP.String(), ep.IPv4)
		assert.Equal(t, p.HostIfName, ep.HostIfName)
		assert.Equal(t, "default", ep.PodNamespace)
		assert.Equal(t, p.Name, ep.PodName)
	}
}

// A pod that sends from an address or MAC that is not its own is dropped at
// its veth, and the drop is counted with its reason.
func TestPrivilegedAntiSpoofing(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgent(t)
	a, b := node.AddPod(t, "a"), node.AddPod(t, "b")
	servePods(t, b)
	requireReply(t, a.NS, b.Addr(podPort), "b")

	// Source IP spoofing: a binds to an address that is not its own.
	spoofed := "10.244.1.250"
	a.NS.Run(t, "ip", "addr", "add", spoofed+"/32", "dev", "eth0")
	before := count(t, a, "egress", "drop-spoofed-source-ip")
	_, err := harness.AskFrom(a.NS, spoofed+":0", b.Addr(podPort), timeout)
	require.Error(t, err, "spoofed connection must not get a reply")
	assert.Greater(t, count(t, a, "egress", "drop-spoofed-source-ip"), before, "spoofed-IP drop counted")
	a.NS.Run(t, "ip", "addr", "del", spoofed+"/32", "dev", "eth0")

	// Source MAC spoofing: a changes its MAC. The kernel flushes a's ARP
	// cache, and its ARP request for the gateway now carries a foreign MAC.
	a.NS.Run(t, "ip", "link", "set", "eth0", "address", "02:66:66:66:66:66")
	before = count(t, a, "egress", "drop-spoofed-arp")
	_, err = harness.Ask(a.NS, b.Addr(podPort), timeout)
	require.Error(t, err, "connection from a spoofed MAC must not get a reply")
	assert.Greater(t, count(t, a, "egress", "drop-spoofed-arp"), before, "spoofed ARP drop counted")
	// With the gateway's MAC pinned in a's neighbour table the IPv4 packets
	// themselves go out with the foreign MAC.
	require.NotNil(t, a.HostMAC)
	a.NS.Run(t, "ip", "neigh", "replace", node.Gateway.String(), "lladdr", a.HostMAC.String(), "dev", "eth0", "nud", "permanent")
	before = count(t, a, "egress", "drop-spoofed-source-mac")
	_, err = harness.Ask(a.NS, b.Addr(podPort), timeout)
	require.Error(t, err, "connection from a spoofed MAC must not get a reply")
	assert.Greater(t, count(t, a, "egress", "drop-spoofed-source-mac"), before, "spoofed-MAC drop counted")
	a.NS.Run(t, "ip", "link", "set", "eth0", "address", a.MAC.String())

	// With its own identity restored, a gets through again.
	requireReply(t, a.NS, b.Addr(podPort), "b")
}
