package datapath_test

import (
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/progtest"
)

// A NodePort backend on another node in VXLAN routing mode: the route to its
// PodCIDR carries a lightweight-tunnel encap on a collect-metadata VXLAN
// device (as agent/nodemgr installs it), which bpf_fib_lookup does not
// resolve (BPF_FIB_LKUP_RET_UNSUPP_LWT). Without a tunnel device recorded
// the flow is dropped (drop-no-route); with sluice_tunnel_v1 naming the
// device it is translated and redirected (bpf_redirect_neigh to the device,
// the kernel routing and encapsulating: not carried out by a test run).
func TestPrivilegedHostNodePortTunnelBackend(t *testing.T) {
	e := newHostEnv(t)
	const beTunnel = 3
	tunnelPod := netip.MustParseAddr("10.244.9.5")
	for _, args := range [][]string{
		{"ip", "link", "add", "sl-vx0", "type", "vxlan", "external", "dstport", "8472"},
		{"ip", "link", "set", "sl-vx0", "up"},
		{"ip", "route", "add", "10.244.9.0/24", "encap", "ip", "id", "1", "dst", hostRemote.String(),
			"via", "10.244.9.0", "dev", "sl-vx0", "onlink"},
	} {
		e.ns.Run(t, args[0], args[1:]...)
	}
	var vx int
	e.ns.Do(t, func() {
		ifc, err := net.InterfaceByName("sl-vx0")
		require.NoError(t, err)
		vx = ifc.Index
	})
	require.NoError(t, e.d.LB().UpsertBackend(beTunnel, lbmap.Backend{Addr: tunnelPod, Port: 8080, Proto: protoTCP}))
	e.service(t, nodePortFE(hostNodePort), lbmap.FlagNodePort, beTunnel)

	got, err := e.d.TunnelDevice()
	require.NoError(t, err)
	require.Zero(t, got, "no tunnel device recorded at load")
	res := e.run(t, false, e.fromClient(hostExtIP, hostNodePort, 40000, progtest.TCPSyn), e.ext)
	assert.Equal(t, uint32(progtest.ActShot), res.Verdict, "encap route without a tunnel device")
	assert.Equal(t, uint64(1), counter(t, e.d, uint32(e.ext), metricsmap.DropNoRoute, metricsmap.DirIngress).Packets)

	require.NoError(t, e.d.SetTunnelDevice(vx))
	got, err = e.d.TunnelDevice()
	require.NoError(t, err)
	require.Equal(t, vx, got)
	res = e.run(t, false, e.fromClient(hostExtIP, hostNodePort, 40001, progtest.TCPSyn), e.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "handed to the tunnel device")
	src, dst, ttl := addrPorts(t, res.Packet)
	assert.Equal(t, hostExtIP, src.Addr(), "SNAT to the node IP")
	assert.Equal(t, netip.AddrPortFrom(tunnelPod, 8080), dst)
	assert.Equal(t, uint8(63), ttl)
	checkSums(t, res.Packet)
	assert.Equal(t, uint64(1), counter(t, e.d, uint32(e.ext), metricsmap.ReasonLBSNAT, metricsmap.DirIngress).Packets)
	assert.Equal(t, uint64(1), counter(t, e.d, uint32(e.ext), metricsmap.DropNoRoute, metricsmap.DirIngress).Packets,
		"no further drop")

	// A route without encap is still resolved by the FIB helper, tunnel
	// device recorded or not (remote backend on rmt0, MACs rewritten).
	require.NoError(t, e.d.LB().UpsertBackend(beRemote, lbmap.Backend{Addr: hostRemote, Port: 8080, Proto: protoTCP}))
	e.service(t, nodePortFE(hostNodePort+1), lbmap.FlagNodePort, beRemote)
	res = e.run(t, false, e.fromClient(hostExtIP, hostNodePort+1, 40002, progtest.TCPSyn), e.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	dmac, _ := macs(t, res.Packet)
	assert.Equal(t, hostRemoteMA, dmac, "FIB neighbour")

	require.NoError(t, e.d.SetTunnelDevice(0))
	require.Error(t, e.d.SetTunnelDevice(-1))
}
