// Package services generates the service sets of the TCP_CRR benchmark and
// renders them two ways: as a kube-proxy iptables-mode ruleset (the text fed
// to one iptables-restore) and as Service + EndpointSlice manifests for the
// Sluice agent's manifests directory.
package services

import (
	"fmt"
	"net/netip"
	"strings"
)

// Service is one ClusterIP (or, with NodePort set, NodePort) service with
// one port.
type Service struct {
	Namespace string
	Name      string
	PortName  string
	VIP       netip.Addr
	Port      uint16
	Backends  []netip.AddrPort
	// Protocol is "tcp" (the default when empty) or "udp".
	Protocol string
	// NodePort, when not zero, makes the service type NodePort on that
	// port (externalTrafficPolicy Cluster).
	NodePort uint16
}

// Proto is s's protocol in lower case, "tcp" when unset.
func (s Service) Proto() string {
	if s.Protocol == "" {
		return "tcp"
	}
	return strings.ToLower(s.Protocol)
}

// ID is kube-proxy's service port name: namespace/name:port.
func (s Service) ID() string { return fmt.Sprintf("%s/%s:%s", s.Namespace, s.Name, s.PortName) }

// Frontend returns VIP:port.
func (s Service) Frontend() netip.AddrPort { return netip.AddrPortFrom(s.VIP, s.Port) }

// Measured is the name of the service the benchmark connects to.
const Measured = "crr"

// FirstVIP is the ClusterIP of service index 0; index i gets FirstVIP+i.
var FirstVIP = netip.MustParseAddr("10.96.0.16")

// ServicePort is the port every generated service listens on.
const ServicePort = 80

// Set returns n services (n >= 1) in kube-proxy order: n-1 filler services
// (svc-00000, …) whose endpoints are filler, then the measured service
// (named Measured) with measured as endpoints, so that it is matched last.
func Set(n int, measured, filler []netip.AddrPort) ([]Service, error) {
	if n < 1 {
		return nil, fmt.Errorf("service count %d: need at least 1", n)
	}
	out := make([]Service, 0, n)
	vip := FirstVIP
	for i := range n {
		s := Service{Namespace: "default", Name: fmt.Sprintf("svc-%05d", i), PortName: "tcp", VIP: vip, Port: ServicePort, Backends: filler}
		if i == n-1 {
			s.Name, s.Backends = Measured, measured
		}
		if !netip.MustParsePrefix("10.96.0.0/12").Contains(vip) {
			return nil, fmt.Errorf("service %d: %s outside the service CIDR", i, vip)
		}
		out = append(out, s)
		vip = vip.Next()
	}
	return out, nil
}

// Extra returns one more service after set (the next VIP), named name, for
// measuring the latency of a change.
func Extra(set []Service, name string, backends []netip.AddrPort) Service {
	vip := FirstVIP
	if len(set) > 0 {
		vip = set[len(set)-1].VIP.Next()
		for _, s := range set {
			if s.VIP.Compare(vip) >= 0 {
				vip = s.VIP.Next()
			}
		}
	}
	return Service{Namespace: "default", Name: name, PortName: "tcp", VIP: vip, Port: ServicePort, Backends: backends}
}
