package events

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// event returns an event of kind about binary in pod ("ns/name", "" on the
// host), its process's pid n.
func event(kind, pod, binary string, n uint32) *api.ProcessEvent {
	p := &api.Process{ExecID: "id", PID: n, Binary: binary}
	if pod != "" {
		ns, name, _ := strings.Cut(pod, "/")
		p.Pod = &api.Pod{Namespace: ns, Name: name}
	}
	ev := &api.ProcessEvent{NodeName: "node-1", Time: t0}
	switch kind {
	case api.EventProcessExec:
		ev.ProcessExec = &api.ProcessExec{Process: p}
	case api.EventProcessExit:
		ev.ProcessExit = &api.ProcessExit{Process: p}
	case api.EventProcessConnect:
		ev.ProcessConnect = &api.ProcessConnect{Process: p, Protocol: "TCP"}
	case api.EventProcessTracepoint:
		ev.ProcessTracepoint = &api.ProcessTracepoint{Process: p, Subsys: "sched", Event: "sched_process_exec",
			Args: []api.TracepointArg{api.StringArg("filename", binary)}, Action: "KPROBE_ACTION_SIGKILL", Enforced: true, PolicyName: "no-nc"}
	case api.EventProcessThrottle:
		ns, name, _ := strings.Cut(pod, "/")
		ev.ProcessThrottle = &api.ProcessThrottle{Type: api.ThrottleStart, Namespace: ns, Pod: name}
	}
	return ev
}

func exec(pod string, n uint32) *api.ProcessEvent {
	return event(api.EventProcessExec, pod, "/bin/true", n)
}

// pids returns the pids of the events' processes (0 for throttle events).
func pids(evs []*api.ProcessEvent) []uint32 {
	out := []uint32{}
	for _, ev := range evs {
		var n uint32
		if p := ev.Subject(); p != nil {
			n = p.PID
		}
		out = append(out, n)
	}
	return out
}

func counterValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	m := make(chan prometheus.Metric, 1)
	c.Collect(m)
	var out dto.Metric
	require.NoError(t, (<-m).Write(&out))
	return out.GetCounter().GetValue()
}
