package datapath_test

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/identity"
	"github.com/sluicenet/sluice/policy"
	"github.com/sluicenet/sluice/test/harness"
)

// Policy topology: pods a (endpoint 1, identity 1000) and b (endpoint 2,
// identity 2000) on this node, both on ifindex 1 (BPF_PROG_TEST_RUN runs
// there); remote pod c (identity 3000, a /32 inside 10.244.2.0/24 which is
// identity 4000); the node's gateway address as host; a world address in
// TEST-NET-1 that no prefix holds.
var (
	polA      = aIP
	polB      = bIP
	polC      = netip.MustParseAddr("10.244.2.5")
	polC2     = netip.MustParseAddr("10.244.2.6")
	polWorld  = netip.MustParseAddr("192.0.2.7")
	polHostIP = gwIP
)

const (
	idA, idB, idC, idNode2 = 1000, 2000, 3000, 4000
	epA, epB               = 1, 2
)

type polEnv struct {
	t     testing.TB
	d     *datapath.Datapath
	sport uint16
}

func loadPolicy(t testing.TB) *polEnv {
	t.Helper()
	harness.RequirePrivileged(t)
	d, err := datapath.LoadUnpinned()
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })
	require.NoError(t, d.UpsertEndpoint(datapath.Endpoint{IP: polA, Ifindex: aIfindex, ID: epA, Identity: idA, MAC: aMAC, NodeMAC: aNodeMAC}))
	require.NoError(t, d.UpsertEndpoint(datapath.Endpoint{IP: polB, Ifindex: aIfindex, ID: epB, Identity: idB, MAC: bMAC, NodeMAC: bNodeMAC}))
	for p, id := range map[string]uint32{
		"10.244.1.10/32": idA, "10.244.1.11/32": idB, "10.244.2.5/32": idC, "10.244.2.0/24": idNode2,
		"10.244.1.1/32": uint32(identity.ReservedHost),
	} {
		require.NoError(t, d.UpsertIPCache(netip.MustParsePrefix(p), id))
	}
	return &polEnv{t: t, d: d, sport: 20000}
}

func (e *polEnv) nextPort() uint16 { e.sport++; return e.sport }

func macOf(ip netip.Addr) net.HardwareAddr {
	if ip == polB {
		return bMAC
	}
	return aMAC
}

// pkt builds a packet of a new flow (fresh source port) src → dst.
func (e *polEnv) pkt(src, dst netip.Addr, proto layers.IPProtocol, port uint16) progtest.Packet {
	return progtest.Packet{SrcMAC: macOf(src), DstMAC: aNodeMAC, Src: src, Dst: dst, Proto: proto,
		SrcPort: e.nextPort(), DstPort: port, Payload: []byte("x")}
}

// send runs a packet a local pod sends through from_container.
func (e *polEnv) send(p progtest.Packet) uint32 {
	return progtest.Run(e.t, e.d.FromContainer(), p.IPv4(), aIfindex).Verdict
}

// deliver runs a packet the stack delivers into a pod through to_container.
func (e *polEnv) deliver(p progtest.Packet) uint32 {
	p.SrcMAC, p.DstMAC = aNodeMAC, aMAC
	return progtest.Run(e.t, e.d.ToContainer(), p.IPv4(), aIfindex).Verdict
}

func (e *polEnv) allow(ep uint16, k datapath.PolicyKey, rule uint32) {
	require.NoError(e.t, e.d.UpsertPolicy(ep, k, datapath.PolicyEntry{RuleID: rule}))
}

func (e *polEnv) deny(ep uint16, k datapath.PolicyKey, rule uint32) {
	require.NoError(e.t, e.d.UpsertPolicy(ep, k, datapath.PolicyEntry{Deny: true, RuleID: rule}))
}

func (e *polEnv) enforce(ep uint16, c datapath.EndpointPolicyConfig) {
	require.NoError(e.t, e.d.SetPolicyConfig(ep, c))
}

func tcpPort(port uint16) datapath.PolicyKey {
	return datapath.PolicyKey{Proto: protoTCP, Port: port, PortPrefixLen: 16}
}

func with(k datapath.PolicyKey, ingress bool, id uint32) datapath.PolicyKey {
	k.Ingress, k.Identity = ingress, id
	return k
}

const (
	shot  = progtest.ActShot
	stack = progtest.ActOK
	local = progtest.ActRedirect
	tcp   = layers.IPProtocolTCP
	udp   = layers.IPProtocolUDP
	icmp  = layers.IPProtocolICMPv4
)

func TestPrivilegedPolicyEgress(t *testing.T) {
	e := loadPolicy(t)
	e.enforce(epA, datapath.EndpointPolicyConfig{EgressEnforced: true})
	e.allow(epA, with(tcpPort(80), false, idC), 7)
	e.allow(epA, with(tcpPort(80), false, idB), 8)

	assert.EqualValues(t, stack, e.send(e.pkt(polA, polC, tcp, 80)), "allowed to c")
	assert.EqualValues(t, local, e.send(e.pkt(polA, polB, tcp, 80)), "allowed to local b")
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polC, tcp, 81)), "other port")
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polC, udp, 80)), "other protocol")
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polC2, tcp, 80)), "other identity (the /24)")
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polWorld, tcp, 80)), "world")
	assert.EqualValues(t, 4, counter(t, e.d, aIfindex, datapath.DropPolicy, datapath.DirEgress).Packets)

	// b's egress is not enforced.
	assert.EqualValues(t, stack, e.send(e.pkt(polB, polWorld, udp, 53)))
	// Ingress of a is not enforced: the stack delivers anything.
	assert.EqualValues(t, stack, e.deliver(e.pkt(polWorld, polA, tcp, 22)))
}

func TestPrivilegedPolicyIngress(t *testing.T) {
	e := loadPolicy(t)
	e.enforce(epB, datapath.EndpointPolicyConfig{IngressEnforced: true})
	e.allow(epB, with(tcpPort(80), true, idA), 1)
	e.allow(epB, with(tcpPort(80), true, uint32(identity.ReservedHost)), 2)

	// Local delivery: b's ingress is checked at a's from_container.
	assert.EqualValues(t, local, e.send(e.pkt(polA, polB, tcp, 80)))
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polB, tcp, 443)))
	// Through the stack: identity from the IP cache.
	assert.EqualValues(t, stack, e.deliver(e.pkt(polHostIP, polB, tcp, 80)), "host")
	assert.EqualValues(t, shot, e.deliver(e.pkt(polC, polB, tcp, 80)), "remote pod c")
	assert.EqualValues(t, shot, e.deliver(e.pkt(polWorld, polB, tcp, 80)), "world")
	assert.EqualValues(t, 3, counter(t, e.d, aIfindex, datapath.DropPolicy, datapath.DirIngress).Packets,
		"drops counted as ingress, also the one seen at a's from_container")
	assert.Zero(t, counter(t, e.d, aIfindex, datapath.DropPolicy, datapath.DirEgress).Packets)
}

func TestPrivilegedPolicyDenyPrecedence(t *testing.T) {
	e := loadPolicy(t)
	e.enforce(epA, datapath.EndpointPolicyConfig{EgressEnforced: true})
	// Allow everything to c, deny TCP 80 to any peer: the port-specific
	// deny wins at 80 (longer prefix), the allow elsewhere.
	e.allow(epA, with(datapath.PolicyKey{}, false, idC), 1)
	e.deny(epA, with(tcpPort(80), false, 0), 2)
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polC, tcp, 80)))
	assert.EqualValues(t, stack, e.send(e.pkt(polA, polC, tcp, 81)))
	assert.EqualValues(t, stack, e.send(e.pkt(polA, polC, udp, 80)))
	assert.EqualValues(t, 1, counter(t, e.d, aIfindex, datapath.DropPolicyDeny, datapath.DirEgress).Packets)

	// A deny drops even where the direction is not enforced.
	e.deny(epA, with(datapath.PolicyKey{Proto: protoUDP}, true, idC), 3)
	assert.EqualValues(t, shot, e.deliver(e.pkt(polC, polA, udp, 5000)))
	assert.EqualValues(t, stack, e.deliver(e.pkt(polC, polA, tcp, 5000)))

	// Same key from two rules: PolicyMapState keeps the deny.
	ep := &policy.EndpointPolicy{EgressEnforced: true, Entries: map[policy.Key]policy.Entry{
		{Direction: policy.Egress, PeerIdentity: idC, Proto: policy.ProtoTCP, PortLo: 8000, PortHi: 8001}: {Rule: policy.RuleRef{Name: "allow"}},
		{Direction: policy.Egress, PeerIdentity: idC, Proto: policy.ProtoTCP, PortLo: 7998, PortHi: 8001}: {Deny: true, Rule: policy.RuleRef{Name: "deny"}},
	}}
	cfg, entries := datapath.PolicyMapState(ep, func(r policy.RuleRef) uint32 {
		if r.Name == "deny" {
			return 66
		}
		return 55
	})
	assert.Equal(t, datapath.PolicyEntry{Deny: true, RuleID: 66}, entries[with(datapath.PolicyKey{Proto: protoTCP, Port: 8000, PortPrefixLen: 15}, false, idC)])
	_, _, err := e.d.SyncPolicy(epA, cfg, entries)
	require.NoError(t, err)
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polC, tcp, 8000)))
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polC, tcp, 80)), "sync removed the old entries")
}

func TestPrivilegedPolicyPortRangeEdges(t *testing.T) {
	e := loadPolicy(t)
	ranges := [][2]uint16{{1000, 2000}, {1, 1}, {65535, 65535}, {32767, 32769}, {80, 81}}
	ep := &policy.EndpointPolicy{EgressEnforced: true, Entries: map[policy.Key]policy.Entry{}}
	for _, r := range ranges {
		ep.Entries[policy.Key{Direction: policy.Egress, PeerIdentity: idC, Proto: policy.ProtoUDP, PortLo: r[0], PortHi: r[1]}] = policy.Entry{}
	}
	cfg, entries := datapath.PolicyMapState(ep, nil)
	_, _, err := e.d.SyncPolicy(epA, cfg, entries)
	require.NoError(t, err)
	for _, r := range ranges {
		lo, hi := r[0], r[1]
		for _, c := range []struct {
			port uint16
			want uint32
		}{{lo - 1, shot}, {lo, stack}, {hi, stack}, {hi + 1, shot}} {
			if (c.port == 0 && lo == 1) || (c.port == 0 && hi == 65535) {
				continue // wrapped around
			}
			assert.EqualValues(t, c.want, e.send(e.pkt(polA, polC, udp, c.port)), "range %d-%d port %d", lo, hi, c.port)
		}
	}
	got, err := e.d.PolicyEntries(epA)
	require.NoError(t, err)
	assert.Equal(t, entries, got, "entries read back")
	used, max, err := e.d.PolicyMapPressure()
	require.NoError(t, err)
	assert.Equal(t, len(entries), used)
	assert.GreaterOrEqual(t, max, 16384*256)
}

func TestPrivilegedPolicyProtoAndIdentityWildcards(t *testing.T) {
	e := loadPolicy(t)
	e.enforce(epA, datapath.EndpointPolicyConfig{IngressEnforced: true})
	// Any protocol from b; any peer on UDP 53; TCP from any peer denied
	// (protocol given beats any protocol, even with an exact peer).
	e.allow(epA, with(datapath.PolicyKey{}, true, idB), 1)
	e.allow(epA, with(datapath.PolicyKey{Proto: protoUDP, Port: 53, PortPrefixLen: 16}, true, 0), 2)
	e.deny(epA, with(datapath.PolicyKey{Proto: protoTCP}, true, 0), 3)
	// Exact peer beats any peer at equal port specificity.
	e.allow(epA, with(tcpPort(9000), true, idC), 4)
	e.deny(epA, with(tcpPort(9000), true, 0), 5)

	assert.EqualValues(t, local, e.send(e.pkt(polB, polA, udp, 7)), "any proto from b: UDP")
	assert.EqualValues(t, local, e.send(e.pkt(polB, polA, icmp, 0)), "any proto from b: ICMP")
	assert.EqualValues(t, shot, e.send(e.pkt(polB, polA, tcp, 7)), "TCP deny beats any-proto allow")
	assert.EqualValues(t, stack, e.deliver(e.pkt(polWorld, polA, udp, 53)), "any peer UDP 53")
	assert.EqualValues(t, shot, e.deliver(e.pkt(polWorld, polA, udp, 54)))
	assert.EqualValues(t, stack, e.deliver(e.pkt(polC, polA, tcp, 9000)), "exact peer wins")
	assert.EqualValues(t, shot, e.deliver(e.pkt(polC2, polA, tcp, 9000)), "other peer: any-peer deny")
}

func TestPrivilegedPolicyICMPType(t *testing.T) {
	e := loadPolicy(t)
	e.enforce(epA, datapath.EndpointPolicyConfig{EgressEnforced: true, IngressEnforced: true})
	e.allow(epA, with(datapath.PolicyKey{Proto: 1, Port: 8, PortPrefixLen: 16}, false, idC), 1) // echo request
	ping := e.pkt(polA, polC, icmp, 0)
	assert.EqualValues(t, stack, e.send(ping))
	// The echo reply (type 0, same id) passes a's enforced ingress by conntrack.
	reply := progtest.Packet{SrcMAC: aNodeMAC, DstMAC: aMAC, Src: polC, Dst: polA, Proto: icmp}.IPv4()
	reply[14+20] = 0 // type echo reply, id 1 as the request's
	assert.EqualValues(t, stack, progtest.Run(t, e.d.ToContainer(), reply, aIfindex).Verdict)
	// Timestamp request (13) is not allowed.
	ts := e.pkt(polA, polC, icmp, 0).IPv4()
	ts[14+20] = 13
	assert.EqualValues(t, shot, progtest.Run(t, e.d.FromContainer(), ts, aIfindex).Verdict)
}

func TestPrivilegedPolicyEnforcementModes(t *testing.T) {
	e := loadPolicy(t)
	// No config: nothing enforced.
	assert.EqualValues(t, stack, e.send(e.pkt(polA, polWorld, tcp, 1)))
	e.enforce(epA, datapath.EndpointPolicyConfig{IngressEnforced: true})
	assert.EqualValues(t, stack, e.send(e.pkt(polA, polWorld, tcp, 1)), "egress still free")
	assert.EqualValues(t, shot, e.deliver(e.pkt(polWorld, polA, tcp, 1)))
	e.enforce(epA, datapath.EndpointPolicyConfig{IngressEnforced: true, EgressEnforced: true})
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polWorld, tcp, 1)))
	cfg, err := e.d.PolicyConfig(epA)
	require.NoError(t, err)
	assert.Equal(t, datapath.EndpointPolicyConfig{IngressEnforced: true, EgressEnforced: true}, cfg)

	// Audit: reported, forwarded, counted as audit.
	e.enforce(epA, datapath.EndpointPolicyConfig{IngressEnforced: true, EgressEnforced: true, Audit: true})
	e.deny(epA, with(tcpPort(25), false, 0), 9)
	r := newFlows(t, e.d)
	assert.EqualValues(t, stack, e.send(e.pkt(polA, polWorld, tcp, 1)))
	assert.EqualValues(t, stack, e.send(e.pkt(polA, polWorld, tcp, 25)))
	fs := r.drain()
	require.Len(t, fs, 2)
	assert.Equal(t, datapath.VerdictAudit, fs[0].Verdict)
	assert.Equal(t, datapath.DropPolicy, fs[0].Reason)
	assert.Equal(t, datapath.VerdictAudit, fs[1].Verdict)
	assert.Equal(t, datapath.DropPolicyDeny, fs[1].Reason)
	assert.EqualValues(t, 9, fs[1].RuleID)
	assert.EqualValues(t, 2, counter(t, e.d, aIfindex, datapath.ReasonPolicyAudit, datapath.DirEgress).Packets)
	assert.Zero(t, counter(t, e.d, aIfindex, datapath.DropPolicy, datapath.DirEgress).Packets-1, "only the drop before audit")

	// Endpoint deleted: its entries and config go.
	require.NoError(t, e.d.DeleteEndpointPolicy(epA))
	got, err := e.d.PolicyEntries(epA)
	require.NoError(t, err)
	assert.Empty(t, got)
	assert.EqualValues(t, stack, e.send(e.pkt(polA, polWorld, tcp, 25)))
}

func TestPrivilegedPolicyConntrackReplies(t *testing.T) {
	e := loadPolicy(t)
	both := datapath.EndpointPolicyConfig{IngressEnforced: true, EgressEnforced: true}
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

	entries, err := e.d.CTEntries()
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
	require.NoError(t, e.d.DeletePolicy(epA, with(tcpPort(80), false, idB)))
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
	fe := datapath.LBFrontend{Addr: vip, Port: 80, Proto: protoTCP}
	require.NoError(t, e.d.UpsertLBBackend(1, datapath.LBBackend{Addr: polB, Port: 8080, Proto: protoTCP}))
	require.NoError(t, e.d.UpsertRevNAT(5, fe))
	require.NoError(t, e.d.UpsertLBService(fe, datapath.LBService{RevNATID: 5, Backends: []uint32{1}}))
	both := datapath.EndpointPolicyConfig{IngressEnforced: true, EgressEnforced: true}
	e.enforce(epA, both)
	e.enforce(epB, both)
	e.allow(epA, with(datapath.PolicyKey{Proto: protoTCP}, false, idB), 11)
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
		assert.Equal(t, datapath.VerdictForwarded, f.Verdict)
		assert.Equal(t, datapath.ReasonFwdLocal, f.Reason)
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
	require.NoError(t, e.d.DeletePolicy(epB, with(tcpPort(8080), true, idA)))
	e.allow(epB, with(tcpPort(80), true, idA), 13)
	assert.EqualValues(t, shot, e.send(e.pkt(polA, vip, tcp, 80)))
	fs = r.drain()
	require.Len(t, fs, 1)
	assert.Equal(t, datapath.VerdictDropped, fs[0].Verdict)
	assert.Equal(t, datapath.DropPolicy, fs[0].Reason)
	assert.True(t, fs[0].Ingress)
	assert.EqualValues(t, 0, fs[0].RuleID)
	assert.Equal(t, netip.AddrPortFrom(polB, 8080), fs[0].Dst)
}

func TestPrivilegedPolicyFlowEvents(t *testing.T) {
	e := loadPolicy(t)
	e.enforce(epA, datapath.EndpointPolicyConfig{IngressEnforced: true})
	e.allow(epA, with(tcpPort(22), true, uint32(identity.ReservedHost)), 21)
	e.deny(epA, with(datapath.PolicyKey{Proto: protoUDP}, true, idC), 22)
	r := newFlows(t, e.d)

	in := e.pkt(polHostIP, polA, tcp, 22)
	assert.EqualValues(t, stack, e.deliver(in))
	assert.EqualValues(t, shot, e.deliver(e.pkt(polC, polA, udp, 53)))
	assert.EqualValues(t, shot, e.deliver(e.pkt(polWorld, polA, tcp, 22)))
	fs := r.drain()
	require.Len(t, fs, 3)
	assert.Equal(t, datapath.Flow{Time: fs[0].Time, Verdict: datapath.VerdictForwarded, Reason: datapath.ReasonFwdToEndpoint,
		Ingress: true, Src: netip.AddrPortFrom(polHostIP, in.SrcPort), Dst: netip.AddrPortFrom(polA, 22), Proto: protoTCP,
		SrcIdentity: uint32(identity.ReservedHost), DstIdentity: idA, EndpointID: epA, Ifindex: aIfindex, RuleID: 21}, fs[0])
	assert.Equal(t, datapath.VerdictDropped, fs[1].Verdict)
	assert.Equal(t, datapath.DropPolicyDeny, fs[1].Reason)
	assert.EqualValues(t, idC, fs[1].SrcIdentity)
	assert.EqualValues(t, 22, fs[1].RuleID)
	assert.False(t, fs[1].OrigDst.IsValid())
	assert.Equal(t, datapath.DropPolicy, fs[2].Reason)
	assert.EqualValues(t, identity.ReservedWorld, fs[2].SrcIdentity)

	// Forwarded events off: drops still reported.
	require.NoError(t, e.d.SetForwardedFlowEvents(false))
	assert.EqualValues(t, stack, e.deliver(e.pkt(polHostIP, polA, tcp, 22)))
	assert.EqualValues(t, shot, e.deliver(e.pkt(polWorld, polA, tcp, 22)))
	fs = r.drain()
	require.Len(t, fs, 1)
	assert.Equal(t, datapath.VerdictDropped, fs[0].Verdict)
	lost, err := e.d.FlowEventsLost()
	require.NoError(t, err)
	assert.Zero(t, lost)

	// Close unblocks a blocked Read.
	done := make(chan error, 1)
	r.r.SetDeadline(time.Time{})
	go func() { _, err := r.r.Read(); done <- err }()
	time.Sleep(50 * time.Millisecond)
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
	require.NoError(t, e.d.UpsertIPCache(netip.MustParsePrefix("10.0.0.77/8"), 77))
	got, err := e.d.IPCacheEntries()
	require.NoError(t, err)
	assert.EqualValues(t, 77, got[netip.MustParsePrefix("10.0.0.0/8")], "host bits masked")
	assert.EqualValues(t, idC, got[netip.MustParsePrefix("10.244.2.5/32")])
	require.NoError(t, e.d.DeleteIPCache(netip.MustParsePrefix("10.244.2.5/32")))
	require.NoError(t, e.d.DeleteIPCache(netip.MustParsePrefix("10.244.2.5/32")), "missing is fine")
	assert.Error(t, e.d.UpsertIPCache(netip.MustParsePrefix("fd00::/64"), 1))

	// c now resolves through the /24.
	e.enforce(epA, datapath.EndpointPolicyConfig{IngressEnforced: true})
	e.allow(epA, with(tcpPort(80), true, idNode2), 1)
	assert.EqualValues(t, stack, e.deliver(e.pkt(polC, polA, tcp, 80)))
}

func TestPolicyKeyValidation(t *testing.T) {
	_, entries := datapath.PolicyMapState(&policy.EndpointPolicy{Entries: map[policy.Key]policy.Entry{
		{Direction: policy.Ingress, Proto: policy.ProtoTCP}: {},
	}}, nil)
	assert.Equal(t, map[datapath.PolicyKey]datapath.PolicyEntry{{Ingress: true, Proto: protoTCP}: {}}, entries, "all ports: one prefix /0")
	cfg, entries := datapath.PolicyMapState(nil, nil)
	assert.Zero(t, cfg)
	assert.Empty(t, entries)
}

type flowReader struct {
	t testing.TB
	r *datapath.FlowReader
}

func newFlows(t testing.TB, d *datapath.Datapath) *flowReader {
	r, err := d.NewFlowReader()
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	f := &flowReader{t: t, r: r}
	f.drain() // events of earlier packets wait in the ring buffer
	return f
}

// drain returns the events written so far.
func (f *flowReader) drain() []datapath.Flow {
	var out []datapath.Flow
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
