package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Configuration names.
const (
	// cfgBaseline: no agent while the storm runs (one wired the pod, then
	// stopped; the pod's programs stay pinned and attached).
	cfgBaseline = "baseline"
	// cfgAgent: the agent runs with the process sensor off (not a default
	// configuration: it separates the idle agent from the sensor).
	cfgAgent = "agent"
	// cfgSluice: the agent with --process-sensor.
	cfgSluice = "sluice"
	// cfgSluiceExport: the same plus --export-filename.
	cfgSluiceExport = "sluice-export"
	// cfgSluicePolicy: the sensor with a tracing policy that matches none
	// of the workload's operations (exec: an exec-prevention policy for
	// another binary; open: a file-monitoring policy on openat for other
	// paths), so what is measured is the cost of the in-kernel filter.
	cfgSluicePolicy = "sluice-policy"
	// cfgSluicePolicyMatch (open only): a policy that posts every open of
	// the workload, at --rate operations per second: every one must reach
	// the agent's API, none lost.
	cfgSluicePolicyMatch = "sluice-policy-match"
)

// Workloads.
const (
	workloadExec = "exec"
	workloadOpen = "open"
)

var (
	knownConfigs   = []string{cfgBaseline, cfgAgent, cfgSluice, cfgSluiceExport, cfgSluicePolicy, cfgSluicePolicyMatch}
	defaultConfigs = []string{cfgBaseline, cfgSluice, cfgSluiceExport, cfgSluicePolicy}
	// defaultOpenConfigs are the open workload's.
	defaultOpenConfigs = []string{cfgBaseline, cfgSluice, cfgSluicePolicy, cfgSluicePolicyMatch}
)

// agentFlags are the sluice-agent flags each configuration needs (beyond
// those of every harness node).
var agentFlags = map[string][]string{
	cfgSluice:            {"--process-sensor"},
	cfgSluiceExport:      {"--process-sensor", "--export-filename", "--export-file-max-size-mb", "--export-file-max-backups"},
	cfgSluicePolicy:      {"--process-sensor"},
	cfgSluicePolicyMatch: {"--process-sensor"},
}

// sensorOn reports whether config runs the process sensor.
func sensorOn(config string) bool {
	return config == cfgSluice || config == cfgSluiceExport || config == cfgSluicePolicy || config == cfgSluicePolicyMatch
}

// Options of one benchmark run.
type Options struct {
	// Workload is exec (a fork+exec storm) or open (an openat/close loop).
	Workload string
	// Rate caps the open loop of sluice-policy-match (operations/s).
	Rate     float64
	Configs  []string
	Rounds   int
	Workers  int
	Duration time.Duration
	Warmup   time.Duration
	// Drain bounds the wait, after the storm, for the agent to deliver the
	// storm's exec events (it ends earlier once all arrived, or when none
	// arrived for DrainIdle).
	Drain     time.Duration
	DrainIdle time.Duration
	// BPFStats turns on the kernel's BPF run-time statistics for the run
	// (BPF_ENABLE_STATS) and reports the sensor programs' cost per exec.
	BPFStats bool
	BinDir   string // sluice-agent, sluice-cni, host-local, execstorm
}

// DefaultOptions are the full run's settings.
func DefaultOptions() Options {
	return Options{
		Workload:  workloadExec,
		Rate:      10000,
		Configs:   defaultConfigs,
		Rounds:    5,
		Workers:   runtime.NumCPU(),
		Duration:  5 * time.Second,
		Warmup:    500 * time.Millisecond,
		Drain:     30 * time.Second,
		DrainIdle: 3 * time.Second,
		BPFStats:  true,
	}
}

// Quick shortens o to one round of 2 s samples.
func (o *Options) Quick() {
	o.Rounds = 1
	o.Duration = 2 * time.Second
	o.Warmup = 200 * time.Millisecond
}

func (o Options) validate() error {
	if o.Rounds < 1 || o.Workers < 1 || o.Duration <= 0 || o.Warmup < 0 || o.Drain <= 0 || o.DrainIdle <= 0 {
		return errors.New("rounds, workers >= 1, duration, drain, drain-idle > 0 and warmup >= 0 required")
	}
	if len(o.Configs) == 0 {
		return errors.New("no configuration")
	}
	if o.Workload != workloadExec && o.Workload != workloadOpen {
		return fmt.Errorf("unknown workload %q (have %s, %s)", o.Workload, workloadExec, workloadOpen)
	}
	for _, c := range o.Configs {
		if !contains(knownConfigs, c) {
			return fmt.Errorf("unknown configuration %q (have %s)", c, strings.Join(knownConfigs, ", "))
		}
		if o.Workload == workloadOpen && (c == cfgSluiceExport || c == cfgAgent) {
			return fmt.Errorf("configuration %s is for the exec workload", c)
		}
		if o.Workload == workloadExec && c == cfgSluicePolicyMatch {
			return fmt.Errorf("configuration %s is for the open workload", c)
		}
	}
	if o.Rate <= 0 {
		return errors.New("rate must be > 0")
	}
	if o.BinDir == "" {
		return errors.New("no binary directory")
	}
	for _, b := range []string{"sluice-agent", "sluice-cni", "host-local", "execstorm"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return fmt.Errorf("binary %s: %w (hack/bench-trace.sh builds them)", b, err)
		}
	}
	return nil
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// unavailableConfigs returns, for each configuration the installed
// sluice-agent cannot run, why: the flags it lacks (from its --help).
func unavailableConfigs(binDir string, configs []string) map[string]string {
	out := map[string]string{}
	help, err := exec.Command(filepath.Join(binDir, "sluice-agent"), "--help").CombinedOutput()
	for _, c := range configs {
		var missing []string
		for _, f := range agentFlags[c] {
			if err == nil && !strings.Contains(string(help), f+" ") {
				missing = append(missing, f)
			}
		}
		switch {
		case err != nil && len(agentFlags[c]) > 0:
			out[c] = fmt.Sprintf("unavailable: sluice-agent --help: %v", err)
		case len(missing) > 0:
			out[c] = "unavailable: sluice-agent lacks " + strings.Join(missing, ", ")
		}
	}
	return out
}
