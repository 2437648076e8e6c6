package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sluicenet/sluice/test/bench/tcpcrr"
)

// Configuration names. direct is no dataplane at all: the client addresses
// the backend pod itself, routed through node 1 as the NodePort traffic is,
// with no NAT, no conntrack rules and no NodePort program: the bound any
// translation could reach on this topology. The -dsr ones run both agents
// with --lb-mode dsr: node 1 sends the remote backend's requests IP-in-IP
// to node 2, whose replies go straight to the client over its own link.
const (
	cfgIPTables     = "iptables"
	cfgDirect       = "direct"
	cfgSluiceTC     = "sluice-tc"
	cfgSluiceXDP    = "sluice-xdp"
	cfgSluiceTCDSR  = "sluice-tc-dsr"
	cfgSluiceXDPDSR = "sluice-xdp-dsr"
)

var allConfigs = []string{cfgIPTables, cfgDirect, cfgSluiceTC, cfgSluiceXDP, cfgSluiceTCDSR, cfgSluiceXDPDSR}

// Backends: on the node the client addresses, or on the other node.
const (
	backendLocal  = "local"
	backendRemote = "remote"
)

var (
	allBackends = []string{backendLocal, backendRemote}
	allProtos   = []tcpcrr.Proto{tcpcrr.TCPCRR, tcpcrr.UDPRR}
)

// Options of one benchmark run.
type Options struct {
	Configs  []string
	Rounds   int
	Workers  int
	Duration time.Duration
	Warmup   time.Duration
	Checks   int    // application answers required per cell before its load
	BinDir   string // sluice-agent, sluice-cni, host-local, crr
}

// DefaultOptions are the full run's settings.
func DefaultOptions() Options {
	return Options{
		Configs:  allConfigs,
		Rounds:   3,
		Workers:  4,
		Duration: 5 * time.Second,
		Warmup:   time.Second,
		Checks:   4,
	}
}

// Quick is one short round (the CI smoke run).
func (o *Options) Quick() {
	o.Rounds = 1
	o.Duration = 2 * time.Second
	o.Warmup = 500 * time.Millisecond
}

func (o Options) validate() error {
	if o.Rounds < 1 || o.Workers < 1 || o.Duration <= 0 || o.Warmup < 0 || o.Checks < 1 {
		return errors.New("rounds, workers, checks >= 1, duration > 0 and warmup >= 0 required")
	}
	// Bounded: every sample is at most warm-up + duration + the client's
	// timeouts; refuse what would run for hours.
	if cells := o.Rounds * len(o.Configs) * len(allBackends) * len(allProtos); time.Duration(cells)*(o.Duration+o.Warmup) > time.Hour {
		return fmt.Errorf("%d samples of %v: more than an hour of load", cells, o.Duration+o.Warmup)
	}
	for _, c := range o.Configs {
		if !slices.Contains(allConfigs, c) {
			return fmt.Errorf("unknown configuration %q (have %s)", c, strings.Join(allConfigs, ", "))
		}
	}
	if o.BinDir == "" {
		return errors.New("no binary directory")
	}
	return nil
}

// cell is one row of the report: a configuration, a backend placement and
// a transaction.
type cell struct {
	Config  string
	Backend string
	Proto   tcpcrr.Proto
}

func (c cell) String() string { return fmt.Sprintf("%s/%s/%s", c.Config, c.Backend, c.Proto) }

func isSluice(config string) bool { return config != cfgIPTables && config != cfgDirect }

// isXDP: node 1 runs --lb-acceleration native.
func isXDP(config string) bool { return config == cfgSluiceXDP || config == cfgSluiceXDPDSR }

// isDSR: both agents run --lb-mode dsr.
func isDSR(config string) bool { return config == cfgSluiceTCDSR || config == cfgSluiceXDPDSR }

// path says what carries a cell's flows: the table's last column.
func (c cell) path() string {
	hook := "tc"
	if isXDP(c.Config) {
		hook = "XDP"
	}
	switch {
	case c.Config == cfgDirect:
		return "no translation: the pod's own address (upper bound)"
	case c.Config == cfgIPTables:
		return "netfilter DNAT+SNAT, conntrack"
	case c.Backend == backendLocal && isXDP(c.Config):
		return "XDP passes, tc DNAT"
	case c.Backend == backendLocal:
		return "tc DNAT"
	case isDSR(c.Config):
		return hook + " IP-in-IP; node 2 replies directly"
	}
	return hook + " DNAT+SNAT"
}

// cells is every row in report order.
func (o Options) cells() []cell {
	var out []cell
	for _, c := range o.Configs {
		for _, b := range allBackends {
			for _, p := range allProtos {
				out = append(out, cell{c, b, p})
			}
		}
	}
	return out
}
