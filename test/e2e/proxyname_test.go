package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sluicenet/sluice/agent/lb/translate"
)

// TestE2EServiceProxyNameIgnored: the agent (no --service-proxy-name, as
// kube-proxy) leaves a Service labelled service-proxy-name=other-proxy to
// that proxy: its ClusterIP is not programmed, while an unlabelled twin
// created after it with the same selector is.
func TestE2EServiceProxyNameIgnored(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t)
	sel := map[string]string{"app": "echo-proxyname"}
	c.echoPod(t, ns, "backend", sel)
	create := func(name string, labels map[string]string) string {
		svc, err := c.cs.CoreV1().Services(ns).Create(ctxT(t, 30*time.Second), &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: corev1.ServiceSpec{Selector: sel, Ports: []corev1.ServicePort{
				{Name: "tcp", Port: 80, TargetPort: intstr.FromInt32(9000), Protocol: corev1.ProtocolTCP},
			}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		require.NotEmpty(t, svc.Spec.ClusterIP)
		return svc.Spec.ClusterIP + ":80"
	}
	// The ignored Service first: once its twin is programmed, the agent has seen both.
	ignored := create("ignored", map[string]string{translate.LabelServiceProxyName: "other-proxy"})
	twin := create("twin", nil)

	var frontends map[string]bool
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		svcs, err := c.agent.ListServices(ctx)
		if err != nil {
			return false, nil
		}
		frontends = map[string]bool{}
		for _, s := range svcs {
			frontends[s.Frontend] = true
		}
		return frontends[twin], nil
	})
	require.NoError(t, err, "unlabelled twin %s never programmed", twin)
	require.False(t, frontends[ignored], "%s (service-proxy-name=other-proxy) is programmed", ignored)
}
