package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// TestE2ENetworkPolicyIPBlockExceptPod is issue 16's case 2 on the real
// node: an egress ipBlock holding the whole pod network with one pod's
// address excepted lets the client reach every other pod and not that one
// (ipBlock is about addresses, whoever holds them).
func TestE2ENetworkPolicyIPBlockExceptPod(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t)
	client := c.echoPod(t, ns, "client", map[string]string{"app": "client"})
	excepted := c.echoPod(t, ns, "excepted", map[string]string{"app": "excepted"})
	other := c.echoPod(t, ns, "other", map[string]string{"app": "other"})
	reaches := func(to *corev1.Pod) bool {
		out, err := c.ask(t, client, "tcp", to.Status.PodIP+":9000", "x")
		return err == nil && out == to.Name+" x"
	}
	matrix := func(what string, wantExcepted, wantOther bool) {
		t.Helper()
		var last string
		err := wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
			e, o := reaches(excepted), reaches(other)
			last = fmt.Sprintf("excepted=%v other=%v", e, o)
			return e == wantExcepted && o == wantOther, nil
		})
		require.NoError(t, err, "%s: want excepted=%v other=%v, last %s", what, wantExcepted, wantOther, last)
	}
	matrix("no policy", true, true)

	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "all-but-one-pod"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{
					CIDR: "0.0.0.0/4", Except: []string{excepted.Status.PodIP + "/32"},
				}}},
			}},
		},
	}
	_, err := c.cs.NetworkingV1().NetworkPolicies(ns).Create(ctxT(t, 10*time.Second), np, metav1.CreateOptions{})
	require.NoError(t, err)
	matrix("ipBlock 0.0.0.0/4 except the excepted pod", false, true)

	require.NoError(t, c.cs.NetworkingV1().NetworkPolicies(ns).Delete(ctxT(t, 10*time.Second), np.Name, metav1.DeleteOptions{}))
	matrix("policy deleted", true, true)
}
