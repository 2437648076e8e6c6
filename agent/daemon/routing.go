package daemon

import (
	"fmt"
	"slices"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/sirupsen/logrus"

	"github.com/sluicenet/sluice/agent/nodemgr"
	"github.com/sluicenet/sluice/agent/source"
)

// setupRouting constructs the node manager (cross-node pod routes) for
// --routing; its loop starts in Run.
func (d *Daemon) setupRouting() error {
	m, err := nodemgr.New(nodemgr.Config{
		Mode:           nodemgr.Mode(d.cfg.Routing),
		NodeName:       d.cfg.NodeName,
		NodeIP:         d.cfg.NodeIP,
		VXLANMTU:       d.mtu.VXLAN,
		ResyncInterval: d.cfg.ResyncInterval,
		SetTunnel:      d.setTunnel,
	}, d.log.WithField("subsys", "nodes"))
	if err != nil {
		return fmt.Errorf("routing: %w", err)
	}
	d.nodes = m
	d.log.WithFields(logrus.Fields{"routing": d.cfg.Routing, "nodeIP": d.cfg.NodeIP}).Info("Cross-node routing configured")
	return nil
}

// setTunnel records the tunnel device (ifindex 0: none) for the host
// programs, which send NodePort flows to other nodes' pods through it, and
// attaches them to it: pods' traffic to the nodes' own addresses is
// tunnelled (nodemgr.NodeTable), so a remote backend's reply to this node's
// SNAT address arrives there, as the replies and NodePort requests of
// native routing arrive on the underlay device.
func (d *Daemon) setTunnel(ifindex int) error {
	if err := d.dp.SetTunnelDevice(ifindex); err != nil {
		return err
	}
	if ifindex == 0 {
		return d.dp.Devices().Detach(nodemgr.VXLANDevice)
	}
	if err := d.dp.Devices().Attach(nodemgr.VXLANDevice); err != nil {
		return fmt.Errorf("attach host programs to %s: %w", nodemgr.VXLANDevice, err)
	}
	return nil
}

// hostDevices are the devices the host programs run on: the configured
// ones and, in VXLAN mode, the tunnel device once it exists (setTunnel).
// The recorded tunnel is pinned and may name a device that is gone (a
// restart after a mode change): it counts only while the device of that
// name has that index, else attaching would fail the start.
func (d *Daemon) hostDevices() []string {
	devs := d.cfg.Devices
	idx, err := d.dp.TunnelDevice()
	if err != nil || idx == 0 {
		return devs
	}
	if l, err := netlinksafe.LinkByName(nodemgr.VXLANDevice); err == nil && l.Attrs().Index == idx {
		devs = append(slices.Clone(devs), nodemgr.VXLANDevice)
	}
	return devs
}

// setNodes hands a snapshot's Node objects to the node manager.
func (d *Daemon) setNodes(s source.Snapshot) {
	d.nodes.SetNodes(nodemgr.FromObjects(s.Nodes))
}

// Nodes returns the node manager.
func (d *Daemon) Nodes() *nodemgr.Manager { return d.nodes }
