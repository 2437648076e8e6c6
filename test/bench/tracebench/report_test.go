package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
)

func TestSumMetric(t *testing.T) {
	const page = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" +
		"# HELP sluice_process_events_lost_total Events the ring buffer could not take.\n" +
		"# TYPE sluice_process_events_lost_total counter\n" +
		"sluice_process_events_lost_total{cpu=\"0\"} 3\n" +
		"sluice_process_events_lost_total{cpu=\"1\"} 4.5\n" +
		"sluice_process_events_lost_total_other 100\n" +
		"sluice_process_events_total{type=\"process_exec\",namespace=\"\"} 7\n"
	sum, ok, err := sumMetric(strings.NewReader(page), lostMetric)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, 7.5, sum)

	sum, ok, err = sumMetric(strings.NewReader("plain 1\nsluice_process_events_lost_total 2\n"), lostMetric)
	require.NoError(t, err)
	assert.True(t, ok, "a series without labels")
	assert.Equal(t, 2.0, sum)

	_, ok, err = sumMetric(strings.NewReader("sluice_other 1\n"), lostMetric)
	require.NoError(t, err)
	assert.False(t, ok, "no such metric")
}

func execEvent(binary, execID, pod string) api.ProcessEvent {
	p := &api.Process{ExecID: execID, Binary: binary}
	if ns, name, ok := strings.Cut(pod, "/"); ok {
		p.Pod = &api.Pod{Namespace: ns, Name: name}
	}
	return api.ProcessEvent{ProcessExec: &api.ProcessExec{Process: p}, Time: time.Unix(1, 0)}
}

// TestTallyExportDir: exec events of the binary are counted once per exec
// id over the export file and its backups; other binaries, other kinds and
// duplicates are not; pod attribution is counted apart.
func TestTallyExportDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, evs ...api.ProcessEvent) {
		var b bytes.Buffer
		for _, e := range evs {
			require.NoError(t, json.NewEncoder(&b).Encode(e))
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o600))
	}
	exit := api.ProcessEvent{ProcessExit: &api.ProcessExit{Process: &api.Process{ExecID: "x3", Binary: "/s/true"}}}
	write("events-2026-01-01T00-00-00.000.json", execEvent("/s/true", "x1", "default/storm"), execEvent("/s/true", "x2", ""))
	write("events.json", execEvent("/s/true", "x2", ""), execEvent("/s/true", "x3", "default/storm"),
		execEvent("/other", "x4", "default/storm"), exit)

	tl, err := tallyExportDir(dir, "default/storm", []string{"/s/true"})
	require.NoError(t, err)
	n, attributed := tl.count("/s/true")
	assert.Equal(t, 3, n, "x1, x2, x3 once each")
	assert.Equal(t, 2, attributed)
	n, _ = tl.count("/other")
	assert.Zero(t, n, "binaries not asked for are not counted")

	write("broken.json", api.ProcessEvent{})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "broken.json"), []byte("{not json\n"), 0o600))
	_, err = tallyExportDir(dir, "default/storm", []string{"/s/true"})
	assert.Error(t, err, "a line that is not an event")
}

func TestEventsQuery(t *testing.T) {
	q := eventsQuery([]string{"/tmp/a.b/true", "/c/true"})
	assert.Equal(t, "process_exec", q.Get("type"))
	assert.Equal(t, "true", q.Get("follow"))
	assert.Equal(t, `^(/tmp/a\.b/true|/c/true)$`, q.Get("binary"))
}

// TestReport: medians, ratios, sums over rounds and the RESULT lines'
// exact shape, including unavailable and failed configurations and an exec
// that never arrived.
func TestReport(t *testing.T) {
	storm := func(rate float64, execs int64) stormResult {
		return stormResult{Execs: execs, Measured: execs - 100, Seconds: 2, Total: 2.2, OpsPerSec: rate}
	}
	samples := []sample{
		{Config: cfgBaseline, Round: 1, Storm: storm(1000, 2100)},
		{Config: cfgBaseline, Round: 2, Storm: storm(1200, 2500)},
		{Config: cfgBaseline, Round: 3, Storm: storm(1100, 2300)},
		{Config: cfgSluice, Round: 1, Storm: storm(1050, 2000), Received: 2000, LostKnown: true, AgentCPU: 0.2,
			AgentCPUStorm: 0.11, BPF: progStats{Runs: 6000, RunTime: 2 * time.Millisecond}},
		{Config: cfgSluice, Round: 2, Storm: storm(1000, 2000), Received: 1999, LostKnown: true, Lost: 1, AgentCPU: 0.2,
			AgentCPUStorm: 0.11, BPF: progStats{Runs: 6000, RunTime: 2 * time.Millisecond}},
		{Config: cfgSluiceExport, Round: 1, Err: errors.New("boom")},
	}
	sums := summarize(workloadExec, []string{cfgBaseline, cfgSluice, cfgSluiceExport, cfgAgent}, samples,
		map[string]string{cfgAgent: "unavailable: test"})
	var out bytes.Buffer
	writeReport(&out, "header", sums)
	got := out.String()
	t.Log(got)
	for _, want := range []string{
		"RESULT workload=exec config=baseline ops_per_s=1100 ratio_baseline=1.000 lost=NA\n",
		"RESULT workload=exec config=sluice ops_per_s=1025 ratio_baseline=0.932 lost=1 received=3999 execs=4000 bpf_ns_per_exec=1000 agent_cpu_s_per_1k_execs=0.1000\n",
		`RESULT workload=exec config=sluice-export ops_per_s=NA ratio_baseline=NA lost=NA reason="round 1: boom"` + "\n",
		`RESULT workload=exec config=agent ops_per_s=NA ratio_baseline=NA lost=NA reason="unavailable: test"` + "\n",
		"note: sluice: 1 of 4000 execs never reached GET /v1/events",
		"1000–1200", "3999/4000", "5.0", // agent CPU share: 0.22 s of 4.4 s storm time
	} {
		assert.Contains(t, got, want)
	}
	assert.False(t, samples[4].accounted(), "1999 of 2000 received")
	assert.True(t, samples[3].accounted())
	assert.Contains(t, samples[4].line(), "MISSING EVENTS")
}

// TestReportOpen: the open workload's RESULT lines name ops, the policy
// configuration that matches nothing has no event count, and the matching
// one is accounted by its posts.
func TestReportOpen(t *testing.T) {
	run := func(rate float64, ops int64) stormResult {
		return stormResult{Execs: ops, Measured: ops, Seconds: 1, Total: 1.1, OpsPerSec: rate}
	}
	samples := []sample{
		{Workload: workloadOpen, Config: cfgBaseline, Round: 1, Storm: run(100000, 110000)},
		{Workload: workloadOpen, Config: cfgSluicePolicy, Round: 1, Storm: run(98000, 108000), Received: -1, LostKnown: true,
			AgentCPU: 0.05, AgentCPUStorm: 0.01, BPF: progStats{Runs: 216000, RunTime: 10 * time.Millisecond}},
		{Workload: workloadOpen, Config: cfgSluicePolicyMatch, Round: 1, Storm: run(10000, 11000), Received: 11000, LostKnown: true,
			AgentCPU: 0.5, AgentCPUStorm: 0.4},
		{Workload: workloadOpen, Config: cfgSluicePolicyMatch, Round: 2, Storm: run(10000, 11000), Received: 10990, LostKnown: true},
	}
	assert.True(t, samples[1].accounted(), "nothing to count without matches")
	assert.True(t, samples[2].accounted())
	assert.False(t, samples[3].accounted(), "10 posts missing")
	sums := summarize(workloadOpen, []string{cfgBaseline, cfgSluicePolicy, cfgSluicePolicyMatch}, samples[:3], nil)
	var out bytes.Buffer
	writeReport(&out, "header", sums)
	got := out.String()
	t.Log(got)
	assert.Contains(t, got, "RESULT workload=open config=sluice-policy ops_per_s=98000 ratio_baseline=0.980 lost=0 bpf_ns_per_op=93 agent_cpu_s_per_1k_ops=0.0005\n")
	assert.Contains(t, got, "RESULT workload=open config=sluice-policy-match ops_per_s=10000 ratio_baseline=0.100 lost=0 received=11000 ops=11000 bpf_ns_per_op=0")
	assert.NotContains(t, got, "never reached")
}

// TestSluiceMeasured: a run whose sensor configurations all came out NA
// (unavailable or failed in every round) fails, whatever the baseline
// measured; one of them with a number passes.
func TestSluiceMeasured(t *testing.T) {
	base := sample{Config: cfgBaseline, Round: 1, Storm: stormResult{Execs: 10, OpsPerSec: 100}}
	configs := []string{cfgBaseline, cfgSluice, cfgSluicePolicy}

	err := sluiceMeasured(summarize(workloadExec, configs, []sample{base},
		map[string]string{cfgSluice: "unavailable: no --process-sensor", cfgSluicePolicy: "unavailable: no --process-sensor"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "sluice-policy (unavailable: no --process-sensor)")

	failed := sample{Config: cfgSluicePolicy, Round: 1, Err: errors.New("boom")}
	err = sluiceMeasured(summarize(workloadExec, configs, []sample{base, failed},
		map[string]string{cfgSluice: "unavailable: no --process-sensor"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "sluice-policy (round 1: boom)")

	measured := sample{Config: cfgSluice, Round: 1, Storm: stormResult{Execs: 10, OpsPerSec: 90}}
	require.NoError(t, sluiceMeasured(summarize(workloadExec, configs, []sample{base, failed, measured}, nil)))
	// The agent without the sensor is not a Sluice configuration of this benchmark.
	require.NoError(t, sluiceMeasured(summarize(workloadExec, []string{cfgBaseline, cfgAgent}, []sample{base}, nil)))
}
