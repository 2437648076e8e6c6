package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicenet/sluice/test/bench/tcpcrr"
)

func TestCases(t *testing.T) {
	o := DefaultOptions()
	var got []string
	for _, c := range o.cases() {
		got = append(got, c.String())
	}
	want := "direct/0 iptables/1 iptables/1000 iptables/10000 sluice-socket/1 direct#2/0 sluice-socket/1000 sluice-socket/10000 sluice-tc/1 sluice-tc/1000 sluice-tc/10000"
	if strings.Join(got, " ") != want {
		t.Errorf("cases %v", got)
	}
	q := DefaultOptions()
	q.Quick()
	if len(q.cases()) != len(o.cases()) || q.Rounds != 1 || q.Duration != 2*time.Second {
		t.Errorf("quick mode drops cases or keeps long samples: %+v", q)
	}
	bad := DefaultOptions()
	bad.BinDir = "/x"
	bad.Configs = []string{"nope"}
	if bad.validate() == nil {
		t.Error("unknown configuration accepted")
	}
}

func TestReport(t *testing.T) {
	d, d2, i1 := case_{Config: cfgDirect}, case_{Config: cfgDirect, Rep: 1}, case_{Config: cfgIPTables, Services: 1}
	s1, s2 := case_{Config: cfgSluiceSocket, Services: 1}, case_{Config: cfgIPTables, Services: 10}
	res := func(tps float64) tcpcrr.Result {
		return tcpcrr.Result{TPS: tps, P50Micros: 100, P99Micros: 900, Transactions: 1}
	}
	samples := []sample{
		{Case: d, Round: 1, Result: res(10000)}, {Case: d, Round: 2, Result: res(12000)}, {Case: d, Round: 3, Result: res(8000)},
		{Case: d2, Round: 1, Result: res(11000)}, {Case: d2, Round: 3, Result: res(8000)},
		// Paired by round: 7000/10500 = 0.67, 8000/8000 = 1.00; the pooled
		// medians would give 7500/10000.
		{Case: i1, Round: 1, Result: res(7000)}, {Case: i1, Round: 2, Err: errors.New("boom")}, {Case: i1, Round: 3, Result: res(8000)},
		{Case: s2, Round: 1, Err: errors.New("check failed")},
	}
	sums := summarize([]case_{d, i1, s1, d2, s2}, samples, map[string]string{cfgSluiceSocket: "unavailable: no flags"})
	cps := []cpSample{
		{Impl: "iptables", What: "program", Services: 10, Seconds: 0.2},
		{Impl: "iptables", What: "program", Services: 10, Seconds: 0.4},
		{Impl: "iptables", What: "program", Services: 10, Seconds: 0.3},
		{Impl: "sluice", What: "program", Services: 10, Err: errors.New("unavailable: x")},
	}
	var b bytes.Buffer
	writeReport(&b, "hdr", sums, cps)
	out := b.String()
	for _, want := range []string{
		"RESULT config=direct services=0 tps=10000 ratio_direct=1.00 self_ratio=1.05 self_min=1.00 self_max=1.10\n",
		"RESULT config=iptables services=1 tps=7500 ratio_direct=0.83 ratio_min=0.67 ratio_max=1.00\n",
		"direct against itself (its second sample of a round over its first, 2 rounds): 1.05 [1.00–1.10]",
		"RESULT config=sluice-socket services=1 tps=NA ratio_direct=NA reason=\"unavailable: no flags\"\n",
		"RESULT config=iptables services=10 tps=NA ratio_direct=NA reason=\"round 1: check failed\"\n",
		"RESULT config=program-iptables services=10 seconds=0.300\n",
		"RESULT config=program-sluice services=10 seconds=NA reason=\"unavailable: x\"\n",
		"8000–12000",
		"0.83 [0.67–1.00]",
		"note: iptables/1 had a failed round: round 2: boom",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	// RESULT lines come last.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(lines[len(lines)-1], "RESULT ") {
		t.Errorf("last line is not a RESULT line: %q", lines[len(lines)-1])
	}
}

// TestSluiceMeasured: a run whose Sluice configurations all came out NA
// (unavailable or failed in every round) fails; one Sluice number, or no
// Sluice configuration asked for, passes.
func TestSluiceMeasured(t *testing.T) {
	d, sock, tc := case_{Config: cfgDirect}, case_{Config: cfgSluiceSocket, Services: 1}, case_{Config: cfgSluiceTC, Services: 1}
	ok := tcpcrr.Result{TPS: 1000, Transactions: 1}
	unavailable := map[string]string{cfgSluiceSocket: "unavailable: no flags", cfgSluiceTC: "unavailable: no flags"}

	sums := summarize([]case_{d, sock, tc}, []sample{{Case: d, Round: 1, Result: ok}}, unavailable)
	err := sluiceMeasured(sums)
	if err == nil || !strings.Contains(err.Error(), "sluice-tc/1 (unavailable: no flags)") {
		t.Errorf("every Sluice configuration unavailable: %v", err)
	}
	sums = summarize([]case_{d, sock, tc}, []sample{{Case: d, Round: 1, Result: ok},
		{Case: sock, Round: 1, Err: errors.New("boom")}, {Case: tc, Round: 1, Err: errors.New("boom")}}, nil)
	if sluiceMeasured(sums) == nil {
		t.Error("every Sluice configuration failed: no error")
	}
	sums = summarize([]case_{d, sock, tc}, []sample{{Case: d, Round: 1, Result: ok},
		{Case: sock, Round: 1, Err: errors.New("boom")}, {Case: tc, Round: 1, Result: ok}}, nil)
	if err := sluiceMeasured(sums); err != nil {
		t.Errorf("sluice-tc measured: %v", err)
	}
	if err := sluiceMeasured(summarize([]case_{d}, []sample{{Case: d, Round: 1, Result: ok}}, nil)); err != nil {
		t.Errorf("no Sluice configuration asked for: %v", err)
	}
}
