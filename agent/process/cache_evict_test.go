package process

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/procsensor"
)

// A full cache evicts exited entries first (oldest exit first), then the
// least recently used.
func TestEvictionOrder(t *testing.T) {
	f := newFixture(t, Config{CacheSize: 5})
	f.seedChain(t, 1)
	f.exec(2, 1, "/bin/a")
	f.exec(3, 2, "/bin/b") // keeps 2 cached after its exit
	f.exec(4, 1, "/bin/c")
	f.exec(5, 4, "/bin/d") // keeps 4 cached after its exit
	f.exit(4)
	f.exit(2)
	assert.Equal(t, []uint32{1, 2, 3, 4, 5}, pids(f.m.List()))
	assert.Zero(t, f.metric(t, "sluice_process_cache_evictions_total"))

	f.exec(6, 1, "/bin/e")
	assert.Equal(t, []uint32{1, 2, 3, 5, 6}, pids(f.m.List()), "4 exited first")
	f.exec(7, 1, "/bin/f")
	assert.Equal(t, []uint32{1, 3, 5, 6, 7}, pids(f.m.List()), "then 2")
	assert.Equal(t, 2.0, f.metric(t, "sluice_process_cache_evictions_total"))

	// No exited entry left: the least recently used goes. Touch 1 and 3
	// (connect events), so 5 is the oldest use.
	f.m.Handle(procsensor.Event{Connect: &procsensor.Connect{Key: key(1)}})
	f.m.Handle(procsensor.Event{Connect: &procsensor.Connect{Key: key(3)}})
	f.rec.take()
	f.exec(8, 1, "/bin/g")
	assert.Equal(t, []uint32{1, 3, 6, 7, 8}, pids(f.m.List()))
	assert.Equal(t, 3.0, f.metric(t, "sluice_process_cache_evictions_total"))
	assert.Equal(t, 5.0, f.metric(t, "sluice_process_cache_size"))

	// 5 was evicted: its exit is a miss, published with what its key says.
	before := f.misses(t)
	ev := f.exit(5).ProcessExit
	assert.Equal(t, ExecID(testNode, key(5)), ev.Process.ExecID)
	assert.Equal(t, uint32(5), ev.Process.PID)
	assert.Empty(t, ev.Process.Binary)
	assert.Nil(t, ev.Parent)
	assert.Equal(t, before+1, f.misses(t))
}

// Every order of the running processes yields the same links and publishes
// parents before children.
func TestSeedOrderIndependence(t *testing.T) {
	tree := map[uint32]uint32{1: 0, 2: 1, 3: 2, 4: 1, 5: 3}
	orders := [][]uint32{{1, 2, 3, 4, 5}, {5, 4, 3, 2, 1}, {3, 5, 1, 4, 2}, {2, 4, 5, 1, 3}}
	for _, order := range orders {
		f := newFixture(t, Config{})
		var procs []procsensor.Exec
		for _, pid := range order {
			e := execOf(pid, tree[pid], "/bin/x")
			e.ProcFS = true
			procs = append(procs, *e)
		}
		require.NoError(t, f.m.Seed(func() ([]procsensor.Exec, error) { return procs, nil }))
		evs := f.rec.take()
		require.Len(t, evs, 5)
		var published []uint32
		for _, ev := range evs {
			published = append(published, ev.ProcessExec.Process.PID)
			assert.Equal(t, "procFS", ev.ProcessExec.Process.Flags)
		}
		assert.Equal(t, []uint32{1, 2, 3, 4, 5}, published, "order %v", order)
		_, anc, ok := f.m.Get(ExecID(testNode, key(5)))
		require.True(t, ok)
		assert.Equal(t, []uint32{3, 2, 1}, pids(anc), "order %v", order)
		assert.Zero(t, f.misses(t), "order %v", order)

		// Links are counted: 2 leaves only after 3 and 5.
		f.exit(2)
		f.exit(3)
		assert.Equal(t, []uint32{1, 2, 3, 4, 5}, pids(f.m.List()))
		f.exit(5)
		assert.Equal(t, []uint32{1, 4}, pids(f.m.List()), "order %v", order)
	}
}

func TestSeedError(t *testing.T) {
	f := newFixture(t, Config{})
	err := f.m.Seed(func() ([]procsensor.Exec, error) { return nil, assert.AnError })
	assert.ErrorIs(t, err, assert.AnError)
}
