package events

import (
	"context"
	"io"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
)

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// kinds describes events as "kind pid" or "throttle TYPE dropped".
func kinds(evs []*api.ProcessEvent) []string {
	var out []string
	for _, ev := range evs {
		if th := ev.ProcessThrottle; th != nil {
			out = append(out, throttleOf([]*api.ProcessEvent{ev})...)
			continue
		}
		out = append(out, ev.Kind()+" "+pidString(ev))
	}
	return out
}

func pidString(ev *api.ProcessEvent) string { return strconv.FormatUint(uint64(ev.Subject().PID), 10) }

func TestPipeline(t *testing.T) {
	now := t0
	reg := prometheus.NewRegistry()
	file := filepath.Join(t.TempDir(), "events.log")
	p, err := NewPipeline(Config{History: 64, RateLimit: 2, Registerer: reg, Log: quietLog(),
		Export: &ExportConfig{Filename: file, Deny: `{"event_set":["PROCESS_EXIT"]}`},
		Now:    func() time.Time { return now }})
	require.NoError(t, err)

	for i := range uint32(4) {
		p.Publish(exec("default/a", i+1))
	}
	p.Publish(event(api.EventProcessExit, "default/a", "/bin/true", 5))
	p.Publish(exec("", 6))
	p.Tick() // under a second: no stop yet
	now = now.Add(time.Second)
	p.Tick()
	p.Tick() // one stop only

	want := []string{"process_exec 1", "process_exec 2", "THROTTLE_START default/a 0", "process_exit 5",
		"process_exec 6", "THROTTLE_STOP default/a 2"}
	assert.Equal(t, want, kinds(p.Hub().History(api.EventFilter{})))
	assert.Equal(t, []uint32{1, 2, 0, 6, 0}, readLines(t, file), "Tick flushes the export; the exit is denied")

	assert.Equal(t, 2.0, counterValue(t, p.events.WithLabelValues(api.EventProcessExec, "default")))
	assert.Equal(t, 1.0, counterValue(t, p.events.WithLabelValues(api.EventProcessExec, "")), "the host is namespace \"\"")
	assert.Equal(t, 1.0, counterValue(t, p.events.WithLabelValues(api.EventProcessExit, "default")))
	assert.Equal(t, 2.0, counterValue(t, p.events.WithLabelValues(api.EventProcessThrottle, "default")))
	assert.Equal(t, 2.0, counterValue(t, p.dropped.WithLabelValues("default")))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	series := map[string]int{}
	for _, mf := range mfs {
		series[mf.GetName()] = len(mf.GetMetric())
	}
	assert.Equal(t, map[string]int{"sluice_process_events_total": 4, "sluice_process_ratelimit_dropped_total": 1,
		"sluice_process_events_follower_dropped_total": 1}, series)

	p.Publish(exec("default/a", 7))
	require.NoError(t, p.Close())
	assert.Equal(t, []uint32{1, 2, 0, 6, 0, 7}, readLines(t, file), "Close flushes")
}

func TestPipelineWithoutLimitOrExport(t *testing.T) {
	p, err := NewPipeline(Config{})
	require.NoError(t, err)
	for i := range uint32(100) {
		p.Publish(exec("default/a", i))
	}
	p.Tick()
	assert.Len(t, p.Hub().History(api.EventFilter{}), 100, "no limit")
	require.NoError(t, p.Close())

	_, err = NewPipeline(Config{Export: &ExportConfig{Filename: filepath.Join(t.TempDir(), "e.log"), Allow: "{"}})
	assert.ErrorContains(t, err, "export allowlist")

	// Run ticks until its context ends.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	cancel()
	<-done
}
