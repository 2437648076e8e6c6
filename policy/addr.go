package policy

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/sluicenet/sluice/identity"
)

// Address semantics (issue 16). A rule whose peer is an address block (a
// Kubernetes NetworkPolicy ipBlock, or a SluiceNetworkPolicy CIDR peer with
// AnnotationCIDRSemantics: address) matches the peer's IPv4 address,
// whoever holds it (pods and nodes included), not an identity. Per endpoint
// and direction the resolver builds an address trie: one node for every
// block and every except the selecting rules name, whose value is the
// address-set identity of the rules matching there (AddrSetBase | n), 0 for
// a node where no rule matches (an except hole). The entries of a set are
// kept in Entries keyed by the set identity, exactly as for a peer identity,
// with deny precedence inside the set. A packet is decided in two stages
// (VerdictAddr, LookupMostSpecificAddr): the identity stage, and the address
// stage (peer address → longest trie node → set → entries keyed by exactly
// that set); a deny from either wins, then an allow from either.
//
// IPv6 blocks keep CIDR-identity semantics: the address trie is IPv4 (the
// datapath is IPv4).

// AnnotationCIDRSemantics on a SluiceNetworkPolicy or
// SluiceClusterwideNetworkPolicy chooses what its CIDR peers
// (toCIDR/fromCIDR/toCIDRSet/fromCIDRSet) mean: CIDRSemanticsIdentity (the
// default, CiliumNetworkPolicy's: CIDR identities, never pods) or
// CIDRSemanticsAddress (Kubernetes ipBlock's: every holder of an address).
// Any other value rejects the policy.
const (
	AnnotationCIDRSemantics = Group + "/cidr-semantics"
	CIDRSemanticsAddress    = "address"
	CIDRSemanticsIdentity   = "identity"
)

// AddrSetBase is the first address-set identity: the set numbered n (n ≥ 1,
// per endpoint and direction) is AddrSetBase | n. It is outside every
// allocated identity range.
const AddrSetBase identity.NumericIdentity = 0xFE000000

// IsAddrSet reports whether id is an address-set identity.
func IsAddrSet(id identity.NumericIdentity) bool { return id&AddrSetBase == AddrSetBase }

// AddrKey is a node of an endpoint's address trie: direction and masked IPv4
// prefix.
type AddrKey struct {
	Direction Direction
	Prefix    netip.Prefix
}

func (k AddrKey) String() string { return k.Direction.String() + " " + k.Prefix.String() }

func sortAddrKeys(ks []AddrKey) {
	slices.SortFunc(ks, func(a, b AddrKey) int {
		return cmp.Or(cmp.Compare(a.Direction, b.Direction), a.Prefix.Addr().Compare(b.Prefix.Addr()),
			cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()))
	})
}

// addrBlock is one address peer: a block minus its excepts.
type addrBlock struct {
	cidr   netip.Prefix
	except []netip.Prefix
}

func (b addrBlock) contains(p netip.Prefix) bool {
	if !containsPrefix(b.cidr, p) {
		return false
	}
	for _, e := range b.except {
		if containsPrefix(e, p) {
			return false
		}
	}
	return true
}

func (b addrBlock) String() string {
	s := "addr " + b.cidr.String()
	for _, e := range b.except {
		s += " except " + e.String()
	}
	return s
}

// addCIDRPeer adds a compiled CIDR peer: an address peer when address
// semantics apply and the block is IPv4, a CIDR-identity peer otherwise.
func (r *rule) addCIDRPeer(pe peer, address bool) {
	if address && pe.cidr.Addr().Is4() {
		r.addrs = append(r.addrs, addrBlock{cidr: pe.cidr, except: pe.except})
		return
	}
	r.peers = append(r.peers, pe)
}

// addrSetKey names a set of an endpoint's policy.
type addrSetKey struct {
	dir Direction
	id  identity.NumericIdentity
}

// AddrSetRules returns the rules of an address set (for `sluice policy
// get`), sorted; nil for 0 (no rule) or an unknown set.
func (p *EndpointPolicy) AddrSetRules(d Direction, set identity.NumericIdentity) []RuleRef {
	return p.addrSets[addrSetKey{d, set}]
}

// AddrKeys returns the address trie nodes in a stable order.
func (p *EndpointPolicy) AddrKeys() []AddrKey {
	ks := slices.Collect(maps.Keys(p.Addrs))
	sortAddrKeys(ks)
	return ks
}

// addrSet is one set being built: its rules and entries (keyed by
// AddrSetBase until numbered).
type addrSet struct {
	rules   []*rule
	entries mapBuilder
	id      identity.NumericIdentity
}

// addAddrs builds the address trie nodes and set entries of one direction
// from the rules selecting the endpoint that have address peers. prev is
// the endpoint's previous policy: a set whose rules and entries are
// unchanged keeps its number, and a set that changed gets a number prev did
// not use, so that writing new entries never alters a set the kernel may
// still reach through an old trie node (see agent/policymgr's write order).
func (r *Resolver) addAddrs(out, prev *EndpointPolicy, ep Endpoint, d Direction, rules []*rule) {
	seen := map[netip.Prefix]bool{}
	var nodes []netip.Prefix
	for _, ru := range rules {
		for _, b := range ru.addrs {
			for _, q := range append([]netip.Prefix{b.cidr}, b.except...) {
				if !seen[q] {
					seen[q] = true
					nodes = append(nodes, q)
				}
			}
		}
	}
	if len(nodes) == 0 {
		return
	}
	slices.SortFunc(nodes, func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
	})
	sets := map[string]*addrSet{}
	var order []*addrSet
	nodeSet := make([]*addrSet, len(nodes))
	for i, q := range nodes {
		var match []*rule
		for _, ru := range rules {
			if slices.ContainsFunc(ru.addrs, func(b addrBlock) bool { return b.contains(q) }) {
				match = append(match, ru)
			}
		}
		if len(match) == 0 {
			continue // a hole: no rule matches here
		}
		slices.SortFunc(match, func(a, b *rule) int { return cmp.Compare(a.ref.String(), b.ref.String()) })
		refs := make([]string, len(match))
		for j, ru := range match {
			refs[j] = ru.ref.String()
		}
		key := strings.Join(refs, "\x00")
		s, ok := sets[key]
		if !ok {
			s = &addrSet{rules: match, entries: mapBuilder{}}
			for _, ru := range match {
				r.addRule(s.entries, ep, ru, func(yield func(identity.NumericIdentity)) { yield(AddrSetBase) })
			}
			s.entries.applyDenyPrecedence()
			sets[key] = s
			order = append(order, s)
		}
		nodeSet[i] = s
	}
	r.numberSets(prev, d, order)
	out.setAddrFlag(d)
	for i, q := range nodes {
		var id identity.NumericIdentity
		if s := nodeSet[i]; s != nil {
			id = s.id
		}
		out.Addrs[AddrKey{Direction: d, Prefix: q}] = id
	}
	for _, s := range order {
		out.addrSets[addrSetKey{d, s.id}] = refsOf(s.rules)
		for k, e := range s.entries {
			k.PeerIdentity = s.id
			out.Entries[k] = e
		}
	}
}

// numberSets gives each set its identity: prev's number when prev had a set
// with the same rules and the same entries, else the lowest number prev and
// the other sets do not use.
func (r *Resolver) numberSets(prev *EndpointPolicy, d Direction, sets []*addrSet) {
	used := map[identity.NumericIdentity]bool{}
	var prevSets map[identity.NumericIdentity]map[Key]Entry
	if prev != nil {
		prevSets = map[identity.NumericIdentity]map[Key]Entry{}
		for sk := range prev.addrSets {
			if sk.dir == d {
				used[sk.id] = true
				prevSets[sk.id] = map[Key]Entry{}
			}
		}
		for k, e := range prev.Entries {
			if es, ok := prevSets[k.PeerIdentity]; ok && k.Direction == d {
				k.PeerIdentity = AddrSetBase
				es[k] = e
			}
		}
	}
	taken := map[identity.NumericIdentity]bool{}
	var fresh []*addrSet
	for _, s := range sets {
		for id, es := range prevSets {
			if !taken[id] && maps.Equal(es, map[Key]Entry(s.entries)) && slices.Equal(prev.addrSets[addrSetKey{d, id}], refsOf(s.rules)) {
				s.id, taken[id] = id, true
				break
			}
		}
		if s.id == 0 {
			fresh = append(fresh, s)
		}
	}
	n := identity.NumericIdentity(1)
	for _, s := range fresh {
		for used[AddrSetBase|n] || taken[AddrSetBase|n] {
			n++
		}
		s.id, taken[AddrSetBase|n] = AddrSetBase|n, true
	}
}

func refsOf(rules []*rule) []RuleRef {
	out := make([]RuleRef, len(rules))
	for i, ru := range rules {
		out[i] = ru.ref
	}
	return out
}

func (p *EndpointPolicy) setAddrFlag(d Direction) {
	if d == Ingress {
		p.IngressAddr = true
	} else {
		p.EgressAddr = true
	}
}

// AddrEnabled reports whether the endpoint has address rules in direction d
// (the datapath then runs the address stage).
func (p *EndpointPolicy) AddrEnabled(d Direction) bool {
	if d == Ingress {
		return p.IngressAddr
	}
	return p.EgressAddr
}
