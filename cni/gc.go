package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/attach"
	"github.com/sluicenet/sluice/datapath/pin"
)

// hostLocalDataDir is host-local's default data directory.
const hostLocalDataDir = "/var/lib/cni/networks"

// Attachment names one pod interface the way CNI does.
type Attachment struct {
	ContainerID string
	IfName      string
}

// ValidAttachments is the set of attachments a GC call must keep.
type ValidAttachments map[Attachment]bool

// ParseValidAttachments reads "cni.dev/valid-attachments" from a GC config.
// A missing key means no attachment is valid; a malformed one is an error.
func ParseValidAttachments(data []byte) (ValidAttachments, error) {
	var raw struct {
		Valid *[]types.GCAttachment `json:"cni.dev/valid-attachments"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, `sluice-cni: cannot decode "cni.dev/valid-attachments"`, err.Error())
	}
	valid := ValidAttachments{}
	if raw.Valid == nil {
		return valid, nil
	}
	for i, a := range *raw.Valid {
		if a.ContainerID == "" || a.IfName == "" {
			return nil, invalidConf(`"cni.dev/valid-attachments"[%d] needs both "containerID" and "ifname"`, i)
		}
		valid[Attachment{a.ContainerID, a.IfName}] = true
	}
	return valid, nil
}

// HostVethNames returns the host veth names of the valid attachments.
func (v ValidAttachments) HostVethNames() map[string]bool {
	names := make(map[string]bool, len(v))
	for a := range v {
		names[HostVethName(a.ContainerID, a.IfName)] = true
	}
	return names
}

// hasContainer reports whether any valid attachment belongs to containerID.
func (v ValidAttachments) hasContainer(containerID string) bool {
	for a := range v {
		if a.ContainerID == containerID {
			return true
		}
	}
	return false
}

// CmdGC is the GC command (CNI 1.1): it removes agent endpoints, pinned links,
// host veths and host-local allocations of attachments that are not in
// "cni.dev/valid-attachments". It does what it can and reports the rest.
func CmdGC(args *skel.CmdArgs) error {
	c, err := newCommand("GC", args)
	if err != nil {
		return err
	}
	defer c.done()
	valid, err := ParseValidAttachments(args.StdinData)
	if err != nil {
		return err
	}
	ic, err := c.conf.ipam(args.StdinData)
	if err != nil {
		return err
	}
	var errs []error
	if err := c.gcEndpoints(valid); err != nil {
		errs = append(errs, err)
	}
	if err := c.gcLinks(valid); err != nil {
		errs = append(errs, err)
	}
	if err := c.gcIPAM(args, ic, valid); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		c.log.WithError(err).Error("GC incomplete")
		var te *types.Error
		if len(errs) == 1 && errors.As(errs[0], &te) {
			return te
		}
		return types.NewError(types.ErrInternal, "sluice-cni GC: "+err.Error(), "")
	}
	return nil
}

// gcEndpoints deletes the agent's endpoints that are not valid, with their
// links and host veths.
func (c *command) gcEndpoints(valid ValidAttachments) error {
	ctx, cancel := context.WithTimeout(context.Background(), agentTimeout)
	defer cancel()
	eps, err := c.client().ListEndpoints(ctx)
	if err != nil {
		return c.agentError("list endpoints", err)
	}
	var errs []error
	for _, ep := range eps {
		if valid[Attachment{ep.ContainerID, ep.IfName}] {
			continue
		}
		log := c.log.WithField("endpoint", ep.Key())
		if err := c.client().DeleteEndpoint(ctx, ep.ContainerID, ep.IfName); err != nil && !errors.Is(err, api.ErrNotFound) {
			errs = append(errs, fmt.Errorf("delete endpoint %s: %w", ep.Key(), err))
			continue
		}
		hostName := ep.HostIfName
		if hostName == "" {
			hostName = HostVethName(ep.ContainerID, ep.IfName)
		}
		if err := attach.Detach(c.conf.BPFRoot, hostName); err != nil {
			errs = append(errs, err)
		}
		if err := deleteLink(hostName); err != nil {
			errs = append(errs, fmt.Errorf("delete host veth %s: %w", hostName, err))
		}
		log.Info("GC: endpoint removed")
	}
	return errors.Join(errs...)
}

// gcLinks unpins the links of host veths that no valid attachment derives,
// and deletes such veths if they still exist.
func (c *command) gcLinks(valid ValidAttachments) error {
	keep := valid.HostVethNames()
	dirs, err := os.ReadDir(pin.LinksDir(c.conf.BPFRoot))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read pinned links: %w", err)
	}
	var errs []error
	for _, d := range dirs {
		name := d.Name()
		if keep[name] || !strings.HasPrefix(name, HostVethPrefix) {
			continue
		}
		if err := attach.Detach(c.conf.BPFRoot, name); err != nil {
			errs = append(errs, err)
		}
		if err := deleteLink(name); err != nil {
			errs = append(errs, fmt.Errorf("delete host veth %s: %w", name, err))
		}
		c.log.WithField("hostIfName", name).Info("GC: links unpinned")
	}
	return errors.Join(errs...)
}

// HostLocalAllocation is one address file of host-local's disk store.
type HostLocalAllocation struct {
	IP          string
	ContainerID string
	IfName      string // "" in files written before host-local recorded it
}

// ReadHostLocalAllocations lists the allocations host-local keeps for network
// under dataDir ("" = host-local's default): files named after the address
// whose content is "<containerID>\r\n<ifname>" (or only the container ID).
func ReadHostLocalAllocations(dataDir, network string) ([]HostLocalAllocation, error) {
	if dataDir == "" {
		dataDir = hostLocalDataDir
	}
	dir := filepath.Join(dataDir, network)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read host-local data dir: %w", err)
	}
	var out []HostLocalAllocation
	for _, e := range entries {
		if e.IsDir() || net.ParseIP(e.Name()) == nil {
			continue // lock, last_reserved_ip.*
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("read host-local allocation: %w", err)
		}
		id, ifName, _ := strings.Cut(string(data), "\r\n")
		out = append(out, HostLocalAllocation{
			IP:          e.Name(),
			ContainerID: strings.TrimSpace(id),
			IfName:      strings.TrimSpace(ifName),
		})
	}
	return out, nil
}

// gcIPAM releases host-local allocations of attachments that are not valid
// by calling the IPAM plugin's DEL for them. Other IPAM plugins get GC.
func (c *command) gcIPAM(args *skel.CmdArgs, ic ipamConf, valid ValidAttachments) error {
	ctx, cancel := context.WithTimeout(context.Background(), agentTimeout)
	defer cancel()
	if ic.Type != "host-local" {
		if err := invoke.DelegateGC(ctx, ic.Type, args.StdinData, nil); err != nil {
			return ipamError(ic.Type, "garbage-collect", err)
		}
		return nil
	}
	allocs, err := ReadHostLocalAllocations(ic.DataDir, c.conf.Name)
	if err != nil {
		return err
	}
	var pluginPath string
	var errs []error
	for _, a := range allocs {
		if a.ContainerID == "" {
			continue
		}
		if a.IfName != "" && valid[Attachment{a.ContainerID, a.IfName}] {
			continue
		}
		if a.IfName == "" && valid.hasContainer(a.ContainerID) {
			continue
		}
		if pluginPath == "" {
			pluginPath, err = invoke.FindInPath(ic.Type, filepath.SplitList(args.Path))
			if err != nil {
				return ipamError(ic.Type, "be found in CNI_PATH", err)
			}
		}
		ifName := a.IfName
		if ifName == "" {
			ifName = "eth0" // host-local then matches the container ID alone
		}
		err := invoke.ExecPluginWithoutResult(ctx, pluginPath, args.StdinData, &invoke.Args{
			Command:     "DEL",
			ContainerID: a.ContainerID,
			NetNS:       "",
			IfName:      ifName,
			Path:        args.Path,
		}, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("release %s of %s/%s: %w", a.IP, a.ContainerID, ifName, err))
			continue
		}
		c.log.WithFields(map[string]any{"ip": a.IP, "owner": a.ContainerID + "/" + ifName}).Info("GC: address released")
	}
	return errors.Join(errs...)
}
