package translate

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluicenet/sluice/agent/lb"
)

// Fixtures shared by the translation table tests: the "web" Service
// (ClusterIP 10.96.0.10, port http 80 -> 8080) and its EndpointSlice.
var (
	clusterIP  = fe("10.96.0.10", 80)
	nodePortFE = fe("0.0.0.0", 30080)
)

func webSvc(mut func(*corev1.Service)) *corev1.Service {
	s := svc("web", tcpPort("http", 80, intstr.FromInt32(8080)))
	if mut != nil {
		mut(s)
	}
	return s
}

func webSlice(eps ...ep) *discoveryv1.EndpointSlice {
	return slice("web", "web-1", slicePorts("http", 8080), eps...)
}

func asNodePort(s *corev1.Service) {
	s.Spec.Type = corev1.ServiceTypeNodePort
	s.Spec.Ports[0].NodePort = 30080
}

func eTPLocal(s *corev1.Service) {
	asNodePort(s)
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
}

// translateCase is one row of the translation table tests.
type translateCase struct {
	name     string
	in       Input
	want     []lb.Service
	wantDiag []string // substrings, one per expected diagnostic
}

// runTranslateCases checks Translate and TranslateWithDiagnostics on every
// case: the services and, in order, the diagnostics.
func runTranslateCases(t *testing.T, tests []translateCase) {
	t.Helper()
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

// TestTranslateDeterministic shuffles the input order: the output must not change.
func TestTranslateDeterministic(t *testing.T) {
	var in Input
	in.NodeName = thisNode
	for i, n := range []string{"a", "b", "c", "d"} {
		s := svc(n, tcpPort("http", 80, intstr.FromString("web")), corev1.ServicePort{Name: "udp", Protocol: corev1.ProtocolUDP, Port: 53})
		ip := netip.AddrFrom4([4]byte{10, 96, 1, byte(i)}).String()
		s.Spec.ClusterIP, s.Spec.ClusterIPs = ip, []string{ip}
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = int32(30000 + i)
		in.Services = append(in.Services, s)
		for j := range 3 {
			in.EndpointSlices = append(in.EndpointSlices, slice(n, n+strings.Repeat("x", j), slicePorts("http", 8080+j, "udp", 53),
				ep{addr: netip.AddrFrom4([4]byte{10, 0, byte(i), byte(j)}).String(), node: thisNode},
				ep{addr: netip.AddrFrom4([4]byte{10, 0, byte(i), 9}).String(), node: "node-b"},
			))
		}
	}
	want, wantDiags := TranslateWithDiagnostics(in)
	require.Len(t, want, 4*3) // per service: http ClusterIP, http NodePort, udp ClusterIP
	require.Empty(t, wantDiags)
	require.True(t, slices.IsSortedFunc(want, compareServices))
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		r.Shuffle(len(in.Services), func(i, j int) { in.Services[i], in.Services[j] = in.Services[j], in.Services[i] })
		r.Shuffle(len(in.EndpointSlices), func(i, j int) {
			in.EndpointSlices[i], in.EndpointSlices[j] = in.EndpointSlices[j], in.EndpointSlices[i]
		})
		got, diags := TranslateWithDiagnostics(in)
		require.Equal(t, want, got)
		require.Empty(t, diags)
	}
}
