package daemon

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"

	"github.com/sluicenet/sluice/datapath"
)

// hostOptions resolves the host device programs' knobs: the SNAT address is
// --node-ip, else the first IPv4 address of the first device; the mode
// --lb-mode.
func (c Config) hostOptions() (datapath.HostOptions, error) {
	o, err := c.hostAddrOptions()
	if err != nil {
		return o, err
	}
	o.LBMode, err = datapath.ParseLBMode(c.LBMode)
	return o, err
}

func (c Config) hostAddrOptions() (datapath.HostOptions, error) {
	if c.NodeIP.IsValid() {
		if !c.NodeIP.Is4() {
			return datapath.HostOptions{}, fmt.Errorf("node IP %s is not IPv4", c.NodeIP)
		}
		return datapath.HostOptions{SNATAddr: c.NodeIP}, nil
	}
	if len(c.Devices) == 0 {
		return datapath.HostOptions{}, nil
	}
	addrs, err := deviceAddrs(c.Devices[0])
	if err != nil {
		return datapath.HostOptions{}, err
	}
	if len(addrs) == 0 {
		return datapath.HostOptions{}, fmt.Errorf("device %s has no IPv4 address: set --node-ip", c.Devices[0])
	}
	return datapath.HostOptions{SNATAddr: addrs[0]}, nil
}

// deviceAddrs returns the IPv4 addresses of the interface name.
func deviceAddrs(name string) ([]netip.Addr, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", name, err)
	}
	list, err := netlinksafe.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", name, err)
	}
	var out []netip.Addr
	for _, a := range list {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok {
			out = append(out, ip)
		}
	}
	return out, nil
}

// setupDevices attaches the host device programs to the configured external
// devices (detaching them from devices no longer configured) and writes the
// node's addresses, on which NodePort frontends answer.
func (d *Daemon) setupDevices() error {
	if err := d.syncNodeAddrs(); err != nil {
		return err
	}
	if err := d.dp.Devices().Set(d.hostDevices()); err != nil {
		return fmt.Errorf("attach host programs to devices: %w", err)
	}
	if err := d.syncXDP(); err != nil {
		return err
	}
	if len(d.cfg.Devices) > 0 {
		d.log.WithFields(logrus.Fields{"devices": d.cfg.Devices, "nodeIP": d.hostOpts.SNATAddr}).Info("Host device programs attached")
	}
	return nil
}

// syncNodeAddrs writes every IPv4 address of the node (all interfaces of
// its network namespace, as kube-proxy's default nodePortAddresses) and the
// SNAT address into the node address map.
func (d *Daemon) syncNodeAddrs() error {
	list, err := netlinksafe.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list node addresses: %w", err)
	}
	var addrs []netip.Addr
	for _, a := range list {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok {
			addrs = append(addrs, ip)
		}
	}
	if d.hostOpts.SNATAddr.IsValid() {
		addrs = append(addrs, d.hostOpts.SNATAddr)
	}
	if err := d.dp.LB().SetNodeAddrs(addrs); err != nil {
		return fmt.Errorf("write node addresses: %w", err)
	}
	return nil
}

// resyncDevices repeats setupDevices for the periodic resync (addresses
// change, a device may have been re-created).
func (d *Daemon) resyncDevices() error {
	err := errors.Join(d.syncNodeAddrs(), d.dp.Devices().Set(d.hostDevices()))
	return errors.Join(err, d.syncXDP())
}
