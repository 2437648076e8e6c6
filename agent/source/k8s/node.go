package k8s

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
)

// NodeInfo is what the agent needs from its own Node object.
type NodeInfo struct {
	// Name is the Node's name.
	Name string
	// PodCIDR is the node's IPv4 pod range (spec.podCIDRs, else spec.podCIDR);
	// invalid until the controller-manager allocated one.
	PodCIDR netip.Prefix
	// InternalIP is the node's first IPv4 InternalIP address; invalid when
	// the kubelet has not reported one.
	InternalIP netip.Addr
}

// Ready reports whether the node has both a PodCIDR and an InternalIP.
func (n NodeInfo) Ready() bool { return n.PodCIDR.IsValid() && n.InternalIP.IsValid() }

// NodeInfoFrom extracts the IPv4 PodCIDR and InternalIP of a Node. Malformed
// fields are errors; absent ones leave the field invalid.
func NodeInfoFrom(n *corev1.Node) (NodeInfo, error) {
	info := NodeInfo{Name: n.Name}
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return info, fmt.Errorf("node %s: pod CIDR %q: %w", n.Name, c, err)
		}
		if p.Addr().Is4() {
			info.PodCIDR = p.Masked()
			break
		}
	}
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err != nil {
			return info, fmt.Errorf("node %s: internal IP %q: %w", n.Name, a.Address, err)
		}
		if ip.Is4() {
			info.InternalIP = ip
			break
		}
	}
	return info, nil
}
