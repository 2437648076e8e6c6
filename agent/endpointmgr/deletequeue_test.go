package endpointmgr_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/deletequeue"
	"github.com/sluicenet/sluice/agent/endpointmgr"
)

// warnings returns the messages logged at warning level or above.
func warnings(hook *logtest.Hook) []string {
	var out []string
	for _, e := range hook.AllEntries() {
		if e.Level <= logrus.WarnLevel {
			out = append(out, e.Message)
		}
	}
	return out
}

// TestProcessDeleteQueueConcurrentDELs: DELs of the same and of different
// pods queued at once while the queue is being processed (the resync loop)
// all end up processed, with no entry found unusable.
func TestProcessDeleteQueueConcurrentDELs(t *testing.T) {
	f := newFixture(t)
	log, hook := logtest.NewNullLogger()
	f.m = endpointmgr.New(f.dp, f.dp, f.store, log)
	const pods, dels = 12, 4
	for p := 0; p < pods; p++ {
		_, err := f.m.Put(ep(fmt.Sprintf("pod%d", p), fmt.Sprintf("10.0.0.%d", p+1), 10+p))
		require.NoError(t, err)
	}
	dir := filepath.Join(t.TempDir(), "delete-queue")

	stop := make(chan struct{})
	procDone := make(chan []error)
	go func() {
		var errs []error
		for {
			if err := f.m.ProcessDeleteQueue(dir); err != nil {
				errs = append(errs, err)
			}
			select {
			case <-stop:
				procDone <- errs
				return
			default:
			}
		}
	}()
	var wg sync.WaitGroup
	qerrs := make(chan error, pods*dels)
	for d := 0; d < dels; d++ {
		for p := 0; p < pods; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				qerrs <- deletequeue.Enqueue(dir, deletequeue.Entry{ContainerID: fmt.Sprintf("pod%d", p), IfName: "eth0"})
			}()
		}
	}
	wg.Wait()
	close(stop)
	assert.Empty(t, <-procDone)
	close(qerrs)
	for err := range qerrs {
		require.NoError(t, err)
	}

	require.NoError(t, f.m.ProcessDeleteQueue(dir))
	assert.Equal(t, 0, f.m.Len(), "every queued DEL processed")
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, left)
	assert.Empty(t, warnings(hook), "no entry was ever unusable")
}

// TestProcessDeleteQueueIgnoresInterruptedWrite: a temporary file is never
// processed as an entry; one a crash left behind (old) is removed, one being
// written (young) stays for its writer to rename.
func TestProcessDeleteQueueIgnoresInterruptedWrite(t *testing.T) {
	f := newFixture(t)
	log, hook := logtest.NewNullLogger()
	f.m = endpointmgr.New(f.dp, f.dp, f.store, log)
	_, err := f.m.Put(ep("a", "10.0.0.1", 10))
	require.NoError(t, err)
	_, err = f.m.Put(ep("b", "10.0.0.2", 11))
	require.NoError(t, err)
	dir := t.TempDir()
	crashed := filepath.Join(dir, ".0a.json.tmp123")
	writing := filepath.Join(dir, ".0b.json.tmp456")
	require.NoError(t, os.WriteFile(crashed, []byte(`{"containerID":"a","ifName":"eth0"}`), 0o600))
	require.NoError(t, os.WriteFile(writing, []byte(`{"containerID":"b","ifName":"eth0"}`), 0o600))
	old := time.Now().Add(-2 * deletequeue.StaleAfter)
	require.NoError(t, os.Chtimes(crashed, old, old))

	require.NoError(t, f.m.ProcessDeleteQueue(dir))
	assert.Equal(t, 2, f.m.Len(), "no temporary file processed as an entry")
	assert.NoFileExists(t, crashed)
	assert.FileExists(t, writing)
	assert.Equal(t, []string{"Removed an interrupted delete-queue write"}, warnings(hook))
}
