package policy

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/identity"
)

// Scenarios of the Kubernetes network-policy e2e suite
// (test/e2e/network/netpol), replayed as truth tables.

const denyAllIngressX = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: "x"}
spec:
  podSelector: {}
  policyTypes: [Ingress]
`

func TestKNPNoPolicyAllowsAll(t *testing.T) {
	c := newCluster(t, Options{})
	c.expect(c.all(true), ProtoTCP, 80)
	p, _ := c.r.MapState(c.ep["x/a"])
	assert.False(t, p.IngressEnforced)
	assert.False(t, p.EgressEnforced)
}

func TestKNPDenyAllIngress(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(denyAllIngressX)
	assert.Equal(t, c.eps("x/a", "x/b", "x/c"), c.changed, "only the selected endpoints change")
	want := c.all(true).set("*", "x/*", false)
	c.expect(want, ProtoTCP, 80)
	c.expect(want, ProtoUDP, 81)
	p, _ := c.r.MapState(c.ep["x/a"])
	assert.True(t, p.IngressEnforced)
	assert.False(t, p.EgressEnforced, "implicit policyTypes is Ingress only")
}

func TestKNPDenyAllIngressImplicitPolicyTypes(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: "x"}
spec:
  podSelector: {}
`)
	c.expect(c.all(true).set("*", "x/*", false), ProtoTCP, 80)
}

func TestKNPAllowFromNamespace(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-ns-y, namespace: "x"}
spec:
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: "y"}}
`)
	c.expect(c.all(true).set("*", "x/*", false).set("y/*", "x/*", true), ProtoTCP, 80)
}

func TestKNPAllowFromNamespaceByMetadataName(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-ns-not-y, namespace: "x"}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector:
        matchExpressions:
        - {key: kubernetes.io/metadata.name, operator: NotIn, values: ["y"]}
`)
	c.expect(c.all(true).set("y/*", "x/a", false), ProtoTCP, 80)
}

func TestKNPAllowFromPodInNamespace(t *testing.T) {
	c := newCluster(t, Options{})
	// Combined selectors in one peer: AND.
	c.apply(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-y-b, namespace: "x"}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: "y"}}
      podSelector: {matchLabels: {pod: b}}
`)
	c.expect(c.all(true).set("*", "x/a", false).set("y/b", "x/a", true), ProtoTCP, 80)

	// Two peers: OR (every pod of y, and b of the policy's namespace).
	c.apply(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-y-b, namespace: "x"}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: "y"}}
    - podSelector: {matchLabels: {pod: b}}
`)
	c.expect(c.all(true).set("*", "x/a", false).set("y/*", "x/a", true).set("x/b", "x/a", true), ProtoTCP, 80)
}

func TestKNPAllowFromAllNamespacesWithPodLabel(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-c-anywhere, namespace: "x"}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector: {}
      podSelector: {matchLabels: {pod: c}}
`)
	c.expect(c.all(true).set("*", "x/a", false).set("*/c", "x/a", true).set("x/c", "x/a", true).
		set("y/c", "x/a", true).set("z/c", "x/a", true), ProtoTCP, 80)
	// Reserved identities are no pods: namespaceSelector {} never selects them.
	assert.False(t, c.verdictFrom("x/a", 1, ProtoTCP, 80), "host")
	assert.False(t, c.verdictFrom("x/a", 2, ProtoTCP, 80), "world")
}

func TestKNPPortsAndEndPort(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ports, namespace: "x"}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - ports:
    - {port: 80, endPort: 81}
    - {protocol: UDP, port: serve-81-udp}
`)
	open := c.all(true)
	closed := c.all(true).set("*", "x/a", false)
	c.expect(open, ProtoTCP, 80)
	c.expect(open, ProtoTCP, 81)
	c.expect(closed, ProtoTCP, 79)
	c.expect(closed, ProtoTCP, 82)
	c.expect(closed, ProtoUDP, 80)
	c.expect(open, ProtoUDP, 81) // named port resolved on x/a
	p, _ := c.r.MapState(c.ep["x/a"])
	assert.Equal(t, []Key{
		{Direction: Ingress, Proto: ProtoTCP, PortLo: 80, PortHi: 81},
		{Direction: Ingress, Proto: ProtoUDP, PortLo: 81, PortHi: 81},
	}, p.Keys())
}

func TestKNPNamedPortOnlyWhereDefined(t *testing.T) {
	c := newCluster(t, Options{})
	// x/b gets "web" = 8080; the others do not define it.
	ep := Endpoint{ID: c.ep["x/b"], Identity: c.id["x/b"], Labels: mustLabels(c, "x/b"),
		NamedPorts: map[string]NamedPort{"web": {8080, ProtoTCP}}}
	c.r.UpsertEndpoint(ep)
	c.apply(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: "x"}
spec:
  podSelector: {}
  ingress:
  - ports: [{port: web}]
`)
	c.expect(c.all(true).set("*", "x/*", false).set("*", "x/b", true).set("x/b", "x/b", false), ProtoTCP, 8080)
	c.expect(c.all(true).set("*", "x/*", false), ProtoTCP, 80)
}

func mustLabels(c *cluster, pod string) identity.Labels {
	ls, ok := c.alloc.Lookup(c.id[pod])
	require.True(c.t, ok)
	return ls
}

func TestKNPEgressDeny(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-egress, namespace: "x"}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
`)
	c.expect(c.all(true).set("x/a", "*", false), ProtoTCP, 80)
	p, _ := c.r.MapState(c.ep["x/a"])
	assert.False(t, p.IngressEnforced)
	assert.True(t, p.EgressEnforced)

	// Then allow egress to z on UDP 81 only: policies add up.
	c.apply(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-egress-z, namespace: "x"}
spec:
  podSelector: {matchLabels: {pod: a}}
  egress:
  - to: [{namespaceSelector: {matchLabels: {ns: "z"}}}]
    ports: [{protocol: UDP, port: 81}]
`)
	// No policyTypes: Ingress is implied, so x/a's ingress is now closed too.
	c.expect(c.all(true).set("x/a", "*", false).set("*", "x/a", false), ProtoTCP, 81)
	c.expect(c.all(true).set("x/a", "*", false).set("*", "x/a", false).set("x/a", "z/*", true), ProtoUDP, 81)
}

func TestKNPIngressAndEgressTogether(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: both, namespace: "y"}
spec:
  podSelector: {matchLabels: {pod: b}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{podSelector: {}}]
  egress:
  - to: [{podSelector: {matchLabels: {pod: c}}}]
`)
	want := c.all(true).
		set("*", "y/b", false).set("y/*", "y/b", true). // ingress from own namespace only
		set("y/b", "*", false).set("y/b", "y/c", true)  // egress to y/c only
	c.expect(want, ProtoTCP, 80)
}

func TestKNPIPBlockExcept(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ipblock, namespace: "x"}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
`)
	assert.True(t, c.verdictTo("x/a", "10.2.3.4", ProtoTCP, 443))
	assert.False(t, c.verdictTo("x/a", "10.1.2.3", ProtoTCP, 443), "except")
	assert.False(t, c.verdictTo("x/a", "192.168.0.1", ProtoTCP, 443), "outside: world")
	assert.True(t, c.verdictTo("x/b", "192.168.0.1", ProtoTCP, 443), "x/b is not selected")
	// The pods (172.20.0.0/24) are outside the block: not reached.
	c.expect(c.all(true).set("x/a", "*", false), ProtoTCP, 80)

	// 0.0.0.0/0 selects world too.
	c.apply(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ipblock, namespace: "x"}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}
`)
	assert.True(t, c.verdictTo("x/a", "192.168.0.1", ProtoTCP, 443))
	assert.False(t, c.verdictTo("x/a", "10.9.9.9", ProtoTCP, 443))
}

func TestKNPPolicyUpdate(t *testing.T) {
	c := newCluster(t, Options{})
	allowFrom := func(ns string) string {
		return `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow, namespace: "x"}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: "` + ns + `"}}}]
`
	}
	c.apply(allowFrom("y"))
	assert.Equal(t, c.eps("x/a"), c.changed)
	before, _ := c.r.MapState(c.ep["x/a"])
	c.expect(c.all(true).set("*", "x/a", false).set("y/*", "x/a", true), ProtoTCP, 80)

	c.apply(allowFrom("z"))
	assert.Equal(t, c.eps("x/a"), c.changed)
	after, _ := c.r.MapState(c.ep["x/a"])
	c.expect(c.all(true).set("*", "x/a", false).set("z/*", "x/a", true), ProtoTCP, 80)
	d := Diff(before, after)
	assert.Len(t, d.Upserts, 3)
	assert.Len(t, d.Deletes, 3)
	for k := range d.Upserts {
		ls, _ := c.alloc.Lookup(k.PeerIdentity)
		ns, _ := ls.Namespace()
		assert.Equal(t, "z", ns)
	}

	// Re-applying the same policy changes nothing.
	c.apply(allowFrom("z"))
	assert.Empty(t, c.changed)

	// Widening the selector to pod b changes x/a? no: x/b only.
	ch := c.r.DeletePolicy(Ref{Kind: KindKubernetesPolicy, Namespace: "x", Name: "allow"})
	assert.Equal(t, c.eps("x/a"), ch)
	c.expect(c.all(true), ProtoTCP, 80)
}

func TestKNPValidation(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"bad protocol": {`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: "x"}
spec:
  podSelector: {}
  ingress: [{ports: [{protocol: ICMP, port: 1}]}]
`, `spec.ingress[0].ports[0].protocol: "ICMP" is not a valid protocol`},
		"ipBlock with selector": {`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: "x"}
spec:
  podSelector: {}
  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]
`, `spec.ingress[0].from[0]: ipBlock cannot be combined`},
		"except outside": {`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: "x"}
spec:
  podSelector: {}
  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}}]}]
`, `spec.egress[0].to[0].ipBlock.except[0]: 11.0.0.0/16 is not inside 10.0.0.0/8`},
		"endPort below port": {`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: "x"}
spec:
  podSelector: {}
  ingress: [{ports: [{port: 90, endPort: 80}]}]
`, `spec.ingress[0].ports[0].endPort: 80 must be between port 90 and 65535`},
		"endPort with named port": {`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: "x"}
spec:
  podSelector: {}
  ingress: [{ports: [{port: http, endPort: 80}]}]
`, `spec.ingress[0].ports[0].endPort: endPort needs a numeric port, not "http"`},
		"egress without type": {`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: "x"}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  egress: [{}]
`, `spec.egress: rules given but policyTypes does not include Egress`},
		"bad selector": {`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: "x"}
spec:
  podSelector: {matchExpressions: [{key: a, operator: In}]}
`, `spec.podSelector: matchExpressions[0].values: must be non-empty for In`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseManifest(tc.yaml)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestKNPSCTPIsDroppedWithWarning(t *testing.T) {
	c := newCluster(t, Options{})
	p, err := parseManifest(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: sctp, namespace: "x"}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{ports: [{protocol: SCTP, port: 80}]}]
`)
	require.NoError(t, err)
	require.Len(t, p.Warnings, 1)
	assert.Contains(t, p.Warnings[0], "spec.ingress[0].ports[0].protocol: SCTP")
	c.r.UpsertPolicy(p)
	// The rule allows nothing (stricter, never looser): x/a is closed.
	c.expect(c.all(true).set("*", "x/a", false), ProtoTCP, 80)
}
