package translate

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"

	"github.com/sluicenet/sluice/agent/lb"
)

// frontend is one address of a service; its port comes from the service port.
type frontend struct {
	kind lb.Kind
	addr netip.Addr
}

// frontends lists the IPv4 frontends of svc: cluster IPs, the node port
// wildcard (for NodePort and LoadBalancer types), external IPs and
// LoadBalancer ingress IPs in VIP mode.
func (t *translator) frontends(svc *corev1.Service) []frontend {
	var out []frontend
	clusterIPs := svc.Spec.ClusterIPs
	if len(clusterIPs) == 0 {
		clusterIPs = []string{svc.Spec.ClusterIP}
	}
	for _, s := range clusterIPs {
		if a, ok := t.parseV4(svc, "cluster IP", s); ok {
			out = append(out, frontend{lb.ClusterIP, a})
		}
	}
	if len(out) == 0 {
		// IPv6-only: node ports, external and LB IPs of this service belong
		// to the IPv6 family too, which this dataplane does not serve.
		t.diag(svc, "no IPv4 cluster IP, service skipped")
		return nil
	}
	if svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		out = append(out, frontend{lb.NodePort, netip.IPv4Unspecified()})
	}
	for _, s := range svc.Spec.ExternalIPs {
		if a, ok := t.parseV4(svc, "external IP", s); ok {
			out = append(out, frontend{lb.ExternalIP, a})
		}
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP == "" {
			continue // hostname-only ingress: nothing to program
		}
		if ing.IPMode != nil && *ing.IPMode == corev1.LoadBalancerIPModeProxy {
			t.diag(svc, "load balancer ingress %s has ipMode Proxy: traffic reaches node ports, IP not programmed", ing.IP)
			continue
		}
		if a, ok := t.parseV4(svc, "load balancer ingress IP", ing.IP); ok {
			out = append(out, frontend{lb.LoadBalancer, a})
		}
	}
	if len(svc.Spec.LoadBalancerSourceRanges) > 0 {
		t.diag(svc, "loadBalancerSourceRanges are not enforced")
	}
	return out
}

// parseV4 parses an IPv4 address (IPv4-mapped IPv6 is unmapped). IPv6 and
// invalid addresses are reported and rejected.
func (t *translator) parseV4(svc *corev1.Service, what, s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.diag(svc, "invalid %s %q", what, s)
		return netip.Addr{}, false
	}
	a = a.Unmap()
	if !a.Is4() {
		t.diag(svc, "%s %s: IPv6 is not supported", what, a)
		return netip.Addr{}, false
	}
	if a.IsUnspecified() {
		t.diag(svc, "invalid %s %s", what, a)
		return netip.Addr{}, false
	}
	return a, true
}
