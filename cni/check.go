package cni

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ipam"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/attach"
)

// CmdCheck is the CHECK command: it validates prevResult against the pod's
// interface, address and default route, the host veth and its attached
// programs, the IPAM allocation and the agent's endpoint.
func CmdCheck(args *skel.CmdArgs) error {
	c, err := newCommand("CHECK", args)
	if err != nil {
		return err
	}
	defer c.done()
	if err := c.check(args); err != nil {
		c.log.WithError(err).Error("CHECK failed")
		return err
	}
	return nil
}

func checkFailed(format string, a ...any) error {
	return types.NewError(types.ErrInternal, "sluice-cni CHECK: "+fmt.Sprintf(format, a...), "")
}

func (c *command) check(args *skel.CmdArgs) error {
	if err := validateArgs(args, true); err != nil {
		return err
	}
	if c.conf.RawPrevResult == nil {
		return invalidConf("CHECK requires prevResult")
	}
	if err := version.ParsePrevResult(&c.conf.PluginConf); err != nil {
		return types.NewError(types.ErrDecodingFailure, "sluice-cni: cannot parse prevResult", err.Error())
	}
	prev, err := current.NewResultFromResult(c.conf.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "sluice-cni: cannot convert prevResult", err.Error())
	}

	hostName := HostVethName(args.ContainerID, args.IfName)
	var podIf, hostIf *current.Interface
	podIdx := -1
	for i, intf := range prev.Interfaces {
		switch {
		case intf.Name == args.IfName && intf.Sandbox != "":
			podIf, podIdx = intf, i
		case intf.Name == hostName && intf.Sandbox == "":
			hostIf = intf
		}
	}
	if podIf == nil {
		return checkFailed("prevResult has no interface %s in a sandbox", args.IfName)
	}
	if podIf.Sandbox != args.Netns {
		return checkFailed("prevResult sandbox %s of %s differs from CNI_NETNS %s", podIf.Sandbox, args.IfName, args.Netns)
	}
	var podIP *current.IPConfig
	for _, ipc := range prev.IPs {
		if ipc.Interface != nil && *ipc.Interface == podIdx && ipc.Address.IP.To4() != nil {
			podIP = ipc
			break
		}
	}
	if podIP == nil {
		return checkFailed("prevResult has no IPv4 address on %s", args.IfName)
	}
	gw := podIP.Gateway.To4()
	if gw == nil {
		return checkFailed("prevResult has no IPv4 gateway for %s", podIP.Address.IP)
	}

	err = ns.WithNetNSPath(args.Netns, func(ns.NetNS) error {
		return checkPodIf(args.IfName, podIf.Mac, podIP.Address.IP, gw)
	})
	if err != nil {
		return err
	}

	link, err := netlinksafe.LinkByName(hostName)
	if err != nil {
		return checkFailed("host veth %s: %v", hostName, err)
	}
	if hostIf != nil && hostIf.Mac != "" && link.Attrs().HardwareAddr.String() != hostIf.Mac {
		return checkFailed("host veth %s has MAC %s, prevResult says %s", hostName, link.Attrs().HardwareAddr, hostIf.Mac)
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		return checkFailed("host veth %s is down", hostName)
	}
	if err := attach.Check(c.conf.BPFRoot, hostName, link.Attrs().Index); err != nil {
		return checkFailed("pod programs on %s: %v", hostName, err)
	}

	if err := ipam.ExecCheck(c.conf.IPAM.Type, args.StdinData); err != nil {
		return ipamError(c.conf.IPAM.Type, "confirm the allocation", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), agentTimeout)
	defer cancel()
	ep, err := c.client().GetEndpoint(ctx, args.ContainerID, args.IfName)
	if errors.Is(err, api.ErrNotFound) {
		return checkFailed("sluice-agent does not know endpoint %s/%s", args.ContainerID, args.IfName)
	}
	if err != nil {
		return c.agentError(fmt.Sprintf("get endpoint %s/%s", args.ContainerID, args.IfName), err)
	}
	if ep.IPv4 != podIP.Address.IP.String() {
		return checkFailed("sluice-agent has endpoint %s/%s with IPv4 %s, prevResult says %s",
			args.ContainerID, args.IfName, ep.IPv4, podIP.Address.IP)
	}
	if ep.HostIfName != "" && ep.HostIfName != hostName {
		return checkFailed("sluice-agent has endpoint %s/%s on %s, expected %s", args.ContainerID, args.IfName, ep.HostIfName, hostName)
	}
	if ep.HostIfIndex != 0 && ep.HostIfIndex != link.Attrs().Index {
		return checkFailed("sluice-agent has endpoint %s/%s on ifindex %d, %s is %d",
			args.ContainerID, args.IfName, ep.HostIfIndex, hostName, link.Attrs().Index)
	}
	return c.checkPortMappings(args, ep)
}

// checkPortMappings checks that the agent serves the hostPorts the runtime
// passes (runtimeConfig.portMappings), no more and no fewer.
func (c *command) checkPortMappings(args *skel.CmdArgs, ep api.Endpoint) error {
	want, err := c.conf.portMappings()
	if err != nil {
		return err
	}
	if !samePortMappings(want, ep.PortMappings) {
		return checkFailed("sluice-agent has endpoint %s/%s with port mappings %v, the runtime passes %v",
			args.ContainerID, args.IfName, ep.PortMappings, want)
	}
	return nil
}

// samePortMappings compares two sets of valid mappings in normal form.
func samePortMappings(a, b []api.PortMapping) bool {
	norm := func(pms []api.PortMapping) []string {
		out := make([]string, len(pms))
		for i, p := range pms {
			p = p.Normalized()
			out[i] = fmt.Sprintf("%s %d %d %s", p.HostIP, p.HostPort, p.ContainerPort, p.Protocol)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(norm(a), norm(b))
}

// checkPodIf runs in the pod's netns.
func checkPodIf(ifName, mac string, addr, gw net.IP) error {
	link, err := netlinksafe.LinkByName(ifName)
	if err != nil {
		return checkFailed("pod interface %s: %v", ifName, err)
	}
	if mac != "" && link.Attrs().HardwareAddr.String() != mac {
		return checkFailed("pod interface %s has MAC %s, prevResult says %s", ifName, link.Attrs().HardwareAddr, mac)
	}
	addrs, err := netlinksafe.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return checkFailed("addresses of %s: %v", ifName, err)
	}
	found := false
	for _, a := range addrs {
		if a.IP.Equal(addr) {
			found = true
			break
		}
	}
	if !found {
		return checkFailed("pod interface %s does not have address %s", ifName, addr)
	}
	routes, err := netlinksafe.RouteList(link, netlink.FAMILY_V4)
	if err != nil {
		return checkFailed("routes of %s: %v", ifName, err)
	}
	for _, r := range routes {
		if isDefault(r.Dst) && r.Gw.Equal(gw) {
			return nil
		}
	}
	return checkFailed("pod has no default route via %s on %s", gw, ifName)
}

func isDefault(dst *net.IPNet) bool {
	if dst == nil {
		return true
	}
	ones, _ := dst.Mask.Size()
	return ones == 0 && dst.IP.IsUnspecified()
}
