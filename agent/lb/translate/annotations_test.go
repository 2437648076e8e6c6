package translate

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluicenet/sluice/agent/lb"
)

// nodePortSvc is a NodePort Service (ClusterIP and NodePort frontends)
// with annotations.
func nodePortSvc(annotations map[string]string) *corev1.Service {
	s := svc("web", tcpPort("http", 80, intstr.FromInt32(8080)))
	s.Spec.Type = corev1.ServiceTypeNodePort
	s.Spec.Ports[0].NodePort = 30080
	s.Annotations = annotations
	return s
}

// translateOne translates s on a node with defaults d and returns its
// ClusterIP and NodePort services and the warnings diagnosed.
func translateOne(t *testing.T, s *corev1.Service, d LBDefaults) (cip, np lb.Service, warnings []string) {
	t.Helper()
	out, diags := TranslateWithDiagnostics(Input{Services: []*corev1.Service{s}, NodeName: thisNode, LB: d})
	require.Len(t, out, 2)
	for _, o := range out {
		switch o.Kind {
		case lb.ClusterIP:
			cip = o
		case lb.NodePort:
			np = o
		}
	}
	for _, dg := range diags {
		require.True(t, dg.Warning, "only warnings: %v", dg)
		warnings = append(warnings, dg.Reason)
	}
	return cip, np, warnings
}

func TestServiceLBAnnotations(t *testing.T) {
	snat := LBDefaults{Mode: lb.ModeSNAT, Algorithm: lb.Random}
	vxlan := LBDefaults{Mode: lb.ModeSNAT, Algorithm: lb.Random, NoDSR: "routing vxlan"}
	for _, c := range []struct {
		name     string
		ann      map[string]string
		d        LBDefaults
		mode     lb.Mode
		alg      lb.Algorithm
		warnings []string
	}{
		{name: "none", d: snat},
		{name: "sluice dsr", ann: map[string]string{AnnotationLBMode: "dsr"}, d: snat, mode: lb.ModeDSR},
		{name: "sluice hybrid", ann: map[string]string{AnnotationLBMode: "hybrid"}, d: snat, mode: lb.ModeHybrid},
		{name: "sluice snat on a dsr node", ann: map[string]string{AnnotationLBMode: "snat"}, d: LBDefaults{Mode: lb.ModeDSR}, mode: lb.ModeSNAT},
		{name: "sluice maglev", ann: map[string]string{AnnotationLBAlgorithm: "maglev"}, d: snat, alg: lb.Maglev},
		{name: "sluice random on a maglev node", ann: map[string]string{AnnotationLBAlgorithm: "random"}, d: LBDefaults{Algorithm: lb.Maglev}, alg: lb.Random},
		{name: "cilium names", ann: map[string]string{CiliumAnnotationForwardMode: "dsr", CiliumAnnotationLBAlgorithm: "maglev"}, d: snat,
			mode: lb.ModeDSR, alg: lb.Maglev},
		{name: "case and spaces", ann: map[string]string{AnnotationLBMode: " DSR ", AnnotationLBAlgorithm: "Maglev"}, d: snat,
			mode: lb.ModeDSR, alg: lb.Maglev},
		{name: "sluice wins over cilium", ann: map[string]string{AnnotationLBMode: "snat", CiliumAnnotationForwardMode: "dsr",
			AnnotationLBAlgorithm: "random", CiliumAnnotationLBAlgorithm: "maglev"}, d: snat, mode: lb.ModeSNAT, alg: lb.Random,
			warnings: []string{
				`annotation service.cilium.io/forwarding-mode="dsr" ignored: service.sluice.io/lb-mode="snat" is set`,
				`annotation service.cilium.io/lb-algorithm="maglev" ignored: service.sluice.io/lb-algorithm="random" is set`,
			}},
		{name: "both names agree", ann: map[string]string{AnnotationLBMode: "dsr", CiliumAnnotationForwardMode: "dsr"}, d: snat, mode: lb.ModeDSR},
		{name: "bad mode", ann: map[string]string{AnnotationLBMode: "direct"}, d: snat,
			warnings: []string{`annotation service.sluice.io/lb-mode="direct": want snat, dsr or hybrid; using the node's mode snat`}},
		{name: "bad cilium mode", ann: map[string]string{CiliumAnnotationForwardMode: ""}, d: LBDefaults{Mode: lb.ModeHybrid},
			warnings: []string{`annotation service.cilium.io/forwarding-mode="": want snat, dsr or hybrid; using the node's mode hybrid`}},
		{name: "bad sluice beats good cilium", ann: map[string]string{AnnotationLBAlgorithm: "rr", CiliumAnnotationLBAlgorithm: "maglev"}, d: snat,
			warnings: []string{
				`annotation service.cilium.io/lb-algorithm="maglev" ignored: service.sluice.io/lb-algorithm="rr" is set`,
				`annotation service.sluice.io/lb-algorithm="rr": want random or maglev; using the node's algorithm random`,
			}},
		{name: "dsr refused", ann: map[string]string{AnnotationLBMode: "dsr"}, d: vxlan, mode: lb.ModeSNAT,
			warnings: []string{`annotation service.sluice.io/lb-mode="dsr": this node cannot send DSR (routing vxlan); using snat`}},
		{name: "hybrid refused", ann: map[string]string{CiliumAnnotationForwardMode: "hybrid"}, d: vxlan, mode: lb.ModeSNAT,
			warnings: []string{`annotation service.cilium.io/forwarding-mode="hybrid": this node cannot send DSR (routing vxlan); using snat`}},
		{name: "snat on a vxlan node", ann: map[string]string{AnnotationLBMode: "snat"}, d: vxlan, mode: lb.ModeSNAT},
		{name: "maglev refused", ann: map[string]string{AnnotationLBAlgorithm: "maglev"}, d: LBDefaults{NoMaglev: "no tables"}, alg: lb.Random,
			warnings: []string{`annotation service.sluice.io/lb-algorithm="maglev": this node cannot select by Maglev (no tables); using random`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cip, np, warnings := translateOne(t, nodePortSvc(c.ann), c.d)
			assert.Equal(t, c.mode, np.Mode, "NodePort mode")
			assert.Empty(t, cip.Mode, "ClusterIP has no mode")
			assert.Equal(t, c.alg, np.Algorithm)
			assert.Equal(t, c.alg, cip.Algorithm, "the algorithm applies to every frontend")
			assert.ElementsMatch(t, c.warnings, warnings)
			assert.ElementsMatch(t, c.warnings, np.Warnings, "the services carry the warnings")
			assert.ElementsMatch(t, c.warnings, cip.Warnings)
		})
	}
}

// What service list shows: the Service's own mode and algorithm, else the
// node's; no mode for ClusterIP.
func TestLBDefaultsEffective(t *testing.T) {
	d := LBDefaults{Mode: lb.ModeHybrid, Algorithm: lb.Maglev}
	cip, np, _ := translateOne(t, nodePortSvc(nil), d)
	assert.Equal(t, lb.ModeHybrid, d.EffectiveMode(np))
	assert.Equal(t, lb.Mode(""), d.EffectiveMode(cip))
	assert.Equal(t, lb.Maglev, d.EffectiveAlgorithm(cip))
	cip, np, _ = translateOne(t, nodePortSvc(map[string]string{AnnotationLBMode: "snat", AnnotationLBAlgorithm: "random"}), d)
	assert.Equal(t, lb.ModeSNAT, d.EffectiveMode(np))
	assert.Equal(t, lb.Random, d.EffectiveAlgorithm(cip))
	assert.Equal(t, lb.ModeSNAT, LBDefaults{}.EffectiveMode(lb.Service{Kind: lb.NodePort}), "zero defaults: snat")
	assert.Equal(t, lb.Random, LBDefaults{}.EffectiveAlgorithm(lb.Service{}), "zero defaults: random")
	assert.Equal(t, lb.Mode(""), d.EffectiveMode(lb.Service{Kind: lb.HostPort}))
}
