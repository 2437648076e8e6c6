package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sluicenet/sluice/test/harness"
)

// stormResult mirrors execstorm's Result (test/bench/execstorm).
type stormResult struct {
	Execs      int64   `json:"execs"`
	Measured   int64   `json:"measured"`
	Seconds    float64 `json:"seconds"`
	OpsPerSec  float64 `json:"ops_per_s"`
	Total      float64 `json:"total_seconds"`
	Failed     int64   `json:"failed"`
	FirstError string  `json:"first_error"`
}

// sample is one measurement of one configuration.
type sample struct {
	Workload string
	Config   string
	Round    int
	Storm    stormResult
	// Agent figures (every configuration but baseline).
	AgentCPU      float64 // seconds, from storm start until the events drained
	AgentCPUStorm float64 // seconds, during the storm
	// Sensor figures (sluice configurations); -1 when unknown.
	Received   int // distinct exec events of the storm's binary from GET /v1/events
	Attributed int // of those, naming the storm's pod
	Exported   int // the same, counted in the export files (sluice-export)
	Lost       float64
	LostKnown  bool
	BPF        progStats // delta over the storm and drain
	Setup      time.Duration
	Err        error
}

// binaries is where the run's files live: the storm runs one copy of
// /bin/true, the readiness canary the other, so their events are told apart
// by path; forbidden is a third copy the exec policy kills (never run);
// open is the file the open loop opens.
type binaries struct {
	storm, canary, forbidden string
	open                     string
}

// copyTrue copies /bin/true into dir/storm/true, dir/canary/true and
// dir/forbidden/nc, and creates dir/open/file.
func copyTrue(dir string) (binaries, error) {
	out := binaries{storm: filepath.Join(dir, "storm", "true"), canary: filepath.Join(dir, "canary", "true"),
		forbidden: filepath.Join(dir, "forbidden", "nc"), open: filepath.Join(dir, "open", "file")}
	for _, p := range []string{out.storm, out.canary, out.forbidden} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return binaries{}, err
		}
		if err := harness.CopyExecutable("/bin/true", p); err != nil {
			return binaries{}, err
		}
	}
	if err := os.MkdirAll(filepath.Dir(out.open), 0o755); err != nil {
		return binaries{}, err
	}
	return out, os.WriteFile(out.open, []byte("open loop\n"), 0o644)
}

// measure builds a fresh node and storm pod for config, runs the storm and
// collects the agent's figures, then tears everything down.
func measure(ctx context.Context, o Options, bins binaries, config string, round int) sample {
	s := sample{Workload: o.Workload, Config: config, Round: round, Received: -1, Attributed: -1, Exported: -1}
	r := &harness.Runner{}
	r.Run(func() { s.Err = measureIn(ctx, r, o, bins, &s) })
	if s.Err == nil && r.Failed() {
		s.Err = fmt.Errorf("node setup failed (see the error lines above)")
	}
	return s
}

func measureIn(ctx context.Context, r *harness.Runner, o Options, bins binaries, s *sample) error {
	start := time.Now()
	node := harness.NewNode(r, harness.NodeOptions{Index: 1})
	args := []string{"--log-level", "info"}
	exportDir := filepath.Join(r.TempDir(), "export")
	if sensorOn(s.Config) {
		args = append(args, "--process-sensor", "--process-event-history", eventHistory)
	}
	if s.Config == cfgSluiceExport {
		args = append(args, "--export-filename", filepath.Join(exportDir, "events.json"),
			"--export-file-max-size-mb", "100", "--export-file-max-backups", "100")
	}
	policy, err := writePolicy(node.ManifestsDir, o, s.Config, bins)
	if err != nil {
		return err
	}
	agent := node.StartAgentArgs(r, args...)
	pod := node.AddPod(r, "storm")
	if s.Config == cfgBaseline {
		agent.Stop(r)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tally := newExecTally(pod.FullName())
	if sensorOn(s.Config) {
		fctx, stopFollow := context.WithCancel(ctx)
		go followExecs(fctx, node.Socket(), []string{bins.canary}, tally)
		err := canary(ctx, pod, bins.canary, tally)
		stopFollow()
		if err != nil {
			return err
		}
	}
	if policy != "" {
		if err := waitPolicy(ctx, node.Socket(), policy); err != nil {
			return err
		}
	}
	s.Setup = time.Since(start)

	pid := agent.PID()
	var cpu0, cpu1, cpu2, lost0, lost1 float64
	var bpf0, bpf1 progStats
	if s.Config != cfgBaseline {
		if cpu0, err = cpuSeconds(pid); err != nil {
			return fmt.Errorf("agent CPU: %w", err)
		}
	}
	if sensorOn(s.Config) {
		if lost0, s.LostKnown, err = scrapeMetric(node, lostMetric); err != nil {
			return err
		}
		if bpf0, err = tracingProgStats(pid); err != nil {
			return fmt.Errorf("BPF program stats: %w", err)
		}
	}

	if s.Storm, err = runStorm(ctx, o, pod, stormArgs(o, s.Config, bins)); err != nil {
		return err
	}
	if s.Config == cfgBaseline {
		return nil
	}
	if cpu1, err = cpuSeconds(pid); err != nil {
		return fmt.Errorf("agent CPU: %w", err)
	}
	s.AgentCPUStorm = cpu1 - cpu0
	if sensorOn(s.Config) {
		switch {
		case o.Workload == workloadExec:
			collectExecs(ctx, node.Socket(), bins.storm, int(s.Storm.Execs), tally, o.DrainIdle, o.Drain)
			s.Received, s.Attributed = tally.count(bins.storm)
		case s.Config == cfgSluicePolicyMatch:
			s.Received = collectPosts(ctx, node.Socket(), policy, int(s.Storm.Execs), o.DrainIdle, o.Drain)
		}
		if lost1, s.LostKnown, err = scrapeMetric(node, lostMetric); err != nil {
			return err
		}
		s.Lost = lost1 - lost0
		if bpf1, err = tracingProgStats(pid); err != nil {
			return fmt.Errorf("BPF program stats: %w", err)
		}
		s.BPF = progStats{Runs: bpf1.Runs - bpf0.Runs, RunTime: bpf1.RunTime - bpf0.RunTime, Names: bpf1.Names}
	}
	if cpu2, err = cpuSeconds(pid); err != nil {
		return fmt.Errorf("agent CPU: %w", err)
	}
	s.AgentCPU = cpu2 - cpu0
	if s.Config == cfgSluiceExport {
		ex, err := tallyExportDir(exportDir, pod.FullName(), []string{bins.storm})
		if err != nil {
			return fmt.Errorf("read the export files: %w", err)
		}
		s.Exported, _ = ex.count(bins.storm)
	}
	return nil
}

// eventHistory is the agent's event history in the bench: every event of a
// sample's storm stays for the count after it.
const eventHistory = "262144"

// canary runs the canary binary in pod until the agent reports one of its
// execs (the sensor is loaded and the event stream is live), within 30 s.
func canary(ctx context.Context, pod *harness.Pod, binary string, t *execTally) error {
	deadline := time.Now().Add(30 * time.Second)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if out, err := pod.NS.Command(binary).CombinedOutput(); err != nil {
			return fmt.Errorf("canary %s: %v: %s", binary, err, out)
		}
		for range 10 {
			if n, _ := t.count(binary); n > 0 {
				return nil
			}
			if _, err := t.state(); err != nil {
				return fmt.Errorf("event stream ended before the canary's exec arrived: %w", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return fmt.Errorf("no exec event of the canary %s within 30s", binary)
}

// stormArgs are execstorm's arguments for the workload of o in config.
func stormArgs(o Options, config string, bins binaries) []string {
	args := []string{"--workers", strconv.Itoa(o.Workers), "--duration", o.Duration.String(), "--warmup", o.Warmup.String()}
	switch {
	case o.Workload == workloadExec:
		return append(args, "--binary", bins.storm)
	case config == cfgSluicePolicyMatch:
		return append(args, "--open", bins.open, "--rate", strconv.FormatFloat(o.Rate, 'f', -1, 64))
	}
	return append(args, "--open", bins.open)
}

// runStorm runs execstorm in pod's netns and returns its result.
func runStorm(ctx context.Context, o Options, pod *harness.Pod, args []string) (stormResult, error) {
	var res stormResult
	ctx, cancel := context.WithTimeout(ctx, o.Warmup+o.Duration+30*time.Second)
	defer cancel()
	ns := pod.NS.Command(filepath.Join(o.BinDir, "execstorm"), args...)
	out, err := exec.CommandContext(ctx, ns.Path, ns.Args[1:]...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return res, fmt.Errorf("execstorm: %v: %s", err, ee.Stderr)
		}
		return res, fmt.Errorf("execstorm: %w", err)
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return res, fmt.Errorf("execstorm output %q: %w", out, err)
	}
	if res.Failed > 0 {
		return res, fmt.Errorf("execstorm: %d of %d execs failed, first: %s", res.Failed, res.Execs+res.Failed, res.FirstError)
	}
	return res, nil
}
