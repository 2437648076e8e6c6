package policy

import (
	"encoding/json"
	"fmt"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicenet/sluice/identity"
)

// Sections of the rules a RejectedFallback policy holds (RuleRef.Section):
// they name the default deny a rejected policy falls back to.
const (
	SectionRejectedIngress = "rejected-ingress"
	SectionRejectedEgress  = "rejected-egress"
)

// RejectedFallback is the fail-closed stand-in of a rejected policy
// object: for every rule of it whose subject selector compiles, the
// endpoints it selects are put into default deny in the directions the rule
// covers, with nothing allowed, exactly as enabling that direction's
// default deny with no rules would (enableDefaultDeny: {ingress: true}).
//
// In a SluiceNetworkPolicy or SluiceClusterwideNetworkPolicy a rule covers
// a direction when it has an allow or deny list for it (even an empty one:
// the fallback errs towards deny) or enables its default deny; in a
// Kubernetes NetworkPolicy the directions are its policyTypes (or their default). Where no direction can be read (the field
// that named it is what failed to decode, say "ingres"), both are covered.
//
// key names the object (its namespace is the one the subject is restricted
// to); doc is the object as JSON. It is decoded leniently, since what made
// the object fail may be an unknown or mistyped field: only the selectors
// and the direction fields are read. It returns nil when no rule's selector
// can be compiled (nothing can be selected), and the directions the policy
// covers on any endpoint, ingress first.
func RejectedFallback(key Ref, doc []byte) (*Policy, []Direction) {
	var obj struct {
		Spec  json.RawMessage
		Specs []json.RawMessage
	}
	if json.Unmarshal(doc, &obj) != nil || key.Name == "" {
		return nil, nil
	}
	f := fallback{pol: &Policy{Key: key}}
	switch {
	case key.Kind == KindKubernetesPolicy && key.Namespace != "":
		f.networkPolicy(obj.Spec)
	case key.Kind == KindNetworkPolicy && key.Namespace != "", key.Kind == KindClusterwidePolicy && key.Namespace == "":
		if len(obj.Spec) > 0 {
			f.sluiceRule(0, obj.Spec)
		}
		for i, s := range obj.Specs {
			f.sluiceRule(i, s)
		}
	}
	if len(f.pol.rules) == 0 {
		return nil, nil
	}
	var dirs []Direction
	for _, d := range []Direction{Ingress, Egress} {
		if f.covered[d] {
			dirs = append(dirs, d)
		}
	}
	return f.pol, dirs
}

// fallback builds a RejectedFallback policy.
type fallback struct {
	pol     *Policy
	covered [2]bool
}

// add puts the subject into default deny in the directions in and eg (both
// when neither).
func (f *fallback) add(specIdx int, subject labelSelector, in, eg bool) {
	if !in && !eg {
		in, eg = true, true
	}
	for _, d := range []struct {
		on      bool
		dir     Direction
		section string
	}{{in, Ingress, SectionRejectedIngress}, {eg, Egress, SectionRejectedEgress}} {
		if !d.on {
			continue
		}
		f.covered[d.dir] = true
		k := f.pol.Key
		ref := RuleRef{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name, Spec: specIdx, Section: d.section}
		f.pol.rules = append(f.pol.rules, &rule{ref: ref, subject: subject, dir: d.dir, enforce: true})
	}
}

// present reports whether a raw field is set.
func present(v json.RawMessage) bool { return len(v) > 0 && string(v) != "null" }

// sluiceRule adds a SluiceNetworkPolicy rule: its endpointSelector (in the
// policy's namespace, if any) and whether each direction field is present
// (the entries are not decoded, so an unsupported or invalid entry does not
// hide the direction).
func (f *fallback) sluiceRule(specIdx int, raw json.RawMessage) {
	var r struct {
		EndpointSelector, Ingress, IngressDeny, Egress, EgressDeny, EnableDefaultDeny json.RawMessage
	}
	var sel *metav1.LabelSelector
	if json.Unmarshal(raw, &r) != nil || !present(r.EndpointSelector) || json.Unmarshal(r.EndpointSelector, &sel) != nil {
		return
	}
	subject, err := compileSelector(sel, true, "", "")
	if err != nil {
		return
	}
	if ns := f.pol.Key.Namespace; ns != "" {
		subject = subject.inNamespace(ns)
	}
	// A mistyped enableDefaultDeny must not hide the selector.
	var dd DefaultDenyConfig
	_ = json.Unmarshal(r.EnableDefaultDeny, &dd)
	f.add(specIdx, subject, present(r.Ingress) || present(r.IngressDeny) || isTrue(dd.Ingress),
		present(r.Egress) || present(r.EgressDeny) || isTrue(dd.Egress))
}

// networkPolicy adds a Kubernetes NetworkPolicy's spec: its podSelector
// (absent: every pod of the namespace) and its policyTypes (absent:
// Ingress, and Egress when it has egress rules).
func (f *fallback) networkPolicy(raw json.RawMessage) {
	var spec struct {
		PodSelector, PolicyTypes, Egress json.RawMessage
	}
	var sel metav1.LabelSelector
	if json.Unmarshal(raw, &spec) != nil || present(spec.PodSelector) && json.Unmarshal(spec.PodSelector, &sel) != nil {
		return
	}
	subject, err := compileSelector(&sel, false, identity.SourceK8s, "")
	if err != nil {
		return
	}
	in, eg := true, present(spec.Egress)
	var types []string
	if present(spec.PolicyTypes) {
		in, eg = false, false
		_ = json.Unmarshal(spec.PolicyTypes, &types)
	}
	for _, t := range types {
		in = in || t == string(networkingv1.PolicyTypeIngress)
		eg = eg || t == string(networkingv1.PolicyTypeEgress)
	}
	f.add(0, subject.inNamespace(f.pol.Key.Namespace), in, eg)
}

func isTrue(b *bool) bool { return b != nil && *b }

// DirectionsString names directions for a status: "ingress", "egress" or
// "ingress and egress".
func DirectionsString(dirs []Direction) string {
	s := make([]string, len(dirs))
	for i, d := range dirs {
		s[i] = d.String()
	}
	return strings.Join(s, " and ")
}

// RejectedMessage is the one-line status of a rejected policy: the
// reason, then what is enforced instead. dirs are the directions of the
// fail-closed default deny (RejectedFallback); failClosed false says the
// agent ignores rejected policies (--rejected-policy=ignore).
func RejectedMessage(reason string, dirs []Direction, failClosed bool) string {
	switch {
	case !failClosed:
		return fmt.Sprintf("rejected: %s; not enforced (rejected-policy=ignore)", reason)
	case len(dirs) == 0:
		return fmt.Sprintf("rejected: %s; no endpoint selector could be read: nothing to enforce", reason)
	}
	return fmt.Sprintf("rejected: %s; enforcing default deny for %s", reason, DirectionsString(dirs))
}
