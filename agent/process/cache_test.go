package process

import (
	"encoding/base64"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/procsensor"
)

func TestExecIDFormat(t *testing.T) {
	id := ExecID("node-a", procsensor.Key{TGID: 42, StartTime: 123456789})
	raw, err := base64.StdEncoding.DecodeString(id)
	require.NoError(t, err)
	assert.Equal(t, "node-a:123456789:42", string(raw))
}

// One exec id in the exec, connect and exit events of a forked child.
func TestExecIDStableAcrossEvents(t *testing.T) {
	f := newFixture(t, Config{})
	f.seedChain(t, 1)
	f.fork(7, 1)
	exec := f.exec(7, 1, "/usr/bin/curl", "http://b")
	f.m.Handle(procsensor.Event{Connect: &procsensor.Connect{
		Time: t0, Key: key(7), Proto: 6,
		Src: netip.MustParseAddrPort("10.0.0.1:40000"), Dst: netip.MustParseAddrPort("10.0.0.2:80"),
	}})
	conn := f.rec.last(t)
	exit := f.exit(7)

	want := ExecID(testNode, key(7))
	assert.Equal(t, want, exec.ProcessExec.Process.ExecID)
	assert.Equal(t, want, conn.ProcessConnect.Process.ExecID)
	assert.Equal(t, want, exit.ProcessExit.Process.ExecID)
	for _, ev := range []struct {
		kind, parent string
	}{
		{exec.Kind(), exec.ProcessExec.Process.ParentExecID},
		{conn.Kind(), conn.ProcessConnect.Process.ParentExecID},
		{exit.Kind(), exit.ProcessExit.Process.ParentExecID},
	} {
		assert.Equal(t, ExecID(testNode, key(1)), ev.parent, ev.kind)
	}
	assert.Equal(t, "/usr/bin/curl", conn.ProcessConnect.Process.Binary)
	assert.Equal(t, "/usr/bin/curl", exit.ProcessExit.Process.Binary)
	assert.True(t, exit.ProcessExit.Process.Exited)
	assert.Zero(t, f.misses(t))
}

func TestAncestorsOrderAndDepth(t *testing.T) {
	for _, tc := range []struct {
		depth     int
		ancestors []uint32
	}{
		{depth: 2, ancestors: []uint32{4, 3}},
		{depth: 3, ancestors: []uint32{4, 3, 2}},
		{depth: 10, ancestors: []uint32{4, 3, 2, 1}},
		{depth: -1, ancestors: []uint32{}},
	} {
		f := newFixture(t, Config{AncestorsDepth: tc.depth})
		f.seedChain(t, 5) // 1 <- 2 <- 3 <- 4 <- 5
		ev := f.exec(6, 5, "/bin/sh").ProcessExec
		assert.Equal(t, uint32(6), ev.Process.PID)
		assert.Equal(t, uint32(5), ev.Parent.PID)
		assert.Equal(t, tc.ancestors, pids(ev.Ancestors), "depth %d", tc.depth)

		exit := f.exit(6).ProcessExit
		assert.Equal(t, uint32(5), exit.Parent.PID)
		assert.Equal(t, tc.ancestors, pids(exit.Ancestors), "exit, depth %d", tc.depth)
	}
}

func TestGetReturnsAllAncestors(t *testing.T) {
	f := newFixture(t, Config{AncestorsDepth: 1})
	f.seedChain(t, 4)
	p, anc, ok := f.m.Get(ExecID(testNode, key(4)))
	require.True(t, ok)
	assert.Equal(t, uint32(4), p.PID)
	assert.Equal(t, []uint32{3, 2, 1}, pids(anc), "the API shows the whole chain, parent first")
	for _, a := range anc {
		assert.NotNil(t, a.Cap, "the API's ancestors are whole processes")
		assert.NotNil(t, a.NS)
	}
	ev := f.exec(5, 4, "/bin/sh").ProcessExec
	require.NotNil(t, ev.Parent.Cap, "the parent on an event is whole")
	for _, a := range ev.Ancestors {
		assert.Nil(t, a.Cap, "ancestors on events are summaries: no capabilities")
		assert.Nil(t, a.NS, "nor namespaces")
		assert.NotEmpty(t, a.ExecID)
		assert.NotEmpty(t, a.Binary)
	}
	_, _, ok = f.m.Get("bm9wZQ==")
	assert.False(t, ok)
	p, ok = f.m.Lookup(key(2))
	require.True(t, ok)
	assert.Equal(t, ExecID(testNode, key(2)), p.ExecID)
	_, ok = f.m.Lookup(key(9))
	assert.False(t, ok)
}

// An exited parent stays while a live child needs it, and leaves with the
// child's exit; a leaf leaves at its exit.
func TestRefcountedRemoval(t *testing.T) {
	f := newFixture(t, Config{})
	f.seedChain(t, 1)
	f.exec(2, 1, "/bin/bash")
	f.exec(3, 2, "/bin/sleep")
	f.exec(4, 2, "/bin/sleep")
	assert.Equal(t, []uint32{1, 2, 3, 4}, pids(f.m.List()))

	f.exit(2)
	assert.Equal(t, []uint32{1, 2, 3, 4}, pids(f.m.List()), "2 is still an ancestor of 3 and 4")
	p, _, ok := f.m.Get(ExecID(testNode, key(2)))
	require.True(t, ok)
	assert.True(t, p.Exited)

	ev := f.exit(3).ProcessExit
	require.NotNil(t, ev.Parent)
	assert.Equal(t, uint32(2), ev.Parent.PID)
	assert.True(t, ev.Parent.Exited)
	assert.Equal(t, []uint32{1, 2, 4}, pids(f.m.List()))

	f.exit(4)
	assert.Equal(t, []uint32{1}, pids(f.m.List()), "the last child's exit takes its exited parent along")
	assert.Equal(t, 1.0, f.metric(t, "sluice_process_cache_size"))
	assert.Zero(t, f.misses(t))
}

// A forked child that exits before its parent leaves at once; the parent
// then leaves at its own exit.
func TestForkChildRemoval(t *testing.T) {
	f := newFixture(t, Config{})
	f.seedChain(t, 2)
	f.fork(3, 2)
	assert.Equal(t, []uint32{1, 2, 3}, pids(f.m.List()))
	f.exit(3)
	f.exit(2)
	assert.Equal(t, []uint32{1}, pids(f.m.List()))
}
