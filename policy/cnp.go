package policy

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicenet/sluice/identity"
)

// FromSluicePolicy validates and compiles a SluiceNetworkPolicy. Selectors
// without a namespace requirement are restricted to the policy's namespace,
// as Cilium does for CiliumNetworkPolicy. On error nothing is returned.
func FromSluicePolicy(p *SluiceNetworkPolicy) (*Policy, error) {
	if p.Namespace == "" {
		return nil, &FieldError{Path: "metadata.namespace", Err: fmt.Errorf("required for %s", KindNetworkPolicy)}
	}
	return compileSluice(Ref{Kind: KindNetworkPolicy, Namespace: p.Namespace, Name: p.Name}, p.Annotations, p.Spec, p.Specs)
}

// FromClusterwidePolicy validates and compiles a SluiceClusterwideNetworkPolicy.
func FromClusterwidePolicy(p *SluiceClusterwideNetworkPolicy) (*Policy, error) {
	if p.Namespace != "" {
		return nil, &FieldError{Path: "metadata.namespace", Err: fmt.Errorf("must be empty for %s", KindClusterwidePolicy)}
	}
	return compileSluice(Ref{Kind: KindClusterwidePolicy, Name: p.Name}, p.Annotations, p.Spec, p.Specs)
}

// ValidateSluicePolicy reports every problem of a SluiceNetworkPolicy, each
// naming its field path.
func ValidateSluicePolicy(p *SluiceNetworkPolicy) error {
	_, err := FromSluicePolicy(p)
	return err
}

// ValidateClusterwidePolicy reports every problem of a clusterwide policy.
func ValidateClusterwidePolicy(p *SluiceClusterwideNetworkPolicy) error {
	_, err := FromClusterwidePolicy(p)
	return err
}

func compileSluice(key Ref, annotations map[string]string, spec *Rule, specs []Rule) (*Policy, error) {
	var e errs
	if key.Name == "" {
		e.addf("metadata.name", "required")
	}
	addr := false
	switch v, ok := annotations[AnnotationCIDRSemantics]; {
	case !ok || v == CIDRSemanticsIdentity:
	case v == CIDRSemanticsAddress:
		addr = true
	default:
		e.addf("metadata.annotations["+AnnotationCIDRSemantics+"]", "%q is not a valid value (want %q or %q)",
			v, CIDRSemanticsAddress, CIDRSemanticsIdentity)
	}
	if spec == nil && len(specs) == 0 {
		e.addf("spec", "spec or specs is required")
	}
	pol := &Policy{Key: key}
	c := cnpCompiler{key: key, e: &e, pol: pol, addr: addr}
	if spec != nil {
		c.rule("spec", 0, spec)
	}
	for i := range specs {
		c.rule(fmt.Sprintf("specs[%d]", i), i, &specs[i])
	}
	if err := e.err(); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return pol, nil
}

type cnpCompiler struct {
	key Ref
	e   *errs
	pol *Policy
	// addr: CIDR peers have address semantics (AnnotationCIDRSemantics).
	addr bool
}

// selector compiles an endpoint selector; in a namespaced policy it gets the
// namespace unless it names the namespace (or namespace labels) itself or
// selects reserved identities.
func (c *cnpCompiler) selector(path string, sel *metav1.LabelSelector) (labelSelector, bool) {
	s, err := compileSelector(sel, true, "", "")
	if err != nil {
		c.e.add(path, err)
		return s, false
	}
	if c.key.Namespace != "" && !s.mentions(identity.PodNamespaceLabel, identity.NamespaceLabelPrefix) &&
		!s.mentionsSource(identity.SourceReserved) {
		s = s.inNamespace(c.key.Namespace)
	}
	return s, true
}

func (c *cnpCompiler) rule(path string, specIdx int, r *Rule) {
	if r.NodeSelector != nil {
		c.e.unsupported(path+".nodeSelector", "host policy (nodeSelector) is")
	}
	if r.EndpointSelector == nil {
		c.e.addf(path+".endpointSelector", "required")
		return
	}
	// The subject of a namespaced policy is always within its namespace,
	// whatever the selector says (as in Cilium).
	subject, err := compileSelector(r.EndpointSelector, true, "", "")
	if err != nil {
		c.e.add(path+".endpointSelector", err)
		return
	}
	if c.key.Namespace != "" {
		subject = subject.inNamespace(c.key.Namespace)
	}
	enf := func(set *bool, has bool) bool {
		if set != nil {
			return *set
		}
		return has
	}
	// As in Cilium, a direction is covered when it has rules: an empty
	// list (egress: []) is the same as none, which is also all its JSON
	// encoding can say (omitempty).
	enfIn := enf(r.EnableDefaultDeny.Ingress, len(r.Ingress) > 0 || len(r.IngressDeny) > 0)
	enfEg := enf(r.EnableDefaultDeny.Egress, len(r.Egress) > 0 || len(r.EgressDeny) > 0)
	ref := RuleRef{Kind: c.key.Kind, Namespace: c.key.Namespace, Name: c.key.Name, Spec: specIdx}
	mk := func(section string, i int, dir Direction, deny, enforce bool) *rule {
		ref := ref
		ref.Section, ref.Index = section, i
		return &rule{ref: ref, subject: subject, dir: dir, deny: deny, enforce: enforce}
	}
	// A direction whose default deny is enabled with no rules
	// (enableDefaultDeny: {egress: true}) enforces: keep a rule that
	// selects nothing.
	if enfIn && len(r.Ingress) == 0 && len(r.IngressDeny) == 0 {
		c.pol.rules = append(c.pol.rules, mk("ingress", 0, Ingress, false, true))
	}
	if enfEg && len(r.Egress) == 0 && len(r.EgressDeny) == 0 {
		c.pol.rules = append(c.pol.rules, mk("egress", 0, Egress, false, true))
	}
	for i := range r.Ingress {
		c.ingress(fmt.Sprintf("%s.ingress[%d]", path, i), &r.Ingress[i], mk("ingress", i, Ingress, false, enfIn))
	}
	for i := range r.IngressDeny {
		c.ingress(fmt.Sprintf("%s.ingressDeny[%d]", path, i), &r.IngressDeny[i], mk("ingressDeny", i, Ingress, true, enfIn))
	}
	for i := range r.Egress {
		c.egress(fmt.Sprintf("%s.egress[%d]", path, i), &r.Egress[i], mk("egress", i, Egress, false, enfEg))
	}
	for i := range r.EgressDeny {
		c.egress(fmt.Sprintf("%s.egressDeny[%d]", path, i), &r.EgressDeny[i], mk("egressDeny", i, Egress, true, enfEg))
	}
}

func (c *cnpCompiler) ingress(path string, in *IngressRule, r *rule) {
	if len(in.FromRequires) > 0 {
		c.e.unsupported(path+".fromRequires", "fromRequires is")
	}
	if len(in.FromNodes) > 0 {
		c.e.unsupported(path+".fromNodes", "fromNodes is")
	}
	if len(in.FromGroups) > 0 {
		c.e.unsupported(path+".fromGroups", "fromGroups is")
	}
	if len(in.Authentication) > 0 {
		c.e.unsupported(path+".authentication", "authentication is")
	}
	c.peers(path, "from", r, in.FromEndpoints, in.FromCIDR, in.FromCIDRSet, in.FromEntities)
	c.l4(path, r, in.ToPorts, in.ICMPs)
	c.finish(r, len(in.FromEndpoints)+len(in.FromCIDR)+len(in.FromCIDRSet)+len(in.FromEntities) > 0,
		len(in.ToPorts)+len(in.ICMPs) > 0)
}

func (c *cnpCompiler) egress(path string, eg *EgressRule, r *rule) {
	for _, u := range []struct {
		field string
		n     int
	}{
		{"toRequires", len(eg.ToRequires)}, {"toNodes", len(eg.ToNodes)}, {"toServices", len(eg.ToServices)},
		{"toFQDNs", len(eg.ToFQDNs)}, {"toGroups", len(eg.ToGroups)}, {"authentication", len(eg.Authentication)},
	} {
		if u.n > 0 {
			c.e.unsupported(path+"."+u.field, u.field+" is")
		}
	}
	c.peers(path, "to", r, eg.ToEndpoints, eg.ToCIDR, eg.ToCIDRSet, eg.ToEntities)
	c.l4(path, r, eg.ToPorts, eg.ICMPs)
	c.finish(r, len(eg.ToEndpoints)+len(eg.ToCIDR)+len(eg.ToCIDRSet)+len(eg.ToEntities) > 0,
		len(eg.ToPorts)+len(eg.ICMPs) > 0)
}

// finish applies Cilium's defaults: no peer field but L4 → all peers; no L4
// → all ports; neither → the rule selects nothing (but still enforces).
func (c *cnpCompiler) finish(r *rule, hasPeers, hasL4 bool) {
	if !hasPeers && hasL4 {
		r.anyPeer = true
	}
	if !hasL4 {
		r.allL4 = true
	}
	c.pol.rules = append(c.pol.rules, r)
}

func (c *cnpCompiler) peers(path, dir string, r *rule, eps []metav1.LabelSelector, cidrs []string, sets []CIDRRule, ents []string) {
	for i := range eps {
		s, ok := c.selector(fmt.Sprintf("%s.%sEndpoints[%d]", path, dir, i), &eps[i])
		if ok {
			r.peers = append(r.peers, peer{kind: peerLabels, labels: s})
		}
	}
	for i, s := range cidrs {
		p, err := parseCIDR(s)
		if err != nil {
			c.e.add(fmt.Sprintf("%s.%sCIDR[%d]", path, dir, i), err)
			continue
		}
		r.addCIDRPeer(peer{kind: peerCIDR, cidr: p}, c.addr)
	}
	for i, set := range sets {
		sp := fmt.Sprintf("%s.%sCIDRSet[%d]", path, dir, i)
		if set.CIDRGroupRef != "" {
			c.e.unsupported(sp+".cidrGroupRef", "cidrGroupRef is")
			continue
		}
		if set.CIDRGroupSelector != nil {
			c.e.unsupported(sp+".cidrGroupSelector", "cidrGroupSelector is")
			continue
		}
		if pe, ok := compileCIDRSet(c.e, sp, set.CIDR, set.Except); ok {
			r.addCIDRPeer(pe, c.addr)
		}
	}
	for i, ent := range ents {
		if !entities[ent] {
			c.e.addf(fmt.Sprintf("%s.%sEntities[%d]", path, dir, i), "%q is not a valid entity", ent)
			continue
		}
		if ent == EntityAll {
			r.anyPeer = true
		}
		r.peers = append(r.peers, peer{kind: peerEntity, entity: ent})
	}
}

func compileCIDRSet(e *errs, path, cidr string, except []string) (peer, bool) {
	p, err := parseCIDR(cidr)
	if err != nil {
		e.add(path+".cidr", err)
		return peer{}, false
	}
	pe := peer{kind: peerCIDR, cidr: p}
	ok := true
	for j, x := range except {
		q, err := parseCIDR(x)
		if err == nil && !containsPrefix(p, q) {
			err = fmt.Errorf("%s is not inside %s", q, p)
		}
		if err != nil {
			e.add(fmt.Sprintf("%s.except[%d]", path, j), err)
			ok = false
			continue
		}
		pe.except = append(pe.except, q)
	}
	return pe, ok
}

func (c *cnpCompiler) l4(path string, r *rule, ports []PortRule, icmps []ICMPRule) {
	for i, pr := range ports {
		pp := fmt.Sprintf("%s.toPorts[%d]", path, i)
		for _, u := range []struct {
			field string
			n     int
		}{
			{"rules", len(pr.Rules)}, {"terminatingTLS", len(pr.TerminatingTLS)}, {"originatingTLS", len(pr.OriginatingTLS)},
			{"serverNames", len(pr.ServerNames)}, {"listener", len(pr.Listener)},
		} {
			if u.n > 0 {
				what := u.field + " is"
				if u.field == "rules" {
					what = "L7 policy (toPorts[].rules: http/dns/kafka/l7) is"
				}
				c.e.unsupported(pp+"."+u.field, what)
			}
		}
		if len(pr.Ports) == 0 {
			// Cilium: a port rule without ports means all ports.
			r.l4s = append(r.l4s, l4{proto: ProtoAny})
		}
		for j, p := range pr.Ports {
			ls, field, err := compilePortProtocol(p)
			if err != nil {
				c.e.add(fmt.Sprintf("%s.ports[%d].%s", pp, j, field), err)
				continue
			}
			for _, l := range ls {
				r.hasNamed = r.hasNamed || l.name != ""
				r.l4s = append(r.l4s, l)
			}
		}
	}
	for i, ic := range icmps {
		if len(ic.Fields) == 0 {
			c.e.addf(fmt.Sprintf("%s.icmps[%d].fields", path, i), "required")
		}
		for j, f := range ic.Fields {
			l, field, err := compileICMP(f)
			if err != nil {
				c.e.add(fmt.Sprintf("%s.icmps[%d].fields[%d].%s", path, i, j, field), err)
				continue
			}
			r.l4s = append(r.l4s, l)
		}
	}
}
