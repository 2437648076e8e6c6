// Package pin is the layout of Sluice's bpffs root, shared by the agent (which
// loads and pins) and the CNI plugin (which attaches what is pinned):
//
//	<root>/maps/<map name>             maps, pinned by name
//	<root>/progs/<program name>        programs the CNI plugin attaches
//	<root>/links/<host ifname>/<hook>  TCX links of one pod interface
//	<root>/links/cgroup/<hook>         socket-LB cgroup links (connect4, ...)
//	<root>/links/devices/<ifname>/<hook> host device links (NodePort; xdp-<mode>: XDP)
//	<root>/links/tracing/<hook>        process sensor tracepoint links (procsensor)
//
// It also holds the map renames a loader applies to an earlier agent's pins
// (MapRenames, RenameMaps).
package pin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// DefaultRoot is where a production agent pins its objects.
const DefaultRoot = "/sys/fs/bpf/sluice"

// Program names as pinned under progs/; they equal the C function names.
const (
	ProgFromContainer = "from_container"
	ProgToContainer   = "to_container"
)

// Socket-LB program names as pinned under progs/ (the C function names).
const (
	ProgSockConnect4     = "sock_connect4"
	ProgSockSendmsg4     = "sock_sendmsg4"
	ProgSockRecvmsg4     = "sock_recvmsg4"
	ProgSockGetpeername4 = "sock_getpeername4"
)

// Host device program names as pinned under progs/ (the C function names).
const (
	ProgFromNetdev = "from_netdev"
	ProgToNetdev   = "to_netdev"
)

// ProgXDPNodePort is the XDP program of the external devices
// (--lb-acceleration), pinned under progs/ by its C function name. Its link
// is pinned as links/devices/<ifname>/<XDPHook(mode)>.
const ProgXDPNodePort = "xdp_nodeport"

// XDPHook returns the name the XDP link of a device is pinned under for
// mode ("native" or "generic"): the name says the mode, which a link's
// info does not.
func XDPHook(mode string) string { return "xdp-" + mode }

// Hook is a link pinned under the name Hook, running the program pinned as
// Prog.
type Hook struct{ Hook, Prog string }

// DevicesLinksName is the directory under links/ holding one directory of
// links per external device the host programs are attached to.
const DevicesLinksName = "devices"

// DeviceHooks are the hooks of an external device, pinned as
// links/devices/<ifname>/<Hook>, with the program each one runs.
var DeviceHooks = []Hook{
	{"ingress", ProgFromNetdev},
	{"egress", ProgToNetdev},
}

// DevicesDir returns the directory of the host device links.
func DevicesDir(root string) string { return LinkDir(root, DevicesLinksName) }

// DeviceLinkDir returns the directory of the links of device ifname.
func DeviceLinkDir(root, ifname string) string { return filepath.Join(DevicesDir(root), ifname) }

// DeviceLinkPath returns where the link of hook on device ifname is pinned.
func DeviceLinkPath(root, ifname, hook string) string {
	return filepath.Join(DeviceLinkDir(root, ifname), hook)
}

// TracingLinksName is the directory under links/ holding the process
// sensor's tracepoint links (procsensor), which keep tracing policies
// enforced while the agent restarts. Like CgroupLinksName it cannot clash
// with a host veth name.
const TracingLinksName = "tracing"

// TracingLinkPath returns where the process sensor link name is pinned.
func TracingLinkPath(root, name string) string { return LinkPath(root, TracingLinksName, name) }

// CgroupLinksName is the directory under links/ holding the socket-LB links.
// It cannot clash with a host veth name (those carry the CNI's prefix).
const CgroupLinksName = "cgroup"

// CgroupHooks are the socket-LB hooks, pinned as links/cgroup/<Hook>, with
// the program each one runs.
var CgroupHooks = []Hook{
	{"connect4", ProgSockConnect4},
	{"sendmsg4", ProgSockSendmsg4},
	{"recvmsg4", ProgSockRecvmsg4},
	{"getpeername4", ProgSockGetpeername4},
}

// CgroupLinkPath returns where the socket-LB link of hook is pinned.
func CgroupLinkPath(root, hook string) string { return LinkPath(root, CgroupLinksName, hook) }

// Hook names a pod link is pinned under, with the program each one runs.
var PodHooks = []Hook{
	{"ingress", ProgFromContainer},
	{"egress", ProgToContainer},
}

// MapsDir returns the directory maps are pinned in.
func MapsDir(root string) string { return filepath.Join(root, "maps") }

// ProgPath returns where program name is pinned.
func ProgPath(root, name string) string { return filepath.Join(root, "progs", name) }

// LinksDir returns the directory holding one directory per attached interface.
func LinksDir(root string) string { return filepath.Join(root, "links") }

// LinkDir returns the directory of the links of host interface ifname.
func LinkDir(root, ifname string) string { return filepath.Join(LinksDir(root), ifname) }

// LinkPath returns where the link of hook on host interface ifname is pinned.
func LinkPath(root, ifname, hook string) string { return filepath.Join(LinkDir(root, ifname), hook) }

// ProgForHook returns the program a pod hook runs, or "" for an unknown hook.
func ProgForHook(hook string) string {
	for _, h := range PodHooks {
		if h.Hook == hook {
			return h.Prog
		}
	}
	return ""
}

// IsBPFFS reports whether path lies on a bpf filesystem.
func IsBPFFS(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, err
	}
	return st.Type == unix.BPF_FS_MAGIC, nil
}

// EnsureRoot creates root and its subdirectories (mode 0700) and checks root is
// on bpffs. When root's parent is not on bpffs and mountParent is set, a bpffs
// is mounted on the parent first (the agent does this for /sys/fs/bpf).
func EnsureRoot(root string, mountParent bool) error {
	parent := filepath.Dir(root)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", parent, err)
	}
	ok, err := IsBPFFS(parent)
	if err != nil {
		return fmt.Errorf("statfs %s: %w", parent, err)
	}
	if !ok {
		if !mountParent {
			return fmt.Errorf("%s is not on a bpf filesystem", parent)
		}
		if err := unix.Mount("bpffs", parent, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("mount bpffs on %s: %w", parent, err)
		}
	}
	for _, d := range []string{root, MapsDir(root), filepath.Dir(ProgPath(root, "x")), LinksDir(root)} {
		if err := os.MkdirAll(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	return nil
}

// MapRenames are the maps whose pinned name changed without a layout change:
// an earlier agent pinned Old, this one pins the same layout as New. Every
// map name carries its layout version (bpf/lib/maps.h); these five had none.
var MapRenames = []struct{ Old, New string }{
	{"sluice_endpoints", "sluice_endpoints_v1"},
	{"sluice_metrics", "sluice_metrics_v1"},
	{"sluice_flows", "sluice_flows_v1"},
	{"sluice_flows_lost", "sluice_flows_lost_v1"},
	{"sluice_sock_metrics", "sluice_sock_metrics_v1"},
}

// RenameMaps adopts the pins of an earlier agent under root before loading:
// a map pinned under an Old name of MapRenames with nothing pinned under its
// New name is renamed to New (the same map, entries and all). An Old pin
// next to a New one is stale (the New one is in use) and is removed.
func RenameMaps(root string) error {
	for _, r := range MapRenames {
		oldPath := filepath.Join(MapsDir(root), r.Old)
		newPath := filepath.Join(MapsDir(root), r.New)
		if _, err := os.Stat(oldPath); errors.Is(err, os.ErrNotExist) {
			continue
		}
		_, err := os.Stat(newPath)
		switch {
		case err == nil:
			if err := os.Remove(oldPath); err != nil {
				return fmt.Errorf("remove stale pin %s: %w", oldPath, err)
			}
		case errors.Is(err, os.ErrNotExist):
			if err := os.Rename(oldPath, newPath); err != nil {
				return fmt.Errorf("rename pinned map %s to %s: %w", r.Old, r.New, err)
			}
		default:
			return fmt.Errorf("stat %s: %w", newPath, err)
		}
	}
	return nil
}
