package k8s

import (
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/sluicenet/sluice/agent/source"
)

// The informers' events name the changed objects of each snapshot; the
// first snapshot's changes, and those after a failed snapshot, are unknown.
func TestSnapshotChangesFromEvents(t *testing.T) {
	s, err := New(Config{Client: &kubernetes.Clientset{}, NodeName: "n", Log: logrus.New()})
	require.NoError(t, err)
	meta := func(ns, name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }
	svcs, slices, pods := s.recordingHandler(source.KindService), s.recordingHandler(source.KindEndpointSlice), s.recordingHandler(source.KindPod)

	svcs.OnAdd(&corev1.Service{ObjectMeta: meta("a", "web")}, false)
	assert.Nil(t, s.takeChanges(), "first snapshot")

	svcs.OnUpdate(nil, &corev1.Service{ObjectMeta: meta("a", "web")})
	slices.OnDelete(cache.DeletedFinalStateUnknown{Key: "a/web-1", Obj: &discoveryv1.EndpointSlice{ObjectMeta: meta("a", "web-1")}})
	pods.OnDelete(&corev1.Pod{ObjectMeta: meta("b", "p")})
	pods.OnAdd(&corev1.Pod{ObjectMeta: meta("a", "p")}, false)
	assert.Equal(t, &source.Changes{
		Services:       []types.NamespacedName{{Namespace: "a", Name: "web"}},
		EndpointSlices: []types.NamespacedName{{Namespace: "a", Name: "web-1"}},
		Pods:           []types.NamespacedName{{Namespace: "a", Name: "p"}, {Namespace: "b", Name: "p"}},
	}, s.takeChanges())
	assert.Equal(t, &source.Changes{Services: []types.NamespacedName{}, EndpointSlices: []types.NamespacedName{}, Pods: []types.NamespacedName{}},
		s.takeChanges(), "nothing changed since")

	// An object the handler cannot name: the next changes are unknown.
	svcs.OnDelete("garbage")
	assert.Nil(t, s.takeChanges())
}
