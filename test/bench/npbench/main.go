// Command npbench is the NodePort benchmark driver behind
// hack/bench-nodeport.sh: an outside client's request/response rate to a
// NodePort whose backend is on the node it addresses (local) or on the
// other node (remote), TCP_CRR and UDP_RR, through kube-proxy's iptables
// layout with conntrack, Sluice's tc programs and Sluice's XDP program, in
// SNAT and DSR mode, against the client addressing the backend pod directly
// (no translation: the bound). The topology is two simulated nodes (network
// namespaces without uplink joined by a veth, pods wired by the real
// sluice-cni, the real sluice-agent) and a client namespace outside them,
// wired to node 1 and, for DSR replies, to node 2; it is built fresh for
// every configuration of every round, and the configurations are
// interleaved round by round. Every sample is preceded by application
// answers from the expected backend, and DSR samples must show their
// replies bypassing node 1. Run it as root; it removes everything it
// creates, also on Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluicenet/sluice/test/bench/benchrun"
	"github.com/sluicenet/sluice/test/harness"
)

func main() {
	o := DefaultOptions()
	configs := flag.String("configs", strings.Join(o.Configs, ","), "configurations to measure")
	flag.IntVar(&o.Rounds, "rounds", o.Rounds, "rounds; the configurations are interleaved in each")
	flag.IntVar(&o.Workers, "workers", o.Workers, "parallel client workers")
	flag.DurationVar(&o.Duration, "duration", o.Duration, "measured duration of each sample")
	flag.DurationVar(&o.Warmup, "warmup", o.Warmup, "load before each measured duration")
	flag.IntVar(&o.Checks, "checks", o.Checks, "application answers required from the backend before each sample")
	flag.StringVar(&o.BinDir, "bin-dir", "bin", "directory with sluice-agent, sluice-cni, host-local and crr")
	quick := flag.Bool("quick", false, "one short round (about two minutes)")
	flag.Parse()
	if *quick {
		o.Quick()
	}
	o.Configs = strings.Split(*configs, ",")
	benchrun.Main("npbench", "network namespaces, BPF, XDP, iptables", func(ctx context.Context) (bool, error) {
		return run(ctx, o, os.Stdout)
	})
}

// run measures everything o asks for and writes the samples, the table and
// the RESULT lines to w. It returns false if a sample failed or no Sluice
// configuration measured.
func run(ctx context.Context, o Options, w io.Writer) (bool, error) {
	abs, err := filepath.Abs(o.BinDir)
	if err != nil {
		return false, err
	}
	o.BinDir = abs
	if err := o.validate(); err != nil {
		return false, err
	}
	crr := filepath.Join(o.BinDir, "crr")
	if _, err := os.Stat(crr); err != nil {
		return false, fmt.Errorf("binary crr: %w (run hack/bench-nodeport.sh)", err)
	}
	os.Setenv(harness.PrivilegedEnv, "1")
	os.Setenv(harness.BinDirEnv, o.BinDir)

	header := fmt.Sprintf("NodePort request/response rate from a client outside two simulated nodes: %d workers, %v measured after %v warm-up per sample, %d round(s), configurations interleaved, fresh nodes per configuration and round\n"+
		"iptables: %s, kube-proxy's NodePort layout (KUBE-NODEPORTS → KUBE-EXT masquerade → KUBE-SVC → KUBE-SEP DNAT), conntrack; direct: the client sends to the backend pod's address and port, through node 1 (the no-translation bound)\n"+
		"every configuration runs the agents (routing) and has the same links and XDP_PASS/no-TX-checksum-offload peers; the client's second link to node 2 carries only the -dsr configurations' replies (--lb-mode dsr on both nodes)",
		o.Workers, o.Duration, o.Warmup, o.Rounds, iptablesVersion())
	fmt.Fprintln(w, header)
	top := &harness.Runner{}
	var ok bool
	ran := top.Run(func() {
		harness.Blackhole(top)
		ok = runAll(ctx, o, crr, w, header)
	})
	return ok && ran, nil
}

func runAll(ctx context.Context, o Options, crr string, w io.Writer, header string) bool {
	var samples []sample
	allOK := true
	configs := o.Configs
	for round := 1; round <= o.Rounds && ctx.Err() == nil; round++ {
		for i := range configs {
			config := configs[(i+round-1)%len(configs)]
			if ctx.Err() != nil {
				break
			}
			for _, s := range measureConfig(ctx, o, crr, config, round) {
				samples = append(samples, s)
				if s.Err != nil {
					allOK = false
					fmt.Fprintf(w, "round %d %-34s FAILED: %v\n", round, s.Cell, s.Err)
					continue
				}
				fmt.Fprintf(w, "round %d %-34s %8.0f /s  p50 %6.0fµs  p99 %7.0fµs  errors %d  answers %s%s\n", round, s.Cell,
					s.Result.TPS, s.Result.P50Micros, s.Result.P99Micros, s.Result.Errors, s.answersString(), s.extraString())
			}
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(w, "interrupted: reporting what was measured")
		allOK = false
	}
	sums := summarize(o.cells(), samples)
	if err := sluiceMeasured(sums); err != nil {
		fmt.Fprintf(w, "FAILED: %v\n", err)
		allOK = false
	}
	writeReport(w, header, sums)
	return allOK
}
