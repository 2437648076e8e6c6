package cni

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"
)

// configurePodIf runs in the pod's netns: IPv6 off, link up, <ip>/32, a
// scope-link route to the gateway and the default route via it.
func configurePodIf(ifName string, a podAddr) error {
	if err := disableIPv6(ifName); err != nil {
		return err
	}
	link, err := netlinksafe.LinkByName(ifName)
	if err != nil {
		return fmt.Errorf("look up %s in pod: %w", ifName, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", ifName, err)
	}
	ipn := &net.IPNet{IP: a.IP, Mask: net.CIDRMask(32, 32)}
	if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: ipn}); err != nil {
		return fmt.Errorf("add address %s to %s: %w", ipn, ifName, err)
	}
	idx := link.Attrs().Index
	for _, r := range []*netlink.Route{
		{LinkIndex: idx, Dst: &net.IPNet{IP: a.Gateway, Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK, Src: a.IP},
		{LinkIndex: idx, Dst: defaultRoutePtr(), Gw: a.Gateway, Src: a.IP},
	} {
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("add route %s in pod: %w", r, err)
		}
	}
	return nil
}

// disableIPv6 turns IPv6 off on ifName where the kernel has IPv6: the
// datapath drops IPv6 frames.
func disableIPv6(ifName string) error {
	name := fmt.Sprintf("net/ipv6/conf/%s/disable_ipv6", ifName)
	if _, err := os.Stat("/proc/sys/" + name); err != nil {
		return nil
	}
	if _, err := sysctl.Sysctl(name, "1"); err != nil {
		return fmt.Errorf("disable IPv6 on %s: %w", ifName, err)
	}
	return nil
}

// configureHostIf runs in the node's netns: host veth up, the gateway /32 on
// it (several host veths carry the same one, as with ptp) and a host route to
// the pod.
func configureHostIf(hostName string, a podAddr) error {
	link, err := netlinksafe.LinkByName(hostName)
	if err != nil {
		return fmt.Errorf("look up host veth %s: %w", hostName, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", hostName, err)
	}
	gw := &net.IPNet{IP: a.Gateway, Mask: net.CIDRMask(32, 32)}
	if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: gw}); err != nil && !os.IsExist(err) {
		return fmt.Errorf("add gateway address %s to %s: %w", gw, hostName, err)
	}
	r := &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       &net.IPNet{IP: a.IP, Mask: net.CIDRMask(32, 32)},
		Scope:     netlink.SCOPE_LINK,
	}
	if err := netlink.RouteReplace(r); err != nil {
		return fmt.Errorf("add host route to %s via %s: %w", a.IP, hostName, err)
	}
	return nil
}

// deleteLink deletes a link of the current netns; a missing one is fine.
func deleteLink(name string) error {
	if err := ip.DelLinkByName(name); err != nil && !errors.Is(err, ip.ErrLinkNotFound) {
		return err
	}
	return nil
}
