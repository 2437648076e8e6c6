package daemon

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"

	"github.com/sluicenet/sluice/datapath/device"
)

// xdpState is what --lb-acceleration made of each device, for the status
// and for logging only what changed.
type xdpState struct {
	mu   sync.Mutex
	mode device.XDPMode
	devs map[string]string // device -> "xdp native", "xdp generic", "tc (...)"
}

func (s *xdpState) status(devices []string) (string, map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == "" {
		return "", nil
	}
	out := make(map[string]string, len(devices))
	for _, dev := range devices {
		if v, ok := s.devs[dev]; ok {
			out[dev] = v
		} else {
			out[dev] = "tc"
		}
	}
	return string(s.mode), out
}

// syncXDP attaches the XDP NodePort program to the devices in the mode of
// --lb-acceleration (or detaches it everywhere when disabled). A device
// whose driver has no native XDP stays on tc, with a log line when that
// becomes so. The maps are shared with tc: a switch reprograms nothing.
func (d *Daemon) syncXDP() error {
	mode, err := device.ParseXDPMode(d.cfg.LBAcceleration)
	if err != nil {
		return err
	}
	errs := d.dp.Devices().SetXDP(d.cfg.Devices, mode)
	now := make(map[string]string, len(d.cfg.Devices))
	var fatal []error
	for _, dev := range d.cfg.Devices {
		err := errs[dev]
		switch {
		case err == nil && mode != device.XDPDisabled:
			now[dev] = "xdp " + string(mode)
		case err == nil:
			now[dev] = "tc"
		case errors.Is(err, device.ErrXDPUnsupported):
			now[dev] = fmt.Sprintf("tc (no %s XDP)", mode)
		default:
			now[dev] = "tc (xdp attach failed)"
			fatal = append(fatal, err)
		}
	}
	if err := errs[""]; err != nil {
		fatal = append(fatal, err)
	}

	d.xdp.mu.Lock()
	prev, prevMode := d.xdp.devs, d.xdp.mode
	d.xdp.mode, d.xdp.devs = mode, now
	d.xdp.mu.Unlock()

	names := make([]string, 0, len(now))
	for dev := range now {
		names = append(names, dev)
	}
	sort.Strings(names)
	for _, dev := range names {
		if prevMode == mode && prev[dev] == now[dev] {
			continue
		}
		log := d.log.WithFields(logrus.Fields{"device": dev, "lbAcceleration": mode})
		switch err := errs[dev]; {
		case errors.Is(err, device.ErrXDPUnsupported):
			log.WithError(err).Warnf("Device has no %s XDP: NodePort stays on the tc path", mode)
		case err != nil:
			log.WithError(err).Error("XDP attach failed: NodePort stays on the tc path")
		case mode != device.XDPDisabled:
			log.Infof("XDP NodePort program attached (%s)", mode)
			if l, err := netlink.LinkByName(dev); err == nil && l.Type() == "veth" {
				log.Warn("Device is a veth: XDP_TX/XDP_REDIRECT frames reach its peer only when the peer runs XDP (NAPI), " +
					"and the peer must send full checksums (TX checksum offload off)")
			}
		case prevMode != "" && prevMode != device.XDPDisabled:
			log.Info("XDP NodePort program detached: NodePort on the tc path")
		}
	}
	return errors.Join(fatal...)
}
