package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/test/harness"
)

// ipBlockNode is a node with pods x/a, x/b and y/c serving their names,
// their Pod and Namespace objects in the manifests directory.
type ipBlockNode struct {
	node    *harness.Node
	a, b, c *harness.Pod
}

func newIPBlockNode(t *testing.T) *ipBlockNode {
	t.Helper()
	n := &ipBlockNode{node: harness.NewNode(t, harness.NodeOptions{})}
	n.node.StartAgent(t)
	n.a, n.b, n.c = n.node.AddPodIn(t, "x", "a"), n.node.AddPodIn(t, "x", "b"), n.node.AddPodIn(t, "y", "c")
	var objs strings.Builder
	objs.WriteString("apiVersion: v1\nkind: Namespace\nmetadata: {name: \"x\"}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: \"y\"}\n")
	for _, p := range []*harness.Pod{n.a, n.b, n.c} {
		harness.ServeTCP(t, p.NS, p.Addr(podPort), p.FullName())
		objs.WriteString(nsPodYAML(p))
	}
	writeManifest(t, n.node, "pods.yaml", objs.String())
	return n
}

// nsPodYAML is p's Pod object, labelled pod=<name>.
func nsPodYAML(p *harness.Pod) string {
	return fmt.Sprintf("---\napiVersion: v1\nkind: Pod\nmetadata: {name: %q, namespace: %q, labels: {pod: %q}}\nspec: {containers: [{name: app, image: none}]}\n",
		p.Name, p.Namespace, p.Name)
}

// reaches says whether from gets to's reply (naming to) within a short
// timeout.
func reaches(from, to *harness.Pod) bool {
	got, err := harness.Ask(from.NS, to.Addr(podPort), 700*time.Millisecond)
	return err == nil && got == to.FullName()
}

// requireMatrix waits until every (from, to, allowed) of cells holds at
// once, then checks each again by name. On failure it logs the agent's
// policy state and flows of the pods involved.
func requireMatrix(t *testing.T, node *harness.Node, what string, cells ...matrixCell) {
	t.Helper()
	held := assert.Eventually(t, func() bool {
		for _, c := range cells {
			if reaches(c.from, c.to) != c.allowed {
				return false
			}
		}
		return true
	}, 20*time.Second, 200*time.Millisecond, "%s: the connectivity matrix never held", what)
	if !held {
		logPolicyState(t, node, cells)
		t.FailNow()
	}
	for _, c := range cells {
		require.Equal(t, c.allowed, reaches(c.from, c.to), "%s: %s -> %s", what, c.from.FullName(), c.to.FullName())
	}
}

// logPolicyState logs the endpoint policy of every pod in cells and the
// agent's last flows.
func logPolicyState(t *testing.T, node *harness.Node, cells []matrixCell) {
	t.Helper()
	ctx := context.Background()
	for _, c := range cells {
		for _, p := range []*harness.Pod{c.from, c.to} {
			ep, err := node.Client().EndpointPolicy(ctx, p.ContainerID, "eth0")
			t.Logf("policy of %s: %+v (err %v)", p.FullName(), ep, err)
		}
		t.Logf("%s -> %s reaches: %v, want %v", c.from.FullName(), c.to.FullName(), reaches(c.from, c.to), c.allowed)
	}
	_ = node.Client().Flows(ctx, api.FlowFilter{Last: 10}, func(f api.Flow) error {
		t.Logf("flow %+v", f)
		return nil
	})
}

type matrixCell struct {
	from, to *harness.Pod
	allowed  bool
}

func egressPolicy(name, egress string) string {
	return fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: %s, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress:
%s`, name, egress)
}

// The three cases: ipBlock matches pod addresses too, whoever holds
// them, and one rule's except does not cancel another rule's allow.
func TestPrivilegedPolicyIPBlockMatchesPods(t *testing.T) {
	n := newIPBlockNode(t)
	a, b, c := n.a, n.b, n.c
	requireMatrix(t, n.node, "no policy", matrixCell{a, b, true}, matrixCell{a, c, true})

	// 1: only the /32 of pod y/c on the pod port.
	writeManifest(t, n.node, "policy.yaml", egressPolicy("only-c", fmt.Sprintf(
		"  - to: [{ipBlock: {cidr: %s/32}}]\n    ports: [{port: %d, protocol: TCP}]\n", c.IP, podPort)))
	requireMatrix(t, n.node, "case 1 (/32 of y/c)", matrixCell{a, c, true}, matrixCell{a, b, false})
	// The flow names the rule that allowed it; the endpoint's policy shows
	// the address entry with that rule.
	var rule string
	require.NoError(t, n.node.Client().Flows(context.Background(), api.FlowFilter{FromPod: a.FullName(), ToPod: c.FullName(), Verdict: "FORWARDED"},
		func(f api.Flow) error {
			if f.Direction == "egress" {
				rule = f.Rule
			}
			return nil
		}))
	require.Contains(t, rule, "only-c", "the forwarded flow names the ipBlock rule")
	ep, err := n.node.Client().EndpointPolicy(context.Background(), a.ContainerID, "eth0")
	require.NoError(t, err)
	var shown bool
	for _, ad := range ep.Addrs {
		shown = shown || (ad.Prefix == c.IP.String()+"/32" && len(ad.Rules) > 0)
	}
	require.True(t, shown, "sluice policy get shows %s/32 with its rule: %+v", c.IP, ep.Addrs)

	// 2: a block holding the whole pod network, except x/b.
	writeManifest(t, n.node, "policy.yaml", egressPolicy("all-but-b", fmt.Sprintf(
		"  - to: [{ipBlock: {cidr: 0.0.0.0/4, except: [%s/32]}}]\n", b.IP)))
	requireMatrix(t, n.node, "case 2 (0.0.0.0/4 except x/b)", matrixCell{a, c, true}, matrixCell{a, b, false})

	// 3: one rule excepts x/b, another allows exactly x/b.
	writeManifest(t, n.node, "policy.yaml", egressPolicy("two-rules", fmt.Sprintf(
		"  - to: [{ipBlock: {cidr: %s, except: [%s/32]}}]\n  - to: [{ipBlock: {cidr: %s/32}}]\n",
		harness.PodCIDR, b.IP, b.IP)))
	requireMatrix(t, n.node, "case 3 (except in one rule, allow in another)", matrixCell{a, c, true}, matrixCell{a, b, true})

	// Two excepts in one block; then a pod created after the policy, inside
	// the block, is reached.
	writeManifest(t, n.node, "policy.yaml", egressPolicy("two-excepts", fmt.Sprintf(
		"  - to: [{ipBlock: {cidr: %s, except: [%s/32, %s/32]}}]\n", harness.PodCIDR, b.IP, c.IP)))
	requireMatrix(t, n.node, "two excepts", matrixCell{a, b, false}, matrixCell{a, c, false})
	d := n.node.AddPodIn(t, "y", "d")
	harness.ServeTCP(t, d.NS, d.Addr(podPort), d.FullName())
	writeManifest(t, n.node, "pod-d.yaml", nsPodYAML(d))
	requireMatrix(t, n.node, "a pod created after the policy, inside the block", matrixCell{a, d, true}, matrixCell{a, b, false})
}

// Ingress from a pod by its /32, and a deny on a pod address (a
// SluiceNetworkPolicy with address semantics) beating an identity allow.
func TestPrivilegedPolicyIPBlockIngressAndAddressDeny(t *testing.T) {
	n := newIPBlockNode(t)
	a, b, c := n.a, n.b, n.c
	writeManifest(t, n.node, "policy.yaml", fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-a, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  policyTypes: [Ingress]
  ingress:
  - from: [{ipBlock: {cidr: %s/32}}]
`, a.IP))
	requireMatrix(t, n.node, "ingress of x/b from the /32 of x/a", matrixCell{a, b, true}, matrixCell{c, b, false})

	writeManifest(t, n.node, "policy.yaml", fmt.Sprintf(`apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata:
  name: deny-a-address
  namespace: x
  annotations: {sluice.io/cidr-semantics: address}
spec:
  endpointSelector: {matchLabels: {pod: b}}
  ingress:
  - fromEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": x}}, {matchLabels: {"k8s:io.kubernetes.pod.namespace": "y"}}]
  ingressDeny:
  - fromCIDRSet: [{cidr: %s/32}]
`, a.IP))
	requireMatrix(t, n.node, "a deny on x/a's address beats the identity allow", matrixCell{a, b, false}, matrixCell{c, b, true})
}
