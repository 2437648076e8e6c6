package device

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath/attach"
	"github.com/sluicenet/sluice/datapath/pin"
)

// XDPMode is how the XDP program is attached to the external devices
// (--lb-acceleration).
type XDPMode string

// XDP modes, named as Cilium's loadBalancer.acceleration.
const (
	XDPDisabled XDPMode = "disabled" // tc only
	XDPNative   XDPMode = "native"   // in the driver (XDP_FLAGS_DRV_MODE)
	XDPGeneric  XDPMode = "generic"  // after the skb is built (XDP_FLAGS_SKB_MODE)
)

// ParseXDPMode parses a --lb-acceleration value.
func ParseXDPMode(s string) (XDPMode, error) {
	switch m := XDPMode(s); m {
	case XDPDisabled, XDPNative, XDPGeneric:
		return m, nil
	case "":
		return XDPDisabled, nil
	}
	return "", fmt.Errorf("lb acceleration %q: want native, generic or disabled", s)
}

// ErrXDPUnsupported is returned (wrapped) by AttachXDP for a device whose
// driver cannot run XDP in the requested mode: the device stays on tc.
var ErrXDPUnsupported = errors.New("XDP mode not supported by the device")

var xdpModes = []XDPMode{XDPNative, XDPGeneric}

func (m XDPMode) flags() link.XDPAttachFlags {
	if m == XDPGeneric {
		return link.XDPGenericMode
	}
	return link.XDPDriverMode
}

// AttachXDP attaches the XDP program to device ifname in mode (native or
// generic) with a pinned link, links/devices/<ifname>/xdp-<mode>: a link
// already pinned for the device in that mode is updated in place, one in the
// other mode detached first (tc serves the device meanwhile: the maps are
// shared, flows go on). The device is added to the devices XDP may redirect
// to. A driver without the mode gives ErrXDPUnsupported and leaves the
// device without XDP.
func (l *Links) AttachXDP(ifname string, mode XDPMode) error {
	if mode != XDPNative && mode != XDPGeneric {
		return fmt.Errorf("attach xdp to %s: mode %q", ifname, mode)
	}
	iface, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("device %s: %w", ifname, err)
	}
	for _, m := range xdpModes {
		if m != mode {
			if err := unpin(pin.DeviceLinkPath(l.root, ifname, pin.XDPHook(string(m)))); err != nil {
				return err
			}
		}
	}
	if err := os.MkdirAll(pin.DeviceLinkDir(l.root, ifname), 0o700); err != nil {
		return fmt.Errorf("create link dir of device %s: %w", ifname, err)
	}
	p := pin.DeviceLinkPath(l.root, ifname, pin.XDPHook(string(mode)))
	prog := l.progs[pin.ProgXDPNodePort]
	done, err := attach.UpdatePinned(p, prog, func(i link.Info) bool {
		x := i.XDP()
		return x != nil && int(x.Ifindex) == iface.Index
	})
	if err != nil {
		return err
	}
	if !done {
		lk, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: iface.Index, Flags: mode.flags()})
		if errors.Is(err, os.ErrInvalid) || errors.Is(err, ebpf.ErrNotSupported) || isNotSupp(err) {
			return fmt.Errorf("attach xdp (%s) to %s: %w: %v", mode, ifname, ErrXDPUnsupported, err)
		}
		if err != nil {
			return fmt.Errorf("attach xdp (%s) to %s: %w", mode, ifname, err)
		}
		err = lk.Pin(p)
		lk.Close()
		if err != nil {
			return fmt.Errorf("pin xdp link of device %s: %w", ifname, err)
		}
	}
	idx := uint32(iface.Index)
	if err := l.xdpTx.Update(idx, idx, ebpf.UpdateAny); err != nil {
		os.Remove(p)
		return fmt.Errorf("add %s to the xdp redirect devices: %w", ifname, err)
	}
	return nil
}

// DetachXDP detaches the XDP program from ifname (tc serves it alone). No
// XDP link is not an error.
func (l *Links) DetachXDP(ifname string) error {
	var errs []error
	for _, m := range xdpModes {
		errs = append(errs, unpin(pin.DeviceLinkPath(l.root, ifname, pin.XDPHook(string(m)))))
	}
	if iface, err := net.InterfaceByName(ifname); err == nil {
		if err := l.xdpTx.Delete(uint32(iface.Index)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("remove %s from the xdp redirect devices: %w", ifname, err))
		}
	}
	return errors.Join(errs...)
}

// XDPModeOf returns the mode the XDP program is attached to ifname in
// (pinned link), or XDPDisabled.
func (l *Links) XDPModeOf(ifname string) XDPMode {
	for _, m := range xdpModes {
		if _, err := os.Stat(pin.DeviceLinkPath(l.root, ifname, pin.XDPHook(string(m)))); err == nil {
			return m
		}
	}
	return XDPDisabled
}

// SetXDP attaches the XDP program in mode to every device of ifnames (or,
// for XDPDisabled, detaches it) and detaches it from every other device.
// It returns the error of each device that could not get it; a device
// failing with ErrXDPUnsupported is served by tc alone.
func (l *Links) SetXDP(ifnames []string, mode XDPMode) map[string]error {
	errs := make(map[string]error)
	for _, name := range ifnames {
		var err error
		if mode == XDPDisabled {
			err = l.DetachXDP(name)
		} else {
			err = l.AttachXDP(name, mode)
		}
		if err != nil {
			errs[name] = err
		}
	}
	cur, err := l.List()
	if err != nil {
		errs[""] = err
	}
	for _, name := range cur {
		if !slices.Contains(ifnames, name) {
			if err := l.DetachXDP(name); err != nil {
				errs[name] = err
			}
		}
	}
	// Devices gone from the redirect map's view: drop what no link backs.
	var (
		k, v  uint32
		stale []uint32
	)
	it := l.xdpTx.Iterate()
	for it.Next(&k, &v) {
		ifc, err := net.InterfaceByIndex(int(k))
		if err != nil || l.XDPModeOf(ifc.Name) == XDPDisabled {
			stale = append(stale, k)
		}
	}
	for _, k := range stale {
		l.xdpTx.Delete(k)
	}
	return errs
}

// adoptXDP points the pinned XDP link of device name at the current
// program; a link whose device is gone is unpinned. It returns 1 when the
// device runs the current XDP program.
func (l *Links) adoptXDP(name string) (int, error) {
	for _, m := range xdpModes {
		ok, err := attach.UpdatePinned(pin.DeviceLinkPath(l.root, name, pin.XDPHook(string(m))), l.progs[pin.ProgXDPNodePort],
			func(i link.Info) bool {
				x := i.XDP()
				return x == nil || x.Ifindex != 0
			})
		if err != nil {
			return 0, err
		}
		if ok {
			return 1, nil
		}
	}
	return 0, nil
}

// unpin detaches the link pinned at path and removes the pin. Detached
// explicitly (BPF_LINK_DETACH): a link whose last reference was its pin is
// released asynchronously, and the hook it held would refuse the next
// attach meanwhile (EEXIST).
func unpin(path string) error {
	l, err := link.LoadPinnedLink(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open pinned link %s: %w", path, err)
	}
	defer l.Close()
	if err := l.Detach(); err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("detach link %s: %w", path, err)
	}
	if err := l.Unpin(); err != nil {
		return fmt.Errorf("unpin %s: %w", path, err)
	}
	return nil
}

// isNotSupp reports whether err is the kernel's answer to a driver without
// the XDP mode (EOPNOTSUPP).
func isNotSupp(err error) bool { return errors.Is(err, unix.EOPNOTSUPP) }
