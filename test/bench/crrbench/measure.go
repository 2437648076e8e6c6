package main

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/sluicenet/sluice/test/bench/services"
	"github.com/sluicenet/sluice/test/bench/tcpcrr"
	"github.com/sluicenet/sluice/test/harness"
)

// sample is one measurement of one case.
type sample struct {
	Case    case_
	Round   int
	Result  tcpcrr.Result
	Answers map[string]int // correctness check: backend name → answers
	Setup   time.Duration  // topology + service programming
	Err     error
}

// measure builds a fresh topology for c, programs its services, checks that
// backends answer through the service, runs the load and tears everything
// down. A failure is returned in sample.Err.
func measure(ctx context.Context, o Options, c case_, round int) sample {
	s := sample{Case: c, Round: round}
	r := &harness.Runner{}
	r.Run(func() {
		start := time.Now()
		t := newTopology(r, o, c)
		var target []netip.AddrPort
		switch c.Config {
		case cfgDirect:
			// Both backends by pod IP, workers alternating: the same two
			// servers carry the load as behind a service.
			target = t.backendAddrs()
			for i, a := range target {
				if _, err := t.check(ctx, r, a, 1, []string{t.backends[i].Name}); err != nil {
					s.Err = fmt.Errorf("direct check: %w", err)
					return
				}
			}
		case cfgIPTables:
			set := t.serviceSet(r, c.Services)
			if _, err := restore(t.node.NS, services.IPTablesRestore(set, ipOptions(o)), false); err != nil {
				s.Err = err
				return
			}
			target = []netip.AddrPort{set[len(set)-1].Frontend()}
		case cfgSluiceSocket, cfgSluiceTC:
			set := t.serviceSet(r, c.Services)
			wrote := time.Now()
			if err := writeManifests(t.manifest, "services.yaml", set); err != nil {
				s.Err = err
				return
			}
			if _, err := waitProgrammed(ctx, t.node.Client(), set, wrote, 2*time.Minute); err != nil {
				s.Err = err
				return
			}
			target = []netip.AddrPort{set[len(set)-1].Frontend()}
		}
		if c.Config != cfgDirect {
			seen, err := t.check(ctx, r, target[0], o.Checks, t.backendNames())
			s.Answers = seen
			if err != nil {
				s.Err = fmt.Errorf("check through the service: %w", err)
				return
			}
		}
		s.Setup = time.Since(start)
		res, err := t.load(ctx, r, o, target)
		s.Result = res
		switch {
		case err != nil:
			s.Err = err
		case res.Transactions == 0:
			s.Err = fmt.Errorf("no transaction completed (%d errors, first: %s)", res.Errors, res.FirstError)
		}
	})
	if s.Err == nil && r.Failed() {
		s.Err = fmt.Errorf("topology failed (see the error lines above)")
	}
	return s
}

func (s sample) answersString() string {
	var parts []string
	for name, n := range s.Answers {
		parts = append(parts, fmt.Sprintf("%s×%d", name, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
