package identity

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// Label sources.
const (
	// SourceK8s marks labels derived from Kubernetes objects.
	SourceK8s = "k8s"
	// SourceReserved marks the labels of reserved identities.
	SourceReserved = "reserved"
	// SourceCIDR marks the labels of CIDR identities.
	SourceCIDR = "cidr"
	// SourceAny is used in selectors: it matches a label of any source.
	SourceAny = "any"
)

// Well-known label keys (without source).
const (
	// PodNamespaceLabel holds the pod's namespace name.
	PodNamespaceLabel = "io.kubernetes.pod.namespace"
	// NamespaceLabelPrefix prefixes the namespace's own labels.
	NamespaceLabelPrefix = "io.cilium.k8s.namespace.labels."
	// NamespaceNameLabel is the label Kubernetes sets on every namespace.
	NamespaceNameLabel = "kubernetes.io/metadata.name"
)

// Label is one security-relevant label: source, key and (possibly empty) value.
type Label struct {
	Source string
	Key    string
	Value  string
}

// NewLabel returns a label.
func NewLabel(source, key, value string) Label {
	return Label{Source: source, Key: key, Value: value}
}

// ParseLabel parses "source:key=value", "source:key" or "key=value" (the
// latter gets SourceAny). Only the first colon separates the source, so IPv6
// CIDR labels ("cidr:2001:db8::/32") parse back to themselves.
func ParseLabel(s string) Label {
	var l Label
	src, rest, ok := strings.Cut(s, ":")
	if ok && src != "" && !strings.ContainsAny(src, "=/") {
		l.Source = src
	} else {
		l.Source, rest = SourceAny, s
	}
	l.Key, l.Value, _ = strings.Cut(rest, "=")
	return l
}

// String returns the canonical form "source:key=value" ("source:key" when the
// value is empty).
func (l Label) String() string {
	if l.Value == "" {
		return l.Source + ":" + l.Key
	}
	return l.Source + ":" + l.Key + "=" + l.Value
}

// Labels is a canonical label set: sorted by source, key and value, without
// duplicates. Build it with NewLabels or the constructors; the zero value is
// the empty set. Treat it as immutable.
type Labels []Label

// NewLabels returns the canonical set of the given labels.
func NewLabels(ls ...Label) Labels {
	out := make(Labels, len(ls))
	copy(out, ls)
	sort.Slice(out, func(i, j int) bool { return out[i].less(out[j]) })
	n := 0
	for i, l := range out {
		if i > 0 && l == out[n-1] {
			continue
		}
		out[n] = l
		n++
	}
	return out[:n]
}

// ParseLabels parses labels in String form ("a;b;c") or a list of them.
func ParseLabels(ss ...string) Labels {
	var ls []Label
	for _, s := range ss {
		for _, p := range strings.Split(s, ";") {
			if p = strings.TrimSpace(p); p != "" {
				ls = append(ls, ParseLabel(p))
			}
		}
	}
	return NewLabels(ls...)
}

func (l Label) less(o Label) bool {
	if l.Source != o.Source {
		return l.Source < o.Source
	}
	if l.Key != o.Key {
		return l.Key < o.Key
	}
	return l.Value < o.Value
}

// String returns the canonical string form: the labels' String forms joined
// by ";". Equal sets have equal strings; use it as a map key.
func (ls Labels) String() string {
	var b strings.Builder
	for i, l := range ls {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(l.String())
	}
	return b.String()
}

// Equal reports whether both sets hold the same labels.
func (ls Labels) Equal(o Labels) bool {
	if len(ls) != len(o) {
		return false
	}
	for i := range ls {
		if ls[i] != o[i] {
			return false
		}
	}
	return true
}

// Has reports whether the set contains the label; a label with SourceAny
// matches a label of any source with the same key and value.
func (ls Labels) Has(l Label) bool {
	for _, x := range ls {
		if x.Key == l.Key && x.Value == l.Value && (l.Source == SourceAny || x.Source == l.Source) {
			return true
		}
	}
	return false
}

// Get returns the value of the first label with the key (and the source,
// unless source is SourceAny).
func (ls Labels) Get(source, key string) (string, bool) {
	for _, x := range ls {
		if x.Key == key && (source == SourceAny || x.Source == source) {
			return x.Value, true
		}
	}
	return "", false
}

// Namespace returns the pod namespace label's value.
func (ls Labels) Namespace() (string, bool) {
	return ls.Get(SourceK8s, PodNamespaceLabel)
}

// HasSource reports whether any label has the source.
func (ls Labels) HasSource(source string) bool {
	for _, x := range ls {
		if x.Source == source {
			return true
		}
	}
	return false
}

// CIDRPrefix returns the prefix of the set's cidr: label, if any.
func (ls Labels) CIDRPrefix() (netip.Prefix, bool) {
	for _, x := range ls {
		if x.Source == SourceCIDR {
			p, err := netip.ParsePrefix(x.Key)
			if err == nil {
				return p, true
			}
		}
	}
	return netip.Prefix{}, false
}

// PodLabels builds a pod's identity labels the way Cilium does: every pod
// label as k8s:<key>=<value>, k8s:io.kubernetes.pod.namespace=<namespace>,
// and every namespace label as
// k8s:io.cilium.k8s.namespace.labels.<key>=<value>. The namespace label
// kubernetes.io/metadata.name=<namespace>, which Kubernetes sets on every
// namespace, is added when missing so namespaceSelector-by-name works
// without a namespace informer.
func PodLabels(namespace string, podLabels, namespaceLabels map[string]string) Labels {
	ls := make([]Label, 0, len(podLabels)+len(namespaceLabels)+2)
	for k, v := range podLabels {
		ls = append(ls, Label{Source: SourceK8s, Key: k, Value: v})
	}
	ls = append(ls, Label{Source: SourceK8s, Key: PodNamespaceLabel, Value: namespace})
	hasName := false
	for k, v := range namespaceLabels {
		ls = append(ls, Label{Source: SourceK8s, Key: NamespaceLabelPrefix + k, Value: v})
		hasName = hasName || k == NamespaceNameLabel
	}
	if !hasName {
		ls = append(ls, Label{Source: SourceK8s, Key: NamespaceLabelPrefix + NamespaceNameLabel, Value: namespace})
	}
	return NewLabels(ls...)
}

// CIDRLabels returns the labels of the CIDR identity for the prefix (masked):
// cidr:<prefix> and reserved:world, world being its parent.
func CIDRLabels(p netip.Prefix) Labels {
	return NewLabels(
		Label{Source: SourceCIDR, Key: p.Masked().String()},
		Label{Source: SourceReserved, Key: "world"},
	)
}

// validate checks that a label set can be allocated.
func (ls Labels) validate() error {
	if len(ls) == 0 {
		return fmt.Errorf("empty label set")
	}
	for _, l := range ls {
		if l.Source == "" || l.Source == SourceAny || l.Key == "" {
			return fmt.Errorf("label %q: identity labels need a concrete source and a key", l.String())
		}
	}
	return nil
}
