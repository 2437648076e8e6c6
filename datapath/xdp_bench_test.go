package datapath_test

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/progtest"
)

// BenchmarkXDPvsTC runs the XDP program and the tc program (from_netdev) on
// the same packets, one BPF_PROG_TEST_RUN syscall per packet (a translating
// program rewrites the packet it is given, so BPF_PROG_TEST_RUN's repeat
// would run it on its own output). ns/op includes the syscall and the
// set-up of the skb or xdp_buff; prog-ns/pkt is the program's own run time
// per packet from the kernel's BPF statistics (BPF_ENABLE_STATS, for the
// benchmark's duration), the figure to compare.
//
//   - passthrough: TCP to the node on port 22;
//   - remote-established: a packet of an established TCP NodePort flow to a
//     remote backend (DNAT+SNAT, FIB lookup, redirect to rmt0);
//   - remote-reply: that backend's reply at rmt0 (reverse SNAT+DNAT,
//     redirect to ext0).
func BenchmarkXDPvsTC(b *testing.B) {
	e := newXDPEnv(b)
	st, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	require.NoError(b, err)
	b.Cleanup(func() { st.Close() })
	progStats := func(b *testing.B, p *ebpf.Program, run func()) {
		before, err := p.Stats()
		require.NoError(b, err)
		run()
		after, err := p.Stats()
		require.NoError(b, err)
		if n := after.RunCount - before.RunCount; n > 0 {
			b.ReportMetric(float64(after.Runtime-before.Runtime)/float64(n), "prog-ns/pkt")
		}
	}
	e.service(b, nodePortFE(hostNodePort), lbmap.FlagNodePort, beRemote)
	syn := e.clientPkt(layers.IPProtocolTCP, hostNodePort, 40000, progtest.TCPSyn)
	res := e.run(b, false, syn, e.ext)
	require.Equal(b, uint32(progtest.ActRedirect), res.Verdict)
	cases := []struct {
		name    string
		pkt     []byte
		dev     int
		tc, xdp uint32
	}{
		{"passthrough", e.clientPkt(layers.IPProtocolTCP, 22, 40000, progtest.TCPAck), e.ext, progtest.ActOK, progtest.XDPPass},
		{"remote-established", e.clientPkt(layers.IPProtocolTCP, hostNodePort, 40000, progtest.TCPAck), e.ext, progtest.ActRedirect, progtest.XDPRedirect},
		{"remote-reply", e.backendReply(layers.IPProtocolTCP, 8080, progtest.TCPAck), e.rmt, progtest.ActRedirect, progtest.XDPRedirect},
	}
	for _, c := range cases {
		b.Run("tc/"+c.name, func(b *testing.B) {
			out := make([]byte, len(c.pkt)+256)
			ctx := make([]byte, 192)
			ctx[40], ctx[41] = byte(c.dev), byte(c.dev>>8)
			e.ns.Do(b, func() {
				b.ResetTimer()
				progStats(b, e.d.FromNetdev(), func() {
					for i := 0; i < b.N; i++ {
						ret, err := e.d.FromNetdev().Run(&ebpf.RunOptions{Data: c.pkt, DataOut: out, Context: ctx})
						if err != nil || ret != c.tc {
							b.Fatalf("run: %d %v", ret, err)
						}
					}
				})
			})
		})
		b.Run("xdp/"+c.name, func(b *testing.B) {
			out := make([]byte, len(c.pkt)+256)
			ctx := progtest.XDPContext(len(c.pkt), uint32(c.dev))
			e.ns.Do(b, func() {
				b.ResetTimer()
				progStats(b, e.d.XDPNodePort(), func() {
					for i := 0; i < b.N; i++ {
						ret, err := e.d.XDPNodePort().Run(&ebpf.RunOptions{Data: c.pkt, DataOut: out, Context: ctx})
						if err != nil || ret != c.xdp {
							b.Fatalf("run: %d %v", ret, err)
						}
					}
				})
			})
		})
	}
}
