package nodemgr

import "fmt"

// MTU parameters.
const (
	// VXLANOverhead is what VXLAN adds to a pod's IPv4 packet on the
	// underlay: outer IPv4 (20), UDP (8) and VXLAN (8) headers and the
	// inner Ethernet header (14).
	VXLANOverhead = 50
	// DefaultUnderlayMTU is assumed when the device holding the node IP is
	// unknown.
	DefaultUnderlayMTU = 1500
	// MinMTU and MaxMTU bound an IPv4 interface MTU (RFC 791's 68, the
	// largest IPv4 packet).
	MinMTU = 68
	MaxMTU = 65535
)

// MTUs are the MTUs the agent configures for a routing mode, the way
// Cilium derives them: pods get the underlay's MTU less what the mode's
// encapsulation adds, so their packets fit the tunnel without relying on
// path MTU discovery.
type MTUs struct {
	// Underlay is the MTU of the device that holds the node IP.
	Underlay int
	// Pod is the MTU of pod interfaces (both ends of their veths).
	Pod int
	// VXLAN is the MTU of sluice_vxlan: Underlay less VXLANOverhead.
	VXLAN int
}

// ComputeMTUs returns the MTUs for mode on an underlay of MTU underlay
// (0: unknown, DefaultUnderlayMTU; above MaxMTU, as loopback's 65536:
// MaxMTU). A non-zero pod MTU (--mtu) is taken as it is; 0 derives it: the
// underlay MTU, less VXLANOverhead in VXLAN mode.
func ComputeMTUs(mode Mode, underlay, pod int) (MTUs, error) {
	if underlay == 0 {
		underlay = DefaultUnderlayMTU
	}
	underlay = min(underlay, MaxMTU)
	if underlay < MinMTU+VXLANOverhead {
		return MTUs{}, fmt.Errorf("underlay MTU %d is below %d, too small for pods behind VXLAN", underlay, MinMTU+VXLANOverhead)
	}
	if pod != 0 && (pod < MinMTU || pod > MaxMTU) {
		return MTUs{}, fmt.Errorf("pod MTU %d is out of range (%d-%d)", pod, MinMTU, MaxMTU)
	}
	m := MTUs{Underlay: underlay, Pod: pod, VXLAN: underlay - VXLANOverhead}
	if m.Pod == 0 {
		m.Pod = underlay
		if mode == ModeVXLAN {
			m.Pod = m.VXLAN
		}
	}
	return m, nil
}
