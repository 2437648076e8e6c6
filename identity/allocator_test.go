package identity

import (
	"context"
	"fmt"
	"math/rand"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func podLabels(ns, app string) Labels {
	return PodLabels(ns, map[string]string{"app": app}, nil)
}

func TestStandaloneAllocator(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{now: time.Unix(1000, 0)}
	var events []Event
	a := NewStandaloneAllocator(Options{GracePeriod: time.Minute, Now: clk.Now, OnChange: func(e Event) { events = append(events, e) }})

	web, err := a.Allocate(ctx, podLabels("x", "web"))
	require.NoError(t, err)
	assert.Equal(t, NumericIdentity(256), web)
	db, err := a.Allocate(ctx, podLabels("x", "db"))
	require.NoError(t, err)
	assert.Equal(t, NumericIdentity(257), db)

	// Same labels, any order: same number, one more reference.
	again, err := a.Allocate(ctx, NewLabels(podLabels("x", "web")[2], podLabels("x", "web")[0], podLabels("x", "web")[1]))
	require.NoError(t, err)
	assert.Equal(t, web, again)
	assert.Equal(t, 2, a.Refs(web))

	// Reserved label sets get their fixed number and no reference.
	host, err := a.Allocate(ctx, ReservedLabels(ReservedHost))
	require.NoError(t, err)
	assert.Equal(t, ReservedHost, host)
	require.NoError(t, a.Release(ctx, ReservedHost))

	ls, ok := a.Lookup(web)
	require.True(t, ok)
	assert.True(t, ls.Equal(podLabels("x", "web")))
	id, ok := a.LookupByLabels(podLabels("x", "db"))
	require.True(t, ok)
	assert.Equal(t, db, id)
	_, ok = a.Lookup(999)
	assert.False(t, ok)

	_, err = a.Allocate(ctx, nil)
	assert.Error(t, err)
	_, err = a.Allocate(ctx, ParseLabels("app=x"))
	assert.Error(t, err, "SourceAny is a selector, not an identity label")

	// Release to zero: kept through the grace period, then collected.
	require.NoError(t, a.Release(ctx, web))
	require.NoError(t, a.Release(ctx, web))
	assert.ErrorIs(t, a.Release(ctx, web), ErrNotFound)
	n, err := a.GC(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
	clk.Add(30 * time.Second)
	// Re-allocating within the grace period revives the same number.
	again, err = a.Allocate(ctx, podLabels("x", "web"))
	require.NoError(t, err)
	assert.Equal(t, web, again)
	require.NoError(t, a.Release(ctx, web))
	clk.Add(61 * time.Second)
	n, err = a.GC(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	_, ok = a.Lookup(web)
	assert.False(t, ok)

	// The freed number is reused.
	other, err := a.Allocate(ctx, podLabels("y", "web"))
	require.NoError(t, err)
	assert.Equal(t, web, other)

	// GCNow ignores the grace period.
	require.NoError(t, a.Release(ctx, db))
	n, err = a.GCNow(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)

	assert.Equal(t, []Event{
		{Added, 256, podLabels("x", "web")},
		{Added, 257, podLabels("x", "db")},
		{Deleted, 256, podLabels("x", "web")},
		{Added, 256, podLabels("y", "web")},
		{Deleted, 257, podLabels("x", "db")},
	}, events)
	ids := a.Identities()
	assert.Len(t, ids, len(ReservedIdentities())+1)
}

func TestCIDRIdentitiesAreLocal(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore()
	a := NewClusterAllocator(store, Options{})
	id, err := a.Allocate(ctx, CIDRLabels(netip.MustParsePrefix("10.0.0.0/8")))
	require.NoError(t, err)
	assert.Equal(t, LocalScope|1, id)
	assert.True(t, id.IsLocal())
	id2, err := a.Allocate(ctx, CIDRLabels(netip.MustParsePrefix("192.168.0.0/16")))
	require.NoError(t, err)
	assert.Equal(t, LocalScope|2, id2)
	assert.Zero(t, store.Len(), "CIDR identities never reach the cluster store")

	require.NoError(t, a.Release(ctx, id))
	n, err := a.GCNow(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "local identities are collected in cluster mode too")
}

func TestClusterAllocatorSkipsTakenNumbers(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore()
	// Another node holds 256 with other labels; the listing is stale for 257
	// (it appears only at Create time).
	require.NoError(t, store.Create(ctx, 256, podLabels("z", "other")))
	a := NewClusterAllocator(store, Options{})
	b := NewClusterAllocator(store, Options{})
	idB, err := b.Allocate(ctx, podLabels("x", "web"))
	require.NoError(t, err)
	assert.Equal(t, NumericIdentity(257), idB)
	idA, err := a.Allocate(ctx, podLabels("x", "web"))
	require.NoError(t, err)
	assert.Equal(t, idB, idA)

	// GC in cluster mode never deletes from the shared store.
	require.NoError(t, a.Release(ctx, idA))
	_, err = a.GCNow(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, store.Len())

	// Sync makes other nodes' identities known and drops vanished ones.
	var events []Event
	c := NewClusterAllocator(store, Options{OnChange: func(e Event) { events = append(events, e) }})
	require.NoError(t, c.Sync(ctx))
	ls, ok := c.Lookup(256)
	require.True(t, ok)
	assert.True(t, ls.Equal(podLabels("z", "other")))
	require.NoError(t, store.Delete(ctx, 256))
	require.NoError(t, c.Sync(ctx))
	_, ok = c.Lookup(256)
	assert.False(t, ok)
	assert.Len(t, events, 3)
	assert.Equal(t, Deleted, events[2].Kind)
}

// Two nodes share one store and allocate the same label sets concurrently in
// different orders: every label set must end up with one number on both.
func TestClusterAllocatorRace(t *testing.T) {
	ctx := context.Background()
	const sets = 300
	for round := 0; round < 5; round++ {
		store := NewMemoryStore()
		nodes := []*StoreAllocator{NewClusterAllocator(store, Options{}), NewClusterAllocator(store, Options{})}
		got := make([][]NumericIdentity, len(nodes))
		var wg sync.WaitGroup
		for n, a := range nodes {
			got[n] = make([]NumericIdentity, sets)
			// Two goroutines per node, each with its own order.
			for g := 0; g < 2; g++ {
				order := rand.New(rand.NewSource(int64(round*10 + n*2 + g))).Perm(sets)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for _, i := range order {
						id, err := a.Allocate(ctx, podLabels("ns", fmt.Sprintf("app%d", i)))
						if err != nil {
							t.Error(err)
							return
						}
						if g == 0 {
							got[n][i] = id
						}
					}
				}()
			}
		}
		wg.Wait()
		seen := map[NumericIdentity]int{}
		for i := 0; i < sets; i++ {
			require.Equal(t, got[0][i], got[1][i], "label set %d", i)
			if j, dup := seen[got[0][i]]; dup {
				t.Fatalf("label sets %d and %d share number %d", i, j, got[0][i])
			}
			seen[got[0][i]] = i
			assert.Equal(t, 2, nodes[0].Refs(got[0][i]))
		}
		assert.Equal(t, sets, store.Len(), "no duplicate objects in the store")
		objs, err := store.List(ctx)
		require.NoError(t, err)
		for id := range objs {
			assert.True(t, id >= MinAllocated && id < MinAllocated+sets, "dense numbers: %d", id)
		}
	}
}

func TestClusterAllocatorExhausted(t *testing.T) {
	ctx := context.Background()
	a := NewClusterAllocator(NewMemoryStore(), Options{Min: 300, Max: 301})
	for i := 0; i < 2; i++ {
		_, err := a.Allocate(ctx, podLabels("x", fmt.Sprint(i)))
		require.NoError(t, err)
	}
	_, err := a.Allocate(ctx, podLabels("x", "3"))
	assert.ErrorIs(t, err, ErrExhausted)
}
