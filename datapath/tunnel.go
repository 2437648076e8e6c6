package datapath

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// SetTunnelDevice records the ifindex of the tunnel device (sluice_vxlan)
// in sluice_tunnel_v1; 0: none (native routing). The host device programs
// forward a NodePort flow whose route carries a tunnel encap (a backend on
// another node in VXLAN mode) through it. The node manager writes it on
// every sync: the device may be recreated while pinned programs stay.
func (d *Datapath) SetTunnelDevice(ifindex int) error {
	if ifindex < 0 {
		return fmt.Errorf("tunnel device ifindex %d is negative", ifindex)
	}
	if err := d.host.SluiceTunnelV1.Update(uint32(0), uint32(ifindex), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set tunnel device %d: %w", ifindex, err)
	}
	return nil
}

// TunnelDevice returns the ifindex SetTunnelDevice recorded (0: none).
func (d *Datapath) TunnelDevice() (int, error) {
	var v uint32
	if err := d.host.SluiceTunnelV1.Lookup(uint32(0), &v); err != nil {
		return 0, fmt.Errorf("look up tunnel device: %w", err)
	}
	return int(v), nil
}
