package process

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Stat(path, &st))
	return st.Ino
}

// Containers are found in both kubelet layouts by their ids; a container
// whose directory goes is not found any more, and one recreated under its
// id (not a thing runtimes do, but a restart's new id is the same case for
// the finder) is found with its new inode.
func TestCgroupFinder(t *testing.T) {
	root := t.TempDir()
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	dirA := filepath.Join(root, "kubepods", "besteffort", "pod0b6e1c2a-3d4f-4a5b-8c9d-0e1f2a3b4c5d", a)
	dirB := filepath.Join(root, "kubepods.slice", "kubepods-besteffort.slice",
		"kubepods-besteffort-pod0b6e1c2a_3d4f_4a5b_8c9d_0e1f2a3b4c5d.slice", "cri-containerd-"+b+".scope")
	for _, d := range []string{dirA, dirB, filepath.Join(dirB, "nested")} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	f := NewCgroupFinder(root)
	got := f.ContainerCgroups([]string{a, b, strings.Repeat("c", 64), ""})
	assert.Equal(t, map[string]uint64{a: inode(t, dirA), b: inode(t, dirB)}, got)

	require.NoError(t, os.Remove(filepath.Join(dirB, "nested")))
	require.NoError(t, os.Remove(dirB))
	assert.Equal(t, map[string]uint64{a: inode(t, dirA)}, f.ContainerCgroups([]string{a, b}), "b's directory is gone")
	require.NoError(t, os.Mkdir(dirB, 0o755))
	assert.Equal(t, map[string]uint64{b: inode(t, dirB)}, f.ContainerCgroups([]string{b}))
	assert.Empty(t, f.ContainerCgroups(nil))
	assert.Empty(t, NewCgroupFinder(filepath.Join(root, "none")).ContainerCgroups([]string{a}), "no root: nothing found")
}
