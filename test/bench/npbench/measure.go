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
	// Paths are the packets the cell moved on the ways its flows can take.
	Paths paths
	// Drops are the nodes' programs' drops during the cell, per reason
	// (node 2's prefixed "node2 ").
	Drops map[string]uint64
	Err   error
}

// paths are the packets a sample moved on the ways its flows can take.
type paths struct {
	// XDPFwd and XDPRev: node 1's XDP program translated requests on ext0
	// (DNAT+SNAT to the remote backend) and replies on the underlay
	// (reverse SNAT).
	XDPFwd, XDPRev uint64
	// Encap: node 1 sent requests IP-in-IP to node 2 (lb-dsr on ext0, or
	// xdp-lb-dsr with XDP); Decap: node 2 took them off its underlay
	// (lb-dsr-receive); RevNAT: node 2's replies left dsr0 from the
	// frontend (lb-dsr-reverse-nat).
	Encap, Decap, RevNAT uint64
	linkPackets
}

// slack is how many packets a link may carry during a sample of tx
// transactions that none of them takes: ARP, neighbour probes and IPv6
// housekeeping, never a transaction's share (every transaction sends at
// least one request and gets at least one reply).
func slack(tx int64) uint64 { return 16 + uint64(tx)/100 }

// checkPaths says whether cell c's tx transactions took the way its
// configuration promises: DSR's remote backend replies over the client's
// link to node 2, its requests encapsulated by node 1 and decapsulated and
// reverse-translated by node 2, nothing coming back through node 1; every
// other cell through node 1 only, the link to node 2 unused; sluice-xdp's
// remote backend translated by XDP both ways.
func checkPaths(c cell, tx int64, p paths) error {
	n := uint64(tx)
	if isDSR(c.Config) && c.Backend == backendRemote {
		switch {
		case p.Encap < n:
			return fmt.Errorf("not DSR: node 1 encapsulated %d packets for %d transactions", p.Encap, tx)
		case p.Decap < n || p.RevNAT < n:
			return fmt.Errorf("not DSR: node 2 decapsulated %d packets and reverse-translated %d for %d transactions", p.Decap, p.RevNAT, tx)
		case p.N1ExtTx > slack(tx) || p.N1ULRx > slack(tx) || p.ClientRx > slack(tx):
			return fmt.Errorf("DSR replies passed through node 1: it received %d packets from node 2 and sent %d to the client, the client received %d from it, for %d transactions",
				p.N1ULRx, p.N1ExtTx, p.ClientRx, tx)
		case p.ClientDSRRx < n:
			return fmt.Errorf("DSR replies missing: the client received %d packets from node 2 for %d transactions", p.ClientDSRRx, tx)
		}
		return nil
	}
	if p.ClientDSRRx > slack(tx) {
		return fmt.Errorf("the client received %d packets from node 2 directly for %d transactions: only DSR replies go that way", p.ClientDSRRx, tx)
	}
	if p.ClientRx < n {
		return fmt.Errorf("the client received %d packets from node 1 for %d transactions", p.ClientRx, tx)
	}
	// Through XDP means through XDP: the remote backend's requests and
	// replies must have been translated there.
	if c.Config == cfgSluiceXDP && c.Backend == backendRemote && (p.XDPFwd == 0 || p.XDPRev == 0) {
		return fmt.Errorf("XDP translated %d requests and %d replies: the flow did not go through XDP", p.XDPFwd, p.XDPRev)
	}
	return nil
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
	addr := t.target(c.Config, c.Backend)
	want := t.pods[c.Backend].Name
	before, err := t.read()
	if err != nil {
		s.Err = fmt.Errorf("counters: %w", err)
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
	after, err := t.read()
	if err != nil {
		if s.Err == nil {
			s.Err = fmt.Errorf("counters: %w", err)
		}
		return s
	}
	s.Paths = t.paths(before, after)
	s.Drops = drops(before.n1, after.n1, "")
	for r, n := range drops(before.n2, after.n2, "node2 ") {
		s.Drops[r] = n
	}
	if s.Err == nil {
		s.Err = checkPaths(c, s.Result.Transactions, s.Paths)
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

// extraString is the packets on the flows' ways (XDP's in sluice-xdp,
// DSR's in the -dsr configurations) and the nodes' drops.
func (s sample) extraString() string {
	var b strings.Builder
	p := s.Paths
	if s.Cell.Config == cfgSluiceXDP {
		fmt.Fprintf(&b, "  xdp packets fwd %d rev %d", p.XDPFwd, p.XDPRev)
	}
	if isDSR(s.Cell.Config) {
		fmt.Fprintf(&b, "  dsr encap %d decap %d revnat %d", p.Encap, p.Decap, p.RevNAT)
	}
	fmt.Fprintf(&b, "  client rx via node1 %d via node2 %d  node1 ext0 tx %d", p.ClientRx, p.ClientDSRRx, p.N1ExtTx)
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
