package process

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/procsensor"
)

const testNode = "node1"

// recorder is a Sink that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []*api.ProcessEvent
}

func (r *recorder) Publish(ev *api.ProcessEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) take() []*api.ProcessEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs := r.events
	r.events = nil
	return evs
}

// last returns the one event published since the previous take.
func (r *recorder) last(t testing.TB) *api.ProcessEvent {
	t.Helper()
	evs := r.take()
	require.Len(t, evs, 1)
	return evs[0]
}

type fixture struct {
	m   *Manager
	rec *recorder
	reg *prometheus.Registry
}

func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	cfg.NodeName = testNode
	f := &fixture{rec: &recorder{}, reg: prometheus.NewRegistry()}
	f.m = NewManager(cfg, f.rec, f.reg)
	return f
}

// metric returns the value of a metric of the fixture's registry.
func (f *fixture) metric(t testing.TB, name string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func (f *fixture) misses(t testing.TB) float64 {
	return f.metric(t, "sluice_process_cache_misses_total")
}

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// key returns the key of a synthetic process: start time derived from tgid.
func key(tgid uint32) procsensor.Key {
	return procsensor.Key{TGID: tgid, StartTime: uint64(tgid) * 1000}
}

func execOf(tgid, parent uint32, binary string, args ...string) *procsensor.Exec {
	e := &procsensor.Exec{
		Time: t0.Add(time.Duration(tgid) * time.Millisecond), Key: key(tgid), PID: tgid,
		UID: 1000, EUID: 1000, AUID: 1000, Filename: binary, Args: append([]string{binary}, args...), Cwd: "/home/u",
		NS: procsensor.Namespaces{PID: 1, Mnt: 2, Net: 3},
	}
	if parent != 0 {
		e.Parent = key(parent)
	}
	return e
}

func (f *fixture) exec(tgid, parent uint32, binary string, args ...string) *api.ProcessEvent {
	f.m.Handle(procsensor.Event{Exec: execOf(tgid, parent, binary, args...)})
	return f.rec.take()[0]
}

func (f *fixture) fork(child, parent uint32) {
	f.m.Handle(procsensor.Event{Fork: &procsensor.Fork{Time: t0, Key: key(child), Parent: key(parent)}})
}

func (f *fixture) exit(tgid uint32) *api.ProcessEvent {
	f.m.Handle(procsensor.Event{Exit: &procsensor.Exit{Time: t0, Key: key(tgid)}})
	return f.rec.take()[0]
}

// seedChain seeds processes 1..n, each the parent of the next.
func (f *fixture) seedChain(t testing.TB, n uint32) {
	t.Helper()
	var procs []procsensor.Exec
	for i := uint32(1); i <= n; i++ {
		e := execOf(i, i-1, "/bin/p"+string(rune('0'+i)))
		e.ProcFS = true
		procs = append(procs, *e)
	}
	require.NoError(t, f.m.Seed(func() ([]procsensor.Exec, error) { return procs, nil }))
	f.rec.take()
}

func pids(ps []*api.Process) []uint32 {
	out := make([]uint32, len(ps))
	for i, p := range ps {
		out[i] = p.PID
	}
	return out
}
