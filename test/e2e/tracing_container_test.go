package e2e

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/sluicenet/sluice/agent/source/k8s"
)

// TestE2ETracingPolicyContainerSelector: a namespaced exec-prevention policy
// with a containerSelector (name In [sidecar]) makes `kubectl exec -c
// sidecar` of /echo fail with 137, while `kubectl exec -c echo` of the same
// binary in the same pod (same network namespace) runs.
func TestE2ETracingPolicyContainerSelector(t *testing.T) {
	c := connect(t)
	dc, err := dynamic.NewForConfig(c.cfg)
	require.NoError(t, err)
	ns := c.namespace(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "two", Namespace: ns, Labels: map[string]string{"app": "two"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{
				{Name: "echo", Image: echoImage, ImagePullPolicy: corev1.PullNever},
				{Name: "sidecar", Image: echoImage, ImagePullPolicy: corev1.PullNever, Args: []string{"idle"}},
			},
		},
	}
	_, err = c.cs.CoreV1().Pods(ns).Create(ctxT(t, 30*time.Second), pod, metav1.CreateOptions{})
	require.NoError(t, err)
	pod = c.waitReady(t, ns, "two")
	self := func(container string) (string, error) {
		var out bytes.Buffer
		err := c.execIn(ctxT(t, 30*time.Second), pod, container, nil, &out, "/echo", "tcp", pod.Status.PodIP+":9000", "x")
		return strings.TrimSpace(out.String()), err
	}
	for _, ctr := range []string{"echo", "sidecar"} {
		var out string
		err := wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			out, err = self(ctr)
			return err == nil, nil
		})
		require.NoError(t, err, "kubectl exec -c %s /echo before the policy (the server up)", ctr)
		require.Equal(t, "two x", out)
	}

	policy := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "sluice.io/v1alpha1", "kind": "SluiceTracingPolicyNamespaced",
		"metadata": map[string]any{"name": "no-echo-in-sidecar", "namespace": ns},
		"spec": map[string]any{
			"podSelector": map[string]any{"matchLabels": map[string]any{"app": "two"}},
			"containerSelector": map[string]any{"matchExpressions": []any{
				map[string]any{"key": "name", "operator": "In", "values": []any{"sidecar"}},
			}},
			"execs": []any{map[string]any{"selectors": []any{map[string]any{
				"matchBinaries": []any{map[string]any{"operator": "In", "values": []any{"/echo"}}},
				"matchActions":  []any{map[string]any{"action": "Sigkill"}},
			}}}},
		},
	}}
	res := dc.Resource(k8s.SluiceTracingPolicyNamespacedGVR)
	_, err = res.Namespace(ns).Create(ctxT(t, 10*time.Second), policy, metav1.CreateOptions{})
	require.NoError(t, err)
	c.waitConditionIn(t, res.Namespace(ns), "no-echo-in-sidecar", metav1.ConditionTrue)
	var last string
	err = wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		_, err := self("sidecar")
		last = fmt.Sprint(err)
		return err != nil && strings.Contains(err.Error(), "137"), nil
	})
	require.NoError(t, err, "kubectl exec -c sidecar /echo: want exit code 137, last %s", last)
	out, err := self("echo")
	require.NoError(t, err, "the policy selects container sidecar: /echo still runs in container echo")
	require.Equal(t, "two x", out)

	require.NoError(t, res.Namespace(ns).Delete(ctxT(t, 10*time.Second), "no-echo-in-sidecar", metav1.DeleteOptions{}))
	err = wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		_, err := self("sidecar")
		return err == nil, nil
	})
	require.NoError(t, err, "the policy deleted, /echo runs again in container sidecar")
}
