package nodemgr

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// In VXLAN mode a pod's traffic to another node's own address (its
// InternalIP: the API server on a control-plane node, a host-network pod,
// a node's kubelet) goes through the tunnel too, as Cilium sends it: the
// underlay may not carry pod source addresses (a cloud's anti-spoofing
// check drops them), which is why the cluster tunnels in the first place.
// The node's own traffic to those addresses keeps the underlay. So the
// routes to the other nodes' IPs are in a table of their own, NodeTable,
// which a rule makes the pods' traffic (source in this node's PodCIDRs)
// look up first; a destination not in it falls through to the main table.
// The other node's agent answers through its route to this node's
// PodCIDR, which is a tunnel route: both directions are encapsulated, and
// reverse-path filtering on the tunnel device finds the source behind it.
const (
	// NodeTable is the routing table of the routes to other nodes' IPs
	// through sluice_vxlan.
	NodeTable = 2111
	// NodeRulePriority is the priority of the rules that make traffic
	// from this node's PodCIDRs look up NodeTable (before main, 32766).
	NodeRulePriority = 2111
)

// LocalPodCIDRs returns the PodCIDRs of node self in nodes.
func LocalPodCIDRs(self string, nodes []Node) []netip.Prefix {
	for _, n := range nodes {
		if n.Name == self {
			return n.PodCIDRs
		}
	}
	return nil
}

// nodeRoute is the route to peer p's node IP in NodeTable: through
// sluice_vxlan (index vxlan), next hop the gateway of p's PodCIDR (whose
// permanent neighbor entry holds the node's VTEP MAC), tunnel key to it.
func nodeRoute(p Peer, vxlan int) *netlink.Route {
	return &netlink.Route{
		Dst:       ipNet(netip.PrefixFrom(p.NodeIP, 32)),
		Protocol:  RouteProtocol,
		Table:     NodeTable,
		Family:    netlink.FAMILY_V4,
		LinkIndex: vxlan,
		Gw:        vtepGateway(p.PodCIDR).AsSlice(),
		Flags:     int(netlink.FLAG_ONLINK),
		Encap:     &ipEncap{ID: VNI, Dst: p.NodeIP},
	}
}

// syncNodeTunnel makes NodeTable hold exactly a route to each peer's node
// IP (the first PodCIDR of a node names its next hop) and the rules exactly
// one per local PodCIDR. vxlan 0: neither routes nor rules (other modes).
func (m *Manager) syncNodeTunnel(vxlan int, peers []Peer, local []netip.Prefix) error {
	var errs []error
	want := map[netip.Prefix]bool{}
	if vxlan != 0 {
		for _, p := range peers {
			dst := netip.PrefixFrom(p.NodeIP, 32)
			if want[dst] {
				continue
			}
			want[dst] = true
			if err := m.h.RouteReplace(nodeRoute(p, vxlan)); err != nil {
				errs = append(errs, fmt.Errorf("route to node %s (%s) via %s: %w", p.Node, p.NodeIP, VXLANDevice, err))
			}
		}
	}
	if _, err := m.pruneTable(NodeTable, want, "node IP route"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(append(errs, m.syncNodeRules(vxlan != 0 && len(want) > 0, local))...)
}

// syncNodeRules makes the rules that look up NodeTable exactly "from <c>"
// for each c of local (none when !enabled).
func (m *Manager) syncNodeRules(enabled bool, local []netip.Prefix) error {
	want := map[netip.Prefix]bool{}
	if enabled {
		for _, c := range local {
			want[c.Masked()] = true
		}
	}
	rules, err := m.h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list rules: %w", err)
	}
	var errs []error
	for i := range rules {
		r := &rules[i]
		if r.Table != NodeTable {
			continue
		}
		var src netip.Prefix
		if r.Src != nil {
			src = prefixOf(r.Src)
		}
		if want[src] && r.Priority == NodeRulePriority && !r.Invert && r.Dst == nil && r.IifName == "" && r.OifName == "" {
			delete(want, src) // present
			continue
		}
		if err := m.h.RuleDel(r); err != nil {
			errs = append(errs, fmt.Errorf("delete rule %s: %w", r, err))
		}
	}
	for c := range want {
		r := netlink.NewRule()
		r.Family = netlink.FAMILY_V4
		r.Src = ipNet(c)
		r.Table = NodeTable
		r.Priority = NodeRulePriority
		if err := m.h.RuleAdd(r); err != nil {
			errs = append(errs, fmt.Errorf("add rule from %s lookup %d: %w", c, NodeTable, err))
		}
	}
	return errors.Join(errs...)
}
