package daemon

import (
	"net/netip"

	"github.com/sluicenet/sluice/agent/identitymgr"
	"github.com/sluicenet/sluice/agent/policymgr"
	"github.com/sluicenet/sluice/identity"
	"github.com/sluicenet/sluice/policy"
)

// flowNames resolves flow event numbers for the flow observer.
type flowNames struct{ d *Daemon }

func (n flowNames) EndpointPod(epID uint16) string {
	ei, ok := n.d.ids.Endpoints()[epID]
	if !ok || ei.Endpoint.PodName == "" {
		return ""
	}
	return ei.PodNamespace + "/" + ei.Endpoint.PodName
}

func (n flowNames) PodByIP(addr netip.Addr) string {
	p, ok := n.d.ids.PodByIP(addr)
	if !ok || p.Name == "" {
		return ""
	}
	return p.Namespace + "/" + p.Name
}

func (n flowNames) IdentityLabels(id uint32) []string {
	ls, ok := n.d.ids.Allocator().Lookup(identity.NumericIdentity(id))
	if !ok {
		return nil
	}
	return identitymgr.LabelStrings(ls)
}

func (n flowNames) Rule(id uint32) (policy.RuleRef, bool) { return n.d.pols.Rules().Lookup(id) }

func (n flowNames) FormatRule(r policy.RuleRef) string { return policymgr.FormatRule(r) }
