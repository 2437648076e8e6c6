package nodemgr

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// Attributes of LWTUNNEL_ENCAP_IP (include/uapi/linux/lwtunnel.h).
const (
	lwtunnelIPID  = 1
	lwtunnelIPDst = 2
)

// ipEncap is a route's "encap ip id <ID> dst <Dst>": the tunnel key a
// collect-metadata device (sluice_vxlan) encapsulates with. vishvananda/
// netlink has no type for LWTUNNEL_ENCAP_IP; routes listed back carry a nil
// Encap for it, so the manager replaces its routes on every sync instead of
// comparing them.
type ipEncap struct {
	ID  uint64
	Dst netip.Addr
}

var _ netlink.Encap = (*ipEncap)(nil)

func (e *ipEncap) Type() int { return nl.LWTUNNEL_ENCAP_IP }

func (e *ipEncap) Encode() ([]byte, error) {
	if !e.Dst.Is4() {
		return nil, fmt.Errorf("ip encap: destination %s is not IPv4", e.Dst)
	}
	id := make([]byte, 8)
	binary.BigEndian.PutUint64(id, e.ID)
	dst := e.Dst.As4()
	out := nl.NewRtAttr(lwtunnelIPID, id).Serialize()
	return append(out, nl.NewRtAttr(lwtunnelIPDst, dst[:]).Serialize()...), nil
}

func (e *ipEncap) Decode(buf []byte) error {
	attrs, err := nl.ParseRouteAttr(buf)
	if err != nil {
		return fmt.Errorf("ip encap: %w", err)
	}
	for _, a := range attrs {
		switch a.Attr.Type {
		case lwtunnelIPID:
			if len(a.Value) == 8 {
				e.ID = binary.BigEndian.Uint64(a.Value)
			}
		case lwtunnelIPDst:
			if ip, ok := netip.AddrFromSlice(a.Value); ok {
				e.Dst = ip
			}
		}
	}
	return nil
}

func (e *ipEncap) String() string { return fmt.Sprintf("ip id %d dst %s", e.ID, e.Dst) }

func (e *ipEncap) Equal(x netlink.Encap) bool {
	o, ok := x.(*ipEncap)
	return ok && *o == *e
}

// ipNet converts a prefix for netlink.
func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// prefixOf converts a route's or rule's IPv4 network from netlink.
func prefixOf(n *net.IPNet) netip.Prefix {
	ones, _ := n.Mask.Size()
	ip, _ := netip.AddrFromSlice(n.IP.To4())
	return netip.PrefixFrom(ip, ones)
}
