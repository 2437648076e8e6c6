package datapath_test

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/monitor"
	"github.com/sluicenet/sluice/datapath/policymap"
	"github.com/sluicenet/sluice/datapath/progtest"
)

// BenchmarkFromContainerPolicy measures the per-packet cost of policy in
// from_container, with a's egress enforced and 16 384 entries in its policy
// (plus 64 other endpoints with 1 024 each, so the trie is not trivially
// small).
//
// In-kernel repeat (ns/pkt), packets the program leaves unchanged:
//   - no-policy: a → host address, a has no policy (conntrack lookup only,
//     as every flow now has an entry);
//   - established: an allowed TCP flow a → c, passing by conntrack;
//   - lookup-untracked: ICMP timestamp requests a → c, allowed: the full
//     policy decision (config + two trie lookups + IP cache) every packet,
//     no conntrack, no event;
//   - drop-event: TCP a → c on a port no entry allows: the policy decision
//     and a flow event (the ring buffer is not read: once full, the event is
//     counted as lost).
//
// Per-syscall runs (ns/op, syscall and skb set-up included): a new allowed
// flow per run (decision, conntrack create, events on or off).
func BenchmarkFromContainerPolicy(b *testing.B) {
	e := loadPolicy(b)
	rng := rand.New(rand.NewPCG(1, 2))
	fill := func(ep uint16, n int) {
		for i := 0; i < n; i++ {
			k := policymap.Key{Identity: 10000 + uint32(rng.IntN(5000)), Proto: protoTCP, Port: uint16(rng.IntN(65536)), PortPrefixLen: 16}
			require.NoError(b, e.d.Policy().Upsert(ep, k, policymap.Entry{RuleID: uint32(i)}))
		}
	}
	fill(epA, 16384-3)
	for ep := uint16(100); ep < 164; ep++ {
		fill(ep, 1024)
	}
	e.enforce(epA, policymap.Config{EgressEnforced: true})
	e.allow(epA, with(tcpPort(80), false, idC), 1)
	e.allow(epA, with(policymap.Key{Proto: 1, Port: 13, PortPrefixLen: 16}, false, idC), 2)
	e.allow(epA, with(policymap.Key{Proto: protoTCP, Port: 8192, PortPrefixLen: 3}, false, idC), 3)
	used, max, err := e.d.Policy().Pressure()
	require.NoError(b, err)
	b.Logf("policy map %d/%d entries", used, max)

	icmpTS := progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: polA, Dst: polC, Proto: icmp}.IPv4()
	icmpTS[14+20] = 13
	inKernel := []struct {
		name string
		pkt  []byte
		want uint32
	}{
		{"no-policy", progtest.Packet{SrcMAC: bMAC, DstMAC: aNodeMAC, Src: polB, Dst: polHostIP, SrcPort: 40000, DstPort: 80, TCPFlags: progtest.TCPAck}.IPv4(), progtest.ActOK},
		{"established", progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: polA, Dst: polC, SrcPort: 40000, DstPort: 80, TCPFlags: progtest.TCPAck}.IPv4(), progtest.ActOK},
		{"lookup-untracked", icmpTS, progtest.ActOK},
		{"drop-event", progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: polA, Dst: polC, SrcPort: 40000, DstPort: 81}.IPv4(), progtest.ActShot},
	}
	for _, c := range inKernel {
		b.Run(c.name, func(b *testing.B) {
			ret, per, err := e.d.FromContainer().Benchmark(c.pkt, b.N, nil)
			require.NoError(b, err)
			require.Equal(b, c.want, ret)
			b.ReportMetric(float64(per.Nanoseconds()), "ns/pkt")
		})
	}

	newFlows := func(b *testing.B, dport uint16) {
		pkts := make([][]byte, 0, 20000)
		for p := 0; p < cap(pkts); p++ {
			pkts = append(pkts, progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: polA, Dst: polC,
				SrcPort: uint16(30000 + p), DstPort: dport}.IPv4())
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			// A repeated tuple finds its flow: only the first 20 000 runs are new flows.
			ret, _, err := e.d.FromContainer().Benchmark(pkts[i%len(pkts)], 1, nil)
			if err != nil || ret != progtest.ActOK {
				b.Fatalf("run: %d %v", ret, err)
			}
		}
	}
	b.Run("new-flow-syscall", func(b *testing.B) {
		r := newFlowsBench(b, e.d)
		defer r.Close()
		newFlows(b, 80)
	})
	b.Run("new-flow-noevents-syscall", func(b *testing.B) {
		require.NoError(b, e.d.Flows().SetForwardedEvents(false))
		defer e.d.Flows().SetForwardedEvents(true)
		newFlows(b, 8200)
	})
}

// newFlowsBench consumes flow events in the background so the ring buffer
// does not fill during a benchmark.
func newFlowsBench(b *testing.B, d *datapath.Datapath) *monitor.Reader {
	r, err := d.Flows().NewReader()
	require.NoError(b, err)
	go func() {
		for {
			if _, err := r.Read(); err != nil {
				return
			}
		}
	}()
	return r
}
