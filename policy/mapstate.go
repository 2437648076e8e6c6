package policy

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"github.com/sluicenet/sluice/identity"
)

// Direction is the traffic direction seen from the endpoint.
type Direction uint8

// Directions (the values the datapath uses).
const (
	Ingress Direction = 0
	Egress  Direction = 1
)

func (d Direction) String() string {
	if d == Ingress {
		return "ingress"
	}
	return "egress"
}

// EndpointID is the agent's endpoint number.
type EndpointID uint16

// Key is one map state key. PeerIdentity 0 is any peer; Proto 0 is any
// protocol (then the ports are 0-0); PortLo..PortHi is an inclusive range,
// 0-0 meaning every port. For ICMP/ICMPv6 the range holds the ICMP type.
type Key struct {
	Direction    Direction
	PeerIdentity identity.NumericIdentity
	Proto        uint8
	PortLo       uint16
	PortHi       uint16
}

func (k Key) String() string {
	s := fmt.Sprintf("%s peer=%s %s", k.Direction, k.PeerIdentity, ProtoName(k.Proto))
	switch {
	case k.Proto == ProtoAny || k.allPorts():
	case k.PortLo == k.PortHi:
		s += fmt.Sprintf("/%d", k.PortLo)
	default:
		s += fmt.Sprintf("/%d-%d", k.PortLo, k.PortHi)
	}
	return s
}

func (k Key) allPorts() bool { return k.PortLo == 0 && k.PortHi == 0 }

// portRange returns the key's effective inclusive range.
func (k Key) portRange() (uint16, uint16) {
	if k.allPorts() {
		return 0, 65535
	}
	return k.PortLo, k.PortHi
}

// RuleRef names the rule behind an entry, for flow events ("which rule
// allowed/denied this").
type RuleRef struct {
	Kind      string
	Namespace string
	Name      string
	// Spec is the index in specs (0 for spec; for Kubernetes policies 0).
	Spec int
	// Section is ingress, ingressDeny, egress or egressDeny; Index the rule's
	// index in it.
	Section string
	Index   int
}

func (r RuleRef) String() string {
	n := r.Name
	if r.Namespace != "" {
		n = r.Namespace + "/" + r.Name
	}
	return fmt.Sprintf("%s %s spec[%d].%s[%d]", r.Kind, n, r.Spec, r.Section, r.Index)
}

func (r RuleRef) less(o RuleRef) bool {
	return cmp.Or(cmp.Compare(r.Kind, o.Kind), cmp.Compare(r.Namespace, o.Namespace), cmp.Compare(r.Name, o.Name),
		cmp.Compare(r.Spec, o.Spec), cmp.Compare(r.Section, o.Section), cmp.Compare(r.Index, o.Index)) < 0
}

// Entry is a map state value.
type Entry struct {
	Deny bool
	Rule RuleRef
}

// EndpointPolicy is an endpoint's resolved policy. It is immutable once
// returned. Lookup contract (Verdict): a packet matching any deny entry is
// dropped; otherwise one matching an allow entry passes; otherwise it passes
// only if the direction is not enforced. Entries are kept consistent so
// that the most specific matching entry (LookupMostSpecific, what a kernel
// LPM lookup finds) always gives that same verdict. With address rules a
// packet is decided in two stages (VerdictAddr, LookupMostSpecificAddr).
type EndpointPolicy struct {
	Endpoint        EndpointID
	Identity        identity.NumericIdentity
	IngressEnforced bool
	EgressEnforced  bool
	// Audit: the datapath reports policy drops but lets the packets pass.
	Audit   bool
	Entries map[Key]Entry
	// Addrs is the address trie (see addr.go): node → address-set identity
	// (0: no rule matches there). IngressAddr and EgressAddr say whether a
	// direction has nodes (the datapath runs the address stage only then).
	Addrs                   map[AddrKey]identity.NumericIdentity
	IngressAddr, EgressAddr bool
	// addrSets holds the rules of each address set.
	addrSets map[addrSetKey][]RuleRef
}

// Enforced returns the enforcement flag of a direction.
func (p *EndpointPolicy) Enforced(d Direction) bool {
	if d == Ingress {
		return p.IngressEnforced
	}
	return p.EgressEnforced
}

func keyMatches(k Key, d Direction, peer identity.NumericIdentity, proto uint8, port uint16) bool {
	if k.Direction != d || (k.PeerIdentity != 0 && k.PeerIdentity != peer) || (k.Proto != ProtoAny && k.Proto != proto) {
		return false
	}
	lo, hi := k.portRange()
	return port >= lo && port <= hi
}

// Verdict decides a packet by the identity stage only: direction, peer
// identity, protocol and destination port (ICMP type for ICMP). It returns
// whether it passes, the deciding rule and whether an entry matched at all.
// VerdictAddr adds the address stage.
func (p *EndpointPolicy) Verdict(d Direction, peer identity.NumericIdentity, proto uint8, port uint16) (allowed bool, rule RuleRef, matched bool) {
	if allowed, rule, matched = p.stage(d, peer, false, proto, port, false); matched {
		return allowed, rule, true
	}
	return !p.Enforced(d), RuleRef{}, false
}

// stage looks one stage up. exact restricts it to entries keyed by exactly
// peer (the address stage; the identity stage also matches any-peer
// entries). mostSpecific is the kernel's lookup (LookupMostSpecific);
// otherwise the truth rule: any matching deny wins, then the most specific
// allow.
func (p *EndpointPolicy) stage(d Direction, peer identity.NumericIdentity, exact bool, proto uint8, port uint16, mostSpecific bool) (allowed bool, rule RuleRef, matched bool) {
	best, bestK, bestS := Entry{}, Key{}, -1
	for k, e := range p.Entries {
		if !keyMatches(k, d, peer, proto, port) || (exact && k.PeerIdentity != peer) {
			continue
		}
		if e.Deny && !mostSpecific {
			return false, e.Rule, true
		}
		// Equally specific entries share the datapath's map key; the
		// agent keeps the deny, else the first in key order (MapState),
		// so the rule named here is the one the datapath names.
		s := specificity(k, port)
		if s > bestS || (s == bestS && e.Deny && !best.Deny) ||
			(s == bestS && e.Deny == best.Deny && compareKeys(k, bestK) < 0) {
			best, bestK, bestS = e, k, s
		}
	}
	if bestS < 0 {
		return false, RuleRef{}, false
	}
	return !best.Deny, best.Rule, true
}

// specificity orders entries for the most-specific lookup: protocol given
// beats any protocol, then a longer port prefix (of the block holding the
// port in the entry's range), then a given peer over any peer.
func specificity(k Key, port uint16) int {
	s := 0
	if k.Proto != ProtoAny {
		s = 1 << 8
		lo, hi := k.portRange()
		for _, pp := range PortRangeToPrefixes(lo, hi) {
			if port >= pp.Port && port <= pp.Last() {
				s += int(pp.PrefixLen+1) << 1
			}
		}
	}
	if k.PeerIdentity != 0 {
		s++
	}
	return s
}

// LookupMostSpecific is the lookup the datapath performs in the identity
// stage: among matching entries the one with the highest specificity
// (protocol, then port prefix length, then peer) wins, deny winning ties.
// It returns the same verdict as Verdict for every packet.
func (p *EndpointPolicy) LookupMostSpecific(d Direction, peer identity.NumericIdentity, proto uint8, port uint16) (allowed bool, rule RuleRef, matched bool) {
	if allowed, rule, matched = p.stage(d, peer, false, proto, port, true); matched {
		return allowed, rule, true
	}
	return !p.Enforced(d), RuleRef{}, false
}

// Keys returns the entries' keys in a stable order.
func (p *EndpointPolicy) Keys() []Key {
	ks := make([]Key, 0, len(p.Entries))
	for k := range p.Entries {
		ks = append(ks, k)
	}
	sortKeys(ks)
	return ks
}

func sortKeys(ks []Key) { slices.SortFunc(ks, compareKeys) }

func compareKeys(a, b Key) int {
	return cmp.Or(cmp.Compare(a.Direction, b.Direction), cmp.Compare(a.PeerIdentity, b.PeerIdentity),
		cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.PortLo, b.PortLo), cmp.Compare(a.PortHi, b.PortHi))
}

// equal reports whether two policies hold the same flags and entries.
func (p *EndpointPolicy) equal(o *EndpointPolicy) bool {
	if p == nil || o == nil {
		return p == o
	}
	if p.IngressEnforced != o.IngressEnforced || p.EgressEnforced != o.EgressEnforced || p.Audit != o.Audit ||
		p.IngressAddr != o.IngressAddr || p.EgressAddr != o.EgressAddr ||
		p.Identity != o.Identity || len(p.Entries) != len(o.Entries) || !maps.Equal(p.Addrs, o.Addrs) ||
		!maps.EqualFunc(p.addrSets, o.addrSets, slices.Equal) {
		return false
	}
	for k, e := range p.Entries {
		if oe, ok := o.Entries[k]; !ok || oe != e {
			return false
		}
	}
	return true
}

// MapDiff is what turns one map state into another.
type MapDiff struct {
	// Upserts holds new and changed entries.
	Upserts map[Key]Entry
	// Deletes holds keys to remove, sorted.
	Deletes []Key
	// AddrUpserts holds new and changed address trie nodes.
	AddrUpserts map[AddrKey]identity.NumericIdentity
	// AddrDeletes holds address trie nodes to remove, sorted.
	AddrDeletes []AddrKey
}

// Empty reports whether the diff changes nothing.
func (d MapDiff) Empty() bool {
	return len(d.Upserts) == 0 && len(d.Deletes) == 0 && len(d.AddrUpserts) == 0 && len(d.AddrDeletes) == 0
}

// Diff returns the entry and address node changes from old to new; either
// may be nil (nothing). Flags (enforcement, audit, address stages) are
// compared by the caller.
func Diff(old, new *EndpointPolicy) MapDiff {
	var oe, ne map[Key]Entry
	var oa, na map[AddrKey]identity.NumericIdentity
	if old != nil {
		oe, oa = old.Entries, old.Addrs
	}
	if new != nil {
		ne, na = new.Entries, new.Addrs
	}
	d := MapDiff{Upserts: map[Key]Entry{}, AddrUpserts: map[AddrKey]identity.NumericIdentity{}}
	d.Deletes = diffMaps(oe, ne, d.Upserts)
	d.AddrDeletes = diffMaps(oa, na, d.AddrUpserts)
	sortKeys(d.Deletes)
	sortAddrKeys(d.AddrDeletes)
	return d
}

// diffMaps puts into upserts what new adds or changes and returns the keys
// only old has.
func diffMaps[K, V comparable](old, new, upserts map[K]V) []K {
	for k, v := range new {
		if o, ok := old[k]; !ok || o != v {
			upserts[k] = v
		}
	}
	var deletes []K
	for k := range old {
		if _, ok := new[k]; !ok {
			deletes = append(deletes, k)
		}
	}
	return deletes
}

// mapBuilder accumulates entries with deny precedence.
type mapBuilder map[Key]Entry

func (m mapBuilder) add(k Key, e Entry) {
	old, ok := m[k]
	switch {
	case !ok:
		m[k] = e
	case old.Deny != e.Deny:
		if e.Deny {
			m[k] = e
		}
	case e.Rule.less(old.Rule):
		m[k] = e
	}
}

// applyDenyPrecedence makes the entries consistent for most-specific
// lookups: allow entries wholly inside a deny entry are removed, and where a
// deny entry partly overlaps a more specific allow entry, a deny entry for
// the overlap is added (at least as specific as the allow entry in every
// dimension, so it wins the lookup).
func (m mapBuilder) applyDenyPrecedence() {
	var denies, allows []Key
	for k, e := range m {
		if e.Deny {
			denies = append(denies, k)
		} else {
			allows = append(allows, k)
		}
	}
	if len(denies) == 0 {
		return
	}
	sortKeys(denies)
	for _, a := range allows {
		alo, ahi := a.portRange()
		for _, d := range denies {
			if d.Direction != a.Direction {
				continue
			}
			if d.PeerIdentity != 0 && a.PeerIdentity != 0 && d.PeerIdentity != a.PeerIdentity {
				continue
			}
			if d.Proto != ProtoAny && a.Proto != ProtoAny && d.Proto != a.Proto {
				continue
			}
			dlo, dhi := d.portRange()
			lo, hi := max(alo, dlo), min(ahi, dhi)
			if lo > hi {
				continue
			}
			if (d.PeerIdentity == 0 || d.PeerIdentity == a.PeerIdentity) && (d.Proto == ProtoAny || d.Proto == a.Proto) &&
				dlo <= alo && dhi >= ahi {
				delete(m, a) // wholly denied
				break
			}
			x := Key{Direction: a.Direction, PeerIdentity: max(a.PeerIdentity, d.PeerIdentity), Proto: max(a.Proto, d.Proto)}
			if x.Proto != ProtoAny && !(lo == 0 && hi == 65535) {
				x.PortLo, x.PortHi = lo, hi
			}
			m.add(x, m[d])
		}
	}
}
