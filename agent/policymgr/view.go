package policymgr

import (
	"fmt"
	"strconv"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/identity"
	"github.com/sluicenet/sluice/policy"
)

// EndpointPolicy returns an endpoint's resolved policy in API form, or false
// when the resolver does not know it (yet).
func (m *Manager) EndpointPolicy(epID uint16) (api.EndpointPolicy, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ep, ok := m.res.MapState(policy.EndpointID(epID))
	if !ok {
		return api.EndpointPolicy{}, false
	}
	out := api.EndpointPolicy{
		EndpointID: epID, Identity: uint32(ep.Identity),
		IngressEnforced: ep.IngressEnforced, EgressEnforced: ep.EgressEnforced, Audit: ep.Audit,
		SelectedBy: []string{}, Rules: []api.PolicyRule{}, Labels: []string{},
		MapEntries: len(m.written[epID].entries), Addrs: []api.PolicyAddr{},
	}
	if ei, ok := m.eps[epID]; ok {
		for _, l := range ei.Labels {
			out.Labels = append(out.Labels, l.String())
		}
	}
	seen := map[string]bool{}
	for _, r := range m.res.RulesSelecting(policy.EndpointID(epID)) {
		n := FormatRule(r)
		if !seen[n] {
			seen[n] = true
			out.SelectedBy = append(out.SelectedBy, n)
		}
	}
	for _, k := range ep.Keys() {
		e := ep.Entries[k]
		r := api.PolicyRule{
			Direction: k.Direction.String(), PeerID: uint32(k.PeerIdentity), Peer: "any",
			Protocol: policy.ProtoName(k.Proto), Verdict: "allow", Rule: FormatRule(e.Rule), RuleID: m.rules.ID(e.Rule),
		}
		if k.PeerIdentity != 0 {
			r.Peer = PeerName(k.PeerIdentity)
		}
		if e.Deny {
			r.Verdict = "deny"
		}
		switch {
		case k.PortLo == 0 && k.PortHi == 0:
		case k.PortLo == k.PortHi:
			r.Ports = strconv.Itoa(int(k.PortLo))
		default:
			r.Ports = fmt.Sprintf("%d-%d", k.PortLo, k.PortHi)
		}
		out.Rules = append(out.Rules, r)
	}
	for _, k := range ep.AddrKeys() {
		set := ep.Addrs[k]
		a := api.PolicyAddr{Direction: k.Direction.String(), Prefix: k.Prefix.String(), Set: uint32(set), Rules: []string{}}
		if set != 0 {
			a.SetName = PeerName(set)
		}
		for _, r := range ep.AddrSetRules(k.Direction, set) {
			a.Rules = append(a.Rules, FormatRule(r))
		}
		out.Addrs = append(out.Addrs, a)
	}
	return out, true
}

// PeerName names a peer identity: an address set as addr-set:<n>, any
// other by its number or reserved name.
func PeerName(id identity.NumericIdentity) string {
	if policy.IsAddrSet(id) {
		return fmt.Sprintf("addr-set:%d", id&^policy.AddrSetBase)
	}
	return id.String()
}

// FormatRule names a rule as namespace/name[section:index] (spec N > 0 as
// specN.section:index); "" for no rule.
func FormatRule(r policy.RuleRef) string {
	if r == (policy.RuleRef{}) {
		return ""
	}
	n := r.Name
	if r.Namespace != "" {
		n = r.Namespace + "/" + r.Name
	}
	sec := r.Section
	if r.Spec > 0 {
		sec = fmt.Sprintf("spec%d.%s", r.Spec, r.Section)
	}
	return fmt.Sprintf("%s[%s:%d]", n, sec, r.Index)
}
