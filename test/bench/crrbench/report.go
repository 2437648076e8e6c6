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

// caseSummary aggregates the rounds of one case.
type caseSummary struct {
	Case     case_
	OK       int
	Rounds   int
	TPS      stats.Summary
	P50, P99 stats.Summary // of the per-round percentiles, µs
	Errors   int64
	// Ratio is over the rounds of TPS / the mean of the same round's direct
	// samples (paired, so drift between rounds cancels); for direct itself
	// it is its second sample over its first (the method's noise).
	Ratio       stats.Summary
	Unavailable string // why the case was not measured
	Failure     string // first failure
}

func summarize(cases []case_, samples []sample, unavailable map[string]string) []caseSummary {
	var out []caseSummary
	direct := directByRound(samples)
	for _, c := range cells(cases) {
		cs := caseSummary{Case: c, Unavailable: unavailable[c.Config]}
		var tps, p50, p99, ratios []float64
		for _, s := range samples {
			if s.Case.cell() != c {
				continue
			}
			cs.Rounds++
			if s.Err != nil {
				if cs.Failure == "" {
					cs.Failure = fmt.Sprintf("round %d: %v", s.Round, s.Err)
				}
				continue
			}
			cs.OK++
			tps = append(tps, s.Result.TPS)
			p50 = append(p50, s.Result.P50Micros)
			p99 = append(p99, s.Result.P99Micros)
			cs.Errors += s.Result.Errors
			if d := direct[s.Round]; c.Config != cfgDirect && d.n > 0 {
				ratios = append(ratios, s.Result.TPS/(d.sum/float64(d.n)))
			}
		}
		if c.Config == cfgDirect {
			ratios = directSelf(samples)
		}
		cs.TPS, cs.P50, cs.P99, cs.Ratio = stats.Summarize(tps), stats.Summarize(p50), stats.Summarize(p99), stats.Summarize(ratios)
		out = append(out, cs)
	}
	return out
}

type tpsSum struct {
	sum float64
	n   int
}

// directByRound sums the successful direct samples of each round.
func directByRound(samples []sample) map[int]tpsSum {
	out := map[int]tpsSum{}
	for _, s := range samples {
		if s.Case.Config == cfgDirect && s.Err == nil {
			d := out[s.Round]
			out[s.Round] = tpsSum{d.sum + s.Result.TPS, d.n + 1}
		}
	}
	return out
}

// directSelf is, for every round with both direct samples, the second's
// TPS over the first's.
func directSelf(samples []sample) []float64 {
	first, second := map[int]float64{}, map[int]float64{}
	for _, s := range samples {
		if s.Case.Config != cfgDirect || s.Err != nil {
			continue
		}
		if s.Case.Rep == 0 {
			first[s.Round] = s.Result.TPS
		} else {
			second[s.Round] = s.Result.TPS
		}
	}
	var out []float64
	for r, a := range first {
		if b, ok := second[r]; ok && a > 0 {
			out = append(out, b/a)
		}
	}
	return out
}

// sluiceMeasured fails a run in which Sluice configurations were asked for
// and none produced a number (benchrun.CheckSluiceMeasured).
func sluiceMeasured(sums []caseSummary) error {
	var outs []benchrun.Outcome
	for _, s := range sums {
		outs = append(outs, benchrun.Outcome{Case: s.Case.String(), Sluice: s.Case.Config == cfgSluiceSocket || s.Case.Config == cfgSluiceTC,
			Measured: s.OK > 0, Reason: firstNonEmpty(s.Unavailable, s.Failure, "not measured")})
	}
	return benchrun.CheckSluiceMeasured(outs)
}

func fmtRatio(x float64) string {
	if math.IsNaN(x) || x == 0 {
		return "NA"
	}
	return fmt.Sprintf("%.2f", x)
}

// ratioCell is the paired ratio's median with its range over the rounds.
func ratioCell(r stats.Summary) string {
	if r.N == 0 {
		return "NA"
	}
	if r.N == 1 {
		return fmtRatio(r.Median)
	}
	return fmt.Sprintf("%s [%s–%s]", fmtRatio(r.Median), fmtRatio(r.Min), fmtRatio(r.Max))
}

// writeReport prints the human table, the control-plane table, then one
// RESULT line per case and per control-plane measurement.
func writeReport(w io.Writer, header string, sums []caseSummary, cps []cpSample) {
	fmt.Fprintf(w, "\n%s\n\n", header)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "config\tservices\tok/rounds\ttps median\ttps min–max\tp50 µs\tp99 µs\terrors\tvs direct (paired by round)\t")
	for _, s := range sums {
		svc := fmt.Sprint(s.Case.Services)
		if s.Case.Config == cfgDirect {
			svc = "-"
		}
		if s.OK == 0 {
			why := s.Unavailable
			if why == "" {
				why = "FAILED: " + s.Failure
			}
			fmt.Fprintf(tw, "%s\t%s\t%d/%d\t-\t-\t-\t-\t-\t-\t  %s\n", s.Case.Config, svc, s.OK, s.Rounds, why)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%.0f\t%.0f–%.0f\t%.0f\t%.0f\t%d\t%s\t\n", s.Case.Config, svc, s.OK, s.Rounds,
			s.TPS.Median, s.TPS.Min, s.TPS.Max, s.P50.Median, s.P99.Median, s.Errors, rowRatio(s))
	}
	tw.Flush()
	for _, s := range sums {
		if s.Case.Config == cfgDirect {
			fmt.Fprintf(w, "direct against itself (its second sample of a round over its first, %d rounds): %s\n", s.Ratio.N, ratioCell(s.Ratio))
		}
	}
	for _, s := range sums {
		if s.OK > 0 && s.Failure != "" {
			fmt.Fprintf(w, "note: %s/%d had a failed round: %s\n", s.Case.Config, s.Case.Services, s.Failure)
		}
	}

	cpSums := summarizeCP(cps)
	if len(cpSums) > 0 {
		fmt.Fprintln(w, "\nControl plane (median of runs, seconds)")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "impl\twhat\tservices\tok/runs\tseconds median\tmin–max\tdetail")
		for _, c := range cpSums {
			if c.OK == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d/%d\t-\t-\tUNAVAILABLE/FAILED: %s\n", c.Impl, c.What, c.Services, c.OK, c.Runs, c.Failure)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d/%d\t%.3f\t%.3f–%.3f\t%s\n", c.Impl, c.What, c.Services, c.OK, c.Runs,
				c.Sec.Median, c.Sec.Min, c.Sec.Max, c.Detail)
		}
		tw.Flush()
	}

	fmt.Fprintln(w)
	for _, s := range sums {
		if s.OK == 0 {
			fmt.Fprintf(w, "RESULT config=%s services=%d tps=NA ratio_direct=NA reason=%q\n", s.Case.Config, s.Case.Services,
				firstNonEmpty(s.Unavailable, s.Failure))
			continue
		}
		if s.Case.Config == cfgDirect {
			fmt.Fprintf(w, "RESULT config=direct services=0 tps=%.0f ratio_direct=1.00 self_ratio=%s self_min=%s self_max=%s\n",
				s.TPS.Median, fmtRatio(s.Ratio.Median), fmtRatio(s.Ratio.Min), fmtRatio(s.Ratio.Max))
			continue
		}
		fmt.Fprintf(w, "RESULT config=%s services=%d tps=%.0f ratio_direct=%s ratio_min=%s ratio_max=%s\n", s.Case.Config, s.Case.Services,
			s.TPS.Median, fmtRatio(s.Ratio.Median), fmtRatio(s.Ratio.Min), fmtRatio(s.Ratio.Max))
	}
	for _, c := range cpSums {
		name := "program-" + c.Impl
		if c.What == "change" {
			name = "change-" + c.Impl
		}
		if c.OK == 0 {
			fmt.Fprintf(w, "RESULT config=%s services=%d seconds=NA reason=%q\n", name, c.Services, c.Failure)
			continue
		}
		fmt.Fprintf(w, "RESULT config=%s services=%d seconds=%.3f\n", name, c.Services, c.Sec.Median)
	}
}

// rowRatio is the table's "vs direct" cell: direct's own row shows its
// self-ratio.
func rowRatio(s caseSummary) string {
	if s.Case.Config == cfgDirect {
		return "self " + ratioCell(s.Ratio)
	}
	return ratioCell(s.Ratio)
}

type cpSummary struct {
	Impl, What string
	Services   int
	OK, Runs   int
	Sec        stats.Summary
	Detail     string
	Failure    string
}

func summarizeCP(cps []cpSample) []cpSummary {
	var out []cpSummary
	index := map[string]int{}
	vals := map[string][]float64{}
	for _, c := range cps {
		k := fmt.Sprintf("%s/%s/%d", c.Impl, c.What, c.Services)
		i, ok := index[k]
		if !ok {
			i = len(out)
			index[k] = i
			out = append(out, cpSummary{Impl: c.Impl, What: c.What, Services: c.Services})
		}
		out[i].Runs++
		if c.Err != nil {
			if out[i].Failure == "" {
				out[i].Failure = c.Err.Error()
			}
			continue
		}
		out[i].OK++
		out[i].Detail = c.Detail
		vals[k] = append(vals[k], c.Seconds)
	}
	for k, i := range index {
		out[i].Sec = stats.Summarize(vals[k])
	}
	return out
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if strings.TrimSpace(x) != "" {
			return x
		}
	}
	return ""
}
