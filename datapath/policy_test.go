package datapath_test

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/policymgr"
	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/endpointmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/monitor"
	"github.com/sluicenet/sluice/datapath/policymap"
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
	d := progtest.Load(t, harness.BPFFS(t), datapath.Options{})
	require.NoError(t, d.Endpoints().Upsert(endpointmap.Endpoint{IP: polA, Ifindex: aIfindex, ID: epA, Identity: idA, MAC: aMAC, NodeMAC: aNodeMAC}))
	require.NoError(t, d.Endpoints().Upsert(endpointmap.Endpoint{IP: polB, Ifindex: aIfindex, ID: epB, Identity: idB, MAC: bMAC, NodeMAC: bNodeMAC}))
	for p, id := range map[string]uint32{
		"10.244.1.10/32": idA, "10.244.1.11/32": idB, "10.244.2.5/32": idC, "10.244.2.0/24": idNode2,
		"10.244.1.1/32": uint32(identity.ReservedHost),
	} {
		require.NoError(t, d.IPCache().Upsert(netip.MustParsePrefix(p), id))
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

func (e *polEnv) allow(ep uint16, k policymap.Key, rule uint32) {
	require.NoError(e.t, e.d.Policy().Upsert(ep, k, policymap.Entry{RuleID: rule}))
}

func (e *polEnv) deny(ep uint16, k policymap.Key, rule uint32) {
	require.NoError(e.t, e.d.Policy().Upsert(ep, k, policymap.Entry{Deny: true, RuleID: rule}))
}

func (e *polEnv) enforce(ep uint16, c policymap.Config) {
	require.NoError(e.t, e.d.Policy().SetConfig(ep, c))
}

func tcpPort(port uint16) policymap.Key {
	return policymap.Key{Proto: protoTCP, Port: port, PortPrefixLen: 16}
}

func with(k policymap.Key, ingress bool, id uint32) policymap.Key {
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
	e.enforce(epA, policymap.Config{EgressEnforced: true})
	e.allow(epA, with(tcpPort(80), false, idC), 7)
	e.allow(epA, with(tcpPort(80), false, idB), 8)

	assert.EqualValues(t, stack, e.send(e.pkt(polA, polC, tcp, 80)), "allowed to c")
	assert.EqualValues(t, local, e.send(e.pkt(polA, polB, tcp, 80)), "allowed to local b")
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polC, tcp, 81)), "other port")
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polC, udp, 80)), "other protocol")
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polC2, tcp, 80)), "other identity (the /24)")
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polWorld, tcp, 80)), "world")
	assert.EqualValues(t, 4, counter(t, e.d, aIfindex, metricsmap.DropPolicy, metricsmap.DirEgress).Packets)

	// b's egress is not enforced.
	assert.EqualValues(t, stack, e.send(e.pkt(polB, polWorld, udp, 53)))
	// Ingress of a is not enforced: the stack delivers anything.
	assert.EqualValues(t, stack, e.deliver(e.pkt(polWorld, polA, tcp, 22)))
}

func TestPrivilegedPolicyIngress(t *testing.T) {
	e := loadPolicy(t)
	e.enforce(epB, policymap.Config{IngressEnforced: true})
	e.allow(epB, with(tcpPort(80), true, idA), 1)
	e.allow(epB, with(tcpPort(80), true, uint32(identity.ReservedHost)), 2)

	// Local delivery: b's ingress is checked at a's from_container.
	assert.EqualValues(t, local, e.send(e.pkt(polA, polB, tcp, 80)))
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polB, tcp, 443)))
	// Through the stack: identity from the IP cache.
	assert.EqualValues(t, stack, e.deliver(e.pkt(polHostIP, polB, tcp, 80)), "host")
	assert.EqualValues(t, shot, e.deliver(e.pkt(polC, polB, tcp, 80)), "remote pod c")
	assert.EqualValues(t, shot, e.deliver(e.pkt(polWorld, polB, tcp, 80)), "world")
	assert.EqualValues(t, 3, counter(t, e.d, aIfindex, metricsmap.DropPolicy, metricsmap.DirIngress).Packets,
		"drops counted as ingress, also the one seen at a's from_container")
	assert.Zero(t, counter(t, e.d, aIfindex, metricsmap.DropPolicy, metricsmap.DirEgress).Packets)
}

func TestPrivilegedPolicyDenyPrecedence(t *testing.T) {
	e := loadPolicy(t)
	e.enforce(epA, policymap.Config{EgressEnforced: true})
	// Allow everything to c, deny TCP 80 to any peer: the port-specific
	// deny wins at 80 (longer prefix), the allow elsewhere.
	e.allow(epA, with(policymap.Key{}, false, idC), 1)
	e.deny(epA, with(tcpPort(80), false, 0), 2)
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polC, tcp, 80)))
	assert.EqualValues(t, stack, e.send(e.pkt(polA, polC, tcp, 81)))
	assert.EqualValues(t, stack, e.send(e.pkt(polA, polC, udp, 80)))
	assert.EqualValues(t, 1, counter(t, e.d, aIfindex, metricsmap.DropPolicyDeny, metricsmap.DirEgress).Packets)

	// A deny drops even where the direction is not enforced.
	e.deny(epA, with(policymap.Key{Proto: protoUDP}, true, idC), 3)
	assert.EqualValues(t, shot, e.deliver(e.pkt(polC, polA, udp, 5000)))
	assert.EqualValues(t, stack, e.deliver(e.pkt(polC, polA, tcp, 5000)))

	// Same key from two rules: PolicyMapState keeps the deny.
	ep := &policy.EndpointPolicy{EgressEnforced: true, Entries: map[policy.Key]policy.Entry{
		{Direction: policy.Egress, PeerIdentity: idC, Proto: policy.ProtoTCP, PortLo: 8000, PortHi: 8001}: {Rule: policy.RuleRef{Name: "allow"}},
		{Direction: policy.Egress, PeerIdentity: idC, Proto: policy.ProtoTCP, PortLo: 7998, PortHi: 8001}: {Deny: true, Rule: policy.RuleRef{Name: "deny"}},
	}}
	cfg, entries := policymgr.MapState(ep, func(r policy.RuleRef) uint32 {
		if r.Name == "deny" {
			return 66
		}
		return 55
	})
	assert.Equal(t, policymap.Entry{Deny: true, RuleID: 66}, entries[with(policymap.Key{Proto: protoTCP, Port: 8000, PortPrefixLen: 15}, false, idC)])
	_, _, err := e.d.Policy().Sync(epA, cfg, entries)
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
	cfg, entries := policymgr.MapState(ep, nil)
	_, _, err := e.d.Policy().Sync(epA, cfg, entries)
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
	got, err := e.d.Policy().Entries(epA)
	require.NoError(t, err)
	assert.Equal(t, entries, got, "entries read back")
	used, max, err := e.d.Policy().Pressure()
	require.NoError(t, err)
	assert.Equal(t, len(entries), used)
	assert.GreaterOrEqual(t, max, 16384*256)
}

func TestPrivilegedPolicyProtoAndIdentityWildcards(t *testing.T) {
	e := loadPolicy(t)
	e.enforce(epA, policymap.Config{IngressEnforced: true})
	// Any protocol from b; any peer on UDP 53; TCP from any peer denied
	// (protocol given beats any protocol, even with an exact peer).
	e.allow(epA, with(policymap.Key{}, true, idB), 1)
	e.allow(epA, with(policymap.Key{Proto: protoUDP, Port: 53, PortPrefixLen: 16}, true, 0), 2)
	e.deny(epA, with(policymap.Key{Proto: protoTCP}, true, 0), 3)
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
	e.enforce(epA, policymap.Config{EgressEnforced: true, IngressEnforced: true})
	e.allow(epA, with(policymap.Key{Proto: 1, Port: 8, PortPrefixLen: 16}, false, idC), 1) // echo request
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
	e.enforce(epA, policymap.Config{IngressEnforced: true})
	assert.EqualValues(t, stack, e.send(e.pkt(polA, polWorld, tcp, 1)), "egress still free")
	assert.EqualValues(t, shot, e.deliver(e.pkt(polWorld, polA, tcp, 1)))
	e.enforce(epA, policymap.Config{IngressEnforced: true, EgressEnforced: true})
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polWorld, tcp, 1)))
	cfg, err := e.d.Policy().Config(epA)
	require.NoError(t, err)
	assert.Equal(t, policymap.Config{IngressEnforced: true, EgressEnforced: true}, cfg)

	// Audit: reported, forwarded, counted as audit.
	e.enforce(epA, policymap.Config{IngressEnforced: true, EgressEnforced: true, Audit: true})
	e.deny(epA, with(tcpPort(25), false, 0), 9)
	r := newFlows(t, e.d)
	assert.EqualValues(t, stack, e.send(e.pkt(polA, polWorld, tcp, 1)))
	assert.EqualValues(t, stack, e.send(e.pkt(polA, polWorld, tcp, 25)))
	fs := r.drain()
	require.Len(t, fs, 2)
	assert.Equal(t, monitor.VerdictAudit, fs[0].Verdict)
	assert.Equal(t, metricsmap.DropPolicy, fs[0].Reason)
	assert.Equal(t, monitor.VerdictAudit, fs[1].Verdict)
	assert.Equal(t, metricsmap.DropPolicyDeny, fs[1].Reason)
	assert.EqualValues(t, 9, fs[1].RuleID)
	assert.EqualValues(t, 2, counter(t, e.d, aIfindex, metricsmap.ReasonPolicyAudit, metricsmap.DirEgress).Packets)
	assert.Zero(t, counter(t, e.d, aIfindex, metricsmap.DropPolicy, metricsmap.DirEgress).Packets-1, "only the drop before audit")

	// Endpoint deleted: its entries and config go.
	require.NoError(t, e.d.Policy().DeleteEndpoint(epA))
	got, err := e.d.Policy().Entries(epA)
	require.NoError(t, err)
	assert.Empty(t, got)
	assert.EqualValues(t, stack, e.send(e.pkt(polA, polWorld, tcp, 25)))
}
