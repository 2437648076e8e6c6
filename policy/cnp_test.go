package policy

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/identity"
)

func TestCNPNamespaceScoping(t *testing.T) {
	c := newCluster(t, Options{})
	// fromEndpoints without a namespace: the policy's namespace only.
	c.apply(`
apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: from-b, namespace: "x"}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromEndpoints: [{matchLabels: {pod: b}}]
`)
	assert.Equal(t, c.eps("x/a"), c.changed)
	c.expect(c.all(true).set("*", "x/a", false).set("x/b", "x/a", true), ProtoTCP, 80)

	// k8s:io.kubernetes.pod.namespace selects another namespace; the k8s:
	// prefix on other keys is optional.
	c.apply(`
apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: from-b, namespace: "x"}
spec:
  endpointSelector: {matchLabels: {"k8s:pod": a}}
  ingress:
  - fromEndpoints:
    - matchLabels: {"k8s:pod": b, "k8s:io.kubernetes.pod.namespace": "y"}
    - matchExpressions: [{key: "k8s:io.cilium.k8s.namespace.labels.ns", operator: In, values: ["z"]}]
`)
	c.expect(c.all(true).set("*", "x/a", false).set("y/b", "x/a", true).set("z/*", "x/a", true), ProtoTCP, 80)

	// fromEndpoints: [{}] in a namespaced policy: every pod of the namespace.
	c.apply(`
apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: from-b, namespace: "x"}
spec:
  endpointSelector: {}
  ingress:
  - fromEndpoints: [{}]
`)
	c.expect(c.all(true).set("*", "x/*", false).set("x/*", "x/*", true), ProtoTCP, 80)
}

func TestCNPEntities(t *testing.T) {
	c := newCluster(t, Options{})
	entity := func(e string) string {
		return `
apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: entity, namespace: "x"}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromEntities: [` + e + `]
`
	}
	cidr, err := c.alloc.Allocate(context.Background(), identity.CIDRLabels(netip.MustParsePrefix("192.0.2.0/24")))
	require.NoError(t, err)
	pod := c.id["y/b"]
	for _, tc := range []struct {
		entity string
		allow  map[identity.NumericIdentity]bool
	}{
		{"world", map[identity.NumericIdentity]bool{identity.ReservedWorld: true, identity.ReservedWorldV4: true, cidr: true}},
		{"cluster", map[identity.NumericIdentity]bool{identity.ReservedHost: true, identity.ReservedRemoteNode: true,
			identity.ReservedKubeAPIServer: true, identity.ReservedHealth: true, identity.ReservedInit: true,
			identity.ReservedUnmanaged: true, pod: true}},
		{"host", map[identity.NumericIdentity]bool{identity.ReservedHost: true}},
		{"remote-node", map[identity.NumericIdentity]bool{identity.ReservedRemoteNode: true}},
		{"kube-apiserver", map[identity.NumericIdentity]bool{identity.ReservedKubeAPIServer: true}},
		{"all", map[identity.NumericIdentity]bool{identity.ReservedHost: true, identity.ReservedWorld: true,
			identity.ReservedWorldV4: true, identity.ReservedRemoteNode: true, identity.ReservedKubeAPIServer: true,
			identity.ReservedHealth: true, identity.ReservedInit: true, identity.ReservedUnmanaged: true, pod: true, cidr: true}},
	} {
		c.apply(entity(tc.entity))
		for _, id := range []identity.NumericIdentity{identity.ReservedHost, identity.ReservedWorld, identity.ReservedWorldV4,
			identity.ReservedRemoteNode, identity.ReservedKubeAPIServer, identity.ReservedHealth, identity.ReservedInit,
			identity.ReservedUnmanaged, pod, cidr} {
			assert.Equal(t, tc.allow[id], c.verdictFrom("x/a", id, ProtoTCP, 80), "entity %s from %s", tc.entity, id)
		}
	}
}

func TestCNPDenyPrecedence(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(`
apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: allow-y, namespace: "x"}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": "y"}}]
`, `
apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: deny-b-80, namespace: "x"}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingressDeny:
  - fromEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": "y", pod: b}}]
    toPorts: [{ports: [{port: "80", endPort: 81, protocol: TCP}]}]
`)
	base := func() reach { return c.all(true).set("*", "x/a", false).set("y/*", "x/a", true) }
	c.expect(base().set("y/b", "x/a", false), ProtoTCP, 80)
	c.expect(base(), ProtoTCP, 82)
	c.expect(base(), ProtoUDP, 80)

	// The deciding rule is reported.
	tr, err := c.r.Allowed(c.ep["y/b"], c.ep["x/a"], ProtoTCP, 81)
	require.NoError(t, err)
	assert.False(t, tr.Allowed)
	assert.Equal(t, "SluiceNetworkPolicy x/deny-b-80 spec[0].ingressDeny[0]", tr.IngressRule.String())
	tr, err = c.r.Allowed(c.ep["y/a"], c.ep["x/a"], ProtoTCP, 81)
	require.NoError(t, err)
	assert.True(t, tr.Allowed)
	assert.Equal(t, "SluiceNetworkPolicy x/allow-y spec[0].ingress[0]", tr.IngressRule.String())

	// A deny wider than the allow removes the allow entry.
	c.apply(`
apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: deny-b-80, namespace: "x"}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingressDeny:
  - fromEntities: [all]
`)
	c.expect(c.all(true).set("*", "x/a", false), ProtoTCP, 80)
	p, _ := c.r.MapState(c.ep["x/a"])
	assert.Equal(t, map[Key]Entry{{Direction: Ingress}: {Deny: true, Rule: RuleRef{Kind: KindNetworkPolicy,
		Namespace: "x", Name: "deny-b-80", Section: "ingressDeny"}}}, p.Entries)
}

func TestCNPDenyOnlyEnforcesAndDefaultDenyKnob(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(`
apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: deny-y, namespace: "x"}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingressDeny:
  - fromEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": "y"}}]
  enableDefaultDeny: {ingress: false}
`)
	// Not enforced: only the denied peers are dropped.
	c.expect(c.all(true).set("y/*", "x/a", false), ProtoTCP, 80)
	p, _ := c.r.MapState(c.ep["x/a"])
	assert.False(t, p.IngressEnforced)

	c.apply(`
apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: deny-y, namespace: "x"}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingressDeny:
  - fromEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": "y"}}]
`)
	// Like Cilium: a deny policy selecting the endpoint also puts it in default deny.
	c.expect(c.all(true).set("*", "x/a", false), ProtoTCP, 80)
}

// An empty list is no section (as in Cilium, and as the object's JSON
// encoding, which omits it, says); enabling the default deny with no rules
// denies everything in that direction.
func TestCNPEmptyListIsNoSection(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(`
apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: empty, namespace: "x"}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress: []
  egress: []
`)
	c.expect(c.all(true), ProtoTCP, 80)
	p, _ := c.r.MapState(c.ep["x/a"])
	assert.False(t, p.IngressEnforced)
	assert.False(t, p.EgressEnforced)

	c.apply(`
apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: empty, namespace: "x"}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  egress: []
  enableDefaultDeny: {egress: true}
`)
	c.expect(c.all(true).set("x/a", "*", false), ProtoTCP, 80)
	p, _ = c.r.MapState(c.ep["x/a"])
	assert.False(t, p.IngressEnforced)
	assert.True(t, p.EgressEnforced)
	tr, err := c.r.Allowed(c.ep["x/a"], c.ep["y/b"], ProtoTCP, 80)
	require.NoError(t, err)
	assert.False(t, tr.Allowed)
	assert.Equal(t, RuleRef{}, tr.EgressRule, "the default deny, no rule, decides")
}

func TestCNPClusterwide(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(`
apiVersion: sluice.io/v1alpha1
kind: SluiceClusterwideNetworkPolicy
metadata: {name: a-from-b}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromEndpoints: [{matchLabels: {pod: b}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
  egress:
  - toEndpoints: [{matchLabels: {pod: c}}]
`)
	assert.Equal(t, c.eps("x/a", "y/a", "z/a"), c.changed)
	want := c.all(true)
	for _, d := range []string{"x/a", "y/a", "z/a"} {
		want.set("*", d, false)
		for _, s := range []string{"x/b", "y/b", "z/b"} {
			want.set(s, d, true)
		}
	}
	for _, s := range []string{"x/a", "y/a", "z/a"} {
		want.set(s, "*", false)
		for _, d := range []string{"x/c", "y/c", "z/c"} {
			want.set(s, d, true)
		}
	}
	c.expect(want, ProtoTCP, 80)
	// Port 81: nothing reaches the a pods.
	for _, d := range []string{"x/a", "y/a", "z/a"} {
		want.set("*", d, false)
	}
	c.expect(want, ProtoTCP, 81)
}

func TestCNPToCIDRSetExcept(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(`
apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: cidr, namespace: "x"}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  egress:
  - toCIDRSet:
    - cidr: 10.0.0.0/8
      except: [10.96.0.0/12, 10.1.2.3/32]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
  - toCIDR: [192.168.1.0/24]
  - toEntities: [host]
`)
	assert.Equal(t, []string{"10.0.0.0/8", "10.1.2.3/32", "10.96.0.0/12", "192.168.1.0/24"}, prefixStrings(c.r.Prefixes()))
	for _, tc := range []struct {
		addr  string
		port  uint16
		allow bool
	}{
		{"10.0.0.1", 443, true},
		{"10.0.0.1", 80, false},
		{"10.1.2.3", 443, false},
		{"10.1.2.4", 443, true},
		{"10.100.0.1", 443, false},
		{"10.112.0.1", 443, true},
		{"192.168.1.9", 80, true},
		{"192.168.2.9", 80, false},
		{"8.8.8.8", 443, false},
	} {
		assert.Equal(t, tc.allow, c.verdictTo("x/a", tc.addr, ProtoTCP, tc.port), "%s:%d", tc.addr, tc.port)
	}
	p, _ := c.r.MapState(c.ep["x/a"])
	v, _, _ := p.Verdict(Egress, identity.ReservedHost, ProtoUDP, 53)
	assert.True(t, v)
	c.expect(c.all(true).set("x/a", "*", false), ProtoTCP, 443)
}

func TestCNPICMP(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(`
apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: icmp, namespace: "x"}
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - icmps: [{fields: [{type: 8, family: IPv4}, {type: EchoRequest, family: IPv6}]}]
`)
	assert.True(t, c.verdictFrom("x/a", c.id["y/a"], ProtoICMP, 8))
	assert.False(t, c.verdictFrom("x/a", c.id["y/a"], ProtoICMP, 0))
	assert.True(t, c.verdictFrom("x/a", c.id["y/a"], ProtoICMPv6, 128))
	assert.False(t, c.verdictFrom("x/a", c.id["y/a"], ProtoTCP, 8))
}

func TestEnforcementModesAndAudit(t *testing.T) {
	always := newCluster(t, Options{Mode: EnforcementAlways, Audit: true})
	always.expect(always.all(false), ProtoTCP, 80)
	p, _ := always.r.MapState(always.ep["x/a"])
	assert.True(t, p.Audit)
	assert.True(t, p.IngressEnforced && p.EgressEnforced)

	never := newCluster(t, Options{Mode: EnforcementNever})
	never.apply(denyAllIngressX, `
apiVersion: sluice.io/v1alpha1
kind: SluiceClusterwideNetworkPolicy
metadata: {name: deny-all}
spec:
  endpointSelector: {}
  ingressDeny: [{fromEntities: [all]}]
`)
	never.expect(never.all(true), ProtoTCP, 80)
	p, _ = never.r.MapState(never.ep["x/a"])
	assert.Empty(t, p.Entries)
	assert.False(t, p.Audit)
}

func TestCNPManifestFromCilium(t *testing.T) {
	// Cilium's documentation examples, only apiVersion and kind changed.
	p, err := parseManifest(`
apiVersion: "sluice.io/v1alpha1"
kind: SluiceNetworkPolicy
metadata:
  name: "l4-rule"
  namespace: default
spec:
  description: "L4 policy to restrict access to app frontend"
  endpointSelector:
    matchLabels:
      app: myService
  ingress:
  - fromEndpoints:
    - matchLabels:
        app: frontend
    toPorts:
    - ports:
      - port: "80"
        protocol: TCP
  egress:
  - toCIDRSet:
    - cidr: 10.0.0.0/8
      except:
      - 10.96.0.0/12
  - toEntities:
    - kube-apiserver
  - toPorts:
    - ports:
      - port: "53"
        protocol: ANY
`)
	require.NoError(t, err)
	assert.Len(t, p.rules, 4)

	_, err = parseManifest(`
apiVersion: "sluice.io/v1alpha1"
kind: SluiceNetworkPolicy
metadata:
  name: "rule1"
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      app: service
  ingress:
  - fromEndpoints:
    - matchLabels:
        env: prod
    toPorts:
    - ports:
      - port: "80"
        protocol: TCP
      rules:
        http:
        - method: "GET"
          path: "/public"
`)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "spec.ingress[0].toPorts[0].rules: L7 policy (toPorts[].rules: http/dns/kafka/l7) is not supported")
	assert.True(t, errors.Is(err, ErrUnsupported))
	var fe *FieldError
	require.True(t, errors.As(err, &fe))
	assert.Equal(t, "spec.ingress[0].toPorts[0].rules", fe.Path)
}

func TestCNPValidation(t *testing.T) {
	head := "apiVersion: sluice.io/v1alpha1\nkind: SluiceNetworkPolicy\nmetadata: {name: p, namespace: \"x\"}\n"
	for name, tc := range map[string]struct{ body, want string }{
		"bad port":           {"spec:\n  endpointSelector: {}\n  ingress:\n  - {}\n  - toPorts: [{ports: [{port: \"HTTP\"}]}]\n", `spec.ingress[1].toPorts[0].ports[0].port: "HTTP" is not a valid port`},
		"bad protocol":       {"spec:\n  endpointSelector: {}\n  ingress: [{toPorts: [{ports: [{port: \"80\", protocol: SCTP}]}]}]\n", `spec.ingress[0].toPorts[0].ports[0].protocol: "SCTP" is not a supported protocol`},
		"toFQDNs":            {"spec:\n  endpointSelector: {}\n  egress: [{toFQDNs: [{matchName: example.com}]}]\n", `spec.egress[0].toFQDNs: toFQDNs is not supported`},
		"toServices":         {"spec:\n  endpointSelector: {}\n  egress: [{toServices: [{k8sService: {serviceName: a}}]}]\n", `spec.egress[0].toServices: toServices is not supported`},
		"toGroups":           {"spec:\n  endpointSelector: {}\n  egress: [{toGroups: [{aws: {}}]}]\n", `spec.egress[0].toGroups: toGroups is not supported`},
		"fromRequires":       {"spec:\n  endpointSelector: {}\n  ingress: [{fromRequires: [{}]}]\n", `spec.ingress[0].fromRequires: fromRequires is not supported`},
		"toRequires":         {"spec:\n  endpointSelector: {}\n  egressDeny: [{toRequires: [{}]}]\n", `spec.egressDeny[0].toRequires: toRequires is not supported`},
		"dns rules":          {"spec:\n  endpointSelector: {}\n  egress: [{toPorts: [{ports: [{port: \"53\"}], rules: {dns: [{matchPattern: \"*\"}]}}]}]\n", `spec.egress[0].toPorts[0].rules: L7 policy`},
		"bad entity":         {"spec:\n  endpointSelector: {}\n  ingress: [{fromEntities: [everyone]}]\n", `spec.ingress[0].fromEntities[0]: "everyone" is not a valid entity`},
		"bad cidr":           {"spec:\n  endpointSelector: {}\n  egress: [{toCIDR: [10.0.0.0/33]}]\n", `spec.egress[0].toCIDR[0]: "10.0.0.0/33" is not a valid CIDR`},
		"except outside":     {"spec:\n  endpointSelector: {}\n  egress: [{toCIDRSet: [{cidr: 10.0.0.0/8, except: [11.0.0.0/8]}]}]\n", `spec.egress[0].toCIDRSet[0].except[0]: 11.0.0.0/8 is not inside 10.0.0.0/8`},
		"cidrGroupRef":       {"spec:\n  endpointSelector: {}\n  egress: [{toCIDRSet: [{cidrGroupRef: g}]}]\n", `spec.egress[0].toCIDRSet[0].cidrGroupRef: cidrGroupRef is not supported`},
		"no selector":        {"spec:\n  ingress: [{}]\n", `spec.endpointSelector: required`},
		"nodeSelector":       {"spec:\n  nodeSelector: {}\n  endpointSelector: {}\n", `spec.nodeSelector: host policy (nodeSelector) is not supported`},
		"no spec":            {"", `spec: spec or specs is required`},
		"specs path":         {"specs:\n- endpointSelector: {}\n- endpointSelector: {}\n  egress: [{icmps: [{fields: [{type: Bogus}]}]}]\n", `specs[1].egress[0].icmps[0].fields[0].type: "Bogus" is not a valid ICMP type`},
		"bad operator":       {"spec:\n  endpointSelector: {matchExpressions: [{key: a, operator: Near}]}\n", `spec.endpointSelector: matchExpressions[0].operator: "Near" is not a valid operator`},
		"named port endPort": {"spec:\n  endpointSelector: {}\n  ingress: [{toPorts: [{ports: [{port: http, endPort: 90}]}]}]\n", `spec.ingress[0].toPorts[0].ports[0].endPort: endPort needs a numeric port`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseManifest(head + tc.body)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	// Every problem is reported, not only the first.
	_, err := parseManifest(head + "spec:\n  endpointSelector: {}\n  ingress: [{fromEntities: [x1], toPorts: [{ports: [{port: \"99999\"}]}]}]\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "fromEntities[0]")
	assert.Contains(t, err.Error(), "ports[0].port")
	// Namespace rules.
	_, err = FromSluicePolicy(&SluiceNetworkPolicy{Spec: &Rule{EndpointSelector: nil}})
	assert.ErrorContains(t, err, "metadata.namespace: required")
	cw := &SluiceClusterwideNetworkPolicy{}
	cw.Name, cw.Namespace = "c", "x"
	assert.ErrorContains(t, ValidateClusterwidePolicy(cw), "metadata.namespace: must be empty")
}

func TestCNPSubjectStaysInNamespace(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(`
apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: try-y, namespace: "x"}
spec:
  endpointSelector: {matchLabels: {"k8s:io.kubernetes.pod.namespace": "y"}}
  ingress: [{}]
`)
	assert.Empty(t, c.changed, "a namespaced policy cannot select pods of another namespace")
	c.expect(c.all(true), ProtoTCP, 80)
}
