package e2e

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// testNetworks are the subnets the local cluster routes on the host: the
// NodePort test device's (hack/local-cluster.sh EXTNET), the pod and
// service CIDRs (blackholed on the host while it runs).
var testNetworks = []netip.Prefix{
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("10.244.0.0/16"),
	netip.MustParsePrefix("10.96.0.0/12"),
}

// TestE2EHostRoutesNotCaptured: while the cluster is up, the host still
// reaches what it needs (the Go module proxy and Debian's mirror, and
// TEST-NET-3, where these machines' registry answers) through its own
// routes: no address of theirs falls in a test network or is routed to a
// device or blackhole the cluster created.
func TestE2EHostRoutesNotCaptured(t *testing.T) {
	connect(t)
	addrs := []netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.254")}
	for _, h := range []string{"proxy.golang.org", "deb.debian.org"} {
		ips, err := net.LookupIP(h)
		if err != nil {
			t.Logf("%s does not resolve here (%v): checking the fixed addresses only", h, err)
			continue
		}
		for _, ip := range ips {
			if a, ok := netip.AddrFromSlice(ip.To4()); ok && ip.To4() != nil {
				addrs = append(addrs, a)
			}
		}
	}
	for _, a := range addrs {
		for _, n := range testNetworks {
			require.False(t, n.Contains(a), "%s lies in the test network %s", a, n)
		}
		routes, err := netlink.RouteGet(a.AsSlice())
		require.NoError(t, err, "route to %s", a)
		require.NotEmpty(t, routes, "a route to %s", a)
		for _, r := range routes {
			require.NotEqual(t, unix.RTN_BLACKHOLE, r.Type, "%s is blackholed", a)
			link, err := netlink.LinkByIndex(r.LinkIndex)
			require.NoError(t, err, "the device of the route to %s", a)
			name := link.Attrs().Name
			require.False(t, strings.HasPrefix(name, "sluice") || strings.HasPrefix(name, "lxc"),
				"%s is routed to %s, a device of the test cluster", a, name)
		}
	}
}
