package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/sluicenet/sluice/test/bench/benchrun"
	"github.com/sluicenet/sluice/test/bench/stats"
)

// accounted reports whether every exec of the storm reached the agent's
// API (and the export file): always true without the sensor.
// With the open workload only sluice-policy-match has events to account
// for: every open of the loop posted by the policy.
func (s sample) accounted() bool {
	if s.Err != nil || !sensorOn(s.Config) {
		return true
	}
	if s.Workload == workloadOpen {
		return s.Config != cfgSluicePolicyMatch || int64(s.Received) == s.Storm.Execs
	}
	if int64(s.Received) != s.Storm.Execs {
		return false
	}
	return s.Config != cfgSluiceExport || int64(s.Exported) == s.Storm.Execs
}

// line is the progress line of one sample.
func (s sample) line() string {
	head := fmt.Sprintf("round %d %-14s", s.Round, s.Config)
	if s.Err != nil {
		return head + " FAILED: " + s.Err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %7.0f ops/s  ops %d  setup %.1fs", head, s.Storm.OpsPerSec, s.Storm.Execs, s.Setup.Seconds())
	if s.Config != cfgBaseline {
		fmt.Fprintf(&b, "  agent cpu %.2fs (%.2fs in the storm)", s.AgentCPU, s.AgentCPUStorm)
	}
	if sensorOn(s.Config) {
		if s.Received >= 0 {
			fmt.Fprintf(&b, "  received %d (pod named on %d)", s.Received, s.Attributed)
		}
		fmt.Fprintf(&b, "  lost %s", fmtLost(s.Lost, s.LostKnown))
		if s.Config == cfgSluiceExport {
			fmt.Fprintf(&b, "  exported %d", s.Exported)
		}
		fmt.Fprintf(&b, "  bpf %d runs %v %v", s.BPF.Runs, s.BPF.RunTime, s.BPF.Names)
		if !s.accounted() {
			fmt.Fprintf(&b, "  MISSING EVENTS")
		}
	}
	return b.String()
}

// summary aggregates the rounds of one configuration: the exec rate as a
// median with its range, the counts and CPU as sums over the rounds.
type summary struct {
	Workload    string
	Config      string
	OK, Rounds  int
	Rate        stats.Summary
	Execs       int64
	Received    int64
	Exported    int64
	Lost        float64
	LostKnown   bool
	AgentCPU    float64 // seconds
	StormCPU    float64 // agent seconds within the storms
	StormSecs   float64 // storm wall time (warm-up included)
	BPFRunTime  float64 // ns
	BPFRuns     uint64
	Unavailable string
	Failure     string
}

func summarize(workload string, configs []string, samples []sample, unavailable map[string]string) []summary {
	var out []summary
	for _, c := range configs {
		sum := summary{Workload: workload, Config: c, Unavailable: unavailable[c], LostKnown: true}
		var rates []float64
		for _, s := range samples {
			if s.Config != c {
				continue
			}
			sum.Rounds++
			if s.Err != nil {
				if sum.Failure == "" {
					sum.Failure = fmt.Sprintf("round %d: %v", s.Round, s.Err)
				}
				continue
			}
			sum.OK++
			rates = append(rates, s.Storm.OpsPerSec)
			sum.Execs += s.Storm.Execs
			sum.Received += int64(s.Received)
			sum.Exported += int64(s.Exported)
			sum.Lost += s.Lost
			sum.LostKnown = sum.LostKnown && s.LostKnown
			sum.AgentCPU += s.AgentCPU
			sum.StormCPU += s.AgentCPUStorm
			sum.StormSecs += s.Storm.Total
			sum.BPFRunTime += float64(s.BPF.RunTime.Nanoseconds())
			sum.BPFRuns += s.BPF.Runs
		}
		sum.Rate = stats.Summarize(rates)
		out = append(out, sum)
	}
	return out
}

// sluiceMeasured fails a run in which Sluice configurations (the sensor's)
// were asked for and none produced a number (benchrun.CheckSluiceMeasured).
func sluiceMeasured(sums []summary) error {
	var outs []benchrun.Outcome
	for _, s := range sums {
		why := strings.TrimSpace(s.Unavailable + " " + s.Failure)
		if why == "" {
			why = "not measured"
		}
		outs = append(outs, benchrun.Outcome{Case: s.Config, Sluice: sensorOn(s.Config), Measured: s.OK > 0, Reason: why})
	}
	return benchrun.CheckSluiceMeasured(outs)
}

func baselineRate(sums []summary) float64 {
	for _, s := range sums {
		if s.Config == cfgBaseline && s.OK > 0 {
			return s.Rate.Median
		}
	}
	return 0
}

func fmtRatio(x float64) string {
	if math.IsNaN(x) || x == 0 {
		return "NA"
	}
	return fmt.Sprintf("%.3f", x)
}

func fmtLost(v float64, known bool) string {
	if !known {
		return "NA"
	}
	return fmt.Sprintf("%.0f", v)
}

// per1k returns v per 1 000 execs.
func (s summary) per1k(v float64) float64 { return v / float64(s.Execs) * 1000 }

// writeReport prints the human table, then one RESULT line per
// configuration.
func writeReport(w io.Writer, header string, sums []summary) {
	base := baselineRate(sums)
	fmt.Fprintf(w, "\n%s\n\n", header)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "config\tok/rounds\tops/s median\tmin–max\tvs baseline\treceived/ops\tlost\tagent CPU s/1k ops\tagent % of a CPU in storm\tBPF ns/op\t")
	for _, s := range sums {
		if s.OK == 0 {
			why := s.Unavailable
			if why == "" {
				why = "FAILED: " + s.Failure
			}
			fmt.Fprintf(tw, "%s\t%d/%d\t-\t-\t-\t-\t-\t-\t-\t-\t  %s\n", s.Config, s.OK, s.Rounds, why)
			continue
		}
		recv, lost, cpu, pct, bpf := "-", "-", "-", "-", "-"
		if s.Config != cfgBaseline {
			cpu = fmt.Sprintf("%.4f", s.per1k(s.AgentCPU))
			pct = fmt.Sprintf("%.1f", 100*s.StormCPU/s.StormSecs)
		}
		if s.counted() {
			recv = fmt.Sprintf("%d/%d", s.Received, s.Execs)
		}
		if sensorOn(s.Config) {
			lost = fmtLost(s.Lost, s.LostKnown)
			bpf = fmt.Sprintf("%.0f", s.BPFRunTime/float64(s.Execs))
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%.0f\t%.0f–%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.Config, s.OK, s.Rounds, s.Rate.Median,
			s.Rate.Min, s.Rate.Max, fmtRatio(stats.Ratio(s.Rate.Median, base)), recv, lost, cpu, pct, bpf)
	}
	tw.Flush()
	for _, s := range sums {
		if s.OK > 0 && s.Failure != "" {
			fmt.Fprintf(w, "note: %s had a failed round: %s\n", s.Config, s.Failure)
		}
		if s.OK > 0 && s.counted() && s.Received != s.Execs {
			fmt.Fprintf(w, "note: %s: %d of %d %ss never reached GET /v1/events\n", s.Config, s.Execs-s.Received, s.Execs, s.unit())
		}
		if s.OK > 0 && s.Config == cfgSluiceExport && s.Exported != s.Execs {
			fmt.Fprintf(w, "note: %s: %d of %d execs are not in the export file\n", s.Config, s.Execs-s.Exported, s.Execs)
		}
	}
	fmt.Fprintln(w, "BPF ns/op: run time of every tracing program the agent holds, per operation of the workload (other processes' events on the machine included)")

	fmt.Fprintln(w)
	for _, s := range sums {
		fmt.Fprintln(w, s.result(base))
	}
}

// result is the RESULT line of s.
func (s summary) result(base float64) string {
	if s.OK == 0 {
		return fmt.Sprintf("RESULT workload=%s config=%s ops_per_s=NA ratio_baseline=NA lost=NA reason=%q", s.Workload, s.Config,
			strings.TrimSpace(s.Unavailable+" "+s.Failure))
	}
	lost := "NA"
	if sensorOn(s.Config) {
		lost = fmtLost(s.Lost, s.LostKnown)
	}
	line := fmt.Sprintf("RESULT workload=%s config=%s ops_per_s=%.0f ratio_baseline=%s lost=%s", s.Workload, s.Config, s.Rate.Median,
		fmtRatio(stats.Ratio(s.Rate.Median, base)), lost)
	if s.counted() {
		line += fmt.Sprintf(" received=%d %ss=%d", s.Received, s.unit(), s.Execs)
	}
	if sensorOn(s.Config) {
		if s.Config == cfgSluiceExport {
			line += fmt.Sprintf(" exported=%d", s.Exported)
		}
		line += fmt.Sprintf(" bpf_ns_per_%s=%.0f", s.unit(), s.BPFRunTime/float64(s.Execs))
	}
	if s.Config != cfgBaseline {
		line += fmt.Sprintf(" agent_cpu_s_per_1k_%ss=%.4f", s.unit(), s.per1k(s.AgentCPU))
	}
	return line
}

// unit names one operation of the workload in RESULT fields: exec (the
// format of the exec benchmark's first version) or op.
func (s summary) unit() string {
	if s.Workload == workloadOpen {
		return "op"
	}
	return "exec"
}

// counted reports whether the configuration's events are counted against
// the operations: exec events in the exec workload, the policy's posts in
// sluice-policy-match.
func (s summary) counted() bool {
	if !sensorOn(s.Config) {
		return false
	}
	return s.Workload == workloadExec || s.Config == cfgSluicePolicyMatch
}
