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

// TestE2EClusterDNS: a pod with the default DNS policy resolves names through
// the cluster DNS (CoreDNS behind the kube-dns Service that kubelet's
// clusterDNS names, itself reached through Sluice): kubernetes.default is the
// kubernetes Service's ClusterIP, a test Service's short and fully qualified
// names are its ClusterIP, a name in the Service's namespace that no Service
// has is NXDOMAIN from 10.96.0.10, and TCP and UDP requests to the Service by
// name reach both backends.
func TestE2EClusterDNS(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t)
	sel := map[string]string{"app": "echo-dns"}
	c.echoPod(t, ns, "backend-1", sel)
	c.echoPod(t, ns, "backend-2", sel)
	client := c.echoPod(t, ns, "client", nil)
	require.Equal(t, corev1.DNSClusterFirst, client.Spec.DNSPolicy)
	svc, err := c.cs.CoreV1().Services(ns).Create(ctxT(t, 30*time.Second), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: corev1.ServiceSpec{Selector: sel, Ports: []corev1.ServicePort{
			{Name: "tcp", Port: 80, TargetPort: intstr.FromInt32(9000), Protocol: corev1.ProtocolTCP},
			{Name: "udp", Port: 53, TargetPort: intstr.FromInt32(9001), Protocol: corev1.ProtocolUDP},
		}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	kube, err := c.cs.CoreV1().Services("default").Get(ctxT(t, 10*time.Second), "kubernetes", metav1.GetOptions{})
	require.NoError(t, err)

	for name, want := range map[string]string{
		"kubernetes.default":                   kube.Spec.ClusterIP,
		"echo":                                 svc.Spec.ClusterIP,
		"echo." + ns + ".svc.cluster.local":    svc.Spec.ClusterIP,
		"kubernetes.default.svc.cluster.local": kube.Spec.ClusterIP,
	} {
		// CoreDNS learns of the new Service through its watch: the first answers may be NXDOMAIN.
		got := c.lookup(t, client, name)
		require.Equal(t, want, got, "%s resolves to the Service's ClusterIP", name)
	}
	// A fully qualified name (no search list) in the cluster zone that no Service has: NXDOMAIN, from the server
	// kubelet's clusterDNS names (Go's resolver says which server answered).
	var out string
	out, err = c.ask(t, client, "lookup", "no-such-service."+ns+".svc.cluster.local.", "")
	require.Error(t, err, "a name no Service has must not resolve (got %q)", out)
	require.Contains(t, err.Error(), "on 10.96.0.10:53: no such host")

	for _, tc := range []struct{ mode, addr string }{{"tcp", "echo:80"}, {"udp", "echo." + ns + ":53"}} {
		requireAllBackends(t, tc.mode+" "+tc.addr, "by-name", []string{"backend-1", "backend-2"},
			func() (string, error) { return c.ask(t, client, tc.mode, tc.addr, "by-name") })
	}
}

// lookup resolves name in pod (the echo client's `lookup`, Go's resolver over
// the pod's /etc/resolv.conf) until it answers, within 30 s, and returns the
// addresses it printed.
func (c *cluster) lookup(t *testing.T, pod *corev1.Pod, name string) string {
	t.Helper()
	var out string
	var err error
	_ = wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		out, err = c.ask(t, pod, "lookup", name, "")
		return err == nil, nil
	})
	require.NoError(t, err, "resolve %s in %s", name, pod.Name)
	return strings.TrimSpace(out)
}
