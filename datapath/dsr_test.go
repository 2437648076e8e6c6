package datapath_test

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/ctmap"
	"github.com/sluicenet/sluice/datapath/device"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/progtest"
)

// dsrOtherNode is the receiving node of a DSR flow as the backend's node
// sees it in the inner destination: a NodePort frontend on another node.
var dsrOtherNode = netip.MustParseAddr("192.168.250.99")

func newDSREnv(t testing.TB, mode datapath.LBMode) *hostEnv {
	t.Helper()
	return newHostEnvWith(t, datapath.Options{Host: datapath.HostOptions{SNATAddr: hostExtIP, LBMode: mode}})
}

// ipip wraps the IPv4 packet of frame inner (Ethernet) in an outer header
// src -> dst with IP ID id, as the receiving node does.
func ipip(t testing.TB, inner []byte, src, dst netip.Addr, id uint16) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: hostRemoteMA, DstMAC: inner[0:6], EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolIPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice(),
		Id: id, Flags: layers.IPv4DontFragment}
	buf := gopacket.NewSerializeBuffer()
	require.NoError(t, gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, gopacket.Payload(inner[14:])))
	return buf.Bytes()
}

// decapped is the frame of an IP-in-IP frame with its outer header removed.
func decapped(pkt []byte) []byte {
	return append(append([]byte{}, pkt[:14]...), pkt[34:]...)
}

// synAck is a TCP SYN-ACK src -> dst with an MSS option.
func synAck(t testing.TB, src, dst netip.AddrPort, mss uint16) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: hostPodNode, DstMAC: hostClientMA, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice(),
		Flags: layers.IPv4DontFragment}
	m := make([]byte, 2)
	binary.BigEndian.PutUint16(m, mss)
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), SYN: true, ACK: true, Seq: 7, Ack: 2, Window: 64240,
		Options: []layers.TCPOption{
			{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: m},
			{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
			{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
		}}
	require.NoError(t, tcp.SetNetworkLayerForChecksum(ip))
	buf := gopacket.NewSerializeBuffer()
	require.NoError(t, gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp))
	return buf.Bytes()
}

func mssOf(t testing.TB, pkt []byte) uint16 {
	t.Helper()
	d := progtest.Decode(t, pkt)
	require.NotNil(t, d.TCP)
	for _, o := range d.TCP.Options {
		if o.OptionType == layers.TCPOptionKindMSS {
			return binary.BigEndian.Uint16(o.OptionData)
		}
	}
	t.Fatal("no MSS option")
	return 0
}

// The receiving node: a flow to a remote backend goes IP-in-IP, the client's
// packet unchanged inside (but for its TTL), with no SNAT entries; hybrid
// does so for TCP only.
func TestPrivilegedHostDSREncap(t *testing.T) {
	for _, mode := range []datapath.LBMode{datapath.LBModeDSR, datapath.LBModeHybrid} {
		t.Run(string(mode), func(t *testing.T) {
			e := newDSREnv(t, mode)
			e.service(t, nodePortFE(hostNodePort), lbmap.FlagNodePort, beRemote)

			in := e.fromClient(hostExtIP, hostNodePort, 40000, progtest.TCPSyn)
			res := e.run(t, false, in, e.ext)
			require.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "forwarded to rmt0")
			require.Len(t, res.Packet, len(in)+20)
			d := progtest.Decode(t, res.Packet)
			require.NotNil(t, d.IP)
			assert.Equal(t, layers.IPProtocolIPv4, d.IP.Protocol, "IP-in-IP")
			assert.Equal(t, hostExtIP.AsSlice(), []byte(d.IP.SrcIP.To4()), "outer source: the node")
			assert.Equal(t, hostRemote.AsSlice(), []byte(d.IP.DstIP.To4()), "outer destination: the backend")
			assert.Equal(t, uint16(8080), d.IP.Id, "outer ID: the backend port")
			assert.Equal(t, layers.IPv4DontFragment, d.IP.Flags)
			assert.Equal(t, binary.BigEndian.Uint16(in[16:18])+20, d.IP.Length, "outer total length")
			assert.True(t, progtest.IPv4HeaderChecksumOK(res.Packet), "outer header checksum")
			dmac, smac := macs(t, res.Packet)
			assert.Equal(t, hostRemoteMA, dmac, "FIB neighbour of the backend")
			assert.Equal(t, e.rmtMAC, smac)
			inner := decapped(res.Packet)
			src, dst, ttl := addrPorts(t, inner)
			assert.Equal(t, netip.AddrPortFrom(hostClient, 40000), src, "client address kept")
			assert.Equal(t, netip.AddrPortFrom(hostExtIP, hostNodePort), dst, "frontend kept")
			assert.Equal(t, uint8(63), ttl)
			checkSums(t, inner)
			assert.Equal(t, in[34:], inner[34:], "L4 untouched")
			assert.Empty(t, natEntries(t, e.d, ctmap.NATIn), "no SNAT")
			assert.Empty(t, natEntries(t, e.d, ctmap.NATOut), "no SNAT")
			assert.Equal(t, uint64(1), counter(t, e.d, uint32(e.ext), metricsmap.ReasonLBDSR, metricsmap.DirIngress).Packets)

			// The flow keeps its backend. This node never sees a reply:
			// the client's ACK makes the flow established (6h, not the
			// SYN's 60s), or an idle connection's entries expire and its
			// next packet is balanced anew.
			client, backend := netip.AddrPortFrom(hostClient, 40000), netip.AddrPortFrom(hostRemote, 8080)
			svc, be := flowEntries(t, e.d, client, backend)
			assert.LessOrEqual(t, be.Expires, time.Minute, "SYN lifetime")
			res = e.run(t, false, e.fromClient(hostExtIP, hostNodePort, 40000, progtest.TCPAck), e.ext)
			require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
			_, dst, _ = addrPorts(t, decapped(res.Packet))
			assert.Equal(t, netip.AddrPortFrom(hostExtIP, hostNodePort), dst)
			svc, be = flowEntries(t, e.d, client, backend)
			assert.Greater(t, be.Expires, time.Hour, "established after the client's ACK")
			assert.Greater(t, svc.Expires, time.Hour, "the service entry follows")

			// UDP: DSR in dsr mode, SNAT in hybrid mode.
			require.NoError(t, e.d.LB().UpsertBackend(3, lbmap.Backend{Addr: hostRemote, Port: 5353, Proto: protoUDP}))
			e.service(t, lbmap.Frontend{Addr: netip.IPv4Unspecified(), Port: hostNodePort, Proto: protoUDP}, lbmap.FlagNodePort, 3)
			u := progtest.Packet{SrcMAC: hostClientMA, DstMAC: e.extMAC, Src: hostClient, Dst: hostExtIP,
				Proto: layers.IPProtocolUDP, SrcPort: 40001, DstPort: hostNodePort, Payload: []byte("q")}.IPv4()
			res = e.run(t, false, u, e.ext)
			require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
			d = progtest.Decode(t, res.Packet)
			if mode == datapath.LBModeDSR {
				assert.Equal(t, layers.IPProtocolIPv4, d.IP.Protocol)
				assert.Equal(t, uint16(5353), d.IP.Id)
				checkSums(t, decapped(res.Packet))
			} else {
				assert.Equal(t, layers.IPProtocolUDP, d.IP.Protocol, "hybrid: UDP is SNATed")
				require.NotNil(t, d.UDP)
				assert.Equal(t, hostExtIP.AsSlice(), []byte(d.IP.SrcIP.To4()))
				assert.Len(t, natEntries(t, e.d, ctmap.NATIn), 1)
				checkSums(t, res.Packet)
			}
		})
	}
}

// Local backends are not touched by the mode: DNAT into the pod as in snat
// mode; and snat mode does not encapsulate.
func TestPrivilegedHostDSRLocalAndSNATUnchanged(t *testing.T) {
	e := newDSREnv(t, datapath.LBModeDSR)
	e.service(t, nodePortFE(hostNodePort), lbmap.FlagNodePort, beLocal)
	res := e.run(t, false, e.fromClient(hostExtIP, hostNodePort, 40000, progtest.TCPSyn), e.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	_, dst, _ := addrPorts(t, res.Packet)
	assert.Equal(t, netip.AddrPortFrom(hostPod, 8080), dst)
	assert.Equal(t, uint64(0), counter(t, e.d, uint32(e.ext), metricsmap.ReasonLBDSR, metricsmap.DirIngress).Packets)

	s := newHostEnv(t)
	s.service(t, nodePortFE(hostNodePort), lbmap.FlagNodePort, beRemote)
	res = s.run(t, false, s.fromClient(hostExtIP, hostNodePort, 40000, progtest.TCPSyn), s.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	assert.Equal(t, layers.IPProtocolTCP, progtest.Decode(t, res.Packet).IP.Protocol, "snat mode: no encapsulation")
}

// The backend's node: the IP-in-IP packet to its pod is decapsulated and
// DNATed to the backend with a conntrack entry and a reverse-DNAT entry that
// remembers the frontend; the pod's SYN-ACK leaves from the frontend, its
// MSS clamped for the encapsulation. The mode of the backend's node does not
// matter (it decapsulates in every mode).
func TestPrivilegedHostDSRDecapAndReply(t *testing.T) {
	e := newHostEnv(t) // snat mode: receiving DSR needs no knob
	e.service(t, nodePortFE(hostNodePort), lbmap.FlagNodePort, beLocal)

	in := progtest.Packet{SrcMAC: hostRemoteMA, DstMAC: e.extMAC, Src: hostClient, Dst: dsrOtherNode,
		SrcPort: 40000, DstPort: hostNodePort, TCPFlags: progtest.TCPSyn, Payload: []byte("hello"), TTL: 63}.IPv4()
	res := e.run(t, false, ipip(t, in, hostRmtIP, hostPod, 8080), e.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "redirected into the pod")
	require.Len(t, res.Packet, len(in))
	src, dst, ttl := addrPorts(t, res.Packet)
	assert.Equal(t, netip.AddrPortFrom(hostClient, 40000), src, "client address preserved")
	assert.Equal(t, netip.AddrPortFrom(hostPod, 8080), dst, "DNAT to the backend")
	assert.Equal(t, uint8(62), ttl)
	checkSums(t, res.Packet)
	dmac, _ := macs(t, res.Packet)
	assert.Equal(t, hostPodMAC, dmac)
	assert.Equal(t, uint64(1), counter(t, e.d, uint32(e.ext), metricsmap.ReasonLBDSRRx, metricsmap.DirIngress).Packets)

	entries, err := e.d.CT().Entries()
	require.NoError(t, err)
	var found bool
	for _, c := range entries {
		if c.Src == netip.AddrPortFrom(hostClient, 40000) && c.Dst == netip.AddrPortFrom(hostPod, 8080) && !c.Service {
			found = true
		}
	}
	assert.True(t, found, "backend conntrack entry client -> pod: %+v", entries)
	rev := natEntries(t, e.d, ctmap.NATRevDNAT)
	require.Len(t, rev, 1)
	assert.Equal(t, netip.AddrPortFrom(hostPod, 8080), rev[0].Src)
	assert.Equal(t, netip.AddrPortFrom(hostClient, 40000), rev[0].Dst)
	assert.Equal(t, netip.AddrPortFrom(dsrOtherNode, hostNodePort), rev[0].Frontend, "the frontend the client used")
	assert.True(t, rev[0].DSR)

	// The pod's SYN-ACK leaves the node's external device from the
	// frontend, MSS 1460 clamped to 1500 - 60.
	reply := synAck(t, netip.AddrPortFrom(hostPod, 8080), netip.AddrPortFrom(hostClient, 40000), 1460)
	res = e.run(t, true, reply, e.ext)
	require.Equal(t, uint32(progtest.ActOK), res.Verdict)
	src, dst, _ = addrPorts(t, res.Packet)
	assert.Equal(t, netip.AddrPortFrom(dsrOtherNode, hostNodePort), src, "reply from the frontend")
	assert.Equal(t, netip.AddrPortFrom(hostClient, 40000), dst)
	assert.Equal(t, uint16(1440), mssOf(t, res.Packet))
	checkSums(t, res.Packet)
	assert.Equal(t, uint64(1), counter(t, e.d, uint32(e.ext), metricsmap.ReasonLBDSRRevNAT, metricsmap.DirEgress).Packets)

	// A smaller MSS stays.
	res = e.run(t, true, synAck(t, netip.AddrPortFrom(hostPod, 8080), netip.AddrPortFrom(hostClient, 40000), 1200), e.ext)
	assert.Equal(t, uint16(1200), mssOf(t, res.Packet))
	checkSums(t, res.Packet)

	// A local backend's reply of a flow that did not come by DSR keeps
	// its MSS.
	direct := e.fromClient(hostExtIP, hostNodePort, 40002, progtest.TCPSyn)
	res = e.run(t, false, direct, e.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	res = e.run(t, true, synAck(t, netip.AddrPortFrom(hostPod, 8080), netip.AddrPortFrom(hostClient, 40002), 1460), e.ext)
	src, _, _ = addrPorts(t, res.Packet)
	assert.Equal(t, netip.AddrPortFrom(hostExtIP, hostNodePort), src)
	assert.Equal(t, uint16(1460), mssOf(t, res.Packet))
}

// Malformed or unknown IP-in-IP to a pod is dropped and counted; IP-in-IP
// to anything else is the stack's, untouched.
func TestPrivilegedHostDSRMalformed(t *testing.T) {
	e := newHostEnv(t)
	e.service(t, nodePortFE(hostNodePort), lbmap.FlagNodePort, beLocal)
	good := progtest.Packet{SrcMAC: hostRemoteMA, DstMAC: e.extMAC, Src: hostClient, Dst: dsrOtherNode,
		SrcPort: 40000, DstPort: hostNodePort, Payload: []byte("hello")}.IPv4()

	noFrontend := progtest.Packet{SrcMAC: hostRemoteMA, DstMAC: e.extMAC, Src: hostClient, Dst: dsrOtherNode,
		SrcPort: 40000, DstPort: 31999, Payload: []byte("hello")}.IPv4()
	icmp := progtest.Packet{SrcMAC: hostRemoteMA, DstMAC: e.extMAC, Src: hostClient, Dst: dsrOtherNode,
		Proto: layers.IPProtocolICMPv4}.IPv4()
	truncated := ipip(t, good, hostRmtIP, hostPod, 8080)
	truncated = truncated[:14+20+20+10] // inner TCP header cut before its checksum
	fragment := ipip(t, good, hostRmtIP, hostPod, 8080)
	fragment[14+6] |= 0x20 // outer MF
	zeroPort := ipip(t, good, hostRmtIP, hostPod, 0)

	cases := map[string][]byte{
		"inner to no frontend": ipip(t, noFrontend, hostRmtIP, hostPod, 8080),
		"inner not TCP/UDP":    ipip(t, icmp, hostRmtIP, hostPod, 8080),
		"inner truncated":      truncated,
		"outer fragment":       fragment,
		"no backend port":      zeroPort,
	}
	n := uint64(0)
	for name, pkt := range cases {
		res := e.run(t, false, pkt, e.ext)
		assert.Equal(t, uint32(progtest.ActShot), res.Verdict, name)
		n++
		assert.Equal(t, n, counter(t, e.d, uint32(e.ext), metricsmap.DropDSRInvalid, metricsmap.DirIngress).Packets, name)
	}
	assert.Empty(t, natEntries(t, e.d, ctmap.NATRevDNAT), "nothing recorded")

	// To an address that is no pod here: not DSR, untouched.
	other := ipip(t, good, hostRmtIP, netip.MustParseAddr("10.244.9.9"), 8080)
	res := e.run(t, false, other, e.ext)
	assert.Equal(t, uint32(progtest.ActOK), res.Verdict)
	assert.Equal(t, other, res.Packet[:len(other)])
}

// The XDP program encapsulates DSR flows itself: the frame it sends is
// byte for byte the one the tc program sends for the same packet; in
// hybrid mode UDP is SNATed at XDP. A frame XDP cannot send (the egress
// device runs no XDP program) goes to tc untouched.
func TestPrivilegedXDPDSR(t *testing.T) {
	for _, mode := range []datapath.LBMode{datapath.LBModeDSR, datapath.LBModeHybrid} {
		t.Run(string(mode), func(t *testing.T) {
			e := newHostEnvWith(t, datapath.Options{Host: datapath.HostOptions{SNATAddr: hostExtIP, LBMode: mode}})
			require.NoError(t, e.d.LB().UpsertBackend(beRemoteUDP, lbmap.Backend{Addr: hostRemote, Port: 8053, Proto: protoUDP}))
			e.service(t, nodePortFE(hostNodePort), lbmap.FlagNodePort, beRemote)
			e.service(t, lbmap.Frontend{Addr: netip.IPv4Unspecified(), Port: hostNodePort, Proto: protoUDP}, lbmap.FlagNodePort, beRemoteUDP)
			syn := e.clientPkt(layers.IPProtocolTCP, hostNodePort, 40000, progtest.TCPSyn)
			xdp := func(pkt []byte) progtest.Result {
				var res progtest.Result
				e.ns.Do(t, func() { res = progtest.RunXDP(t, e.d.XDPNodePort(), pkt, uint32(e.ext)) })
				return res
			}

			// rmt0 without the XDP program: XDP cannot redirect there.
			e.ns.Do(t, func() { require.NoError(t, e.d.Devices().AttachXDP("ext0", device.XDPNative)) })
			res := xdp(syn)
			require.Equal(t, uint32(progtest.XDPPass), res.Verdict, "no XDP on the egress device: tc's")
			assert.Equal(t, syn, res.Packet[:len(syn)], "untouched")

			e.ns.Do(t, func() { require.NoError(t, e.d.Devices().AttachXDP("rmt0", device.XDPNative)) })
			res = xdp(syn)
			require.Equal(t, uint32(progtest.XDPRedirect), res.Verdict, "IP-in-IP redirected to rmt0")
			require.Len(t, res.Packet, len(syn)+20)
			d := progtest.Decode(t, res.Packet)
			assert.Equal(t, layers.IPProtocolIPv4, d.IP.Protocol)
			assert.Equal(t, hostRemote.AsSlice(), []byte(d.IP.DstIP.To4()))
			assert.Equal(t, uint16(8080), d.IP.Id)
			assert.True(t, progtest.IPv4HeaderChecksumOK(res.Packet), "outer header checksum")
			checkSums(t, decapped(res.Packet))
			assert.Equal(t, uint64(1), counter(t, e.d, uint32(e.ext), metricsmap.ReasonXDPLBDSR, metricsmap.DirIngress).Packets)
			tc := e.run(t, false, syn, e.ext)
			require.Equal(t, uint32(progtest.ActRedirect), tc.Verdict)
			assert.Equal(t, tc.Packet[:len(syn)+20], res.Packet, "XDP and tc send the same frame")

			udp := e.clientPkt(layers.IPProtocolUDP, hostNodePort, 40001, 0)
			res = xdp(udp)
			require.Equal(t, uint32(progtest.XDPRedirect), res.Verdict)
			if mode == datapath.LBModeDSR {
				assert.Equal(t, layers.IPProtocolIPv4, progtest.Decode(t, res.Packet).IP.Protocol, "dsr: UDP too")
			} else {
				assert.Equal(t, layers.IPProtocolUDP, progtest.Decode(t, res.Packet).IP.Protocol, "hybrid: UDP SNATed")
				assert.Equal(t, uint64(1), counter(t, e.d, uint32(e.ext), metricsmap.ReasonXDPLBSNAT, metricsmap.DirIngress).Packets)
			}
		})
	}
}

// An ExternalIP/LoadBalancer frontend (exact address, not the node's) is
// decapsulated too, and the pod's replies leave from it.
func TestPrivilegedHostDSRExternalIP(t *testing.T) {
	e := newHostEnv(t)
	extIP := netip.MustParseAddr("192.168.252.10")
	e.service(t, lbmap.Frontend{Addr: extIP, Port: 80, Proto: protoTCP}, lbmap.FlagExternal, beLocal)
	in := progtest.Packet{SrcMAC: hostRemoteMA, DstMAC: e.extMAC, Src: hostClient, Dst: extIP,
		SrcPort: 40000, DstPort: 80, TCPFlags: progtest.TCPSyn, Payload: []byte("hello")}.IPv4()
	res := e.run(t, false, ipip(t, in, hostRmtIP, hostPod, 8080), e.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	src, dst, _ := addrPorts(t, res.Packet)
	assert.Equal(t, netip.AddrPortFrom(hostClient, 40000), src)
	assert.Equal(t, netip.AddrPortFrom(hostPod, 8080), dst)
	checkSums(t, res.Packet)
	rev := natEntries(t, e.d, ctmap.NATRevDNAT)
	require.Len(t, rev, 1)
	assert.Equal(t, netip.AddrPortFrom(extIP, 80), rev[0].Frontend)
	res = e.run(t, true, synAck(t, netip.AddrPortFrom(hostPod, 8080), netip.AddrPortFrom(hostClient, 40000), 1460), e.ext)
	src, _, _ = addrPorts(t, res.Packet)
	assert.Equal(t, netip.AddrPortFrom(extIP, 80), src)
	checkSums(t, res.Packet)

	// Another port of that address is no frontend: dropped.
	other := progtest.Packet{SrcMAC: hostRemoteMA, DstMAC: e.extMAC, Src: hostClient, Dst: extIP,
		SrcPort: 40000, DstPort: 81}.IPv4()
	res = e.run(t, false, ipip(t, other, hostRmtIP, hostPod, 8080), e.ext)
	assert.Equal(t, uint32(progtest.ActShot), res.Verdict)
}
