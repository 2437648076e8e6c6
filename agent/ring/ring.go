// Package ring keeps the last N items of an event stream and fans new items
// out to followers. The flow observer (agent/flows) and the process event
// hub (agent/events) both keep their recent history in one; agent/server
// streams either as NDJSON with follow.
package ring

import "sync"

// Ring keeps the last items added, oldest first, and hands every new item
// to its followers. It is safe for concurrent use.
type Ring[T any] struct {
	// onLost is called (under the lock) for every item a slow follower
	// could not take.
	onLost func()

	mu        sync.Mutex
	items     []T
	next      int
	full      bool
	followers map[chan T]struct{}
}

// New returns a ring keeping capacity items (at least one). onLost (may be
// nil) is called for each item a follower loses because its buffer is full.
func New[T any](capacity int, onLost func()) *Ring[T] {
	if capacity < 1 {
		capacity = 1
	}
	if onLost == nil {
		onLost = func() {}
	}
	return &Ring[T]{onLost: onLost, items: make([]T, capacity), followers: map[chan T]struct{}{}}
}

// Add records v, overwriting the oldest item when the ring is full, and
// offers it to every follower without blocking.
func (r *Ring[T]) Add(v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.items[r.next] = v
	r.next++
	if r.next == len(r.items) {
		r.next, r.full = 0, true
	}
	for ch := range r.followers {
		select {
		case ch <- v:
		default:
			r.onLost()
		}
	}
}

// History returns the kept items match selects (every item when match is
// nil), oldest first, at most last of them when last > 0.
func (r *Ring[T]) History(match func(T) bool, last int) []T {
	r.mu.Lock()
	all := r.snapshot()
	r.mu.Unlock()
	return selectItems(all, match, last)
}

// Follow returns History(match, last) and a channel of every item added
// from then on (unfiltered, buffered by buffer), atomically, so no item
// falls in between. Call cancel when done; the channel is not closed.
func (r *Ring[T]) Follow(match func(T) bool, last, buffer int) (history []T, ch <-chan T, cancel func()) {
	c := make(chan T, buffer)
	r.mu.Lock()
	all := r.snapshot()
	r.followers[c] = struct{}{}
	r.mu.Unlock()
	return selectItems(all, match, last), c, func() {
		r.mu.Lock()
		delete(r.followers, c)
		r.mu.Unlock()
	}
}

// snapshot copies the kept items, oldest first. The caller holds r.mu.
func (r *Ring[T]) snapshot() []T {
	var all []T
	if r.full {
		all = append(all, r.items[r.next:]...)
	}
	return append(all, r.items[:r.next]...)
}

func selectItems[T any](all []T, match func(T) bool, last int) []T {
	var out []T
	for _, v := range all {
		if match == nil || match(v) {
			out = append(out, v)
		}
	}
	if last > 0 && len(out) > last {
		out = out[len(out)-last:]
	}
	return out
}
