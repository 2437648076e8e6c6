package policy

import (
	"fmt"
	"net/netip"

	"github.com/sluicenet/sluice/identity"
)

// AddrSet returns the value of the longest address trie node of direction d
// holding addr (what the kernel's LPM lookup finds): the address-set
// identity, 0 for a hole; found is false when no node holds addr.
func (p *EndpointPolicy) AddrSet(d Direction, addr netip.Addr) (set identity.NumericIdentity, found bool) {
	if !addr.Is4() {
		return 0, false
	}
	best := -1
	for k, id := range p.Addrs {
		if k.Direction == d && k.Prefix.Bits() > best && k.Prefix.Contains(addr) {
			set, best = id, k.Prefix.Bits()
		}
	}
	return set, best >= 0
}

// VerdictAddr decides a packet in both stages: the identity stage (peer
// identity, as Verdict) and, when the endpoint has address rules in
// direction d, the address stage (the peer's address: egress the
// destination after service translation, ingress the source). A deny from
// either stage drops; else an allow from either passes (the identity
// stage's rule first); else the packet passes only if d is not enforced.
// An invalid addr skips the address stage.
func (p *EndpointPolicy) VerdictAddr(d Direction, peer identity.NumericIdentity, addr netip.Addr, proto uint8, port uint16) (allowed bool, rule RuleRef, matched bool) {
	return p.decide(d, peer, addr, proto, port, false)
}

// LookupMostSpecificAddr is VerdictAddr as the datapath computes it: each
// stage by its most specific matching entry (LookupMostSpecific; the address
// stage over the entries keyed by exactly the set). It returns the same
// verdict as VerdictAddr for every packet.
func (p *EndpointPolicy) LookupMostSpecificAddr(d Direction, peer identity.NumericIdentity, addr netip.Addr, proto uint8, port uint16) (allowed bool, rule RuleRef, matched bool) {
	return p.decide(d, peer, addr, proto, port, true)
}

func (p *EndpointPolicy) decide(d Direction, peer identity.NumericIdentity, addr netip.Addr, proto uint8, port uint16, mostSpecific bool) (bool, RuleRef, bool) {
	idAllow, idRule, idMatch := p.stage(d, peer, false, proto, port, mostSpecific)
	if idMatch && !idAllow {
		return false, idRule, true
	}
	var adAllow, adMatch bool
	var adRule RuleRef
	if p.AddrEnabled(d) {
		if set, ok := p.AddrSet(d, addr); ok && set != 0 {
			adAllow, adRule, adMatch = p.stage(d, set, true, proto, port, mostSpecific)
		}
	}
	switch {
	case adMatch && !adAllow:
		return false, adRule, true
	case idMatch:
		return true, idRule, true
	case adMatch:
		return true, adRule, true
	}
	return !p.Enforced(d), RuleRef{}, false
}

// Trace is the outcome of Allowed.
type Trace struct {
	Allowed bool
	// Egress and Ingress are the two verdicts; Rule* the deciding rules
	// (zero when the direction was not enforced and nothing matched).
	Egress, Ingress         bool
	EgressRule, IngressRule RuleRef
}

// Allowed decides a packet from endpoint src to endpoint dst (both local) on
// a protocol and destination port: src's egress map state with dst's
// identity and address as peer, and dst's ingress map state with src's
// (VerdictAddr). This is the truth-table helper of the tests; `sluice
// policy trace` looks the kernel's maps up instead (policymap.Decide), so
// that it shows what the datapath holds.
func (r *Resolver) Allowed(src, dst EndpointID, proto uint8, port uint16) (Trace, error) {
	s, ok := r.endpoints[src]
	if !ok {
		return Trace{}, fmt.Errorf("trace: unknown endpoint %d", src)
	}
	d, ok := r.endpoints[dst]
	if !ok {
		return Trace{}, fmt.Errorf("trace: unknown endpoint %d", dst)
	}
	var t Trace
	t.Egress, t.EgressRule, _ = s.policy.VerdictAddr(Egress, d.ep.Identity, d.ep.IPv4, proto, port)
	t.Ingress, t.IngressRule, _ = d.policy.VerdictAddr(Ingress, s.ep.Identity, s.ep.IPv4, proto, port)
	t.Allowed = t.Egress && t.Ingress
	return t, nil
}
