package policymgr

import "github.com/sluicenet/sluice/policy"

// MapKey is one per-endpoint policy map key as the datapath takes it
// (mirrors datapath.PolicyKey): a port block is Port with its top
// PortPrefixLen bits significant; Identity 0 is any peer; Proto 0 any
// protocol.
type MapKey struct {
	Ingress       bool
	Identity      uint32
	Proto         uint8
	Port          uint16
	PortPrefixLen uint8
}

// MapEntry is a policy map value (mirrors datapath.PolicyEntry).
type MapEntry struct {
	Deny   bool
	RuleID uint32
}

// EndpointConfig is an endpoint's enforcement config (mirrors
// datapath.EndpointPolicyConfig).
type EndpointConfig struct {
	IngressEnforced, EgressEnforced, Audit bool
}

// ToMap converts a resolved endpoint policy into map entries: each port
// range becomes its aligned port blocks. When two entries produce the same
// block, deny wins (the resolver keeps the most specific match consistent,
// so this only happens between entries of equal verdict or where deny is
// already due).
func ToMap(p *policy.EndpointPolicy, ruleID func(policy.RuleRef) uint32) map[MapKey]MapEntry {
	if p == nil {
		return map[MapKey]MapEntry{}
	}
	out := make(map[MapKey]MapEntry, len(p.Entries))
	for k, e := range p.Entries {
		base := MapKey{Ingress: k.Direction == policy.Ingress, Identity: uint32(k.PeerIdentity), Proto: k.Proto}
		v := MapEntry{Deny: e.Deny, RuleID: ruleID(e.Rule)}
		if k.Proto == policy.ProtoAny || (k.PortLo == 0 && k.PortHi == 0) {
			put(out, base, v)
			continue
		}
		for _, pp := range policy.PortRangeToPrefixes(k.PortLo, k.PortHi) {
			mk := base
			mk.Port, mk.PortPrefixLen = pp.Port, pp.PrefixLen
			put(out, mk, v)
		}
	}
	return out
}

func put(m map[MapKey]MapEntry, k MapKey, v MapEntry) {
	if old, ok := m[k]; ok && (old.Deny || !v.Deny) {
		return
	}
	m[k] = v
}

// ConfigOf returns an endpoint policy's enforcement config.
func ConfigOf(p *policy.EndpointPolicy) EndpointConfig {
	if p == nil {
		return EndpointConfig{}
	}
	return EndpointConfig{IngressEnforced: p.IngressEnforced, EgressEnforced: p.EgressEnforced, Audit: p.Audit}
}
