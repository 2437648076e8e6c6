// Command crrbench is the TCP_CRR benchmark driver behind hack/bench-crr.sh:
// pod → ClusterIP connection rate through Sluice (socket LB and tc LB)
// against kube-proxy's iptables mode at several service counts, and against
// the pod IP directly (the no-service floor), plus control-plane programming
// times. Every sample gets a fresh simulated node (network namespaces wired
// by the real sluice-cni, the real sluice-agent, crr servers in two backend
// pods, the crr client in the client pod and the node's cgroup); the
// configurations are interleaved round by round and reported as medians with
// their range. Run it as root; it removes everything it creates, also on
// Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluicenet/sluice/test/bench/benchrun"
	"github.com/sluicenet/sluice/test/harness"
)

func main() {
	o := DefaultOptions()
	configs := flag.String("configs", strings.Join(o.Configs, ","), "configurations to measure")
	svcs := flag.String("services", "1,1000,10000", "service counts for iptables and sluice")
	flag.IntVar(&o.Rounds, "rounds", o.Rounds, "rounds; the configurations are interleaved in each")
	flag.IntVar(&o.Workers, "workers", o.Workers, "parallel client workers")
	flag.DurationVar(&o.Duration, "duration", o.Duration, "measured duration of each sample")
	flag.DurationVar(&o.Warmup, "warmup", o.Warmup, "load before each measured duration")
	flag.BoolVar(&o.ControlPlane, "control-plane", o.ControlPlane, "measure ruleset/map programming times")
	flag.IntVar(&o.CPRounds, "cp-rounds", o.CPRounds, "runs of each control-plane measurement")
	flag.BoolVar(&o.MasqueradeAll, "iptables-masquerade-all", o.MasqueradeAll,
		"kube-proxy --masquerade-all in the iptables configuration (needed with Sluice's pod program; see iptables.go)")
	flag.StringVar(&o.BinDir, "bin-dir", "bin", "directory with sluice-agent, sluice-cni, host-local and crr")
	flag.StringVar(&o.DirectPick, "direct-pick", o.DirectPick, "direct configuration: random (a backend per connection, like a service) or worker (a fixed backend per worker)")
	quick := flag.Bool("quick", false, "one short round (about two minutes); still every configuration and service count")
	flag.Parse()
	if *quick {
		o.Quick()
	}
	o.Configs = strings.Split(*configs, ",")
	var err error
	if o.Services, err = parseInts(*svcs); err != nil {
		fatal("--services: %v", err)
	}
	benchrun.Main("crrbench", "network namespaces, BPF, iptables", func(ctx context.Context) (bool, error) {
		return run(ctx, o, os.Stdout)
	})
}

func fatal(format string, args ...any) { benchrun.Fatal("crrbench", format, args...) }

// run measures everything o asks for and writes progress, the report and
// the RESULT lines to w. It returns false if a measurement that was available
// failed.
func run(ctx context.Context, o Options, w io.Writer) (bool, error) {
	abs, err := filepath.Abs(o.BinDir)
	if err != nil {
		return false, err
	}
	o.BinDir = abs
	if err := o.validate(); err != nil {
		return false, err
	}
	if _, err := binPath(o.BinDir, "crr"); err != nil {
		return false, err
	}
	os.Setenv(harness.PrivilegedEnv, "1")
	os.Setenv(harness.BinDirEnv, o.BinDir)

	// Blackhole routes for the pod and service CIDRs for the whole run,
	// removed when top's Run returns.
	top := &harness.Runner{}
	var ok bool
	ran := top.Run(func() {
		harness.Blackhole(top)
		ok = runAll(ctx, o, w)
	})
	return ok && ran, nil
}

func runAll(ctx context.Context, o Options, w io.Writer) bool {
	unavailable := map[string]string{}
	feat := probeAgent(o.BinDir)
	if !feat.manifests {
		for _, c := range []string{cfgSluiceSocket, cfgSluiceTC} {
			unavailable[c] = "unavailable: " + feat.missing
		}
	}
	ipt := iptablesVersion()
	masq := "cluster-cidr only"
	if o.MasqueradeAll {
		masq = "masquerade-all"
	}
	header := fmt.Sprintf("TCP_CRR pod → service: %d workers, %v measured after %v warm-up per sample, %d round(s) interleaved, fresh node per sample\niptables: %s, kube-proxy layout (%s), measured service matched last; direct: backend picked per %s",
		o.Workers, o.Duration, o.Warmup, o.Rounds, ipt, masq, map[string]string{"random": "connection at random", "worker": "worker"}[o.DirectPick])
	fmt.Fprintln(w, header)

	cases := o.cases()
	var samples []sample
	allOK := true
	for round := 1; round <= o.Rounds && ctx.Err() == nil; round++ {
		// Rotate the order each round so no case always runs first.
		for i := range cases {
			c := cases[(i+round-1)%len(cases)]
			if ctx.Err() != nil {
				break
			}
			if unavailable[c.Config] != "" {
				continue
			}
			s := measure(ctx, o, c, round)
			samples = append(samples, s)
			if s.Err != nil {
				allOK = false
				fmt.Fprintf(w, "round %d %-22s FAILED: %v\n", round, c, s.Err)
				continue
			}
			fmt.Fprintf(w, "round %d %-22s %8.0f tps  p50 %6.0fµs  p99 %7.0fµs  errors %d  setup %.1fs  %s\n", round, c,
				s.Result.TPS, s.Result.P50Micros, s.Result.P99Micros, s.Result.Errors, s.Setup.Seconds(), s.answersString())
		}
	}

	var cps []cpSample
	if o.ControlPlane && ctx.Err() == nil {
		cps = controlPlane(ctx, o, feat, w)
		for _, c := range cps {
			if c.Err != nil && (c.Impl == "iptables" || feat.manifests) {
				allOK = false
			}
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(w, "interrupted: reporting what was measured")
		allOK = false
	}
	sums := summarize(cases, samples, unavailable)
	if err := sluiceMeasured(sums); err != nil {
		fmt.Fprintf(w, "FAILED: %v\n", err)
		allOK = false
	}
	writeReport(w, header, sums, cps)
	return allOK
}

// controlPlane measures programming times: the whole set at every service
// count, and one added service at the largest count.
func controlPlane(ctx context.Context, o Options, feat agentFeatures, w io.Writer) []cpSample {
	var out []cpSample
	largest := 0
	for _, n := range o.Services {
		largest = max(largest, n)
	}
	for range o.CPRounds {
		for _, n := range o.Services {
			if ctx.Err() != nil {
				return out
			}
			got := cpIPTables(o, n, n == largest)
			printCP(w, got)
			out = append(out, got...)
			if !feat.manifests {
				out = append(out, cpSample{Impl: "sluice", What: "program", Services: n, Err: fmt.Errorf("unavailable: %s", feat.missing)})
				if n == largest {
					out = append(out, cpSample{Impl: "sluice", What: "change", Services: n, Err: fmt.Errorf("unavailable: %s", feat.missing)})
				}
				continue
			}
			got = cpSluice(ctx, o, n, n == largest)
			printCP(w, got)
			out = append(out, got...)
		}
	}
	return out
}

func printCP(w io.Writer, cps []cpSample) {
	for _, c := range cps {
		if c.Err != nil {
			fmt.Fprintf(w, "control plane %s %s %d: FAILED: %v\n", c.Impl, c.What, c.Services, c.Err)
			continue
		}
		fmt.Fprintf(w, "control plane %s %s %d: %.3fs %s\n", c.Impl, c.What, c.Services, c.Seconds, c.Detail)
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
