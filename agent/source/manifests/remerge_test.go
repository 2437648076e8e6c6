package manifests

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluicenet/sluice/agent/source"
)

// After random file writes and removals, with objects defined in several
// files (overrides), the incrementally merged snapshot equals a full merge
// of the files, and the changes name the objects of the changed files.
func TestIncrementalMergeMatchesFull(t *testing.T) {
	dir := t.TempDir()
	log, _ := test.NewNullLogger()
	w := New(dir, log)
	r := rand.New(rand.NewPCG(3, 5))
	doc := func() string {
		i := r.IntN(150)
		switch r.IntN(4) {
		case 0:
			return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: p%d, labels: {v: %q}}\n", i, fmt.Sprint(r.IntN(3)))
		case 1:
			return fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata: {name: n%d, labels: {v: %q}}\n", i, fmt.Sprint(r.IntN(3)))
		case 2:
			return fmt.Sprintf("apiVersion: example.io/v%d\nkind: Thing\nmetadata: {name: t%d}\nspec: {v: %d}\n", 1+r.IntN(2), i, r.IntN(3))
		}
		return svcYAML(fmt.Sprintf("s%d", i), fmt.Sprintf("10.96.0.%d", r.IntN(3)+1), 80)
	}
	w.scan()
	w.publish()
	for step := range 200 {
		name := fmt.Sprintf("f%d.yaml", r.IntN(5))
		if r.IntN(5) == 0 {
			_ = os.Remove(filepath.Join(dir, name))
		} else {
			content := doc()
			n := r.IntN(3)
			if r.IntN(10) == 0 {
				n = 100 // past the share where a full merge is done
			}
			for range n {
				content += "---\n" + doc()
			}
			write(t, dir, name, content)
			// A new mtime each step: the scan must see the change.
			mt := time.Now().Add(time.Duration(step) * time.Second)
			require.NoError(t, os.Chtimes(filepath.Join(dir, name), mt, mt))
		}
		before := merge(w.files, log)
		w.scan()
		got := w.publish()
		require.NotNil(t, got.Changes, "step %d", step)
		requireChangesCover(t, before, got)
		got.Changes = nil
		require.Equal(t, merge(w.files, log), got, "step %d", step)
	}
}

// requireChangesCover asserts that every Service, EndpointSlice and Pod
// that differs between two snapshots is named in after.Changes.
func requireChangesCover(t *testing.T, before, after source.Snapshot) {
	t.Helper()
	named := map[types.NamespacedName]bool{}
	for _, n := range after.Changes.Pods {
		named[n] = true
	}
	pods := map[types.NamespacedName]*corev1.Pod{}
	for _, p := range before.Pods {
		pods[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = p
	}
	for _, p := range after.Pods {
		n := types.NamespacedName{Namespace: p.Namespace, Name: p.Name}
		if old, ok := pods[n]; !ok || !reflect.DeepEqual(old, p) {
			require.True(t, named[n], "changed pod %s named", n)
		}
		delete(pods, n)
	}
	for n := range pods {
		require.True(t, named[n], "deleted pod %s named", n)
	}
}
