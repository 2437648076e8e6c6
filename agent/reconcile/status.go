package reconcile

import (
	"sync"
	"time"
)

// Status records the outcomes of an owner loop's syncs for `sluice status`
// (Config.Status). It is safe for concurrent use; the zero value is ready.
type Status struct {
	mu sync.Mutex
	s  LoopStatus
}

// LoopStatus is what a loop's syncs came to.
type LoopStatus struct {
	// Syncs and Failures count the syncs run and failed.
	Syncs, Failures uint64
	// Retries counts the failed syncs since the last success: a loop with
	// Retries > 0 is retrying with backoff, its state not (all) written.
	Retries uint64
	// LastSuccess and LastFailure are when a sync last succeeded and
	// failed (zero: never); LastError is the error of the last failure
	// (kept after a later success, for the operator).
	LastSuccess, LastFailure time.Time
	LastError                string
}

// Record adds the outcome of one sync that ended at now.
func (s *Status) Record(err error, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.s.Syncs++
	if err == nil {
		s.s.LastSuccess, s.s.Retries = now, 0
		return
	}
	s.s.Failures++
	s.s.Retries++
	s.s.LastFailure, s.s.LastError = now, err.Error()
}

// Get returns the loop's status so far.
func (s *Status) Get() LoopStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.s
}
