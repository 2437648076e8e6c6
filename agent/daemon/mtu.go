package daemon

import (
	"fmt"
	"net/netip"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"

	"github.com/sluicenet/sluice/agent/nodemgr"
)

// setupMTU computes the pod and sluice_vxlan MTUs from --mtu, --routing and
// the MTU of the device holding the node IP (--node-ip, else the first
// device's address): the underlay. An unknown underlay is taken as
// nodemgr.DefaultUnderlayMTU. The MTUs are fixed for the agent's lifetime;
// pods keep the MTU they were created with.
func (d *Daemon) setupMTU() error {
	mode, err := nodemgr.ParseMode(d.cfg.Routing)
	if err != nil {
		return fmt.Errorf("routing: %w", err)
	}
	nodeIP := d.hostOpts.SNATAddr
	dev, underlay, err := underlayMTU(nodeIP)
	log := d.log.WithField("nodeIP", nodeIP)
	switch {
	case err != nil:
		log.WithError(err).Warnf("Underlay MTU unknown, assuming %d", nodemgr.DefaultUnderlayMTU)
	case dev == "" && nodeIP.IsValid():
		log.Warnf("No device holds the node IP, assuming an underlay MTU of %d", nodemgr.DefaultUnderlayMTU)
	case dev == "" && d.cfg.MTU == 0:
		log.Infof("No node IP (--node-ip or --devices) to find the underlay device, assuming an MTU of %d", nodemgr.DefaultUnderlayMTU)
	}
	if d.mtu, err = nodemgr.ComputeMTUs(mode, underlay, d.cfg.MTU); err != nil {
		return fmt.Errorf("mtu: %w", err)
	}
	fields := logrus.Fields{"underlayDevice": dev, "underlayMTU": d.mtu.Underlay, "podMTU": d.mtu.Pod, "routing": mode}
	if mode == nodemgr.ModeVXLAN {
		fields["vxlanMTU"] = d.mtu.VXLAN
		if d.mtu.Pod > d.mtu.VXLAN {
			d.log.WithFields(fields).Warn("Pod MTU exceeds the VXLAN device's: large pod packets need path MTU discovery")
		}
	}
	d.log.WithFields(fields).Info("MTU configured")
	return nil
}

// underlayMTU returns the name and MTU of the interface that holds addr in
// the calling thread's network namespace; "" and 0 when addr is unset or no
// interface holds it.
func underlayMTU(addr netip.Addr) (string, int, error) {
	if !addr.IsValid() {
		return "", 0, nil
	}
	list, err := netlinksafe.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return "", 0, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range list {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || ip.Unmap() != addr.Unmap() {
			continue
		}
		l, err := netlink.LinkByIndex(a.LinkIndex)
		if err != nil {
			return "", 0, fmt.Errorf("device of %s: %w", addr, err)
		}
		return l.Attrs().Name, l.Attrs().MTU, nil
	}
	return "", 0, nil
}

// MTUs returns the MTUs the agent configures (pods, sluice_vxlan) and the
// underlay's they derive from.
func (d *Daemon) MTUs() nodemgr.MTUs { return d.mtu }
