package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/sluicenet/sluice/test/bench/services"
	"github.com/sluicenet/sluice/test/harness"
)

// cpSample is one control-plane timing.
type cpSample struct {
	Impl     string // iptables or sluice
	What     string // "program" (whole set) or "change" (one service added)
	Services int
	Seconds  float64
	Detail   string
	Err      error
}

// Stand-in backends for control-plane runs: no traffic is sent.
var cpBackends = []netip.AddrPort{
	netip.MustParseAddrPort("10.244.1.2:8080"),
	netip.MustParseAddrPort("10.244.1.3:8080"),
}

// cpIPTables times one iptables-restore of the n-service ruleset into a
// fresh netns and, when change, a kube-proxy partial sync adding one service
// on top (KUBE-SERVICES rewritten whole, the new service's chains added).
func cpIPTables(o Options, n int, change bool) []cpSample {
	var out []cpSample
	r := &harness.Runner{}
	r.Run(func() {
		ns := harness.NewNetNS(r, "sl-ipt-")
		set, err := services.Set(n, cpBackends, fillerBackends)
		if err != nil {
			r.Fatal(err)
		}
		d, err := restore(ns, services.IPTablesRestore(set, ipOptions(o)), false)
		s := cpSample{Impl: "iptables", What: "program", Services: n, Seconds: d.Seconds(), Err: err}
		if err == nil {
			rules, cerr := countNATRules(ns)
			s.Detail, s.Err = fmt.Sprintf("%d nat rules", rules), cerr
		}
		out = append(out, s)
		if err != nil || !change {
			return
		}
		x := services.Extra(set, "extra", cpBackends)
		d, err = restore(ns, services.IPTablesUpdate(set, x, ipOptions(o)), true)
		out = append(out, cpSample{Impl: "iptables", What: "change", Services: n, Seconds: d.Seconds(), Err: err,
			Detail: "partial sync: KUBE-SERVICES rewritten + 3 chains"})
	})
	for i := range out {
		if out[i].Err == nil && r.Failed() {
			out[i].Err = fmt.Errorf("netns setup failed")
		}
	}
	if len(out) == 0 {
		out = append(out, cpSample{Impl: "iptables", What: "program", Services: n, Err: fmt.Errorf("netns setup failed")})
	}
	return out
}

// cpSluice starts an agent on a fresh node with an empty manifests
// directory, writes the n services and times until the kernel's LB maps hold
// all of them; when change, it then adds one service in a second file and
// times until it is in the maps.
func cpSluice(ctx context.Context, o Options, n int, change bool) []cpSample {
	var out []cpSample
	fail := func(what string, err error) {
		out = append(out, cpSample{Impl: "sluice", What: what, Services: n, Err: err})
	}
	r := &harness.Runner{}
	r.Run(func() {
		node := harness.NewNode(r, harness.NodeOptions{Index: 1})
		dir := filepath.Join(r.TempDir(), "manifests")
		if err := os.Mkdir(dir, 0o755); err != nil {
			r.Fatal(err)
		}
		node.StartAgentArgs(r, "--manifests-dir", dir, "--cgroup-root", node.Cgroup, "--socket-lb=true", "--log-level", "info")
		set, err := services.Set(n, cpBackends, fillerBackends)
		if err != nil {
			r.Fatal(err)
		}
		start := time.Now()
		if err := writeManifests(dir, "services.yaml", set); err != nil {
			fail("program", err)
			return
		}
		d, err := waitProgrammed(ctx, node.Client(), set, start, 5*time.Minute)
		out = append(out, cpSample{Impl: "sluice", What: "program", Services: n, Seconds: d.Seconds(), Err: err,
			Detail: "manifest written → all frontends in the kernel LB map"})
		if err != nil || !change {
			return
		}
		x := services.Extra(set, "extra", cpBackends)
		start = time.Now()
		if err := writeManifests(dir, "extra.yaml", []services.Service{x}); err != nil {
			fail("change", err)
			return
		}
		d, err = waitProgrammed(ctx, node.Client(), append(set, x), start, time.Minute)
		out = append(out, cpSample{Impl: "sluice", What: "change", Services: n, Seconds: d.Seconds(), Err: err,
			Detail: "one Service+EndpointSlice file added → in the kernel LB map"})
	})
	if len(out) == 0 || r.Failed() && out[len(out)-1].Err == nil {
		fail("program", fmt.Errorf("node or agent setup failed (see the error lines above)"))
	}
	return out
}
