package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
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
	c.requireEchoService(t, ns, sel, client, []string{"backend-1", "backend-2"})
}

// requireEchoService creates the ClusterIP Service echo (TCP 80 -> 9000, UDP
// 53 -> 9001) of the pods sel selects in ns, and requires that client reaches
// every one of backends over TCP and over UDP, each naming itself.
func (c *cluster) requireEchoService(t *testing.T, ns string, sel map[string]string, client *corev1.Pod, backends []string) {
	t.Helper()
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
		// The first replies may fail while the EndpointSlice reaches the agent.
		requireAllBackends(t, tc.mode+" "+tc.addr, "svc", backends,
			func() (string, error) { return c.ask(t, client, tc.mode, tc.addr, "svc") })
	}
}
