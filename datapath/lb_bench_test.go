package datapath_test

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/test/harness"
)

// BenchmarkFromContainerLB measures the tc LB path of from_container.
//
// In-kernel repeat (ns/pkt) needs a packet the program leaves unchanged:
//   - no-service: a packet to a non-service address pays the service lookup
//     and the reverse-NAT conntrack lookup on top of the plain path;
//   - svc-established-norewrite: a service whose only backend is the
//     frontend itself, so every run does the full established-flow work
//     (service lookup, two conntrack lookups and updates, backend lookup)
//     except the rewrite helpers, and the packet stays the same.
//
// Per-syscall runs (ns/op, syscall and skb set-up included) cover rewrites:
// "baseline-syscall" (pod → pod, no service) against an established
// translated flow, a new flow per run, and a reverse-NATed reply.
func BenchmarkFromContainerLB(b *testing.B) {
	harness.RequirePrivileged(b)
	d := loadLB(b, datapath.Options{})
	fe := lbService(b, d, protoTCP, 0, 0, 1)

	b.Run("no-service", func(b *testing.B) {
		pkt := progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: lbClient, Dst: gwIP, DstPort: 80, TCPFlags: progtest.TCPAck}.IPv4()
		ret, per, err := d.FromContainer().Benchmark(pkt, b.N, nil)
		require.NoError(b, err)
		require.Equal(b, uint32(progtest.ActOK), ret)
		b.ReportMetric(float64(per.Nanoseconds()), "ns/pkt")
	})
	b.Run("svc-established-norewrite", func(b *testing.B) {
		self := lbmap.Frontend{Addr: netip.MustParseAddr("10.96.0.99"), Port: 80, Proto: protoTCP}
		require.NoError(b, d.LB().UpsertBackend(99, lbmap.Backend{Addr: self.Addr, Port: self.Port, Proto: protoTCP}))
		require.NoError(b, d.LB().UpsertRevNAT(99, self))
		require.NoError(b, d.LB().UpsertService(self, lbmap.Service{RevNATID: 99, Backends: []uint32{99}}))
		pkt := progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: lbClient, Dst: self.Addr, SrcPort: 40000, DstPort: 80, TCPFlags: progtest.TCPAck}.IPv4()
		ret, per, err := d.FromContainer().Benchmark(pkt, b.N, nil)
		require.NoError(b, err)
		require.Equal(b, uint32(progtest.ActOK), ret)
		b.ReportMetric(float64(per.Nanoseconds()), "ns/pkt")
	})

	syscallRuns := func(b *testing.B, pkts [][]byte, want uint32) {
		b.Helper()
		for i := 0; i < b.N; i++ {
			ret, _, err := d.FromContainer().Benchmark(pkts[i%len(pkts)], 1, nil)
			if err != nil || ret != want {
				b.Fatalf("run: %d %v", ret, err)
			}
		}
	}
	b.Run("baseline-syscall", func(b *testing.B) {
		pkt := progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: lbClient, Dst: lbLocal, SrcPort: 40000, DstPort: 8080, TCPFlags: progtest.TCPAck}.IPv4()
		syscallRuns(b, [][]byte{pkt}, progtest.ActRedirect)
	})
	b.Run("svc-established-syscall", func(b *testing.B) {
		pkt := toVIP(lbClient, protoTCP, 40000, progtest.TCPAck).IPv4()
		syscallRuns(b, [][]byte{pkt}, progtest.ActRedirect)
	})
	b.Run("svc-new-flow-syscall", func(b *testing.B) {
		pkts := make([][]byte, 0, 20000)
		for p := 0; p < cap(pkts); p++ {
			pkts = append(pkts, toVIP(lbClient2, protoTCP, uint16(30000+p), progtest.TCPSyn).IPv4())
		}
		b.ResetTimer()
		syscallRuns(b, pkts, progtest.ActRedirect)
	})
	b.Run("revnat-syscall", func(b *testing.B) {
		res, _ := runFwd(b, d, toVIP(lbClient, protoTCP, 41000, progtest.TCPSyn))
		require.Equal(b, uint32(progtest.ActRedirect), res.Verdict)
		reply := progtest.Packet{SrcMAC: lbLocalMAC, DstMAC: aNodeMAC, Src: lbLocal, Dst: lbClient, SrcPort: 8080, DstPort: 41000, TCPFlags: progtest.TCPAck}.IPv4()
		syscallRuns(b, [][]byte{reply}, progtest.ActRedirect)
	})
	_ = fe
}
