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
	Cell       cell
	OK, Rounds int
	Rate       stats.Summary // transactions per second
	P50, P99   stats.Summary // µs, of the per-round percentiles
	Errors     int64
	Ratio      stats.Summary // over rounds: rate / the same round's iptables rate
	Direct     stats.Summary // over rounds: rate / the same round's direct rate
	Failure    string
}

func summarize(cells []cell, samples []sample) []cellSummary {
	type key struct {
		config  string
		backend string
		proto   tcpcrr.Proto
		round   int
	}
	base := map[key]float64{}
	for _, s := range samples {
		if (s.Cell.Config == cfgIPTables || s.Cell.Config == cfgDirect) && s.Err == nil {
			base[key{s.Cell.Config, s.Cell.Backend, s.Cell.Proto, s.Round}] = s.Result.TPS
		}
	}
	var out []cellSummary
	for _, c := range cells {
		cs := cellSummary{Cell: c}
		var rate, p50, p99, ratio, direct []float64
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
			if b := base[key{cfgIPTables, c.Backend, c.Proto, s.Round}]; b > 0 {
				ratio = append(ratio, s.Result.TPS/b)
			}
			if b := base[key{cfgDirect, c.Backend, c.Proto, s.Round}]; b > 0 {
				direct = append(direct, s.Result.TPS/b)
			}
		}
		cs.Rate, cs.P50, cs.P99 = stats.Summarize(rate), stats.Summarize(p50), stats.Summarize(p99)
		cs.Ratio, cs.Direct = stats.Summarize(ratio), stats.Summarize(direct)
		out = append(out, cs)
	}
	return out
}

// reason is why a cell has no number.
func (s cellSummary) reason() string {
	if s.Failure != "" {
		return s.Failure
	}
	return "not measured"
}

// sluiceMeasured fails a run in which no Sluice configuration produced a
// number.
func sluiceMeasured(sums []cellSummary) error {
	var outs []benchrun.Outcome
	for _, s := range sums {
		outs = append(outs, benchrun.Outcome{Case: s.Cell.String(), Sluice: isSluice(s.Cell.Config), Measured: s.OK > 0, Reason: s.reason()})
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

// baselineCell is the ratio column of cell c against baseline: 1.00 on the
// baseline's own rows.
func baselineCell(c cell, baseline string, r stats.Summary) string {
	if c.Config == baseline {
		return "1.00"
	}
	return ratioCell(r)
}

// writeReport prints the table, then one RESULT line per cell.
func writeReport(w io.Writer, header string, sums []cellSummary) {
	fmt.Fprintf(w, "\n%s\n\n", header)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "config\tbackend\tproto\tok/rounds\trate median /s\tmin–max\tp50 µs\tp99 µs\terrors\tvs iptables\tvs direct\tpath")
	for _, s := range sums {
		c := s.Cell
		if s.OK == 0 {
			why := "not measured"
			if s.Failure != "" {
				why = "FAILED: " + s.Failure
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t-\t-\t-\t-\t-\t-\t-\t%s\n", c.Config, c.Backend, c.Proto, s.OK, s.Rounds, why)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%.0f\t%.0f–%.0f\t%.0f\t%.0f\t%d\t%s\t%s\t%s\n", c.Config, c.Backend, c.Proto, s.OK, s.Rounds,
			s.Rate.Median, s.Rate.Min, s.Rate.Max, s.P50.Median, s.P99.Median, s.Errors,
			baselineCell(c, cfgIPTables, s.Ratio), baselineCell(c, cfgDirect, s.Direct), c.path())
	}
	tw.Flush()
	fmt.Fprintln(w, "vs iptables, vs direct: median over rounds of the rate / the same round's rate of that configuration (min–max in brackets)")
	fmt.Fprintln(w, "direct: the client addresses the backend pod itself through node 1 (no NAT, no conntrack rules, no NodePort program): the no-translation bound of this topology, not a dataplane")
	for _, s := range sums {
		if s.OK > 0 && s.Failure != "" {
			fmt.Fprintf(w, "note: %s had a failed round: %s\n", s.Cell, s.Failure)
		}
	}
	fmt.Fprintln(w)
	for _, s := range sums {
		c := s.Cell
		if s.OK == 0 {
			fmt.Fprintf(w, "RESULT config=%s backend=%s proto=%s rate=NA ratio_iptables=NA reason=%q\n", c.Config, c.Backend, c.Proto, s.reason())
			continue
		}
		ratio := fmtRatio(s.Ratio.Median)
		if c.Config == cfgIPTables {
			ratio = "1.00"
		}
		fmt.Fprintf(w, "RESULT config=%s backend=%s proto=%s rate=%.0f ratio_iptables=%s\n", c.Config, c.Backend, c.Proto, s.Rate.Median, ratio)
	}
}
