package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Configuration names.
const (
	cfgDirect       = "direct"
	cfgIPTables     = "iptables"
	cfgSluiceSocket = "sluice-socket"
	cfgSluiceTC     = "sluice-tc"
)

var allConfigs = []string{cfgDirect, cfgIPTables, cfgSluiceSocket, cfgSluiceTC}

// Options of one benchmark run.
type Options struct {
	Configs  []string
	Services []int // service counts for the service configurations
	Rounds   int
	Workers  int
	Duration time.Duration
	Warmup   time.Duration
	// ControlPlane measures ruleset/map programming times.
	ControlPlane bool
	// CPRounds is how many times each programming time is measured.
	CPRounds int
	// MasqueradeAll makes the iptables configuration mark every service
	// connection for SNAT (kube-proxy --masquerade-all); see iptables.go.
	MasqueradeAll bool
	BinDir        string // sluice-agent, sluice-cni, host-local, crr
	Checks        int    // crr ask answers required before each measurement
	// DirectPick is how the direct configuration spreads connections over
	// the two backend pods: "random" per connection (the distribution a
	// service gives, so the ratio isolates the service implementation) or
	// "worker" (worker w always uses backend w mod 2).
	DirectPick string
}

// DefaultOptions are the full run's settings.
func DefaultOptions() Options {
	return Options{
		Configs:       allConfigs,
		Services:      []int{1, 1000, 10000},
		Rounds:        3,
		Workers:       4,
		Duration:      5 * time.Second,
		Warmup:        time.Second,
		ControlPlane:  true,
		CPRounds:      3,
		MasqueradeAll: true,
		Checks:        4,
		DirectPick:    "random",
	}
}

// Quick shortens o to about two minutes; it still covers every
// configuration and service count.
func (o *Options) Quick() {
	o.Rounds = 1
	o.Duration = 2 * time.Second
	o.Warmup = 500 * time.Millisecond
	o.CPRounds = 1
}

func (o Options) validate() error {
	if o.Rounds < 1 || o.Workers < 1 || o.Duration <= 0 || o.Warmup < 0 || o.CPRounds < 1 {
		return errors.New("rounds, workers, cp-rounds >= 1, duration > 0 and warmup >= 0 required")
	}
	if o.DirectPick != "random" && o.DirectPick != "worker" {
		return fmt.Errorf("--direct-pick %q: want random or worker", o.DirectPick)
	}
	for _, c := range o.Configs {
		if !slices.Contains(allConfigs, c) {
			return fmt.Errorf("unknown configuration %q (have %s)", c, strings.Join(allConfigs, ", "))
		}
	}
	for _, n := range o.Services {
		if n < 1 {
			return fmt.Errorf("service count %d: need >= 1", n)
		}
	}
	if o.BinDir == "" {
		return errors.New("no binary directory")
	}
	return nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", f, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// case_ is one cell of the matrix: a configuration at a service count
// (0 for direct). Direct is measured twice per round (Rep 0 and 1): the
// ratios of a round are taken against the mean of its two direct samples,
// and their ratio to each other is the noise floor of the method.
type case_ struct {
	Config   string
	Services int
	Rep      int
}

func (c case_) String() string {
	if c.Rep > 0 {
		return fmt.Sprintf("%s#%d/%d", c.Config, c.Rep+1, c.Services)
	}
	return fmt.Sprintf("%s/%d", c.Config, c.Services)
}

// cell is c without the repetition: what the report has one row for.
func (c case_) cell() case_ { return case_{Config: c.Config, Services: c.Services} }

// cases is the order of one round (rotated by one each round): with direct
// asked for, its first measurement opens the list and its second sits in
// the middle, so that every round brackets the service configurations.
func (o Options) cases() []case_ {
	var out []case_
	direct := false
	for _, c := range o.Configs {
		if c == cfgDirect {
			direct = true
			continue
		}
		for _, n := range o.Services {
			out = append(out, case_{Config: c, Services: n})
		}
	}
	if !direct {
		return out
	}
	mid := len(out) / 2
	return append(append(append([]case_{{Config: cfgDirect}}, out[:mid]...), case_{Config: cfgDirect, Rep: 1}), out[mid:]...)
}

// cells is the report's rows: cases without the repetitions.
func cells(cases []case_) []case_ {
	var out []case_
	for _, c := range cases {
		if c.Rep == 0 {
			out = append(out, c)
		}
	}
	return out
}

// agentFeatures is what the installed sluice-agent and API support.
type agentFeatures struct {
	manifests bool // --manifests-dir, --cgroup-root and --socket-lb
	missing   string
}

// probeAgent reads sluice-agent --help for the flags the sluice
// configurations need.
func probeAgent(binDir string) agentFeatures {
	out, err := exec.Command(filepath.Join(binDir, "sluice-agent"), "--help").CombinedOutput()
	if err != nil {
		return agentFeatures{missing: fmt.Sprintf("sluice-agent --help: %v", err)}
	}
	var missing []string
	for _, f := range []string{"--manifests-dir", "--cgroup-root", "--socket-lb"} {
		if !strings.Contains(string(out), f) {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return agentFeatures{missing: "sluice-agent lacks " + strings.Join(missing, ", ")}
	}
	return agentFeatures{manifests: true}
}

func binPath(binDir, name string) (string, error) {
	p := filepath.Join(binDir, name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("binary %s: %w (run hack/bench-crr.sh or make build)", name, err)
	}
	return p, nil
}
