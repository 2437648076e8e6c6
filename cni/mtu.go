package cni

import (
	"context"
	"fmt"
)

// podMTU is the MTU of the pod's veth pair: the network config's "mtu" when
// set (authoritative), else the agent's pod MTU (GET /v1/config: it fits
// the tunnel in VXLAN mode), else DefaultMTU (an agent that does not answer
// it, such as one that predates the route).
func (c *command) podMTU(ctx context.Context) (mtu int, source string) {
	if c.conf.MTU != 0 {
		return c.conf.MTU, "network config"
	}
	ctx, cancel := context.WithTimeout(ctx, agentTimeout)
	defer cancel()
	cfg, err := c.client().Config(ctx)
	if err == nil && (cfg.PodMTU < minMTU || cfg.PodMTU > maxMTU) {
		err = fmt.Errorf("pod MTU %d is out of range (%d-%d)", cfg.PodMTU, minMTU, maxMTU)
	}
	if err != nil {
		c.log.WithError(err).Warnf("sluice-agent gave no pod MTU, using %d", DefaultMTU)
		return DefaultMTU, "default"
	}
	return cfg.PodMTU, "agent"
}
