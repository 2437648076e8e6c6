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
)

var (
	knownConfigs   = []string{cfgBaseline, cfgAgent, cfgSluice, cfgSluiceExport}
	defaultConfigs = []string{cfgBaseline, cfgSluice, cfgSluiceExport}
)

// agentFlags are the sluice-agent flags each configuration needs (beyond
// those of every harness node).
var agentFlags = map[string][]string{
	cfgSluice:       {"--process-sensor"},
	cfgSluiceExport: {"--process-sensor", "--export-filename", "--export-file-max-size-mb", "--export-file-max-backups"},
}

// sensorOn reports whether config runs the process sensor.
func sensorOn(config string) bool { return config == cfgSluice || config == cfgSluiceExport }

// Options of one benchmark run.
type Options struct {
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
	for _, c := range o.Configs {
		if !contains(knownConfigs, c) {
			return fmt.Errorf("unknown configuration %q (have %s)", c, strings.Join(knownConfigs, ", "))
		}
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
