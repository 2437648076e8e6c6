package translate

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodFromObject(t *testing.T) {
	base := func() *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-a", Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{
				{Name: "app", Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: 8080}, {ContainerPort: 9}}},
				{Name: "sidecar", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9100}}},
			}},
		}
	}
	ready := func(s corev1.ConditionStatus) []corev1.PodCondition {
		return []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: s}}
	}

	t.Run("hand-written manifest without status", func(t *testing.T) {
		require.Equal(t, Pod{
			Namespace: "shop", Name: "web-a", Labels: map[string]string{"app": "web"}, NodeName: "node-a", Ready: true,
			Ports: map[string]int32{"web": 8080, "metrics": 9100},
		}, PodFromObject(base()))
	})
	t.Run("dual-stack pod IPs: the IPv4 one", func(t *testing.T) {
		p := base()
		p.Status.PodIP = "fd00::5"
		p.Status.PodIPs = []corev1.PodIP{{IP: "fd00::5"}, {IP: "10.0.1.5"}}
		require.Equal(t, netip.MustParseAddr("10.0.1.5"), PodFromObject(p).IP)
	})
	t.Run("Ready condition decides", func(t *testing.T) {
		p := base()
		p.Status.Conditions = ready(corev1.ConditionFalse)
		require.False(t, PodFromObject(p).Ready)
		p.Status.Conditions = ready(corev1.ConditionTrue)
		require.True(t, PodFromObject(p).Ready)
		p.Status.Conditions = ready(corev1.ConditionTrue)[:1] // conditions, but no Ready one
		require.False(t, PodFromObject(p).Ready)
	})
	t.Run("a pod being deleted is not ready", func(t *testing.T) {
		p := base()
		p.DeletionTimestamp = &metav1.Time{}
		require.False(t, PodFromObject(p).Ready)
		p.Status.Conditions = ready(corev1.ConditionTrue)
		require.False(t, PodFromObject(p).Ready)
	})
}
