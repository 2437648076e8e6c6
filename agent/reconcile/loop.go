// Package reconcile is the owner loop every BPF map owner runs: sync on
// change, full resync on a timer, and retry with exponential backoff.
package reconcile

import (
	"context"
	"sync"
	"time"
)

// Backoff bounds of failed syncs.
const (
	MinBackoff = 100 * time.Millisecond
	MaxBackoff = 30 * time.Second
)

// Task is extra periodic work beside a loop (for example conntrack GC). It
// runs on its own goroutine, concurrently with syncs.
type Task struct {
	Every time.Duration
	Do    func()
}

// Loop runs syncFn(true) at once, syncFn(false) on every trigger, syncFn(true)
// every resync period, and retries a failed sync as a full sync after a
// backoff that doubles from MinBackoff to MaxBackoff and resets on success.
// It returns when ctx ends, after the tasks stopped.
func Loop(ctx context.Context, trigger <-chan struct{}, resync time.Duration, syncFn func(full bool) error, tasks ...Task) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, t := range tasks {
		wg.Go(func() { every(ctx, t.Every, t.Do) })
	}
	tick := time.NewTicker(resync)
	defer tick.Stop()
	var retry <-chan time.Time
	backoff := MinBackoff
	run := func(full bool) {
		if err := syncFn(full); err != nil {
			retry = time.After(backoff)
			backoff = min(backoff*2, MaxBackoff)
			return
		}
		retry, backoff = nil, MinBackoff
	}
	run(true)
	for {
		select {
		case <-ctx.Done():
			return
		case <-trigger:
			run(false)
		case <-retry:
			run(true)
		case <-tick.C:
			run(true)
		}
	}
}

func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
