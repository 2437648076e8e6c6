package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sluicenet/sluice/agent/atomicfile"
	"github.com/sluicenet/sluice/test/bench/benchrun"
	"github.com/sluicenet/sluice/test/bench/tcpcrr"
	"github.com/sluicenet/sluice/test/harness"
)

// sample is one measurement of one cell.
type sample struct {
	Cell    cell
	Round   int
	Result  tcpcrr.Result
	Answers map[string]int // correctness check: backend name → answers
	// XDPFwd and XDPRev are the packets node 1's XDP program translated
	// during the cell (sluice-xdp only).
	XDPFwd, XDPRev uint64
	// Drops are node 1's programs' drops during the cell, per reason.
	Drops map[string]uint64
	Err   error
}

// measureConfig builds the topology of config and measures its cells: for
// each, application answers naming the expected backend, then the load.
// It tears everything down before returning. A failure to build fails
// every cell of the configuration.
func measureConfig(ctx context.Context, o Options, crr, config string, round int) []sample {
	var out []sample
	r := &harness.Runner{}
	r.Run(func() {
		t := newTopology(ctx, r, crr, config)
		for _, c := range o.cells() {
			if c.Config != config || ctx.Err() != nil {
				continue
			}
			out = append(out, t.measure(ctx, o, c, round))
		}
	})
	if r.Failed() {
		var failed []sample
		for _, c := range o.cells() {
			if c.Config != config {
				continue
			}
			s := sample{Cell: c, Round: round, Err: fmt.Errorf("topology failed (see the error lines above)")}
			for _, m := range out {
				if m.Cell == c && m.Err != nil {
					s.Err = m.Err
				}
			}
			failed = append(failed, s)
		}
		return failed
	}
	return out
}

func (t *topology) measure(ctx context.Context, o Options, c cell, round int) sample {
	s := sample{Cell: c, Round: round, Answers: map[string]int{}}
	addr := target(c.Backend)
	want := t.pods[c.Backend].Name
	before, err := t.counters()
	if err != nil {
		s.Err = fmt.Errorf("XDP counters: %w", err)
		return s
	}
	for range o.Checks {
		name, err := t.ask(ctx, addr, c.Proto)
		if err != nil {
			s.Err = fmt.Errorf("check: %w", err)
			return s
		}
		s.Answers[name]++
		if name != want {
			s.Err = fmt.Errorf("check: %s answered by %q, want %q", addr, name, want)
			return s
		}
	}
	s.Result, s.Err = t.load(ctx, o, addr, c.Proto)
	if s.Err == nil && s.Result.Transactions == 0 {
		s.Err = fmt.Errorf("no transaction completed (%d errors, first: %s)", s.Result.Errors, s.Result.FirstError)
	}
	after, err := t.counters()
	if err != nil {
		if s.Err == nil {
			s.Err = fmt.Errorf("XDP counters: %w", err)
		}
		return s
	}
	s.XDPFwd, s.XDPRev = t.xdpPackets(before, after)
	s.Drops = drops(before, after)
	// Through XDP means through XDP: the remote backend's requests and
	// replies must have been translated there.
	if s.Err == nil && c.Config == cfgSluiceXDP && c.Backend == backendRemote && (s.XDPFwd == 0 || s.XDPRev == 0) {
		s.Err = fmt.Errorf("XDP translated %d requests and %d replies: the flow did not go through XDP", s.XDPFwd, s.XDPRev)
	}
	return s
}

// load runs `crr run` in the client namespace, killed when ctx ends.
func (t *topology) load(ctx context.Context, o Options, addr fmt.Stringer, p tcpcrr.Proto) (tcpcrr.Result, error) {
	out, err := t.crrOutput(ctx, "run", "--target", addr.String(), "--proto", string(p), "--workers", fmt.Sprint(o.Workers),
		"--duration", o.Duration.String(), "--warmup", o.Warmup.String())
	if err != nil {
		return tcpcrr.Result{}, fmt.Errorf("crr run: %w", err)
	}
	return parseResult(out)
}

func (s sample) answersString() string {
	var parts []string
	for name, n := range s.Answers {
		parts = append(parts, fmt.Sprintf("%s×%d", name, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// extraString is the XDP packets (sluice-xdp) and node 1's drops.
func (s sample) extraString() string {
	var b strings.Builder
	if s.Cell.Config == cfgSluiceXDP {
		fmt.Fprintf(&b, "  xdp packets fwd %d rev %d", s.XDPFwd, s.XDPRev)
	}
	if len(s.Drops) > 0 {
		var parts []string
		for r, n := range s.Drops {
			parts = append(parts, fmt.Sprintf("%s×%d", r, n))
		}
		sort.Strings(parts)
		fmt.Fprintf(&b, "  drops %s", strings.Join(parts, " "))
	}
	return b.String()
}

// writeAtomic writes content to dir/name (temporary file, then rename), so
// the agent's watcher never sees half a file.
func writeAtomic(dir, name, content string) error {
	return atomicfile.Write(filepath.Join(dir, name), 0o600, func(w io.Writer) error {
		_, err := io.WriteString(w, content)
		return err
	})
}

func iptablesVersion() string { return benchrun.IPTablesVersion() }
