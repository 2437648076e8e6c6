package daemon

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/lb"
	"github.com/sluicenet/sluice/agent/lb/maglev"
	"github.com/sluicenet/sluice/agent/lb/translate"
	"github.com/sluicenet/sluice/agent/reconcile"
	"github.com/sluicenet/sluice/datapath"
)

func TestConfigPaths(t *testing.T) {
	c := DefaultConfig()
	assert.Equal(t, "/var/run/sluice/agent.sock", c.SocketPath())
	assert.Equal(t, "/var/run/sluice/endpoints", c.EndpointsDir())
	assert.Equal(t, "/var/run/sluice/delete-queue", c.DeleteQueueDir())
	assert.True(t, c.IPForward)
}

func TestConfigMountsParent(t *testing.T) {
	tests := []struct {
		root string
		want bool
	}{
		{"/sys/fs/bpf/sluice", true},
		{"/sys/fs/bpf/sluice/", true},
		{"/sys/fs/bpf/a/sluice", false},
		{"/tmp/x/bpffs/sluice", false},
		{"/sys/fs/bpf", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Config{BPFRoot: tt.root}.mountsParent(), tt.root)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want []string // substrings of the error; none: valid
	}{
		{"default", func(*Config) {}, nil},
		{"manifests", func(c *Config) { c.ManifestsDir = "/etc/sluice/manifests" }, nil},
		{"k8s", func(c *Config) { c.K8s = true }, nil},
		{"vxlan with pod MTU", func(c *Config) { c.Routing, c.MTU = "vxlan", 1400 }, nil},
		{"two state sources", func(c *Config) { c.K8s, c.ManifestsDir = true, "/m" }, []string{"choose one state source: Kubernetes or a manifests directory"}},
		{"enforcement", func(c *Config) { c.PolicyEnforcement = "sometimes" }, []string{"sometimes"}},
		{"routing", func(c *Config) { c.Routing = "bgp" }, []string{`routing: routing mode "bgp": want native, vxlan or none`}},
		{"lb acceleration native", func(c *Config) { c.LBAcceleration = "native" }, nil},
		{"lb acceleration generic", func(c *Config) { c.LBAcceleration = "generic" }, nil},
		{"lb acceleration", func(c *Config) { c.LBAcceleration = "best-effort" }, []string{`lb acceleration "best-effort": want native, generic or disabled`}},
		{"lb mode dsr", func(c *Config) { c.LBMode = "dsr" }, nil},
		{"lb mode hybrid", func(c *Config) { c.LBMode = "hybrid" }, nil},
		{"lb mode", func(c *Config) { c.LBMode = "opt" }, []string{`lb mode "opt": want snat, dsr or hybrid`}},
		{"lb mode dsr vxlan", func(c *Config) { c.LBMode, c.Routing = "dsr", "vxlan" }, []string{"lb mode dsr needs routing native or none, not vxlan"}},
		{"node IP", func(c *Config) { c.NodeIP = netip.MustParseAddr("fd00::1") }, []string{"node IP fd00::1 is not IPv4"}},
		{"pod MTU", func(c *Config) { c.MTU = 70000 }, []string{"mtu: pod MTU 70000 is out of range"}},
		{"rejected policy ignore", func(c *Config) { c.RejectedPolicy = "ignore" }, nil},
		{"rejected policy", func(c *Config) { c.RejectedPolicy = "allow" }, []string{`rejected policy mode "allow": want deny or ignore`}},
		{"pod fetch timeout", func(c *Config) { c.PodFetchTimeout = 16 * time.Second }, []string{"pod fetch timeout 16s is not within 0-15s"}},
		{"maglev", func(c *Config) { c.LBAlgorithm = "maglev" }, nil},
		{"maglev 65521", func(c *Config) { c.LBAlgorithm, c.MaglevTableSize = "maglev", 65521 }, nil},
		{"maglev 251", func(c *Config) { c.LBAlgorithm, c.MaglevTableSize = "maglev", 251 }, nil},
		{"maglev not prime", func(c *Config) { c.LBAlgorithm, c.MaglevTableSize = "maglev", 16383 }, []string{"maglev table size 16383: not a prime"}},
		{"maglev too big", func(c *Config) { c.LBAlgorithm, c.MaglevTableSize = "maglev", 131071 }, []string{"maglev table size 131071: above the maximum 65521"}},
		{"table size without maglev", func(c *Config) { c.MaglevTableSize = 1000 }, []string{"maglev table size 1000: not a prime"}},
		{"maglev default size", func(c *Config) { c.LBAlgorithm, c.MaglevTableSize = "maglev", 0 }, nil},
		{"lb algorithm", func(c *Config) { c.LBAlgorithm = "roundrobin" }, []string{`lb algorithm "roundrobin": want random or maglev`}},
		{"all reported", func(c *Config) { c.K8s, c.ManifestsDir, c.Routing = true, "/m", "bgp" }, []string{"choose one state source", "routing mode"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestResyncSchedule(t *testing.T) {
	interval := 10 * time.Second
	cfg := resyncSchedule(interval)
	assert.True(t, cfg.NoInitialSync, "New has just synced")
	assert.Equal(t, interval, cfg.Resync, "after a success the next resync is an interval later")
	backoff := reconcile.Backoff{Min: cfg.MinBackoff, Max: cfg.MaxBackoff}
	var got []time.Duration
	for range 6 {
		got = append(got, backoff.Next())
	}
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, interval, interval}, got)
	backoff.Reset()
	assert.Equal(t, minBackoff, backoff.Next(), "a success resets the backoff")
	short := resyncSchedule(100 * time.Millisecond)
	backoff = reconcile.Backoff{Min: short.MinBackoff, Max: short.MaxBackoff}
	assert.Equal(t, 100*time.Millisecond, backoff.Next(), "backoff never exceeds a short interval")
}

// The node defaults Services' annotations are resolved against: --lb-mode
// and --lb-algorithm; a VXLAN node cannot send DSR; the programs are
// loaded with a Maglev table size even when the default is random.
func TestConfigLBDefaults(t *testing.T) {
	c := DefaultConfig()
	d := c.lbDefaults(datapath.LBModeSNAT)
	assert.Equal(t, translate.LBDefaults{Mode: lb.ModeSNAT, Algorithm: lb.Random}, d)
	assert.Equal(t, uint32(maglev.DefaultTableSize), c.maglevTableSize())
	assert.Zero(t, c.maglevSize(), "random by default")

	c.LBAlgorithm, c.MaglevTableSize = LBAlgorithmMaglev, 251
	d = c.lbDefaults(datapath.LBModeHybrid)
	assert.Equal(t, translate.LBDefaults{Mode: lb.ModeHybrid, Algorithm: lb.Maglev}, d)
	assert.Equal(t, uint32(251), c.maglevTableSize())

	c.Routing = "vxlan"
	d = c.lbDefaults(datapath.LBModeSNAT)
	assert.Contains(t, d.NoDSR, "routing vxlan")
}
