package servicemgr

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/lb"
	"github.com/sluicenet/sluice/agent/lb/maglev"
	"github.com/sluicenet/sluice/datapath"
	dplb "github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/test/harness"
)

const testMaglevSize = 1021

// kernelTable reads the Maglev table of frontend f back from the kernel as
// backend addresses.
func kernelTable(t *testing.T, dp *dplb.Map, r *lbSync, f lb.Frontend) []string {
	t.Helper()
	id, ok := r.RevNATID(f)
	require.True(t, ok)
	table, err := dp.Maglev(id)
	require.NoError(t, err)
	bes, err := dp.Backends()
	require.NoError(t, err)
	out := make([]string, len(table))
	for i, bid := range table {
		b, ok := bes[bid]
		require.True(t, ok, "entry %d: backend %d exists", i, bid)
		out[i] = netip.AddrPortFrom(b.Addr, b.Port).String()
	}
	return out
}

// goTable is the table agent/lb/maglev builds for the backends, as addresses.
func goTable(t *testing.T, m uint32, backends ...string) []string {
	t.Helper()
	bes := make([]maglev.Backend, len(backends))
	for i, b := range backends {
		bes[i] = maglev.Backend{Name: b}
	}
	idx, err := maglev.Build(bes, m)
	require.NoError(t, err)
	out := make([]string, len(idx))
	for i, j := range idx {
		out[i] = backends[j]
	}
	return out
}

func TestPrivilegedLBSyncMaglev(t *testing.T) {
	harness.RequirePrivileged(t)
	dp := progtest.Load(t, harness.BPFFS(t), datapath.Options{MaglevTableSize: testMaglevSize}).LB()
	r, err := newLBSync(dp)
	require.NoError(t, err)
	r.maglevSize, r.defaults.Algorithm = testMaglevSize, lb.Maglev

	bes := []string{"10.244.1.2:8080", "10.244.1.3:8080", "10.244.2.4:8080"}
	web := svc("10.96.0.10", 80, lb.TCP, bes...)
	empty := svc("10.96.0.11", 80, lb.TCP)
	_, err = r.Apply([]lb.Service{web, empty}, false)
	require.NoError(t, err)
	assert.Equal(t, goTable(t, testMaglevSize, bes...), kernelTable(t, dp, r, web.Frontend))
	svcs, err := dp.Services()
	require.NoError(t, err)
	assert.NotZero(t, svcs[fe("10.96.0.10", 80, lb.TCP)].Flags&dplb.FlagMaglev, "master entry flagged")
	emptyID, _ := r.RevNATID(empty.Frontend)
	_, err = dp.Maglev(emptyID)
	assert.ErrorIs(t, err, dplb.ErrNoMaglev, "no table without backends")

	// One backend: no table, no flag (nothing to choose).
	one := svc("10.96.0.12", 80, lb.TCP, bes[0])
	_, err = r.ApplyChanged([]lb.Service{one}, nil)
	require.NoError(t, err)
	oneID, _ := r.RevNATID(one.Frontend)
	_, err = dp.Maglev(oneID)
	assert.ErrorIs(t, err, dplb.ErrNoMaglev, "no table for one backend")
	svcs, err = dp.Services()
	require.NoError(t, err)
	assert.Zero(t, svcs[fe("10.96.0.12", 80, lb.TCP)].Flags&dplb.FlagMaglev)
	_, err = r.ApplyChanged(nil, []lb.Frontend{one.Frontend})
	require.NoError(t, err)

	// An unchanged service is not rewritten: the same inner map stays.
	webID, _ := r.RevNATID(web.Frontend)
	before := r.wMaglev[webID]
	_, err = r.Apply([]lb.Service{web, empty}, true)
	require.NoError(t, err)
	assert.Equal(t, before, r.wMaglev[webID])

	// A backend leaves: the new table is swapped in.
	web2 := svc("10.96.0.10", 80, lb.TCP, bes[0], bes[2])
	_, err = r.ApplyChanged([]lb.Service{web2}, nil)
	require.NoError(t, err)
	assert.Equal(t, goTable(t, testMaglevSize, bes[0], bes[2]), kernelTable(t, dp, r, web.Frontend))

	// A restart (a new LB sync over the pinned maps) rebuilds the table the
	// same; a table left by hand for a service no longer there is pruned.
	_, err = dp.SetMaglev(999, make([]uint32, testMaglevSize))
	require.NoError(t, err)
	r2, err := newLBSync(dp)
	require.NoError(t, err)
	r2.maglevSize, r2.defaults.Algorithm = testMaglevSize, lb.Maglev
	_, err = r2.Apply([]lb.Service{web2, empty}, true)
	require.NoError(t, err)
	assert.Equal(t, goTable(t, testMaglevSize, bes[0], bes[2]), kernelTable(t, dp, r2, web.Frontend))
	ids, err := dp.MaglevIDs()
	require.NoError(t, err)
	require.Len(t, ids, 1)
	assert.Contains(t, ids, webID)

	// A restart with another table size rebuilds the table at that size.
	r4, err := newLBSync(dp)
	require.NoError(t, err)
	r4.maglevSize, r4.defaults.Algorithm = 251, lb.Maglev
	_, err = r4.Apply([]lb.Service{web2, empty}, true)
	require.NoError(t, err)
	assert.Equal(t, goTable(t, 251, bes[0], bes[2]), kernelTable(t, dp, r4, web.Frontend))
	_, err = r2.Apply([]lb.Service{web2, empty}, true)
	require.NoError(t, err)
	assert.Len(t, kernelTable(t, dp, r2, web.Frontend), testMaglevSize, "a full sync rewrites a table changed behind its back")

	// The service goes: its table goes with it.
	_, err = r2.ApplyChanged(nil, []lb.Frontend{web.Frontend})
	require.NoError(t, err)
	ids, err = dp.MaglevIDs()
	require.NoError(t, err)
	assert.Empty(t, ids)

	// Back to random (a restart without maglev): flags cleared, tables gone.
	_, err = r2.ApplyChanged([]lb.Service{web}, nil)
	require.NoError(t, err)
	r3, err := newLBSync(dp)
	require.NoError(t, err)
	_, err = r3.Apply([]lb.Service{web, empty}, true)
	require.NoError(t, err)
	svcs, err = dp.Services()
	require.NoError(t, err)
	assert.Zero(t, svcs[fe("10.96.0.10", 80, lb.TCP)].Flags&dplb.FlagMaglev)
	ids, err = dp.MaglevIDs()
	require.NoError(t, err)
	assert.Empty(t, ids)
}

// Two LB syncs over two separate datapaths (two nodes), which learn the
// backends in another order and give them other IDs, hold the same table.
func TestPrivilegedLBSyncMaglevSameOnTwoNodes(t *testing.T) {
	harness.RequirePrivileged(t)
	var bes []string
	for i := range 10 {
		bes = append(bes, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 244, byte(1 + i%3), byte(10 + i)}), 8080).String())
	}
	reversed := make([]string, len(bes))
	for i, b := range bes {
		reversed[len(bes)-1-i] = b
	}
	dp1 := progtest.Load(t, harness.BPFFS(t), datapath.Options{MaglevTableSize: maglev.DefaultTableSize}).LB()
	dp2 := progtest.Load(t, harness.BPFFS(t), datapath.Options{MaglevTableSize: maglev.DefaultTableSize}).LB()
	r1, err := newLBSync(dp1)
	require.NoError(t, err)
	r2, err := newLBSync(dp2)
	require.NoError(t, err)
	r1.maglevSize, r2.maglevSize = maglev.DefaultTableSize, maglev.DefaultTableSize
	r1.defaults.Algorithm, r2.defaults.Algorithm = lb.Maglev, lb.Maglev
	web := svc("10.96.0.10", 80, lb.TCP, bes...)
	_, err = r1.Apply([]lb.Service{web}, true)
	require.NoError(t, err)
	// Node 2 first has another service (its IDs differ), then web with the
	// backends in reverse order.
	other := svc("10.96.0.20", 80, lb.TCP, "10.244.3.9:80", "10.244.3.8:80")
	_, err = r2.Apply([]lb.Service{other}, true)
	require.NoError(t, err)
	_, err = r2.Apply([]lb.Service{other, svc("10.96.0.10", 80, lb.TCP, reversed...)}, true)
	require.NoError(t, err)
	id1, _ := r1.BackendID(netip.MustParseAddrPort(bes[0]), lb.TCP)
	id2, _ := r2.BackendID(netip.MustParseAddrPort(bes[0]), lb.TCP)
	require.NotEqual(t, id1, id2, "the nodes gave the backend different IDs")
	t1, t2 := kernelTable(t, dp1, r1, web.Frontend), kernelTable(t, dp2, r2, web.Frontend)
	require.Len(t, t1, maglev.DefaultTableSize)
	assert.Equal(t, t1, t2, "both kernels hold the same table")
}

// A Service's own algorithm beats the node's: on a random node only the
// Service annotated maglev gets a table and the flag; on a maglev node the
// one annotated random gets neither; switching a Service back removes its
// table.
func TestPrivilegedLBSyncPerServiceAlgorithm(t *testing.T) {
	harness.RequirePrivileged(t)
	dp := progtest.Load(t, harness.BPFFS(t), datapath.Options{MaglevTableSize: testMaglevSize}).LB()
	r, err := newLBSync(dp)
	require.NoError(t, err)
	r.maglevSize, r.defaults.Algorithm = testMaglevSize, lb.Random

	bes := []string{"10.244.1.2:8080", "10.244.1.3:8080", "10.244.2.4:8080"}
	mag := svc("10.96.0.10", 80, lb.TCP, bes...)
	mag.Algorithm = lb.Maglev
	plain := svc("10.96.0.11", 80, lb.TCP, bes...)
	_, err = r.Apply([]lb.Service{mag, plain}, false)
	require.NoError(t, err)
	assert.Equal(t, goTable(t, testMaglevSize, bes...), kernelTable(t, dp, r, mag.Frontend))
	svcs, err := dp.Services()
	require.NoError(t, err)
	assert.NotZero(t, svcs[fe("10.96.0.10", 80, lb.TCP)].Flags&dplb.FlagMaglev)
	assert.Zero(t, svcs[fe("10.96.0.11", 80, lb.TCP)].Flags&dplb.FlagMaglev)
	ids, err := dp.MaglevIDs()
	require.NoError(t, err)
	assert.Len(t, ids, 1, "a table for the maglev Service only")

	// Back to the node's default: the table goes.
	mag.Algorithm = ""
	_, err = r.ApplyChanged([]lb.Service{mag}, nil)
	require.NoError(t, err)
	ids, err = dp.MaglevIDs()
	require.NoError(t, err)
	assert.Empty(t, ids)

	// A maglev node: the Service annotated random gets no table.
	r.defaults.Algorithm = lb.Maglev
	plain.Algorithm = lb.Random
	_, err = r.Apply([]lb.Service{mag, plain}, true)
	require.NoError(t, err)
	ids, err = dp.MaglevIDs()
	require.NoError(t, err)
	magID, _ := r.RevNATID(mag.Frontend)
	assert.Equal(t, []uint16{magID}, keys(ids))
	svcs, err = dp.Services()
	require.NoError(t, err)
	assert.NotZero(t, svcs[fe("10.96.0.10", 80, lb.TCP)].Flags&dplb.FlagMaglev)
	assert.Zero(t, svcs[fe("10.96.0.11", 80, lb.TCP)].Flags&dplb.FlagMaglev)
}

func keys[K comparable, V any](m map[K]V) []K {
	var out []K
	for k := range m {
		out = append(out, k)
	}
	return out
}
