package deletequeue_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

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

// TestEnqueueConcurrent: many DELs of the same and of different pods at once,
// with a reader listing all along, as the agent's resync does. The reader
// never sees a partial entry; in the end there is one entry per pod and no
// temporary file.
func TestEnqueueConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	const pods, dels = 16, 8
	var want []deletequeue.Entry
	for p := 0; p < pods; p++ {
		want = append(want, deletequeue.Entry{ContainerID: fmt.Sprintf("pod%d", p), IfName: "eth0"})
	}

	stop := make(chan struct{})
	readerDone := make(chan []error)
	go func() {
		var bad []error
		for {
			items, err := deletequeue.List(dir)
			if err != nil {
				bad = append(bad, err)
			}
			for _, it := range items {
				if it.Err != nil {
					bad = append(bad, it.Err)
				}
			}
			select {
			case <-stop:
				readerDone <- bad
				return
			default:
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, pods*dels)
	for d := 0; d < dels; d++ {
		for _, e := range want {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- deletequeue.Enqueue(dir, e)
			}()
		}
	}
	wg.Wait()
	close(stop)
	assert.Empty(t, <-readerDone, "the reader saw only complete entries")
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	items, err := deletequeue.List(dir)
	require.NoError(t, err)
	var got []deletequeue.Entry
	for _, it := range items {
		require.NoError(t, it.Err)
		got = append(got, it.Entry)
	}
	assert.ElementsMatch(t, want, got)
	files, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, files, pods, "no temporary file left")
}

// TestRemoveStale: a temporary file a crash left (old) is removed, one being
// written (young) stays; entries and other files are not touched.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	removed, err := deletequeue.RemoveStale(filepath.Join(dir, "missing"), time.Now())
	require.NoError(t, err)
	assert.Empty(t, removed)

	require.NoError(t, deletequeue.Enqueue(dir, deletequeue.Entry{ContainerID: "a", IfName: "eth0"}))
	entry, err := deletequeue.List(dir)
	require.NoError(t, err)
	require.Len(t, entry, 1)
	crashed := filepath.Join(dir, "."+filepath.Base(entry[0].Path)+".tmp123")
	writing := filepath.Join(dir, ".0123.json.tmp456")
	other := filepath.Join(dir, ".keep")
	for _, p := range []string{crashed, writing, other} {
		require.NoError(t, os.WriteFile(p, []byte(`{"containerID":"b","ifName":"eth0"}`), 0o600))
	}
	old := time.Now().Add(-2 * deletequeue.StaleAfter)
	for _, p := range []string{crashed, other, entry[0].Path} {
		require.NoError(t, os.Chtimes(p, old, old))
	}

	removed, err = deletequeue.RemoveStale(dir, time.Now().Add(-deletequeue.StaleAfter))
	require.NoError(t, err)
	assert.Equal(t, []string{crashed}, removed)
	assert.NoFileExists(t, crashed)
	for _, p := range []string{writing, other, entry[0].Path} {
		assert.FileExists(t, p)
	}
	items, err := deletequeue.List(dir)
	require.NoError(t, err)
	assert.Equal(t, entry, items, "temporary files are never listed as entries")
}

// helperDirEnv makes TestEnqueueHelperProcess enqueue pods 0..7 into the
// directory it names; unset, that test does nothing.
const helperDirEnv = "DELETEQUEUE_TEST_ENQUEUE_DIR"

func TestEnqueueHelperProcess(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		return
	}
	for p := 0; p < 8; p++ {
		require.NoError(t, deletequeue.Enqueue(dir, deletequeue.Entry{ContainerID: fmt.Sprintf("pod%d", p), IfName: "eth0"}))
	}
}

// TestEnqueueProcesses: several processes (as several sluice-cni DELs) queue
// the same pods at once; every pod ends up queued once, nothing else left.
func TestEnqueueProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	var cmds []*exec.Cmd
	for i := 0; i < 6; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestEnqueueHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperDirEnv+"="+dir)
		require.NoError(t, cmd.Start())
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		require.NoError(t, cmd.Wait())
	}
	items, err := deletequeue.List(dir)
	require.NoError(t, err)
	var got, want []deletequeue.Entry
	for p := 0; p < 8; p++ {
		want = append(want, deletequeue.Entry{ContainerID: fmt.Sprintf("pod%d", p), IfName: "eth0"})
	}
	for _, it := range items {
		require.NoError(t, it.Err)
		got = append(got, it.Entry)
	}
	assert.ElementsMatch(t, want, got)
	files, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, files, len(want), "no temporary file left")
}
