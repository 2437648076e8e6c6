package datapath_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"

	"github.com/google/gopacket/layers"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/policymgr"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/identity"
	"github.com/sluicenet/sluice/policy"
)

// peers a's policy is tested against: the address a packet uses and the
// identity the IP cache (or the endpoint map) gives it.
var randPeers = []struct {
	addr netip.Addr
	id   identity.NumericIdentity
}{
	{polB, idB}, {polC, idC}, {polC2, idNode2}, {polWorld, identity.ReservedWorld}, {polHostIP, identity.ReservedHost},
}

func randPolicy(rng *rand.Rand) *policy.EndpointPolicy {
	p := &policy.EndpointPolicy{
		IngressEnforced: rng.IntN(4) != 0,
		EgressEnforced:  rng.IntN(4) != 0,
		Entries:         map[policy.Key]policy.Entry{},
	}
	n := 1 + rng.IntN(40)
	for i := 0; i < n; i++ {
		k := policy.Key{Direction: policy.Direction(rng.IntN(2))}
		if rng.IntN(3) != 0 {
			k.PeerIdentity = randPeers[rng.IntN(len(randPeers))].id
		}
		k.Proto = []uint8{policy.ProtoAny, policy.ProtoTCP, policy.ProtoUDP, policy.ProtoICMP}[rng.IntN(4)]
		if k.Proto != policy.ProtoAny && rng.IntN(5) != 0 {
			// Ranges in a small space so that they overlap, sometimes at the top.
			base := uint16(0)
			if rng.IntN(4) == 0 {
				base = 65535 - 300
			}
			lo := base + uint16(rng.IntN(300))
			hi := lo + uint16(rng.IntN(int(min(65535-uint32(lo), 80))+1))
			if lo == 0 {
				lo = 1
			}
			if hi < lo {
				hi = lo
			}
			k.PortLo, k.PortHi = lo, hi
		}
		p.Entries[k] = policy.Entry{Deny: rng.IntN(3) == 0, Rule: policy.RuleRef{Name: fmt.Sprint(i)}}
	}
	return p
}

// randRuleID numbers randPolicy's rules (named by their index) from 1.
func randRuleID(r policy.RuleRef) uint32 {
	if r.Name == "" {
		return 0
	}
	n, _ := strconv.Atoi(r.Name)
	return uint32(n) + 1
}

// TestPrivilegedPolicyRandomAgainstGo programs random map states produced
// from policy.EndpointPolicy (through PolicyMapState) for pod a and checks
// the programs' verdict on random packets in both directions against
// policy.LookupMostSpecific, and the kernel-map lookup of policymap.Decide
// (verdict and rule) against both.
func TestPrivilegedPolicyRandomAgainstGo(t *testing.T) {
	// Seeds that once failed, then a fresh one (logged). Each runs on
	// freshly loaded programs: conntrack entries of one would answer the
	// other's packets.
	for _, seed := range []uint64{7618513997981987655, rand.Uint64()} {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) { policyRandomAgainstGo(t, seed) })
	}
}

func policyRandomAgainstGo(t *testing.T, seed uint64) {
	e := loadPolicy(t)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	sport := uint16(1)
	checked := map[bool]int{}
	for round := 0; round < 40; round++ {
		p := randPolicy(rng)
		cfg, entries := policymgr.MapState(p, randRuleID)
		_, _, err := e.d.Policy().Sync(epA, cfg, entries)
		require.NoError(t, err)
		keys := p.Keys()
		for i := 0; i < 250; i++ {
			peer := randPeers[rng.IntN(len(randPeers))]
			proto := []uint8{policy.ProtoTCP, policy.ProtoUDP, policy.ProtoICMP, 47}[rng.IntN(4)]
			var port uint16
			switch {
			case proto == policy.ProtoICMP:
				port = []uint16{3, 8, 11, 13}[rng.IntN(4)]
			case proto == 47:
			case rng.IntN(3) == 0:
				port = uint16(rng.IntN(65536))
			default:
				k := keys[rng.IntN(len(keys))]
				port = []uint16{k.PortLo - 1, k.PortLo, k.PortHi, k.PortHi + 1}[rng.IntN(4)]
			}
			dir := policy.Direction(rng.IntN(2))
			sport++
			if sport == 0 {
				sport = 1
			}
			pkt := progtest.Packet{SrcMAC: aMAC, DstMAC: aNodeMAC, Src: polA, Dst: peer.addr, Proto: layers.IPProtocol(proto), SrcPort: sport, DstPort: port, Payload: []byte("r")}
			prog := e.d.FromContainer()
			if dir == policy.Ingress {
				pkt.Src, pkt.Dst = peer.addr, polA
				if peer.addr == polB {
					pkt.SrcMAC = bMAC // b sends: from_container checks a's ingress
				} else {
					pkt.SrcMAC, pkt.DstMAC = aNodeMAC, aMAC
					prog = e.d.ToContainer()
				}
			}
			raw := pkt.IPv4()
			if proto == policy.ProtoICMP {
				raw[14+20] = uint8(port)
				raw[14+20+4], raw[14+20+5] = uint8(sport>>8), uint8(sport) // a fresh echo id
			}
			got := progtest.Run(t, prog, raw, aIfindex).Verdict != progtest.ActShot
			want, rule, matched := p.LookupMostSpecific(dir, peer.id, proto, port)
			if got != want {
				t.Fatalf("round %d: %s peer %d proto %d port %d: BPF allowed=%v, Go allowed=%v\npolicy: ingress enforced %v, egress enforced %v\n%v",
					round, dir, peer.id, proto, port, got, want, p.IngressEnforced, p.EgressEnforced, p.Entries)
			}
			// The trace's lookup in the kernel maps (sluice policy trace)
			// decides as the program did, naming the rule Go names.
			dec, err := e.d.Policy().Decide(epA, dir == policy.Ingress, uint32(peer.id), peer.addr, proto, port)
			require.NoError(t, err)
			if dec.Allowed != got || dec.Matched != matched || dec.RuleID != randRuleID(rule) {
				t.Fatalf("round %d: %s peer %d proto %d port %d: BPF allowed=%v, Go rule %v matched=%v; Decide %+v",
					round, dir, peer.id, proto, port, got, rule, matched, dec)
			}
			checked[want]++
		}
	}
	t.Logf("packets allowed %d, dropped %d", checked[true], checked[false])
	require.NotZero(t, checked[true])
	require.NotZero(t, checked[false])
}
