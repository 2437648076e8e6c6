package datapath_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/ctmap"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/progtest"
)

// A pod reaching a NodePort on an address of its node: from_container
// translates it like a ClusterIP flow (the NodePort's frontend is the
// wildcard 0.0.0.0:port, found because the destination is a node address),
// and the reply comes back from the node address the pod used.

var podNPNodeIP = netip.MustParseAddr("192.168.250.1")

const (
	podNPPort   = 30080
	podNPRevNAT = 7
)

func podNodePortEnv(t *testing.T, proto uint8, ids ...uint32) *datapath.Datapath {
	t.Helper()
	d := loadLB(t, datapath.Options{})
	require.NoError(t, d.LB().SetNodeAddrs([]netip.Addr{podNPNodeIP}))
	fe := lbmap.Frontend{Addr: netip.IPv4Unspecified(), Port: podNPPort, Proto: proto}
	for _, id := range ids {
		require.NoError(t, d.LB().UpsertBackend(id, lbmap.Backend{Addr: lbBackendAddr(id), Port: 8080, Proto: proto}))
	}
	require.NoError(t, d.LB().UpsertRevNAT(podNPRevNAT, fe))
	require.NoError(t, d.LB().UpsertService(fe, lbmap.Service{RevNATID: podNPRevNAT, Flags: lbmap.FlagNodePort, Backends: ids}))
	return d
}

func podPkt(mac []byte, src, dst netip.AddrPort, proto uint8, flags uint8) progtest.Packet {
	return progtest.Packet{SrcMAC: mac, DstMAC: aNodeMAC, Src: src.Addr(), Dst: dst.Addr(), Proto: l4(proto),
		SrcPort: src.Port(), DstPort: dst.Port(), TCPFlags: flags, Payload: []byte("x")}
}

func TestPrivilegedLBNodePortFromPod(t *testing.T) {
	for _, proto := range []uint8{protoTCP, protoUDP} {
		t.Run(fmt.Sprint(l4(proto)), func(t *testing.T) {
			d := podNodePortEnv(t, proto, 1)
			client := netip.AddrPortFrom(lbClient, 40000)
			np := netip.AddrPortFrom(podNPNodeIP, podNPPort)
			backend := netip.AddrPortFrom(lbLocal, 8080)

			res := progtest.Run(t, d.FromContainer(), podPkt(aMAC, client, np, proto, progtest.TCPSyn).IPv4(), aIfindex)
			require.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "delivered into the backend pod")
			src, dst := addrPortsOf(t, res.Packet)
			assert.Equal(t, client, src)
			assert.Equal(t, backend, dst)
			checkSums(t, res.Packet)
			assert.EqualValues(t, 1, counter(t, d, aIfindex, metricsmap.ReasonLBTranslated, metricsmap.DirEgress).Packets)
			rev := natEntries(t, d, ctmap.NATRevDNAT)
			require.Len(t, rev, 1)
			assert.Equal(t, np, rev[0].Frontend)

			// The backend's reply comes from the node address and NodePort.
			res = progtest.Run(t, d.FromContainer(), podPkt(lbLocalMAC, backend, client, proto, progtest.TCPSyn|progtest.TCPAck).IPv4(), aIfindex)
			require.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "reply delivered into the client")
			src, dst = addrPortsOf(t, res.Packet)
			assert.Equal(t, np, src)
			assert.Equal(t, client, dst)
			checkSums(t, res.Packet)
			assert.EqualValues(t, 1, counter(t, d, aIfindex, metricsmap.ReasonLBRevNAT, metricsmap.DirEgress).Packets)

			// Not a node address, or no NodePort on that port: untouched.
			for _, other := range []netip.AddrPort{
				netip.AddrPortFrom(netip.MustParseAddr("10.1.2.3"), podNPPort),
				netip.AddrPortFrom(podNPNodeIP, podNPPort+1),
			} {
				res = progtest.Run(t, d.FromContainer(), podPkt(aMAC, client, other, proto, progtest.TCPSyn).IPv4(), aIfindex)
				require.Equal(t, uint32(progtest.ActOK), res.Verdict, "%s: to the stack", other)
				_, dst = addrPortsOf(t, res.Packet)
				assert.Equal(t, other, dst)
			}
			assert.EqualValues(t, 1, counter(t, d, aIfindex, metricsmap.ReasonLBTranslated, metricsmap.DirEgress).Packets)
		})
	}
}

// The backend pod reaching its own NodePort: hairpin on top of NodePort.
func TestPrivilegedLBNodePortFromPodHairpin(t *testing.T) {
	d := podNodePortEnv(t, protoTCP, 1)
	pod := netip.AddrPortFrom(lbLocal, 40000)
	np := netip.AddrPortFrom(podNPNodeIP, podNPPort)
	backend := netip.AddrPortFrom(lbLocal, 8080)
	snat := netip.AddrPortFrom(datapath.DefaultHairpinIPv4, pod.Port())

	res := progtest.Run(t, d.FromContainer(), podPkt(lbLocalMAC, pod, np, protoTCP, progtest.TCPSyn).IPv4(), aIfindex)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	src, dst := addrPortsOf(t, res.Packet)
	assert.Equal(t, snat, src)
	assert.Equal(t, backend, dst)
	checkSums(t, res.Packet)

	res = progtest.Run(t, d.FromContainer(), podPkt(lbLocalMAC, backend, snat, protoTCP, progtest.TCPSyn|progtest.TCPAck).IPv4(), aIfindex)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	src, dst = addrPortsOf(t, res.Packet)
	assert.Equal(t, np, src)
	assert.Equal(t, pod, dst)
	checkSums(t, res.Packet)
}

// A backend reached through the stack answers into the client pod through
// to_container, from the node address.
func TestPrivilegedLBNodePortFromPodRemoteBackend(t *testing.T) {
	d := podNodePortEnv(t, protoTCP, 11)
	client := netip.AddrPortFrom(lbClient, 40000)
	np := netip.AddrPortFrom(podNPNodeIP, podNPPort)
	backend := netip.AddrPortFrom(lbRemote[1], 8080)

	res := progtest.Run(t, d.FromContainer(), podPkt(aMAC, client, np, protoTCP, progtest.TCPSyn).IPv4(), aIfindex)
	require.Equal(t, uint32(progtest.ActOK), res.Verdict, "to the stack")
	_, dst := addrPortsOf(t, res.Packet)
	assert.Equal(t, backend, dst)

	reply := progtest.Packet{SrcMAC: aNodeMAC, DstMAC: aMAC, Src: backend.Addr(), Dst: client.Addr(), SrcPort: backend.Port(),
		DstPort: client.Port(), TCPFlags: progtest.TCPSyn | progtest.TCPAck, Payload: []byte("x")}
	res = progtest.Run(t, d.ToContainer(), reply.IPv4(), aIfindex)
	require.Equal(t, uint32(progtest.ActOK), res.Verdict)
	src, dst := addrPortsOf(t, res.Packet)
	assert.Equal(t, np, src)
	assert.Equal(t, client, dst)
	checkSums(t, res.Packet)
}
