package policy

import (
	"context"
	"fmt"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/identity"
)

func TestIncrementalIdentityAndEndpointChanges(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(`
apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: from-web, namespace: "x"}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromEndpoints: [{matchLabels: {role: web}}]
`)
	// A new identity matching the peer selector changes x/a only.
	web := identity.PodLabels("x", map[string]string{"pod": "d", "role": "web"}, map[string]string{"ns": "x"})
	id, err := c.alloc.Allocate(context.Background(), web)
	require.NoError(t, err)
	p, _ := c.r.MapState(c.ep["x/a"])
	assert.Contains(t, p.Entries, Key{Direction: Ingress, PeerIdentity: id})
	// (The allocator fed the resolver; calling again is a no-op.)
	assert.Empty(t, c.r.UpsertIdentity(id, web))
	// An identity nobody selects changes nothing.
	other := identity.PodLabels("x", map[string]string{"pod": "e"}, map[string]string{"ns": "x"})
	oid, err := c.alloc.Allocate(context.Background(), other)
	require.NoError(t, err)
	assert.Empty(t, c.r.UpsertIdentity(oid+1000, other))
	assert.Empty(t, c.r.DeleteIdentity(oid+1000))

	// Releasing and collecting the identity removes the entry.
	require.NoError(t, c.alloc.Release(context.Background(), id))
	_, err = c.alloc.GCNow(context.Background())
	require.NoError(t, err)
	p, _ = c.r.MapState(c.ep["x/a"])
	assert.NotContains(t, p.Entries, Key{Direction: Ingress, PeerIdentity: id})
	assert.Equal(t, c.eps("x/a"), c.r.UpsertIdentity(id, web))
	assert.Equal(t, c.eps("x/a"), c.r.DeleteIdentity(id))

	// A relabelled endpoint leaves the policy's subject.
	ep := Endpoint{ID: c.ep["x/a"], Identity: c.id["x/b"], Labels: mustLabels(c, "x/b"), NamedPorts: e2eNamedPorts}
	assert.Equal(t, c.eps("x/a"), c.r.UpsertEndpoint(ep))
	p, _ = c.r.MapState(c.ep["x/a"])
	assert.False(t, p.IngressEnforced)
	assert.Equal(t, []RuleRef(nil), c.r.RulesSelecting(c.ep["x/a"]))

	// Deleting an endpoint reports it, and MapState forgets it.
	assert.Equal(t, c.eps("x/a"), c.r.DeleteEndpoint(c.ep["x/a"]))
	_, ok := c.r.MapState(c.ep["x/a"])
	assert.False(t, ok)
	assert.Nil(t, c.r.DeleteEndpoint(c.ep["x/a"]))
	_, err = c.r.Allowed(c.ep["x/a"], c.ep["x/b"], ProtoTCP, 80)
	assert.Error(t, err)
}

func TestEgressNamedPortsPerPeer(t *testing.T) {
	c := newCluster(t, Options{})
	// y/a serves "metrics" on 9090, y/b on 9100.
	for pod, port := range map[string]uint16{"y/a": 9090, "y/b": 9100} {
		c.r.UpsertEndpoint(Endpoint{ID: c.ep[pod], Identity: c.id[pod], Labels: mustLabels(c, pod),
			NamedPorts: map[string]NamedPort{"metrics": {port, ProtoTCP}}})
	}
	c.apply(`
apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: scrape, namespace: "x"}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  egress:
  - toEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": "y"}}]
    toPorts: [{ports: [{port: metrics, protocol: TCP}]}]
`)
	p, _ := c.r.MapState(c.ep["x/a"])
	assert.Equal(t, []Key{
		{Direction: Egress, PeerIdentity: c.id["y/a"], Proto: ProtoTCP, PortLo: 9090, PortHi: 9090},
		{Direction: Egress, PeerIdentity: c.id["y/b"], Proto: ProtoTCP, PortLo: 9100, PortHi: 9100},
	}, p.Keys())
	c.expect(c.all(true).set("x/a", "*", false), ProtoTCP, 80)
	c.expect(c.all(true).set("x/a", "*", false).set("x/a", "y/a", true), ProtoTCP, 9090)
	c.expect(c.all(true).set("x/a", "*", false).set("x/a", "y/b", true), ProtoTCP, 9100)

	// y/c starts serving it: x/a (the egress user) changes too.
	ch := c.r.UpsertEndpoint(Endpoint{ID: c.ep["y/c"], Identity: c.id["y/c"], Labels: mustLabels(c, "y/c"),
		NamedPorts: map[string]NamedPort{"metrics": {9200, ProtoTCP}}})
	assert.Equal(t, c.eps("x/a"), ch)
	c.expect(c.all(true).set("x/a", "*", false).set("x/a", "y/c", true), ProtoTCP, 9200)
	assert.Equal(t, c.eps("x/a", "y/c"), c.r.DeleteEndpoint(c.ep["y/c"]))
}

func TestDiff(t *testing.T) {
	k1 := Key{Direction: Ingress, PeerIdentity: 300}
	k2 := Key{Direction: Egress, Proto: ProtoTCP, PortLo: 80, PortHi: 80}
	k3 := Key{Direction: Egress, Proto: ProtoUDP, PortLo: 53, PortHi: 53}
	old := &EndpointPolicy{Entries: map[Key]Entry{k1: {}, k2: {}}}
	new := &EndpointPolicy{Entries: map[Key]Entry{k2: {Deny: true}, k3: {}}}
	d := Diff(old, new)
	assert.Equal(t, map[Key]Entry{k2: {Deny: true}, k3: {}}, d.Upserts)
	assert.Equal(t, []Key{k1}, d.Deletes)
	assert.True(t, Diff(new, new).Empty())
	assert.Len(t, Diff(nil, new).Upserts, 2)
	assert.Len(t, Diff(old, nil).Deletes, 2)
}

// randomPolicy builds a random CNP over the e2e cluster, mixing allow and
// deny, peers, ports and ranges.
func randomPolicy(rng *rand.Rand, name string) *SluiceClusterwideNetworkPolicy {
	pods := []string{"a", "b", "c"}
	nss := []string{"x", "y", "z"}
	sel := func() string {
		switch rng.Intn(4) {
		case 0:
			return `{}`
		case 1:
			return `{"matchLabels": {"pod": "` + pods[rng.Intn(3)] + `"}}`
		case 2:
			return `{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "` + nss[rng.Intn(3)] + `"}}`
		}
		return `{"matchLabels": {"pod": "` + pods[rng.Intn(3)] + `", "k8s:io.kubernetes.pod.namespace": "` + nss[rng.Intn(3)] + `"}}`
	}
	ports := func() string {
		switch rng.Intn(4) {
		case 0:
			return ``
		case 1:
			return `, "toPorts": [{"ports": [{"port": "` + fmt.Sprint(78+rng.Intn(5)) + `", "protocol": "TCP"}]}]`
		case 2:
			lo := 76 + rng.Intn(6)
			return `, "toPorts": [{"ports": [{"port": "` + fmt.Sprint(lo) + `", "endPort": ` + fmt.Sprint(lo+rng.Intn(8)) + `, "protocol": "ANY"}]}]`
		}
		return `, "toPorts": [{"ports": [{"port": "0", "protocol": "UDP"}]}]`
	}
	peer := func(dir string) string {
		if rng.Intn(5) == 0 {
			return `"` + dir + `Entities": ["all"]`
		}
		return `"` + dir + `Endpoints": [` + sel() + `]`
	}
	sections := []string{"ingress", "ingressDeny", "egress", "egressDeny"}
	js := `{"metadata": {"name": "` + name + `"}, "spec": {"endpointSelector": ` + sel()
	for _, s := range sections {
		if rng.Intn(2) == 0 {
			continue
		}
		dir := "from"
		if s[0] == 'e' {
			dir = "to"
		}
		js += `, "` + s + `": [{` + peer(dir) + ports() + `}]`
	}
	js += `}}`
	var p SluiceClusterwideNetworkPolicy
	if err := yamlUnmarshal(js, &p); err != nil {
		panic(err)
	}
	return &p
}

// Random policy sets: the most-specific lookup agrees with the any-deny-wins
// verdict, and incremental updates end where a fresh full resolution ends.
func TestRandomPoliciesConsistency(t *testing.T) {
	rng := rand.New(rand.NewSource(42))
	for round := 0; round < 40; round++ {
		c := newCluster(t, Options{})
		var keys []Ref
		for i := 0; i < 6; i++ {
			pol, err := FromClusterwidePolicy(randomPolicy(rng, fmt.Sprintf("p%d", i)))
			require.NoError(t, err)
			c.r.UpsertPolicy(pol)
			keys = append(keys, pol.Key)
		}
		// Update one, delete one.
		pol, err := FromClusterwidePolicy(randomPolicy(rng, "p0"))
		require.NoError(t, err)
		c.r.UpsertPolicy(pol)
		c.r.DeletePolicy(keys[1])

		for _, proto := range []uint8{ProtoTCP, ProtoUDP} {
			for port := uint16(75); port <= 90; port++ {
				c.actual(proto, port) // checks most-specific == verdict
			}
		}
		incremental := map[EndpointID]*EndpointPolicy{}
		for _, id := range c.r.Endpoints() {
			incremental[id], _ = c.r.MapState(id)
		}
		// A full resync finds nothing to change.
		assert.Empty(t, c.r.ResolveAll(), "round %d", round)
		fresh := NewResolver(Options{})
		for id, ls := range c.alloc.Identities() {
			fresh.UpsertIdentity(id, ls)
		}
		for _, k := range c.r.Policies() {
			fresh.UpsertPolicy(c.r.policies[k])
		}
		for _, id := range c.r.Endpoints() {
			fresh.UpsertEndpoint(c.r.endpoints[id].ep)
			fp, _ := fresh.MapState(id)
			require.True(t, fp.equal(incremental[id]), "round %d endpoint %d:\n%v\nvs\n%v", round, id, fp.Keys(), incremental[id].Keys())
		}
	}
}
