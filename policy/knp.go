package policy

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/sluicenet/sluice/identity"
)

// knpRule is an ingress rule's from or an egress rule's to, with its ports.
type knpRule struct {
	peers []networkingv1.NetworkPolicyPeer
	ports []networkingv1.NetworkPolicyPort
}

// FromNetworkPolicy validates and translates a Kubernetes NetworkPolicy with
// its full semantics: the podSelector selects pods of the policy's
// namespace; policyTypes default to Ingress, plus Egress when egress rules
// exist; a selected direction is default deny; a rule's empty from/to means
// every peer and empty ports every port; a peer's podSelector and
// namespaceSelector combine (AND); an IPv4 ipBlock matches peer addresses
// (pods and nodes included) minus the exceptions, per rule (address
// semantics, see addr.go); an IPv6 ipBlock selects CIDR identities. SCTP ports are dropped with a warning (the rule allows less,
// never more); other errors reject the whole policy.
func FromNetworkPolicy(np *networkingv1.NetworkPolicy) (*Policy, error) {
	key := Ref{Kind: KindKubernetesPolicy, Namespace: np.Namespace, Name: np.Name}
	var e errs
	if np.Name == "" {
		e.addf("metadata.name", "required")
	}
	if np.Namespace == "" {
		e.addf("metadata.namespace", "required")
	}
	pol := &Policy{Key: key}
	subject, err := compileSelector(&np.Spec.PodSelector, false, identity.SourceK8s, "")
	if err != nil {
		e.add("spec.podSelector", err)
	}
	subject = subject.inNamespace(np.Namespace)

	ingress, egress := false, false
	if len(np.Spec.PolicyTypes) == 0 {
		ingress, egress = true, len(np.Spec.Egress) > 0
	}
	for i, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			ingress = true
		case networkingv1.PolicyTypeEgress:
			egress = true
		default:
			e.addf(fmt.Sprintf("spec.policyTypes[%d]", i), "%q is not a valid policy type", t)
		}
	}
	ref := RuleRef{Kind: key.Kind, Namespace: key.Namespace, Name: key.Name}
	mk := func(section string, i int, dir Direction) *rule {
		ref := ref
		ref.Section, ref.Index = section, i
		return &rule{ref: ref, subject: subject, dir: dir, enforce: true}
	}
	var in, eg []knpRule
	for _, r := range np.Spec.Ingress {
		in = append(in, knpRule{r.From, r.Ports})
	}
	for _, r := range np.Spec.Egress {
		eg = append(eg, knpRule{r.To, r.Ports})
	}
	for _, d := range []struct {
		section, peers, policyType string
		dir                        Direction
		on                         bool
		rules                      []knpRule
	}{
		{"ingress", "from", "Ingress", Ingress, ingress, in},
		{"egress", "to", "Egress", Egress, egress, eg},
	} {
		if !d.on {
			if len(d.rules) > 0 {
				e.addf("spec."+d.section, "rules given but policyTypes does not include %s", d.policyType)
			}
			continue
		}
		if len(d.rules) == 0 {
			pol.rules = append(pol.rules, mk(d.section, 0, d.dir))
		}
		for i, kr := range d.rules {
			path := fmt.Sprintf("spec.%s[%d]", d.section, i)
			r := mk(d.section, i, d.dir)
			knpPeers(&e, pol, path+"."+d.peers, r, np.Namespace, kr.peers)
			knpPorts(&e, pol, path+".ports", r, kr.ports)
			pol.rules = append(pol.rules, r)
		}
	}
	if err := e.err(); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return pol, nil
}

// ValidateNetworkPolicy reports every problem of a Kubernetes NetworkPolicy.
func ValidateNetworkPolicy(np *networkingv1.NetworkPolicy) error {
	_, err := FromNetworkPolicy(np)
	return err
}

func knpPeers(e *errs, pol *Policy, path string, r *rule, ns string, peers []networkingv1.NetworkPolicyPeer) {
	if len(peers) == 0 {
		r.anyPeer = true
		return
	}
	for i, p := range peers {
		pp := fmt.Sprintf("%s[%d]", path, i)
		if p.IPBlock != nil {
			if p.PodSelector != nil || p.NamespaceSelector != nil {
				e.addf(pp, "ipBlock cannot be combined with podSelector or namespaceSelector")
				continue
			}
			if pe, ok := compileCIDRSet(e, pp+".ipBlock", p.IPBlock.CIDR, p.IPBlock.Except); ok {
				r.addCIDRPeer(pe, true)
			}
			continue
		}
		if p.PodSelector == nil && p.NamespaceSelector == nil {
			e.addf(pp, "one of podSelector, namespaceSelector or ipBlock is required")
			continue
		}
		var s labelSelector
		if p.PodSelector != nil {
			ps, err := compileSelector(p.PodSelector, false, identity.SourceK8s, "")
			if err != nil {
				e.add(pp+".podSelector", err)
				continue
			}
			s = ps
		}
		if p.NamespaceSelector != nil {
			nsSel, err := compileSelector(p.NamespaceSelector, false, identity.SourceK8s, identity.NamespaceLabelPrefix)
			if err != nil {
				e.add(pp+".namespaceSelector", err)
				continue
			}
			// Only pods (identities with a namespace) match, never reserved ones.
			s.reqs = append(s.reqs, requirement{source: identity.SourceK8s, key: identity.PodNamespaceLabel, op: opExists})
			s.reqs = append(s.reqs, nsSel.reqs...)
		} else {
			s = s.inNamespace(ns)
		}
		r.peers = append(r.peers, peer{kind: peerLabels, labels: s})
	}
}

func knpPorts(e *errs, pol *Policy, path string, r *rule, ports []networkingv1.NetworkPolicyPort) {
	if len(ports) == 0 {
		r.allL4 = true
		return
	}
	for i, p := range ports {
		pp := fmt.Sprintf("%s[%d]", path, i)
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		switch proto {
		case corev1.ProtocolTCP, corev1.ProtocolUDP:
		case corev1.ProtocolSCTP:
			pol.Warnings = append(pol.Warnings, fmt.Sprintf("%s.protocol: SCTP is not supported by the datapath; this port allows nothing", pp))
			continue
		default:
			e.addf(pp+".protocol", "%q is not a valid protocol", proto)
			continue
		}
		pr := PortProtocol{Protocol: string(proto)}
		if p.Port != nil {
			pr.Port = *p.Port
		}
		if p.EndPort != nil {
			pr.EndPort = *p.EndPort
			if pr.EndPort == 0 {
				e.addf(pp+".endPort", "must be greater than 0")
				continue
			}
		}
		ls, field, err := compilePortProtocol(pr)
		if err != nil {
			e.add(pp+"."+field, err)
			continue
		}
		for _, l := range ls {
			r.hasNamed = r.hasNamed || l.name != ""
			r.l4s = append(r.l4s, l)
		}
	}
}
