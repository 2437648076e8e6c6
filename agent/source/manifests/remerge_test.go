package manifests

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/require"
)

// After random file writes and removals, with objects defined in several
// files (overrides), the incrementally merged snapshot equals a full merge
// of the files.
func TestIncrementalMergeMatchesFull(t *testing.T) {
	dir := t.TempDir()
	log, _ := test.NewNullLogger()
	w := New(dir, log)
	r := rand.New(rand.NewPCG(3, 5))
	doc := func() string {
		i := r.IntN(12)
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
			for range r.IntN(3) {
				content += "---\n" + doc()
			}
			write(t, dir, name, content)
			// A new mtime each step: the scan must see the change.
			mt := time.Now().Add(time.Duration(step) * time.Second)
			require.NoError(t, os.Chtimes(filepath.Join(dir, name), mt, mt))
		}
		w.scan()
		got := w.publish()
		got.Changes = nil
		require.Equal(t, merge(w.files, log), got, "step %d", step)
	}
}
