package daemon

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/identitymgr"
	"github.com/sluicenet/sluice/agent/policymgr"
	"github.com/sluicenet/sluice/agent/server"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/policymap"
	"github.com/sluicenet/sluice/identity"
	"github.com/sluicenet/sluice/policy"
)

// tracer answers POST /v1/policy/trace from the kernel's maps: a peer's
// identity as the programs find it (endpoint map, else the IP cache, else
// world), a service's backends from the load-balancing maps, and each
// direction's verdict from the policy maps (policymap.Decide: the lookups
// of policy_decide). Rules are named through the same table as flow
// events, so a trace says what `sluice observe` shows for that flow.
type tracer struct{ d *Daemon }

// traceEnd is a resolved end of a traced flow.
type traceEnd struct {
	api.TraceEnd
	addr netip.Addr // invalid for a label peer
}

// badRequest marks an error of the request (400).
func badRequest(format string, args ...any) error {
	return server.BadRequest{Err: fmt.Errorf(format, args...)}
}

// Trace computes the verdicts of a new flow.
func (t tracer) Trace(req api.TraceRequest) (api.TraceResult, error) {
	proto, err := traceProto(req.Protocol)
	if err != nil {
		return api.TraceResult{}, badRequest("%w", err)
	}
	sk, err := req.Src.Kind()
	if err != nil {
		return api.TraceResult{}, badRequest("source: %w", err)
	}
	if sk == "" || sk == "service" {
		return api.TraceResult{}, badRequest("source: name a pod, labels or a CIDR")
	}
	dk, err := req.Dst.Kind()
	if err != nil {
		return api.TraceResult{}, badRequest("destination: %w", err)
	}
	if dk == "" {
		return api.TraceResult{}, badRequest("destination: name a pod, labels, a CIDR or a service")
	}
	res := api.TraceResult{Protocol: policy.ProtoName(proto), Port: req.Port, Paths: []api.TracePath{}}
	src, err := t.resolve(req.Src, &res)
	if err != nil {
		return api.TraceResult{}, err
	}
	res.Src = src.TraceEnd
	var paths []api.TracePath
	var dsts []traceEnd
	if dk == "service" {
		paths, dsts, err = t.serviceBackends(req.Dst.Service, proto, req.Port, &res)
	} else {
		var dst traceEnd
		dst, err = t.resolve(req.Dst, &res)
		paths, dsts = []api.TracePath{{Port: req.Port}}, []traceEnd{dst}
	}
	if err != nil {
		return api.TraceResult{}, err
	}
	for i := range paths {
		if err := t.decidePath(&paths[i], src, dsts[i], proto); err != nil {
			return api.TraceResult{}, err
		}
		if src.EndpointID == 0 && dsts[i].EndpointID == 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("neither %s nor %s is an endpoint of this node: no policy of this node decides", src.Name, dsts[i].Name))
		}
		res.Paths = append(res.Paths, paths[i])
	}
	return res, nil
}

// decidePath fills the verdicts of the flow src → dst on path.Port.
func (t tracer) decidePath(path *api.TracePath, src, dst traceEnd, proto uint8) error {
	path.Dst = dst.TraceEnd
	path.Allowed = true
	if src.EndpointID != 0 {
		v, err := t.verdict(src, false, dst, proto, path.Port)
		if err != nil {
			return err
		}
		path.Egress, path.Allowed = &v, v.Verdict != "DROPPED"
	}
	if dst.EndpointID != 0 {
		v, err := t.verdict(dst, true, src, proto, path.Port)
		if err != nil {
			return err
		}
		path.Ingress, path.Allowed = &v, path.Allowed && v.Verdict != "DROPPED"
	}
	return nil
}

// verdict decides for endpoint ep in one direction against peer.
func (t tracer) verdict(ep traceEnd, ingress bool, peer traceEnd, proto uint8, port uint16) (api.TraceVerdict, error) {
	dec, err := t.d.dp.Policy().Decide(ep.EndpointID, ingress, peer.Identity, peer.addr, proto, port)
	if err != nil {
		return api.TraceVerdict{}, err
	}
	v := traceVerdict(dec, ingress)
	// The endpoint's pod, as flows name it (EndpointPod).
	v.Endpoint = flowNames(t).EndpointPod(ep.EndpointID)
	if v.Endpoint == "" {
		v.Endpoint = ep.Name
	}
	if r, ok := t.d.pols.Rules().Lookup(dec.RuleID); ok {
		v.Rule = policymgr.FormatRule(r)
	}
	v.Decision = api.Decision(v.Verdict, v.Rule)
	return v, nil
}

// traceVerdict turns the datapath's decision into the verdict and reason a
// flow event of it carries (policy_enforce's events).
func traceVerdict(dec policymap.Decision, ingress bool) api.TraceVerdict {
	v := api.TraceVerdict{Direction: "egress", Verdict: "FORWARDED", RuleID: dec.RuleID, Enforced: dec.Enforced}
	if ingress {
		v.Direction = "ingress"
	}
	if dec.Allowed {
		return v
	}
	v.Reason = metricsmap.DropPolicy.String()
	if dec.Deny {
		v.Reason = metricsmap.DropPolicyDeny.String()
	}
	v.Verdict = "DROPPED"
	if dec.Audit {
		v.Verdict = "AUDIT"
	}
	return v
}

// traceProto parses the protocol of a trace request (empty: TCP).
func traceProto(s string) (uint8, error) {
	switch strings.ToUpper(s) {
	case "", "TCP":
		return policy.ProtoTCP, nil
	case "UDP":
		return policy.ProtoUDP, nil
	case "ICMP":
		return policy.ProtoICMP, nil
	}
	return 0, fmt.Errorf("protocol %q: want TCP, UDP or ICMP", s)
}

// resolve finds a peer named by pod, labels or CIDR.
func (t tracer) resolve(p api.TracePeer, res *api.TraceResult) (traceEnd, error) {
	switch {
	case p.Pod != "":
		ns, name := splitName(p.Pod)
		addr, ok := t.podAddr(ns, name)
		if !ok {
			return traceEnd{}, badRequest("no pod %s/%s is known to the agent", ns, name)
		}
		return t.byAddr(ns+"/"+name, addr)
	case p.CIDR != "":
		pfx, err := parsePrefix(p.CIDR)
		if err != nil {
			return traceEnd{}, badRequest("%w", err)
		}
		if pfx.Bits() < 32 {
			res.Notes = append(res.Notes, fmt.Sprintf("%s: traced with its first address %s", pfx, pfx.Addr()))
		}
		return t.byAddr(pfx.String(), pfx.Addr())
	}
	return t.byLabels(p.Labels, res)
}

// podAddr finds a pod's address: a local endpoint's, else the one the
// identity manager knows (a pod of another node).
func (t tracer) podAddr(ns, name string) (netip.Addr, bool) {
	if eps, err := t.d.eps.List(); err == nil {
		for _, ep := range eps {
			if ep.PodName == name && (ep.PodNamespace == ns || (ep.PodNamespace == "" && ns == "default")) {
				if a, err := netip.ParseAddr(ep.IPv4); err == nil {
					return a, true
				}
			}
		}
	}
	return t.d.ids.PodAddr(ns, name)
}

// byAddr resolves an address as the programs do (peer_identity): a local
// endpoint's entry, else the IP cache's longest prefix, else world.
func (t tracer) byAddr(name string, addr netip.Addr) (traceEnd, error) {
	e := traceEnd{TraceEnd: api.TraceEnd{Name: name, Address: addr.String()}, addr: addr}
	ep, ok, err := t.d.dp.Endpoints().Lookup(addr)
	if err != nil {
		return e, err
	}
	if ok {
		e.EndpointID, e.Identity = ep.ID, ep.Identity
	}
	if e.Identity == 0 {
		id, found, err := t.d.dp.IPCache().Identity(addr)
		if err != nil {
			return e, err
		}
		e.Identity = uint32(identity.ReservedWorld)
		if found {
			e.Identity = id
		}
	}
	t.name(&e.TraceEnd)
	return e, nil
}

// byLabels finds the one identity whose labels hold every label given, and
// the local endpoint of that identity whose policy applies, if any.
func (t tracer) byLabels(labels []string, res *api.TraceResult) (traceEnd, error) {
	want := identity.ParseLabels(labels...)
	var found []identity.NumericIdentity
	for id, ls := range t.d.ids.Allocator().Identities() {
		if hasAll(ls, want) {
			found = append(found, id)
		}
	}
	if len(found) != 1 {
		return traceEnd{}, badRequest("labels %s select %d identities, want exactly one (add labels)", strings.Join(labels, ","), len(found))
	}
	e := traceEnd{TraceEnd: api.TraceEnd{Name: strings.Join(labels, ","), Identity: uint32(found[0])}}
	for epID, ei := range t.d.ids.Endpoints() {
		if uint32(ei.Identity) == e.Identity && (e.EndpointID == 0 || epID < e.EndpointID) {
			e.EndpointID = epID
		}
	}
	if e.EndpointID != 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("labels %s: the policy of local endpoint %d (identity %d) applies", e.Name, e.EndpointID, e.Identity))
	}
	res.Notes = append(res.Notes, "a peer named by labels has no address: address rules (ipBlock) are not consulted for it")
	t.name(&e.TraceEnd)
	return e, nil
}

// name fills an end's identity name and labels.
func (t tracer) name(e *api.TraceEnd) {
	id := identity.NumericIdentity(e.Identity)
	if id.IsReserved() {
		e.IdentityName = id.String()
	}
	if ls, ok := t.d.ids.Allocator().Lookup(id); ok {
		e.Labels = identitymgr.LabelStrings(ls)
	}
}

// hasAll reports whether ls holds every label of want.
func hasAll(ls, want identity.Labels) bool {
	for _, l := range want {
		if !ls.Has(l) {
			return false
		}
	}
	return len(want) > 0
}

// splitName splits "namespace/name" ("name": namespace default).
func splitName(s string) (ns, name string) {
	if ns, name, ok := strings.Cut(s, "/"); ok {
		return ns, name
	}
	return "default", s
}

// parsePrefix parses an IPv4 address or prefix (masked).
func parsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
		return netip.PrefixFrom(a, 32), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 address or prefix", s)
	}
	return p.Masked(), nil
}
