package datapath_test

import (
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath/policymap"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/identity"
)

// BenchmarkFromNetdevLocalPolicy measures from_netdev for NodePort traffic to
// a local backend whose ingress policy is enforced (world allowed on the
// backend's port), as program time only: the kernel's BPF run-time
// statistics over the benchmark's BPF_PROG_TEST_RUN calls (ns/pkt), since a
// syscall's set-up costs several times the program and hides a map lookup.
//   - "established": an ACK of a flow policy allowed (conntrack-marked);
//   - "new-flow": a SYN from a new client port each run (backend selection,
//     conntrack entries, policy lookups, the mark and a flow event).
//
// The syscall's own ns/op is reported too.
func BenchmarkFromNetdevLocalPolicy(b *testing.B) {
	e, _ := newNodePortPolicyEnv(b)
	require.NoError(b, e.d.Policy().SetConfig(npPolEP, policymap.Config{IngressEnforced: true}))
	e.policy(b, with(tcpPort(8080), true, uint32(identity.ReservedWorld)), false, 1)
	require.NoError(b, e.d.Flows().SetForwardedEvents(false)) // nobody reads the ring buffer here

	run := func(b *testing.B, pkt func(i int) []byte) {
		prog := e.d.FromNetdev()
		ctx := make([]byte, 192)
		ctx[40], ctx[41] = byte(e.ext), byte(e.ext>>8)
		pkts := make([][]byte, b.N)
		for i := range pkts {
			pkts[i] = pkt(i)
		}
		out := make([]byte, len(pkts[0])+256)
		stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
		require.NoError(b, err)
		defer stats.Close()
		before, err := prog.Stats()
		require.NoError(b, err)
		e.ns.Do(b, func() {
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ret, err := prog.Run(&ebpf.RunOptions{Data: pkts[i], DataOut: out, Context: ctx})
				if err != nil || ret != progtest.ActRedirect {
					b.Fatalf("run: %d %v", ret, err)
				}
			}
			b.StopTimer()
		})
		after, err := prog.Stats()
		require.NoError(b, err)
		if n := after.RunCount - before.RunCount; n > 0 {
			b.ReportMetric(float64(after.Runtime-before.Runtime)/float64(n), "ns/pkt")
		}
	}
	b.Run("established", func(b *testing.B) {
		res := e.run(b, false, e.fromClient(hostExtIP, hostNodePort, 40000, progtest.TCPSyn), e.ext)
		require.EqualValues(b, progtest.ActRedirect, res.Verdict)
		ack := e.fromClient(hostExtIP, hostNodePort, 40000, progtest.TCPAck)
		run(b, func(int) []byte { return ack })
	})
	b.Run("new-flow", func(b *testing.B) {
		client := netip.MustParseAddr("192.168.250.0").As4()
		run(b, func(i int) []byte {
			// Distinct flows: 256 client addresses × 250 ports.
			client[3] = byte(i % 256)
			p := progtest.Packet{SrcMAC: hostClientMA, DstMAC: e.extMAC, Src: netip.AddrFrom4(client), Dst: hostExtIP,
				SrcPort: uint16(1024 + i/256), DstPort: hostNodePort, TCPFlags: progtest.TCPSyn, Payload: []byte("hello")}
			return p.IPv4()
		})
	})
}
