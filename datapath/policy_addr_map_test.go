package datapath_test

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/policymap"
)

func addrKey(ingress bool, prefix string) policymap.AddrKey {
	return policymap.AddrKey{Ingress: ingress, Prefix: netip.MustParsePrefix(prefix)}
}

// The address entries' API: writes read back, Sync converges, endpoint
// deletion and listing cover them, pressure counts them.
func TestPrivilegedPolicyAddrMap(t *testing.T) {
	e := loadPolicy(t)
	pm := e.d.Policy()
	used, max, err := pm.AddrPressure()
	require.NoError(t, err)
	assert.Zero(t, used)
	assert.Equal(t, 4096*256, max)

	want := map[policymap.AddrKey]uint32{
		addrKey(false, "10.244.0.0/16"):  set1,
		addrKey(false, "10.244.2.5/32"):  0,
		addrKey(true, "10.244.0.0/16"):   set2,
		addrKey(true, "0.0.0.0/0"):       s3,
		addrKey(false, "192.0.2.128/25"): set2,
	}
	w, d, err := pm.SyncAddrs(epA, want)
	require.NoError(t, err)
	assert.Equal(t, [2]int{5, 0}, [2]int{w, d})
	got, err := pm.Addrs(epA)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	w, d, err = pm.SyncAddrs(epA, want)
	require.NoError(t, err)
	assert.Equal(t, [2]int{0, 0}, [2]int{w, d}, "in sync: nothing written")

	// Change one, drop one, add one; b's entries are b's.
	want[addrKey(false, "10.244.0.0/16")] = s3
	delete(want, addrKey(true, "0.0.0.0/0"))
	want[addrKey(true, "10.244.2.5/32")] = 0
	w, d, err = pm.SyncAddrs(epA, want)
	require.NoError(t, err)
	assert.Equal(t, [2]int{2, 1}, [2]int{w, d})
	require.NoError(t, pm.UpsertAddr(epB, addrKey(false, "10.244.0.0/16"), set1))
	got, err = pm.Addrs(epA)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	used, _, err = pm.AddrPressure()
	require.NoError(t, err)
	assert.Equal(t, len(want)+1, used)

	// Delete is idempotent; bad keys are refused.
	require.NoError(t, pm.DeleteAddr(epA, addrKey(false, "192.0.2.128/25")))
	require.NoError(t, pm.DeleteAddr(epA, addrKey(false, "192.0.2.128/25")))
	got, err = pm.Addrs(epA)
	require.NoError(t, err)
	assert.Len(t, got, len(want)-1)
	assert.Error(t, pm.UpsertAddr(epA, addrKey(false, "10.244.2.5/24"), set1), "bits beyond the prefix")
	assert.Error(t, pm.UpsertAddr(epA, addrKey(false, "fd00::/64"), set1), "IPv6")
	assert.Error(t, pm.UpsertAddr(epA, policymap.AddrKey{}, set1), "no prefix")
	assert.Error(t, pm.DeleteAddr(epA, addrKey(false, "10.244.2.5/24")))

	// Config flags round-trip.
	cfg := policymap.Config{IngressEnforced: true, IngressAddr: true, EgressAddr: true}
	require.NoError(t, pm.SetConfig(epA, cfg))
	gotCfg, err := pm.Config(epA)
	require.NoError(t, err)
	assert.Equal(t, cfg, gotCfg)

	// An endpoint with only address entries is listed; deleting endpoints
	// deletes their address entries.
	const epOnlyAddrs = 9
	require.NoError(t, pm.UpsertAddr(epOnlyAddrs, addrKey(true, "10.0.0.0/8"), set1))
	eps, err := pm.Endpoints()
	require.NoError(t, err)
	assert.Equal(t, map[uint16]bool{epA: true, epB: true, epOnlyAddrs: true}, eps)
	for _, ep := range []uint16{epA, epOnlyAddrs} {
		require.NoError(t, pm.DeleteEndpoint(ep))
		got, err = pm.Addrs(ep)
		require.NoError(t, err)
		assert.Empty(t, got)
	}
	eps, err = pm.Endpoints()
	require.NoError(t, err)
	assert.Equal(t, map[uint16]bool{epB: true}, eps)
	used, _, err = pm.AddrPressure()
	require.NoError(t, err)
	assert.Equal(t, 1, used)
}
