package translate

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/sluicenet/sluice/agent/lb"
)

// DefaultAffinityTimeout is the ClientIP session affinity timeout used when
// the Service does not set one (Kubernetes' default, 3 hours).
const DefaultAffinityTimeout = 10800 * time.Second

// Input is the state the translation works on.
type Input struct {
	Services       []*corev1.Service
	EndpointSlices []*discoveryv1.EndpointSlice
	// Pods are used only for selector services that have no EndpointSlice
	// (standalone mode without an EndpointSlice controller).
	Pods []Pod
	// NodeName is this node's name: endpoints whose nodeName equals it are local.
	NodeName string
	// ServiceProxyName is this agent's service proxy name. Empty: only
	// Services without the service-proxy-name label are translated; set:
	// only those whose label equals it (see LabelServiceProxyName).
	ServiceProxyName string
	// LB are the node's load-balancing defaults, which the Services'
	// lb-mode and lb-algorithm annotations override (annotations.go).
	LB LBDefaults
}

// Pod is what the translation needs to know about a pod.
type Pod struct {
	Namespace, Name string
	IP              netip.Addr
	Labels          map[string]string
	NodeName        string
	Ready           bool
	// Ports maps container port names to port numbers, to resolve named
	// target ports.
	Ports map[string]int32
}

// Diagnostic is something the translation skipped, and why.
type Diagnostic struct {
	Service string // namespace/name
	Reason  string
	// NotOurs marks a Service left to another service proxy on purpose
	// (service-proxy-name or headless label): expected, not a problem.
	NotOurs bool
	// Warning marks a Service that is programmed, but not entirely as
	// asked: an annotation not honoured (its lb.Service.Warnings).
	Warning bool
}

func (d Diagnostic) String() string { return d.Service + ": " + d.Reason }

// Translate returns the load-balancing services for in, sorted by name,
// kind and frontend. Use TranslateWithDiagnostics to learn what was skipped.
func Translate(in Input) []lb.Service {
	out, _ := TranslateWithDiagnostics(in)
	return out
}

// TranslateWithDiagnostics is Translate that also reports what it skipped,
// sorted by service and reason.
func TranslateWithDiagnostics(in Input) ([]lb.Service, []Diagnostic) {
	t := translator{in: in, slices: slicesByService(in.EndpointSlices)}
	for _, svc := range sortedServices(in.Services) {
		t.service(svc)
	}
	out := t.dedupeFrontends()
	slices.SortStableFunc(t.diags, compareDiagnostics)
	return out, slices.Compact(t.diags)
}

func compareDiagnostics(a, b Diagnostic) int {
	return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Reason, b.Reason))
}

type translator struct {
	in     Input
	slices map[nsName][]*discoveryv1.EndpointSlice
	out    []lb.Service
	diags  []Diagnostic
}

type nsName struct{ namespace, name string }

func (n nsName) String() string { return n.namespace + "/" + n.name }

func (t *translator) diag(svc *corev1.Service, format string, args ...any) {
	t.diags = append(t.diags, Diagnostic{
		Service: nsName{svc.Namespace, svc.Name}.String(),
		Reason:  fmt.Sprintf(format, args...),
	})
}

func sortedServices(in []*corev1.Service) []*corev1.Service {
	out := make([]*corev1.Service, 0, len(in))
	for _, s := range in {
		if s != nil {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b *corev1.Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// service translates one Service into t.out.
func (t *translator) service(svc *corev1.Service) {
	if reason := notOurs(svc, t.in.ServiceProxyName); reason != "" {
		t.diags = append(t.diags, Diagnostic{Service: nsName{svc.Namespace, svc.Name}.String(), Reason: reason, NotOurs: true})
		return
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		t.diag(svc, "type ExternalName is resolved by DNS, not load-balanced")
		return
	}
	if svc.Spec.ClusterIP == corev1.ClusterIPNone || (svc.Spec.ClusterIP == "" && len(svc.Spec.ClusterIPs) == 0) {
		t.diag(svc, "headless service (no cluster IP) is not load-balanced")
		return
	}
	fes := t.frontends(svc)
	if len(fes) == 0 {
		return
	}
	affinity := affinityTimeout(svc)
	slb := resolveServiceLB(svc, t.in.LB)
	for _, w := range slb.warnings {
		t.diags = append(t.diags, Diagnostic{Service: nsName{svc.Namespace, svc.Name}.String(), Reason: w, Warning: true})
	}
	externalLocal := svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	internalLocal := svc.Spec.InternalTrafficPolicy != nil &&
		*svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal

	for _, sp := range svc.Spec.Ports {
		proto, ok := protocol(sp.Protocol)
		if !ok {
			t.diag(svc, "port %q: protocol %s is not supported", sp.Name, sp.Protocol)
			continue
		}
		if sp.Port <= 0 || sp.Port > 65535 {
			t.diag(svc, "port %q: invalid port %d", sp.Name, sp.Port)
			continue
		}
		eps := t.endpoints(svc, sp, proto)
		cluster, local := chooseBackends(eps)
		name := lb.ServiceName{Namespace: svc.Namespace, Name: svc.Name, Port: sp.Name}
		for _, fe := range fes {
			s := lb.Service{Name: name, Kind: fe.kind, Affinity: affinity, Algorithm: slb.algorithm, Warnings: slb.warnings}
			if fe.kind.External() {
				s.Mode = slb.mode
			}
			switch fe.kind {
			case lb.NodePort:
				if sp.NodePort <= 0 || sp.NodePort > 65535 {
					continue // no node port allocated for this port
				}
				s.Frontend = lb.Frontend{Addr: fe.addr, Port: uint16(sp.NodePort), Proto: proto}
			default:
				s.Frontend = lb.Frontend{Addr: fe.addr, Port: uint16(sp.Port), Proto: proto}
			}
			s.LocalOnly = (fe.kind.External() && externalLocal) || (fe.kind == lb.ClusterIP && internalLocal)
			if s.LocalOnly {
				s.Backends = slices.Clone(local)
			} else {
				s.Backends = slices.Clone(cluster)
			}
			t.out = append(t.out, s)
		}
	}
}

func protocol(p corev1.Protocol) (lb.Proto, bool) {
	switch p {
	case corev1.ProtocolTCP, "":
		return lb.TCP, true
	case corev1.ProtocolUDP:
		return lb.UDP, true
	}
	return 0, false
}

func affinityTimeout(svc *corev1.Service) time.Duration {
	if svc.Spec.SessionAffinity != corev1.ServiceAffinityClientIP {
		return 0
	}
	if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil &&
		c.ClientIP.TimeoutSeconds != nil && *c.ClientIP.TimeoutSeconds > 0 {
		return time.Duration(*c.ClientIP.TimeoutSeconds) * time.Second
	}
	return DefaultAffinityTimeout
}

// dedupeFrontends sorts t.out and drops every service whose frontend an
// earlier one (in service name order) already uses: the BPF service map has
// one entry per frontend.
func (t *translator) dedupeFrontends() []lb.Service {
	slices.SortStableFunc(t.out, CompareServices)
	owner := make(map[lb.Frontend]lb.ServiceName, len(t.out))
	out := t.out[:0]
	for _, s := range t.out {
		if prev, ok := owner[s.Frontend]; ok {
			t.diags = append(t.diags, duplicate(s, prev))
			continue
		}
		owner[s.Frontend] = s.Name
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// CompareServices orders load-balancing services the way Translate returns
// them: by name, kind and frontend.
func CompareServices(a, b lb.Service) int { return compareServices(a, b) }

func compareServices(a, b lb.Service) int {
	return cmp.Or(
		cmp.Compare(a.Name.Namespace, b.Name.Namespace),
		cmp.Compare(a.Name.Name, b.Name.Name),
		cmp.Compare(a.Name.Port, b.Name.Port),
		cmp.Compare(a.Kind, b.Kind),
		a.Frontend.Addr.Compare(b.Frontend.Addr),
		cmp.Compare(a.Frontend.Port, b.Frontend.Port),
		cmp.Compare(a.Frontend.Proto, b.Frontend.Proto),
	)
}
