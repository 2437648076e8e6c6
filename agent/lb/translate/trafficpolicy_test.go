package translate

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluicenet/sluice/agent/lb"
)

// TestTranslateTrafficPolicy: externalTrafficPolicy and internalTrafficPolicy Local: which frontends are local-only and which backends they keep.
func TestTranslateTrafficPolicy(t *testing.T) {
	runTranslateCases(t, []translateCase{
		{
			name: "externalTrafficPolicy Local with a local endpoint",
			in: Input{
				NodeName:       thisNode,
				Services:       []*corev1.Service{webSvc(eTPLocal)},
				EndpointSlices: []*discoveryv1.EndpointSlice{webSlice(ep{addr: "10.0.1.5", node: thisNode}, ep{addr: "10.0.2.5", node: "node-b"})},
			},
			want: []lb.Service{
				{
					Name: name("web", "http"), Kind: lb.ClusterIP, Frontend: clusterIP,
					Backends: []lb.Backend{be("10.0.1.5:8080", true), be("10.0.2.5:8080", false)},
				},
				{
					Name: name("web", "http"), Kind: lb.NodePort, Frontend: nodePortFE, LocalOnly: true,
					Backends: []lb.Backend{be("10.0.1.5:8080", true)},
				},
			},
		},
		{
			name: "externalTrafficPolicy Local without a local endpoint",
			in: Input{
				NodeName:       thisNode,
				Services:       []*corev1.Service{webSvc(eTPLocal)},
				EndpointSlices: []*discoveryv1.EndpointSlice{webSlice(ep{addr: "10.0.2.5", node: "node-b"})},
			},
			want: []lb.Service{
				{
					Name: name("web", "http"), Kind: lb.ClusterIP, Frontend: clusterIP,
					Backends: []lb.Backend{be("10.0.2.5:8080", false)},
				},
				{Name: name("web", "http"), Kind: lb.NodePort, Frontend: nodePortFE, LocalOnly: true},
			},
		},
		{
			name: "externalTrafficPolicy Local falls back to a local terminating endpoint even with remote ready ones",
			in: Input{
				NodeName:       thisNode,
				Services:       []*corev1.Service{webSvc(eTPLocal)},
				EndpointSlices: []*discoveryv1.EndpointSlice{webSlice(terminatingEP("10.0.1.5", thisNode), ep{addr: "10.0.2.5", node: "node-b"})},
			},
			want: []lb.Service{
				{
					Name: name("web", "http"), Kind: lb.ClusterIP, Frontend: clusterIP,
					Backends: []lb.Backend{be("10.0.2.5:8080", false)},
				},
				{
					Name: name("web", "http"), Kind: lb.NodePort, Frontend: nodePortFE, LocalOnly: true,
					Backends: []lb.Backend{beTerm("10.0.1.5:8080", true)},
				},
			},
		},
		{
			name: "internalTrafficPolicy Local with and without local endpoints; external frontends stay Cluster",
			in: Input{
				NodeName: thisNode,
				Services: []*corev1.Service{
					webSvc(func(s *corev1.Service) {
						asNodePort(s)
						s.Spec.InternalTrafficPolicy = ptr(corev1.ServiceInternalTrafficPolicyLocal)
					}),
					func() *corev1.Service {
						s := svc("api", tcpPort("", 443, intstr.FromInt32(6443)))
						s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.20", nil
						s.Spec.InternalTrafficPolicy = ptr(corev1.ServiceInternalTrafficPolicyLocal)
						return s
					}(),
				},
				EndpointSlices: []*discoveryv1.EndpointSlice{
					webSlice(ep{addr: "10.0.1.5", node: thisNode}, ep{addr: "10.0.2.5", node: "node-b"}),
					slice("api", "api-1", slicePorts("", 6443), ep{addr: "10.0.2.6", node: "node-b"}),
				},
			},
			want: []lb.Service{
				{Name: name("api", ""), Kind: lb.ClusterIP, Frontend: fe("10.96.0.20", 443), LocalOnly: true},
				{
					Name: name("web", "http"), Kind: lb.ClusterIP, Frontend: clusterIP, LocalOnly: true,
					Backends: []lb.Backend{be("10.0.1.5:8080", true)},
				},
				{
					Name: name("web", "http"), Kind: lb.NodePort, Frontend: nodePortFE,
					Backends: []lb.Backend{be("10.0.1.5:8080", true), be("10.0.2.5:8080", false)},
				},
			},
		},
		{
			name: "externalTrafficPolicy Local applies to external IPs and LB IPs",
			in: Input{
				NodeName: thisNode,
				Services: []*corev1.Service{webSvc(func(s *corev1.Service) {
					s.Spec.Type = corev1.ServiceTypeLoadBalancer
					s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
					s.Spec.AllocateLoadBalancerNodePorts = ptr(false) // no asNodePort
					s.Spec.ExternalIPs = []string{"192.0.2.10"}
					s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.7"}}
				})},
				EndpointSlices: []*discoveryv1.EndpointSlice{webSlice(ep{addr: "10.0.2.5", node: "node-b"})},
			},
			want: []lb.Service{
				{Name: name("web", "http"), Kind: lb.ClusterIP, Frontend: clusterIP, Backends: []lb.Backend{be("10.0.2.5:8080", false)}},
				{Name: name("web", "http"), Kind: lb.ExternalIP, Frontend: fe("192.0.2.10", 80), LocalOnly: true},
				{Name: name("web", "http"), Kind: lb.LoadBalancer, Frontend: fe("198.51.100.7", 80), LocalOnly: true},
			},
		},
	})
}
