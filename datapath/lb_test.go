package datapath_test

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/endpointmap"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/test/harness"
)

// tc LB topology (BPF_PROG_TEST_RUN runs on ifindex 1, loopback): the client
// pod and a local backend pod are both endpoints on ifindex 1; remote
// backends are addresses of another node's PodCIDR.
var (
	lbClient     = aIP
	lbClient2    = netip.MustParseAddr("10.244.1.12")
	lbClient2MAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0c}
	lbLocal      = netip.MustParseAddr("10.244.1.11")
	lbLocalMAC   = bMAC
	lbVIP        = netip.MustParseAddr("10.96.0.10")
	lbRemote     = []netip.Addr{
		netip.MustParseAddr("10.244.2.20"),
		netip.MustParseAddr("10.244.2.21"),
		netip.MustParseAddr("10.244.2.22"),
	}
)

const lbRevNAT = 3

func loadLB(t testing.TB, opts datapath.Options) *datapath.Datapath {
	t.Helper()
	harness.RequirePrivileged(t)
	d := progtest.Load(t, harness.BPFFS(t), opts)
	for _, ep := range []endpointmap.Endpoint{
		{IP: lbClient, Ifindex: aIfindex, ID: 1, MAC: aMAC, NodeMAC: aNodeMAC},
		{IP: lbLocal, Ifindex: aIfindex, ID: 2, MAC: lbLocalMAC, NodeMAC: aNodeMAC},
		{IP: lbClient2, Ifindex: aIfindex, ID: 3, MAC: lbClient2MAC, NodeMAC: aNodeMAC},
	} {
		require.NoError(t, d.Endpoints().Upsert(ep))
	}
	return d
}

// backend IDs: 1 is the local pod, 10+i the remote address lbRemote[i].
func lbBackendAddr(id uint32) netip.Addr {
	if id == 1 {
		return lbLocal
	}
	return lbRemote[id-10]
}

// lbService programs lbVIP:80 (or :53 for UDP) → port 8080 of the backends.
func lbService(t testing.TB, d *datapath.Datapath, proto uint8, flags lbmap.Flags, affinity time.Duration, ids ...uint32) lbmap.Frontend {
	t.Helper()
	fe := lbmap.Frontend{Addr: lbVIP, Port: 80, Proto: proto}
	if proto == protoUDP {
		fe.Port = 8053 // gopacket decodes 53 as DNS
	}
	for _, id := range ids {
		require.NoError(t, d.LB().UpsertBackend(id, lbmap.Backend{Addr: lbBackendAddr(id), Port: 8080, Proto: proto}))
	}
	require.NoError(t, d.LB().UpsertRevNAT(lbRevNAT, fe))
	require.NoError(t, d.LB().UpsertService(fe, lbmap.Service{RevNATID: lbRevNAT, Flags: flags, AffinityTimeout: affinity, Backends: ids}))
	return fe
}

func l4(proto uint8) layers.IPProtocol { return layers.IPProtocol(proto) }

// toVIP is a packet of the client to the frontend.
func toVIP(src netip.Addr, proto uint8, sport uint16, flags uint8) progtest.Packet {
	mac := aMAC
	if src == lbClient2 {
		mac = lbClient2MAC
	}
	dport := uint16(80)
	if proto == protoUDP {
		dport = 8053
	}
	return progtest.Packet{SrcMAC: mac, DstMAC: aNodeMAC, Src: src, Dst: lbVIP, Proto: l4(proto),
		SrcPort: sport, DstPort: dport, TCPFlags: flags, Payload: []byte("hello")}
}

// runFwd runs a client packet through from_container and returns the
// translated destination.
func runFwd(t testing.TB, d *datapath.Datapath, p progtest.Packet) (progtest.Result, netip.AddrPort) {
	t.Helper()
	res := progtest.Run(t, d.FromContainer(), p.IPv4(), aIfindex)
	if res.Verdict == progtest.ActShot {
		return res, netip.AddrPort{}
	}
	out := progtest.Decode(t, res.Packet)
	dst, _ := netip.AddrFromSlice(out.IP.DstIP)
	port := uint16(0)
	switch {
	case out.TCP != nil:
		port = uint16(out.TCP.DstPort)
	case out.UDP != nil:
		port = uint16(out.UDP.DstPort)
	}
	return res, netip.AddrPortFrom(dst, port)
}

func checkSums(t testing.TB, pkt []byte) {
	t.Helper()
	assert.True(t, progtest.IPv4HeaderChecksumOK(pkt), "IPv4 header checksum")
	assert.True(t, progtest.L4ChecksumOK(pkt), "L4 checksum over the pseudo header")
}

func TestPrivilegedLBDNAT(t *testing.T) {
	for _, proto := range []uint8{protoTCP, protoUDP} {
		t.Run(fmt.Sprint(l4(proto)), func(t *testing.T) {
			d := loadLB(t, datapath.Options{})
			lbService(t, d, proto, 0, 0, 1)

			in := toVIP(lbClient, proto, 40000, 0)
			res, dst := runFwd(t, d, in)
			hdrs := 14 + 20 + 8
			if proto == protoTCP {
				hdrs = 14 + 20 + 20
			}
			require.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "local backend: delivered into its pod")
			assert.Equal(t, netip.AddrPortFrom(lbLocal, 8080), dst)
			out := progtest.Decode(t, res.Packet)
			src, _ := netip.AddrFromSlice(out.IP.SrcIP)
			assert.Equal(t, lbClient, src, "source untouched")
			assert.Equal(t, lbLocalMAC, out.Eth.DstMAC)
			assert.Equal(t, in.IPv4()[hdrs:], res.Packet[hdrs:], "payload untouched")
			checkSums(t, res.Packet)

			// A remote backend goes to the stack, translated.
			lbService(t, d, proto, 0, 0, 10)
			res, dst = runFwd(t, d, toVIP(lbClient, proto, 40001, 0))
			require.Equal(t, uint32(progtest.ActOK), res.Verdict)
			assert.Equal(t, netip.AddrPortFrom(lbRemote[0], 8080), dst)
			checkSums(t, res.Packet)

			assert.Equal(t, uint64(2), counter(t, d, aIfindex, metricsmap.ReasonLBTranslated, metricsmap.DirEgress).Packets)
		})
	}
}

func TestPrivilegedLBDNATUDPWithoutChecksum(t *testing.T) {
	d := loadLB(t, datapath.Options{})
	lbService(t, d, protoUDP, 0, 0, 10)
	p := toVIP(lbClient, protoUDP, 40000, 0)
	p.NoUDPChecksum = true
	res, dst := runFwd(t, d, p)
	require.Equal(t, uint32(progtest.ActOK), res.Verdict)
	assert.Equal(t, netip.AddrPortFrom(lbRemote[0], 8080), dst)
	assert.Zero(t, progtest.L4Checksum(res.Packet), "a UDP checksum of 0 stays 0")
	assert.True(t, progtest.IPv4HeaderChecksumOK(res.Packet))
}

func TestPrivilegedLBReverseNAT(t *testing.T) {
	for _, proto := range []uint8{protoTCP, protoUDP} {
		t.Run(fmt.Sprint(l4(proto)), func(t *testing.T) {
			d := loadLB(t, datapath.Options{})
			fe := lbService(t, d, proto, 0, 0, 1)
			res, _ := runFwd(t, d, toVIP(lbClient, proto, 40000, progtest.TCPSyn))
			require.Equal(t, uint32(progtest.ActRedirect), res.Verdict)

			// The backend pod answers; its packet leaves its veth.
			reply := progtest.Packet{SrcMAC: lbLocalMAC, DstMAC: aNodeMAC, Src: lbLocal, Dst: lbClient, Proto: l4(proto),
				SrcPort: 8080, DstPort: 40000, TCPFlags: progtest.TCPSyn | progtest.TCPAck, Payload: []byte("backend")}
			res = progtest.Run(t, d.FromContainer(), reply.IPv4(), aIfindex)
			require.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "delivered into the client pod")
			out := progtest.Decode(t, res.Packet)
			src, _ := netip.AddrFromSlice(out.IP.SrcIP)
			dst, _ := netip.AddrFromSlice(out.IP.DstIP)
			assert.Equal(t, fe.Addr, src, "reply comes from the frontend")
			assert.Equal(t, lbClient, dst)
			assert.Equal(t, aMAC, out.Eth.DstMAC)
			if out.TCP != nil {
				assert.Equal(t, layers.TCPPort(fe.Port), out.TCP.SrcPort)
			} else {
				assert.Equal(t, layers.UDPPort(fe.Port), out.UDP.SrcPort)
			}
			checkSums(t, res.Packet)
			assert.Equal(t, uint64(1), counter(t, d, aIfindex, metricsmap.ReasonLBRevNAT, metricsmap.DirEgress).Packets)

			// A packet of the backend to the client that belongs to no
			// translated flow is left alone.
			other := reply
			other.DstPort = 40999
			res = progtest.Run(t, d.FromContainer(), other.IPv4(), aIfindex)
			out = progtest.Decode(t, res.Packet)
			src, _ = netip.AddrFromSlice(out.IP.SrcIP)
			assert.Equal(t, lbLocal, src)
		})
	}
}

// A backend reached through the stack (another node, host network) replies
// into the client pod through to_container.
func TestPrivilegedLBReverseNATToContainer(t *testing.T) {
	d := loadLB(t, datapath.Options{})
	fe := lbService(t, d, protoTCP, 0, 0, 11)
	res, dst := runFwd(t, d, toVIP(lbClient, protoTCP, 40000, progtest.TCPSyn))
	require.Equal(t, uint32(progtest.ActOK), res.Verdict)
	require.Equal(t, netip.AddrPortFrom(lbRemote[1], 8080), dst)

	reply := progtest.Packet{SrcMAC: aNodeMAC, DstMAC: aMAC, Src: lbRemote[1], Dst: lbClient, SrcPort: 8080, DstPort: 40000,
		TCPFlags: progtest.TCPSyn | progtest.TCPAck, Payload: []byte("x")}
	res = progtest.Run(t, d.ToContainer(), reply.IPv4(), aIfindex)
	require.Equal(t, uint32(progtest.ActOK), res.Verdict)
	out := progtest.Decode(t, res.Packet)
	src, _ := netip.AddrFromSlice(out.IP.SrcIP)
	assert.Equal(t, netip.AddrPortFrom(fe.Addr, fe.Port), netip.AddrPortFrom(src, uint16(out.TCP.SrcPort)))
	checkSums(t, res.Packet)
	assert.Equal(t, uint64(1), counter(t, d, aIfindex, metricsmap.ReasonLBRevNAT, metricsmap.DirIngress).Packets)
}

func TestPrivilegedLBDistribution(t *testing.T) {
	d := loadLB(t, datapath.Options{})
	lbService(t, d, protoTCP, 0, 0, 10, 11, 12)
	const flows = 3000
	seen := map[netip.Addr]int{}
	for i := 0; i < flows; i++ {
		_, dst := runFwd(t, d, toVIP(lbClient, protoTCP, uint16(10000+i), progtest.TCPSyn))
		seen[dst.Addr()]++
	}
	t.Logf("new flows per backend: %v", seen)
	require.Len(t, seen, 3)
	for _, a := range lbRemote {
		// Binomial(3000, 1/3): sd ≈ 26; ±200 is beyond 7 sd.
		assert.InDelta(t, flows/3, seen[a], 200, "backend %s", a)
	}
}

func TestPrivilegedLBConntrackKeepsBackend(t *testing.T) {
	d := loadLB(t, datapath.Options{})
	fe := lbService(t, d, protoTCP, 0, 0, 10)
	_, first := runFwd(t, d, toVIP(lbClient, protoTCP, 40000, progtest.TCPSyn))
	require.Equal(t, lbRemote[0], first.Addr())

	// The service now has only backend 11; backend 10 still exists.
	lbService(t, d, protoTCP, 0, 0, 11)
	_, next := runFwd(t, d, toVIP(lbClient, protoTCP, 40000, progtest.TCPAck))
	assert.Equal(t, lbRemote[0], next.Addr(), "established flow keeps its backend")
	_, other := runFwd(t, d, toVIP(lbClient, protoTCP, 40001, progtest.TCPSyn))
	assert.Equal(t, lbRemote[1], other.Addr(), "a new flow uses the new backend list")

	// Backend 10 is deleted: the flow moves to an existing backend.
	require.NoError(t, d.LB().DeleteBackend(10))
	_, moved := runFwd(t, d, toVIP(lbClient, protoTCP, 40000, progtest.TCPAck))
	assert.Equal(t, lbRemote[1], moved.Addr())

	ct, err := d.CT().Entries()
	require.NoError(t, err)
	var svc, back int
	for _, e := range ct {
		if e.Src != netip.AddrPortFrom(lbClient, 40000) {
			continue
		}
		assert.Equal(t, uint16(lbRevNAT), e.RevNATID)
		assert.Positive(t, e.Expires)
		switch {
		case e.Service:
			svc++
			assert.Equal(t, netip.AddrPortFrom(fe.Addr, fe.Port), e.Dst)
			assert.Equal(t, uint32(11), e.BackendID, "service entry names the new backend")
		case e.Dst == netip.AddrPortFrom(lbRemote[1], 8080):
			back++
			assert.Equal(t, uint32(11), e.BackendID)
		default:
			// The entry of the deleted backend stays until it expires.
			assert.Equal(t, netip.AddrPortFrom(lbRemote[0], 8080), e.Dst)
		}
	}
	assert.Equal(t, 1, svc, "one service entry for the flow")
	assert.Equal(t, 1, back, "one backend entry for the new backend")
}

func TestPrivilegedLBConntrackClosing(t *testing.T) {
	d := loadLB(t, datapath.Options{})
	lbService(t, d, protoTCP, 0, 0, 10)
	runFwd(t, d, toVIP(lbClient, protoTCP, 40000, progtest.TCPSyn))
	runFwd(t, d, toVIP(lbClient, protoTCP, 40000, progtest.TCPRst|progtest.TCPAck))
	ct, err := d.CT().Entries()
	require.NoError(t, err)
	require.Len(t, ct, 2)
	for _, e := range ct {
		assert.True(t, e.Closing, "RST closes %+v", e)
		assert.LessOrEqual(t, e.Expires, 10*time.Second, "closing lifetime")
	}
}

func TestPrivilegedLBAffinity(t *testing.T) {
	d := loadLB(t, datapath.Options{})
	ids := make([]uint32, len(lbRemote))
	for i := range lbRemote {
		ids[i] = uint32(10 + i)
	}
	lbService(t, d, protoTCP, lbmap.FlagAffinity, time.Hour, ids...)
	_, first := runFwd(t, d, toVIP(lbClient, protoTCP, 20000, progtest.TCPSyn))
	for i := 1; i < 50; i++ {
		_, dst := runFwd(t, d, toVIP(lbClient, protoTCP, uint16(20000+i), progtest.TCPSyn))
		require.Equal(t, first.Addr(), dst.Addr(), "flow %d of the client keeps the backend", i)
	}
	seen := map[netip.Addr]bool{}
	for i := 0; i < 50; i++ {
		// Another client has its own affinity entry; only that client
		// sending new flows would change it.
		_, dst := runFwd(t, d, toVIP(lbClient2, protoTCP, uint16(30000+i), progtest.TCPSyn))
		seen[dst.Addr()] = true
	}
	assert.Len(t, seen, 1, "the other client sticks to one backend too")

	// The client's backend leaves the service: new flows go elsewhere.
	var rest []uint32
	for _, id := range ids {
		if lbBackendAddr(id) != first.Addr() {
			rest = append(rest, id)
		}
	}
	lbService(t, d, protoTCP, lbmap.FlagAffinity, time.Hour, rest...)
	_, moved := runFwd(t, d, toVIP(lbClient, protoTCP, 20100, progtest.TCPSyn))
	assert.NotEqual(t, first.Addr(), moved.Addr(), "removed backend is not used through affinity")
}

// After the affinity timeout the client's next flow is load-balanced again.
// With 200 backends a fresh random choice repeats the old one with p = 0.005
// per round; two rounds must both repeat for a false failure (p = 2.5e-5).
func TestPrivilegedLBAffinityExpires(t *testing.T) {
	d := loadLB(t, datapath.Options{})
	const n = 200
	fe := lbmap.Frontend{Addr: lbVIP, Port: 80, Proto: protoTCP}
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(100 + i)
		require.NoError(t, d.LB().UpsertBackend(ids[i], lbmap.Backend{
			Addr: netip.AddrFrom4([4]byte{10, 244, 3, byte(i + 1)}), Port: 8080, Proto: protoTCP}))
	}
	require.NoError(t, d.LB().UpsertRevNAT(lbRevNAT, fe))
	require.NoError(t, d.LB().UpsertService(fe, lbmap.Service{RevNATID: lbRevNAT, Flags: lbmap.FlagAffinity, AffinityTimeout: time.Second, Backends: ids}))

	changed := 0
	sport := uint16(20000)
	for round := 0; round < 2; round++ {
		_, before := runFwd(t, d, toVIP(lbClient, protoTCP, sport, progtest.TCPSyn))
		_, again := runFwd(t, d, toVIP(lbClient, protoTCP, sport+1, progtest.TCPSyn))
		require.Equal(t, before.Addr(), again.Addr(), "fresh affinity holds")
		time.Sleep(2100 * time.Millisecond) // > timeout + 1s of clock granularity
		_, after := runFwd(t, d, toVIP(lbClient, protoTCP, sport+2, progtest.TCPSyn))
		if after.Addr() != before.Addr() {
			changed++
		}
		sport += 10
	}
	assert.Positive(t, changed, "an expired affinity entry is not used")
}

func TestPrivilegedLBNoBackend(t *testing.T) {
	d := loadLB(t, datapath.Options{})
	lbService(t, d, protoTCP, 0, 0)
	in := toVIP(lbClient, protoTCP, 40000, progtest.TCPSyn).IPv4()
	res := progtest.Run(t, d.FromContainer(), in, aIfindex)
	assert.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "ICMP sent back into the pod")
	checkPortUnreachable(t, in, res.Packet)
	assert.Equal(t, uint64(1), counter(t, d, aIfindex, metricsmap.DropNoServiceBackend, metricsmap.DirEgress).Packets)

	// Not a new flow: dropped without an answer.
	res, _ = runFwd(t, d, toVIP(lbClient, protoTCP, 40000, progtest.TCPAck))
	assert.Equal(t, uint32(progtest.ActShot), res.Verdict)
	assert.Equal(t, uint64(2), counter(t, d, aIfindex, metricsmap.DropNoServiceBackend, metricsmap.DirEgress).Packets)

	lbService(t, d, protoUDP, lbmap.FlagLocalOnly, 0)
	in = toVIP(lbClient, protoUDP, 40001, 0).IPv4()
	res = progtest.Run(t, d.FromContainer(), in, aIfindex)
	assert.Equal(t, uint32(progtest.ActRedirect), res.Verdict)
	checkPortUnreachable(t, in, res.Packet)
	assert.Equal(t, uint64(1), counter(t, d, aIfindex, metricsmap.DropNoLocalBackend, metricsmap.DirEgress).Packets)

	// Slots that name deleted backends count as no backend.
	lbService(t, d, protoTCP, 0, 0, 10)
	require.NoError(t, d.LB().DeleteBackend(10))
	res, _ = runFwd(t, d, toVIP(lbClient, protoTCP, 40002, progtest.TCPAck))
	assert.Equal(t, uint32(progtest.ActShot), res.Verdict)
	assert.Equal(t, uint64(3), counter(t, d, aIfindex, metricsmap.DropNoServiceBackend, metricsmap.DirEgress).Packets)
}

// checkPortUnreachable checks that out is an ICMP port unreachable from the
// frontend to the client quoting in, with valid checksums.
func checkPortUnreachable(t *testing.T, in, out []byte) {
	t.Helper()
	p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	icmp, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	require.NotNil(t, ip)
	require.NotNil(t, icmp, "ICMP in %x", out)
	assert.Equal(t, aMAC, eth.DstMAC, "back to the pod")
	assert.Equal(t, aNodeMAC, eth.SrcMAC)
	assert.Equal(t, lbVIP.AsSlice(), []byte(ip.SrcIP.To4()))
	assert.Equal(t, lbClient.AsSlice(), []byte(ip.DstIP.To4()))
	assert.Equal(t, layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort), icmp.TypeCode)
	assert.True(t, progtest.IPv4HeaderChecksumOK(out))
	// ICMP checksum over header and quote: the ones' complement sum is 0xffff.
	var sum uint32
	for i := 14 + 20; i+1 < len(out); i += 2 {
		sum += uint32(out[i])<<8 | uint32(out[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	assert.Equal(t, uint32(0xffff), sum, "ICMP checksum")
	assert.Equal(t, in[14:14+28], icmp.Payload, "quotes the original header and 8 bytes")
}

func TestPrivilegedLBCTGC(t *testing.T) {
	d := loadLB(t, datapath.Options{CTLifetimeNonTCP: time.Second})
	lbService(t, d, protoUDP, 0, 0, 10)
	lbService(t, d, protoTCP, 0, 0, 10)
	runFwd(t, d, toVIP(lbClient, protoUDP, 40000, 0))
	runFwd(t, d, toVIP(lbClient, protoTCP, 40000, progtest.TCPSyn))
	ct, err := d.CT().Entries()
	require.NoError(t, err)
	require.Len(t, ct, 4)

	n, err := d.CT().GC()
	require.NoError(t, err)
	assert.Zero(t, n, "nothing expired yet")

	time.Sleep(2100 * time.Millisecond)
	n, err = d.CT().GC()
	require.NoError(t, err)
	assert.Equal(t, 2, n, "both UDP entries expired")
	ct, err = d.CT().Entries()
	require.NoError(t, err)
	require.Len(t, ct, 2)
	for _, e := range ct {
		assert.Equal(t, uint8(protoTCP), e.Proto, "live TCP entries kept")
		assert.Positive(t, e.Expires)
	}
}
