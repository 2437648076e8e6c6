package policy

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/sluicenet/sluice/identity"
)

// FuzzPolicyTranslation feeds YAML manifests (NetworkPolicy,
// SluiceNetworkPolicy, SluiceClusterwideNetworkPolicy) through the
// translation and the resolver of the e2e topology. Invariants: a rejected
// manifest yields an error and no policy; translation is deterministic; an
// accepted policy survives a JSON round trip of its object unchanged; its
// map states agree with the truth-table verdict on the most-specific lookup;
// upserting it twice changes nothing; deleting it restores the state without
// it. The seed corpus (testdata/fuzz) holds the manifests of the policy tests.
func FuzzPolicyTranslation(f *testing.F) {
	for _, s := range []string{denyAllIngressX, `
apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: p, namespace: x, annotations: {sluice.io/cidr-semantics: address}}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromCIDRSet: [{cidr: 172.20.0.0/24, except: [172.20.0.4/32]}]
    toPorts: [{ports: [{port: "80", endPort: 90, protocol: TCP}, {port: serve-81-udp, protocol: UDP}]}]
  egressDeny:
  - toEntities: [world]
    icmps: [{fields: [{type: 8}]}]
`, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: y}
spec:
  podSelector: {matchExpressions: [{key: pod, operator: NotIn, values: [b]}]}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: x}}, podSelector: {}}, {ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]
    ports: [{port: 80, endPort: 85}, {port: serve-81-udp, protocol: UDP}, {protocol: SCTP, port: 9}]
  egress: [{}]
`, `
apiVersion: sluice.io/v1alpha1
kind: SluiceClusterwideNetworkPolicy
metadata: {name: c}
specs:
- endpointSelector: {}
  enableDefaultDeny: {ingress: false}
  ingress: [{fromEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": z}}]}]
`} {
		if _, err := parseManifest(s); err != nil {
			f.Fatalf("seed is rejected: %v", err) // the seeds reach the resolver
		}
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, m string) {
		p, err := parseManifest(m)
		if err != nil {
			require.Nil(t, p, "a rejected manifest returns no policy")
			return
		}
		require.NotNil(t, p)
		again, err := parseManifest(m)
		require.NoError(t, err, "translation is deterministic")
		requireSamePolicy(t, p, again)
		rt, err := roundTrip(m)
		require.NoError(t, err, "an accepted manifest, encoded as JSON and decoded again, is accepted")
		requireSamePolicy(t, p, rt)
		checkResolved(t, p)
	})
}

func requireSamePolicy(t *testing.T, want, got *Policy) {
	t.Helper()
	require.Equal(t, want.String(), got.String())
	require.Equal(t, want.Warnings, got.Warnings)
	require.Equal(t, want.Prefixes(), got.Prefixes())
}

// roundTrip decodes a manifest into its API type, encodes that as JSON and
// translates the JSON.
func roundTrip(m string) (*Policy, error) {
	var tm struct {
		Kind string `json:"kind"`
	}
	if err := yaml.Unmarshal([]byte(m), &tm); err != nil {
		return nil, err
	}
	var obj any
	switch tm.Kind {
	case "NetworkPolicy":
		obj = &networkingv1.NetworkPolicy{}
	case KindNetworkPolicy:
		obj = &SluiceNetworkPolicy{}
	default:
		obj = &SluiceClusterwideNetworkPolicy{}
	}
	if err := yaml.UnmarshalStrict([]byte(m), obj); err != nil {
		return nil, err
	}
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	return parseManifest(string(j))
}

// checkResolved applies p to the e2e topology and checks the resolver's
// invariants.
func checkResolved(t *testing.T, p *Policy) {
	c := newCluster(t, Options{})
	before := c.states()
	c.r.UpsertPolicy(p)
	for _, pfx := range c.r.Prefixes() {
		id, err := c.alloc.Allocate(context.Background(), identity.CIDRLabels(pfx))
		require.NoError(t, err)
		_, err = c.ipc.Upsert(pfx, id, identity.SourceGenerated)
		require.NoError(t, err)
	}
	for _, pp := range []struct {
		proto uint8
		port  uint16
	}{{ProtoTCP, 80}, {ProtoUDP, 81}, {ProtoTCP, 443}, {ProtoICMP, 8}} {
		c.actual(pp.proto, pp.port) // requires the most-specific lookups to agree with the verdict
	}
	applied := c.states()
	require.Empty(t, c.r.UpsertPolicy(p), "upserting the same policy again changes no endpoint")
	require.Equal(t, applied, c.states())
	c.r.DeletePolicy(p.Key)
	for id, st := range c.states() {
		require.True(t, st.equal(before[id]), "endpoint %d: deleting the only policy restores its map state", id)
	}
}

// states returns every endpoint's map state.
func (c *cluster) states() map[EndpointID]*EndpointPolicy {
	out := map[EndpointID]*EndpointPolicy{}
	for _, id := range c.r.Endpoints() {
		out[id], _ = c.r.MapState(id)
	}
	return out
}
