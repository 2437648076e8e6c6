package integration

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/test/harness"
)

const (
	rejectedL7 = `apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: l7, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules: {http: [{method: GET}]}
`
	rejectedFQDN = `apiVersion: sluice.io/v1alpha1
kind: SluiceNetworkPolicy
metadata: {name: fqdn, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
  - toFQDNs: [{matchName: example.com}]
`
)

// A SluiceNetworkPolicy rejected for an unsupported field fails closed: the
// pod it selects gets default deny in the directions the policy covers
// (an L7 ingress rule: ingress; a toFQDNs egress rule: egress), its status
// says so, the endpoint's policy names the rejected policy, and the drop
// flow is the plain default-deny drop (drop-policy, no rule), as for any
// endpoint an ingress/egress section selects with nothing allowed. Pods it
// does not select, and the directions it does not cover, keep working.
// Removing the policy opens the pod again. With --rejected-policy=ignore
// nothing of it applies, as its status says.
func TestPrivilegedRejectedPolicyFailsClosed(t *testing.T) {
	t.Run("deny (default)", func(t *testing.T) {
		node, web, client := rejectedPolicyNode(t)
		writeManifest(t, node, "l7.yaml", rejectedL7)
		st := waitRejected(t, node, "l7")
		assert.Equal(t, []string{"ingress"}, st.DefaultDeny)
		assert.Contains(t, st.Message, "spec.ingress[0].toPorts[0].rules: L7 policy")
		assert.True(t, strings.HasSuffix(st.Message, "; enforcing default deny for ingress"), "status %q", st.Message)
		assert.Equal(t, 1, st.Endpoints)

		// The status is written by the sync that wrote the maps: no wait.
		_, err := harness.Ask(client.NS, web.Addr(podPort), 700*time.Millisecond)
		require.Error(t, err, "client reaches web through a rejected ingress policy")
		requireReply(t, web.NS, client.Addr(podPort), "client") // egress not covered
		requireReply(t, client.NS, client.Addr(podPort), "client")
		requireFlow(t, node, api.FlowFilter{Verdict: "DROPPED", FromPod: "default/client", ToPod: "default/web"}, "")
		requireDefaultDenyFlow(t, node)

		ep, err := node.Client().EndpointPolicy(context.Background(), web.ContainerID, "eth0")
		require.NoError(t, err)
		assert.True(t, ep.IngressEnforced)
		assert.False(t, ep.EgressEnforced)
		assert.Equal(t, []string{"default/l7[rejected-ingress:0]"}, ep.SelectedBy)

		// An egress policy rejected for toFQDNs closes egress too.
		writeManifest(t, node, "fqdn.yaml", rejectedFQDN)
		st = waitRejected(t, node, "fqdn")
		assert.Equal(t, []string{"egress"}, st.DefaultDeny)
		_, err = harness.Ask(web.NS, client.Addr(podPort), 700*time.Millisecond)
		require.Error(t, err, "web reaches client through a rejected egress policy")

		require.NoError(t, os.Remove(filepath.Join(node.ManifestsDir, "l7.yaml")))
		require.NoError(t, os.Remove(filepath.Join(node.ManifestsDir, "fqdn.yaml")))
		require.Eventually(t, func() bool {
			got, err := harness.Ask(client.NS, web.Addr(podPort), 700*time.Millisecond)
			back, err2 := harness.Ask(web.NS, client.Addr(podPort), 700*time.Millisecond)
			return err == nil && got == "web" && err2 == nil && back == "client"
		}, 10*time.Second, 100*time.Millisecond, "web open again once the rejected policies are gone")
	})

	t.Run("ignore", func(t *testing.T) {
		node, web, client := rejectedPolicyNode(t, "--rejected-policy=ignore")
		writeManifest(t, node, "l7.yaml", rejectedL7)
		st := waitRejected(t, node, "l7")
		assert.Empty(t, st.DefaultDeny)
		assert.True(t, strings.HasSuffix(st.Message, "; not enforced (rejected-policy=ignore)"), "status %q", st.Message)
		assert.Equal(t, 0, st.Endpoints)
		requireReply(t, client.NS, web.Addr(podPort), "web")
		ep, err := node.Client().EndpointPolicy(context.Background(), web.ContainerID, "eth0")
		require.NoError(t, err)
		assert.False(t, ep.IngressEnforced)
		assert.Empty(t, ep.SelectedBy)
	})
}

// rejectedPolicyNode starts a node whose agent runs with args, and pods web
// (app=web) and client (app=client) serving podPort; each reaches the other.
func rejectedPolicyNode(t *testing.T, args ...string) (node *harness.Node, web, client *harness.Pod) {
	t.Helper()
	node = harness.NewNode(t, harness.NodeOptions{})
	node.StartAgentArgs(t, args...)
	web, client = node.AddPod(t, "web"), node.AddPod(t, "client")
	writeManifest(t, node, "pods.yaml", podYAML(web, "web")+"---\n"+podYAML(client, "client"))
	for _, p := range []*harness.Pod{web, client} {
		harness.ServeTCP(t, p.NS, p.Addr(podPort), p.Name)
	}
	requireReply(t, client.NS, web.Addr(podPort), "web")
	requireReply(t, web.NS, client.Addr(podPort), "client")
	// The policy manager knows web's labels before a policy comes.
	require.Eventually(t, func() bool {
		ep, err := node.Client().EndpointPolicy(context.Background(), web.ContainerID, "eth0")
		return err == nil && slices.Contains(ep.Labels, "k8s:app=web")
	}, 10*time.Second, 50*time.Millisecond, "web's labels")
	return node, web, client
}

// waitRejected waits until the agent lists the policy default/name as
// rejected and returns its status.
func waitRejected(t *testing.T, node *harness.Node, name string) api.PolicyStatus {
	t.Helper()
	var got api.PolicyStatus
	require.Eventually(t, func() bool {
		st, err := node.Client().PolicyStatus(context.Background())
		if err != nil {
			return false
		}
		for _, s := range st {
			if s.Name == name && !s.Accepted {
				got = s
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "policy %s rejected", name)
	return got
}

// requireDefaultDenyFlow requires the drop of client → web to read as a
// default-deny drop: reason drop-policy and no rule.
func requireDefaultDenyFlow(t *testing.T, node *harness.Node) {
	t.Helper()
	var flows []api.Flow
	err := node.Client().Flows(context.Background(), api.FlowFilter{Verdict: "DROPPED", FromPod: "default/client", ToPod: "default/web"},
		func(fl api.Flow) error {
			flows = append(flows, fl)
			return nil
		})
	require.NoError(t, err)
	require.NotEmpty(t, flows)
	for _, fl := range flows {
		assert.Equal(t, "drop-policy", fl.Reason, "%+v", fl)
		assert.Empty(t, fl.Rule, "%+v", fl)
	}
}
