package nodemgr

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/sluicenet/sluice/test/harness"
)

// Each mode's sync against a real network namespace: routes, device and
// neighbors as iproute2 sees them, prune of removed nodes only, switching
// modes and cleanup with mode none.
func TestPrivilegedManagerModes(t *testing.T) {
	harness.RequirePrivileged(t)
	ns := harness.NewNetNS(t, "sl-nodemgr-")
	ns.Run(t, "ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ul1")
	ns.Run(t, "ip", "addr", "add", "172.31.250.1/30", "dev", "ul0")
	ns.Run(t, "ip", "link", "set", "ul1", "up")
	ns.Run(t, "ip", "link", "set", "ul0", "up")
	ns.Run(t, "ip", "route", "add", "10.99.0.0/24", "via", "172.31.250.2", "proto", "static")
	ns.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1") // forwarded lookups (a pod's packets), this netns only
	nsh, err := netns.GetFromPath(ns.Path())
	require.NoError(t, err)
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	require.NoError(t, err)
	defer h.Close()

	var managerMTU func(mode Mode, mtu int) *Manager
	tunnel := -1 // what the last sync told SetTunnel
	vxlanIndex := func() int {
		l, err := h.LinkByName(VXLANDevice)
		require.NoError(t, err)
		return l.Attrs().Index
	}
	nodes := []Node{
		{Name: "a", PodCIDRs: []netip.Prefix{pfx("10.244.1.0/24")}, InternalIP: ip("172.31.250.1")},
		{Name: "b", PodCIDRs: []netip.Prefix{pfx("10.244.2.0/24")}, InternalIP: ip("172.31.250.2")},
	}
	manager := func(mode Mode) *Manager { return managerMTU(mode, 0) }
	managerMTU = func(mode Mode, mtu int) *Manager {
		tunnel = -1
		setTunnel := func(idx int) error { tunnel = idx; return nil }
		m, err := New(Config{Mode: mode, NodeName: "a", Handle: h, VXLANMTU: mtu, SetTunnel: setTunnel}, logrus.New())
		require.NoError(t, err)
		m.SetNodes(nodes)
		require.NoError(t, m.Sync())
		require.NoError(t, m.Sync(), "idempotent")
		return m
	}
	routes := func() string { return ns.Run(t, "ip", "route", "show", "proto", "211") }

	manager(ModeNative)
	require.Equal(t, "10.244.2.0/24 via 172.31.250.2 dev ul0 \n", routes())
	require.Zero(t, tunnel, "no tunnel device in native mode")

	m := manager(ModeVXLAN)
	require.Equal(t, vxlanIndex(), tunnel, "the tunnel device recorded")
	require.Equal(t, []Peer{{Node: "b", PodCIDR: pfx("10.244.2.0/24"), NodeIP: ip("172.31.250.2")}}, m.Applied())
	r := routes()
	require.Contains(t, r, "10.244.2.0/24  encap ip id 1 src 0.0.0.0 dst 172.31.250.2")
	require.Contains(t, r, "via 10.244.2.0 dev sluice_vxlan")
	dev := ns.Run(t, "ip", "-d", "link", "show", "sluice_vxlan")
	require.Contains(t, dev, "0a:53:ac:1f:fa:01")
	require.Contains(t, dev, "vxlan external")
	require.Contains(t, dev, "local 172.31.250.1")
	require.Contains(t, dev, " mtu 1450 ", "the default: 1500 less the VXLAN overhead")
	require.Contains(t, ns.Run(t, "ip", "neigh", "show", "dev", "sluice_vxlan"), "10.244.2.0 lladdr 0a:53:ac:1f:fa:02 PERMANENT")
	// Pods' traffic to node b's own IP takes the tunnel too; the node's
	// own keeps the underlay.
	nodeTable := func() string { return ns.Run(t, "ip", "route", "show", "table", "2111") }
	nodeRules := func() string { return ns.Run(t, "ip", "rule", "show", "table", "2111") }
	require.Contains(t, nodeTable(), "172.31.250.2  encap ip id 1 src 0.0.0.0 dst 172.31.250.2")
	require.Contains(t, nodeTable(), "via 10.244.2.0 dev sluice_vxlan")
	require.Equal(t, "2111:\tfrom 10.244.1.0/24 lookup 2111\n", nodeRules())
	require.Contains(t, ns.Run(t, "ip", "route", "get", "172.31.250.2", "from", "10.244.1.7", "iif", "ul1"), "dev sluice_vxlan")
	require.Contains(t, ns.Run(t, "ip", "route", "get", "172.31.250.2"), "dev ul0")

	// An adopted device with another MTU gets the configured one, and keeps
	// its routes.
	m = managerMTU(ModeVXLAN, 1350)
	require.Contains(t, ns.Run(t, "ip", "link", "show", "sluice_vxlan"), " mtu 1350 ")
	require.Contains(t, routes(), "via 10.244.2.0 dev sluice_vxlan")

	// Node b is gone: its route and neighbor go, the foreign route stays.
	m.SetNodes(nodes[:1])
	require.NoError(t, m.Sync())
	require.Empty(t, routes())
	require.Empty(t, strings.TrimSpace(ns.Run(t, "ip", "neigh", "show", "dev", "sluice_vxlan")))
	require.Empty(t, nodeTable())
	require.Empty(t, nodeRules(), "no node to tunnel to: no rule")
	m.SetNodes(nodes)
	require.NoError(t, m.Sync())
	require.NotEmpty(t, nodeRules())
	require.Contains(t, ns.Run(t, "ip", "route"), "10.99.0.0/24 via 172.31.250.2")

	// Back to native: the device goes; then none removes the routes.
	manager(ModeNative)
	require.NotContains(t, ns.Run(t, "ip", "link"), "sluice_vxlan")
	require.Equal(t, "10.244.2.0/24 via 172.31.250.2 dev ul0 \n", routes())
	require.Empty(t, nodeTable())
	require.Empty(t, nodeRules(), "native mode: no rule")
	manager(ModeVXLAN)
	require.NotEmpty(t, nodeRules())
	manager(ModeNone)
	require.Empty(t, nodeRules(), "mode none: no rule")
	require.Empty(t, nodeTable())
	require.Zero(t, tunnel, "tunnel device unrecorded with mode none")
	require.Empty(t, routes())
	require.NotContains(t, ns.Run(t, "ip", "link"), "sluice_vxlan")
	require.Contains(t, ns.Run(t, "ip", "route"), "10.99.0.0/24 via 172.31.250.2")

	// A failure to record the tunnel device fails the sync (retried).
	m, err = New(Config{Mode: ModeVXLAN, NodeName: "a", Handle: h,
		SetTunnel: func(int) error { return errors.New("map gone") }}, logrus.New())
	require.NoError(t, err)
	m.SetNodes(nodes)
	require.ErrorContains(t, m.Sync(), "record tunnel device")
}
