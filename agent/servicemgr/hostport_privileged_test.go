package servicemgr

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	dplb "github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/test/harness"
)

// The pods' hostPorts become frontends in the real maps, flagged so the
// programs serve them like NodePorts (every node address) or ExternalIPs
// (one address); an endpoint that goes takes its frontend with it, and a
// full sync afterwards finds nothing to repair.
func TestPrivilegedHostPortFrontends(t *testing.T) {
	harness.RequirePrivileged(t)
	d := progtest.Load(t, harness.BPFFS(t), datapath.Options{})
	require.NoError(t, d.LB().SetNodeAddrs([]netip.Addr{addr("127.0.0.1"), addr("192.168.1.5")}))
	eps := &epList{}
	eps.set(append(conformancePods(),
		hostPortEP("any", "10.0.0.4", hpm("0.0.0.0", 80, "tcp")),
		hostPortEP("elsewhere", "10.0.0.5", hpm("10.9.9.9", 80, "tcp")))...)
	cm := &countingMaps{Maps: d.LB()}
	m, err := New(Config{NodeName: "node-a"}, cm, d.CT(), eps, quietLog())
	require.NoError(t, err)
	m.SetObjects(Objects{})
	_, err = m.Sync(false)
	require.NoError(t, err)

	fe := func(s string, proto uint8) dplb.Frontend {
		ap := netip.MustParseAddrPort(s)
		return dplb.Frontend{Addr: ap.Addr(), Port: ap.Port(), Proto: proto}
	}
	svcs, err := d.LB().Services()
	require.NoError(t, err)
	flagsOf := map[dplb.Frontend]dplb.Flags{}
	for f, s := range svcs {
		flagsOf[f] = s.Flags
	}
	assert.Equal(t, map[dplb.Frontend]dplb.Flags{
		fe("127.0.0.1:54323", 6):    dplb.FlagExternal,
		fe("192.168.1.5:54323", 6):  dplb.FlagExternal,
		fe("192.168.1.5:54323", 17): dplb.FlagExternal,
		fe("0.0.0.0:80", 6):         dplb.FlagNodePort,
	}, flagsOf, "no frontend for a hostIP that is not the node's")
	assert.Equal(t, []string{"10.0.0.2:8080"}, backendAddrs(t, d.LB(), fe("192.168.1.5:54323", 6)))
	assert.Equal(t, []string{"10.0.0.3:8080"}, backendAddrs(t, d.LB(), fe("192.168.1.5:54323", 17)))
	kinds := map[string]string{}
	for _, s := range m.Services() {
		kinds[s.Name+" "+s.Frontend+"/"+s.Protocol] = s.Kind
	}
	assert.Equal(t, map[string]string{
		"default/pod1:hostport 127.0.0.1:54323/TCP":   "HostPort",
		"default/pod2:hostport 192.168.1.5:54323/TCP": "HostPort",
		"default/pod3:hostport 192.168.1.5:54323/UDP": "HostPort",
		"default/any:hostport 0.0.0.0:80/TCP":         "HostPort",
	}, kinds)
	requireConverged(t, m, cm)

	// pod2 goes (CNI DEL): exactly its frontend, reverse NAT and backend.
	eps.set(conformancePods()[0], conformancePods()[2], hostPortEP("any", "10.0.0.4", hpm("", 80, "tcp")))
	cm.writes = nil
	m.Changed()
	_, err = m.Sync(false)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"delete service": 1, "delete rev NAT": 1, "delete backend": 1}, cm.writes)
	svcs, err = d.LB().Services()
	require.NoError(t, err)
	assert.NotContains(t, svcs, fe("192.168.1.5:54323", 6))
	assert.Len(t, svcs, 3)
	requireConverged(t, m, cm)
}
