// Command tracebench is the tracing benchmark driver behind
// hack/bench-trace.sh: the cost of Sluice's process sensor and tracing
// policies on a fork+exec storm (--workload exec) or an openat/close loop
// (--workload open, with the sluice-policy configurations). Every sample gets a fresh simulated node (a network namespace
// with its own bpffs and cgroup, the real sluice-agent) and a pod wired by
// the real sluice-cni, in which execstorm runs N workers that start a copy
// of /bin/true in a loop. Configurations: baseline (no agent while the
// storm runs), agent (sensor off; optional), sluice (--process-sensor) and
// sluice-export (also --export-filename), interleaved round by round and
// reported as medians with their range. The agent shares the CPUs with the
// storm, so its cost is in the exec rate; its CPU time is reported too. For
// the sensor configurations it checks that every exec of the storm reached
// GET /v1/events (and the export file), reads the ring buffer's loss
// counter from /metrics and the sensor programs' run time from the kernel's
// BPF statistics. Run it as root; it removes everything it creates, also on
// Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/test/bench/benchrun"
	"github.com/sluicenet/sluice/test/harness"
)

func main() {
	o := DefaultOptions()
	configs := flag.String("configs", "", "configurations: "+strings.Join(knownConfigs, ", ")+
		" (default: "+strings.Join(defaultConfigs, ",")+"; with --workload open: "+strings.Join(defaultOpenConfigs, ",")+")")
	flag.StringVar(&o.Workload, "workload", o.Workload, "exec (fork+exec storm) or open (openat/close loop)")
	flag.Float64Var(&o.Rate, "rate", o.Rate, "operations per second of the open loop in sluice-policy-match")
	flag.IntVar(&o.Rounds, "rounds", o.Rounds, "rounds; the configurations are interleaved in each")
	flag.IntVar(&o.Workers, "workers", o.Workers, "parallel exec workers (default: one per CPU)")
	flag.DurationVar(&o.Duration, "duration", o.Duration, "measured duration of each sample")
	flag.DurationVar(&o.Warmup, "warmup", o.Warmup, "storm before each measured duration (its execs must be reported too)")
	flag.DurationVar(&o.Drain, "drain", o.Drain, "longest wait after a storm for its exec events")
	flag.DurationVar(&o.DrainIdle, "drain-idle", o.DrainIdle, "stop waiting for exec events after this long without one")
	flag.BoolVar(&o.BPFStats, "bpf-stats", o.BPFStats, "enable the kernel's BPF run-time statistics and report the sensor's cost per exec")
	flag.StringVar(&o.BinDir, "bin-dir", "bin", "directory with sluice-agent, sluice-cni, host-local and execstorm")
	quick := flag.Bool("quick", false, "one round of 2 s samples")
	flag.Parse()
	if *quick {
		o.Quick()
	}
	switch {
	case *configs != "":
		o.Configs = strings.Split(*configs, ",")
	case o.Workload == workloadOpen:
		o.Configs = defaultOpenConfigs
	}
	benchrun.Main("tracebench", "network namespaces, BPF", func(ctx context.Context) (bool, error) {
		return run(ctx, o, os.Stdout)
	})
}

// run measures every configuration of o and writes progress, the report
// and the RESULT lines to w. It returns false if a measurement that was
// available failed or an exec went unaccounted for.
func run(ctx context.Context, o Options, w io.Writer) (bool, error) {
	abs, err := filepath.Abs(o.BinDir)
	if err != nil {
		return false, err
	}
	o.BinDir = abs
	if err := o.validate(); err != nil {
		return false, err
	}
	os.Setenv(harness.PrivilegedEnv, "1")
	os.Setenv(harness.BinDirEnv, o.BinDir)
	if o.BPFStats {
		stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
		if err != nil {
			return false, fmt.Errorf("enable BPF statistics (--bpf-stats=false to run without): %w", err)
		}
		defer stats.Close()
	}
	top := &harness.Runner{}
	var ok bool
	ran := top.Run(func() {
		harness.Blackhole(top)
		bins, err := copyTrue(top.TempDir())
		if err != nil {
			top.Fatalf("copy /bin/true: %v", err)
		}
		ok = runAll(ctx, o, bins, w)
	})
	return ok && ran, nil
}

func runAll(ctx context.Context, o Options, bins binaries, w io.Writer) bool {
	unavailable := unavailableConfigs(o.BinDir, o.Configs)
	stats := "off"
	if o.BPFStats {
		stats = "on"
	}
	load := fmt.Sprintf("exec storm in a pod: %d workers running %s (a copy of /bin/true)", o.Workers, bins.storm)
	if o.Workload == workloadOpen {
		load = fmt.Sprintf("open loop in a pod: %d workers opening and closing %s (sluice-policy-match: %.0f opens/s)", o.Workers, bins.open, o.Rate)
	}
	header := fmt.Sprintf("%s, %v measured after %v warm-up per sample, %d round(s) interleaved, fresh node per sample; kernel BPF statistics %s",
		load, o.Duration, o.Warmup, o.Rounds, stats)
	header += "\nload average at start: " + loadAvg()
	fmt.Fprintln(w, header)
	var samples []sample
	allOK := true
	for round := 1; round <= o.Rounds && ctx.Err() == nil; round++ {
		// Rotate the order each round so no configuration always runs first.
		for i := range o.Configs {
			c := o.Configs[(i+round-1)%len(o.Configs)]
			if ctx.Err() != nil {
				break
			}
			if unavailable[c] != "" {
				continue
			}
			s := measure(ctx, o, bins, c, round)
			samples = append(samples, s)
			if s.Err != nil || !s.accounted() {
				allOK = false
			}
			fmt.Fprintln(w, s.line())
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(w, "interrupted: reporting what was measured")
		allOK = false
	}
	sums := summarize(o.Workload, o.Configs, samples, unavailable)
	if err := sluiceMeasured(sums); err != nil {
		fmt.Fprintf(w, "FAILED: %v\n", err)
		allOK = false
	}
	writeReport(w, header+", at end: "+loadAvg()+" (other work on the machine shares the CPUs with the storm)", sums)
	return allOK
}

// loadAvg is the 1, 5 and 15 minute load averages of the machine.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
