package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/sluicenet/sluice/agent/source/k8s"
)

// policyPods starts a server (app=srv), a client the policies allow
// (role=allowed) and one they do not, and checks that both reach the server
// before any policy exists.
func policyPods(t *testing.T, c *cluster, ns string) (srv, allowed, denied *corev1.Pod) {
	t.Helper()
	return policyPodsOn(t, c, ns, "", "")
}

// policyPodsOn is policyPods with the server on srvNode and both clients on
// clientNode (the scheduler's choice when empty).
func policyPodsOn(t *testing.T, c *cluster, ns, srvNode, clientNode string) (srv, allowed, denied *corev1.Pod) {
	t.Helper()
	srv = c.echoPodOn(t, ns, "srv", srvNode, map[string]string{"app": "srv"})
	allowed = c.echoPodOn(t, ns, "allowed", clientNode, map[string]string{"role": "allowed"})
	denied = c.echoPodOn(t, ns, "denied", clientNode, map[string]string{"role": "other"})
	for _, p := range []*corev1.Pod{allowed, denied} {
		out, err := c.ask(t, p, "tcp", srv.Status.PodIP+":9000", "before")
		require.NoError(t, err, "%s -> srv before any policy", p.Name)
		require.Equal(t, "srv before", out)
	}
	return srv, allowed, denied
}

// eventually polls until the client's TCP request to the server succeeds
// (wantOK) or fails; a success is always the server naming itself.
func (c *cluster) eventually(t *testing.T, from, srv *corev1.Pod, wantOK bool, what string) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		out, err := c.ask(t, from, "tcp", srv.Status.PodIP+":9000", "x")
		if err == nil {
			require.Equal(t, "srv x", out, "reply from %s", srv.Name)
		}
		last = fmt.Sprintf("out=%q err=%v", out, err)
		return (err == nil) == wantOK, nil
	})
	require.NoError(t, err, "%s: %s -> srv: want ok=%v, last %s", what, from.Name, wantOK, last)
}

// TestE2ENetworkPolicyEnforcedThenRemoved: a Kubernetes NetworkPolicy
// admitting only role=allowed to app=srv:9000 stops the other client and
// keeps the allowed one; deleting it lets the other client in again.
func TestE2ENetworkPolicyEnforcedThenRemoved(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t)
	srv, allowed, denied := policyPods(t, c, ns)
	np := srvFromAllowed()
	_, err := c.cs.NetworkingV1().NetworkPolicies(ns).Create(ctxT(t, 10*time.Second), np, metav1.CreateOptions{})
	require.NoError(t, err)
	c.eventually(t, denied, srv, false, "NetworkPolicy applied")
	c.eventually(t, allowed, srv, true, "NetworkPolicy applied")

	require.NoError(t, c.cs.NetworkingV1().NetworkPolicies(ns).Delete(ctxT(t, 10*time.Second), np.Name, metav1.DeleteOptions{}))
	c.eventually(t, denied, srv, true, "NetworkPolicy deleted")
}

// srvFromAllowed is a NetworkPolicy admitting only role=allowed to
// app=srv:9000/TCP.
func srvFromAllowed() *networkingv1.NetworkPolicy {
	port := intstr.FromInt32(9000)
	tcp := corev1.ProtocolTCP
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "srv-from-allowed"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "srv"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "allowed"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
			}},
		},
	}
}

// sluicePolicy is a SluiceNetworkPolicy (a CiliumNetworkPolicy with only
// apiVersion and kind changed) admitting role=allowed to app=srv on 9000/TCP,
// with extra put into the toPorts entry.
func sluicePolicy(ns, name string, extra map[string]any) *unstructured.Unstructured {
	toPort := map[string]any{"ports": []any{map[string]any{"port": "9000", "protocol": "TCP"}}}
	for k, v := range extra {
		toPort[k] = v
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "sluice.io/v1alpha1",
		"kind":       "SluiceNetworkPolicy",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"endpointSelector": map[string]any{"matchLabels": map[string]any{"app": "srv"}},
			"ingress": []any{map[string]any{
				"fromEndpoints": []any{map[string]any{"matchLabels": map[string]any{"role": "allowed"}}},
				"toPorts":       []any{toPort},
			}},
		},
	}}
}

// waitCondition waits for this node's condition on a Sluice policy to have
// status want and returns it.
func (c *cluster) waitCondition(t *testing.T, dc dynamic.Interface, ns, name string, want metav1.ConditionStatus) map[string]any {
	t.Helper()
	return c.waitConditionIn(t, dc.Resource(k8s.SluiceNetworkPolicyGVR).Namespace(ns), name, want)
}

// waitConditionIn waits for this node's condition on the Sluice object name
// of r to have status want and returns it.
func (c *cluster) waitConditionIn(t *testing.T, r dynamic.ResourceInterface, name string, want metav1.ConditionStatus) map[string]any {
	t.Helper()
	node := c.nodeName(t)
	var cond map[string]any
	var last any
	err := wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		u, err := r.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		list, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		last = list
		for _, e := range list {
			m, _ := e.(map[string]any)
			if m["type"] == k8s.ConditionType(node) && m["status"] == string(want) {
				cond = m
				return true, nil
			}
		}
		return false, nil
	})
	require.NoError(t, err, "policy %s: no %s condition %s; conditions: %v", name, k8s.ConditionType(node), want, last)
	return cond
}

func (c *cluster) nodeName(t *testing.T) string {
	t.Helper()
	nodes, err := c.cs.CoreV1().Nodes().List(ctxT(t, 10*time.Second), metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, nodes.Items, 1)
	return nodes.Items[0].Name
}

// TestE2ESluiceNetworkPolicyEnforcedThenRemoved: the same through a
// SluiceNetworkPolicy, whose status carries this node's Accepted condition.
func TestE2ESluiceNetworkPolicyEnforcedThenRemoved(t *testing.T) {
	c := connect(t)
	dc, err := dynamic.NewForConfig(c.cfg)
	require.NoError(t, err)
	ns := c.namespace(t)
	srv, allowed, denied := policyPods(t, c, ns)

	res := dc.Resource(k8s.SluiceNetworkPolicyGVR).Namespace(ns)
	_, err = res.Create(ctxT(t, 10*time.Second), sluicePolicy(ns, "srv-from-allowed", nil), metav1.CreateOptions{})
	require.NoError(t, err)
	c.eventually(t, denied, srv, false, "SluiceNetworkPolicy applied")
	c.eventually(t, allowed, srv, true, "SluiceNetworkPolicy applied")
	cond := c.waitCondition(t, dc, ns, "srv-from-allowed", metav1.ConditionTrue)
	require.Equal(t, k8s.ReasonAccepted, cond["reason"])
	t.Logf("status condition: %v", cond)

	require.NoError(t, res.Delete(ctxT(t, 10*time.Second), "srv-from-allowed", metav1.DeleteOptions{}))
	c.eventually(t, denied, srv, true, "SluiceNetworkPolicy deleted")
}

// TestE2EInvalidSluicePolicyRejected: a SluiceNetworkPolicy with an L7 rule
// is rejected, not half-applied: its status names the reason and says that
// the pod it selects gets default deny for ingress instead (fail closed,
// --rejected-policy=deny): every client is cut off, the one its rule would
// have let through included.
func TestE2EInvalidSluicePolicyRejected(t *testing.T) {
	c := connect(t)
	dc, err := dynamic.NewForConfig(c.cfg)
	require.NoError(t, err)
	ns := c.namespace(t)
	srv, allowed, denied := policyPods(t, c, ns)

	l7 := map[string]any{"rules": map[string]any{"http": []any{map[string]any{"method": "GET", "path": "/"}}}}
	_, err = dc.Resource(k8s.SluiceNetworkPolicyGVR).Namespace(ns).Create(ctxT(t, 10*time.Second),
		sluicePolicy(ns, "l7", l7), metav1.CreateOptions{})
	require.NoError(t, err, "the CRD schema keeps the L7 field so that the agent can reject it")
	cond := c.waitCondition(t, dc, ns, "l7", metav1.ConditionFalse)
	require.Equal(t, k8s.ReasonRejected, cond["reason"])
	msg, _ := cond["message"].(string)
	require.Contains(t, msg, "L7 policy", "rejection reason: %q", msg)
	require.True(t, strings.Contains(msg, "rules"), "the reason names the field: %q", msg)
	require.True(t, strings.HasSuffix(msg, "; enforcing default deny for ingress"), "the status says what is enforced: %q", msg)
	t.Logf("rejected with: %s", msg)
	// Rejected fails closed: default deny for ingress on srv.
	c.eventually(t, denied, srv, false, "rejected L7 policy")
	c.eventually(t, allowed, srv, false, "rejected L7 policy")
}
