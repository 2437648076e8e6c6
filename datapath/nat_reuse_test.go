package datapath_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/progtest"
)

// A new TCP connection takes over the SNAT port of a connection that is
// over (FIN both ways, or RST) instead of waiting out its closing lifetime,
// as Linux's NAT reuses a TIME_WAIT tuple: with 2 ports, TCP_CRR to a
// remote backend would otherwise stall at 2 connections per 10 s. Ports of
// live connections are never taken, a late packet of the closed connection
// gets no translation to the new client, and a non-SYN never takes a port.
func TestPrivilegedNATPortReuseAfterClose(t *testing.T) {
	const ports = 2
	e := newHostEnvWith(t, datapath.Options{
		Host: datapath.HostOptions{SNATAddr: hostExtIP, SNATPortMin: 61000, SNATPortMax: 61000 + ports - 1}})
	e.service(t, nodePortFE(hostNodePort), lbmap.FlagNodePort, beRemote)
	est := openNATFlows(t, e, 40000, ports)
	noPort := func() uint64 {
		return counter(t, e.d, uint32(e.ext), metricsmap.DropNATNoPort, metricsmap.DirIngress).Packets
	}

	syn := func(client uint16) progtest.Result {
		return e.run(t, false, e.fromClient(hostExtIP, hostNodePort, client, progtest.TCPSyn), e.ext)
	}
	require.Equal(t, uint32(progtest.ActShot), syn(41000).Verdict, "both ports are held by established connections")
	require.EqualValues(t, 1, noPort())

	// The first connection closes: FIN from the client, FIN from the backend.
	closed := est[0]
	res := e.run(t, false, e.fromClient(hostExtIP, hostNodePort, closed.client, progtest.TCPFin|progtest.TCPAck), e.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	require.True(t, natFlowWorks(t, e, closed, progtest.TCPFin|progtest.TCPAck), "the backend's FIN reaches the client")

	// A packet that is not a SYN does not take the closed connection's port.
	res = e.run(t, false, e.fromClient(hostExtIP, hostNodePort, 41001, progtest.TCPAck), e.ext)
	assert.Equal(t, uint32(progtest.ActShot), res.Verdict, "a non-SYN of an unknown flow takes no port")

	// A new connection gets the closed one's port and works both ways.
	res = syn(41002)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "the new connection reuses the closed one's port")
	src, _, _ := addrPorts(t, res.Packet)
	assert.Equal(t, closed.port, src.Port())
	next := natFlow{client: 41002, port: src.Port()}
	assert.True(t, natFlowWorks(t, e, next, progtest.TCPSyn|progtest.TCPAck))

	// The live connection kept its port; the new one did not take it.
	assert.True(t, natFlowWorks(t, e, est[1], progtest.TCPAck), "the established connection keeps its port")
	require.Equal(t, uint32(progtest.ActShot), syn(41003).Verdict, "no port is free: both are live")

	// A late packet of the closed connection is not translated to the new
	// client: it is the old client's, and the port's entry names the new one.
	reply := progtest.Packet{SrcMAC: hostRemoteMA, DstMAC: e.rmtMAC, Src: hostRemote, Dst: hostExtIP,
		SrcPort: 8080, DstPort: closed.port, TCPFlags: progtest.TCPAck, Payload: []byte("r")}.IPv4()
	res = e.run(t, false, reply, e.rmt)
	if res.Verdict == progtest.ActRedirect {
		_, dst, _ := addrPorts(t, res.Packet)
		assert.Equal(t, next.client, dst.Port(), "the port now belongs to the new connection")
	}
	old := e.run(t, false, e.fromClient(hostExtIP, hostNodePort, closed.client, progtest.TCPAck), e.ext)
	if old.Verdict == progtest.ActRedirect {
		src, _, _ := addrPorts(t, old.Packet)
		assert.NotEqual(t, next.port, src.Port(), "the old client does not share the new connection's port")
	}
	assert.True(t, natFlowWorks(t, e, next, progtest.TCPAck), "the new connection still works")
}
