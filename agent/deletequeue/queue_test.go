package deletequeue_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/deletequeue"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    deletequeue.Entry
		wantErr string
	}{
		{"ok", `{"containerID":"abc","ifName":"eth0"}`, deletequeue.Entry{ContainerID: "abc", IfName: "eth0"}, ""},
		{"extra fields", `{"containerID":"abc","ifName":"net1","netns":"/x"}`, deletequeue.Entry{ContainerID: "abc", IfName: "net1"}, ""},
		{"no containerID", `{"ifName":"eth0"}`, deletequeue.Entry{}, "containerID is required"},
		{"no ifName", `{"containerID":"abc"}`, deletequeue.Entry{}, "ifName is required"},
		{"not json", `abc`, deletequeue.Entry{}, "decode delete-queue entry"},
		{"empty", ``, deletequeue.Entry{}, "decode delete-queue entry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := deletequeue.Parse([]byte(tt.in))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestEnqueueAndList(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	items, err := deletequeue.List(dir)
	require.NoError(t, err, "a missing queue is empty")
	assert.Empty(t, items)

	a := deletequeue.Entry{ContainerID: "../../etc/passwd", IfName: "eth0"}
	b := deletequeue.Entry{ContainerID: "b", IfName: "eth0"}
	require.NoError(t, deletequeue.Enqueue(dir, a))
	require.NoError(t, deletequeue.Enqueue(dir, a), "same entry again overwrites")
	require.NoError(t, deletequeue.Enqueue(dir, b))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".in-progress"), []byte("x"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad"), []byte("x"), 0o600))

	items, err = deletequeue.List(dir)
	require.NoError(t, err)
	require.Len(t, items, 3)
	var good []deletequeue.Entry
	bad := 0
	for _, it := range items {
		assert.Equal(t, dir, filepath.Dir(it.Path))
		if it.Err != nil {
			bad++
			continue
		}
		good = append(good, it.Entry)
	}
	assert.Equal(t, 1, bad)
	assert.ElementsMatch(t, []deletequeue.Entry{a, b}, good)
}
