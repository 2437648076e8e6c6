package cni

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/plugins/pkg/ipam"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/deletequeue"
	"github.com/sluicenet/sluice/datapath/attach"
)

// CmdDel is the DEL command. It is idempotent: a missing netns, interface,
// allocation or endpoint is success, and when the agent is not reachable the
// endpoint deletion is queued for it and DEL succeeds.
func CmdDel(args *skel.CmdArgs) error {
	c, err := newCommand("DEL", args)
	if err != nil {
		return err
	}
	defer c.done()
	if err := c.del(args); err != nil {
		c.log.WithError(err).Error("DEL failed")
		return err
	}
	return nil
}

func (c *command) del(args *skel.CmdArgs) error {
	if err := validateArgs(args, false); err != nil {
		return err
	}
	if err := ipam.ExecDel(c.conf.IPAM.Type, args.StdinData); err != nil {
		return ipamError(c.conf.IPAM.Type, "release the address", err)
	}

	if args.Netns != "" {
		err := ns.WithNetNSPath(args.Netns, func(ns.NetNS) error {
			return deleteLink(args.IfName)
		})
		if err != nil && !netnsGone(err) {
			return internal(fmt.Errorf("delete %s in netns %s: %w", args.IfName, args.Netns, err))
		}
	}

	hostName := HostVethName(args.ContainerID, args.IfName)
	if err := deleteLink(hostName); err != nil {
		return internal(fmt.Errorf("delete host veth %s: %w", hostName, err))
	}
	if err := attach.Detach(c.conf.BPFRoot, hostName); err != nil {
		return internal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), agentTimeout)
	defer cancel()
	err := c.client().DeleteEndpoint(ctx, args.ContainerID, args.IfName)
	switch {
	case err == nil, errors.Is(err, api.ErrNotFound):
		c.log.Info("pod unwired")
		return nil
	case errors.Is(err, api.ErrUnreachable):
		qerr := deletequeue.Enqueue(c.conf.DeleteQueueDir(), deletequeue.Entry{ContainerID: args.ContainerID, IfName: args.IfName})
		if qerr != nil {
			return internal(fmt.Errorf("sluice-agent is not reachable at %s (%s) and queuing the endpoint deletion failed: %w",
				c.conf.SocketPath(), c.cause(err), qerr))
		}
		c.log.WithError(err).WithField("queueDir", c.conf.DeleteQueueDir()).Warn("agent unreachable: endpoint deletion queued")
		return nil
	default:
		return c.agentError(fmt.Sprintf("delete endpoint %s/%s", args.ContainerID, args.IfName), err)
	}
}

// netnsGone reports whether err says the netns path no longer is a netns.
func netnsGone(err error) bool {
	var notExist ns.NSPathNotExistErr
	var notNS ns.NSPathNotNSErr
	return errors.As(err, &notExist) || errors.As(err, &notNS)
}
