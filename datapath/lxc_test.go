package datapath_test

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/endpointmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/test/harness"
)

// BPF_PROG_TEST_RUN runs the program with skb->ifindex = 1 (loopback): the
// source endpoint "a" is registered on ifindex 1, "b" on a fake ifindex that
// is only ever a redirect target.
var (
	aIP      = netip.MustParseAddr("10.244.1.10")
	bIP      = netip.MustParseAddr("10.244.1.11")
	aMAC     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	aNodeMAC = net.HardwareAddr{0x02, 0, 0, 0, 1, 0x0a}
	bMAC     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
	bNodeMAC = net.HardwareAddr{0x02, 0, 0, 0, 1, 0x0b}
	gwIP     = netip.MustParseAddr("10.244.1.1")
)

const (
	aIfindex = 1
	bIfindex = 4242
)

func loadPod(t *testing.T) *datapath.Datapath {
	t.Helper()
	harness.RequirePrivileged(t)
	d := progtest.Load(t, harness.BPFFS(t), datapath.Options{})
	require.NoError(t, d.Endpoints().Upsert(endpointmap.Endpoint{IP: aIP, Ifindex: aIfindex, ID: 1, MAC: aMAC, NodeMAC: aNodeMAC}))
	require.NoError(t, d.Endpoints().Upsert(endpointmap.Endpoint{IP: bIP, Ifindex: bIfindex, ID: 2, MAC: bMAC, NodeMAC: bNodeMAC}))
	return d
}

func counter(t *testing.T, d *datapath.Datapath, ifindex uint32, r metricsmap.Reason, dir metricsmap.Direction) metricsmap.Counter {
	t.Helper()
	cs, err := d.Metrics().Counters()
	require.NoError(t, err)
	for _, c := range cs {
		if c.Ifindex == ifindex && c.Reason == r && c.Direction == dir {
			return c
		}
	}
	return metricsmap.Counter{}
}

func TestPrivilegedFromContainerLocalDelivery(t *testing.T) {
	d := loadPod(t)
	for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP, layers.IPProtocolICMPv4} {
		in := progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: aIP, Dst: bIP, Proto: proto, SrcPort: 40000, DstPort: 8080, Payload: []byte("hi")}.IPv4()
		res := progtest.Run(t, d.FromContainer(), in, aIfindex)
		require.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "proto %v", proto)

		out := progtest.Decode(t, res.Packet)
		assert.Equal(t, bMAC, out.Eth.DstMAC, "dst MAC is the destination pod's")
		assert.Equal(t, bNodeMAC, out.Eth.SrcMAC, "src MAC is the destination's host veth")
		assert.Equal(t, uint8(63), out.IP.TTL, "TTL decremented")
		assert.True(t, progtest.IPv4HeaderChecksumOK(res.Packet), "IPv4 header checksum valid after TTL rewrite")
		assert.Equal(t, in[14+20:], res.Packet[14+20:], "L4 header and payload untouched")
	}
	c := counter(t, d, aIfindex, metricsmap.ReasonFwdLocal, metricsmap.DirEgress)
	assert.Equal(t, uint64(3), c.Packets)
	assert.NotZero(t, c.Bytes)
}

func TestPrivilegedFromContainerToStack(t *testing.T) {
	d := loadPod(t)
	cases := map[string]progtest.Packet{
		"to the gateway (node)":  {SrcMAC: aMAC, DstMAC: aNodeMAC, Src: aIP, Dst: gwIP, DstPort: 22},
		"to an unknown address":  {SrcMAC: aMAC, DstMAC: aNodeMAC, Src: aIP, Dst: netip.MustParseAddr("10.96.0.1"), DstPort: 443},
		"local pod but TTL of 1": {SrcMAC: aMAC, DstMAC: aNodeMAC, Src: aIP, Dst: bIP, TTL: 1, DstPort: 80},
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			in := p.IPv4()
			res := progtest.Run(t, d.FromContainer(), in, aIfindex)
			assert.Equal(t, uint32(progtest.ActOK), res.Verdict)
			assert.Equal(t, in, res.Packet, "packet handed to the stack unchanged")
		})
	}
	assert.Equal(t, uint64(len(cases)), counter(t, d, aIfindex, metricsmap.ReasonFwdStack, metricsmap.DirEgress).Packets)
}

func TestPrivilegedFromContainerDrops(t *testing.T) {
	d := loadPod(t)
	other := netip.MustParseAddr("10.244.1.200")
	evilMAC := net.HardwareAddr{0x02, 0xee, 0, 0, 0, 1}
	cases := []struct {
		name   string
		pkt    []byte
		reason metricsmap.Reason
	}{
		{"source IP of no endpoint", progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: other, Dst: bIP}.IPv4(), metricsmap.DropSpoofIP},
		{"source IP of another endpoint", progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: bIP, Dst: aIP}.IPv4(), metricsmap.DropSpoofIP},
		{"own IP, foreign MAC", progtest.Packet{SrcMAC: evilMAC, DstMAC: aNodeMAC, Src: aIP, Dst: bIP}.IPv4(), metricsmap.DropSpoofMAC},
		{"ARP claiming another pod's IP", progtest.ARP(aMAC, aMAC, bIP, gwIP), metricsmap.DropARPSpoof},
		{"ARP with foreign sender MAC", progtest.ARP(aMAC, evilMAC, aIP, gwIP), metricsmap.DropARPSpoof},
		{"IPv6", progtest.IPv6(aMAC, aNodeMAC), metricsmap.DropUnsupportedL3},
		{"IPv4 header length below 20", badIHL(), metricsmap.DropInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := counter(t, d, aIfindex, tc.reason, metricsmap.DirEgress).Packets
			res := progtest.Run(t, d.FromContainer(), tc.pkt, aIfindex)
			assert.Equal(t, uint32(progtest.ActShot), res.Verdict)
			assert.Equal(t, before+1, counter(t, d, aIfindex, tc.reason, metricsmap.DirEgress).Packets, "drop counted as %v", tc.reason)
		})
	}
	assert.Zero(t, counter(t, d, aIfindex, metricsmap.ReasonFwdLocal, metricsmap.DirEgress).Packets, "nothing forwarded")
}

// badIHL returns a frame whose IPv4 header claims 16 bytes. (A frame too
// short for an IPv4 header is refused by BPF_PROG_TEST_RUN itself.)
func badIHL() []byte {
	pkt := progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: aIP, Dst: bIP}.IPv4()
	pkt[14] = 0x44
	return pkt
}

func TestPrivilegedFromContainerARP(t *testing.T) {
	d := loadPod(t)
	for name, spa := range map[string]netip.Addr{"own address": aIP, "address probe": netip.IPv4Unspecified()} {
		t.Run(name, func(t *testing.T) {
			res := progtest.Run(t, d.FromContainer(), progtest.ARP(aMAC, aMAC, spa, gwIP), aIfindex)
			assert.Equal(t, uint32(progtest.ActOK), res.Verdict)
		})
	}
	assert.Equal(t, uint64(2), counter(t, d, aIfindex, metricsmap.ReasonFwdStack, metricsmap.DirEgress).Packets)
}

func TestPrivilegedToContainerCounts(t *testing.T) {
	d := loadPod(t)
	in := progtest.Packet{SrcMAC: aNodeMAC, DstMAC: aMAC, Src: gwIP, Dst: aIP}.IPv4()
	res := progtest.Run(t, d.ToContainer(), in, aIfindex)
	assert.Equal(t, uint32(progtest.ActOK), res.Verdict)
	c := counter(t, d, aIfindex, metricsmap.ReasonFwdToEndpoint, metricsmap.DirIngress)
	assert.Equal(t, uint64(1), c.Packets)
	assert.Equal(t, uint64(len(in)), c.Bytes)
}

func TestPrivilegedEndpointMap(t *testing.T) {
	d := loadPod(t)
	eps, err := d.Endpoints().List()
	require.NoError(t, err)
	require.Len(t, eps, 2)
	require.NoError(t, d.Endpoints().Delete(bIP))
	require.NoError(t, d.Endpoints().Delete(bIP), "deleting a missing endpoint is not an error")
	eps, err = d.Endpoints().List()
	require.NoError(t, err)
	require.Len(t, eps, 1)
	assert.Equal(t, aIP, eps[0].IP)
	assert.Equal(t, aMAC, eps[0].MAC)
	assert.Equal(t, aNodeMAC, eps[0].NodeMAC)
	assert.Error(t, d.Endpoints().Upsert(endpointmap.Endpoint{IP: netip.MustParseAddr("fd00::1"), MAC: aMAC, NodeMAC: aMAC}))

	// The per-reason counters of a pod go away with it.
	progtest.Run(t, d.FromContainer(), progtest.IPv6(aMAC, aNodeMAC), aIfindex)
	require.NoError(t, d.Metrics().DeleteCounters(aIfindex))
	cs, err := d.Metrics().Counters()
	require.NoError(t, err)
	assert.Empty(t, cs)
}

// BenchmarkFromContainer measures the per-packet cost of the pod program with
// BPF_PROG_TEST_RUN's in-kernel repeat loop. The loop reuses one skb, so only
// paths that leave the packet unchanged can be repeated: hand-off to the stack
// (source check, two endpoint lookups, counters) and a spoofing drop. Local
// delivery rewrites the packet; "local-syscall" runs it once per syscall, so
// its figure includes the syscall and skb set-up.
func BenchmarkFromContainer(b *testing.B) {
	harness.RequirePrivileged(b)
	d := progtest.Load(b, harness.BPFFS(b), datapath.Options{})
	require.NoError(b, d.Endpoints().Upsert(endpointmap.Endpoint{IP: aIP, Ifindex: aIfindex, ID: 1, MAC: aMAC, NodeMAC: aNodeMAC}))
	require.NoError(b, d.Endpoints().Upsert(endpointmap.Endpoint{IP: bIP, Ifindex: bIfindex, ID: 2, MAC: bMAC, NodeMAC: bNodeMAC}))
	inKernel := map[string]struct {
		src  netip.Addr
		dst  netip.Addr
		want uint32
	}{
		"stack":      {aIP, gwIP, progtest.ActOK},
		"drop-spoof": {netip.MustParseAddr("10.244.1.99"), bIP, progtest.ActShot},
	}
	for name, c := range inKernel {
		b.Run(name, func(b *testing.B) {
			pkt := progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: c.src, Dst: c.dst, DstPort: 80}.IPv4()
			ret, per, err := d.FromContainer().Benchmark(pkt, b.N, nil)
			require.NoError(b, err)
			require.Equal(b, c.want, ret)
			b.ReportMetric(float64(per.Nanoseconds()), "ns/pkt")
		})
	}
	b.Run("local-syscall", func(b *testing.B) {
		pkt := progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: aIP, Dst: bIP, DstPort: 80}.IPv4()
		for i := 0; i < b.N; i++ {
			ret, _, err := d.FromContainer().Benchmark(pkt, 1, nil)
			if err != nil || ret != progtest.ActRedirect {
				b.Fatalf("run: %d %v", ret, err)
			}
		}
	})
}
