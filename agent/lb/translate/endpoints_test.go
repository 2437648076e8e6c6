package translate

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluicenet/sluice/agent/lb"
)

// TestTranslateEndpoints: Backends from EndpointSlices and, without slices, from pods: ports, readiness, terminating fallback, merging.
func TestTranslateEndpoints(t *testing.T) {
	runTranslateCases(t, []translateCase{
		{
			name: "numeric target port, ready endpoints sorted, local flag",
			in: Input{
				NodeName: thisNode,
				Services: []*corev1.Service{webSvc(nil)},
				EndpointSlices: []*discoveryv1.EndpointSlice{webSlice(
					ep{addr: "10.0.2.7", node: "node-b"},
					ep{addr: "10.0.1.5", node: thisNode, ready: ptr(true), pod: "web-a"},
				)},
			},
			want: []lb.Service{{
				Name: name("web", "http"), Kind: lb.ClusterIP, Frontend: clusterIP,
				Backends: []lb.Backend{
					{Addr: netip.MustParseAddrPort("10.0.1.5:8080"), Local: true, Pod: "default/web-a"},
					be("10.0.2.7:8080", false),
				},
			}},
		},
		{
			name: "named target port resolved per endpoint from slice ports",
			in: Input{
				Services: []*corev1.Service{svc("web", tcpPort("http", 80, intstr.FromString("web")))},
				EndpointSlices: []*discoveryv1.EndpointSlice{
					slice("web", "web-1", slicePorts("http", 8080), ep{addr: "10.0.1.5"}),
					slice("web", "web-2", slicePorts("http", 9090), ep{addr: "10.0.1.6"}),
				},
			},
			want: []lb.Service{{
				Name: name("web", "http"), Kind: lb.ClusterIP, Frontend: clusterIP,
				Backends: []lb.Backend{be("10.0.1.5:8080", false), be("10.0.1.6:9090", false)},
			}},
		},
		{
			name: "multi-port TCP and UDP service, slice ports matched by name and protocol",
			in: Input{
				Services: []*corev1.Service{svc("dns",
					tcpPort("dns-tcp", 53, intstr.FromInt32(5353)),
					corev1.ServicePort{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(5353)},
				)},
				EndpointSlices: []*discoveryv1.EndpointSlice{slice("dns", "dns-1", []discoveryv1.EndpointPort{
					{Name: ptr("dns-tcp"), Port: ptr(int32(5353)), Protocol: ptr(corev1.ProtocolTCP)},
					{Name: ptr("dns"), Port: ptr(int32(5354)), Protocol: ptr(corev1.ProtocolUDP)},
					// Same name, wrong protocol: must not be used for the UDP port.
					{Name: ptr("dns"), Port: ptr(int32(1)), Protocol: ptr(corev1.ProtocolSCTP)},
				}, ep{addr: "10.0.1.9"})},
			},
			want: []lb.Service{
				{
					Name: name("dns", "dns"), Kind: lb.ClusterIP,
					Frontend: lb.Frontend{Addr: netip.MustParseAddr("10.96.0.10"), Port: 53, Proto: lb.UDP},
					Backends: []lb.Backend{be("10.0.1.9:5354", false)},
				},
				{
					Name: name("dns", "dns-tcp"), Kind: lb.ClusterIP, Frontend: fe("10.96.0.10", 53),
					Backends: []lb.Backend{be("10.0.1.9:5353", false)},
				},
			},
		},
		{
			name: "terminating endpoints ignored while any endpoint is ready",
			in: Input{
				Services: []*corev1.Service{webSvc(nil)},
				EndpointSlices: []*discoveryv1.EndpointSlice{webSlice(
					ep{addr: "10.0.1.5"}, terminatingEP("10.0.1.6", ""),
				)},
			},
			want: []lb.Service{{
				Name: name("web", "http"), Kind: lb.ClusterIP, Frontend: clusterIP,
				Backends: []lb.Backend{be("10.0.1.5:8080", false)},
			}},
		},
		{
			name: "serving-terminating fallback when no endpoint is ready",
			in: Input{
				Services: []*corev1.Service{webSvc(nil)},
				EndpointSlices: []*discoveryv1.EndpointSlice{webSlice(
					terminatingEP("10.0.1.6", ""),
					// terminating, not serving: never used
					ep{addr: "10.0.1.7", ready: ptr(false), serving: ptr(false), terminating: ptr(true)},
					// not ready, not terminating (starting up): never used
					ep{addr: "10.0.1.8", ready: ptr(false), serving: ptr(false)},
					// serving nil means serving
					ep{addr: "10.0.1.9", ready: ptr(false), terminating: ptr(true)},
				)},
			},
			want: []lb.Service{{
				Name: name("web", "http"), Kind: lb.ClusterIP, Frontend: clusterIP,
				Backends: []lb.Backend{beTerm("10.0.1.6:8080", false), beTerm("10.0.1.9:8080", false)},
			}},
		},
		{
			name: "no usable endpoint: the service is still programmed, without backends",
			in: Input{
				Services: []*corev1.Service{webSvc(nil)},
				EndpointSlices: []*discoveryv1.EndpointSlice{webSlice(
					ep{addr: "10.0.1.8", ready: ptr(false), serving: ptr(false)},
				)},
			},
			want: []lb.Service{{Name: name("web", "http"), Kind: lb.ClusterIP, Frontend: clusterIP}},
		},
		{
			name: "duplicate endpoints across slices of one service are merged, local copy wins",
			in: Input{
				NodeName: thisNode,
				Services: []*corev1.Service{webSvc(nil)},
				EndpointSlices: []*discoveryv1.EndpointSlice{
					slice("web", "web-a", slicePorts("http", 8080), ep{addr: "10.0.1.5"}, ep{addr: "10.0.1.6"}),
					slice("web", "web-b", slicePorts("http", 8080), ep{addr: "10.0.1.5", node: thisNode}, ep{addr: "10.0.1.6"}),
					// A slice of another service with the same address is not merged in.
					slice("other", "other-a", slicePorts("http", 8080), ep{addr: "10.0.1.7"}),
				},
			},
			want: []lb.Service{{
				Name: name("web", "http"), Kind: lb.ClusterIP, Frontend: clusterIP,
				Backends: []lb.Backend{be("10.0.1.5:8080", true), be("10.0.1.6:8080", false)},
			}},
		},
		{
			name: "selector service without EndpointSlices: endpoints from ready matching pods",
			in: Input{
				NodeName: thisNode,
				Services: []*corev1.Service{func() *corev1.Service {
					s := svc("web", tcpPort("http", 80, intstr.FromString("web")), tcpPort("metrics", 9100, intstr.FromInt32(9100)))
					s.Spec.Selector = map[string]string{"app": "web"}
					return s
				}()},
				Pods: []Pod{
					{Namespace: "default", Name: "w1", IP: netip.MustParseAddr("10.0.1.5"), NodeName: thisNode, Ready: true,
						Labels: map[string]string{"app": "web", "tier": "fe"}, Ports: map[string]int32{"web": 8080}},
					{Namespace: "default", Name: "w2", IP: netip.MustParseAddr("10.0.2.5"), NodeName: "node-b", Ready: true,
						Labels: map[string]string{"app": "web"}, Ports: map[string]int32{"web": 8081}},
					{Namespace: "default", Name: "unready", IP: netip.MustParseAddr("10.0.1.6"), Ready: false,
						Labels: map[string]string{"app": "web"}, Ports: map[string]int32{"web": 8080}},
					{Namespace: "other", Name: "elsewhere", IP: netip.MustParseAddr("10.0.1.7"), Ready: true,
						Labels: map[string]string{"app": "web"}, Ports: map[string]int32{"web": 8080}},
					{Namespace: "default", Name: "db", IP: netip.MustParseAddr("10.0.1.8"), Ready: true,
						Labels: map[string]string{"app": "db"}, Ports: map[string]int32{"web": 8080}},
					{Namespace: "default", Name: "noname", IP: netip.MustParseAddr("10.0.1.9"), Ready: true,
						Labels: map[string]string{"app": "web"}},
					{Namespace: "default", Name: "noip", Ready: true, Labels: map[string]string{"app": "web"}},
				},
			},
			want: []lb.Service{
				{
					Name: name("web", "http"), Kind: lb.ClusterIP, Frontend: clusterIP,
					Backends: []lb.Backend{
						{Addr: netip.MustParseAddrPort("10.0.1.5:8080"), Local: true, Pod: "default/w1"},
						{Addr: netip.MustParseAddrPort("10.0.2.5:8081"), Pod: "default/w2"},
					},
				},
				{
					Name: name("web", "metrics"), Kind: lb.ClusterIP, Frontend: fe("10.96.0.10", 9100),
					Backends: []lb.Backend{
						{Addr: netip.MustParseAddrPort("10.0.1.5:9100"), Local: true, Pod: "default/w1"},
						{Addr: netip.MustParseAddrPort("10.0.1.9:9100"), Pod: "default/noname"},
						{Addr: netip.MustParseAddrPort("10.0.2.5:9100"), Pod: "default/w2"},
					},
				},
			},
			wantDiag: []string{`port "http": pod default/noname has no container port named "web"`},
		},
		{
			name: "selector service with EndpointSlices ignores pods; service without selector or slices has no backends",
			in: Input{
				Services: []*corev1.Service{
					webSvc(func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "web"} }),
					func() *corev1.Service {
						s := svc("manual", tcpPort("", 80, intstr.IntOrString{}))
						s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.50", []string{"10.96.0.50"}
						return s
					}(),
				},
				EndpointSlices: []*discoveryv1.EndpointSlice{webSlice(ep{addr: "10.0.1.5"})},
				Pods: []Pod{{Namespace: "default", Name: "w9", IP: netip.MustParseAddr("10.0.1.99"), Ready: true,
					Labels: map[string]string{"app": "web"}}},
			},
			want: []lb.Service{
				{Name: name("manual", ""), Kind: lb.ClusterIP, Frontend: fe("10.96.0.50", 80)},
				{
					Name: name("web", "http"), Kind: lb.ClusterIP, Frontend: clusterIP,
					Backends: []lb.Backend{be("10.0.1.5:8080", false)},
				},
			},
		},
	})
}
