package policymgr

import (
	"github.com/sluicenet/sluice/datapath/policymap"
	"github.com/sluicenet/sluice/policy"
)

// MapState converts an endpoint's resolved policy into the datapath's
// enforcement and entries: each port range becomes its aligned port prefixes
// (policy.PortRangeToPrefixes), keys that coincide after the split are merged
// with deny winning (then the first in policy.EndpointPolicy.Keys order).
// ruleID names each entry's rule for flow events; nil gives every entry 0.
// The entries of address sets are keyed by the set identity like any peer.
// A nil policy yields no enforcement and no entries.
func MapState(p *policy.EndpointPolicy, ruleID func(policy.RuleRef) uint32) (policymap.Config, map[policymap.Key]policymap.Entry) {
	out := make(map[policymap.Key]policymap.Entry)
	if p == nil {
		return policymap.Config{}, out
	}
	cfg := policymap.Config{IngressEnforced: p.IngressEnforced, EgressEnforced: p.EgressEnforced, Audit: p.Audit,
		IngressAddr: p.IngressAddr, EgressAddr: p.EgressAddr}
	add := func(k policymap.Key, e policymap.Entry) {
		if old, ok := out[k]; ok && (old.Deny || !e.Deny) {
			return
		}
		out[k] = e
	}
	for _, k := range p.Keys() {
		pe := p.Entries[k]
		e := policymap.Entry{Deny: pe.Deny}
		if ruleID != nil {
			e.RuleID = ruleID(pe.Rule)
		}
		base := policymap.Key{Ingress: k.Direction == policy.Ingress, Identity: uint32(k.PeerIdentity), Proto: k.Proto}
		if k.Proto == policy.ProtoAny {
			add(base, e)
			continue
		}
		lo, hi := k.PortLo, k.PortHi
		if lo == 0 && hi == 0 {
			hi = 65535
		}
		for _, pp := range policy.PortRangeToPrefixes(lo, hi) {
			pk := base
			pk.Port, pk.PortPrefixLen = pp.Port, pp.PrefixLen
			add(pk, e)
		}
	}
	return cfg, out
}

// AddrState converts an endpoint's address trie nodes into the datapath's
// (node → address-set identity, 0 for a hole). A nil policy yields none.
func AddrState(p *policy.EndpointPolicy) map[policymap.AddrKey]uint32 {
	out := make(map[policymap.AddrKey]uint32)
	if p == nil {
		return out
	}
	for k, set := range p.Addrs {
		out[policymap.AddrKey{Ingress: k.Direction == policy.Ingress, Prefix: k.Prefix}] = uint32(set)
	}
	return out
}
