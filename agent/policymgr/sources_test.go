package policymgr

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/identitymgr"
	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/policy"
)

func raw(apiVersion, kind, ns, name, js string) source.Raw {
	return source.Raw{APIVersion: apiVersion, Kind: kind, Namespace: ns, Name: name, JSON: []byte(js)}
}

func TestIsPolicyAndKey(t *testing.T) {
	tests := []struct {
		name    string
		r       source.Raw
		policy  bool
		wantKey policy.Ref
	}{
		{name: "kubernetes", r: raw("networking.k8s.io/v1", "NetworkPolicy", "x", "a", ""), policy: true,
			wantKey: policy.Ref{Kind: policy.KindKubernetesPolicy, Namespace: "x", Name: "a"}},
		{name: "sluice", r: raw("sluice.io/v1alpha1", "SluiceNetworkPolicy", "x", "a", ""), policy: true,
			wantKey: policy.Ref{Kind: policy.KindNetworkPolicy, Namespace: "x", Name: "a"}},
		{name: "clusterwide drops the namespace", r: raw("sluice.io/v1alpha1", "SluiceClusterwideNetworkPolicy", "x", "a", ""), policy: true,
			wantKey: policy.Ref{Kind: policy.KindClusterwidePolicy, Name: "a"}},
		// Any version of a policy group is a policy (compile rejects it).
		{name: "other version", r: raw("sluice.io/v2", "SluiceNetworkPolicy", "x", "a", ""), policy: true,
			wantKey: policy.Ref{Kind: policy.KindNetworkPolicy, Namespace: "x", Name: "a"}},
		{name: "kubernetes kind in the sluice group", r: raw("sluice.io/v1alpha1", "NetworkPolicy", "x", "a", "")},
		{name: "sluice kind in the kubernetes group", r: raw("networking.k8s.io/v1", "SluiceNetworkPolicy", "x", "a", "")},
		{name: "cilium group", r: raw("cilium.io/v2", "CiliumNetworkPolicy", "x", "a", "")},
		{name: "service", r: raw("v1", "Service", "x", "a", "")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.policy, isPolicy(tc.r))
			if tc.policy {
				assert.Equal(t, tc.wantKey, rawKey(tc.r))
			}
		})
	}
}

func TestCompile(t *testing.T) {
	const (
		knp = `{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"a","namespace":"x"},` +
			`"spec":{"podSelector":{},"policyTypes":["Ingress"]}}`
		snp = `{"apiVersion":"sluice.io/v1alpha1","kind":"SluiceNetworkPolicy","metadata":{"name":"a"},` +
			`"spec":{"endpointSelector":{},"ingress":[{}]}}`
		ccnp = `{"apiVersion":"sluice.io/v1alpha1","kind":"SluiceClusterwideNetworkPolicy","metadata":{"name":"c"},` +
			`"spec":{"endpointSelector":{},"egress":[{}]}}`
	)
	tests := []struct {
		name    string
		r       source.Raw
		wantKey policy.Ref
		wantErr string
	}{
		{name: "kubernetes", r: raw("networking.k8s.io/v1", "NetworkPolicy", "x", "a", knp),
			wantKey: policy.Ref{Kind: policy.KindKubernetesPolicy, Namespace: "x", Name: "a"}},
		{name: "sluice takes the source's namespace", r: raw("sluice.io/v1alpha1", "SluiceNetworkPolicy", "y", "a", snp),
			wantKey: policy.Ref{Kind: policy.KindNetworkPolicy, Namespace: "y", Name: "a"}},
		{name: "clusterwide", r: raw("sluice.io/v1alpha1", "SluiceClusterwideNetworkPolicy", "", "c", ccnp),
			wantKey: policy.Ref{Kind: policy.KindClusterwidePolicy, Name: "c"}},
		{name: "kubernetes beta", r: raw("networking.k8s.io/v1beta1", "NetworkPolicy", "x", "a", knp),
			wantErr: "apiVersion: networking.k8s.io/v1beta1 is not supported"},
		{name: "sluice other version", r: raw("sluice.io/v2", "SluiceNetworkPolicy", "x", "a", snp),
			wantErr: "apiVersion: sluice.io/v2 is not supported (want sluice.io/v1alpha1)"},
		{name: "misspelt field is rejected", r: raw("sluice.io/v1alpha1", "SluiceNetworkPolicy", "x", "a",
			`{"metadata":{"name":"a"},"spec":{"endpointSelector":{},"ingres":[{}]}}`), wantErr: "unknown field"},
		{name: "misspelt kubernetes field is rejected", r: raw("networking.k8s.io/v1", "NetworkPolicy", "x", "a",
			`{"metadata":{"name":"a","namespace":"x"},"spec":{"podSelector":{},"ingresss":[]}}`), wantErr: "unknown field"},
		{name: "not JSON", r: raw("networking.k8s.io/v1", "NetworkPolicy", "x", "a", `{`), wantErr: "decode:"},
		{name: "invalid policy", r: raw("sluice.io/v1alpha1", "SluiceNetworkPolicy", "x", "a",
			`{"metadata":{"name":"a"},"spec":{"ingress":[{}]}}`), wantErr: "spec.endpointSelector: required"},
		{name: "not a policy", r: raw("v1", "Service", "x", "a", `{}`), wantErr: "kind: Service is not a policy kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := compile(tc.r)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantKey, p.Key)
		})
	}
}

func TestSamePorts(t *testing.T) {
	http := identitymgr.NamedPort{Port: 80, Proto: 6}
	tests := []struct {
		name string
		a, b map[string]identitymgr.NamedPort
		want bool
	}{
		{name: "both empty", want: true},
		{name: "nil and empty", a: nil, b: map[string]identitymgr.NamedPort{}, want: true},
		{name: "equal", a: map[string]identitymgr.NamedPort{"http": http}, b: map[string]identitymgr.NamedPort{"http": http}, want: true},
		{name: "other port", a: map[string]identitymgr.NamedPort{"http": http}, b: map[string]identitymgr.NamedPort{"http": {Port: 81, Proto: 6}}},
		{name: "other protocol", a: map[string]identitymgr.NamedPort{"http": http}, b: map[string]identitymgr.NamedPort{"http": {Port: 80, Proto: 17}}},
		{name: "other name", a: map[string]identitymgr.NamedPort{"http": http}, b: map[string]identitymgr.NamedPort{"web": http}},
		{name: "one more", a: map[string]identitymgr.NamedPort{"http": http}, b: map[string]identitymgr.NamedPort{"http": http, "web": http}},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, samePorts(tc.a, tc.b), tc.name)
		assert.Equal(t, tc.want, samePorts(tc.b, tc.a), tc.name+" (swapped)")
	}
}
