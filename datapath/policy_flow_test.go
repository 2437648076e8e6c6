package datapath_test

import (
	"errors"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/monitor"
	"github.com/sluicenet/sluice/datapath/policymap"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/identity"
)

func TestPrivilegedPolicyConntrackReplies(t *testing.T) {
	e := loadPolicy(t)
	both := policymap.Config{IngressEnforced: true, EgressEnforced: true}
	e.enforce(epA, both)
	e.enforce(epB, both)
	e.allow(epA, with(tcpPort(80), false, idB), 1)
	e.allow(epB, with(tcpPort(80), true, idA), 2)
	e.allow(epA, with(tcpPort(443), false, idC), 3)

	// a → b (local) and its replies, which neither b's egress nor a's
	// ingress allow.
	syn := e.pkt(polA, polB, tcp, 80)
	assert.EqualValues(t, local, e.send(syn))
	synack := progtest.Packet{SrcMAC: bMAC, DstMAC: bNodeMAC, Src: polB, Dst: polA, Proto: tcp,
		SrcPort: 80, DstPort: syn.SrcPort, TCPFlags: progtest.TCPSyn | progtest.TCPAck}
	assert.EqualValues(t, local, e.send(synack), "reply passes by conntrack")
	ack := syn
	ack.TCPFlags = progtest.TCPAck
	assert.EqualValues(t, local, e.send(ack), "established")
	// b opening its own flow to a is still dropped.
	assert.EqualValues(t, shot, e.send(e.pkt(polB, polA, tcp, 80)))

	// a → c through the stack; c's reply enters a through to_container.
	syn = e.pkt(polA, polC, tcp, 443)
	assert.EqualValues(t, stack, e.send(syn))
	synack = progtest.Packet{Src: polC, Dst: polA, Proto: tcp, SrcPort: 443, DstPort: syn.SrcPort, TCPFlags: progtest.TCPSyn | progtest.TCPAck}
	assert.EqualValues(t, stack, e.deliver(synack))
	synack.DstPort++
	assert.EqualValues(t, shot, e.deliver(synack), "no flow with that port")

	entries, err := e.d.CT().Entries()
	require.NoError(t, err)
	n := 0
	for _, c := range entries {
		if c.Src.Addr() == polA && !c.Service {
			n++
		}
	}
	assert.Equal(t, 2, n, "one conntrack entry per allowed flow")

	// A flow that ended (RST) and a new SYN on its tuple is a new flow:
	// after the allow is gone it is dropped.
	rst := ack
	rst.TCPFlags = progtest.TCPRst
	assert.EqualValues(t, local, e.send(rst))
	require.NoError(t, e.d.Policy().Delete(epA, with(tcpPort(80), false, idB)))
	assert.EqualValues(t, shot, e.send(syn0(ack)))
}

func syn0(p progtest.Packet) progtest.Packet {
	p.TCPFlags = progtest.TCPSyn
	return p
}

// Service traffic is checked against the backend: b allows port 8080 (the
// backend's), not the frontend's port 80.
func TestPrivilegedPolicyServiceBackend(t *testing.T) {
	e := loadPolicy(t)
	vip := netip.MustParseAddr("10.96.0.10")
	fe := lbmap.Frontend{Addr: vip, Port: 80, Proto: protoTCP}
	require.NoError(t, e.d.LB().UpsertBackend(1, lbmap.Backend{Addr: polB, Port: 8080, Proto: protoTCP}))
	require.NoError(t, e.d.LB().UpsertRevNAT(5, fe))
	require.NoError(t, e.d.LB().UpsertService(fe, lbmap.Service{RevNATID: 5, Backends: []uint32{1}}))
	both := policymap.Config{IngressEnforced: true, EgressEnforced: true}
	e.enforce(epA, both)
	e.enforce(epB, both)
	e.allow(epA, with(policymap.Key{Proto: protoTCP}, false, idB), 11)
	e.allow(epB, with(tcpPort(8080), true, idA), 12)

	r := newFlows(t, e.d)
	syn := e.pkt(polA, vip, tcp, 80)
	res := progtest.Run(t, e.d.FromContainer(), syn.IPv4(), aIfindex)
	require.EqualValues(t, local, res.Verdict)
	out := progtest.Decode(t, res.Packet)
	assert.Equal(t, polB.AsSlice(), []byte(out.IP.DstIP.To4()))
	assert.EqualValues(t, 8080, out.TCP.DstPort)

	fs := r.drain()
	require.Len(t, fs, 2, "egress of a and ingress of b")
	for _, f := range fs {
		assert.Equal(t, monitor.VerdictForwarded, f.Verdict)
		assert.Equal(t, metricsmap.ReasonFwdLocal, f.Reason)
		assert.Equal(t, netip.AddrPortFrom(polA, syn.SrcPort), f.Src)
		assert.Equal(t, netip.AddrPortFrom(polB, 8080), f.Dst)
		assert.Equal(t, netip.AddrPortFrom(vip, 80), f.OrigDst)
		assert.EqualValues(t, idA, f.SrcIdentity)
		assert.EqualValues(t, idB, f.DstIdentity)
		assert.EqualValues(t, protoTCP, f.Proto)
		assert.EqualValues(t, aIfindex, f.Ifindex)
		assert.WithinDuration(t, time.Now(), f.Time, 5*time.Second)
	}
	assert.False(t, fs[0].Ingress)
	assert.EqualValues(t, epA, fs[0].EndpointID)
	assert.EqualValues(t, 11, fs[0].RuleID)
	assert.True(t, fs[1].Ingress)
	assert.EqualValues(t, epB, fs[1].EndpointID)
	assert.EqualValues(t, 12, fs[1].RuleID)

	// b's reply is reverse-NATed and passes by conntrack; no new events.
	reply := progtest.Packet{SrcMAC: bMAC, DstMAC: bNodeMAC, Src: polB, Dst: polA, Proto: tcp, SrcPort: 8080, DstPort: syn.SrcPort, TCPFlags: progtest.TCPSyn | progtest.TCPAck}
	res = progtest.Run(t, e.d.FromContainer(), reply.IPv4(), aIfindex)
	require.EqualValues(t, local, res.Verdict)
	out = progtest.Decode(t, res.Packet)
	assert.Equal(t, vip.AsSlice(), []byte(out.IP.SrcIP.To4()), "reverse NAT")
	ack := syn
	ack.TCPFlags = progtest.TCPAck
	assert.EqualValues(t, local, e.send(ack))
	assert.Empty(t, r.drain(), "events only for the first packet")

	// Once b allows only port 80 (the frontend's), the service is closed.
	require.NoError(t, e.d.Policy().Delete(epB, with(tcpPort(8080), true, idA)))
	e.allow(epB, with(tcpPort(80), true, idA), 13)
	assert.EqualValues(t, shot, e.send(e.pkt(polA, vip, tcp, 80)))
	fs = r.drain()
	require.Len(t, fs, 1)
	assert.Equal(t, monitor.VerdictDropped, fs[0].Verdict)
	assert.Equal(t, metricsmap.DropPolicy, fs[0].Reason)
	assert.True(t, fs[0].Ingress)
	assert.EqualValues(t, 0, fs[0].RuleID)
	assert.Equal(t, netip.AddrPortFrom(polB, 8080), fs[0].Dst)
}

func TestPrivilegedPolicyFlowEvents(t *testing.T) {
	e := loadPolicy(t)
	e.enforce(epA, policymap.Config{IngressEnforced: true})
	e.allow(epA, with(tcpPort(22), true, uint32(identity.ReservedHost)), 21)
	e.deny(epA, with(policymap.Key{Proto: protoUDP}, true, idC), 22)
	r := newFlows(t, e.d)

	in := e.pkt(polHostIP, polA, tcp, 22)
	assert.EqualValues(t, stack, e.deliver(in))
	assert.EqualValues(t, shot, e.deliver(e.pkt(polC, polA, udp, 53)))
	assert.EqualValues(t, shot, e.deliver(e.pkt(polWorld, polA, tcp, 22)))
	fs := r.drain()
	require.Len(t, fs, 3)
	assert.Equal(t, monitor.Flow{Time: fs[0].Time, Verdict: monitor.VerdictForwarded, Reason: metricsmap.ReasonFwdToEndpoint,
		Ingress: true, Src: netip.AddrPortFrom(polHostIP, in.SrcPort), Dst: netip.AddrPortFrom(polA, 22), Proto: protoTCP,
		SrcIdentity: uint32(identity.ReservedHost), DstIdentity: idA, EndpointID: epA, Ifindex: aIfindex, RuleID: 21}, fs[0])
	assert.Equal(t, monitor.VerdictDropped, fs[1].Verdict)
	assert.Equal(t, metricsmap.DropPolicyDeny, fs[1].Reason)
	assert.EqualValues(t, idC, fs[1].SrcIdentity)
	assert.EqualValues(t, 22, fs[1].RuleID)
	assert.False(t, fs[1].OrigDst.IsValid())
	assert.Equal(t, metricsmap.DropPolicy, fs[2].Reason)
	assert.EqualValues(t, identity.ReservedWorld, fs[2].SrcIdentity)

	// Forwarded events off: drops still reported.
	require.NoError(t, e.d.Flows().SetForwardedEvents(false))
	assert.EqualValues(t, stack, e.deliver(e.pkt(polHostIP, polA, tcp, 22)))
	assert.EqualValues(t, shot, e.deliver(e.pkt(polWorld, polA, tcp, 22)))
	fs = r.drain()
	require.Len(t, fs, 1)
	assert.Equal(t, monitor.VerdictDropped, fs[0].Verdict)
	lost, err := e.d.Flows().Lost()
	require.NoError(t, err)
	assert.Zero(t, lost)

	// Close unblocks a blocked Read.
	done := make(chan error, 1)
	r.r.SetDeadline(time.Time{})
	go func() { _, err := r.r.Read(); done <- err }()
	require.Eventually(t, blockedInRead, 5*time.Second, time.Millisecond, "a goroutine waits in Read's epoll_wait")
	require.NoError(t, r.r.Close())
	select {
	case err := <-done:
		assert.ErrorIs(t, err, os.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Read not unblocked by Close")
	}
}

func TestPrivilegedIPCache(t *testing.T) {
	e := loadPolicy(t)
	require.NoError(t, e.d.IPCache().Upsert(netip.MustParsePrefix("10.0.0.77/8"), 77))
	got, err := e.d.IPCache().List()
	require.NoError(t, err)
	assert.EqualValues(t, 77, got[netip.MustParsePrefix("10.0.0.0/8")], "host bits masked")
	assert.EqualValues(t, idC, got[netip.MustParsePrefix("10.244.2.5/32")])
	require.NoError(t, e.d.IPCache().Delete(netip.MustParsePrefix("10.244.2.5/32")))
	require.NoError(t, e.d.IPCache().Delete(netip.MustParsePrefix("10.244.2.5/32")), "missing is fine")
	assert.Error(t, e.d.IPCache().Upsert(netip.MustParsePrefix("fd00::/64"), 1))

	// c now resolves through the /24.
	e.enforce(epA, policymap.Config{IngressEnforced: true})
	e.allow(epA, with(tcpPort(80), true, idNode2), 1)
	assert.EqualValues(t, stack, e.deliver(e.pkt(polC, polA, tcp, 80)))
}

type flowReader struct {
	t testing.TB
	r *monitor.Reader
}

func newFlows(t testing.TB, d *datapath.Datapath) *flowReader {
	r, err := d.Flows().NewReader()
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	f := &flowReader{t: t, r: r}
	f.drain() // events of earlier packets wait in the ring buffer
	return f
}

// drain returns the events written so far.
func (f *flowReader) drain() []monitor.Flow {
	var out []monitor.Flow
	for {
		f.r.SetDeadline(time.Now().Add(20 * time.Millisecond))
		fl, err := f.r.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return out
		}
		require.NoError(f.t, err)
		out = append(out, fl)
	}
}

// blockedInRead reports whether a goroutine is inside the epoll_wait system
// call of a monitor.Reader's Read (so a Close now must wake it, not merely
// fail a later Read).
func blockedInRead() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, " [syscall") && strings.Contains(g, "EpollWait") && strings.Contains(g, "monitor.(*Reader).Read(") {
			return true
		}
	}
	return false
}
