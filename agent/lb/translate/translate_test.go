package translate

import (
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
