package policy

import (
	"fmt"
	"maps"
	"net/netip"
	"sort"

	"github.com/sluicenet/sluice/identity"
)

// EnforcementMode is the agent-wide policy enforcement mode.
type EnforcementMode uint8

// Enforcement modes (Cilium's).
const (
	// EnforcementDefault: a direction is enforced once a policy selects the
	// endpoint in it.
	EnforcementDefault EnforcementMode = iota
	// EnforcementAlways: every direction of every endpoint is enforced
	// (default deny even when no policy selects it).
	EnforcementAlways
	// EnforcementNever: nothing is enforced; map states are empty.
	EnforcementNever
)

// ParseEnforcementMode parses "default", "always" or "never".
func ParseEnforcementMode(s string) (EnforcementMode, error) {
	switch s {
	case "", "default":
		return EnforcementDefault, nil
	case "always":
		return EnforcementAlways, nil
	case "never":
		return EnforcementNever, nil
	}
	return 0, fmt.Errorf("policy enforcement mode %q: want default, always or never", s)
}

// Options configure a Resolver.
type Options struct {
	Mode EnforcementMode
	// Audit marks every endpoint policy as audit-only: the datapath owner
	// reports would-be drops and lets the packets pass.
	Audit bool
}

// Endpoint is what the resolver needs of a local endpoint.
type Endpoint struct {
	ID       EndpointID
	Identity identity.NumericIdentity
	// Labels are the identity's labels (selected by endpointSelector).
	Labels identity.Labels
	// NamedPorts are the pod's container ports by name.
	NamedPorts map[string]NamedPort
	// IPv4 is the endpoint's address, the peer address in Allowed (address
	// rules do not depend on it: their trie is built from the rules).
	IPv4 netip.Addr
}

type endpointState struct {
	ep     Endpoint
	policy *EndpointPolicy
}

// Resolver keeps policies, endpoints and identities and each endpoint's
// resolved map state, recomputing only what a change can affect. It is not
// safe for concurrent use: the agent's policy manager owns it.
type Resolver struct {
	opts       Options
	policies   map[Ref]*Policy
	endpoints  map[EndpointID]*endpointState
	identities map[identity.NumericIdentity]identity.Labels
	// byIdentity indexes endpoints by identity (egress named ports).
	byIdentity map[identity.NumericIdentity]map[EndpointID]struct{}
}

// NewResolver returns a resolver that knows the reserved identities.
func NewResolver(opts Options) *Resolver {
	return &Resolver{
		opts:       opts,
		policies:   map[Ref]*Policy{},
		endpoints:  map[EndpointID]*endpointState{},
		identities: identity.ReservedIdentities(),
		byIdentity: map[identity.NumericIdentity]map[EndpointID]struct{}{},
	}
}

// MapState returns an endpoint's resolved policy (read-only).
func (r *Resolver) MapState(id EndpointID) (*EndpointPolicy, bool) {
	st, ok := r.endpoints[id]
	if !ok {
		return nil, false
	}
	return st.policy, true
}

// Endpoints returns the known endpoint IDs, sorted.
func (r *Resolver) Endpoints() []EndpointID {
	out := make([]EndpointID, 0, len(r.endpoints))
	for id := range r.endpoints {
		out = append(out, id)
	}
	sortIDs(out)
	return out
}

// Policies returns the applied policies' keys.
func (r *Resolver) Policies() []Ref {
	out := make([]Ref, 0, len(r.policies))
	for k := range r.policies {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Prefixes returns every CIDR the applied policies name (see Policy.Prefixes).
func (r *Resolver) Prefixes() []netip.Prefix {
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	for _, p := range r.policies {
		for _, q := range p.Prefixes() {
			if !seen[q] {
				seen[q] = true
				out = append(out, q)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// RulesSelecting returns the references of the rules that select an
// endpoint (for `sluice policy get`).
func (r *Resolver) RulesSelecting(id EndpointID) []RuleRef {
	st, ok := r.endpoints[id]
	if !ok {
		return nil
	}
	var out []RuleRef
	for _, p := range r.policies {
		for _, ru := range p.rules {
			if ru.subject.matches(st.ep.Labels) {
				out = append(out, ru.ref)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].less(out[j]) })
	return out
}

// UpsertPolicy adds or replaces a policy and returns the endpoints whose map
// state changed. Only endpoints the old or new policy selects are recomputed.
func (r *Resolver) UpsertPolicy(p *Policy) []EndpointID {
	affected := map[EndpointID]struct{}{}
	if old, ok := r.policies[p.Key]; ok {
		r.selected(old, affected)
	}
	// Copy the rules: the peer caches belong to this resolver.
	cp := *p
	cp.rules = make([]*rule, len(p.rules))
	for i, ru := range p.rules {
		c := *ru
		r.fillPeerCache(&c)
		cp.rules[i] = &c
	}
	p = &cp
	r.policies[p.Key] = p
	r.selected(p, affected)
	return r.recompute(affected)
}

// DeletePolicy removes a policy and returns the endpoints whose map state
// changed.
func (r *Resolver) DeletePolicy(key Ref) []EndpointID {
	old, ok := r.policies[key]
	if !ok {
		return nil
	}
	affected := map[EndpointID]struct{}{}
	r.selected(old, affected)
	delete(r.policies, key)
	return r.recompute(affected)
}

// UpsertEndpoint adds or updates an endpoint and returns the endpoints whose
// map state changed (itself, and others whose egress named ports resolve
// through it).
func (r *Resolver) UpsertEndpoint(ep Endpoint) []EndpointID {
	ep.Labels = identity.NewLabels(ep.Labels...)
	affected := map[EndpointID]struct{}{ep.ID: {}}
	old, ok := r.endpoints[ep.ID]
	if ok {
		if old.ep.Identity != ep.Identity || !maps.Equal(old.ep.NamedPorts, ep.NamedPorts) {
			r.namedPortUsers(old.ep.Identity, affected)
			r.namedPortUsers(ep.Identity, affected)
		}
		r.unindex(old.ep)
		old.ep = ep
	} else {
		r.endpoints[ep.ID] = &endpointState{ep: ep}
		if len(ep.NamedPorts) > 0 {
			r.namedPortUsers(ep.Identity, affected)
		}
	}
	if r.byIdentity[ep.Identity] == nil {
		r.byIdentity[ep.Identity] = map[EndpointID]struct{}{}
	}
	r.byIdentity[ep.Identity][ep.ID] = struct{}{}
	return r.recompute(affected)
}

// DeleteEndpoint forgets an endpoint. The result includes the endpoint
// itself (MapState then reports it gone) and others whose egress named
// ports resolved through it.
func (r *Resolver) DeleteEndpoint(id EndpointID) []EndpointID {
	st, ok := r.endpoints[id]
	if !ok {
		return nil
	}
	delete(r.endpoints, id)
	r.unindex(st.ep)
	affected := map[EndpointID]struct{}{}
	if len(st.ep.NamedPorts) > 0 {
		r.namedPortUsers(st.ep.Identity, affected)
	}
	return append(r.recompute(affected), id)
}

func (r *Resolver) unindex(ep Endpoint) {
	if m := r.byIdentity[ep.Identity]; m != nil {
		delete(m, ep.ID)
		if len(m) == 0 {
			delete(r.byIdentity, ep.Identity)
		}
	}
}

// UpsertIdentity makes an identity known (or changes its labels) and
// returns the endpoints whose map state changed.
func (r *Resolver) UpsertIdentity(id identity.NumericIdentity, labels identity.Labels) []EndpointID {
	labels = identity.NewLabels(labels...)
	if old, ok := r.identities[id]; ok && old.Equal(labels) {
		return nil
	}
	r.identities[id] = labels
	return r.identityChanged(id, labels, true)
}

// DeleteIdentity forgets an identity and returns the endpoints whose map
// state changed.
func (r *Resolver) DeleteIdentity(id identity.NumericIdentity) []EndpointID {
	if _, ok := r.identities[id]; !ok {
		return nil
	}
	delete(r.identities, id)
	return r.identityChanged(id, nil, false)
}

func (r *Resolver) identityChanged(id identity.NumericIdentity, labels identity.Labels, present bool) []EndpointID {
	affected := map[EndpointID]struct{}{}
	for _, p := range r.policies {
		for _, ru := range p.rules {
			if ru.anyPeer {
				continue
			}
			_, was := ru.peerIDs[id]
			now := present && ru.selectsPeer(id, labels)
			if was == now {
				continue
			}
			if now {
				ru.peerIDs[id] = struct{}{}
			} else {
				delete(ru.peerIDs, id)
			}
			r.selectedBy(ru, affected)
		}
	}
	return r.recompute(affected)
}

func (r *Resolver) fillPeerCache(ru *rule) {
	ru.peerIDs = map[identity.NumericIdentity]struct{}{}
	if ru.anyPeer {
		return
	}
	for id, ls := range r.identities {
		if ru.selectsPeer(id, ls) {
			ru.peerIDs[id] = struct{}{}
		}
	}
}

// selected adds the endpoints any rule of p selects.
func (r *Resolver) selected(p *Policy, into map[EndpointID]struct{}) {
	for _, ru := range p.rules {
		r.selectedBy(ru, into)
	}
}

func (r *Resolver) selectedBy(ru *rule, into map[EndpointID]struct{}) {
	for id, st := range r.endpoints {
		if _, done := into[id]; !done && ru.subject.matches(st.ep.Labels) {
			into[id] = struct{}{}
		}
	}
}

// namedPortUsers adds the endpoints with an egress named-port rule whose
// peers include the identity.
func (r *Resolver) namedPortUsers(id identity.NumericIdentity, into map[EndpointID]struct{}) {
	for _, p := range r.policies {
		for _, ru := range p.rules {
			if !ru.hasNamed || ru.dir != Egress {
				continue
			}
			if _, ok := ru.peerIDs[id]; ok || ru.anyPeer || len(ru.addrs) > 0 {
				r.selectedBy(ru, into)
			}
		}
	}
}

// recompute resolves the endpoints and returns those whose state changed.
func (r *Resolver) recompute(ids map[EndpointID]struct{}) []EndpointID {
	var changed []EndpointID
	for id := range ids {
		st, ok := r.endpoints[id]
		if !ok {
			continue
		}
		np := r.resolve(st.ep, st.policy)
		if !np.equal(st.policy) {
			st.policy = np
			changed = append(changed, id)
		}
	}
	sortIDs(changed)
	return changed
}

// ResolveAll recomputes every endpoint (a full resync) and returns those
// whose state changed.
func (r *Resolver) ResolveAll() []EndpointID {
	all := make(map[EndpointID]struct{}, len(r.endpoints))
	for id := range r.endpoints {
		all[id] = struct{}{}
	}
	return r.recompute(all)
}

func sortIDs(ids []EndpointID) {
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
}

// resolve computes one endpoint's policy from scratch (prev, its previous
// policy or nil, only keeps address-set numbers stable).
func (r *Resolver) resolve(ep Endpoint, prev *EndpointPolicy) *EndpointPolicy {
	out := &EndpointPolicy{Endpoint: ep.ID, Identity: ep.Identity, Audit: r.opts.Audit, Entries: map[Key]Entry{},
		Addrs: map[AddrKey]identity.NumericIdentity{}, addrSets: map[addrSetKey][]RuleRef{}}
	if r.opts.Mode == EnforcementNever {
		return out
	}
	m := mapBuilder(out.Entries)
	var addrRules [2][]*rule
	epNS, _ := ep.Labels.Namespace()
	for _, p := range r.policies {
		if p.Key.Namespace != "" && p.Key.Namespace != epNS {
			continue // namespaced policies select only their namespace
		}
		for _, ru := range p.rules {
			if !ru.subject.matches(ep.Labels) {
				continue
			}
			if ru.enforce {
				if ru.dir == Ingress {
					out.IngressEnforced = true
				} else {
					out.EgressEnforced = true
				}
			}
			r.addRule(m, ep, ru, ru.identityPeers)
			if len(ru.addrs) > 0 {
				addrRules[ru.dir] = append(addrRules[ru.dir], ru)
			}
		}
	}
	if r.opts.Mode == EnforcementAlways {
		out.IngressEnforced, out.EgressEnforced = true, true
	}
	m.applyDenyPrecedence()
	// Address sets after the identity entries' deny precedence: the
	// address stage looks up entries keyed by exactly the set.
	for d, rules := range addrRules {
		r.addAddrs(out, prev, ep, Direction(d), rules)
	}
	return out
}

// identityPeers yields the peer identities of a rule's identity stage (0:
// any peer).
func (ru *rule) identityPeers(yield func(identity.NumericIdentity)) {
	if ru.anyPeer {
		yield(identity.IdentityUnknown)
		return
	}
	for id := range ru.peerIDs {
		yield(id)
	}
}

// addRule adds a rule's entries for the peers it yields.
func (r *Resolver) addRule(m mapBuilder, ep Endpoint, ru *rule, peers func(yield func(identity.NumericIdentity))) {
	e := Entry{Deny: ru.deny, Rule: ru.ref}
	if ru.allL4 {
		peers(func(id identity.NumericIdentity) {
			m.add(Key{Direction: ru.dir, PeerIdentity: id}, e)
		})
		return
	}
	for _, l := range ru.l4s {
		if l.name == "" {
			peers(func(id identity.NumericIdentity) {
				m.add(Key{Direction: ru.dir, PeerIdentity: id, Proto: l.proto, PortLo: l.lo, PortHi: l.hi}, e)
			})
			continue
		}
		if ru.dir == Ingress {
			// The selected endpoint's own named port.
			if np, ok := ep.NamedPorts[l.name]; ok && np.Proto == l.proto {
				peers(func(id identity.NumericIdentity) {
					m.add(Key{Direction: Ingress, PeerIdentity: id, Proto: l.proto, PortLo: np.Port, PortHi: np.Port}, e)
				})
			}
			continue
		}
		// Egress: the peer endpoints' named ports, per peer identity.
		peers(func(id identity.NumericIdentity) {
			for _, pid := range r.namedPortsOf(id, l.name, l.proto) {
				m.add(Key{Direction: Egress, PeerIdentity: pid.id, Proto: l.proto, PortLo: pid.port, PortHi: pid.port}, e)
			}
		})
	}
}

type idPort struct {
	id   identity.NumericIdentity
	port uint16
}

// namedPortsOf resolves a port name on the endpoints of an identity (any
// endpoint when id is 0 or an address set, whose holders the resolver does
// not know).
func (r *Resolver) namedPortsOf(id identity.NumericIdentity, name string, proto uint8) []idPort {
	var out []idPort
	seen := map[idPort]bool{}
	visit := func(st *endpointState) {
		if np, ok := st.ep.NamedPorts[name]; ok && np.Proto == proto {
			ip := idPort{id: id, port: np.Port}
			if !seen[ip] {
				seen[ip] = true
				out = append(out, ip)
			}
		}
	}
	if id == identity.IdentityUnknown || IsAddrSet(id) {
		for _, st := range r.endpoints {
			visit(st)
		}
		return out
	}
	for eid := range r.byIdentity[id] {
		visit(r.endpoints[eid])
	}
	return out
}
