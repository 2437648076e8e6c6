package daemon

import (
	"testing"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The node health check's nodeEligible follows kube-proxy: false for a node
// being deleted or tainted ToBeDeletedByClusterAutoscaler; a node without
// Node object (standalone) is eligible.
func TestNodeEligible(t *testing.T) {
	now := metav1.Now()
	node := func(name string, mut func(*corev1.Node)) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if mut != nil {
			mut(n)
		}
		return n
	}
	assert.True(t, nodeEligible(nil, "a"))
	assert.True(t, nodeEligible([]*corev1.Node{node("a", nil)}, "a"))
	assert.False(t, nodeEligible([]*corev1.Node{node("a", func(n *corev1.Node) { n.DeletionTimestamp = &now })}, "a"))
	assert.False(t, nodeEligible([]*corev1.Node{node("a", func(n *corev1.Node) {
		n.Spec.Taints = []corev1.Taint{{Key: toBeDeletedTaint, Effect: corev1.TaintEffectNoSchedule}}
	})}, "a"))
	assert.True(t, nodeEligible([]*corev1.Node{node("b", func(n *corev1.Node) { n.DeletionTimestamp = &now })}, "a"), "another node")
}
