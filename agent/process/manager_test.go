package process

import (
	"context"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/procsensor"
)

func TestExecFields(t *testing.T) {
	f := newFixture(t, Config{HostNS: procsensor.Namespaces{PID: 1, Mnt: 99, Net: 3}})
	e := execOf(10, 0, "/usr/bin/curl", "-s", "http://b")
	e.UID, e.EUID, e.AUID = 0, 1000, 4294967295
	e.CapEffective = 1<<12 | 1<<21 // NET_ADMIN, SYS_ADMIN
	e.CapPermitted = 1<<12 | 1<<21 | 1<<41
	e.CgroupID = 77
	e.ArgsTruncated, e.CwdTruncated, e.Cwd = true, true, "/"
	f.m.Handle(procsensor.Event{Exec: e})
	ev := f.rec.last(t)
	require.Equal(t, api.EventProcessExec, ev.Kind())
	assert.Equal(t, testNode, ev.NodeName)
	assert.Equal(t, e.Time, ev.Time)
	p := ev.ProcessExec.Process
	assert.Equal(t, "/usr/bin/curl", p.Binary)
	assert.Equal(t, "-s http://b", p.Arguments)
	assert.Equal(t, "execve truncArgs truncCwd rootcwd", p.Flags)
	assert.Equal(t, [3]uint32{0, 1000, 4294967295}, [3]uint32{p.UID, p.EUID, p.AUID})
	assert.Equal(t, []string{"CAP_NET_ADMIN", "CAP_SYS_ADMIN"}, p.Cap.Effective)
	assert.Equal(t, []string{"CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_41"}, p.Cap.Permitted)
	assert.Equal(t, api.Namespaces{
		PID: api.Namespace{Inum: 1, IsHost: true}, Mnt: api.Namespace{Inum: 2}, Net: api.Namespace{Inum: 3, IsHost: true},
	}, *p.NS)
	assert.Equal(t, uint64(77), p.CgroupID)
	assert.Equal(t, f.m.boot.Add(10*time.Microsecond), p.StartTime, "start time 10000 ns after boot")
	assert.Empty(t, p.ParentExecID)
	assert.Nil(t, p.Pod)
}

func TestCapNames(t *testing.T) {
	assert.Nil(t, CapNames(0))
	assert.Equal(t, []string{"CAP_CHOWN", "CAP_CHECKPOINT_RESTORE"}, CapNames(1|1<<40))
	assert.Len(t, CapNames(1<<41-1), 41)
	assert.Equal(t, "SIGKILL", SignalName(9))
	assert.Equal(t, "", SignalName(0))
}

// Fork copies the parent; exec updates the entry in place ("execve clone"
// the first time); a re-exec changes the image and keeps id and parent.
func TestForkThenReExec(t *testing.T) {
	f := newFixture(t, Config{})
	f.seedChain(t, 1)
	f.exec(2, 1, "/bin/bash", "-c", "x")
	f.fork(3, 2)
	f.m.Handle(procsensor.Event{Fork: &procsensor.Fork{Key: key(3), Parent: key(2)}}) // duplicate: ignored
	assert.Empty(t, f.rec.take(), "fork publishes nothing")
	p, _, ok := f.m.Get(ExecID(testNode, key(3)))
	require.True(t, ok)
	assert.Equal(t, "/bin/bash", p.Binary)
	assert.Equal(t, "-c x", p.Arguments)
	assert.Equal(t, "clone", p.Flags)
	assert.Equal(t, uint32(3), p.PID)
	assert.Equal(t, ExecID(testNode, key(2)), p.ParentExecID)

	first := f.exec(3, 2, "/usr/bin/env", "sh").ProcessExec
	assert.Equal(t, "execve clone", first.Process.Flags)
	assert.Equal(t, "/usr/bin/env", first.Process.Binary)
	second := f.exec(3, 1, "/bin/sh").ProcessExec // reparented meanwhile: the parent stays
	assert.Equal(t, "execve", second.Process.Flags)
	assert.Equal(t, "/bin/sh", second.Process.Binary)
	assert.Empty(t, second.Process.Arguments)
	assert.Equal(t, first.Process.ExecID, second.Process.ExecID)
	assert.Equal(t, uint32(2), second.Parent.PID)
	assert.Equal(t, []uint32{1, 2, 3}, pids(f.m.List()), "updated, not added")
	assert.Zero(t, f.misses(t))
}

func TestMisses(t *testing.T) {
	f := newFixture(t, Config{})
	f.fork(5, 4) // unknown parent: the child is added with its key only
	assert.Equal(t, 1.0, f.misses(t))
	p, _, ok := f.m.Get(ExecID(testNode, key(5)))
	require.True(t, ok)
	assert.Equal(t, "clone", p.Flags)

	ev := f.exec(5, 4, "/bin/x").ProcessExec
	assert.Nil(t, ev.Parent)
	assert.Equal(t, ExecID(testNode, key(4)), ev.Process.ParentExecID, "the parent's id is known from its key")
	assert.Equal(t, 2.0, f.misses(t))

	f.m.Handle(procsensor.Event{Connect: &procsensor.Connect{Key: key(9), Proto: 17}})
	conn := f.rec.last(t).ProcessConnect
	assert.Equal(t, ExecID(testNode, key(9)), conn.Process.ExecID)
	assert.Equal(t, uint32(9), conn.Process.PID)
	assert.Equal(t, "UDP", conn.Protocol)
	assert.Equal(t, 3.0, f.misses(t))

	ex := f.exit(8).ProcessExit
	assert.Equal(t, uint32(8), ex.Process.PID)
	assert.Equal(t, 4.0, f.misses(t))

	f.exec(6, 0, "/sbin/init") // no parent at all: not a miss
	assert.Equal(t, 4.0, f.misses(t))
}

func TestExitStatusAndSignal(t *testing.T) {
	f := newFixture(t, Config{})
	f.seedChain(t, 2)
	f.m.Handle(procsensor.Event{Exit: &procsensor.Exit{Time: t0, Key: key(2), Signal: 9}})
	ex := f.rec.last(t)
	assert.Equal(t, "SIGKILL", ex.ProcessExit.Signal)
	assert.Equal(t, t0, ex.Time)
	f.m.Handle(procsensor.Event{Exit: &procsensor.Exit{Key: key(1), Status: 3}})
	ex = f.rec.last(t)
	assert.Equal(t, uint32(3), ex.ProcessExit.Status)
	assert.Empty(t, ex.ProcessExit.Signal)
	assert.Empty(t, f.m.List())
}

// chanReader is an EventReader over a channel; Close ends Read.
type chanReader struct {
	ch   chan procsensor.Event
	once sync.Once
	done chan struct{}
}

func (r *chanReader) Read() (procsensor.Event, error) {
	select {
	case ev := <-r.ch:
		return ev, nil
	case <-r.done:
		return procsensor.Event{}, os.ErrClosed
	}
}

func (r *chanReader) Close() error { r.once.Do(func() { close(r.done) }); return nil }

func TestRunStopsWithContext(t *testing.T) {
	f := newFixture(t, Config{})
	r := &chanReader{ch: make(chan procsensor.Event), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- f.m.Run(ctx, r) }()
	r.ch <- procsensor.Event{Exec: execOf(1, 0, "/sbin/init")}
	r.ch <- procsensor.Event{Exit: &procsensor.Exit{Key: key(1)}} // handed over: the exec is handled
	cancel()
	require.NoError(t, <-errc)
	evs := f.rec.take()
	require.Len(t, evs, 2)
	assert.Equal(t, api.EventProcessExec, evs[0].Kind())
	assert.Equal(t, api.EventProcessExit, evs[1].Kind())

	r2 := &chanReader{ch: make(chan procsensor.Event), done: make(chan struct{})}
	r2.Close()
	assert.ErrorIs(t, f.m.Run(context.Background(), r2), os.ErrClosed)
}

func TestLostMetric(t *testing.T) {
	lost := uint64(7)
	f := newFixture(t, Config{Lost: func() uint64 { return lost }})
	assert.Equal(t, 7.0, f.metric(t, "sluice_process_events_lost_total"))
	lost = 9
	assert.Equal(t, 9.0, f.metric(t, "sluice_process_events_lost_total"))
	f = newFixture(t, Config{})
	mfs, err := f.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		assert.NotEqual(t, "sluice_process_events_lost_total", mf.GetName(), "no sensor count, no metric")
	}
}

// Queries run while events are handled (go test -race checks the locking).
func TestConcurrentQueries(t *testing.T) {
	f := newFixture(t, Config{CacheSize: 64})
	f.seedChain(t, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint32(2); i < 500; i++ {
			f.fork(i, 1)
			f.m.Handle(procsensor.Event{Exec: execOf(i, 1, "/bin/true")})
			f.m.Handle(connectEvent(i, 6, podA, backend, netip.AddrPort{}))
			f.m.Handle(procsensor.Event{Exit: &procsensor.Exit{Key: key(i)}})
		}
	}()
	for {
		select {
		case <-done:
			assert.Equal(t, 498*3, len(f.rec.take()), "exec, connect and exit of each")
			assert.Equal(t, []uint32{1}, pids(f.m.List()))
			ref, ok := f.m.ProcessForFlow(6, podA, backend)
			require.True(t, ok)
			assert.Equal(t, uint32(499), ref.PID, "the latest process on a reused tuple")
			return
		default:
			f.m.List()
			f.m.Get(ExecID(testNode, key(1)))
			f.m.ProcessForFlow(6, podA, backend)
			f.metric(t, "sluice_process_cache_size")
		}
	}
}
