package cni

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQueueFileName(t *testing.T) {
	tests := []struct{ containerID, ifName, want string }{
		{"abc123", "eth0", "abc123_eth0.json"},
		{"my_ctr.v1-2", "net1", "my_ctr.v1-2_net1.json"},
		{"../../etc/passwd", "eth0", "_._.._etc_passwd_eth0.json"},
		{"a/b c", "e:0", "a_b_c_e_0.json"},
	}
	for _, tt := range tests {
		got := QueueFileName(tt.containerID, tt.ifName)
		assert.Equal(t, tt.want, got, "%s/%s", tt.containerID, tt.ifName)
		assert.Equal(t, got, filepath.Base(got), "one path component")
	}
}

func TestQueueDelete(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "delete-queue") // created on demand
	path, err := QueueDelete(dir, "abc123", "eth0")
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "abc123_eth0.json"), path)

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var got map[string]string
	require.NoError(t, json.Unmarshal(data, &got))
	assert.Equal(t, map[string]string{"containerID": "abc123", "ifName": "eth0"}, got)

	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())

	// Queuing again replaces the entry; another attachment gets its own file.
	_, err = QueueDelete(dir, "abc123", "eth0")
	require.NoError(t, err)
	_, err = QueueDelete(dir, "abc123", "net1")
	require.NoError(t, err)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{"abc123_eth0.json", "abc123_net1.json"}, names, "no temporary files left")
}

func TestQueueDeleteUnwritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err := QueueDelete(filepath.Join(file, "delete-queue"), "abc", "eth0")
	assert.ErrorContains(t, err, "create delete queue")
}
