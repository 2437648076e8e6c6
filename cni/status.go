package cni

import (
	"context"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// CmdStatus is the STATUS command (CNI 1.1): the plugin is ready when the pod
// programs are pinned and the agent answers, else ErrPluginNotAvailable.
func CmdStatus(args *skel.CmdArgs) error {
	c, err := newCommand("STATUS", args)
	if err != nil {
		return err
	}
	defer c.done()
	if err := c.checkDatapath(context.Background(), types.ErrPluginNotAvailable); err != nil {
		c.log.WithError(err).Warn("not ready")
		return err
	}
	return nil
}
