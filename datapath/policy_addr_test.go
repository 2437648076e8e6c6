package datapath_test

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/monitor"
	"github.com/sluicenet/sluice/datapath/policymap"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/identity"
)

// Address-set identities (policy.AddrSetBase | n) of the address tests.
const (
	setBase        = 0xFE000000
	set1, set2, s3 = setBase | 1, setBase | 2, setBase | 3
)

// Addresses inside 10.244.2.0/24 besides c (.5) and c2 (.6): .7 has no
// endpoint or /32 in the IP cache (identity idNode2, like c2).
var polC3 = netip.MustParseAddr("10.244.2.7")

// addr writes endpoint ep's address entry prefix → set.
func (e *polEnv) addr(ep uint16, ingress bool, prefix string, set uint32) {
	k := policymap.AddrKey{Ingress: ingress, Prefix: netip.MustParsePrefix(prefix)}
	require.NoError(e.t, e.d.Policy().UpsertAddr(ep, k, set))
}

// ping is an ICMP echo request src → dst (the policy port is type 8).
func (e *polEnv) ping(src, dst netip.Addr) progtest.Packet {
	return progtest.Packet{SrcMAC: macOf(src), DstMAC: aNodeMAC, Src: src, Dst: dst, Proto: icmp}
}

func udpPort(port uint16) policymap.Key {
	return policymap.Key{Proto: protoUDP, Port: port, PortPrefixLen: 16}
}

var echoRequest = policymap.Key{Proto: 1, Port: 8, PortPrefixLen: 16}

// An egress rule allowing 10.244.2.0/24 except c on TCP 80, UDP 53 and
// ICMP echo: the block's addresses pass, c (the hole) and addresses outside
// the block do not, whatever their identity.
func TestPrivilegedPolicyAddrEgressBlock(t *testing.T) {
	e := loadPolicy(t)
	e.enforce(epA, policymap.Config{EgressEnforced: true, EgressAddr: true})
	e.addr(epA, false, "10.244.2.0/24", set1)
	e.addr(epA, false, "10.244.2.5/32", 0) // except c
	for _, k := range []policymap.Key{tcpPort(80), udpPort(53), echoRequest} {
		e.allow(epA, with(k, false, set1), 31)
	}

	for _, dst := range []netip.Addr{polC2, polC3} {
		assert.EqualValues(t, stack, e.send(e.pkt(polA, dst, tcp, 80)), "TCP to %s in the block", dst)
		assert.EqualValues(t, stack, e.send(e.pkt(polA, dst, udp, 53)), "UDP to %s in the block", dst)
		assert.EqualValues(t, stack, e.send(e.ping(polA, dst)), "ping %s in the block", dst)
		assert.EqualValues(t, shot, e.send(e.pkt(polA, dst, tcp, 81)), "other port")
		assert.EqualValues(t, shot, e.send(e.pkt(polA, dst, udp, 80)), "other protocol")
	}
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polC, tcp, 80)), "except hole: c")
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polC, udp, 53)), "except hole: c")
	assert.EqualValues(t, shot, e.send(e.ping(polA, polC)), "except hole: c")
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polB, tcp, 80)), "local b outside the block")
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polWorld, tcp, 80)), "world outside the block")
	assert.EqualValues(t, 9, counter(t, e.d, aIfindex, metricsmap.DropPolicy, metricsmap.DirEgress).Packets)

	// An allowed flow's later packets and replies pass by conntrack even
	// once the address entry is gone.
	syn := e.pkt(polA, polC2, tcp, 80)
	assert.EqualValues(t, stack, e.send(syn))
	require.NoError(t, e.d.Policy().DeleteAddr(epA, policymap.AddrKey{Prefix: netip.MustParsePrefix("10.244.2.0/24")}))
	ack := syn
	ack.TCPFlags = progtest.TCPAck
	assert.EqualValues(t, stack, e.send(ack), "established")
	synack := progtest.Packet{Src: polC2, Dst: polA, Proto: tcp, SrcPort: 80, DstPort: syn.SrcPort, TCPFlags: progtest.TCPSyn | progtest.TCPAck}
	assert.EqualValues(t, stack, e.deliver(synack), "reply")
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polC2, tcp, 80)), "a new flow after the delete")

	// Without the config flag the address entries are not consulted.
	e.addr(epA, false, "10.244.2.0/24", set1)
	assert.EqualValues(t, stack, e.send(e.pkt(polA, polC2, tcp, 80)))
	e.enforce(epA, policymap.Config{EgressEnforced: true})
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polC2, tcp, 80)), "EgressAddr off")
}

// Two rules with overlapping blocks (the case 3): rule 1 allows
// 10.244.0.0/16 except c on TCP 80, rule 2 allows c/32 on TCP 80, rule 3
// allows 10.244.2.0/24 on TCP 443. Each trie node's set holds the rules
// matching there, so rule 1's except does not cancel rule 2's allow.
func TestPrivilegedPolicyAddrOverlappingBlocks(t *testing.T) {
	e := loadPolicy(t)
	e.enforce(epA, policymap.Config{EgressEnforced: true, EgressAddr: true})
	e.addr(epA, false, "10.244.0.0/16", set1) // {1}
	e.addr(epA, false, "10.244.2.0/24", set2) // {1, 3}
	e.addr(epA, false, "10.244.2.5/32", s3)   // {2, 3}: rule 1's except
	e.allow(epA, with(tcpPort(80), false, set1), 1)
	e.allow(epA, with(tcpPort(80), false, set2), 1)
	e.allow(epA, with(tcpPort(443), false, set2), 3)
	e.allow(epA, with(tcpPort(80), false, s3), 2)
	e.allow(epA, with(tcpPort(443), false, s3), 3)

	r := newFlows(t, e.d)
	other := netip.MustParseAddr("10.244.3.1")
	cases := []struct {
		dst  netip.Addr
		port uint16
		want uint32
		rule uint32
	}{
		{polC, 80, stack, 2}, {polC, 443, stack, 3},
		{polC2, 80, stack, 1}, {polC2, 443, stack, 3},
		{other, 80, stack, 1}, {other, 443, shot, 0},
		{polB, 80, local, 1}, {polWorld, 80, shot, 0},
	}
	for _, c := range cases {
		assert.EqualValues(t, c.want, e.send(e.pkt(polA, c.dst, tcp, c.port)), "%s:%d", c.dst, c.port)
	}
	fs := direction(r.drain(), false)
	require.Len(t, fs, len(cases))
	for i, c := range cases {
		assert.EqualValues(t, c.rule, fs[i].RuleID, "rule of %s:%d", c.dst, c.port)
		assert.Equal(t, netip.AddrPortFrom(c.dst, c.port), fs[i].Dst)
	}
	requireDecideMatchesFlows(t, e.d, fs)
}

// Deny and allow are combined across the stages: a deny from either drops,
// else an allow from either allows (the identity stage's rule first).
func TestPrivilegedPolicyAddrDenyAndIdentity(t *testing.T) {
	e := loadPolicy(t)
	e.enforce(epA, policymap.Config{EgressEnforced: true, EgressAddr: true})
	// Identity allows c and the /24 on TCP 80 and UDP; an address deny on
	// c TCP 80 (a deny rule on the pod address).
	e.allow(epA, with(tcpPort(80), false, idC), 5)
	e.allow(epA, with(policymap.Key{Proto: protoUDP}, false, idNode2), 7)
	e.allow(epA, with(tcpPort(80), false, idNode2), 8)
	e.addr(epA, false, "10.244.2.5/32", set1)
	e.deny(epA, with(tcpPort(80), false, set1), 6)
	// An address allow on the /24 for UDP 53 and TCP 80; an identity deny
	// of UDP to c2's identity on port 53 beats it.
	e.addr(epA, false, "10.244.2.0/24", set2)
	e.allow(epA, with(udpPort(53), false, set2), 9)
	e.allow(epA, with(tcpPort(80), false, set2), 9)
	e.allow(epA, with(tcpPort(22), false, set2), 10)
	e.deny(epA, with(udpPort(53), false, idNode2), 11)

	r := newFlows(t, e.d)
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polC, tcp, 80)), "address deny beats identity allow")
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polWorld, udp, 1)), "no entry of either stage")
	e.allow(epA, with(policymap.Key{Proto: protoUDP}, false, uint32(identity.ReservedWorld)), 12)
	assert.EqualValues(t, stack, e.send(e.pkt(polA, polWorld, udp, 1)), "identity allow, no address entry")
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polC2, udp, 53)), "identity deny beats address allow")
	assert.EqualValues(t, stack, e.send(e.pkt(polA, polC2, tcp, 80)), "both allow: identity rule")
	assert.EqualValues(t, stack, e.send(e.pkt(polA, polC2, tcp, 22)), "address allow only")
	assert.EqualValues(t, stack, e.send(e.pkt(polA, polC2, udp, 54)), "identity allow only")
	fs := r.drain()
	require.Len(t, fs, 7)
	want := []struct {
		verdict monitor.Verdict
		reason  metricsmap.Reason
		rule    uint32
	}{
		{monitor.VerdictDropped, metricsmap.DropPolicyDeny, 6},
		{monitor.VerdictDropped, metricsmap.DropPolicy, 0},
		{monitor.VerdictForwarded, metricsmap.ReasonFwdStack, 12},
		{monitor.VerdictDropped, metricsmap.DropPolicyDeny, 11},
		{monitor.VerdictForwarded, metricsmap.ReasonFwdStack, 8},
		{monitor.VerdictForwarded, metricsmap.ReasonFwdStack, 10},
		{monitor.VerdictForwarded, metricsmap.ReasonFwdStack, 7},
	}
	for i, w := range want {
		assert.Equal(t, w.verdict, fs[i].Verdict, "event %d", i)
		assert.Equal(t, w.reason, fs[i].Reason, "event %d", i)
		assert.EqualValues(t, w.rule, fs[i].RuleID, "event %d", i)
	}
}

// direction returns the events of the ingress (or egress) decisions in fs.
func direction(fs []monitor.Flow, ingress bool) []monitor.Flow {
	var out []monitor.Flow
	for _, f := range fs {
		if f.Ingress == ingress {
			out = append(out, f)
		}
	}
	return out
}

// Ingress address rules judge the source: b allows a/32 and the /24 except
// c on TCP 80, whether the packet comes from a local pod (checked at the
// sender's from_container) or through the stack (to_container).
func TestPrivilegedPolicyAddrIngress(t *testing.T) {
	e := loadPolicy(t)
	e.enforce(epB, policymap.Config{IngressEnforced: true, IngressAddr: true})
	e.addr(epB, true, "10.244.1.10/32", set1)
	e.addr(epB, true, "10.244.2.0/24", set2)
	e.addr(epB, true, "10.244.2.5/32", 0)
	e.allow(epB, with(tcpPort(80), true, set1), 41)
	e.allow(epB, with(policymap.Key{Proto: protoUDP}, true, set1), 41)
	e.allow(epB, with(echoRequest, true, set1), 41)
	e.allow(epB, with(tcpPort(80), true, set2), 42)
	// An egress entry for the same prefix is another direction's.
	e.addr(epB, false, "10.244.2.5/32", set1)

	r := newFlows(t, e.d)
	assert.EqualValues(t, local, e.send(e.pkt(polA, polB, tcp, 80)), "from a")
	assert.EqualValues(t, local, e.send(e.pkt(polA, polB, udp, 5353)), "UDP from a")
	assert.EqualValues(t, local, e.send(e.ping(polA, polB)), "ping from a")
	assert.EqualValues(t, shot, e.send(e.pkt(polA, polB, tcp, 81)), "other port from a")
	assert.EqualValues(t, stack, e.deliver(e.pkt(polC2, polB, tcp, 80)), "from c2 in the block")
	assert.EqualValues(t, shot, e.deliver(e.pkt(polC, polB, tcp, 80)), "from c: except hole")
	assert.EqualValues(t, shot, e.deliver(e.pkt(polC2, polB, udp, 80)), "UDP from c2")
	assert.EqualValues(t, shot, e.deliver(e.pkt(polWorld, polB, tcp, 80)), "from world")
	assert.EqualValues(t, 4, counter(t, e.d, aIfindex, metricsmap.DropPolicy, metricsmap.DirIngress).Packets)
	fs := direction(r.drain(), true)
	require.Len(t, fs, 8)
	assert.EqualValues(t, epB, fs[0].EndpointID)
	for i, rule := range []uint32{41, 41, 41, 0, 42, 0, 0, 0} {
		assert.EqualValues(t, rule, fs[i].RuleID, "event %d", i)
		assert.Equal(t, rule != 0, fs[i].Verdict == monitor.VerdictForwarded, "event %d", i)
	}
	requireDecideMatchesFlows(t, e.d, fs)
}

// Service traffic is judged on the backend's address after translation: a
// may reach c2:8080 by address; the frontend's address is no backend's.
func TestPrivilegedPolicyAddrServiceBackend(t *testing.T) {
	e := loadPolicy(t)
	vip := netip.MustParseAddr("10.96.0.10")
	vip2 := netip.MustParseAddr("10.96.0.11")
	for i, s := range []struct {
		fe      netip.Addr
		backend netip.Addr
	}{{vip, polC2}, {vip2, polC}} {
		id := uint32(i + 1)
		fe := lbmap.Frontend{Addr: s.fe, Port: 80, Proto: protoTCP}
		require.NoError(t, e.d.LB().UpsertBackend(id, lbmap.Backend{Addr: s.backend, Port: 8080, Proto: protoTCP}))
		require.NoError(t, e.d.LB().UpsertRevNAT(uint16(id), fe))
		require.NoError(t, e.d.LB().UpsertService(fe, lbmap.Service{RevNATID: uint16(id), Backends: []uint32{id}}))
	}
	e.enforce(epA, policymap.Config{EgressEnforced: true, EgressAddr: true})
	e.addr(epA, false, "10.244.2.6/32", set1)
	e.allow(epA, with(tcpPort(8080), false, set1), 51)
	// The frontends' block on the frontend port: not what is judged.
	e.addr(epA, false, "10.96.0.0/16", set2)
	e.allow(epA, with(tcpPort(80), false, set2), 52)

	r := newFlows(t, e.d)
	syn := e.pkt(polA, vip, tcp, 80)
	res := progtest.Run(t, e.d.FromContainer(), syn.IPv4(), aIfindex)
	require.EqualValues(t, stack, res.Verdict)
	out := progtest.Decode(t, res.Packet)
	assert.Equal(t, polC2.AsSlice(), []byte(out.IP.DstIP.To4()))
	assert.EqualValues(t, 8080, out.TCP.DstPort)
	assert.EqualValues(t, shot, e.send(e.pkt(polA, vip2, tcp, 80)), "backend c is outside the rules")
	fs := r.drain()
	require.Len(t, fs, 2)
	assert.Equal(t, monitor.VerdictForwarded, fs[0].Verdict)
	assert.EqualValues(t, 51, fs[0].RuleID)
	assert.Equal(t, netip.AddrPortFrom(polC2, 8080), fs[0].Dst)
	assert.Equal(t, netip.AddrPortFrom(vip, 80), fs[0].OrigDst)
	assert.Equal(t, monitor.VerdictDropped, fs[1].Verdict)
	assert.Equal(t, netip.AddrPortFrom(polC, 8080), fs[1].Dst)
}

// NodePort traffic to a local backend meets the backend's ingress address
// rules at the host device (host.c): the client's address is judged.
func TestPrivilegedPolicyAddrNodePort(t *testing.T) {
	e, _ := newNodePortPolicyEnv(t)
	require.NoError(t, e.d.Policy().SetConfig(npPolEP, policymap.Config{IngressEnforced: true, IngressAddr: true}))
	clients := netip.PrefixFrom(hostClient, 24).Masked()
	require.NoError(t, e.d.Policy().UpsertAddr(npPolEP, policymap.AddrKey{Ingress: true, Prefix: clients}, set1))
	e.policy(t, with(tcpPort(8080), true, set1), false, 61)
	r := newFlows(t, e.d)

	res := e.run(t, false, e.fromClient(hostExtIP, hostNodePort, 40000, progtest.TCPSyn), e.ext)
	require.Equal(t, uint32(progtest.ActRedirect), res.Verdict, "client in the block")
	fs := r.drain()
	require.Len(t, fs, 1)
	assert.EqualValues(t, 61, fs[0].RuleID)
	assert.Equal(t, netip.AddrPortFrom(hostPod, 8080), fs[0].Dst)

	require.NoError(t, e.d.Policy().UpsertAddr(npPolEP, policymap.AddrKey{Ingress: true, Prefix: netip.PrefixFrom(hostClient, 32)}, 0))
	res = e.run(t, false, e.fromClient(hostExtIP, hostNodePort, 40001, progtest.TCPSyn), e.ext)
	assert.Equal(t, uint32(progtest.ActShot), res.Verdict, "client in an except hole")
	assert.EqualValues(t, 1, counter(t, e.d, uint32(e.ext), metricsmap.DropPolicy, metricsmap.DirIngress).Packets)
}
