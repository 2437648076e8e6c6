package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/sluicenet/sluice/test/harness"
	"github.com/sluicenet/sluice/test/harness/apiserver"
)

// In Kubernetes mode a pod selected by a deny-all ingress policy is never
// reachable, not even right after CNI ADD returns, although its Pod object
// is created at the same moment as the ADD runs (so the agent's informers
// have not seen it when the ADD reaches the agent): the agent looks the
// Pod up on the API server and answers only with the pod's labels in its
// identity and the policy in the kernel. (Without the lookup the endpoint
// got its namespace's labels only, and the policy selecting app=locked
// missed it when ADD returned.) A pod that does not exist at all fails its
// ADD within the lookup's bound.
func TestPrivilegedK8sPolicyInPlaceBeforeADDReturns(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	apis := apiserver.Start(t, node.NS)
	cs := apis.Client
	ctx := context.Background()
	createPod(t, cs, node.Name, "client", "client")
	node.StartAgentWith(t, harness.AgentOptions{Kubeconfig: apis.Kubeconfig})
	client := node.AddPod(t, "client")
	harness.ServeTCP(t, client.NS, client.Addr(podPort), client.Name)

	denyIngress(t, cs, "deny-locked", "locked")
	require.Eventually(t, func() bool {
		st, err := node.Client().PolicyStatus(ctx)
		return err == nil && len(st) == 1 && st[0].Accepted
	}, 20*time.Second, 20*time.Millisecond, "the agent has the policy")

	const n = 5
	for i := range n {
		name := fmt.Sprintf("locked-%d", i)
		// The Pod object and the ADD at the same moment.
		var wg sync.WaitGroup
		wg.Go(func() { createPod(t, cs, node.Name, name, "locked") })
		p := node.AddPod(t, name)
		wg.Wait()
		harness.ServeTCP(t, p.NS, p.Addr(podPort), p.Name)
		_, err := harness.Ask(client.NS, p.Addr(podPort), 500*time.Millisecond)
		require.Error(t, err, "%s reachable right after ADD: its policy was not in place", p.Name)
	}
	// The client itself is not selected: it is reachable.
	requireReply(t, node.NS, client.Addr(podPort), "client")

	// No Pod object at all: the ADD fails (fail closed), naming the cause.
	start := time.Now()
	_, err := node.TryAddPod(t, "ghost")
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "its pod's labels are unknown"), "ADD error: %v", err)
	require.Less(t, time.Since(start), 15*time.Second, "the lookup is bounded (--pod-fetch-timeout, default 5s)")
	eps, err := node.Client().ListEndpoints(ctx)
	require.NoError(t, err)
	for _, ep := range eps {
		require.NotEqual(t, "ghost", ep.PodName, "the failed ADD left no endpoint")
	}
}

// createPod creates the Pod default/name labelled app=<app>, bound to the
// node (there is no scheduler).
func createPod(t *testing.T, cs kubernetes.Interface, nodeName, name, app string) {
	t.Helper()
	_, err := cs.CoreV1().Pods("default").Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "app", Image: "none"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// denyIngress creates the NetworkPolicy default/name: no ingress to the
// pods labelled app=<app>.
func denyIngress(t *testing.T, cs kubernetes.Interface, name, app string) {
	t.Helper()
	_, err := cs.NetworkingV1().NetworkPolicies("default").Create(context.Background(), &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}
