package translate

import (
	"cmp"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// HealthCheck is the health-check node port one Service needs on this node:
// a LoadBalancer Service with externalTrafficPolicy Local is served, on its
// spec.healthCheckNodePort, the count of its ready endpoints on this node,
// so that a cloud load balancer sends traffic only to nodes that have one
// (kube-proxy's pkg/proxy/healthcheck).
type HealthCheck struct {
	Namespace, Name string
	// Port is spec.healthCheckNodePort.
	Port uint16
	// LocalEndpoints counts the distinct addresses of this node's ready
	// endpoints over all the Service's ports. Serving but terminating
	// endpoints do not count: a node with only those fails the check
	// (kube-proxy's EndpointsMap.LocalReadyEndpoints).
	LocalEndpoints int
}

// HealthChecks returns the health checks of in.Services, sorted by
// namespace and name.
func HealthChecks(in Input) []HealthCheck {
	byService := slicesByService(in.EndpointSlices)
	var out []HealthCheck
	for _, svc := range sortedServices(in.Services) {
		sub := in
		sub.EndpointSlices = byService[nsName{svc.Namespace, svc.Name}]
		if hc, ok := ServiceHealthCheck(sub, svc); ok {
			out = append(out, hc)
		}
	}
	return out
}

// ServiceHealthCheck returns the health check svc needs, false if it needs
// none. As for Service, in.EndpointSlices need only hold svc's own slices
// and in.Pods only the pods of its namespace.
func ServiceHealthCheck(in Input, svc *corev1.Service) (HealthCheck, bool) {
	if !needsHealthCheck(svc, in.ServiceProxyName) {
		return HealthCheck{}, false
	}
	hc := HealthCheck{Namespace: svc.Namespace, Name: svc.Name, Port: uint16(svc.Spec.HealthCheckNodePort)}
	var group []*discoveryv1.EndpointSlice
	for _, s := range in.EndpointSlices {
		if s != nil && s.Namespace == svc.Namespace && s.Labels[discoveryv1.LabelServiceName] == svc.Name {
			group = append(group, s)
		}
	}
	if len(group) > 0 {
		hc.LocalEndpoints = localReadyFromSlices(group, in.NodeName)
	} else if len(svc.Spec.Selector) > 0 {
		hc.LocalEndpoints = localReadyFromPods(svc, in.Pods, in.NodeName)
	}
	return hc, true
}

// needsHealthCheck is kube-proxy's condition for a health-check node port
// (apiservice.NeedsHealthCheck on a Service it proxies): type LoadBalancer,
// externalTrafficPolicy Local, an IPv4 cluster IP, at least one port, and a
// port allocated.
func needsHealthCheck(svc *corev1.Service, proxyName string) bool {
	if svc == nil || notOurs(svc, proxyName) != "" {
		return false
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer ||
		svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		return false
	}
	if p := svc.Spec.HealthCheckNodePort; p <= 0 || p > 65535 || len(svc.Spec.Ports) == 0 {
		return false
	}
	return hasIPv4ClusterIP(svc)
}

func hasIPv4ClusterIP(svc *corev1.Service) bool {
	for _, s := range append([]string{svc.Spec.ClusterIP}, svc.Spec.ClusterIPs...) {
		if a, err := netip.ParseAddr(s); err == nil && a.Unmap().Is4() {
			return true
		}
	}
	return false
}

// localReadyFromSlices counts as kube-proxy does: an endpoint is one per
// slice port (named, with a number), protocol, address and port; of
// duplicates a local one replaces what came before; the count is the
// distinct addresses among the local ready ones. Ready unset counts as
// ready (the EndpointSlice API's meaning).
func localReadyFromSlices(group []*discoveryv1.EndpointSlice, node string) int {
	type key struct {
		port  string
		proto corev1.Protocol
		addr  netip.AddrPort
	}
	type cond struct{ local, ready bool }
	group = slices.Clone(group)
	slices.SortStableFunc(group, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) })
	eps := map[key]cond{}
	for _, s := range group {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		for _, p := range s.Ports {
			if p.Name == nil || p.Port == nil || *p.Port <= 0 || *p.Port > 65535 {
				continue
			}
			proto := corev1.ProtocolTCP
			if p.Protocol != nil {
				proto = *p.Protocol
			}
			for _, e := range s.Endpoints {
				if len(e.Addresses) == 0 {
					continue
				}
				a, err := netip.ParseAddr(e.Addresses[0])
				if err != nil {
					continue
				}
				k := key{*p.Name, proto, netip.AddrPortFrom(a.Unmap(), uint16(*p.Port))}
				c := cond{
					local: e.NodeName != nil && node != "" && *e.NodeName == node,
					ready: e.Conditions.Ready == nil || *e.Conditions.Ready,
				}
				if _, dup := eps[k]; !dup || c.local {
					eps[k] = c
				}
			}
		}
	}
	addrs := map[netip.Addr]bool{}
	for k, c := range eps {
		if c.local && c.ready {
			addrs[k.addr.Addr()] = true
		}
	}
	return len(addrs)
}

// localReadyFromPods counts, for a selector Service without EndpointSlices
// (standalone mode), the distinct addresses of the pods on this node that
// the EndpointSlice controller would list as ready: ready and not being
// deleted, or any with publishNotReadyAddresses.
func localReadyFromPods(svc *corev1.Service, pods []Pod, node string) int {
	addrs := map[netip.Addr]bool{}
	for _, p := range pods {
		if p.Namespace != svc.Namespace || !selects(svc.Spec.Selector, p.Labels) || !p.IP.IsValid() {
			continue
		}
		if node == "" || p.NodeName != node || !(p.Ready || svc.Spec.PublishNotReadyAddresses) {
			continue
		}
		addrs[p.IP.Unmap()] = true
	}
	return len(addrs)
}
