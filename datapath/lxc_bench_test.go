package datapath_test

import (
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/policymap"
	"github.com/sluicenet/sluice/datapath/progtest"
)

// BenchmarkFromContainerFastPath measures the per-packet cost of the pod
// programs on the non-service path of an established flow, the path most
// packets take, with 10 000 services programmed (none of them the
// destination) and the node's addresses set.
//
// Each case reports two figures per packet: ns/pkt, BPF_PROG_TEST_RUN's
// in-kernel repeat (the test-run loop included; "floor" is that loop around
// a program that only returns), and run-ns/pkt, the kernel's BPF run-time
// statistics in a second, equally long run (BPF_ENABLE_STATS: the program
// alone plus the statistics' own clock reads, which "floor" shows). Cases:
//   - floor: a program that returns TC_ACT_OK;
//   - egress-established: a → c (remote, to the stack), a's egress not
//     enforced;
//   - egress-established-policy: the same with a's egress enforced (the
//     flow passes by conntrack, not by the policy trie);
//   - reply-established: a's reply to a connection the node's host opened
//     (a:8080 → host);
//   - to-container-established: a packet of an established flow the stack
//     delivers into a (to_container).
func BenchmarkFromContainerFastPath(b *testing.B) {
	e := loadPolicy(b)
	fillServices(b, e.d, 10000)
	require.NoError(b, e.d.LB().SetNodeAddrs([]netip.Addr{polHostIP}))
	floor := returnOK(b)
	egress := progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: polA, Dst: polC, SrcPort: 40000, DstPort: 80, TCPFlags: progtest.TCPAck}
	egressPolicy := egress
	egressPolicy.SrcPort = 40001
	// The host opened host:41000 → a:8080 (to_container), a answers.
	open := progtest.Packet{SrcMAC: aNodeMAC, DstMAC: aMAC, Src: polHostIP, Dst: polA, SrcPort: 41000, DstPort: 8080}
	reply := progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: polA, Dst: polHostIP, SrcPort: 8080, DstPort: 41000, TCPFlags: progtest.TCPAck}
	cases := []struct {
		name   string
		prog   *ebpf.Program
		pkt    []byte
		setup  func()
		verdct uint32
	}{
		{"floor", floor, egress.IPv4(), nil, progtest.ActOK},
		{"egress-established", e.d.FromContainer(), egress.IPv4(), nil, progtest.ActOK},
		{"egress-established-policy", e.d.FromContainer(), egressPolicy.IPv4(), func() {
			e.enforce(epA, policymap.Config{EgressEnforced: true})
			e.allow(epA, with(tcpPort(80), false, idC), 1)
		}, progtest.ActOK},
		{"reply-established", e.d.FromContainer(), reply.IPv4(), func() {
			require.Equal(b, uint32(progtest.ActOK), progtest.Run(b, e.d.ToContainer(), open.IPv4(), aIfindex).Verdict)
		}, progtest.ActOK},
		{"to-container-established", e.d.ToContainer(), open.IPv4(), nil, progtest.ActOK},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			if c.setup != nil {
				c.setup()
			}
			// The first run creates the flow; the measured ones find it.
			require.Equal(b, c.verdct, progtest.Run(b, c.prog, c.pkt, aIfindex).Verdict)
			ret, per, err := c.prog.Benchmark(c.pkt, b.N, nil)
			require.NoError(b, err)
			require.Equal(b, c.verdct, ret)
			b.ReportMetric(float64(per.Nanoseconds()), "ns/pkt")
			b.ReportMetric(runStats(b, c.prog, c.pkt, b.N), "run-ns/pkt")
		})
	}
}

// runStats runs prog n times on pkt with the kernel's BPF run-time
// statistics on (they cost two clock reads a run, so they are not on during
// the ns/pkt measurement) and returns the mean run time.
func runStats(b *testing.B, prog *ebpf.Program, pkt []byte, n int) float64 {
	b.Helper()
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	require.NoError(b, err)
	defer stats.Close()
	before, err := prog.Stats()
	require.NoError(b, err)
	_, _, err = prog.Benchmark(pkt, n, nil)
	require.NoError(b, err)
	after, err := prog.Stats()
	require.NoError(b, err)
	if after.RunCount == before.RunCount {
		return 0
	}
	return float64((after.Runtime - before.Runtime).Nanoseconds()) / float64(after.RunCount-before.RunCount)
}

// fillServices programs n ClusterIP services 10.97.x.y:80 with one backend each.
func fillServices(b *testing.B, d *datapath.Datapath, n int) {
	b.Helper()
	require.NoError(b, d.LB().UpsertBackend(7, lbmap.Backend{Addr: polC2, Port: 8080, Proto: protoTCP}))
	for i := 0; i < n; i++ {
		fe := lbmap.Frontend{Addr: netip.AddrFrom4([4]byte{10, 97, byte(i >> 8), byte(i)}), Port: 80, Proto: protoTCP}
		require.NoError(b, d.LB().UpsertRevNAT(uint16(1000+i), fe))
		require.NoError(b, d.LB().UpsertService(fe, lbmap.Service{RevNATID: uint16(1000 + i), Backends: []uint32{7}}))
	}
}

// returnOK loads a tc program that only returns TC_ACT_OK: the test-run
// loop's own cost.
func returnOK(b *testing.B) *ebpf.Program {
	b.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		License:      "GPL",
	})
	require.NoError(b, err)
	b.Cleanup(func() { p.Close() })
	return p
}
