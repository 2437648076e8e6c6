package datapath_test

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/endpointmap"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/test/harness"
)

// TestPrivilegedRevNATAfterBackendGoneAndRestart: the backend filter
// (bpf/lib/addr_filter.h) keeps a deleted backend's address while conntrack
// remembers its flows, also across an agent restart, which rebuilds the
// filter from the backends map (where the backend no longer is) and the
// conntrack map. The backend's reply to a flow translated before is still
// reverse-NATed afterwards.
func TestPrivilegedRevNATAfterBackendGoneAndRestart(t *testing.T) {
	harness.RequirePrivileged(t)
	fs := harness.BPFFS(t)
	d := progtest.Load(t, fs, datapath.Options{})
	for _, ep := range []endpointmap.Endpoint{
		{IP: lbClient, Ifindex: aIfindex, ID: 1, MAC: aMAC, NodeMAC: aNodeMAC},
		{IP: lbLocal, Ifindex: aIfindex, ID: 2, MAC: lbLocalMAC, NodeMAC: aNodeMAC},
	} {
		require.NoError(t, d.Endpoints().Upsert(ep))
	}
	fe := lbService(t, d, protoTCP, 0, 0, 1)
	res, dst := runFwd(t, d, toVIP(lbClient, protoTCP, 40000, progtest.TCPSyn))
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	require.Equal(t, netip.AddrPortFrom(lbLocal, 8080), dst)

	// The backend goes (its pod is terminating), then the agent restarts.
	require.NoError(t, d.LB().DeleteBackend(1))
	require.NoError(t, d.Close())
	d = progtest.Load(t, fs, datapath.Options{})

	reply := progtest.Packet{SrcMAC: lbLocalMAC, DstMAC: aNodeMAC, Src: lbLocal, Dst: lbClient,
		SrcPort: 8080, DstPort: 40000, TCPFlags: progtest.TCPSyn | progtest.TCPAck, Payload: []byte("backend")}
	res = progtest.Run(t, d.FromContainer(), reply.IPv4(), aIfindex)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	out := progtest.Decode(t, res.Packet)
	src, _ := netip.AddrFromSlice(out.IP.SrcIP)
	assert.Equal(t, fe.Addr, src, "reply comes from the frontend")
	assert.EqualValues(t, fe.Port, out.TCP.SrcPort)
}
