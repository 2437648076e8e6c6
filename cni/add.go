package cni

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/ipam"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
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

// add follows the ptp plugin's order: IPAM, container-side veth setup,
// host-side setup, then (Sluice's own steps) attaching the pod programs and
// registering the endpoint with the agent. Like the bridge plugin, success
// stays false until the result is ready, and the deferred cleanup undoes
// the wiring and releases the IPAM allocation on any failure.
func (c *command) add(args *skel.CmdArgs) (types.Result, error) {
	if err := validateArgs(args, true); err != nil {
		return nil, err
	}
	k8s, err := parseK8sArgs(args.Args)
	if err != nil {
		return nil, err
	}
	portMappings, err := c.conf.portMappings()
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
	hostIf, contIf, err := setupContainerVeth(netns, args.IfName, w, addr, mtu, log)
	if err != nil {
		return nil, internal(err)
	}
	if err := setupHostVeth(w.hostName, addr, &hostIf); err != nil {
		return nil, internal(err)
	}
	if err := c.attachPod(w, hostIf.Index); err != nil {
		return nil, err
	}
	log.Debug("pod programs attached")

	ep := api.Endpoint{
		ContainerID:  args.ContainerID,
		IfName:       args.IfName,
		NetNS:        args.Netns,
		NetNSInode:   netnsInode(args.Netns),
		PodNamespace: string(k8s.K8S_POD_NAMESPACE),
		PodName:      string(k8s.K8S_POD_NAME),
		IPv4:         addr.IP.String(),
		MAC:          contIf.HardwareAddr.String(),
		HostIfName:   w.hostName,
		HostIfIndex:  hostIf.Index,
		HostMAC:      hostIf.HardwareAddr.String(),
		PortMappings: portMappings,
	}
	id, err := c.registerEndpoint(ctx, w, ep)
	if err != nil {
		return nil, err
	}
	log.WithField("endpointID", id).Info("pod wired")

	out, err := c.result(args, w, hostIf, contIf, addr, ipamResult.DNS)
	if err != nil {
		return nil, err
	}
	success = true
	return out, nil
}

// setupContainerVeth creates the veth pair from inside the pod's netns (the
// host end is moved to the node's) and configures the pod's end. A host
// veth of the same name can only be left over from an earlier ADD of the
// same attachment that was never deleted: it is replaced.
func setupContainerVeth(netns ns.NetNS, ifName string, w *wiring, addr podAddr, mtu int, log logrus.FieldLogger) (hostIf, contIf net.Interface, err error) {
	if l, err := netlinksafe.LinkByName(w.hostName); err == nil {
		log.Warn("deleting stale host veth of the same attachment")
		if err := netlink.LinkDel(l); err != nil {
			return hostIf, contIf, fmt.Errorf("delete stale host veth %s: %w", w.hostName, err)
		}
	}
	err = netns.Do(func(hostNS ns.NetNS) error {
		var err error
		hostIf, contIf, err = ip.SetupVethWithName(ifName, w.hostName, mtu, "", hostNS)
		if err != nil {
			return fmt.Errorf("create veth pair %s/%s: %w", ifName, w.hostName, err)
		}
		w.veth = true
		return configurePodIf(ifName, addr)
	})
	return hostIf, contIf, err
}

// setupHostVeth configures the host end in the node's netns and, since it
// moved namespaces, takes its index and MAC from here.
func setupHostVeth(hostName string, addr podAddr, hostIf *net.Interface) error {
	if err := configureHostIf(hostName, addr); err != nil {
		return err
	}
	hostLink, err := netlinksafe.LinkByName(hostName)
	if err != nil {
		return fmt.Errorf("look up host veth %s: %w", hostName, err)
	}
	hostIf.Index = hostLink.Attrs().Index
	hostIf.HardwareAddr = hostLink.Attrs().HardwareAddr
	return nil
}

// attachPod attaches the agent's pinned pod programs to the host veth; a
// datapath not pinned yet is "try again later".
func (c *command) attachPod(w *wiring, hostIndex int) error {
	w.attached = true
	if err := attach.Pod(c.conf.BPFRoot, w.hostName, hostIndex); err != nil {
		code := types.ErrInternal
		if errors.Is(err, attach.ErrNotPinned) {
			code = types.ErrTryAgainLater
		}
		return types.NewError(code, fmt.Sprintf("sluice-cni: attach pod programs to %s: %v", w.hostName, err), "")
	}
	return nil
}

// registerEndpoint hands the endpoint to the agent and returns its ID.
func (c *command) registerEndpoint(ctx context.Context, w *wiring, ep api.Endpoint) (uint16, error) {
	w.put = true
	actx, cancel := context.WithTimeout(ctx, agentTimeout)
	defer cancel()
	got, err := c.client().PutEndpoint(actx, ep)
	if err != nil {
		return 0, c.agentError(fmt.Sprintf("register endpoint %s", ep.Key()), err)
	}
	return got.ID, nil
}

// result builds the CNI result in the config's cniVersion; the config's DNS
// wins over IPAM's.
func (c *command) result(args *skel.CmdArgs, w *wiring, hostIf, contIf net.Interface, addr podAddr, ipamDNS types.DNS) (types.Result, error) {
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
		DNS:    ipamDNS,
	}
	if dnsSet(c.conf.DNS) {
		result.DNS = c.conf.DNS
	}
	out, err := result.GetAsVersion(c.conf.CNIVersion)
	if err != nil {
		return nil, types.NewError(types.ErrIncompatibleCNIVersion, fmt.Sprintf("sluice-cni: convert result to version %q: %v", c.conf.CNIVersion, err), "")
	}
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
