package events

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
)

// readLines returns the pids of the events in file, checking that every
// line is a whole JSON event.
func readLines(t *testing.T, file string) []uint32 {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	out := []uint32{}
	for n := 1; sc.Scan(); n++ {
		var ev api.ProcessEvent
		require.NoError(t, json.Unmarshal(sc.Bytes(), &ev), "%s line %d", file, n)
		require.NotEmpty(t, ev.Kind(), "%s line %d", file, n)
		out = append(out, pids([]*api.ProcessEvent{&ev})...)
	}
	require.NoError(t, sc.Err())
	return out
}

// backups returns the rotated files next to file, oldest first.
func backups(t *testing.T, file string) []string {
	t.Helper()
	all, err := filepath.Glob(strings.TrimSuffix(file, ".log") + "-*.log")
	require.NoError(t, err)
	sort.Strings(all) // the names carry the rotation time
	return all
}

// Writing several megabytes into a 1 MB file with two backups: the file
// rotates, two backups stay, each under the size, and the lines of the
// backups and the file are whole events in order, none cut or lost at a
// rotation.
func TestExporterRotation(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sub", "events.log")
	x, err := NewExporter(ExportConfig{Filename: file, MaxSizeMB: 1, MaxBackups: 2})
	require.NoError(t, err)
	args := strings.Repeat("x", 900)
	const n = 6000 // about 6 MB
	for i := range n {
		ev := exec("default/a", uint32(i+1))
		ev.ProcessExec.Process.Arguments = args
		require.NoError(t, x.Export(ev))
	}
	require.NoError(t, x.Close())

	// lumberjack removes old backups in the background.
	require.Eventually(t, func() bool { return len(backups(t, file)) == 2 }, 10*time.Second, 10*time.Millisecond,
		"backups: %v", backups(t, file))
	var got []uint32
	for _, f := range append(backups(t, file), file) {
		st, err := os.Stat(f)
		require.NoError(t, err)
		assert.LessOrEqual(t, st.Size(), int64(1<<20), f)
		got = append(got, readLines(t, f)...)
	}
	require.Greater(t, len(got), 2000, "three files of about 1 MB")
	first := got[0]
	for i, pid := range got {
		require.Equal(t, first+uint32(i), pid, "line %d", i)
	}
	assert.Equal(t, uint32(n), got[len(got)-1], "the last event is in the file")
}

func TestExporterFlushAndFilters(t *testing.T) {
	file := filepath.Join(t.TempDir(), "events.log")
	x, err := NewExporter(ExportConfig{Filename: file,
		Allow: `{"namespace":["default"]}` + "\n" + `{"event_set":["PROCESS_THROTTLE"]}`,
		Deny:  `{"binary_regex":["^/bin/sh$"]}`})
	require.NoError(t, err)
	st, err := os.Stat(file)
	require.NoError(t, err, "the file is opened at start")
	assert.Zero(t, st.Size())

	for _, ev := range []*api.ProcessEvent{
		exec("default/a", 1),
		event(api.EventProcessExec, "default/a", "/bin/sh", 2), // denied
		exec("other/b", 3), // not allowed
		exec("", 4),        // host: not allowed
		event(api.EventProcessExit, "default/a", "/bin/true", 5),
		event(api.EventProcessThrottle, "other/b", "", 0),
	} {
		require.NoError(t, x.Export(ev))
	}
	assert.Empty(t, readLines(t, file), "lines wait for a flush")
	require.NoError(t, x.Flush())
	assert.Equal(t, []uint32{1, 5, 0}, readLines(t, file))
	require.NoError(t, x.Export(exec("default/a", 6)))
	require.NoError(t, x.Close())
	assert.Equal(t, []uint32{1, 5, 0, 6}, readLines(t, file), "Close flushes")
}

func TestNewExporterErrors(t *testing.T) {
	_, err := NewExporter(ExportConfig{})
	assert.EqualError(t, err, "export: no file name")
	_, err = NewExporter(ExportConfig{Filename: filepath.Join(t.TempDir(), "e.log"), Deny: `{"event_set":["FORK"]}`})
	assert.ErrorContains(t, err, `export denylist: export filter 1: unknown event type "FORK"`)
	notDir := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notDir, nil, 0o600))
	_, err = NewExporter(ExportConfig{Filename: filepath.Join(notDir, "e.log")})
	assert.ErrorContains(t, err, "export to "+notDir+"/e.log: ")
}
