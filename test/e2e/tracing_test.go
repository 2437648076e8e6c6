package e2e

import (
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

// namespacedExecPolicy is a SluiceTracingPolicyNamespaced killing /echo at
// exec in every pod of ns, or (kprobe) one using a kprobe.
func namespacedExecPolicy(ns, name string, kprobe bool) *unstructured.Unstructured {
	spec := map[string]any{"execs": []any{map[string]any{"selectors": []any{map[string]any{
		"matchBinaries": []any{map[string]any{"operator": "In", "values": []any{"/echo"}}},
		"matchActions":  []any{map[string]any{"action": "Sigkill"}},
	}}}}}
	if kprobe {
		spec = map[string]any{"kprobes": []any{map[string]any{"call": "fd_install", "syscall": false}}}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "sluice.io/v1alpha1", "kind": "SluiceTracingPolicyNamespaced",
		"metadata": map[string]any{"name": name, "namespace": ns}, "spec": spec,
	}}
}

// TestE2ETracingPolicyNamespacedKillsExec: a namespaced exec-prevention
// policy makes `kubectl exec` of /echo fail with 137 in its namespace only,
// and a kprobe policy is rejected in its status with the reason.
func TestE2ETracingPolicyNamespacedKillsExec(t *testing.T) {
	c := connect(t)
	dc, err := dynamic.NewForConfig(c.cfg)
	require.NoError(t, err)
	locked, open := c.namespace(t), c.namespace(t)
	inLocked := c.echoPod(t, locked, "victim", map[string]string{"app": "victim"})
	inOpen := c.echoPod(t, open, "victim", map[string]string{"app": "victim"})
	self := func(p *corev1.Pod) (string, error) { return c.ask(t, p, "tcp", p.Status.PodIP+":9000", "x") }
	for _, p := range []*corev1.Pod{inLocked, inOpen} {
		out, err := self(p)
		require.NoError(t, err, "kubectl exec /echo in %s before the policy", p.Namespace)
		require.Equal(t, "victim x", out)
	}

	res := dc.Resource(k8s.SluiceTracingPolicyNamespacedGVR)
	_, err = res.Namespace(locked).Create(ctxT(t, 10*time.Second), namespacedExecPolicy(locked, "no-echo", false), metav1.CreateOptions{})
	require.NoError(t, err)
	c.waitConditionIn(t, res.Namespace(locked), "no-echo", metav1.ConditionTrue)
	var last string
	err = wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		_, err := self(inLocked)
		last = fmt.Sprint(err)
		return err != nil && strings.Contains(err.Error(), "137"), nil
	})
	require.NoError(t, err, "kubectl exec /echo in %s: want exit code 137, last %s", locked, last)
	out, err := self(inOpen)
	require.NoError(t, err, "the policy is namespaced: /echo still runs in %s", open)
	require.Equal(t, "victim x", out)

	_, err = res.Namespace(open).Create(ctxT(t, 10*time.Second), namespacedExecPolicy(open, "kprobe", true), metav1.CreateOptions{})
	require.NoError(t, err, "the CRD keeps Tetragon's kprobes field so that the agent can reject it")
	cond := c.waitConditionIn(t, res.Namespace(open), "kprobe", metav1.ConditionFalse)
	msg, _ := cond["message"].(string)
	require.Contains(t, msg, "kprobes", "the reason names the field: %q", msg)

	require.NoError(t, res.Namespace(locked).Delete(ctxT(t, 10*time.Second), "no-echo", metav1.DeleteOptions{}))
	err = wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		_, err := self(inLocked)
		return err == nil, nil
	})
	require.NoError(t, err, "the policy deleted, /echo runs again in %s", locked)
}

// TestE2ETracingPolicySyscallSigkill: a namespaced policy on the
// syscalls/sys_enter_connect tracepoint (through the API server, typed by
// the CRD) kills /echo when it connects, in its namespace only: the client
// run by `kubectl exec` exits with 137 there and gets its reply elsewhere.
func TestE2ETracingPolicySyscallSigkill(t *testing.T) {
	c := connect(t)
	dc, err := dynamic.NewForConfig(c.cfg)
	require.NoError(t, err)
	locked, open := c.namespace(t), c.namespace(t)
	inLocked := c.echoPod(t, locked, "caller", map[string]string{"app": "caller"})
	inOpen := c.echoPod(t, open, "caller", map[string]string{"app": "caller"})
	self := func(p *corev1.Pod) (string, error) { return c.ask(t, p, "tcp", p.Status.PodIP+":9000", "x") }
	policy := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "sluice.io/v1alpha1", "kind": "SluiceTracingPolicyNamespaced",
		"metadata": map[string]any{"name": "no-connect", "namespace": locked},
		"spec": map[string]any{"tracepoints": []any{map[string]any{
			"subsystem": "syscalls", "event": "sys_enter_connect",
			"args": []any{map[string]any{"index": int64(5), "type": "int"}},
			"selectors": []any{map[string]any{
				"matchBinaries": []any{map[string]any{"operator": "In", "values": []any{"/echo"}}},
				"matchActions":  []any{map[string]any{"action": "Sigkill"}},
			}},
		}}},
	}}
	res := dc.Resource(k8s.SluiceTracingPolicyNamespacedGVR)
	_, err = res.Namespace(locked).Create(ctxT(t, 10*time.Second), policy, metav1.CreateOptions{})
	require.NoError(t, err)
	c.waitConditionIn(t, res.Namespace(locked), "no-connect", metav1.ConditionTrue)
	var last string
	err = wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		_, err := self(inLocked)
		last = fmt.Sprint(err)
		return err != nil && strings.Contains(err.Error(), "137"), nil
	})
	require.NoError(t, err, "kubectl exec /echo (connecting) in %s: want exit code 137, last %s", locked, last)
	out, err := self(inOpen)
	require.NoError(t, err, "the policy is namespaced: /echo connects in %s", open)
	require.Equal(t, "caller x", out)
}
