package nodemgr

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
)

// VXLAN parameters.
const (
	// VXLANDevice is the name of the collect-metadata VXLAN device.
	VXLANDevice = "sluice_vxlan"
	// VXLANPort is the UDP port of the underlay (the Linux and flannel
	// default, which is also Cilium's).
	VXLANPort = 8472
	// VNI is the VXLAN network identifier pod traffic is sent with.
	VNI = 1
)

// VTEPMAC is the MAC of a node's sluice_vxlan device, derived from its node
// IP so that every node knows every other node's (locally administered,
// unicast: 0a:53 followed by the IPv4 address).
func VTEPMAC(nodeIP netip.Addr) net.HardwareAddr {
	a := nodeIP.As4()
	return net.HardwareAddr{0x0a, 0x53, a[0], a[1], a[2], a[3]}
}

// vtepGateway is the onlink next hop of the routes to cidr in VXLAN mode:
// its network address, which no pod uses; its permanent neighbor entry
// holds the owning node's VTEP MAC.
func vtepGateway(cidr netip.Prefix) netip.Addr { return cidr.Masked().Addr() }

// ensureVXLAN creates sluice_vxlan (or adopts a matching one) for nodeIP,
// up, with the configured MTU, and returns its index. A device of that name
// with other parameters is replaced; one with another MTU gets this one.
func (m *Manager) ensureVXLAN(nodeIP netip.Addr) (int, error) {
	mac := VTEPMAC(nodeIP)
	l, err := m.h.LinkByName(VXLANDevice)
	var nf netlink.LinkNotFoundError
	switch {
	case errors.As(err, &nf):
		l = nil
	case err != nil:
		return 0, fmt.Errorf("look up %s: %w", VXLANDevice, err)
	}
	if vx, ok := l.(*netlink.Vxlan); l != nil && (!ok || !vx.FlowBased || vx.Port != VXLANPort || !vx.SrcAddr.Equal(nodeIP.AsSlice())) {
		m.log.WithField("device", VXLANDevice).Info("Replacing VXLAN device with other parameters")
		if err := m.h.LinkDel(l); err != nil {
			return 0, fmt.Errorf("delete %s: %w", VXLANDevice, err)
		}
		l = nil
	}
	if l == nil {
		vx := &netlink.Vxlan{
			LinkAttrs: netlink.LinkAttrs{Name: VXLANDevice, MTU: m.cfg.VXLANMTU, HardwareAddr: mac},
			FlowBased: true,
			Port:      VXLANPort,
			SrcAddr:   nodeIP.AsSlice(),
		}
		if err := m.h.LinkAdd(vx); err != nil {
			return 0, fmt.Errorf("create %s: %w", VXLANDevice, err)
		}
		if l, err = m.h.LinkByName(VXLANDevice); err != nil {
			return 0, fmt.Errorf("look up %s: %w", VXLANDevice, err)
		}
		m.log.WithFields(logrus.Fields{"device": VXLANDevice, "mac": mac, "local": nodeIP, "mtu": m.cfg.VXLANMTU}).Info("VXLAN device created")
	}
	if old := l.Attrs().MTU; old != m.cfg.VXLANMTU {
		if err := m.h.LinkSetMTU(l, m.cfg.VXLANMTU); err != nil {
			return 0, fmt.Errorf("set MTU of %s to %d: %w", VXLANDevice, m.cfg.VXLANMTU, err)
		}
		m.log.WithFields(logrus.Fields{"device": VXLANDevice, "from": old, "mtu": m.cfg.VXLANMTU}).Info("VXLAN device MTU changed")
	}
	if l.Attrs().HardwareAddr.String() != mac.String() {
		if err := m.h.LinkSetHardwareAddr(l, mac); err != nil {
			return 0, fmt.Errorf("set MAC of %s: %w", VXLANDevice, err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := m.h.LinkSetUp(l); err != nil {
			return 0, fmt.Errorf("set %s up: %w", VXLANDevice, err)
		}
	}
	return l.Attrs().Index, nil
}

// removeVXLAN deletes sluice_vxlan if it exists (its routes and neighbor
// entries go with it).
func (m *Manager) removeVXLAN() error {
	l, err := m.h.LinkByName(VXLANDevice)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up %s: %w", VXLANDevice, err)
	}
	if err := m.h.LinkDel(l); err != nil {
		return fmt.Errorf("delete %s: %w", VXLANDevice, err)
	}
	m.log.WithField("device", VXLANDevice).Info("VXLAN device removed")
	return nil
}

// syncNeighbors makes the permanent gateway entries on device idx exactly
// those of peers.
func (m *Manager) syncNeighbors(idx int, peers []Peer) error {
	want := map[netip.Addr]bool{}
	var errs []error
	for _, p := range peers {
		gw := vtepGateway(p.PodCIDR)
		want[gw] = true
		n := &netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
			IP: gw.AsSlice(), HardwareAddr: VTEPMAC(p.NodeIP)}
		if err := m.h.NeighSet(n); err != nil {
			errs = append(errs, fmt.Errorf("neighbor %s of node %s: %w", gw, p.Node, err))
		}
	}
	list, err := m.h.NeighList(idx, netlink.FAMILY_V4)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list neighbors of %s: %w", VXLANDevice, err))...)
	}
	for i := range list {
		ip, _ := netip.AddrFromSlice(list[i].IP.To4())
		if want[ip] {
			continue
		}
		if err := m.h.NeighDel(&list[i]); err != nil {
			errs = append(errs, fmt.Errorf("delete neighbor %s: %w", ip, err))
		}
	}
	return errors.Join(errs...)
}
