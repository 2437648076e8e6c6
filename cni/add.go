package cni

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/ipam"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/attach"
)

// CmdAdd is the ADD command: it wires the pod and prints the result.
func CmdAdd(args *skel.CmdArgs) error {
	res, err := Add(args)
	if err != nil {
		return err
	}
	return res.Print()
}

// wiring records what ADD has created so far, for the cleanup of a failed ADD.
type wiring struct {
	hostName string
	veth     bool // the veth pair exists
	attached bool // links may be pinned
	put      bool // the agent may know the endpoint
}

// podAddr is the pod's IPv4 address and its gateway.
type podAddr struct {
	IP      net.IP // 4-byte form
	Gateway net.IP // 4-byte form
}

// Add wires the pod of args and returns the result in the config's
// cniVersion, without printing it. On error everything it created is undone.
func Add(args *skel.CmdArgs) (types.Result, error) {
	c, err := newCommand("ADD", args)
	if err != nil {
		return nil, err
	}
	defer c.done()
	res, err := c.add(args)
	if err != nil {
		c.log.WithError(err).Error("ADD failed")
		return nil, err
	}
	return res, nil
}

func (c *command) add(args *skel.CmdArgs) (types.Result, error) {
	if err := validateArgs(args, true); err != nil {
		return nil, err
	}
	k8s, err := parseK8sArgs(args.Args)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()

	// Fail closed, before any allocation: no pod without the datapath.
	if err := c.checkDatapath(ctx, types.ErrTryAgainLater); err != nil {
		return nil, err
	}

	mtu, mtuFrom := c.podMTU(ctx)

	netns, err := ns.GetNS(args.Netns)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("sluice-cni: open netns %q: %v", args.Netns, err), "")
	}
	defer netns.Close()

	r, err := ipam.ExecAdd(c.conf.IPAM.Type, args.StdinData)
	if err != nil {
		return nil, ipamError(c.conf.IPAM.Type, "allocate an address", err)
	}
	success := false
	w := &wiring{hostName: HostVethName(args.ContainerID, args.IfName)}
	defer func() {
		if success {
			return
		}
		c.undo(args, w)
		if err := ipam.ExecDel(c.conf.IPAM.Type, args.StdinData); err != nil {
			c.log.WithError(err).Error("release IPAM allocation after failed ADD")
		}
	}()

	ipamResult, err := current.NewResultFromResult(r)
	if err != nil {
		return nil, internal(fmt.Errorf("convert IPAM result: %w", err))
	}
	addr, err := podAddress(ipamResult)
	if err != nil {
		return nil, err
	}
	log := c.log.WithFields(logrus.Fields{"ipv4": addr.IP.String(), "hostIfName": w.hostName, "mtu": mtu, "mtuFrom": mtuFrom})
	log.Debug("IPAM allocated")

	if err := ip.EnableIP4Forward(); err != nil {
		return nil, internal(fmt.Errorf("enable IPv4 forwarding: %w", err))
	}

	// A host veth with this name can only be left over from an earlier ADD
	// of the same attachment that was never deleted: replace it.
	if l, err := netlinksafe.LinkByName(w.hostName); err == nil {
		log.Warn("deleting stale host veth of the same attachment")
		if err := netlink.LinkDel(l); err != nil {
			return nil, internal(fmt.Errorf("delete stale host veth %s: %w", w.hostName, err))
		}
	}

	var hostIf, contIf net.Interface
	err = netns.Do(func(hostNS ns.NetNS) error {
		var err error
		hostIf, contIf, err = ip.SetupVethWithName(args.IfName, w.hostName, mtu, "", hostNS)
		if err != nil {
			return fmt.Errorf("create veth pair %s/%s: %w", args.IfName, w.hostName, err)
		}
		w.veth = true
		return configurePodIf(args.IfName, addr)
	})
	if err != nil {
		return nil, internal(err)
	}
	if err := configureHostIf(w.hostName, addr); err != nil {
		return nil, internal(err)
	}
	// The host veth moved namespaces: take its index and MAC from here.
	hostLink, err := netlinksafe.LinkByName(w.hostName)
	if err != nil {
		return nil, internal(fmt.Errorf("look up host veth %s: %w", w.hostName, err))
	}
	hostIf.Index = hostLink.Attrs().Index
	hostIf.HardwareAddr = hostLink.Attrs().HardwareAddr

	w.attached = true
	if err := attach.Pod(c.conf.BPFRoot, w.hostName, hostIf.Index); err != nil {
		code := types.ErrInternal
		if errors.Is(err, attach.ErrNotPinned) {
			code = types.ErrTryAgainLater
		}
		return nil, types.NewError(code, fmt.Sprintf("sluice-cni: attach pod programs to %s: %v", w.hostName, err), "")
	}
	log.Debug("pod programs attached")

	ep := api.Endpoint{
		ContainerID:  args.ContainerID,
		IfName:       args.IfName,
		NetNS:        args.Netns,
		PodNamespace: string(k8s.K8S_POD_NAMESPACE),
		PodName:      string(k8s.K8S_POD_NAME),
		IPv4:         addr.IP.String(),
		MAC:          contIf.HardwareAddr.String(),
		HostIfName:   w.hostName,
		HostIfIndex:  hostIf.Index,
		HostMAC:      hostIf.HardwareAddr.String(),
	}
	w.put = true
	actx, cancel := context.WithTimeout(ctx, agentTimeout)
	got, err := c.client().PutEndpoint(actx, ep)
	cancel()
	if err != nil {
		return nil, c.agentError(fmt.Sprintf("register endpoint %s", ep.Key()), err)
	}
	log.WithField("endpointID", got.ID).Info("pod wired")

	result := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: w.hostName, Mac: hostIf.HardwareAddr.String()},
			{Name: args.IfName, Mac: contIf.HardwareAddr.String(), Sandbox: args.Netns},
		},
		IPs: []*current.IPConfig{{
			Interface: current.Int(1),
			Address:   net.IPNet{IP: addr.IP, Mask: net.CIDRMask(32, 32)},
			Gateway:   addr.Gateway,
		}},
		Routes: []*types.Route{{Dst: defaultRoute(), GW: addr.Gateway}},
		DNS:    ipamResult.DNS,
	}
	if dnsSet(c.conf.DNS) {
		result.DNS = c.conf.DNS
	}
	out, err := result.GetAsVersion(c.conf.CNIVersion)
	if err != nil {
		return nil, types.NewError(types.ErrIncompatibleCNIVersion, fmt.Sprintf("sluice-cni: convert result to version %q: %v", c.conf.CNIVersion, err), "")
	}
	success = true
	return out, nil
}

// undo removes what a failed ADD created, newest first. IPAM is released by
// the caller.
func (c *command) undo(args *skel.CmdArgs, w *wiring) {
	log := c.log.WithField("hostIfName", w.hostName)
	if w.put {
		ctx, cancel := context.WithTimeout(context.Background(), agentTimeout)
		err := c.client().DeleteEndpoint(ctx, args.ContainerID, args.IfName)
		cancel()
		if err != nil && !errors.Is(err, api.ErrNotFound) {
			log.WithError(err).Warn("delete endpoint after failed ADD")
		}
	}
	if w.attached {
		if err := attach.Detach(c.conf.BPFRoot, w.hostName); err != nil {
			log.WithError(err).Error("detach after failed ADD")
		}
	}
	if w.veth {
		if err := deleteLink(w.hostName); err != nil {
			log.WithError(err).Error("delete host veth after failed ADD")
		}
		// The pair is gone with either end; this is for a host end that
		// never made it out of the pod's netns.
		err := ns.WithNetNSPath(args.Netns, func(ns.NetNS) error {
			return deleteLink(args.IfName)
		})
		if err != nil {
			log.WithError(err).Error("delete pod interface after failed ADD")
		}
	}
}

// podAddress picks the pod's IPv4 address and gateway from the IPAM result.
// The datapath is IPv4-only, so an IPv6 address is a configuration error.
func podAddress(res *current.Result) (podAddr, error) {
	var a podAddr
	for _, ipc := range res.IPs {
		v4 := ipc.Address.IP.To4()
		if v4 == nil {
			return a, invalidConf("the datapath is IPv4-only but IPAM returned %s; configure an IPv4 range only", ipc.Address.String())
		}
		if a.IP != nil {
			continue
		}
		a.IP = v4
		if gw := ipc.Gateway.To4(); gw != nil {
			a.Gateway = gw
		} else {
			// host-local's default: the first address of the subnet.
			a.Gateway = ip.NextIP(v4.Mask(ipc.Address.Mask)).To4()
		}
	}
	if a.IP == nil {
		return a, types.NewError(types.ErrInternal, "sluice-cni: IPAM returned no IPv4 address", "")
	}
	if a.IP.Equal(a.Gateway) {
		return a, invalidConf("IPAM gave the pod its gateway address %s", a.IP)
	}
	return a, nil
}

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

func defaultRoute() net.IPNet { return net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)} }

func defaultRoutePtr() *net.IPNet { r := defaultRoute(); return &r }

func dnsSet(d types.DNS) bool {
	return d.Nameservers != nil || d.Search != nil || d.Options != nil || d.Domain != ""
}

// ipamError keeps an IPAM plugin's CNI error code and says what failed.
func ipamError(plugin, what string, err error) error {
	var te *types.Error
	if errors.As(err, &te) {
		return types.NewError(te.Code, fmt.Sprintf("sluice-cni: IPAM plugin %q could not %s: %s", plugin, what, te.Msg), te.Details)
	}
	return types.NewError(types.ErrInternal, fmt.Sprintf("sluice-cni: IPAM plugin %q could not %s: %v", plugin, what, err), "")
}
