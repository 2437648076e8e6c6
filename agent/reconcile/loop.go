// Package reconcile is the owner loop every owner of kernel state in the
// agent runs (the LB, policy and IP cache maps, the node routes, the
// daemon's endpoint and device resync): sync on change, full resync on a
// timer, and retry with exponential backoff.
package reconcile

import (
	"context"
	"sync"
	"time"
)

// Default backoff bounds of failed syncs.
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

// Config is an owner loop's schedule.
type Config struct {
	// Trigger asks for an incremental sync; nil never does.
	Trigger <-chan struct{}
	// Resync is the period of the full sync.
	Resync time.Duration
	// MinBackoff and MaxBackoff bound the delay before a failed sync is
	// retried; zero means the package's MinBackoff and MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// NoInitialSync skips the full sync at start (the owner synced while
	// starting up): the first sync comes with Trigger or Resync.
	NoInitialSync bool
	// Tasks run beside the loop until it returns.
	Tasks []Task
	// Status, when set, records every sync's outcome.
	Status *Status
}

// Loop runs syncFn(true) at once (unless cfg.NoInitialSync), syncFn(false)
// on every trigger, syncFn(true) every resync period, and retries a failed
// sync as a full sync after a backoff that doubles from MinBackoff to
// MaxBackoff and resets on a full sync's success (an incremental sync that
// succeeds meanwhile does not cancel the retry). It returns when ctx ends, after the
// tasks stopped.
func Loop(ctx context.Context, cfg Config, syncFn func(full bool) error) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, t := range cfg.Tasks {
		wg.Go(func() { every(ctx, t.Every, t.Do) })
	}
	tick := time.NewTicker(cfg.Resync)
	defer tick.Stop()
	var retry <-chan time.Time
	backoff := Backoff{Min: cfg.MinBackoff, Max: cfg.MaxBackoff}
	run := func(full bool) {
		err := syncFn(full)
		if cfg.Status != nil {
			cfg.Status.Record(err, time.Now())
		}
		if err != nil {
			retry = time.After(backoff.Next())
			return
		}
		// Only a full sync repairs what a failed one left: an incremental
		// success in between (a trigger before the retry fired) wrote
		// only its own changes, so the retry stays due.
		if full {
			retry = nil
			backoff.Reset()
		}
	}
	if !cfg.NoInitialSync {
		run(true)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-cfg.Trigger:
			run(false)
		case <-retry:
			run(true)
		case <-tick.C:
			run(true)
		}
	}
}

// Backoff is the retry delay of a loop: it doubles from Min up to Max with
// every failure and starts over at Min after Reset. Zero bounds mean the
// package's MinBackoff and MaxBackoff.
type Backoff struct {
	Min, Max time.Duration
	next     time.Duration
}

// Next returns the delay before the next retry and doubles the one after.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = MinBackoff
	}
	if hi <= 0 {
		hi = MaxBackoff
	}
	d := min(max(b.next, lo), hi)
	b.next = min(2*d, hi)
	return d
}

// Reset starts the backoff over at Min (after a success).
func (b *Backoff) Reset() { b.next = 0 }

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
