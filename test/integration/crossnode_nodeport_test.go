package integration

import (
	"fmt"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/test/harness"
)

// requireNodePortToRemoteBackend programs, on node 1, a NodePort Service
// whose only backend is pod-b on node 2 and asks it from the outside client
// (c.ext) at node 1's ext0 address: node 1's host program DNATs to pod-b,
// SNATs to its node IP and forwards across the nodes' routing (in VXLAN mode
// a route with a tunnel encap, which the FIB helper does not resolve); pod-b's
// reply comes back to node 1's node IP over the underlay, is reverse-NATed
// there and leaves through ext0. The reply names the backend.
func (c *twoNodes) requireNodePortToRemoteBackend(t *testing.T) {
	t.Helper()
	const nodePort = 30081
	writeManifest(t, c.n1, "np-remote.yaml", nodePortYAML("np-remote", "10.96.0.81", nodePort, false, "")+
		sliceYAML("np-remote", [5]string{c.p2.IP.String(), c.n2.Name, "true", "true", "false"}))
	waitBackends(t, c.n1, fmt.Sprintf("0.0.0.0:%d", nodePort), 1)
	addr := fmt.Sprintf("%s:%d", npNodeIP, nodePort)
	require.Equal(t, map[string]int{"pod-b": 5}, askMany(t, c.ext, addr, 5), "NodePort %s from outside to pod-b on node 2", addr)
}

func TestPrivilegedCrossNodeNodePortNative(t *testing.T) {
	c := newTwoNodesWith(t, twoNodesOptions{routing: "native", external: true})
	waitRoute(t, c.n1, c.n2.PodCIDR.String(), "via "+c.ul.AddrB.String())
	c.requireNodePortToRemoteBackend(t)
}

// In VXLAN mode the route to node 2's PodCIDR carries a lightweight-tunnel
// encap: the host program hands the packet to sluice_vxlan (its ifindex in
// sluice_tunnel_v1, written by the node manager) for the kernel to route
// and encapsulate; the request crosses the underlay inside VXLAN (pod-b's
// reply to node 1's IP is no pod-to-pod packet and takes the underlay's
// plain route, as before).
func TestPrivilegedCrossNodeNodePortVXLAN(t *testing.T) {
	c := newTwoNodesWith(t, twoNodesOptions{routing: "vxlan", external: true})
	waitRoute(t, c.n1, c.n2.PodCIDR.String(), "encap ip id 1", "dev sluice_vxlan")
	capUL := startCapture(t, c.n1.NS, c.ul.IfName)
	c.requireNodePortToRemoteBackend(t)
	seen := capUL.stop()
	require.Positive(t, seen.vxlanTo[c.p2.IP], "NodePort requests to pod-b in VXLAN on the underlay: %s", seen)

	// Restarted, the agent adopts its pinned programs and the tunnel
	// device stays recorded.
	c.n1.Agent().Stop(t)
	c.n1.StartAgentWith(t, harness.AgentOptions{Args: c.agentArgs(c.n1)})
	c.requireNodePortToRemoteBackend(t)
}

// With --lb-acceleration native on node 1, its XDP program translates the
// NodePort flow to pod-b on node 2 and pod-b's replies: the same answers,
// and the XDP counters of node 1's ext0 (requests) and underlay (replies)
// move. The outside client's and node 2's veth ends run an XDP program and
// send full checksums (see nodeport_xdp_test.go).
func TestPrivilegedCrossNodeNodePortXDP(t *testing.T) {
	c := newTwoNodesWith(t, twoNodesOptions{routing: "native", external: true, lbAcceleration: "native"})
	harness.XDPPeer(t, c.ext, "eth0")
	harness.XDPPeer(t, c.n2.NS, c.ul.IfName)
	waitRoute(t, c.n1, c.n2.PodCIDR.String(), "via "+c.ul.AddrB.String())
	st, err := c.n1.Client().Status(t.Context())
	require.NoError(t, err)
	require.Equal(t, map[string]string{"ext0": "xdp native", c.ul.IfName: "xdp native"}, st.KubeProxy.NodePortXDP)

	counter := func(dev string, r metricsmap.Reason) uint64 {
		var idx uint32
		c.n1.NS.Do(t, func() {
			ifc, err := net.InterfaceByName(dev)
			require.NoError(t, err)
			idx = uint32(ifc.Index)
		})
		cs, err := metricsmap.PinnedCounters(c.n1.BPFRoot)
		require.NoError(t, err)
		var n uint64
		for _, x := range cs {
			if x.Ifindex == idx && x.Reason == r && x.Direction == metricsmap.DirIngress {
				n += x.Packets
			}
		}
		return n
	}
	fwd, rev := counter("ext0", metricsmap.ReasonXDPLBSNAT), counter(c.ul.IfName, metricsmap.ReasonXDPLBRevSNAT)
	c.requireNodePortToRemoteBackend(t)
	require.GreaterOrEqual(t, counter("ext0", metricsmap.ReasonXDPLBSNAT)-fwd, uint64(10), "requests translated by XDP on ext0")
	require.GreaterOrEqual(t, counter(c.ul.IfName, metricsmap.ReasonXDPLBRevSNAT)-rev, uint64(10), "replies translated by XDP on the underlay")
}
