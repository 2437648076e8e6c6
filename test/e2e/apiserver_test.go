package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// TestE2EKubernetesServiceFromPod: the `kubernetes` default Service, whose
// endpoint is the API server's host address (a host-network backend), works
// from a pod with no kube-proxy: a TLS handshake verified against the pod's
// service-account CA, then GET /version with its token answers 200 with the
// API server's own version.
func TestE2EKubernetesServiceFromPod(t *testing.T) {
	c := connect(t)
	svc, err := c.cs.CoreV1().Services("default").Get(ctxT(t, 10*time.Second), "kubernetes", metav1.GetOptions{})
	require.NoError(t, err)
	ver, err := c.cs.Discovery().ServerVersion()
	require.NoError(t, err)
	ns := c.namespace(t)
	pod := c.echoPod(t, ns, "api-client", nil)
	addr := fmt.Sprintf("%s:%d", svc.Spec.ClusterIP, svc.Spec.Ports[0].Port)

	var out string
	err = wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		out, err = c.ask(t, pod, "https", addr, "/version")
		return err == nil, nil
	})
	require.NoError(t, err, "GET https://%s/version from %s: %q %v", addr, pod.Name, out, err)
	require.True(t, strings.HasPrefix(out, "HTTP 200"), "reply %q", out)
	require.Contains(t, out, `"gitVersion": "`+ver.GitVersion+`"`, "the reply comes from this cluster's API server")
	t.Logf("kubernetes Service %s from a pod: %s, API server %s", addr, strings.SplitN(out, "\n", 2)[0], ver.GitVersion)
}
