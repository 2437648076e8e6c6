package nodemgr

import (
	"cmp"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// Node is what routing needs from a Node object.
type Node struct {
	Name string
	// PodCIDRs are the node's IPv4 pod ranges (spec.podCIDRs, else
	// spec.podCIDR), masked.
	PodCIDRs []netip.Prefix
	// InternalIP is the node's first IPv4 InternalIP; invalid if none.
	InternalIP netip.Addr
}

// FromObjects extracts the routing view of Node objects. Malformed or IPv6
// CIDRs and addresses are skipped (the node is then not routable through
// them); the result is sorted by name.
func FromObjects(objs []*corev1.Node) []Node {
	out := make([]Node, 0, len(objs))
	for _, o := range objs {
		n := Node{Name: o.Name}
		cidrs := o.Spec.PodCIDRs
		if len(cidrs) == 0 && o.Spec.PodCIDR != "" {
			cidrs = []string{o.Spec.PodCIDR}
		}
		for _, c := range cidrs {
			if p, err := netip.ParsePrefix(c); err == nil && p.Addr().Is4() {
				n.PodCIDRs = append(n.PodCIDRs, p.Masked())
			}
		}
		for _, a := range o.Status.Addresses {
			if a.Type != corev1.NodeInternalIP {
				continue
			}
			if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() {
				n.InternalIP = ip
				break
			}
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
