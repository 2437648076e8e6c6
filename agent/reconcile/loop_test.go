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
		Loop(ctx, trigger, time.Hour, r.sync, Task{Every: time.Millisecond, Do: func() { once.Do(tasks.Done) }})
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
