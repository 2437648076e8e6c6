package datapath_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/ctmap"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/progtest"
)

// The one load-balancing path with conntrack (bpf/lib/lb_ct.h lb4_local),
// seen from both programs that use it: the pod programs (ClusterIP) and the
// host device (NodePort). Each test runs the same flow through both.

// flowEntries returns the service entry and the backend entry (to backend)
// of the flow from client, failing when one is missing.
func flowEntries(t *testing.T, d *datapath.Datapath, client, backend netip.AddrPort) (svc, be ctmap.Entry) {
	t.Helper()
	cts, err := d.CT().Entries()
	require.NoError(t, err)
	var foundSvc, foundBe bool
	for _, c := range cts {
		switch {
		case c.Src != client:
		case c.Service:
			svc, foundSvc = c, true
		case c.Dst == backend:
			be, foundBe = c, true
		}
	}
	require.True(t, foundSvc, "service entry of %s in %+v", client, cts)
	require.True(t, foundBe, "backend entry %s -> %s in %+v", client, backend, cts)
	return svc, be
}

// A service deleted and created again on the same frontend gets a new
// reverse-NAT id from the agent, and may be another Service reusing the
// ClusterIP. A flow whose service entry names the earlier service's id
// (and a backend that still exists) is a new flow of the new service: it gets
// a backend of the new service and its entries carry the new id, so that
// the replies are reverse-NATed (the old id no longer resolves).
func TestPrivilegedLBCTRecreatedServicePod(t *testing.T) {
	d := loadLB(t, datapath.Options{})
	fe := lbService(t, d, protoTCP, 0, 0, 10)
	client := netip.AddrPortFrom(lbClient, 40000)
	_, dst := runFwd(t, d, toVIP(lbClient, protoTCP, client.Port(), progtest.TCPSyn))
	require.Equal(t, netip.AddrPortFrom(lbRemote[0], 8080), dst)

	// Backend 10 stays (another service may use it).
	require.NoError(t, d.LB().DeleteService(fe))
	require.NoError(t, d.LB().DeleteRevNAT(lbRevNAT))
	require.NoError(t, d.LB().UpsertBackend(11, lbmap.Backend{Addr: lbRemote[1], Port: 8080, Proto: protoTCP}))
	const newRevNAT = lbRevNAT + 1
	require.NoError(t, d.LB().UpsertRevNAT(newRevNAT, fe))
	require.NoError(t, d.LB().UpsertService(fe, lbmap.Service{RevNATID: newRevNAT, Backends: []uint32{11}}))

	res, dst := runFwd(t, d, toVIP(lbClient, protoTCP, client.Port(), progtest.TCPAck))
	require.Equal(t, uint32(progtest.ActOK), res.Verdict)
	assert.Equal(t, netip.AddrPortFrom(lbRemote[1], 8080), dst, "a backend of the new service")
	svc, be := flowEntries(t, d, client, dst)
	assert.EqualValues(t, newRevNAT, svc.RevNATID, "service entry")
	assert.EqualValues(t, 11, svc.BackendID)
	assert.EqualValues(t, newRevNAT, be.RevNATID, "backend entry: the pod programs reverse-NAT by it")

	reply := progtest.Packet{SrcMAC: aNodeMAC, DstMAC: aMAC, Src: dst.Addr(), Dst: lbClient, SrcPort: dst.Port(),
		DstPort: client.Port(), TCPFlags: progtest.TCPAck, Payload: []byte("x")}
	res = progtest.Run(t, d.ToContainer(), reply.IPv4(), aIfindex)
	require.Equal(t, uint32(progtest.ActOK), res.Verdict)
	src, _ := addrPortsOf(t, res.Packet)
	assert.Equal(t, netip.AddrPortFrom(fe.Addr, fe.Port), src, "reply comes from the frontend")
}

func TestPrivilegedLBCTRecreatedServiceNodePort(t *testing.T) {
	e := newHostEnv(t)
	fe := nodePortFE(hostNodePort)
	e.service(t, fe, lbmap.FlagNodePort, beLocal)
	res := e.run(t, false, e.fromClient(hostExtIP, hostNodePort, 40000, progtest.TCPSyn), e.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	_, dst, _ := addrPorts(t, res.Packet)
	require.Equal(t, netip.AddrPortFrom(hostPod, 8080), dst)

	require.NoError(t, e.d.LB().DeleteService(fe))
	require.NoError(t, e.d.LB().DeleteRevNAT(e.nextRevNAT-1))
	e.service(t, fe, lbmap.FlagNodePort, beRemote)
	newRevNAT := e.nextRevNAT - 1

	res = e.run(t, false, e.fromClient(hostExtIP, hostNodePort, 40000, progtest.TCPAck), e.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	src, dst, _ := addrPorts(t, res.Packet)
	assert.Equal(t, netip.AddrPortFrom(hostRemote, 8080), dst, "a backend of the new service")
	assert.Equal(t, hostExtIP, src.Addr(), "SNATed to the remote backend")
	assert.EqualValues(t, 1, counter(t, e.d, uint32(e.ext), metricsmap.ReasonLBSNAT, metricsmap.DirIngress).Packets)
	svc, be := flowEntries(t, e.d, netip.AddrPortFrom(hostClient, 40000), netip.AddrPortFrom(hostRemote, 8080))
	assert.Equal(t, newRevNAT, svc.RevNATID, "service entry")
	assert.EqualValues(t, beRemote, svc.BackendID)
	assert.Zero(t, be.RevNATID, "backend entry: the host device reverse-NATs by the NAT map")
}

// A TCP SYN on the tuple of a closing flow is a new connection: it gets a
// new backend (here the only one the service now has), where a straggler
// of the closing flow keeps the old one. Same reverse-NAT id throughout.
func TestPrivilegedLBCTClosingTupleReusedPod(t *testing.T) {
	d := loadLB(t, datapath.Options{})
	fe := lbService(t, d, protoTCP, 0, 0, 10)
	client := netip.AddrPortFrom(lbClient, 40000)
	_, dst := runFwd(t, d, toVIP(lbClient, protoTCP, client.Port(), progtest.TCPSyn))
	require.Equal(t, lbRemote[0], dst.Addr())
	_, dst = runFwd(t, d, toVIP(lbClient, protoTCP, client.Port(), progtest.TCPRst|progtest.TCPAck))
	require.Equal(t, lbRemote[0], dst.Addr())
	svc, be := flowEntries(t, d, client, dst)
	assert.True(t, svc.Closing, "the service entry follows the backend entry")
	assert.True(t, be.Closing)
	assert.LessOrEqual(t, svc.Expires, 10*time.Second, "closing lifetime")

	lbService(t, d, protoTCP, 0, 0, 11) // backend 10 still exists
	_, dst = runFwd(t, d, toVIP(lbClient, protoTCP, client.Port(), progtest.TCPAck))
	assert.Equal(t, lbRemote[0], dst.Addr(), "a late packet of the closing flow keeps its backend")
	_, dst = runFwd(t, d, toVIP(lbClient, protoTCP, client.Port(), progtest.TCPSyn))
	assert.Equal(t, lbRemote[1], dst.Addr(), "a new connection on the tuple")
	svc, be = flowEntries(t, d, client, dst)
	assert.False(t, svc.Closing)
	assert.False(t, be.Closing)
	assert.EqualValues(t, 11, svc.BackendID)
	assert.Equal(t, netip.AddrPortFrom(fe.Addr, fe.Port), svc.Dst)
}

func TestPrivilegedLBCTClosingTupleReusedNodePort(t *testing.T) {
	e := newHostEnv(t)
	fe := nodePortFE(hostNodePort)
	e.service(t, fe, lbmap.FlagNodePort, beRemote)
	revNAT := e.nextRevNAT - 1
	client := netip.AddrPortFrom(hostClient, 40000)
	remote := netip.AddrPortFrom(hostRemote, 8080)
	for _, flags := range []uint8{progtest.TCPSyn, progtest.TCPRst | progtest.TCPAck} {
		res := e.run(t, false, e.fromClient(hostExtIP, hostNodePort, client.Port(), flags), e.ext)
		require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
		_, dst, _ := addrPorts(t, res.Packet)
		require.Equal(t, remote, dst)
	}
	svc, be := flowEntries(t, e.d, client, remote)
	assert.True(t, svc.Closing, "the service entry follows the backend entry")
	assert.True(t, be.Closing)
	assert.LessOrEqual(t, svc.Expires, 10*time.Second, "closing lifetime")

	require.NoError(t, e.d.LB().UpsertService(fe, lbmap.Service{RevNATID: revNAT, Flags: lbmap.FlagNodePort, Backends: []uint32{beLocal}}))
	res := e.run(t, false, e.fromClient(hostExtIP, hostNodePort, client.Port(), progtest.TCPAck), e.ext)
	_, dst, _ := addrPorts(t, res.Packet)
	assert.Equal(t, remote, dst, "a late packet of the closing flow keeps its backend")
	res = e.run(t, false, e.fromClient(hostExtIP, hostNodePort, client.Port(), progtest.TCPSyn), e.ext)
	_, dst, _ = addrPorts(t, res.Packet)
	assert.Equal(t, netip.AddrPortFrom(hostPod, 8080), dst, "a new connection on the tuple")
	svc, be = flowEntries(t, e.d, client, dst)
	assert.False(t, svc.Closing)
	assert.False(t, be.Closing)
	assert.EqualValues(t, beLocal, svc.BackendID)
}

// Conntrack knows a flow is established from its reply, which only the
// backend entry sees; the service entry follows it (on the reply and on
// the next packet), so both keep the established lifetime.
func TestPrivilegedLBCTServiceEntryFollowsReply(t *testing.T) {
	established := time.Hour // ct_lifetime_tcp is 6h; SYN lifetime 60s
	t.Run("pod", func(t *testing.T) {
		d := loadLB(t, datapath.Options{})
		lbService(t, d, protoTCP, 0, 0, 10)
		client := netip.AddrPortFrom(lbClient, 40000)
		_, dst := runFwd(t, d, toVIP(lbClient, protoTCP, client.Port(), progtest.TCPSyn))
		svc, _ := flowEntries(t, d, client, dst)
		assert.LessOrEqual(t, svc.Expires, time.Minute)

		reply := progtest.Packet{SrcMAC: aNodeMAC, DstMAC: aMAC, Src: dst.Addr(), Dst: lbClient, SrcPort: dst.Port(),
			DstPort: client.Port(), TCPFlags: progtest.TCPSyn | progtest.TCPAck, Payload: []byte("x")}
		res := progtest.Run(t, d.ToContainer(), reply.IPv4(), aIfindex)
		require.Equal(t, uint32(progtest.ActOK), res.Verdict)
		svc, be := flowEntries(t, d, client, dst)
		assert.Greater(t, be.Expires, established)
		assert.Greater(t, svc.Expires, established, "service entry after the reply")

		runFwd(t, d, toVIP(lbClient, protoTCP, client.Port(), progtest.TCPAck))
		svc, be = flowEntries(t, d, client, dst)
		assert.Greater(t, svc.Expires, established)
		assert.Equal(t, uint64(3), be.Packets)
		assert.Equal(t, uint64(3), svc.Packets)
	})
	t.Run("nodeport", func(t *testing.T) {
		e := newHostEnv(t)
		e.service(t, nodePortFE(hostNodePort), lbmap.FlagNodePort, beRemote)
		client := netip.AddrPortFrom(hostClient, 40000)
		remote := netip.AddrPortFrom(hostRemote, 8080)
		res := e.run(t, false, e.fromClient(hostExtIP, hostNodePort, client.Port(), progtest.TCPSyn), e.ext)
		require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
		src, _, _ := addrPorts(t, res.Packet)
		svc, _ := flowEntries(t, e.d, client, remote)
		assert.LessOrEqual(t, svc.Expires, time.Minute)

		reply := progtest.Packet{SrcMAC: hostRemoteMA, DstMAC: e.rmtMAC, Src: hostRemote, Dst: hostExtIP,
			SrcPort: 8080, DstPort: src.Port(), TCPFlags: progtest.TCPSyn | progtest.TCPAck, Payload: []byte("x")}.IPv4()
		res = e.run(t, false, reply, e.rmt)
		require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
		svc, be := flowEntries(t, e.d, client, remote)
		assert.Greater(t, be.Expires, established)
		assert.Greater(t, svc.Expires, established, "service entry after the reply")

		e.run(t, false, e.fromClient(hostExtIP, hostNodePort, client.Port(), progtest.TCPAck), e.ext)
		svc, be = flowEntries(t, e.d, client, remote)
		assert.Greater(t, svc.Expires, established)
		assert.Equal(t, uint64(3), be.Packets)
		assert.Equal(t, uint64(3), svc.Packets)
	})
}
