package nodemgr

import (
	"fmt"
	"net/netip"
)

// Peer is one desired route: PodCIDR is reached through node NodeIP.
type Peer struct {
	Node    string
	PodCIDR netip.Prefix
	NodeIP  netip.Addr
}

// Desired computes the routes to every other node's PodCIDRs. self names
// this node: its PodCIDRs are local, and remote CIDRs that overlap them are
// refused, as are CIDRs a node earlier in name order already claimed and
// nodes without PodCIDRs or InternalIP. The problems are returned as
// messages for the log; the result is in nodes' order.
func Desired(self string, nodes []Node) (peers []Peer, problems []string) {
	var local []netip.Prefix
	for _, n := range nodes {
		if n.Name == self {
			local = append(local, n.PodCIDRs...)
		}
	}
	claimed := map[netip.Prefix]string{}
	for _, n := range nodes {
		if n.Name == self {
			continue
		}
		if len(n.PodCIDRs) == 0 || !n.InternalIP.IsValid() {
			problems = append(problems, fmt.Sprintf("node %s has no IPv4 PodCIDR or InternalIP yet: not routed", n.Name))
			continue
		}
	cidrs:
		for _, c := range n.PodCIDRs {
			for _, l := range local {
				if l.Overlaps(c) {
					problems = append(problems, fmt.Sprintf("node %s PodCIDR %s overlaps this node's %s: not routed", n.Name, c, l))
					continue cidrs
				}
			}
			for p, owner := range claimed {
				if p.Overlaps(c) {
					problems = append(problems, fmt.Sprintf("node %s PodCIDR %s overlaps %s of node %s: not routed", n.Name, c, p, owner))
					continue cidrs
				}
			}
			claimed[c] = n.Name
			peers = append(peers, Peer{Node: n.Name, PodCIDR: c, NodeIP: n.InternalIP})
		}
	}
	return peers, problems
}

// SelfIP returns this node's InternalIP from nodes (invalid if unknown).
func SelfIP(self string, nodes []Node) netip.Addr {
	for _, n := range nodes {
		if n.Name == self {
			return n.InternalIP
		}
	}
	return netip.Addr{}
}
