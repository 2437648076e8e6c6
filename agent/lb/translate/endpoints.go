package translate

import (
	"cmp"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluicenet/sluice/agent/lb"
)

// endpoint is one candidate backend with its EndpointSlice conditions.
type endpoint struct {
	addr        netip.AddrPort
	ready       bool
	serving     bool
	terminating bool
	local       bool
	pod         string
}

// slicesByService groups EndpointSlices by the service named in their
// kubernetes.io/service-name label, each group sorted by slice name so that
// deduplication is deterministic.
func slicesByService(in []*discoveryv1.EndpointSlice) map[nsName][]*discoveryv1.EndpointSlice {
	out := make(map[nsName][]*discoveryv1.EndpointSlice)
	for _, s := range in {
		if s == nil {
			continue
		}
		svc := s.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		k := nsName{s.Namespace, svc}
		out[k] = append(out[k], s)
	}
	for _, group := range out {
		slices.SortStableFunc(group, func(a, b *discoveryv1.EndpointSlice) int {
			return cmp.Compare(a.Name, b.Name)
		})
	}
	return out
}

// endpoints returns the candidate endpoints of one service port, from its
// EndpointSlices or, for a selector service without any, from the Pods.
func (t *translator) endpoints(svc *corev1.Service, sp corev1.ServicePort, proto lb.Proto) []endpoint {
	if group := t.slices[nsName{svc.Namespace, svc.Name}]; len(group) > 0 {
		return t.sliceEndpoints(svc, group, sp, proto)
	}
	if len(svc.Spec.Selector) > 0 {
		return t.podEndpoints(svc, sp)
	}
	return nil
}

// sliceEndpoints collects the endpoints of the slice port named like the
// service port, deduplicated by address and port (a local copy wins).
func (t *translator) sliceEndpoints(svc *corev1.Service, group []*discoveryv1.EndpointSlice, sp corev1.ServicePort, proto lb.Proto) []endpoint {
	var out []endpoint
	index := make(map[netip.AddrPort]int)
	for _, s := range group {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			t.diag(svc, "EndpointSlice %s: address type %s is not supported", s.Name, s.AddressType)
			continue
		}
		port, ok := slicePort(s, sp.Name, proto)
		if !ok {
			continue
		}
		for _, e := range s.Endpoints {
			if len(e.Addresses) == 0 {
				continue
			}
			a, err := netip.ParseAddr(e.Addresses[0])
			if err != nil || !a.Unmap().Is4() {
				t.diag(svc, "EndpointSlice %s: invalid IPv4 endpoint address %q", s.Name, e.Addresses[0])
				continue
			}
			ep := endpoint{
				addr:        netip.AddrPortFrom(a.Unmap(), port),
				ready:       e.Conditions.Ready == nil || *e.Conditions.Ready,
				serving:     e.Conditions.Serving == nil || *e.Conditions.Serving,
				terminating: e.Conditions.Terminating != nil && *e.Conditions.Terminating,
				local:       e.NodeName != nil && *e.NodeName == t.in.NodeName && t.in.NodeName != "",
			}
			if r := e.TargetRef; r != nil && r.Kind == "Pod" {
				ns := r.Namespace
				if ns == "" {
					ns = s.Namespace
				}
				ep.pod = ns + "/" + r.Name
			}
			if i, dup := index[ep.addr]; dup {
				if ep.local && !out[i].local {
					out[i] = ep
				}
				continue
			}
			index[ep.addr] = len(out)
			out = append(out, ep)
		}
	}
	return out
}

// slicePort finds the port of slice s that serves the service port name
// with protocol proto. EndpointSlice ports carry the service port's name and
// the resolved target port number.
func slicePort(s *discoveryv1.EndpointSlice, name string, proto lb.Proto) (uint16, bool) {
	for _, p := range s.Ports {
		pname := ""
		if p.Name != nil {
			pname = *p.Name
		}
		pproto := corev1.ProtocolTCP
		if p.Protocol != nil {
			pproto = *p.Protocol
		}
		got, ok := protocol(pproto)
		if pname != name || !ok || got != proto {
			continue
		}
		if p.Port == nil || *p.Port <= 0 || *p.Port > 65535 {
			return 0, false
		}
		return uint16(*p.Port), true
	}
	return 0, false
}

// podEndpoints synthesizes endpoints from the ready Pods the service's
// selector matches (all pods with publishNotReadyAddresses), resolving a
// named target port through each Pod's container ports.
func (t *translator) podEndpoints(svc *corev1.Service, sp corev1.ServicePort) []endpoint {
	var out []endpoint
	seen := make(map[netip.AddrPort]bool)
	for _, p := range t.in.Pods {
		if p.Namespace != svc.Namespace || !selects(svc.Spec.Selector, p.Labels) {
			continue
		}
		if !p.Ready && !svc.Spec.PublishNotReadyAddresses {
			continue
		}
		if !p.IP.IsValid() {
			continue // no IP yet
		}
		ip := p.IP.Unmap()
		if !ip.Is4() {
			continue // the pod's IPv6 address belongs to an IPv6 service family
		}
		port, ok := podTargetPort(sp, p)
		if !ok {
			t.diag(svc, "port %q: pod %s/%s has no container port named %q", sp.Name, p.Namespace, p.Name, sp.TargetPort.StrVal)
			continue
		}
		ap := netip.AddrPortFrom(ip, port)
		if seen[ap] {
			continue
		}
		seen[ap] = true
		out = append(out, endpoint{
			addr:    ap,
			ready:   true,
			serving: true,
			local:   p.NodeName == t.in.NodeName && t.in.NodeName != "",
			pod:     p.Namespace + "/" + p.Name,
		})
	}
	return out
}

func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// podTargetPort resolves sp.targetPort for pod p: a number, a container port
// name, or (unset) the service port itself.
func podTargetPort(sp corev1.ServicePort, p Pod) (uint16, bool) {
	tp := sp.TargetPort
	switch {
	case tp.Type == intstr.String && tp.StrVal != "":
		n, ok := p.Ports[tp.StrVal]
		if !ok || n <= 0 || n > 65535 {
			return 0, false
		}
		return uint16(n), true
	case tp.Type == intstr.Int && tp.IntVal > 0 && tp.IntVal <= 65535:
		return uint16(tp.IntVal), true
	}
	return uint16(sp.Port), true
}

// chooseBackends applies kube-proxy's endpoint choice: ready endpoints, or
// if there is none, the serving and terminating ones. The cluster set uses
// all endpoints, the local set (for traffic policy Local) only node-local
// ones, with the fallback decided among local endpoints alone.
func chooseBackends(eps []endpoint) (cluster, local []lb.Backend) {
	return choose(eps, func(endpoint) bool { return true }),
		choose(eps, func(e endpoint) bool { return e.local })
}

func choose(eps []endpoint, keep func(endpoint) bool) []lb.Backend {
	var out []lb.Backend
	for _, e := range eps {
		if keep(e) && e.ready {
			out = append(out, backend(e, lb.Active))
		}
	}
	if len(out) == 0 {
		for _, e := range eps {
			if keep(e) && e.serving && e.terminating {
				out = append(out, backend(e, lb.Terminating))
			}
		}
	}
	slices.SortFunc(out, func(a, b lb.Backend) int { return a.Addr.Compare(b.Addr) })
	return out
}

func backend(e endpoint, st lb.BackendState) lb.Backend {
	return lb.Backend{Addr: e.addr, State: st, Local: e.local, Pod: e.pod}
}
