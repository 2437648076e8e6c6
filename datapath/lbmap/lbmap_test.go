package lbmap_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/test/harness"
)

const (
	protoTCP = 6
	revNAT   = 3
)

var (
	vip    = netip.MustParseAddr("10.96.0.10")
	remote = []netip.Addr{
		netip.MustParseAddr("10.244.2.20"),
		netip.MustParseAddr("10.244.2.21"),
		netip.MustParseAddr("10.244.2.22"),
	}
)

// The maps read back what was written: services with their slots, backends,
// reverse NAT; shrinking a service deletes its extra slots; deletes are
// idempotent; a non-IPv4 frontend is refused.
func TestPrivilegedLBMaps(t *testing.T) {
	harness.RequirePrivileged(t)
	d := progtest.Load(t, harness.BPFFS(t), datapath.Options{})
	fe := lbmap.Frontend{Addr: vip, Port: 80, Proto: protoTCP}
	for i, id := range []uint32{10, 11, 12} {
		require.NoError(t, d.LB().UpsertBackend(id, lbmap.Backend{Addr: remote[i], Port: 8080, Proto: protoTCP}))
	}
	require.NoError(t, d.LB().UpsertRevNAT(revNAT, fe))
	require.NoError(t, d.LB().UpsertService(fe, lbmap.Service{RevNATID: revNAT, Flags: lbmap.FlagAffinity | lbmap.FlagExternal, AffinityTimeout: 3 * time.Hour, Backends: []uint32{10, 11, 12}}))
	svcs, err := d.LB().Services()
	require.NoError(t, err)
	assert.Equal(t, map[lbmap.Frontend]lbmap.Service{fe: {
		RevNATID: revNAT, Flags: lbmap.FlagAffinity | lbmap.FlagExternal,
		AffinityTimeout: 3 * time.Hour, Backends: []uint32{10, 11, 12},
	}}, svcs)
	bes, err := d.LB().Backends()
	require.NoError(t, err)
	assert.Equal(t, lbmap.Backend{Addr: remote[1], Port: 8080, Proto: protoTCP}, bes[11])
	rn, err := d.LB().RevNATs()
	require.NoError(t, err)
	assert.Equal(t, map[uint16]lbmap.Frontend{revNAT: fe}, rn)

	// Shrinking deletes the slots beyond the new count.
	require.NoError(t, d.LB().UpsertService(fe, lbmap.Service{RevNATID: revNAT, Backends: []uint32{12}}))
	svcs, err = d.LB().Services()
	require.NoError(t, err)
	assert.Equal(t, []uint32{12}, svcs[fe].Backends)
	require.NoError(t, d.LB().UpsertBackend(12, lbmap.Backend{Addr: remote[2], Port: 8080, Proto: protoTCP, Terminating: true}))
	bes, err = d.LB().Backends()
	require.NoError(t, err)
	assert.True(t, bes[12].Terminating)

	require.NoError(t, d.LB().DeleteService(fe))
	require.NoError(t, d.LB().DeleteService(fe), "missing is not an error")
	require.NoError(t, d.LB().DeleteBackend(10))
	require.NoError(t, d.LB().DeleteBackend(10))
	require.NoError(t, d.LB().DeleteRevNAT(revNAT))
	require.NoError(t, d.LB().DeleteRevNAT(revNAT))
	svcs, err = d.LB().Services()
	require.NoError(t, err)
	assert.Empty(t, svcs)
	rn, err = d.LB().RevNATs()
	require.NoError(t, err)
	assert.Empty(t, rn)
	assert.Error(t, d.LB().UpsertService(lbmap.Frontend{Addr: netip.MustParseAddr("fd00::1"), Port: 80, Proto: protoTCP}, lbmap.Service{}))
}
