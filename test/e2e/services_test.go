package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
)

// TestE2EClusterIPService: with no kube-proxy on the node, a pod reaches a
// ClusterIP Service over TCP and UDP and both backends answer, each naming
// itself; a pod that is not a backend never answers.
func TestE2EClusterIPService(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t)
	sel := map[string]string{"app": "echo-svc"}
	c.echoPod(t, ns, "backend-1", sel)
	c.echoPod(t, ns, "backend-2", sel)
	client := c.echoPod(t, ns, "client", nil)
	svc, err := c.cs.CoreV1().Services(ns).Create(ctxT(t, 30*time.Second), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: corev1.ServiceSpec{Selector: sel, Ports: []corev1.ServicePort{
			{Name: "tcp", Port: 80, TargetPort: intstr.FromInt32(9000), Protocol: corev1.ProtocolTCP},
			{Name: "udp", Port: 53, TargetPort: intstr.FromInt32(9001), Protocol: corev1.ProtocolUDP},
		}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	vip := svc.Spec.ClusterIP
	require.NotEmpty(t, vip)

	for _, tc := range []struct{ mode, addr string }{{"tcp", vip + ":80"}, {"udp", vip + ":53"}} {
		seen := map[string]int{}
		// The first replies may fail while the EndpointSlice reaches the agent.
		err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
			out, err := c.ask(t, client, tc.mode, tc.addr, "svc")
			if err != nil {
				return false, nil
			}
			name, msg, _ := strings.Cut(out, " ")
			require.Equal(t, "svc", msg, "%s reply %q", tc.mode, out)
			require.Contains(t, []string{"backend-1", "backend-2"}, name, "%s reply from a pod that is no backend: %q", tc.mode, out)
			seen[name]++
			return len(seen) == 2, nil
		})
		require.NoError(t, err, "%s %s: replies seen %v, want both backends", tc.mode, tc.addr, seen)
		t.Logf("%s %s: %v", tc.mode, tc.addr, seen)
	}
}
