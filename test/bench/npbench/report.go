package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"text/tabwriter"

	"github.com/sluicenet/sluice/test/bench/benchrun"
	"github.com/sluicenet/sluice/test/bench/stats"
	"github.com/sluicenet/sluice/test/bench/tcpcrr"
)

func parseResult(out []byte) (tcpcrr.Result, error) {
	var res tcpcrr.Result
	if err := json.Unmarshal(out, &res); err != nil {
		return res, fmt.Errorf("parse crr run output %q: %w", out, err)
	}
	return res, nil
}

// cellSummary aggregates the rounds of one cell.
type cellSummary struct {
	Cell        cell
	OK, Rounds  int
	Rate        stats.Summary // transactions per second
	P50, P99    stats.Summary // µs, of the per-round percentiles
	Errors      int64
	Ratio       stats.Summary // over rounds: rate / the same round's iptables rate
	Unavailable string
	Failure     string
}

func summarize(cells []cell, samples []sample) []cellSummary {
	type key struct {
		backend string
		proto   tcpcrr.Proto
		round   int
	}
	base := map[key]float64{}
	for _, s := range samples {
		if s.Cell.Config == cfgIPTables && s.Err == nil {
			base[key{s.Cell.Backend, s.Cell.Proto, s.Round}] = s.Result.TPS
		}
	}
	var out []cellSummary
	for _, c := range cells {
		cs := cellSummary{Cell: c, Unavailable: notBuilt[c.Config]}
		var rate, p50, p99, ratio []float64
		for _, s := range samples {
			if s.Cell != c {
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
			rate = append(rate, s.Result.TPS)
			p50 = append(p50, s.Result.P50Micros)
			p99 = append(p99, s.Result.P99Micros)
			cs.Errors += s.Result.Errors
			if b := base[key{c.Backend, c.Proto, s.Round}]; b > 0 {
				ratio = append(ratio, s.Result.TPS/b)
			}
		}
		cs.Rate, cs.P50, cs.P99, cs.Ratio = stats.Summarize(rate), stats.Summarize(p50), stats.Summarize(p99), stats.Summarize(ratio)
		out = append(out, cs)
	}
	return out
}

// sluiceMeasured fails a run in which no Sluice configuration produced a
// number (a configuration that is not built counts as asked for but
// unavailable).
func sluiceMeasured(sums []cellSummary) error {
	var outs []benchrun.Outcome
	for _, s := range sums {
		why := s.Unavailable
		if why == "" {
			why = s.Failure
		}
		if why == "" {
			why = "not measured"
		}
		outs = append(outs, benchrun.Outcome{Case: s.Cell.String(), Sluice: isSluice(s.Cell.Config), Measured: s.OK > 0, Reason: why})
	}
	return benchrun.CheckSluiceMeasured(outs)
}

func fmtRatio(x float64) string {
	if math.IsNaN(x) || x == 0 {
		return "NA"
	}
	return fmt.Sprintf("%.2f", x)
}

func ratioCell(r stats.Summary) string {
	switch r.N {
	case 0:
		return "NA"
	case 1:
		return fmtRatio(r.Median)
	}
	return fmt.Sprintf("%s [%s–%s]", fmtRatio(r.Median), fmtRatio(r.Min), fmtRatio(r.Max))
}

// writeReport prints the table, then one RESULT line per cell.
func writeReport(w io.Writer, header string, sums []cellSummary) {
	fmt.Fprintf(w, "\n%s\n\n", header)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "config\tbackend\tproto\tok/rounds\trate median /s\tmin–max\tp50 µs\tp99 µs\terrors\tvs iptables (paired by round)\t")
	for _, s := range sums {
		c := s.Cell
		if s.OK == 0 {
			why := s.Unavailable
			switch {
			case why != "":
			case s.Failure != "":
				why = "FAILED: " + s.Failure
			default:
				why = "not measured"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t-\t-\t-\t-\t-\t-\t  %s\n", c.Config, c.Backend, c.Proto, s.OK, s.Rounds, why)
			continue
		}
		ratio := ratioCell(s.Ratio)
		if c.Config == cfgIPTables {
			ratio = "1.00"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%.0f\t%.0f–%.0f\t%.0f\t%.0f\t%d\t%s\t\n", c.Config, c.Backend, c.Proto, s.OK, s.Rounds,
			s.Rate.Median, s.Rate.Min, s.Rate.Max, s.P50.Median, s.P99.Median, s.Errors, ratio)
	}
	tw.Flush()
	for _, s := range sums {
		if s.OK > 0 && s.Failure != "" {
			fmt.Fprintf(w, "note: %s had a failed round: %s\n", s.Cell, s.Failure)
		}
	}
	fmt.Fprintln(w)
	for _, s := range sums {
		c := s.Cell
		if s.OK == 0 {
			why := s.Unavailable
			if why == "" {
				why = s.Failure
			}
			if why == "" {
				why = "not measured"
			}
			fmt.Fprintf(w, "RESULT config=%s backend=%s proto=%s rate=NA ratio_iptables=NA reason=%q\n", c.Config, c.Backend, c.Proto, why)
			continue
		}
		ratio := fmtRatio(s.Ratio.Median)
		if c.Config == cfgIPTables {
			ratio = "1.00"
		}
		fmt.Fprintf(w, "RESULT config=%s backend=%s proto=%s rate=%.0f ratio_iptables=%s\n", c.Config, c.Backend, c.Proto, s.Rate.Median, ratio)
	}
}
