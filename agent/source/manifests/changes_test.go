package manifests

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluicenet/sluice/agent/source"
)

// A snapshot names the Services, EndpointSlices and Pods of the files that
// changed since the last one (old and new definitions), and only those;
// the first snapshot's changes are unknown.
func TestSnapshotChanges(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", svcYAML("a", "10.96.0.1", 80))
	write(t, dir, "b.yaml", svcYAML("b", "10.96.0.2", 80)+`---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: b-1, labels: {kubernetes.io/service-name: b}}
addressType: IPv4
endpoints: []
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
`)
	r := startWatcher(t, dir, func(w *Watcher) { w.debounce = 0 })
	assert.Nil(t, r.next(t).Changes, "the first snapshot")

	// b.yaml: the Service renamed; the slice stays, the namespace goes. Written
	// atomically: with no debounce a reader could see half of a plain write.
	writeAtomic(t, dir, "b.yaml", svcYAML("c", "10.96.0.2", 80)+`---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: b-1, labels: {kubernetes.io/service-name: b}}
addressType: IPv4
endpoints: []
`)
	n := func(name string) types.NamespacedName { return types.NamespacedName{Namespace: "default", Name: name} }
	s := r.next(t)
	require.NotNil(t, s.Changes)
	assert.Equal(t, source.Changes{
		Services:       []types.NamespacedName{n("b"), n("c")},
		EndpointSlices: []types.NamespacedName{n("b-1")},
		Pods:           []types.NamespacedName{},
	}, *s.Changes)

	require.NoError(t, os.Remove(filepath.Join(dir, "a.yaml")))
	s = r.next(t)
	require.NotNil(t, s.Changes)
	assert.Equal(t, []types.NamespacedName{n("a")}, s.Changes.Services)
	assert.Empty(t, s.Changes.EndpointSlices)
}
