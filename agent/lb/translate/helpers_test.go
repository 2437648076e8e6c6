package translate

import (
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluicenet/sluice/agent/lb"
)

const thisNode = "node-a"

func ptr[T any](v T) *T { return &v }

// svc builds a ClusterIP service ns/name at 10.96.0.10 with the given ports.
func svc(name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeClusterIP,
			ClusterIP:  "10.96.0.10",
			ClusterIPs: []string{"10.96.0.10"},
			Ports:      ports,
		},
	}
}

func tcpPort(name string, port int32, target intstr.IntOrString) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: corev1.ProtocolTCP, Port: port, TargetPort: target}
}

// ep is an EndpointSlice endpoint: addr on node with optional conditions.
type ep struct {
	addr                        string
	node                        string
	ready, serving, terminating *bool
	pod                         string
}

func slice(svcName, name string, ports []discoveryv1.EndpointPort, eps ...ep) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "default", Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: svcName},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       ports,
	}
	for _, e := range eps {
		de := discoveryv1.Endpoint{
			Addresses: []string{e.addr},
			Conditions: discoveryv1.EndpointConditions{
				Ready: e.ready, Serving: e.serving, Terminating: e.terminating,
			},
		}
		if e.node != "" {
			de.NodeName = ptr(e.node)
		}
		if e.pod != "" {
			de.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: e.pod}
		}
		s.Endpoints = append(s.Endpoints, de)
	}
	return s
}

func slicePorts(namePort ...any) []discoveryv1.EndpointPort {
	var out []discoveryv1.EndpointPort
	for i := 0; i < len(namePort); i += 2 {
		out = append(out, discoveryv1.EndpointPort{
			Name:     ptr(namePort[i].(string)),
			Port:     ptr(int32(namePort[i+1].(int))),
			Protocol: ptr(corev1.ProtocolTCP),
		})
	}
	return out
}

// terminatingEP is a serving, terminating, not ready endpoint.
func terminatingEP(addr, node string) ep {
	return ep{addr: addr, node: node, ready: ptr(false), serving: ptr(true), terminating: ptr(true)}
}

func be(addr string, local bool) lb.Backend {
	return lb.Backend{Addr: netip.MustParseAddrPort(addr), Local: local}
}

func beTerm(addr string, local bool) lb.Backend {
	b := be(addr, local)
	b.State = lb.Terminating
	return b
}

func fe(addr string, port uint16) lb.Frontend {
	return lb.Frontend{Addr: netip.MustParseAddr(addr), Port: port, Proto: lb.TCP}
}

func name(svcName, port string) lb.ServiceName {
	return lb.ServiceName{Namespace: "default", Name: svcName, Port: port}
}

var noAffinity time.Duration
