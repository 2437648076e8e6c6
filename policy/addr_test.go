package policy

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/identity"
)

// knpEgress is a NetworkPolicy of namespace x selecting pod a in egress.
func knpEgress(name, egress string) string {
	return `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ` + name + `, namespace: "x"}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress:
` + egress
}

// Issue 16, case 1: an egress /32 ipBlock of a pod allows that pod only.
func TestAddrIPBlockPodSlash32(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(knpEgress("to-yb", `
  - to: [{ipBlock: {cidr: 172.20.0.5/32}}]
    ports: [{port: 80}]
`))
	require.Equal(t, netip.MustParseAddr("172.20.0.5"), c.ip["y/b"])
	assert.Empty(t, c.r.Prefixes(), "an ipBlock needs no CIDR identity")
	c.expect(c.all(true).set("x/a", "*", false).set("x/a", "y/b", true), ProtoTCP, 80)
	c.expect(c.all(true).set("x/a", "*", false), ProtoTCP, 81)
	c.expect(c.all(true).set("x/a", "*", false), ProtoUDP, 80)
	ok, rule := c.verdictAddr("x/a", Egress, "172.20.0.5", ProtoTCP, 80)
	assert.True(t, ok)
	assert.Equal(t, RuleRef{Kind: KindKubernetesPolicy, Namespace: "x", Name: "to-yb", Section: "egress"}, rule,
		"the address stage names the rule")

	p, _ := c.r.MapState(c.ep["x/a"])
	assert.True(t, p.EgressAddr)
	assert.False(t, p.IngressAddr)
	set := AddrSetBase | 1
	assert.Equal(t, map[AddrKey]identity.NumericIdentity{{Egress, netip.MustParsePrefix("172.20.0.5/32")}: set}, p.Addrs)
	assert.Equal(t, []RuleRef{rule}, p.AddrSetRules(Egress, set))
	assert.Equal(t, Entry{Rule: rule}, p.Entries[Key{Direction: Egress, PeerIdentity: set, Proto: ProtoTCP, PortLo: 80, PortHi: 80}])
}

// Issue 16, case 2: a block holding the pod network with one pod excepted.
func TestAddrIPBlockExceptPod(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(knpEgress("all-but-xb", `
  - to: [{ipBlock: {cidr: 172.16.0.0/12, except: [172.20.0.2/32]}}]
`))
	c.expect(c.all(true).set("x/a", "x/b", false), ProtoTCP, 80)
	c.expect(c.all(true).set("x/a", "x/b", false), ProtoUDP, 81)
	assert.True(t, c.verdictTo("x/a", "172.31.0.9", ProtoTCP, 443), "any holder of the block")
	assert.False(t, c.verdictTo("x/a", "10.0.0.1", ProtoTCP, 443), "outside the block")

	p, _ := c.r.MapState(c.ep["x/a"])
	assert.Equal(t, map[AddrKey]identity.NumericIdentity{
		{Egress, netip.MustParsePrefix("172.16.0.0/12")}: AddrSetBase | 1,
		{Egress, netip.MustParsePrefix("172.20.0.2/32")}: 0, // the hole
	}, p.Addrs)
}

// Issue 16, case 3: one rule's except does not cancel another rule's allow.
func TestAddrExceptOfOneRuleAllowOfAnother(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(knpEgress("two-rules", `
  - to: [{ipBlock: {cidr: 172.20.0.0/24, except: [172.20.0.2/32]}}]
  - to: [{ipBlock: {cidr: 172.20.0.2/32}}]
`))
	c.expect(c.all(true), ProtoTCP, 80)
	_, rule := c.verdictAddr("x/a", Egress, "172.20.0.2", ProtoTCP, 80)
	assert.Equal(t, 1, rule.Index, "x/b is allowed by the second rule")
	_, rule = c.verdictAddr("x/a", Egress, "172.20.0.3", ProtoTCP, 80)
	assert.Equal(t, 0, rule.Index)

	// The same two blocks in one rule: the except wins inside that rule,
	// but the /32 block still allows (Kubernetes: peers are ORed).
	c.apply(knpEgress("two-rules", `
  - to:
    - ipBlock: {cidr: 172.20.0.0/24, except: [172.20.0.2/32]}
    - ipBlock: {cidr: 172.20.0.2/32}
    ports: [{port: 80}]
`))
	c.expect(c.all(true), ProtoTCP, 80)
	c.expect(c.all(true).set("x/a", "*", false), ProtoTCP, 81)
}

func TestAddrBlockTwoExcepts(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: two-excepts, namespace: "y"}
spec:
  podSelector: {matchLabels: {pod: c}}
  ingress:
  - from: [{ipBlock: {cidr: 172.20.0.0/28, except: [172.20.0.1/32, 172.20.0.8/30]}}]
`)
	// Excepted: 172.20.0.1 (x/a) and 172.20.0.8-11 (z/b, z/c; 10, 11 unused).
	want := c.all(true).set("x/a", "y/c", false).set("z/b", "y/c", false).set("z/c", "y/c", false)
	c.expect(want, ProtoTCP, 80)
	assert.True(t, c.verdictFromAddr("y/c", "172.20.0.7", ProtoTCP, 80), "z/a")
	assert.False(t, c.verdictFromAddr("y/c", "172.20.0.11", ProtoTCP, 80))
	assert.False(t, c.verdictFromAddr("y/c", "172.20.0.16", ProtoTCP, 80), "outside")
	assert.False(t, c.verdictFromAddr("y/c", "127.0.0.1", ProtoTCP, 80), "host, outside")
}

// An ingress /32 ipBlock of a pod: only that pod gets in.
func TestAddrIngressFromPodSlash32(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-zc, namespace: "x"}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{ipBlock: {cidr: 172.20.0.9/32}}]
`)
	c.expect(c.all(true).set("*", "x/a", false).set("z/c", "x/a", true), ProtoTCP, 80)
}

// A deny on a pod's address (SNP ingressDeny fromCIDRSet with address
// semantics) beats an identity allow; without the annotation the CIDR means
// CIDR identities and no pod is denied.
func TestAddrDenyBeatsIdentityAllow(t *testing.T) {
	c := newCluster(t, Options{})
	deny := func(annotation string) string {
		return `
apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata:
  name: deny-yb
  namespace: "x"
` + annotation + `
spec:
  endpointSelector: {matchLabels: {pod: a}}
  ingress:
  - fromEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": "y"}}]
  ingressDeny:
  - fromCIDRSet: [{cidr: 172.20.0.4/30, except: [172.20.0.4/32]}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
`
	}
	c.apply(deny("  annotations: {sluice.io/cidr-semantics: address}"))
	// 172.20.0.4/30 minus .4: y/b (.5), y/c (.6) and z/a (.7) denied on TCP
	// 80; y/a (.4, the hole) still allowed by its identity.
	c.expect(c.all(true).set("*", "x/a", false).set("y/a", "x/a", true), ProtoTCP, 80)
	c.expect(c.all(true).set("*", "x/a", false).set("y/*", "x/a", true), ProtoTCP, 81)
	ok, rule := c.verdictAddr("x/a", Ingress, "172.20.0.5", ProtoTCP, 80)
	assert.False(t, ok)
	assert.Equal(t, "ingressDeny", rule.Section)

	c.apply(deny("  annotations: {sluice.io/cidr-semantics: identity}"))
	c.expect(c.all(true).set("*", "x/a", false).set("y/*", "x/a", true), ProtoTCP, 80)
	c.apply(deny(""))
	c.expect(c.all(true).set("*", "x/a", false).set("y/*", "x/a", true), ProtoTCP, 80)
	assert.Equal(t, []string{"172.20.0.4/30", "172.20.0.4/32"}, prefixStrings(c.r.Prefixes()),
		"identity semantics keep CIDR identities")
}

// Named ports and endPort work with address peers (an egress named port
// resolves on every local endpoint, as for any peer).
func TestAddrNamedPortAndEndPort(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(knpEgress("ports", `
  - to: [{ipBlock: {cidr: 172.20.0.5/32}}]
    ports: [{port: serve-81-tcp}]
  - to: [{ipBlock: {cidr: 172.20.0.6/32}}]
    ports: [{port: 80, endPort: 81, protocol: UDP}]
`))
	c.expect(c.all(true).set("x/a", "*", false).set("x/a", "y/b", true), ProtoTCP, 81)
	c.expect(c.all(true).set("x/a", "*", false), ProtoTCP, 80)
	c.expect(c.all(true).set("x/a", "*", false).set("x/a", "y/c", true), ProtoUDP, 80)
	c.expect(c.all(true).set("x/a", "*", false).set("x/a", "y/c", true), ProtoUDP, 81)
	assert.False(t, c.verdictTo("x/a", "172.20.0.6", ProtoUDP, 82))

	// Ingress: the selected pod's own named port.
	c.apply(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: in-named, namespace: "z"}
spec:
  podSelector: {}
  ingress:
  - from: [{ipBlock: {cidr: 172.20.0.0/30}}]
    ports: [{port: serve-80-udp, protocol: UDP}]
`)
	// 172.20.0.0/30: x/a (.1), x/b (.2), x/c (.3).
	c.expect(c.all(true).set("*", "z/*", false).set("x/*", "z/*", true).set("x/a", "*", false).set("x/a", "y/c", true), ProtoUDP, 80)
	c.expect(c.all(true).set("*", "z/*", false).set("x/a", "*", false).set("x/a", "y/c", true), ProtoUDP, 81)
}

// Diff covers address nodes; a set that keeps its rules and entries keeps
// its number, a changed set gets a new one.
func TestAddrDiff(t *testing.T) {
	c := newCluster(t, Options{})
	c.apply(knpEgress("d", `
  - to: [{ipBlock: {cidr: 172.20.0.0/24}}]
  - to: [{ipBlock: {cidr: 10.0.0.0/8}}]
    ports: [{port: 53, protocol: UDP}]
`))
	old, _ := c.r.MapState(c.ep["x/a"])
	pfx := func(s string) AddrKey { return AddrKey{Egress, netip.MustParsePrefix(s)} }
	require.Equal(t, map[AddrKey]identity.NumericIdentity{pfx("10.0.0.0/8"): AddrSetBase | 1, pfx("172.20.0.0/24"): AddrSetBase | 2}, old.Addrs)

	c.apply(knpEgress("d", `
  - to: [{ipBlock: {cidr: 172.20.0.0/24, except: [172.20.0.2/32]}}]
  - to: [{ipBlock: {cidr: 10.0.0.0/8}}]
    ports: [{port: 53, protocol: UDP}, {port: 5353, protocol: UDP}]
`))
	assert.Equal(t, c.eps("x/a"), c.changed)
	cur, _ := c.r.MapState(c.ep["x/a"])
	// 172.20.0.0/24's set keeps its rule and entries: still 2. 10/8's set
	// gained an entry: a number the old state did not use (3).
	d := Diff(old, cur)
	assert.Equal(t, map[AddrKey]identity.NumericIdentity{pfx("10.0.0.0/8"): AddrSetBase | 3, pfx("172.20.0.2/32"): 0}, d.AddrUpserts)
	assert.Empty(t, d.AddrDeletes)
	udp := func(set identity.NumericIdentity, port uint16) Key {
		return Key{Direction: Egress, PeerIdentity: set, Proto: ProtoUDP, PortLo: port, PortHi: port}
	}
	assert.Len(t, d.Upserts, 2)
	assert.Contains(t, d.Upserts, udp(AddrSetBase|3, 53))
	assert.Contains(t, d.Upserts, udp(AddrSetBase|3, 5353))
	assert.Equal(t, []Key{udp(AddrSetBase|1, 53)}, d.Deletes)
	assert.False(t, d.Empty())
	assert.True(t, Diff(cur, cur).Empty())

	// Removing the policy removes every node.
	c.r.DeletePolicy(Ref{Kind: KindKubernetesPolicy, Namespace: "x", Name: "d"})
	gone, _ := c.r.MapState(c.ep["x/a"])
	d = Diff(cur, gone)
	assert.Equal(t, []AddrKey{pfx("10.0.0.0/8"), pfx("172.20.0.0/24"), pfx("172.20.0.2/32")}, d.AddrDeletes)
	assert.False(t, gone.EgressAddr)
}

func TestAddrAnnotationValidation(t *testing.T) {
	_, err := parseManifest(`
apiVersion: sluice.io/v1alpha1
kind: SluiceClusterwideNetworkPolicy
metadata:
  name: p
  annotations: {sluice.io/cidr-semantics: addresses}
spec:
  endpointSelector: {}
  egress: [{toCIDR: [10.0.0.0/8]}]
`)
	require.Error(t, err)
	assert.ErrorContains(t, err, `metadata.annotations[sluice.io/cidr-semantics]: "addresses" is not a valid value (want "address" or "identity")`)

	p, err := parseManifest(`
apiVersion: sluice.io/v1alpha1
kind: SluiceClusterwideNetworkPolicy
metadata:
  name: p
  annotations: {sluice.io/cidr-semantics: address}
spec:
  endpointSelector: {}
  egress: [{toCIDR: [10.0.0.0/8, "2001:db8::/32"]}]
`)
	require.NoError(t, err)
	assert.Equal(t, []string{"2001:db8::/32"}, prefixStrings(p.Prefixes()), "IPv6 blocks keep CIDR identities")
	assert.Contains(t, p.String(), "addr 10.0.0.0/8")
}
