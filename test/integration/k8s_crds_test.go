package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/sluicenet/sluice/test/harness"
	"github.com/sluicenet/sluice/test/harness/apiserver"
)

// An agent in Kubernetes mode on a cluster whose CRDs come from an earlier
// release (Helm installs a chart's crds/ on install, never on upgrade), here
// without the tracing policy CRDs, still syncs: it wires pods and enforces
// network policies. When the CRDs are installed later, it watches them: a
// tracing policy created then reaches the agent. (Before, the informers of
// the missing resources never synced and the agent never programmed
// anything: every ADD failed.)
func TestPrivilegedK8sAgentWithoutTracingCRDs(t *testing.T) {
	tracingCRDs := []string{"sluicetracingpolicies.sluice.io", "sluicetracingpoliciesnamespaced.sluice.io"}
	node := harness.NewNode(t, harness.NodeOptions{})
	apis := apiserver.StartWithout(t, node.NS, tracingCRDs...)
	cs := apis.Client
	ctx := context.Background()
	createPod(t, cs, node.Name, "client", "client")
	createPod(t, cs, node.Name, "locked", "locked")
	node.StartAgentWith(t, harness.AgentOptions{Kubeconfig: apis.Kubeconfig, Args: []string{"--process-sensor"}})
	client, locked := node.AddPod(t, "client"), node.AddPod(t, "locked")
	servePods(t, locked)
	requireReply(t, client.NS, locked.Addr(podPort), "locked")

	denyIngress(t, cs, "deny-locked", "locked")
	require.Eventually(t, func() bool {
		_, err := harness.Ask(client.NS, locked.Addr(podPort), 300*time.Millisecond)
		return err != nil
	}, 20*time.Second, 100*time.Millisecond, "the network policy is enforced without the tracing CRDs")

	apis.InstallCRDs(t, tracingCRDs...)
	dc, err := dynamic.NewForConfig(apis.Config)
	require.NoError(t, err)
	gvr := schema.GroupVersionResource{Group: "sluice.io", Version: "v1alpha1", Resource: "sluicetracingpolicies"}
	_, err = dc.Resource(gvr).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "sluice.io/v1alpha1", "kind": "SluiceTracingPolicy",
		"metadata": map[string]any{"name": "fd-install"},
		"spec":     map[string]any{"kprobes": []any{map[string]any{"call": "fd_install", "syscall": false}}},
	}}, metav1.CreateOptions{})
	require.NoError(t, err)
	deadline := time.Now().Add(60 * time.Second)
	for {
		p, err := node.Client().TracingPolicy(ctx, "", "fd-install")
		if err == nil && !p.Accepted && strings.Contains(p.Reason, "kprobes") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tracing policy created after its CRD did not reach the agent (it is rejected for kprobes on this kernel): %+v, %v", p, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
