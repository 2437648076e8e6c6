package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/test/harness"
)

// A pod selected by a deny-all ingress policy is never reachable, not even
// for a moment after CNI ADD returns: the agent answers the CNI only once
// the pod's identity and policy are in the kernel.
func TestPrivilegedPolicyInPlaceBeforeADDReturns(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgent(t)
	client := node.AddPod(t, "client")
	const n = 5
	// The Pod objects exist before their CNI ADD, as on a real cluster.
	var pods strings.Builder
	for i := range n {
		fmt.Fprintf(&pods, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: locked-%d\n  namespace: default\n  labels: {app: locked}\nspec:\n  containers: [{name: app, image: none}]\n---\n", i)
	}
	writeManifest(t, node, "pods.yaml", pods.String())
	// The policy file was written after the pods: once the agent applied
	// it, it has seen the pods too.
	applyDenyLocked(t, node)

	for i := range n {
		p := node.AddPod(t, fmt.Sprintf("locked-%d", i))
		harness.ServeTCP(t, p.NS, p.Addr(podPort), p.Name)
		_, err := harness.Ask(client.NS, p.Addr(podPort), 500*time.Millisecond)
		require.Error(t, err, "%s reachable right after ADD: its policy was not in place", p.Name)
	}
	// The client itself is not selected: it is reachable.
	harness.ServeTCP(t, client.NS, client.Addr(podPort), client.Name)
	requireReply(t, node.NS, client.Addr(podPort), "client")
}

// Standalone mode: a Pod manifest written right before the pod's ADD, with
// no wait for the agent to read it, is applied when ADD returns (the agent
// reads the manifests directory before it answers an ADD): the pod is
// never reachable through the deny-all policy selecting its labels.
func TestPrivilegedPolicyInPlaceForPodManifestJustWritten(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgent(t)
	client := node.AddPod(t, "client")
	applyDenyLocked(t, node)

	for i := range 5 {
		name := fmt.Sprintf("locked-%d", i)
		writeManifest(t, node, name+".yaml", fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: default\n"+
			"  labels: {app: locked}\nspec:\n  containers: [{name: app, image: none}]\n", name))
		p := node.AddPod(t, name)
		harness.ServeTCP(t, p.NS, p.Addr(podPort), p.Name)
		_, err := harness.Ask(client.NS, p.Addr(podPort), 500*time.Millisecond)
		require.Error(t, err, "%s reachable right after ADD: its policy was not in place", p.Name)
	}
}

// applyDenyLocked writes a deny-all ingress policy for the pods labelled
// app=locked and waits until the agent applied it.
func applyDenyLocked(t *testing.T, node *harness.Node) {
	t.Helper()
	writeManifest(t, node, "policy.yaml", `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: deny-locked
  namespace: default
spec:
  podSelector:
    matchLabels: {app: locked}
  policyTypes: [Ingress]
`)
	require.Eventually(t, func() bool {
		st, err := node.Client().PolicyStatus(context.Background())
		return err == nil && len(st) == 1 && st[0].Accepted
	}, 10*time.Second, 20*time.Millisecond)
}
