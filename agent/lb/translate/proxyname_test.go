package translate

import (
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluicenet/sluice/agent/lb"
)

func TestTranslateServiceProxyName(t *testing.T) {
	labelled := func(labels map[string]string) *corev1.Service {
		s := svc("web", tcpPort("http", 80, intstr.FromInt32(8080)))
		s.Labels = labels
		return s
	}
	proxy := func(name string) map[string]string { return map[string]string{LabelServiceProxyName: name} }
	handled := []lb.Service{{
		Name: name("web", "http"), Kind: lb.ClusterIP, Frontend: fe("10.96.0.10", 80),
		Backends: []lb.Backend{be("10.0.1.5:8080", false)},
	}}

	tests := []struct {
		name      string
		svc       *corev1.Service
		proxyName string
		wantDiag  string // empty: handled
	}{
		{name: "unlabelled, no agent name: handled", svc: labelled(nil)},
		{name: "unrelated labels, no agent name: handled", svc: labelled(map[string]string{"app": "web"})},
		{
			name: "another proxy's, no agent name: skipped", svc: labelled(proxy("other")),
			wantDiag: `default/web: service-proxy-name "other" is not this agent's ("")`,
		},
		{
			name: "empty label value, no agent name: still another proxy's", svc: labelled(proxy("")),
			wantDiag: `default/web: service-proxy-name "" is set; this agent handles only unlabelled services`,
		},
		{name: "labelled sluice, agent sluice: handled", svc: labelled(proxy("sluice")), proxyName: "sluice"},
		{
			name: "unlabelled, agent sluice: skipped", svc: labelled(nil), proxyName: "sluice",
			wantDiag: `default/web: no service-proxy-name label; this agent handles only "sluice"`,
		},
		{
			name: "another proxy's, agent sluice: skipped", svc: labelled(proxy("other")), proxyName: "sluice",
			wantDiag: `default/web: service-proxy-name "other" is not this agent's ("sluice")`,
		},
		{
			name: "headless label: skipped", svc: labelled(map[string]string{corev1.IsHeadlessService: ""}),
			wantDiag: "default/web: labelled service.kubernetes.io/headless, not load-balanced",
		},
		{
			name: "headless label on our proxy's service: skipped", proxyName: "sluice",
			svc:      labelled(map[string]string{corev1.IsHeadlessService: "", LabelServiceProxyName: "sluice"}),
			wantDiag: "default/web: labelled service.kubernetes.io/headless, not load-balanced",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{
				Services:         []*corev1.Service{tc.svc},
				EndpointSlices:   []*discoveryv1.EndpointSlice{slice("web", "web-1", slicePorts("http", 8080), ep{addr: "10.0.1.5"})},
				ServiceProxyName: tc.proxyName,
			}
			got, diags := TranslateWithDiagnostics(in)
			if tc.wantDiag == "" {
				require.Equal(t, handled, got)
				require.Empty(t, diags)
				return
			}
			require.Empty(t, got, "a skipped service has no LB entries")
			require.Len(t, diags, 1)
			require.Equal(t, tc.wantDiag, diags[0].String())
			require.True(t, diags[0].NotOurs, "left to another proxy on purpose")
		})
	}
}

// A Service left to another proxy claims none of its frontends: a Service of
// ours sorted after it keeps a shared external IP.
func TestTranslateServiceProxyNameFrontends(t *testing.T) {
	other := svc("a-other", tcpPort("http", 80, intstr.IntOrString{}))
	other.Labels = map[string]string{LabelServiceProxyName: "other"}
	other.Spec.ClusterIP, other.Spec.ClusterIPs = "10.96.0.20", []string{"10.96.0.20"}
	other.Spec.ExternalIPs = []string{"192.0.2.10"}
	web := svc("web", tcpPort("http", 80, intstr.IntOrString{}))
	web.Spec.ExternalIPs = []string{"192.0.2.10"}

	got, diags := TranslateWithDiagnostics(Input{Services: []*corev1.Service{other, web}})
	require.Equal(t, []lb.Service{
		{Name: name("web", "http"), Kind: lb.ClusterIP, Frontend: fe("10.96.0.10", 80)},
		{Name: name("web", "http"), Kind: lb.ExternalIP, Frontend: fe("192.0.2.10", 80)},
	}, got)
	require.Equal(t, []Diagnostic{{
		Service: "default/a-other", Reason: `service-proxy-name "other" is not this agent's ("")`, NotOurs: true,
	}}, diags)
}
