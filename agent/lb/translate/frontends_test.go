package translate

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluicenet/sluice/agent/lb"
)

// TestTranslateFrontends: Frontends by Service type, session affinity, and what is skipped (headless, ExternalName, SCTP, IPv6, a frontend already claimed).
func TestTranslateFrontends(t *testing.T) {
	runTranslateCases(t, []translateCase{
		{
			name: "sessionAffinity ClientIP: default and explicit timeouts",
			in: Input{
				Services: []*corev1.Service{
					webSvc(func(s *corev1.Service) { s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP }),
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
					webSvc(func(s *corev1.Service) {
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
				Services: []*corev1.Service{webSvc(func(s *corev1.Service) {
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
			name: "SCTP ports and IPv6 families are skipped with a reason",
			in: Input{
				Services: []*corev1.Service{
					webSvc(func(s *corev1.Service) {
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
			name: "two services claiming one frontend: the first by name keeps it",
			in: Input{
				Services: []*corev1.Service{
					webSvc(func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"192.0.2.10"} }),
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
	})
}
