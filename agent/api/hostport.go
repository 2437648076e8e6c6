package api

import (
	"fmt"
	"net/netip"
	"strings"
)

// PortMapping is one hostPort of a pod, as the container runtime passes it
// to CNI plugins that declare the portMappings capability
// (runtimeConfig.portMappings, the portmap plugin's fields): connections to
// HostIP:HostPort (every address of the node when HostIP is empty or
// 0.0.0.0) reach the pod's ContainerPort.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"` // tcp or udp (any case); empty is tcp
	HostIP        string `json:"hostIP,omitempty"`
}

// Proto returns the mapping's protocol in upper case ("TCP" when unset).
func (p PortMapping) Proto() string {
	if p.Protocol == "" {
		return "TCP"
	}
	return strings.ToUpper(p.Protocol)
}

// Addr returns the host address the mapping answers on; the unspecified
// address 0.0.0.0 stands for every address of the node. It is valid only
// for a mapping Validate accepted.
func (p PortMapping) Addr() netip.Addr {
	if p.HostIP == "" {
		return netip.IPv4Unspecified()
	}
	a, _ := netip.ParseAddr(p.HostIP)
	return a.Unmap()
}

// Normalized returns p with a lower-case protocol and a canonical host
// address ("" for every address), the form the agent stores. It is valid
// only for a mapping Validate accepted.
func (p PortMapping) Normalized() PortMapping {
	p.Protocol = strings.ToLower(p.Proto())
	if a := p.Addr(); a.IsUnspecified() {
		p.HostIP = ""
	} else {
		p.HostIP = a.String()
	}
	return p
}

func (p PortMapping) String() string {
	return fmt.Sprintf("hostPort %s/%s -> containerPort %d", netip.AddrPortFrom(p.Addr(), uint16(p.HostPort)), p.Proto(), p.ContainerPort)
}

// Validate checks a mapping the datapath can serve: ports in 1-65535, TCP or
// UDP, an IPv4 (or no) host address.
func (p PortMapping) Validate() error {
	switch {
	case p.HostPort < 1 || p.HostPort > 65535:
		return fmt.Errorf("portMappings: hostPort %d is out of range (1-65535)", p.HostPort)
	case p.ContainerPort < 1 || p.ContainerPort > 65535:
		return fmt.Errorf("portMappings: containerPort %d of hostPort %d is out of range (1-65535)", p.ContainerPort, p.HostPort)
	case p.Proto() != "TCP" && p.Proto() != "UDP":
		return fmt.Errorf("portMappings: protocol %q of hostPort %d is not supported (tcp or udp)", p.Protocol, p.HostPort)
	}
	if p.HostIP == "" {
		return nil
	}
	a, err := netip.ParseAddr(p.HostIP)
	if err != nil || !a.Unmap().Is4() {
		return fmt.Errorf("portMappings: hostIP %q of hostPort %d is not an IPv4 address (the datapath is IPv4-only)", p.HostIP, p.HostPort)
	}
	return nil
}

// Overlaps reports whether p and q cannot both be served: the same hostPort
// and protocol on the same host address, or on any address when either
// answers on every address (the scheduler's and kubelet's hostPort rule).
func (p PortMapping) Overlaps(q PortMapping) bool {
	if p.HostPort != q.HostPort || p.Proto() != q.Proto() {
		return false
	}
	a, b := p.Addr(), q.Addr()
	return a == b || a.IsUnspecified() || b.IsUnspecified()
}

// ValidatePortMappings checks every mapping and that no two of one pod use
// the same host address, port and protocol. Within a pod, one on every
// address and one on a given address may share a port (Kubernetes' API
// validation allows it): the given address's wins there.
func ValidatePortMappings(pms []PortMapping) error {
	for i, p := range pms {
		if err := p.Validate(); err != nil {
			return err
		}
		for _, q := range pms[:i] {
			if p.HostPort == q.HostPort && p.Proto() == q.Proto() && p.Addr() == q.Addr() {
				return fmt.Errorf("portMappings: %s and %s use the same host address, port and protocol", q, p)
			}
		}
	}
	return nil
}
