package k8s

import (
	"fmt"
	"strconv"
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
)

// newStoreSource returns a Source whose informer stores are filled directly
// (nothing talks to an API server): Snapshot reads only those stores.
func newStoreSource(t testing.TB) (*Source, cache.Indexer, cache.Indexer) {
	s, err := New(Config{Client: &kubernetes.Clientset{}, NodeName: "n", Log: logrus.New()})
	require.NoError(t, err)
	core, disc := s.factory.Core().V1(), s.factory.Discovery().V1()
	return s, core.Services().Informer().GetIndexer(), disc.EndpointSlices().Informer().GetIndexer()
}

func testService(i, version int) *corev1.Service {
	n := fmt.Sprintf("svc-%05d", i)
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: n, UID: types.UID("uid-" + n), ResourceVersion: strconv.Itoa(version)},
		Spec: corev1.ServiceSpec{ClusterIP: fmt.Sprintf("10.96.%d.%d", i/250, i%250+1),
			Ports: []corev1.ServicePort{{Name: "http", Port: int32(80 + version)}}},
	}
}

func testSlice(i int) *discoveryv1.EndpointSlice {
	n := fmt.Sprintf("svc-%05d", i)
	port := int32(8080)
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: n + "-abcde", UID: types.UID("uid-slice-" + n), ResourceVersion: "1",
			Labels: map[string]string{discoveryv1.LabelServiceName: n}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Port: &port}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.0.2"}}, {Addresses: []string{"10.244.0.3"}}},
	}
}

// A snapshot never hands out the cache's own objects; an object whose
// resourceVersion did not change since the last snapshot is handed out as
// the same copy, a changed one as a new copy of the new version, and a
// deleted one is forgotten.
func TestSnapshotCopiesOnlyChangedObjects(t *testing.T) {
	s, svcs, _ := newStoreSource(t)
	for i := range 3 {
		require.NoError(t, svcs.Add(testService(i, 1)))
	}
	first, err := s.Snapshot()
	require.NoError(t, err)
	require.Len(t, first.Services, 3)
	for _, o := range first.Services {
		cached, _, _ := svcs.GetByKey("ns/" + o.Name)
		assert.NotSame(t, cached, o, "%s: the cache's own object", o.Name)
	}

	require.NoError(t, svcs.Update(testService(1, 2)))
	require.NoError(t, svcs.Delete(testService(2, 1)))
	second, err := s.Snapshot()
	require.NoError(t, err)
	require.Len(t, second.Services, 2)
	assert.Same(t, first.Services[0], second.Services[0], "unchanged: the same copy")
	assert.NotSame(t, first.Services[1], second.Services[1], "changed: a new copy")
	assert.Equal(t, int32(82), second.Services[1].Spec.Ports[0].Port)
	assert.Equal(t, int32(81), first.Services[1].Spec.Ports[0].Port, "the last snapshot's copy is untouched")
	assert.Len(t, s.copies.services.byUID, 2, "the deleted Service's copy is forgotten")

	// The same name recreated (new UID) is a new object even at an equal version.
	recreated := testService(2, 1)
	recreated.UID = "uid-new"
	require.NoError(t, svcs.Add(recreated))
	third, err := s.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, types.UID("uid-new"), third.Services[2].UID)
}

// BenchmarkSnapshot10k is the Kubernetes source's cost per change at 10 000
// Services with one EndpointSlice each: one Service gets a new version, then
// a snapshot is taken (what every debounced change does before the managers
// see it).
func BenchmarkSnapshot10k(b *testing.B) {
	s, svcs, slices := newStoreSource(b)
	const n = 10000
	for i := range n {
		require.NoError(b, svcs.Add(testService(i, 1)))
		require.NoError(b, slices.Add(testSlice(i)))
	}
	_, err := s.Snapshot()
	require.NoError(b, err)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		require.NoError(b, svcs.Update(testService(i%n, 2+i)))
		if _, err := s.Snapshot(); err != nil {
			b.Fatal(err)
		}
	}
}
