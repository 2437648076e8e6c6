package policy

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Sections of the rules a RejectedFallback policy holds (RuleRef.Section):
// they name the default deny a rejected policy falls back to.
const (
	SectionRejectedIngress = "rejected-ingress"
	SectionRejectedEgress  = "rejected-egress"
)

// RejectedFallback is the fail-closed stand-in of a rejected
// SluiceNetworkPolicy or SluiceClusterwideNetworkPolicy: for every rule of
// the object whose endpointSelector compiles, the endpoints it selects are
// put into default deny in the directions the rule covers, with nothing
// allowed, exactly as an empty allow list in that direction would (ingress:
// []). A direction is covered when the rule has an allow or deny list for it
// or enables its default deny; a rule that names no direction (because the
// field that named it was what failed to decode, say "ingres") covers both.
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
	switch {
	case json.Unmarshal(doc, &obj) != nil, key.Name == "":
		return nil, nil
	case key.Kind == KindNetworkPolicy && key.Namespace != "":
	case key.Kind == KindClusterwidePolicy && key.Namespace == "":
	default:
		return nil, nil
	}
	pol := &Policy{Key: key}
	var covered [2]bool
	add := func(specIdx int, raw json.RawMessage) {
		r, ok := decodeRuleLeniently(raw)
		if !ok || r.EndpointSelector == nil {
			return
		}
		subject, err := compileSelector(r.EndpointSelector, true, "", "")
		if err != nil {
			return
		}
		if key.Namespace != "" {
			subject = subject.inNamespace(key.Namespace)
		}
		in := r.Ingress != nil || r.IngressDeny != nil || isTrue(r.EnableDefaultDeny.Ingress)
		eg := r.Egress != nil || r.EgressDeny != nil || isTrue(r.EnableDefaultDeny.Egress)
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
			covered[d.dir] = true
			ref := RuleRef{Kind: key.Kind, Namespace: key.Namespace, Name: key.Name, Spec: specIdx, Section: d.section}
			pol.rules = append(pol.rules, &rule{ref: ref, subject: subject, dir: d.dir, enforce: true})
		}
	}
	if len(obj.Spec) > 0 {
		add(0, obj.Spec)
	}
	for i, s := range obj.Specs {
		add(i, s)
	}
	if len(pol.rules) == 0 {
		return nil, nil
	}
	var dirs []Direction
	for _, d := range []Direction{Ingress, Egress} {
		if covered[d] {
			dirs = append(dirs, d)
		}
	}
	return pol, dirs
}

// decodeRuleLeniently decodes what it can of a rule: the selector and
// whether each direction field is present (its entries are not decoded, so
// an unsupported or invalid entry does not hide the direction).
func decodeRuleLeniently(raw json.RawMessage) (Rule, bool) {
	var r struct {
		EndpointSelector, Ingress, IngressDeny, Egress, EgressDeny, EnableDefaultDeny json.RawMessage
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return Rule{}, false
	}
	var out Rule
	// A mistyped enableDefaultDeny must not hide the selector.
	_ = json.Unmarshal(r.EnableDefaultDeny, &out.EnableDefaultDeny)
	present := func(v json.RawMessage) bool { return len(v) > 0 && string(v) != "null" }
	if !present(r.EndpointSelector) {
		return out, true
	}
	if err := json.Unmarshal(r.EndpointSelector, &out.EndpointSelector); err != nil {
		return out, false
	}
	if present(r.Ingress) {
		out.Ingress = []IngressRule{}
	}
	if present(r.IngressDeny) {
		out.IngressDeny = []IngressRule{}
	}
	if present(r.Egress) {
		out.Egress = []EgressRule{}
	}
	if present(r.EgressDeny) {
		out.EgressDeny = []EgressRule{}
	}
	return out, true
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
