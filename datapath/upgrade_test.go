package datapath_test

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/endpointmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/pin"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/test/harness"
)

// pinOld creates the map spec describes as an agent of the previous build
// did and pins it under root's maps dir as name. It returns the map (closed
// in cleanup) and its ID.
func pinOld(t *testing.T, root, name string, spec *ebpf.MapSpec) (*ebpf.Map, ebpf.MapID) {
	t.Helper()
	spec = spec.Copy()
	spec.Pinning = ebpf.PinNone
	m, err := ebpf.NewMap(spec)
	require.NoError(t, err, name)
	t.Cleanup(func() { m.Close() })
	require.NoError(t, m.Pin(filepath.Join(pin.MapsDir(root), name)))
	info, err := m.Info()
	require.NoError(t, err)
	id, ok := info.ID()
	require.True(t, ok)
	return m, id
}

func pinnedID(t *testing.T, path string) ebpf.MapID {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(path, nil)
	require.NoError(t, err, path)
	defer m.Close()
	info, err := m.Info()
	require.NoError(t, err)
	id, _ := info.ID()
	return id
}

// An upgrade from a build whose maps had no version suffix adopts them: each
// old pin is renamed to its _v1 name before loading, so the loaded programs
// use the same maps (same IDs) with their entries.
func TestPrivilegedLoadAdoptsUnversionedPins(t *testing.T) {
	harness.RequirePrivileged(t)
	root := filepath.Join(harness.BPFFS(t), "sluice")
	require.NoError(t, pin.EnsureRoot(root, false))
	lxc, err := bpfgen.LoadLxc()
	require.NoError(t, err)
	sock, err := bpfgen.LoadSock()
	require.NoError(t, err)
	specs := map[string]*ebpf.MapSpec{}
	for name, s := range lxc.Maps {
		specs[name] = s
	}
	for name, s := range sock.Maps {
		specs[name] = s
	}

	ids := map[string]ebpf.MapID{}
	maps := map[string]*ebpf.Map{}
	for _, r := range pin.MapRenames {
		require.Contains(t, specs, r.New)
		maps[r.Old], ids[r.Old] = pinOld(t, root, r.Old, specs[r.New])
	}
	ep := endpointmap.Endpoint{IP: netip.MustParseAddr("10.244.0.7"), Ifindex: 7, ID: 7, Identity: 300,
		MAC: net.HardwareAddr{2, 0, 0, 0, 0, 7}, NodeMAC: net.HardwareAddr{2, 0, 0, 0, 1, 7}}
	old := endpointmap.New(maps["sluice_endpoints"])
	require.NoError(t, old.Upsert(ep))
	ncpu, err := ebpf.PossibleCPU()
	require.NoError(t, err)
	ctr := make([]bpfgen.LxcMetricsValue, ncpu)
	ctr[0] = bpfgen.LxcMetricsValue{Packets: 5, Bytes: 500}
	key := bpfgen.LxcMetricsKey{Ifindex: 7, Reason: uint8(metricsmap.ReasonFwdLocal), Dir: uint8(metricsmap.DirEgress)}
	require.NoError(t, maps["sluice_metrics"].Put(&key, ctr))
	lost := make([]uint64, ncpu)
	lost[0] = 3
	zero := uint32(0)
	require.NoError(t, maps["sluice_flows_lost"].Put(&zero, lost))
	sockKey := uint32(metricsmap.SockConnectTranslated)
	sockVals := make([]uint64, ncpu)
	sockVals[0] = 9
	require.NoError(t, maps["sluice_sock_metrics"].Put(&sockKey, sockVals))

	d, err := datapath.Load(root, datapath.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })

	for _, r := range pin.MapRenames {
		assert.NoFileExists(t, filepath.Join(pin.MapsDir(root), r.Old), "old pin renamed")
		assert.Equal(t, ids[r.Old], pinnedID(t, filepath.Join(pin.MapsDir(root), r.New)), "%s is the map pinned as %s", r.New, r.Old)
	}
	eps, err := d.Endpoints().List()
	require.NoError(t, err)
	assert.Equal(t, []endpointmap.Endpoint{ep}, eps)
	cs, err := d.Metrics().Counters()
	require.NoError(t, err)
	assert.Equal(t, []metricsmap.Counter{{Ifindex: 7, Reason: metricsmap.ReasonFwdLocal, Direction: metricsmap.DirEgress, Packets: 5, Bytes: 500}}, cs)
	n, err := d.Flows().Lost()
	require.NoError(t, err)
	assert.EqualValues(t, 3, n)
	sc, err := d.SockMetrics().Counters()
	require.NoError(t, err)
	assert.Equal(t, map[metricsmap.SockReason]uint64{metricsmap.SockConnectTranslated: 9}, sc)
}

// An old pin next to its new name is stale (a later agent already adopted
// the map): the load removes it and keeps the new one.
func TestPrivilegedLoadDropsStaleUnversionedPin(t *testing.T) {
	harness.RequirePrivileged(t)
	root := filepath.Join(harness.BPFFS(t), "sluice")
	d, err := datapath.Load(root, datapath.Options{})
	require.NoError(t, err)
	require.NoError(t, d.Close())
	newPath := filepath.Join(pin.MapsDir(root), "sluice_endpoints_v1")
	want := pinnedID(t, newPath)
	lxc, err := bpfgen.LoadLxc()
	require.NoError(t, err)
	pinOld(t, root, "sluice_endpoints", lxc.Maps["sluice_endpoints_v1"])

	d, err = datapath.Load(root, datapath.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })
	_, err = os.Stat(filepath.Join(pin.MapsDir(root), "sluice_endpoints"))
	assert.ErrorIs(t, err, os.ErrNotExist, "stale old pin removed")
	assert.Equal(t, want, pinnedID(t, newPath), "the new pin is kept")
}

// AdoptLinks (at every load and every resync) leaves a young empty link dir
// alone: sluice-cni creates an interface's dir before it pins the links into
// it, and removing it in between failed that ADD. An empty dir past the
// grace period is the leftover of a failed attach and goes.
func TestPrivilegedAdoptLinksKeepsYoungEmptyLinkDir(t *testing.T) {
	harness.RequirePrivileged(t)
	d := progtest.Load(t, harness.BPFFS(t), datapath.Options{})
	young, old := pin.LinkDir(d.Root(), "lxcyoung"), pin.LinkDir(d.Root(), "lxcold")
	require.NoError(t, os.MkdirAll(young, 0o700))
	require.NoError(t, os.MkdirAll(old, 0o700))
	past := time.Now().Add(-2 * time.Minute)
	require.NoError(t, os.Chtimes(old, past, past))

	_, err := d.AdoptLinks()
	require.NoError(t, err)
	assert.DirExists(t, young, "an attach in progress keeps its dir")
	assert.NoDirExists(t, old, "a stale empty dir is removed")
}
