package daemon

import (
	"net/netip"
	"testing"

	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/nodemgr"
	"github.com/sluicenet/sluice/datapath"
)

// mtuDaemon is a daemon with only what setupMTU reads.
func mtuDaemon(routing string, mtu int, nodeIP netip.Addr) *Daemon {
	log, _ := logtest.NewNullLogger()
	return &Daemon{cfg: Config{Routing: routing, MTU: mtu}, hostOpts: datapath.HostOptions{SNATAddr: nodeIP}, log: log}
}

// Without a node IP the underlay is taken as 1500 bytes.
func TestSetupMTUWithoutNodeIP(t *testing.T) {
	tests := []struct {
		routing string
		mtu     int
		want    nodemgr.MTUs
	}{
		{"vxlan", 0, nodemgr.MTUs{Underlay: 1500, Pod: 1450, VXLAN: 1450}},
		{"native", 0, nodemgr.MTUs{Underlay: 1500, Pod: 1500, VXLAN: 1450}},
		{"", 0, nodemgr.MTUs{Underlay: 1500, Pod: 1500, VXLAN: 1450}},
		{"none", 0, nodemgr.MTUs{Underlay: 1500, Pod: 1500, VXLAN: 1450}},
		{"vxlan", 1400, nodemgr.MTUs{Underlay: 1500, Pod: 1400, VXLAN: 1450}},
	}
	for _, tt := range tests {
		d := mtuDaemon(tt.routing, tt.mtu, netip.Addr{})
		require.NoError(t, d.setupMTU(), tt.routing)
		assert.Equal(t, tt.want, d.MTUs(), "routing %q --mtu %d", tt.routing, tt.mtu)
	}
	require.ErrorContains(t, mtuDaemon("vxlan", 20, netip.Addr{}).setupMTU(), "mtu: pod MTU 20 is out of range")
	require.ErrorContains(t, mtuDaemon("geneve", 0, netip.Addr{}).setupMTU(), `routing mode "geneve"`)
}

// The conflist the agent writes in Kubernetes mode carries the pod MTU (an
// explicit mtu for sluice-cni, see agent/source/k8s's conflist test).
func TestConflistCarriesPodMTU(t *testing.T) {
	d := &Daemon{cfg: Config{RunDir: "/var/run/sluice", BPFRoot: "/sys/fs/bpf/sluice"}, mtu: nodemgr.MTUs{Underlay: 1500, Pod: 1450, VXLAN: 1450}}
	c := d.conflist(netip.MustParsePrefix("10.244.1.0/24"))
	assert.Equal(t, 1450, c.MTU)
	raw, err := c.Render()
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"mtu": 1450`)
	assert.Contains(t, string(raw), `"logFile": "/var/run/sluice/cni.log"`)
}
