package translate

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluicenet/sluice/agent/lb"
)

func TestTranslate(t *testing.T) {
	web := func(mut func(*corev1.Service)) *corev1.Service {
		s := svc("web", tcpPort("http", 80, intstr.FromInt32(8080)))
		if mut != nil {
			mut(s)
		}
		return s
	}
	webSlice := func(eps ...ep) *discoveryv1.EndpointSlice {
		return slice("web", "web-1", slicePorts("http", 8080), eps...)
	}
	nodePort := func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = 30080
	}
	eTPLocal := func(s *corev1.Service) {
		nodePort(s)
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	clusterIP := fe("10.96.0.10", 80)
	nodePortFE := fe("0.0.0.0", 30080)

	tests := []struct {
		name     string
		in       Input
		want     []lb.Service
		wantDiag []string // substrings, one per expected diagnostic
	}{
		{
			name: "numeric target port, ready endpoints sorted, local flag",
			in: Input{
				NodeName: thisNode,
				Services: []*corev1.Service{web(nil)},
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
				Services: []*corev1.Service{web(nil)},
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
				Services: []*corev1.Service{web(nil)},
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
				Services: []*corev1.Service{web(nil)},
				EndpointSlices: []*discoveryv1.EndpointSlice{webSlice(
					ep{addr: "10.0.1.8", ready: ptr(false), serving: ptr(false)},
				)},
			},
			want: []lb.Service{{Name: name("web", "http"), Kind: lb.ClusterIP, Frontend: clusterIP}},
		},
		{
			name: "externalTrafficPolicy Local with a local endpoint",
			in: Input{
				NodeName:       thisNode,
				Services:       []*corev1.Service{web(eTPLocal)},
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
				Services:       []*corev1.Service{web(eTPLocal)},
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
				Services:       []*corev1.Service{web(eTPLocal)},
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
					web(func(s *corev1.Service) {
						nodePort(s)
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
			name: "sessionAffinity ClientIP: default and explicit timeouts",
			in: Input{
				Services: []*corev1.Service{
					web(func(s *corev1.Service) { s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP }),
					func() *corev1.Service {
						s := svc("sticky", tcpPort("", 81, intstr.IntOrString{}))
						s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.30", []string{"10.96.0.30"}
						s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
						s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{
							ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr(int32(60))},
						}
						return s
					}(),
					func() *corev1.Service { // config without ClientIP affinity: no affinity
						s := svc("loose", tcpPort("", 82, intstr.IntOrString{}))
						s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.40", []string{"10.96.0.40"}
						s.Spec.SessionAffinity = corev1.ServiceAffinityNone
						s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{
							ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr(int32(60))},
						}
						return s
					}(),
				},
			},
			want: []lb.Service{
				{Name: name("loose", ""), Kind: lb.ClusterIP, Frontend: fe("10.96.0.40", 82), Affinity: noAffinity},
				{Name: name("sticky", ""), Kind: lb.ClusterIP, Frontend: fe("10.96.0.30", 81), Affinity: time.Minute},
				{Name: name("web", "http"), Kind: lb.ClusterIP, Frontend: clusterIP, Affinity: 3 * time.Hour},
			},
		},
		{
			name: "headless and ExternalName services are skipped with a reason",
			in: Input{
				Services: []*corev1.Service{
					web(func(s *corev1.Service) {
						s.Spec.ClusterIP, s.Spec.ClusterIPs = corev1.ClusterIPNone, []string{corev1.ClusterIPNone}
					}),
					func() *corev1.Service {
						s := svc("ext", tcpPort("", 80, intstr.IntOrString{}))
						s.Spec.Type, s.Spec.ClusterIP, s.Spec.ClusterIPs = corev1.ServiceTypeExternalName, "", nil
						s.Spec.ExternalName = "example.com"
						return s
					}(),
				},
				EndpointSlices: []*discoveryv1.EndpointSlice{webSlice(ep{addr: "10.0.1.5"})},
			},
			wantDiag: []string{"default/ext: type ExternalName", "default/web: headless"},
		},
		{
			name: "LoadBalancer: node port, external IPs and VIP-mode ingress IPs",
			in: Input{
				NodeName: thisNode,
				Services: []*corev1.Service{web(func(s *corev1.Service) {
					s.Spec.Type = corev1.ServiceTypeLoadBalancer
					s.Spec.Ports[0].NodePort = 30080
					s.Spec.ExternalIPs = []string{"192.0.2.10", "2001:db8::10"}
					s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{
						{IP: "198.51.100.7"},
						{Hostname: "lb.example.com"},
						{IP: "198.51.100.8", IPMode: ptr(corev1.LoadBalancerIPModeProxy)},
						{IP: "198.51.100.9", IPMode: ptr(corev1.LoadBalancerIPModeVIP)},
					}
				})},
				EndpointSlices: []*discoveryv1.EndpointSlice{webSlice(ep{addr: "10.0.1.5", node: thisNode})},
			},
			want: func() []lb.Service {
				bes := []lb.Backend{be("10.0.1.5:8080", true)}
				return []lb.Service{
					{Name: name("web", "http"), Kind: lb.ClusterIP, Frontend: clusterIP, Backends: bes},
					{Name: name("web", "http"), Kind: lb.NodePort, Frontend: nodePortFE, Backends: bes},
					{Name: name("web", "http"), Kind: lb.ExternalIP, Frontend: fe("192.0.2.10", 80), Backends: bes},
					{Name: name("web", "http"), Kind: lb.LoadBalancer, Frontend: fe("198.51.100.7", 80), Backends: bes},
					{Name: name("web", "http"), Kind: lb.LoadBalancer, Frontend: fe("198.51.100.9", 80), Backends: bes},
				}
			}(),
			wantDiag: []string{"external IP 2001:db8::10: IPv6 is not supported", "198.51.100.8 has ipMode Proxy"},
		},
		{
			name: "externalTrafficPolicy Local applies to external IPs and LB IPs",
			in: Input{
				NodeName: thisNode,
				Services: []*corev1.Service{web(func(s *corev1.Service) {
					s.Spec.Type = corev1.ServiceTypeLoadBalancer
					s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
					s.Spec.AllocateLoadBalancerNodePorts = ptr(false) // no nodePort
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
		{
			name: "duplicate endpoints across slices of one service are merged, local copy wins",
			in: Input{
				NodeName: thisNode,
				Services: []*corev1.Service{web(nil)},
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
			name: "SCTP ports and IPv6 families are skipped with a reason",
			in: Input{
				Services: []*corev1.Service{
					web(func(s *corev1.Service) {
						s.Spec.ClusterIPs = []string{"10.96.0.10", "fd00::10"}
						s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "sctp", Protocol: corev1.ProtocolSCTP, Port: 9})
					}),
					func() *corev1.Service {
						s := svc("v6", tcpPort("", 80, intstr.IntOrString{}))
						s.Spec.ClusterIP, s.Spec.ClusterIPs = "fd00::20", []string{"fd00::20"}
						return s
					}(),
				},
				EndpointSlices: []*discoveryv1.EndpointSlice{
					webSlice(ep{addr: "10.0.1.5"}),
					func() *discoveryv1.EndpointSlice {
						s := slice("web", "web-v6", slicePorts("http", 8080), ep{addr: "fd00:1::5"})
						s.AddressType = discoveryv1.AddressTypeIPv6
						return s
					}(),
				},
			},
			want: []lb.Service{{
				Name: name("web", "http"), Kind: lb.ClusterIP, Frontend: clusterIP,
				Backends: []lb.Backend{be("10.0.1.5:8080", false)},
			}},
			wantDiag: []string{
				"default/v6: cluster IP fd00::20: IPv6 is not supported",
				"default/v6: no IPv4 cluster IP",
				"default/web: EndpointSlice web-v6: address type IPv6 is not supported",
				"default/web: cluster IP fd00::10: IPv6 is not supported",
				`default/web: port "sctp": protocol SCTP is not supported`,
			},
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
					web(func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "web"} }),
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
		{
			name: "two services claiming one frontend: the first by name keeps it",
			in: Input{
				Services: []*corev1.Service{
					web(func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"192.0.2.10"} }),
					func() *corev1.Service {
						s := svc("api", tcpPort("https", 80, intstr.IntOrString{}))
						s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.20", []string{"10.96.0.20"}
						s.Spec.ExternalIPs = []string{"192.0.2.10"}
						return s
					}(),
				},
			},
			want: []lb.Service{
				{Name: name("api", "https"), Kind: lb.ClusterIP, Frontend: fe("10.96.0.20", 80)},
				{Name: name("api", "https"), Kind: lb.ExternalIP, Frontend: fe("192.0.2.10", 80)},
				{Name: name("web", "http"), Kind: lb.ClusterIP, Frontend: clusterIP},
			},
			wantDiag: []string{`default/web: ExternalIP frontend 192.0.2.10:80/TCP of port "http" already used by default/api:https`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, diags := TranslateWithDiagnostics(tc.in)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.want, Translate(tc.in))
			var ds []string
			for _, d := range diags {
				ds = append(ds, d.String())
			}
			require.Len(t, ds, len(tc.wantDiag), "diagnostics: %q", ds)
			for i, want := range tc.wantDiag {
				require.Contains(t, ds[i], want)
			}
		})
	}
}
