package datapath

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/sluicenet/sluice/datapath/pin"
)

// loadHost loads the host device programs (bpf/host.c) sharing every Sluice
// map they have in common with the pod programs.
func (d *Datapath) loadHost(pinPath string, opts Options, host HostOptions, podMaps map[string]*ebpf.Map) error {
	spec, err := loadHost()
	if err != nil {
		return err
	}
	if err := opts.apply(spec); err != nil {
		return err
	}
	if err := host.apply(spec); err != nil {
		return err
	}
	shared := make(map[string]*ebpf.Map)
	for name := range spec.Maps {
		if m, ok := podMaps[name]; ok && strings.HasPrefix(name, "sluice_") {
			shared[name] = m
		}
	}
	_, err = loadSpec(spec, &d.host, pinPath, shared, "host device")
	return err
}

// FromNetdev returns the program run for packets arriving at an external
// device (tcx ingress).
func (d *Datapath) FromNetdev() *ebpf.Program { return d.host.FromNetdev }

// ToNetdev returns the program run for packets leaving through an external
// device (tcx egress).
func (d *Datapath) ToNetdev() *ebpf.Program { return d.host.ToNetdev }

func deviceAttachType(hook string) ebpf.AttachType {
	if hook == "egress" {
		return ebpf.AttachTCXEgress
	}
	return ebpf.AttachTCXIngress
}

// AttachDevice attaches the host device programs to the external device
// ifname (in the calling thread's network namespace) with TCX. A pinned
// Datapath pins the links under <root>/links/devices/<ifname>/<hook>; links
// already pinned there for the same interface are updated in place (no gap),
// stale ones (the interface was re-created) replaced. On error the hooks this
// call attached are detached again.
func (d *Datapath) AttachDevice(ifname string) (err error) {
	iface, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("device %s: %w", ifname, err)
	}
	progs := d.programs()
	if d.root == "" {
		return d.attachDeviceUnpinned(ifname, iface.Index, progs)
	}
	dir := pin.DeviceLinkDir(d.root, ifname)
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
		p := pin.DeviceLinkPath(d.root, ifname, h.Hook)
		done, err := updatePinnedDeviceLink(p, iface.Index, progs[h.Prog])
		if err != nil {
			return err
		}
		if done {
			continue
		}
		l, err := link.AttachTCX(link.TCXOptions{Interface: iface.Index, Program: progs[h.Prog], Attach: deviceAttachType(h.Hook)})
		if err != nil {
			return fmt.Errorf("attach tcx %s to %s: %w", h.Hook, ifname, err)
		}
		err = l.Pin(p)
		l.Close()
		if err != nil {
			return fmt.Errorf("pin %s link of device %s: %w", h.Hook, ifname, err)
		}
		attached = append(attached, p)
	}
	return nil
}

func (d *Datapath) attachDeviceUnpinned(ifname string, ifindex int, progs map[string]*ebpf.Program) error {
	if err := d.detachDeviceUnpinned(ifname); err != nil {
		return err
	}
	var links []link.Link
	for _, h := range pin.DeviceHooks {
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: progs[h.Prog], Attach: deviceAttachType(h.Hook)})
		if err != nil {
			for _, l := range links {
				l.Close()
			}
			return fmt.Errorf("attach tcx %s to %s: %w", h.Hook, ifname, err)
		}
		links = append(links, l)
	}
	if d.devLinks == nil {
		d.devLinks = make(map[string][]link.Link)
	}
	d.devLinks[ifname] = links
	return nil
}

// updatePinnedDeviceLink points the link pinned at path at prog when it is
// attached to ifindex (true), or unpins it when it is not (false: attach anew).
func updatePinnedDeviceLink(path string, ifindex int, prog *ebpf.Program) (bool, error) {
	return updatePinnedLink(path, prog, func(i link.Info) bool {
		tcx := i.TCX()
		return tcx != nil && int(tcx.Ifindex) == ifindex
	})
}

// DetachDevice detaches the host device programs from ifname (unpinning its
// links). A device without links is not an error.
func (d *Datapath) DetachDevice(ifname string) error {
	if d.root == "" {
		return d.detachDeviceUnpinned(ifname)
	}
	if err := os.RemoveAll(pin.DeviceLinkDir(d.root, ifname)); err != nil {
		return fmt.Errorf("unpin links of device %s: %w", ifname, err)
	}
	return nil
}

func (d *Datapath) detachDeviceUnpinned(ifname string) error {
	var errs []error
	for _, l := range d.devLinks[ifname] {
		errs = append(errs, l.Close())
	}
	delete(d.devLinks, ifname)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("detach device %s: %w", ifname, err)
	}
	return nil
}

// Devices lists the devices the host programs are attached to (pinned or,
// for an unpinned Datapath, held by it).
func (d *Datapath) Devices() ([]string, error) {
	if d.root == "" {
		var out []string
		for name := range d.devLinks {
			out = append(out, name)
		}
		slices.Sort(out)
		return out, nil
	}
	ents, err := os.ReadDir(pin.DevicesDir(d.root))
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

// SetDevices attaches the host programs to exactly ifnames: each is attached
// (or its links updated), every other attached device is detached.
func (d *Datapath) SetDevices(ifnames []string) error {
	var errs []error
	for _, name := range ifnames {
		if err := d.AttachDevice(name); err != nil {
			errs = append(errs, err)
		}
	}
	cur, err := d.Devices()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, name := range cur {
		if !slices.Contains(ifnames, name) {
			errs = append(errs, d.DetachDevice(name))
		}
	}
	return errors.Join(errs...)
}

// adoptDeviceLinks points every pinned host device link at this Datapath's
// programs; links of deleted devices are unpinned. It returns how many links
// run the current programs.
func (d *Datapath) adoptDeviceLinks() (int, error) {
	ents, err := os.ReadDir(pin.DevicesDir(d.root))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read device links: %w", err)
	}
	progs := d.programs()
	n := 0
	var errs []error
	for _, e := range ents {
		for _, h := range pin.DeviceHooks {
			ok, err := adoptLink(pin.DeviceLinkPath(d.root, e.Name(), h.Hook), progs[h.Prog])
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				n++
			}
		}
		// A device whose links were all defunct is gone: drop its dir.
		os.Remove(pin.DeviceLinkDir(d.root, e.Name()))
	}
	return n, errors.Join(errs...)
}

func (d *Datapath) closeDeviceLinks() error {
	var errs []error
	for name := range d.devLinks {
		errs = append(errs, d.detachDeviceUnpinned(name))
	}
	return errors.Join(errs...)
}
