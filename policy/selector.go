package policy

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicenet/sluice/identity"
)

// op is a selector requirement operator.
type op uint8

const (
	opIn op = iota
	opNotIn
	opExists
	opDoesNotExist
)

// requirement is one compiled label requirement.
type requirement struct {
	source string // identity.SourceAny matches every source
	key    string
	op     op
	values []string
}

func (r requirement) matches(ls identity.Labels) bool {
	found, inValues := false, false
	for _, l := range ls {
		if l.Key != r.key || (r.source != identity.SourceAny && l.Source != r.source) {
			continue
		}
		found = true
		for _, v := range r.values {
			if l.Value == v {
				inValues = true
			}
		}
	}
	switch r.op {
	case opIn:
		return inValues
	case opNotIn:
		return !inValues
	case opExists:
		return found
	default:
		return !found
	}
}

func (r requirement) String() string {
	k := r.source + ":" + r.key
	switch r.op {
	case opIn:
		return k + " in (" + strings.Join(r.values, ",") + ")"
	case opNotIn:
		return k + " notin (" + strings.Join(r.values, ",") + ")"
	case opExists:
		return k
	}
	return "!" + k
}

// labelSelector is a compiled label selector: all requirements must match.
// The empty selector matches every label set.
type labelSelector struct {
	reqs []requirement
}

func (s labelSelector) matches(ls identity.Labels) bool {
	for _, r := range s.reqs {
		if !r.matches(ls) {
			return false
		}
	}
	return true
}

func (s labelSelector) String() string {
	parts := make([]string, len(s.reqs))
	for i, r := range s.reqs {
		parts[i] = r.String()
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// parseKey splits a selector key: "k8s:app" → (k8s, app); "app" → (any, app).
// Kubernetes label keys may contain "/" but never ":", so the first colon is
// the source separator.
func parseKey(k string) (source, key string) {
	if src, rest, ok := strings.Cut(k, ":"); ok && src != "" {
		return src, rest
	}
	return identity.SourceAny, k
}

// compileSelector compiles a metav1.LabelSelector. ciliumKeys says whether
// keys may carry a source prefix (CNP) or are plain Kubernetes keys that get
// forceSource (Kubernetes NetworkPolicy). keyPrefix is prepended to every key
// (namespace selectors).
func compileSelector(sel *metav1.LabelSelector, ciliumKeys bool, forceSource, keyPrefix string) (labelSelector, error) {
	var s labelSelector
	if sel == nil {
		return s, nil
	}
	split := func(k string) (string, string) {
		if ciliumKeys {
			src, key := parseKey(k)
			return src, keyPrefix + key
		}
		return forceSource, keyPrefix + k
	}
	keys := make([]string, 0, len(sel.MatchLabels))
	for k := range sel.MatchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		src, key := split(k)
		s.reqs = append(s.reqs, requirement{source: src, key: key, op: opIn, values: []string{sel.MatchLabels[k]}})
	}
	for i, e := range sel.MatchExpressions {
		src, key := split(e.Key)
		r := requirement{source: src, key: key, values: append([]string(nil), e.Values...)}
		switch e.Operator {
		case metav1.LabelSelectorOpIn:
			r.op = opIn
		case metav1.LabelSelectorOpNotIn:
			r.op = opNotIn
		case metav1.LabelSelectorOpExists:
			r.op = opExists
		case metav1.LabelSelectorOpDoesNotExist:
			r.op = opDoesNotExist
		default:
			return s, fmt.Errorf("matchExpressions[%d].operator: %q is not a valid operator", i, e.Operator)
		}
		if (r.op == opIn || r.op == opNotIn) && len(r.values) == 0 {
			return s, fmt.Errorf("matchExpressions[%d].values: must be non-empty for %s", i, e.Operator)
		}
		if (r.op == opExists || r.op == opDoesNotExist) && len(r.values) != 0 {
			return s, fmt.Errorf("matchExpressions[%d].values: must be empty for %s", i, e.Operator)
		}
		s.reqs = append(s.reqs, r)
	}
	return s, nil
}

// mentions reports whether a requirement's key is key (any source) or
// starts with prefix.
func (s labelSelector) mentions(key, prefix string) bool {
	for _, r := range s.reqs {
		if r.key == key || (prefix != "" && strings.HasPrefix(r.key, prefix)) {
			return true
		}
	}
	return false
}

func (s labelSelector) mentionsSource(src string) bool {
	for _, r := range s.reqs {
		if r.source == src {
			return true
		}
	}
	return false
}

// inNamespace returns s restricted to a namespace.
func (s labelSelector) inNamespace(ns string) labelSelector {
	reqs := make([]requirement, 0, len(s.reqs)+1)
	reqs = append(reqs, requirement{source: identity.SourceK8s, key: identity.PodNamespaceLabel, op: opIn, values: []string{ns}})
	reqs = append(reqs, s.reqs...)
	return labelSelector{reqs: reqs}
}

// peerKind says how a peer selector matches identities.
type peerKind uint8

const (
	peerLabels peerKind = iota + 1 // a label selector
	peerCIDR                       // a CIDR with exceptions
	peerEntity                     // a reserved entity
)

// peer selects peer identities.
type peer struct {
	kind   peerKind
	labels labelSelector
	cidr   netip.Prefix
	except []netip.Prefix
	entity string
}

func (p peer) matches(id identity.NumericIdentity, ls identity.Labels) bool {
	switch p.kind {
	case peerLabels:
		return p.labels.matches(ls)
	case peerCIDR:
		return p.matchesCIDR(id, ls)
	case peerEntity:
		return matchesEntity(p.entity, id, ls)
	}
	return false
}

func (p peer) matchesCIDR(id identity.NumericIdentity, ls identity.Labels) bool {
	q, ok := ls.CIDRPrefix()
	if !ok {
		// The world identities stand for "everything not known": only a
		// /0 of the matching family selects them.
		if p.cidr.Bits() != 0 || len(p.except) != 0 {
			return false
		}
		switch id {
		case identity.ReservedWorld:
			return true
		case identity.ReservedWorldV4:
			return p.cidr.Addr().Is4()
		case identity.ReservedWorldV6:
			return p.cidr.Addr().Is6()
		}
		return false
	}
	if !containsPrefix(p.cidr, q) {
		return false
	}
	for _, e := range p.except {
		if containsPrefix(e, q) {
			return false
		}
	}
	return true
}

// containsPrefix reports whether outer contains inner.
func containsPrefix(outer, inner netip.Prefix) bool {
	return outer.Addr().Is4() == inner.Addr().Is4() && outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

func (p peer) String() string {
	switch p.kind {
	case peerLabels:
		return p.labels.String()
	case peerCIDR:
		s := p.cidr.String()
		for _, e := range p.except {
			s += " except " + e.String()
		}
		return s
	}
	return "entity:" + p.entity
}

// Entities of fromEntities/toEntities.
const (
	EntityAll           = "all"
	EntityWorld         = "world"
	EntityWorldIPv4     = "world-ipv4"
	EntityWorldIPv6     = "world-ipv6"
	EntityCluster       = "cluster"
	EntityHost          = "host"
	EntityRemoteNode    = "remote-node"
	EntityKubeAPIServer = "kube-apiserver"
	EntityHealth        = "health"
	EntityInit          = "init"
	EntityUnmanaged     = "unmanaged"
)

var entities = map[string]bool{
	EntityAll: true, EntityWorld: true, EntityWorldIPv4: true, EntityWorldIPv6: true, EntityCluster: true,
	EntityHost: true, EntityRemoteNode: true, EntityKubeAPIServer: true, EntityHealth: true, EntityInit: true,
	EntityUnmanaged: true,
}

func isWorld(ls identity.Labels) bool {
	for _, l := range ls {
		if l.Source == identity.SourceReserved && (l.Key == "world" || l.Key == "world-ipv4" || l.Key == "world-ipv6") {
			return true
		}
	}
	return false
}

func matchesEntity(e string, id identity.NumericIdentity, ls identity.Labels) bool {
	switch e {
	case EntityAll:
		return true
	case EntityWorld:
		return isWorld(ls)
	case EntityWorldIPv4:
		if p, ok := ls.CIDRPrefix(); ok {
			return p.Addr().Is4()
		}
		return id == identity.ReservedWorldV4 || id == identity.ReservedWorld
	case EntityWorldIPv6:
		if p, ok := ls.CIDRPrefix(); ok {
			return p.Addr().Is6()
		}
		return id == identity.ReservedWorldV6 || id == identity.ReservedWorld
	case EntityCluster:
		return !isWorld(ls) && !ls.HasSource(identity.SourceCIDR)
	}
	return ls.Has(identity.Label{Source: identity.SourceReserved, Key: e})
}
