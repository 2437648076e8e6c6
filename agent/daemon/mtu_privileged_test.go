package daemon

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/nodemgr"
	"github.com/sluicenet/sluice/test/harness"
)

// The underlay is the device holding the node IP, found in the agent's
// network namespace; its MTU gives the pod and VXLAN MTUs.
func TestPrivilegedUnderlayMTU(t *testing.T) {
	harness.RequirePrivileged(t)
	ns := harness.NewNetNS(t, "sl-mtu-")
	ns.Run(t, "ip", "link", "add", "ul0", "mtu", "9000", "type", "veth", "peer", "name", "ul0p")
	ns.Run(t, "ip", "addr", "add", "172.31.251.1/24", "dev", "ul0")
	ns.Run(t, "ip", "link", "add", "ul1", "mtu", "1400", "type", "veth", "peer", "name", "ul1p")
	ns.Run(t, "ip", "addr", "add", "172.31.251.129/25", "dev", "ul1")
	nodeIP := netip.MustParseAddr("172.31.251.129")

	type found struct {
		dev string
		mtu int
		err error
	}
	lookup := func(addr netip.Addr) (f found) {
		ns.Do(t, func() { f.dev, f.mtu, f.err = underlayMTU(addr) })
		return f
	}
	assert.Equal(t, found{dev: "ul1", mtu: 1400}, lookup(nodeIP))
	assert.Equal(t, found{dev: "ul0", mtu: 9000}, lookup(netip.MustParseAddr("172.31.251.1")))
	assert.Equal(t, found{}, lookup(netip.MustParseAddr("172.31.251.2")), "an address no device holds")
	assert.Equal(t, found{}, lookup(netip.Addr{}), "no node IP")
	assert.Equal(t, found{dev: "lo", mtu: 65536}, lookup(netip.MustParseAddr("127.0.0.1")))

	setup := func(routing string, mtu int, ip netip.Addr) nodemgr.MTUs {
		d := mtuDaemon(routing, mtu, ip)
		var err error
		ns.Do(t, func() { err = d.setupMTU() })
		require.NoError(t, err)
		return d.MTUs()
	}
	assert.Equal(t, nodemgr.MTUs{Underlay: 1400, Pod: 1350, VXLAN: 1350}, setup("vxlan", 0, nodeIP))
	assert.Equal(t, nodemgr.MTUs{Underlay: 1400, Pod: 1400, VXLAN: 1350}, setup("native", 0, nodeIP))
	assert.Equal(t, nodemgr.MTUs{Underlay: 1400, Pod: 1300, VXLAN: 1350}, setup("vxlan", 1300, nodeIP))
	assert.Equal(t, nodemgr.MTUs{Underlay: 1500, Pod: 1450, VXLAN: 1450}, setup("vxlan", 0, netip.MustParseAddr("172.31.251.2")),
		"node IP on no device: 1500 assumed")
}
