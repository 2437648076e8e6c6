package datapath_test

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/test/harness"
)

// Hairpin: a pod that is the backend of the service it connects to. The
// translated packet would go from the pod's address to itself (a martian to
// the pod), so from_container SNATs it to the hairpin address, and the
// pod's reply to that address is translated back on both addresses.

// hairpinPkt is a packet lbLocal sends out of its eth0.
func hairpinPkt(src, dst netip.AddrPort, proto uint8, flags uint8, payload string) progtest.Packet {
	return progtest.Packet{SrcMAC: lbLocalMAC, DstMAC: aNodeMAC, Src: src.Addr(), Dst: dst.Addr(), Proto: l4(proto),
		SrcPort: src.Port(), DstPort: dst.Port(), TCPFlags: flags, Payload: []byte(payload)}
}

func addrPortsOf(t *testing.T, pkt []byte) (src, dst netip.AddrPort) {
	t.Helper()
	out := progtest.Decode(t, pkt)
	s, _ := netip.AddrFromSlice(out.IP.SrcIP)
	d, _ := netip.AddrFromSlice(out.IP.DstIP)
	switch {
	case out.TCP != nil:
		return netip.AddrPortFrom(s, uint16(out.TCP.SrcPort)), netip.AddrPortFrom(d, uint16(out.TCP.DstPort))
	case out.UDP != nil:
		return netip.AddrPortFrom(s, uint16(out.UDP.SrcPort)), netip.AddrPortFrom(d, uint16(out.UDP.DstPort))
	}
	t.Fatal("neither TCP nor UDP")
	return
}

func testHairpin(t *testing.T, opts datapath.Options, hairpin netip.Addr, proto uint8) {
	d := loadLB(t, opts)
	fe := lbService(t, d, proto, 0, 0, 1)
	vip := netip.AddrPortFrom(fe.Addr, fe.Port)
	pod := netip.AddrPortFrom(lbLocal, 40000)
	backend := netip.AddrPortFrom(lbLocal, 8080)
	snat := netip.AddrPortFrom(hairpin, pod.Port())
	hdrs := 14 + 20 + 8
	if proto == protoTCP {
		hdrs = 14 + 20 + 20
	}

	// The pod's first packet to the VIP: DNAT to itself, SNAT to the
	// hairpin address (same port), delivered back into the pod.
	in := hairpinPkt(pod, vip, proto, progtest.TCPSyn, "ping")
	res := progtest.Run(t, d.FromContainer(), in.IPv4(), aIfindex)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "delivered into the pod")
	src, dst := addrPortsOf(t, res.Packet)
	assert.Equal(t, snat, src, "source is the hairpin address")
	assert.Equal(t, backend, dst)
	assert.Equal(t, lbLocalMAC, progtest.Decode(t, res.Packet).Eth.DstMAC)
	assert.Equal(t, in.IPv4()[hdrs:], res.Packet[hdrs:], "payload untouched")
	checkSums(t, res.Packet)
	assert.EqualValues(t, 1, counter(t, d, aIfindex, metricsmap.ReasonLBTranslated, metricsmap.DirEgress).Packets)

	// Conntrack: the service entry in the pod's orientation, the backend
	// entry keyed by the hairpin address (carrying the reverse NAT and the
	// policy mark), and no entry pod -> pod.
	var sawService, sawBackend bool
	for _, c := range ctEntries(t, d) {
		if c.Service {
			continue
		}
		assert.NotEqual(t, pod, c.Src, "no entry from the pod's own address but the service entry: %+v", c)
		if c.Src == snat && c.Dst == backend {
			sawBackend = true
			assert.EqualValues(t, lbRevNAT, c.RevNATID)
			assert.EqualValues(t, 1, c.BackendID)
			assert.True(t, c.PolicyAllowed)
		}
	}
	for _, c := range ctEntries(t, d) {
		if c.Service && c.Src == pod && c.Dst == vip {
			sawService = true
		}
	}
	assert.True(t, sawService, "service entry pod -> VIP")
	assert.True(t, sawBackend, "backend entry hairpin -> pod")

	// The pod answers the hairpin address: the reply comes from the VIP
	// and goes to the pod's own address.
	reply := hairpinPkt(backend, snat, proto, progtest.TCPSyn|progtest.TCPAck, "pong")
	res = progtest.Run(t, d.FromContainer(), reply.IPv4(), aIfindex)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "reply delivered into the pod")
	src, dst = addrPortsOf(t, res.Packet)
	assert.Equal(t, vip, src, "reply comes from the frontend")
	assert.Equal(t, pod, dst, "reply goes to the pod")
	assert.Equal(t, lbLocalMAC, progtest.Decode(t, res.Packet).Eth.DstMAC)
	assert.Equal(t, reply.IPv4()[hdrs:], res.Packet[hdrs:], "payload untouched")
	checkSums(t, res.Packet)
	assert.EqualValues(t, 1, counter(t, d, aIfindex, metricsmap.ReasonLBRevNAT, metricsmap.DirEgress).Packets)

	// A later packet of the flow keeps the translation.
	res = progtest.Run(t, d.FromContainer(), hairpinPkt(pod, vip, proto, progtest.TCPAck, "more").IPv4(), aIfindex)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	src, dst = addrPortsOf(t, res.Packet)
	assert.Equal(t, snat, src)
	assert.Equal(t, backend, dst)
	checkSums(t, res.Packet)

	// Another client of the same backend is not SNATed.
	res, got := runFwd(t, d, toVIP(lbClient, proto, 40000, progtest.TCPSyn))
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	assert.Equal(t, backend, got)
	src, _ = addrPortsOf(t, res.Packet)
	assert.Equal(t, netip.AddrPortFrom(lbClient, 40000), src)
}

func TestPrivilegedLBHairpin(t *testing.T) {
	for _, proto := range []uint8{protoTCP, protoUDP} {
		t.Run(fmt.Sprint(l4(proto)), func(t *testing.T) {
			testHairpin(t, datapath.Options{}, datapath.DefaultHairpinIPv4, proto)
		})
	}
}

func TestPrivilegedLBHairpinAddressOption(t *testing.T) {
	addr := netip.MustParseAddr("169.254.7.7")
	testHairpin(t, datapath.Options{HairpinIPv4: addr}, addr, protoTCP)

	_, err := datapath.Load(filepath.Join(harness.BPFFS(t), "sluice"), datapath.Options{HairpinIPv4: netip.MustParseAddr("10.0.0.1")})
	assert.ErrorContains(t, err, "link-local")
}
