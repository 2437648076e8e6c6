package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/test/harness"
	"github.com/sluicenet/sluice/test/harness/apiserver"
)

// In Kubernetes mode `sluice status` names the mode, the API server's
// answer, the caches and the node's PodCIDR with the addresses used and
// free; with the API server stopped the agent is unhealthy (exit 1), and
// healthy again once it is back.
func TestPrivilegedStatusKubernetes(t *testing.T) {
	harness.RequirePrivileged(t)
	node := harness.NewNode(t, harness.NodeOptions{})
	apis := apiserver.Start(t, node.NS)
	ctx := context.Background()
	_, err := apis.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: node.Name},
		Spec:       corev1.NodeSpec{PodCIDR: node.PodCIDR.String()},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	createPod(t, apis.Client, node.Name, "web", "web")
	node.StartAgentWith(t, harness.AgentOptions{Kubeconfig: apis.Kubeconfig})
	node.AddPod(t, "web")

	var (
		st   api.Status
		code int
	)
	require.Eventually(t, func() bool {
		st, code = statusJSON(t, node)
		return st.Healthy && st.IPAM.PodCIDR != ""
	}, 30*time.Second, 200*time.Millisecond, "healthy, with the node's PodCIDR: %+v", st)
	assert.Zero(t, code)
	assert.Equal(t, "kubernetes", st.Source.Mode)
	assert.Equal(t, "ok", st.Source.APIServer)
	assert.True(t, st.Source.CachesSynced)
	assert.False(t, st.Source.LastSnapshot.IsZero())
	assert.Equal(t, api.IPAMStatus{PodCIDR: node.PodCIDR.String(), Used: 1, Free: 256 - 3 - 1}, st.IPAM)

	apis.StopAPIServer()
	require.Eventually(t, func() bool {
		st, code = statusJSON(t, node)
		return !st.Healthy
	}, 20*time.Second, 200*time.Millisecond, "unhealthy without the API server: %+v", st)
	assert.Equal(t, 1, code)
	assert.NotEqual(t, "ok", st.Source.APIServer)
	assert.Contains(t, strings.Join(st.Problems, "\n"), "kubernetes API server: ")

	apis.StartAgain(t)
	require.Eventually(t, func() bool {
		st, code = statusJSON(t, node)
		return st.Healthy && code == 0
	}, 60*time.Second, 500*time.Millisecond, "healthy again with the API server back: %+v", st)
}
