package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sluicenet/sluice/test/bench/benchrun"
	"github.com/sluicenet/sluice/test/bench/services"
	"github.com/sluicenet/sluice/test/bench/tcpcrr"
	"github.com/sluicenet/sluice/test/harness"
)

// backendPort is where `crr serve` listens in each backend pod.
const backendPort = 8080

// fillerBackends are endpoints of the filler services: inside the PodCIDR
// (so they are blackholed on the host) but never allocated to a pod, and
// never connected to.
var fillerBackends = []netip.AddrPort{
	netip.MustParseAddrPort("10.244.1.250:8080"),
	netip.MustParseAddrPort("10.244.1.251:8080"),
}

// topology is one fresh simulated node with a client pod and two backend
// pods serving TCP_CRR.
type topology struct {
	node     *harness.Node
	client   *harness.Pod
	backends []*harness.Pod
	crr      string
	manifest string // manifests directory (sluice configurations)
}

// Sysctls of KERNEL-NOTES' TCP_CRR section.
var (
	clientSysctls = map[string]string{
		"net/ipv4/ip_local_port_range": "1024 65535",
		"net/ipv4/tcp_tw_reuse":        "1",
		"net/core/somaxconn":           "8192",
	}
	serverSysctls = map[string]string{"net/core/somaxconn": "8192"}
)

// newTopology builds the node for c: agent (with the service flags for the
// sluice configurations), client and backend pods, sysctls, servers, and for
// iptables the kube-proxy ruleset. Everything is undone by r's cleanups.
func newTopology(r *harness.Runner, o Options, c case_) *topology {
	crr, err := binPath(o.BinDir, "crr")
	if err != nil {
		r.Fatal(err)
	}
	t := &topology{crr: crr}
	t.node = harness.NewNode(r, harness.NodeOptions{Index: 1})
	// Every configuration runs the same agent, flags and log level (only the
	// socket LB differs), so that direct and iptables are not measured next
	// to a differently configured agent than the Sluice configurations.
	t.manifest = filepath.Join(r.TempDir(), "manifests")
	if err := os.Mkdir(t.manifest, 0o755); err != nil {
		r.Fatal(err)
	}
	t.node.StartAgentArgs(r, "--manifests-dir", t.manifest, "--cgroup-root", t.node.Cgroup,
		fmt.Sprintf("--socket-lb=%v", c.Config == cfgSluiceSocket), "--log-level", "info")
	t.client = t.node.AddPod(r, "client")
	setSysctls(r, t.client.NS, clientSysctls)
	for i := range 2 {
		p := t.node.AddPod(r, fmt.Sprintf("backend-%d", i+1))
		setSysctls(r, p.NS, serverSysctls)
		t.serve(r, p)
		t.backends = append(t.backends, p)
	}
	return t
}

func (t *topology) backendAddrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, p := range t.backends {
		out = append(out, netip.AddrPortFrom(p.IP, backendPort))
	}
	return out
}

func (t *topology) backendNames() []string {
	var out []string
	for _, p := range t.backends {
		out = append(out, p.Name)
	}
	return out
}

func setSysctls(r *harness.Runner, ns *harness.NetNS, kv map[string]string) {
	benchrun.Sysctls(r, ns, kv)
}

// serve starts `crr serve` in pod p (benchrun.ServeCRR).
func (t *topology) serve(r *harness.Runner, p *harness.Pod) {
	benchrun.ServeCRR(r, p.NS, t.crr, p.Addr(backendPort), p.Name)
}

// clientCmd runs crr in the client pod's netns, cloned into the node's
// cgroup (where socket-LB programs apply), killed when ctx ends.
func (t *topology) clientCmd(ctx context.Context, r *harness.Runner, args ...string) (*exec.Cmd, func()) {
	cmd, release, err := harness.CommandIn(t.client.NS, t.node.Cgroup, t.crr, args...)
	if err != nil {
		r.Fatal(err)
	}
	stop := context.AfterFunc(ctx, func() {
		if cmd.Process != nil {
			cmd.Process.Kill()
		}
	})
	return cmd, func() { release(); stop() }
}

// ask returns the name the server at target answered to the client pod.
func (t *topology) ask(ctx context.Context, r *harness.Runner, target netip.AddrPort) (string, error) {
	cmd, done := t.clientCmd(ctx, r, "ask", "--target", target.String(), "--timeout", "2s")
	defer done()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("crr ask %s: %v: %s", target, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// check requires n answers from target, each naming one of want, and
// returns the names seen.
func (t *topology) check(ctx context.Context, r *harness.Runner, target netip.AddrPort, n int, want []string) (map[string]int, error) {
	seen := map[string]int{}
	for range n {
		name, err := t.ask(ctx, r, target)
		if err != nil {
			return seen, err
		}
		if !slices.Contains(want, name) {
			return seen, fmt.Errorf("%s answered by %q, want one of %v", target, name, want)
		}
		seen[name]++
	}
	return seen, nil
}

// load runs `crr run` from the client pod and parses its result.
func (t *topology) load(ctx context.Context, r *harness.Runner, o Options, targets []netip.AddrPort) (tcpcrr.Result, error) {
	var ts []string
	for _, a := range targets {
		ts = append(ts, a.String())
	}
	cmd, done := t.clientCmd(ctx, r, "run", "--target", strings.Join(ts, ","), "--workers", fmt.Sprint(o.Workers),
		"--duration", o.Duration.String(), "--warmup", o.Warmup.String(), "--pick", o.DirectPick)
	defer done()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return tcpcrr.Result{}, fmt.Errorf("crr run: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var res tcpcrr.Result
	if err := json.Unmarshal(out, &res); err != nil {
		return res, fmt.Errorf("parse crr run output %q: %w", out, err)
	}
	return res, nil
}

// serviceSet is the c.Services services with the measured one last.
func (t *topology) serviceSet(r *harness.Runner, n int) []services.Service {
	set, err := services.Set(n, t.backendAddrs(), fillerBackends)
	if err != nil {
		r.Fatal(err)
	}
	return set
}
