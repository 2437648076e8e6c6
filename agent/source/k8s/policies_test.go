package k8s

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/sluicenet/sluice/policy"
	"github.com/sluicenet/sluice/policy/tracing"
)

// Every watched Sluice resource is a CRD of the chart (its plural, kind and
// scope), and the status writer maps its kind back to it.
func TestPolicyGVRsMatchChartCRDs(t *testing.T) {
	type crd struct {
		Spec struct {
			Group string `json:"group"`
			Scope string `json:"scope"`
			Names struct {
				Kind   string `json:"kind"`
				Plural string `json:"plural"`
			} `json:"names"`
		} `json:"spec"`
	}
	kinds := map[string]string{ // kind -> scope
		policy.KindNetworkPolicy: "Namespaced", policy.KindClusterwidePolicy: "Cluster",
		tracing.KindTracingPolicy: "Cluster", tracing.KindTracingPolicyNamespaced: "Namespaced",
	}
	for kind, scope := range kinds {
		gvr, ok := sluiceGVR(kind)
		require.True(t, ok, kind)
		require.Contains(t, policyGVRs, gvr, kind)
		data, err := os.ReadFile(filepath.Join("../../../install/helm/sluice/crds", gvr.Group+"_"+gvr.Resource+".yaml"))
		require.NoError(t, err, kind)
		var c crd
		require.NoError(t, yaml.Unmarshal(data, &c))
		require.Equal(t, policy.Group, c.Spec.Group)
		require.Equal(t, gvr.Resource, c.Spec.Names.Plural)
		require.Equal(t, kind, c.Spec.Names.Kind)
		require.Equal(t, scope, c.Spec.Scope, kind)
	}
	_, ok := sluiceGVR(policy.KindKubernetesPolicy)
	require.False(t, ok, "NetworkPolicies have no status")
}
