package identity

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Allocator gives label sets numbers. Allocate and Release are reference
// counted per caller; reserved label sets always get their fixed number and
// are not counted.
type Allocator interface {
	// Allocate returns the number of the label set, allocating it if needed,
	// and takes a reference.
	Allocate(ctx context.Context, labels Labels) (NumericIdentity, error)
	// Release drops a reference taken by Allocate.
	Release(ctx context.Context, id NumericIdentity) error
	// Lookup returns the labels of a known number.
	Lookup(id NumericIdentity) (Labels, bool)
	// LookupByLabels returns the number of a known label set.
	LookupByLabels(labels Labels) (NumericIdentity, bool)
}

// ErrExhausted is returned when no number is left in the range.
var ErrExhausted = errors.New("identity range exhausted")

// EventKind says what happened to an identity.
type EventKind uint8

// Event kinds.
const (
	// Added: the identity became known (allocated here or seen in the store).
	Added EventKind = iota + 1
	// Deleted: the identity was garbage collected or left the store.
	Deleted
)

// Event reports an identity that became known or was removed. The policy
// resolver consumes them (UpsertIdentity/DeleteIdentity).
type Event struct {
	Kind   EventKind
	ID     NumericIdentity
	Labels Labels
}

// Options tune a StoreAllocator. The zero value is usable.
type Options struct {
	// GracePeriod keeps an identity whose references dropped to zero for
	// this long before GC collects it (a pod restarting keeps its number).
	GracePeriod time.Duration
	// Min and Max bound cluster-scope numbers (default MinAllocated..MaxAllocated).
	Min, Max NumericIdentity
	// OnChange, if set, is called for every Added/Deleted event, in order,
	// never with the allocator's lock held.
	OnChange func(Event)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

type entry struct {
	id         NumericIdentity
	labels     Labels
	key        string
	refs       int
	releasedAt time.Time
}

// StoreAllocator implements Allocator over a Store for cluster-scope numbers
// and an in-process pool for node-local CIDR identities (label sets with a
// cidr: label). Its cache holds every identity it allocated or saw in the
// store (Sync), each with the local reference count.
type StoreAllocator struct {
	store     Store
	ownsStore bool
	opts      Options

	allocMu sync.Mutex // serialises store writes and GC
	mu      sync.Mutex // guards the fields below
	byID    map[NumericIdentity]*entry
	byKey   map[string]*entry
	nextLoc NumericIdentity
	pending []Event

	evMu sync.Mutex // serialises event delivery
}

var _ Allocator = (*StoreAllocator)(nil)

// NewStandaloneAllocator returns the in-process allocator of standalone
// mode: numbers from 256 upward in a private store; identities released to
// zero are deleted by GC once their grace period has passed, and their
// numbers are reused.
func NewStandaloneAllocator(opts Options) *StoreAllocator {
	a := newStoreAllocator(NewMemoryStore(), opts)
	a.ownsStore = true
	return a
}

// NewClusterAllocator returns an allocator over a store shared by all nodes.
// A new label set gets the lowest number not listed in the store: Create it,
// and on ErrExists read it back: the same labels are reused, other labels
// move on to the next number. Nodes racing for one label set walk the same
// numbers in the same order, so the first Create wins and the others reuse
// it. GC here only forgets local references: deleting objects from the
// shared store belongs to one cluster-wide collector, since other nodes may
// still use them.
func NewClusterAllocator(store Store, opts Options) *StoreAllocator {
	return newStoreAllocator(store, opts)
}

func newStoreAllocator(store Store, opts Options) *StoreAllocator {
	if opts.Min == 0 {
		opts.Min = MinAllocated
	}
	if opts.Max == 0 {
		opts.Max = MaxAllocated
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &StoreAllocator{
		store:   store,
		opts:    opts,
		byID:    make(map[NumericIdentity]*entry),
		byKey:   make(map[string]*entry),
		nextLoc: LocalScope | 1,
	}
}

// Allocate implements Allocator.
func (a *StoreAllocator) Allocate(ctx context.Context, labels Labels) (NumericIdentity, error) {
	labels = NewLabels(labels...)
	if id, ok := reservedFor(labels); ok {
		return id, nil
	}
	if err := labels.validate(); err != nil {
		return 0, fmt.Errorf("allocate identity: %w", err)
	}
	key := labels.String()
	defer a.flush()

	a.mu.Lock()
	if e, ok := a.byKey[key]; ok {
		e.refs++
		a.mu.Unlock()
		return e.id, nil
	}
	if labels.HasSource(SourceCIDR) {
		id, err := a.allocateLocalLocked(labels, key)
		a.mu.Unlock()
		return id, err
	}
	a.mu.Unlock()

	a.allocMu.Lock()
	defer a.allocMu.Unlock()
	a.mu.Lock()
	if e, ok := a.byKey[key]; ok { // allocated meanwhile by another caller
		e.refs++
		a.mu.Unlock()
		return e.id, nil
	}
	a.mu.Unlock()
	id, err := a.allocateInStore(ctx, labels)
	if err != nil {
		return 0, fmt.Errorf("allocate identity for %s: %w", key, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.addLocked(id, labels)
	e.refs++
	return id, nil
}

// allocateInStore runs the cluster algorithm. allocMu is held.
func (a *StoreAllocator) allocateInStore(ctx context.Context, labels Labels) (NumericIdentity, error) {
	objs, err := a.store.List(ctx)
	if err != nil {
		return 0, err
	}
	best := NumericIdentity(0)
	for id, ls := range objs {
		if ls.Equal(labels) && (best == 0 || id < best) {
			best = id
		}
	}
	if best != 0 {
		return best, nil
	}
	a.mu.Lock()
	for id := range a.byID {
		objs[id] = nil
	}
	a.mu.Unlock()
	for n := a.opts.Min; n <= a.opts.Max && n >= a.opts.Min; n++ {
		if _, taken := objs[n]; taken {
			continue
		}
		err := a.store.Create(ctx, n, labels)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, ErrExists) {
			return 0, err
		}
		got, err := a.store.Get(ctx, n)
		switch {
		case errors.Is(err, ErrNotFound):
			n-- // deleted meanwhile: try the number again
		case err != nil:
			return 0, err
		case got.Equal(labels):
			return n, nil
		}
	}
	return 0, ErrExhausted
}

// allocateLocalLocked gives a CIDR label set a node-local number.
func (a *StoreAllocator) allocateLocalLocked(labels Labels, key string) (NumericIdentity, error) {
	start := a.nextLoc
	for {
		id := a.nextLoc
		a.nextLoc++
		if a.nextLoc > MaxLocal {
			a.nextLoc = LocalScope | 1
		}
		if _, taken := a.byID[id]; !taken {
			e := a.addLocked(id, labels)
			e.refs++
			return id, nil
		}
		if a.nextLoc == start {
			return 0, fmt.Errorf("allocate local identity for %s: %w", key, ErrExhausted)
		}
	}
}

// addLocked records a known identity (no reference) and queues an event.
func (a *StoreAllocator) addLocked(id NumericIdentity, labels Labels) *entry {
	if e, ok := a.byID[id]; ok {
		return e
	}
	e := &entry{id: id, labels: labels, key: labels.String()}
	a.byID[id] = e
	if old, ok := a.byKey[e.key]; !ok || id < old.id {
		a.byKey[e.key] = e
	}
	a.pending = append(a.pending, Event{Kind: Added, ID: id, Labels: labels})
	return e
}

func (a *StoreAllocator) removeLocked(e *entry) {
	delete(a.byID, e.id)
	if a.byKey[e.key] == e {
		delete(a.byKey, e.key)
		for _, o := range a.byID { // another number for the same labels (a race lost long ago)
			if o.key == e.key && (a.byKey[e.key] == nil || o.id < a.byKey[e.key].id) {
				a.byKey[e.key] = o
			}
		}
	}
	a.pending = append(a.pending, Event{Kind: Deleted, ID: e.id, Labels: e.labels})
}

// Release implements Allocator.
func (a *StoreAllocator) Release(_ context.Context, id NumericIdentity) error {
	if id.IsReserved() {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.byID[id]
	if !ok || e.refs == 0 {
		return fmt.Errorf("release identity %d: %w", id, ErrNotFound)
	}
	e.refs--
	if e.refs == 0 {
		e.releasedAt = a.opts.Now()
	}
	return nil
}

// GC collects identities whose references dropped to zero at least the
// grace period ago: local (CIDR) identities always, store identities only
// when the allocator owns its store (standalone). It returns how many it
// collected.
func (a *StoreAllocator) GC(ctx context.Context) (int, error) {
	return a.gc(ctx, a.opts.GracePeriod)
}

// GCNow collects every unreferenced identity, ignoring the grace period.
func (a *StoreAllocator) GCNow(ctx context.Context) (int, error) {
	return a.gc(ctx, 0)
}

func (a *StoreAllocator) gc(ctx context.Context, grace time.Duration) (int, error) {
	defer a.flush()
	a.allocMu.Lock()
	defer a.allocMu.Unlock()
	a.mu.Lock()
	now := a.opts.Now()
	var victims []*entry
	for _, e := range a.byID {
		if e.refs > 0 || e.releasedAt.IsZero() || now.Sub(e.releasedAt) < grace {
			continue
		}
		if e.id.IsLocal() || a.ownsStore {
			victims = append(victims, e)
		}
	}
	a.mu.Unlock()
	n := 0
	for _, e := range victims {
		if !e.id.IsLocal() {
			if err := a.store.Delete(ctx, e.id); err != nil {
				return n, fmt.Errorf("gc identity %d: %w", e.id, err)
			}
		}
		a.mu.Lock()
		if e.refs == 0 && a.byID[e.id] == e {
			a.removeLocked(e)
			n++
		}
		a.mu.Unlock()
	}
	return n, nil
}

// RunGC calls GC every interval until ctx ends, reporting errors to onErr
// (which may be nil).
func (a *StoreAllocator) RunGC(ctx context.Context, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := a.GC(ctx); err != nil && onErr != nil {
				onErr(err)
			}
		}
	}
}

// Sync reconciles the cache with the store: identities created by other
// nodes become known (Added), unreferenced ones that left the store are
// dropped (Deleted), and referenced ones missing from the store are created
// again.
func (a *StoreAllocator) Sync(ctx context.Context) error {
	defer a.flush()
	a.allocMu.Lock()
	defer a.allocMu.Unlock()
	objs, err := a.store.List(ctx)
	if err != nil {
		return fmt.Errorf("sync identities: %w", err)
	}
	a.mu.Lock()
	var recreate []*entry
	for id, ls := range objs {
		if e, ok := a.byID[id]; ok && !e.labels.Equal(ls) {
			a.removeLocked(e) // the number was reused elsewhere
		}
		a.addLocked(id, ls)
	}
	for _, e := range a.byID {
		if e.id.IsLocal() {
			continue
		}
		if _, ok := objs[e.id]; !ok {
			if e.refs > 0 {
				recreate = append(recreate, e)
			} else {
				a.removeLocked(e)
			}
		}
	}
	a.mu.Unlock()
	for _, e := range recreate {
		if err := a.store.Create(ctx, e.id, e.labels); err != nil && !errors.Is(err, ErrExists) {
			return fmt.Errorf("sync identities: recreate %d: %w", e.id, err)
		}
	}
	return nil
}

// Lookup implements Allocator.
func (a *StoreAllocator) Lookup(id NumericIdentity) (Labels, bool) {
	if ls := ReservedLabels(id); ls != nil {
		return ls, true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.byID[id]; ok {
		return e.labels, true
	}
	return nil, false
}

// LookupByLabels implements Allocator.
func (a *StoreAllocator) LookupByLabels(labels Labels) (NumericIdentity, bool) {
	labels = NewLabels(labels...)
	if id, ok := reservedFor(labels); ok {
		return id, true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.byKey[labels.String()]; ok {
		return e.id, true
	}
	return 0, false
}

// Refs returns the local reference count of a number (0 when unknown).
func (a *StoreAllocator) Refs(id NumericIdentity) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.byID[id]; ok {
		return e.refs
	}
	return 0
}

// Identities returns every known identity, reserved ones included.
func (a *StoreAllocator) Identities() map[NumericIdentity]Labels {
	out := ReservedIdentities()
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, e := range a.byID {
		out[id] = e.labels
	}
	return out
}

// flush delivers queued events in order, without holding mu.
func (a *StoreAllocator) flush() {
	a.evMu.Lock()
	defer a.evMu.Unlock()
	a.mu.Lock()
	evs := a.pending
	a.pending = nil
	a.mu.Unlock()
	if a.opts.OnChange == nil {
		return
	}
	for _, ev := range evs {
		a.opts.OnChange(ev)
	}
}

// NewStandaloneAllocatorWithStore is NewStandaloneAllocator over a given
// store (agent/identitymgr.FileStore keeps numbers across restarts).
func NewStandaloneAllocatorWithStore(store Store, opts Options) *StoreAllocator {
	a := newStoreAllocator(store, opts)
	a.ownsStore = true
	return a
}
