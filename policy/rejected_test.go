package policy

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// The fallback of a rejected policy denies, in the directions each rule
// covers, everything to and from the endpoints the rule selects (its
// namespace's, for a namespaced policy), and nothing else.
func TestRejectedFallbackReachability(t *testing.T) {
	tests := []struct {
		name, kind, ns, doc string
		dirs                []Direction
		want                func(c *cluster) reach
	}{
		{name: "L7 ingress on x/a", kind: KindNetworkPolicy, ns: "x", doc: `
metadata: {name: l7}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - toPorts: [{ports: [{port: "80", protocol: TCP}], rules: {http: [{method: GET}]}}]
`, dirs: []Direction{Ingress}, want: func(c *cluster) reach { return c.all(true).set("*", "x/a", false) }},
		{name: "FQDN egress from every pod of y", kind: KindNetworkPolicy, ns: "y", doc: `
metadata: {name: fqdn, namespace: "y"}
spec:
  endpointSelector: {}
  egress:
  - toFQDNs: [{matchName: example.com}]
`, dirs: []Direction{Egress}, want: func(c *cluster) reach { return c.all(true).set("y/*", "*", false) }},
		{name: "clusterwide, specs: ingress of every c, both ways of z/b", kind: KindClusterwidePolicy, doc: `
metadata: {name: cw}
specs:
- endpointSelector: {matchLabels: {pod: c}}
  ingressDeny: [{fromGroups: [{aws: {}}]}]
- endpointSelector: {matchLabels: {pod: b, k8s:io.kubernetes.pod.namespace: z}}
  ingres: [{}]
`, dirs: []Direction{Ingress, Egress}, want: func(c *cluster) reach {
			return c.all(true).set("*", "x/c", false).set("*", "y/c", false).set("*", "z/c", false).
				set("*", "z/b", false).set("z/b", "*", false)
		}},
		{name: "kubernetes, misspelt field: its policyTypes", kind: KindKubernetesPolicy, ns: "x", doc: `
metadata: {name: knp, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  policyTypes: [Egress]
  egres: [{}]
`, dirs: []Direction{Egress}, want: func(c *cluster) reach { return c.all(true).set("x/b", "*", false) }},
		{name: "kubernetes, no policyTypes: ingress (and egress with egress rules)", kind: KindKubernetesPolicy, ns: "z", doc: `
metadata: {name: knp, namespace: z}
spec:
  podSelector: {}
  egress: [{ports: [{port: 80, protocol: XTP}]}]
`, dirs: []Direction{Ingress, Egress}, want: func(c *cluster) reach { return c.all(true).set("z/*", "*", false).set("*", "z/*", false) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := yaml.YAMLToJSON([]byte(tc.doc))
			require.NoError(t, err)
			_, err = parseManifest("kind: " + tc.kind + "\n" + tc.doc)
			require.Error(t, err, "the policy is rejected")
			c := newCluster(t, Options{})
			p, dirs := RejectedFallback(Ref{Kind: tc.kind, Namespace: tc.ns, Name: "p"}, doc)
			require.NotNil(t, p)
			assert.Equal(t, tc.dirs, dirs)
			c.r.UpsertPolicy(p)
			c.expect(tc.want(c), ProtoTCP, 80)
			c.expect(tc.want(c), ProtoUDP, 81)
		})
	}
}

func TestRejectedFallbackNothingSelectable(t *testing.T) {
	for name, doc := range map[string]string{
		"no selector":              `{"metadata":{"name":"a","namespace":"x"},"spec":{"ingress":[{}]}}`,
		"bad selector":             `{"metadata":{"name":"a","namespace":"x"},"spec":{"endpointSelector":{"matchExpressions":[{"key":"a","operator":"Bogus"}]}}}`,
		"not JSON":                 `{`,
		"kubernetes, bad selector": `{"spec":{"podSelector":{"matchLabels":{"a":1}}}}`,
		"selector not an object":   `{"metadata":{"name":"a","namespace":"x"},"spec":{"endpointSelector":[]}}`,
	} {
		key := Ref{Kind: KindNetworkPolicy, Namespace: "x", Name: "a"}
		if strings.HasPrefix(name, "kubernetes") {
			key.Kind = KindKubernetesPolicy
		}
		p, dirs := RejectedFallback(key, []byte(doc))
		assert.Nil(t, p, name)
		assert.Empty(t, dirs, name)
	}
	p, _ := RejectedFallback(Ref{Kind: KindNetworkPolicy, Name: "a"}, []byte(`{"spec":{"endpointSelector":{}}}`))
	assert.Nil(t, p, "a namespaced policy without namespace")
	p, _ = RejectedFallback(Ref{Kind: KindClusterwidePolicy, Namespace: "x", Name: "a"}, []byte(`{"spec":{"endpointSelector":{}}}`))
	assert.Nil(t, p, "a clusterwide policy with a namespace")
	assert.Equal(t, "rejected: r; enforcing default deny for ingress and egress", RejectedMessage("r", []Direction{Ingress, Egress}, true))
	assert.Equal(t, "rejected: r; not enforced (rejected-policy=ignore)", RejectedMessage("r", nil, false))
	assert.Equal(t, "rejected: r; no endpoint selector could be read: nothing to enforce", RejectedMessage("r", nil, true))
}
