package reconcile

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type recorder struct {
	mu    sync.Mutex
	calls []bool // full flag of each sync
	fail  int    // fail this many syncs
}

func (r *recorder) sync(full bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, full)
	if r.fail > 0 {
		r.fail--
		return errors.New("boom")
	}
	return nil
}

func (r *recorder) snapshot() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.calls...)
}

func TestLoopSyncsOnStartTriggerAndRetries(t *testing.T) {
	r := &recorder{fail: 2}
	trigger := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	var tasks sync.WaitGroup
	tasks.Add(1)
	var once sync.Once
	done := make(chan struct{})
	go func() {
		Loop(ctx, Config{Trigger: trigger, Resync: time.Hour, Tasks: []Task{{Every: time.Millisecond, Do: func() { once.Do(tasks.Done) }}}}, r.sync)
		close(done)
	}()
	// Start-up full sync fails twice; retries are full syncs.
	require.Eventually(t, func() bool { return len(r.snapshot()) == 3 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, []bool{true, true, true}, r.snapshot())
	trigger <- struct{}{}
	require.Eventually(t, func() bool { return len(r.snapshot()) == 4 }, 5*time.Second, time.Millisecond)
	assert.False(t, r.snapshot()[3], "a trigger runs an incremental sync")
	tasks.Wait() // the task ran
	cancel()
	<-done
}

func TestBackoff(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 10 * time.Second}
	var got []time.Duration
	for range 6 {
		got = append(got, b.Next())
	}
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}, got)
	b.Reset()
	assert.Equal(t, time.Second, b.Next(), "a success starts over at Min")

	var d Backoff
	assert.Equal(t, MinBackoff, d.Next(), "zero bounds are the defaults")
	for range 20 {
		d.Next()
	}
	assert.Equal(t, MaxBackoff, d.Next())
}

// With NoInitialSync the loop waits for a trigger; a failed sync is then
// retried after MinBackoff, as a full sync.
func TestLoopNoInitialSync(t *testing.T) {
	r := &recorder{fail: 1}
	trigger := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Loop(ctx, Config{Trigger: trigger, Resync: time.Hour, MinBackoff: time.Millisecond, NoInitialSync: true}, r.sync)
		close(done)
	}()
	time.Sleep(20 * time.Millisecond)
	assert.Empty(t, r.snapshot(), "no sync before the trigger")
	trigger <- struct{}{}
	require.Eventually(t, func() bool { return len(r.snapshot()) == 2 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, []bool{false, true}, r.snapshot())
	cancel()
	<-done
}

// A failed sync is repaired by a full sync even when an incremental sync
// succeeds before the retry is due: the incremental sync wrote only its own
// changes, not what the failed one left undone.
func TestLoopIncrementalSuccessKeepsFullRetry(t *testing.T) {
	r := &recorder{}
	trigger := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Loop(ctx, Config{Trigger: trigger, Resync: time.Hour, MinBackoff: 300 * time.Millisecond}, r.sync)
		close(done)
	}()
	defer func() { cancel(); <-done }()
	require.Eventually(t, func() bool { return len(r.snapshot()) == 1 }, 5*time.Second, time.Millisecond)
	r.mu.Lock()
	r.fail = 1
	r.mu.Unlock()
	trigger <- struct{}{} // fails: a full retry is due after 300ms
	require.Eventually(t, func() bool { return len(r.snapshot()) == 2 }, 5*time.Second, time.Millisecond)
	trigger <- struct{}{} // succeeds before the retry
	require.Eventually(t, func() bool { return len(r.snapshot()) == 3 }, 5*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return len(r.snapshot()) == 4 }, 5*time.Second, time.Millisecond,
		"the failed sync's full retry must still run")
	assert.Equal(t, []bool{true, false, false, true}, r.snapshot())
}
