package datapath_test

import (
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/test/harness"
)

// BenchmarkFromNetdev measures the host device programs with
// BPF_PROG_TEST_RUN in the test netns of newHostEnv.
//
// Per-packet runs (ns/pkt, BPF_PROG_TEST_RUN's repeat; the program sees the
// same skb every time, so only runs that leave the packet unchanged are
// meaningful):
//   - "passthrough": TCP to the node on a port no service uses;
//   - "nodeport-established-norewrite": an established NodePort flow whose
//     backend is the frontend itself (host network, same port): frontend
//     lookups (exact, node address, wildcard), both conntrack entries,
//     endpoint and node-address lookups and the reverse-DNAT record, without
//     the rewrite helpers.
//
// Per-syscall runs (ns/op, syscall and skb set-up included) cover rewrites:
// "passthrough-syscall" is the baseline; "local-established-syscall" (DNAT,
// redirect_peer), "remote-established-syscall" (DNAT+SNAT, FIB lookup,
// redirect), "remote-reply-syscall" (reverse SNAT+DNAT at rmt0) and
// "local-reply-egress-syscall" (reverse DNAT at egress).
func BenchmarkFromNetdev(b *testing.B) {
	harness.RequirePrivileged(b)
	e := newHostEnv(b)
	e.service(b, nodePortFE(hostNodePort), lbmap.FlagNodePort, beLocal)
	e.service(b, nodePortFE(hostNodePort+1), lbmap.FlagNodePort, beRemote)
	self := netip.AddrPortFrom(hostExtIP, hostNodePort+2)
	require.NoError(b, e.d.LB().UpsertBackend(99, lbmap.Backend{Addr: self.Addr(), Port: self.Port(), Proto: protoTCP}))
	e.service(b, nodePortFE(self.Port()), lbmap.FlagNodePort, 99)

	perPacket := func(b *testing.B, pkt []byte) {
		var (
			ret uint32
			err error
			per float64
		)
		e.ns.Do(b, func() {
			r, d, rerr := e.d.FromNetdev().Benchmark(pkt, b.N, nil)
			ret, err, per = r, rerr, float64(d.Nanoseconds())
		})
		require.NoError(b, err)
		require.Equal(b, uint32(progtest.ActOK), ret)
		b.ReportMetric(per, "ns/pkt")
	}
	b.Run("passthrough", func(b *testing.B) {
		perPacket(b, e.fromClient(hostExtIP, 22, 40000, progtest.TCPAck))
	})
	b.Run("nodeport-established-norewrite", func(b *testing.B) {
		perPacket(b, e.fromClient(hostExtIP, self.Port(), 40000, progtest.TCPAck))
	})

	syscallRuns := func(b *testing.B, egress bool, pkt []byte, ifindex int, want uint32) {
		b.Helper()
		prog := e.d.FromNetdev()
		if egress {
			prog = e.d.ToNetdev()
		}
		out := make([]byte, len(pkt)+256)
		ctx := make([]byte, 192)
		ctx[40], ctx[41] = byte(ifindex), byte(ifindex>>8)
		e.ns.Do(b, func() {
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ret, err := prog.Run(&ebpf.RunOptions{Data: pkt, DataOut: out, Context: ctx})
				if err != nil || ret != want {
					b.Fatalf("run: %d %v", ret, err)
				}
			}
		})
	}
	b.Run("passthrough-syscall", func(b *testing.B) {
		syscallRuns(b, false, e.fromClient(hostExtIP, 22, 40000, progtest.TCPAck), e.ext, progtest.ActOK)
	})
	b.Run("local-established-syscall", func(b *testing.B) {
		syscallRuns(b, false, e.fromClient(hostExtIP, hostNodePort, 40000, progtest.TCPAck), e.ext, progtest.ActRedirect)
	})
	b.Run("remote-established-syscall", func(b *testing.B) {
		syscallRuns(b, false, e.fromClient(hostExtIP, hostNodePort+1, 40000, progtest.TCPAck), e.ext, progtest.ActRedirect)
	})
	b.Run("remote-reply-syscall", func(b *testing.B) {
		res := e.run(b, false, e.fromClient(hostExtIP, hostNodePort+1, 40001, progtest.TCPSyn), e.ext)
		require.Equal(b, uint32(progtest.ActRedirect), res.Verdict)
		src, _, _ := addrPorts(b, res.Packet)
		reply := progtest.Packet{SrcMAC: hostRemoteMA, DstMAC: e.rmtMAC, Src: hostRemote, Dst: hostExtIP,
			SrcPort: 8080, DstPort: src.Port(), TCPFlags: progtest.TCPAck}.IPv4()
		syscallRuns(b, false, reply, e.rmt, progtest.ActRedirect)
	})
	b.Run("local-reply-egress-syscall", func(b *testing.B) {
		res := e.run(b, false, e.fromClient(hostExtIP, hostNodePort, 40002, progtest.TCPSyn), e.ext)
		require.Equal(b, uint32(progtest.ActRedirect), res.Verdict)
		reply := progtest.Packet{SrcMAC: e.extMAC, DstMAC: hostClientMA, Src: hostPod, Dst: hostClient,
			SrcPort: 8080, DstPort: 40002, TCPFlags: progtest.TCPAck}.IPv4()
		syscallRuns(b, true, reply, e.ext, progtest.ActOK)
	})
}
