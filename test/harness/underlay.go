package harness

import (
	"fmt"
	"net/netip"
	"os/exec"
	"sync"
)

// UnderlayCIDR is the test-only range ConnectNodes numbers its links from,
// one /30 per link; it exists only inside simulated nodes' namespaces.
const UnderlayCIDR = "172.31.250.0/24"

var (
	underlayMu   sync.Mutex
	underlayNext int
)

// Underlay is a veth between two simulated nodes: the network between them.
type Underlay struct {
	A, B *Node
	// IfName is the name of the veth end in both namespaces.
	IfName string
	// AddrA and AddrB are the /30 addresses of A's and B's ends: the nodes'
	// InternalIPs.
	AddrA, AddrB netip.Addr
}

// ConnectNodes joins nodes a and b with a veth, addressed from UnderlayCIDR
// (a different /30 per call in this process), up in both namespaces. Like a
// wire, it carries packets of at most its MTU: both ends segment GSO
// packets before sending (gso_max_segs 1), so a capture on it sees what a
// NIC would put on the wire. The veth is deleted in cleanup (and with the
// namespaces in any case).
func ConnectNodes(tb T, a, b *Node) *Underlay {
	tb.Helper()
	underlayMu.Lock()
	i := underlayNext % 64
	underlayNext++
	underlayMu.Unlock()
	base := netip.MustParsePrefix(UnderlayCIDR).Addr().As4()
	base[3] = byte(4 * i)
	subnet := netip.AddrFrom4(base)
	u := &Underlay{A: a, B: b, IfName: fmt.Sprintf("sl-ul%d", i), AddrA: subnet.Next(), AddrB: subnet.Next().Next()}
	a.NS.Run(tb, "ip", "link", "add", u.IfName, "type", "veth", "peer", "name", u.IfName, "netns", b.NS.Name)
	tb.Cleanup(func() {
		// Gone already when a's namespace was deleted first.
		exec.Command("ip", "-n", a.NS.Name, "link", "del", u.IfName).Run()
	})
	for _, end := range []struct {
		n    *Node
		addr netip.Addr
	}{{a, u.AddrA}, {b, u.AddrB}} {
		end.n.NS.Run(tb, "ip", "link", "set", u.IfName, "gso_max_segs", "1")
		end.n.NS.Run(tb, "ip", "addr", "add", netip.PrefixFrom(end.addr, 30).String(), "dev", u.IfName)
		end.n.NS.Run(tb, "ip", "link", "set", u.IfName, "up")
	}
	return u
}

// SetMTU sets the MTU of both ends of the underlay (1500 by default).
func (u *Underlay) SetMTU(tb T, mtu int) {
	tb.Helper()
	for _, n := range []*Node{u.A, u.B} {
		n.NS.Run(tb, "ip", "link", "set", u.IfName, "mtu", fmt.Sprint(mtu))
	}
}

// NodeYAML is the v1 Node object of n with its PodCIDR and internalIP, as
// the agents read it from their manifests directories.
func NodeYAML(n *Node, internalIP netip.Addr) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Node
metadata:
  name: %s
spec:
  podCIDR: %s
  podCIDRs: [%s]
status:
  addresses:
  - type: InternalIP
    address: %s
  - type: Hostname
    address: %s
---
`, n.Name, n.PodCIDR, n.PodCIDR, internalIP, n.Name)
}
