package manifests

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Flush reads the directory at once: a file written a moment ago is in the
// snapshot onChange got before Flush returns, however long the debounce
// and the rescan interval. A Flush with nothing changed reports nothing.
func TestWatcherFlush(t *testing.T) {
	dir := t.TempDir()
	r := startWatcher(t, dir, func(w *Watcher) { w.debounce, w.rescan = time.Hour, time.Hour })
	require.Empty(t, names(r.next(t)))
	writeAtomic(t, dir, "a.yaml", svcYAML("a", "10.96.0.1", 80))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, r.w.Flush(ctx))
	select {
	case s := <-r.changes:
		require.Len(t, s.Services, 1)
	default:
		t.Fatal("Flush returned before onChange had the file")
	}
	require.NoError(t, r.w.Flush(ctx))
	r.quiet(t, 100*time.Millisecond)

	// Not running: Flush gives up with ctx.
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	require.ErrorIs(t, New(dir, r.w.log).Flush(short), context.DeadlineExceeded)
}
