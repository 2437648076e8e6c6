// Package device attaches the host device programs (from_netdev, to_netdev)
// to the node's external devices with TCX and keeps their links pinned under
// <root>/links/devices/<ifname>/<hook>, so they survive agent restarts and
// are adopted by the next agent.
package device

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/sluicenet/sluice/datapath/attach"
	"github.com/sluicenet/sluice/datapath/pin"
)

// Links attaches the host device programs of a loaded datapath.
type Links struct {
	root  string
	progs map[string]*ebpf.Program // by pinned program name
	xdpTx *ebpf.Map                // sluice_xdp_devs_v1: devices XDP may redirect to
}

// New returns the device links under the bpffs root, running progs (by
// pinned program name: pin.ProgFromNetdev, pin.ProgToNetdev,
// pin.ProgXDPNodePort); xdpDevs is the XDP program's map of the devices it
// may redirect to (sluice_xdp_devs_v1).
func New(root string, progs map[string]*ebpf.Program, xdpDevs *ebpf.Map) *Links {
	return &Links{root: root, progs: progs, xdpTx: xdpDevs}
}

// Attach attaches the host device programs to the external device ifname (in
// the calling thread's network namespace) with TCX and pins the links. Links
// already pinned for the same interface are updated in place (no gap), stale
// ones (the interface was re-created) replaced. On error the hooks this call
// attached are detached again.
func (l *Links) Attach(ifname string) (err error) {
	iface, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("device %s: %w", ifname, err)
	}
	dir := pin.DeviceLinkDir(l.root, ifname)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create link dir of device %s: %w", ifname, err)
	}
	var attached []string
	defer func() {
		if err != nil {
			for _, p := range attached {
				os.Remove(p)
			}
		}
	}()
	for _, h := range pin.DeviceHooks {
		p := pin.DeviceLinkPath(l.root, ifname, h.Hook)
		prog := l.progs[h.Prog]
		done, err := attach.UpdatePinned(p, prog, func(i link.Info) bool {
			tcx := i.TCX()
			return tcx != nil && int(tcx.Ifindex) == iface.Index
		})
		if err != nil {
			return err
		}
		if done {
			continue
		}
		lk, err := link.AttachTCX(link.TCXOptions{Interface: iface.Index, Program: prog, Attach: attach.TCXAttachType(h.Hook)})
		if err != nil {
			return fmt.Errorf("attach tcx %s to %s: %w", h.Hook, ifname, err)
		}
		err = lk.Pin(p)
		lk.Close()
		if err != nil {
			return fmt.Errorf("pin %s link of device %s: %w", h.Hook, ifname, err)
		}
		attached = append(attached, p)
	}
	return nil
}

// Detach detaches the host device programs from ifname (unpinning its
// links). A device without links is not an error.
func (l *Links) Detach(ifname string) error {
	if err := os.RemoveAll(pin.DeviceLinkDir(l.root, ifname)); err != nil {
		return fmt.Errorf("unpin links of device %s: %w", ifname, err)
	}
	return nil
}

// List lists the devices the host programs are attached to.
func (l *Links) List() ([]string, error) {
	ents, err := os.ReadDir(pin.DevicesDir(l.root))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read device links: %w", err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, nil
}

// Set attaches the host programs to exactly ifnames: each is attached (or
// its links updated), every other attached device is detached.
func (l *Links) Set(ifnames []string) error {
	var errs []error
	for _, name := range ifnames {
		if err := l.Attach(name); err != nil {
			errs = append(errs, err)
		}
	}
	cur, err := l.List()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, name := range cur {
		if !slices.Contains(ifnames, name) {
			errs = append(errs, l.Detach(name))
		}
	}
	return errors.Join(errs...)
}

// Adopt points every pinned host device link at the current programs; links
// of deleted devices are unpinned. It returns how many links run the current
// programs.
func (l *Links) Adopt() (int, error) {
	names, err := l.List()
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, name := range names {
		k, err := attach.AdoptTCXDir(pin.DeviceLinkDir(l.root, name), pin.DeviceHooks, l.progs)
		n += k
		if err != nil {
			errs = append(errs, err)
		}
		k, err = l.adoptXDP(name)
		n += k
		if err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}
