package cni

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/sirupsen/logrus"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/pin"
)

// PluginName is the plugin's type in a conflist.
const PluginName = "sluice-cni"

// agentTimeout bounds every call to the agent's local API.
const agentTimeout = 20 * time.Second

// VersionInfo is the CNI spec versions the plugin speaks.
var VersionInfo = version.PluginSupports("0.4.0", "1.0.0", "1.1.0")

// Funcs returns the plugin's commands for skel.PluginMainFuncs.
func Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: CmdAdd, Del: CmdDel, Check: CmdCheck, Status: CmdStatus, GC: CmdGC}
}

// Main runs the plugin. The caller must have locked its OS thread in init.
func Main(about string) {
	skel.PluginMainFuncs(Funcs(), VersionInfo, about)
}

// command is what every CNI command starts with: the parsed config and a logger.
type command struct {
	conf *NetConf
	log  logrus.FieldLogger
	done func()
}

func newCommand(name string, args *skel.CmdArgs) (*command, error) {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return nil, err
	}
	log, done := newLogger(conf.LogFile)
	return &command{
		conf: conf,
		log: log.WithFields(logrus.Fields{
			"cmd":         name,
			"containerID": args.ContainerID,
			"ifName":      args.IfName,
			"netns":       args.Netns,
		}),
		done: done,
	}, nil
}

// newLogger logs to file at debug level, or warnings to stderr without one.
// Never to stdout: it carries the CNI result.
func newLogger(file string) (*logrus.Logger, func()) {
	l := logrus.New()
	l.SetFormatter(&logrus.TextFormatter{DisableColors: true, FullTimestamp: true})
	if file == "" {
		l.SetOutput(os.Stderr)
		l.SetLevel(logrus.WarnLevel)
		return l, func() {}
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		l.SetOutput(io.Discard)
		return l, func() {}
	}
	l.SetOutput(f)
	l.SetLevel(logrus.DebugLevel)
	return l, func() { f.Close() }
}

func (c *command) client() *api.Client { return api.NewClient(c.conf.SocketPath()) }

// checkPinned fails unless every pod program is pinned under bpfRoot.
func checkPinned(root string) error {
	for _, h := range pin.PodHooks {
		p := pin.ProgPath(root, h.Prog)
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("sluice pod programs are not pinned under %s (is sluice-agent running?): %w", root, err)
		}
	}
	return nil
}

// checkAgent fails unless the agent answers Healthz with status ok.
func (c *command) checkAgent(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, agentTimeout)
	defer cancel()
	h, err := c.client().Healthz(ctx)
	if errors.Is(err, api.ErrUnreachable) {
		return fmt.Errorf("sluice-agent is not reachable at %s: %s", c.conf.SocketPath(), c.cause(err))
	}
	if err != nil {
		return fmt.Errorf("sluice-agent at %s is not healthy: %w", c.conf.SocketPath(), err)
	}
	if h.Status != "ok" {
		return fmt.Errorf("sluice-agent at %s is not ready (status %q)", c.conf.SocketPath(), h.Status)
	}
	return nil
}

// checkDatapath is ADD's and STATUS's fail-closed precondition.
func (c *command) checkDatapath(ctx context.Context, code uint) error {
	if err := checkPinned(c.conf.BPFRoot); err != nil {
		return types.NewError(code, err.Error(), "")
	}
	if err := c.checkAgent(ctx); err != nil {
		return types.NewError(code, err.Error(), "")
	}
	return nil
}

// agentError turns an agent API error into a CNI error.
func (c *command) agentError(what string, err error) error {
	if errors.Is(err, api.ErrUnreachable) {
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("sluice-agent is not reachable at %s: %s: %s", c.conf.SocketPath(), what, c.cause(err)), "")
	}
	return types.NewError(types.ErrInternal, fmt.Sprintf("sluice-agent: %s: %v", what, err), "")
}

// cause strips the client's "sluice-agent unreachable at <socket>: " prefix.
func (c *command) cause(err error) string {
	return strings.TrimPrefix(err.Error(), fmt.Sprintf("%v at %s: ", api.ErrUnreachable, c.conf.SocketPath()))
}

// internal wraps an error that is not already a CNI error.
func internal(err error) error {
	var te *types.Error
	if errors.As(err, &te) {
		return err
	}
	return types.NewError(types.ErrInternal, "sluice-cni: "+err.Error(), "")
}
