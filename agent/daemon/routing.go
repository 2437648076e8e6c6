package daemon

import (
	"fmt"

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
		SetTunnel:      d.dp.SetTunnelDevice,
	}, d.log.WithField("subsys", "nodes"))
	if err != nil {
		return fmt.Errorf("routing: %w", err)
	}
	d.nodes = m
	d.log.WithFields(logrus.Fields{"routing": d.cfg.Routing, "nodeIP": d.cfg.NodeIP}).Info("Cross-node routing configured")
	return nil
}

// setNodes hands a snapshot's Node objects to the node manager.
func (d *Daemon) setNodes(s source.Snapshot) {
	d.nodes.SetNodes(nodemgr.FromObjects(s.Nodes))
}

// Nodes returns the node manager.
func (d *Daemon) Nodes() *nodemgr.Manager { return d.nodes }
