package atomicfile_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/atomicfile"
)

// entries lists dir's file names.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name string
		perm os.FileMode
	}{
		{name: "private", perm: 0o600},
		{name: "config", perm: 0o644},
		{name: "executable", perm: 0o755},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "f")
			require.NoError(t, atomicfile.WriteFile(p, []byte("one"), tc.perm))
			require.NoError(t, atomicfile.WriteFile(p, []byte("two"), tc.perm))
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			assert.Equal(t, "two", string(b))
			st, err := os.Stat(p)
			require.NoError(t, err)
			assert.Equal(t, tc.perm, st.Mode().Perm())
			assert.Equal(t, []string{"f"}, entries(t, dir), "no temporary file left")
		})
	}
}

func TestWriteFailureKeepsOldContent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	require.NoError(t, atomicfile.WriteFile(p, []byte("old"), 0o600))
	boom := errors.New("boom")
	err := atomicfile.Write(p, 0o600, func(w io.Writer) error {
		if _, err := w.Write([]byte("half")); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, "old", string(b))
	assert.Equal(t, []string{"f"}, entries(t, dir), "temporary file removed")
}

func TestWriteMissingDir(t *testing.T) {
	err := atomicfile.WriteFile(filepath.Join(t.TempDir(), "missing", "f"), nil, 0o600)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestWriteOverDirectoryFails(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "d")
	require.NoError(t, os.Mkdir(p, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(p, "x"), nil, 0o600))
	require.Error(t, atomicfile.WriteFile(p, []byte("x"), 0o600))
	assert.Equal(t, []string{"d"}, entries(t, dir), "temporary file removed")
}

func TestIsTemp(t *testing.T) {
	dir := t.TempDir()
	var seen []string
	require.NoError(t, atomicfile.Write(filepath.Join(dir, "f.json"), 0o600, func(io.Writer) error {
		seen = entries(t, dir)
		return nil
	}))
	require.Len(t, seen, 1, "the temporary file, while writing")
	assert.True(t, atomicfile.IsTemp(seen[0]), seen[0])

	for _, name := range []string{"f.json", ".f.json", ".f.json.tmp", "f.json.tmp12", ".f.json.tmp12x", ".f.json.bad", ".tmp12"} {
		assert.False(t, atomicfile.IsTemp(name), name)
	}
	assert.True(t, atomicfile.IsTemp(".f.tmp.tmp7"))
}

func TestSyncDir(t *testing.T) {
	require.NoError(t, atomicfile.SyncDir(t.TempDir()))
	require.ErrorIs(t, atomicfile.SyncDir(filepath.Join(t.TempDir(), "missing")), os.ErrNotExist)
}
