package datapath_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/pin"
	"github.com/sluicenet/sluice/test/harness"
)

// An earlier agent's map whose layout (and so versioned name) changed stays
// pinned, and in kernel memory, until a Load removes its pin; the maps of
// this build (the process sensor's, which it pins from Go, included) and
// pins of other names stay.
func TestPrivilegedLoadPrunesStaleMapPins(t *testing.T) {
	harness.RequirePrivileged(t)
	root := filepath.Join(harness.BPFFS(t), "sluice")
	require.NoError(t, pin.EnsureRoot(root, false))
	pinMap := func(name string) {
		m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
		require.NoError(t, err)
		defer m.Close()
		require.NoError(t, m.Pin(filepath.Join(pin.MapsDir(root), name)))
	}
	const stale = "sluice_connect_config_v1" // the layout before containerSelector scopes
	pinMap(stale)
	pinMap("sluice_retired_v3")
	pinMap(bpfgen.ProcessMapSluiceExecConfigV2) // the sensor's, pinned from Go
	pinMap("not_sluice")

	d, err := datapath.Load(root, datapath.Options{ProcessEvents: true})
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })
	pruned, err := d.PrunedMaps()
	require.NoError(t, err)
	assert.Equal(t, []string{stale, "sluice_retired_v3"}, pruned)
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(pin.MapsDir(root), name))
		return err == nil
	}
	assert.False(t, exists(stale))
	assert.False(t, exists("sluice_retired_v3"))
	for _, name := range []string{bpfgen.SockMapSluiceConnectConfigV2, bpfgen.LxcMapSluiceCt4V1,
		bpfgen.ProcessMapSluiceExecConfigV2, "not_sluice"} {
		assert.True(t, exists(name), name)
	}

	// A second load finds nothing stale, and keeps the pins of this build's
	// maps it does not use itself (process events are off).
	d2, err := datapath.Load(root, datapath.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { d2.Close() })
	pruned, err = d2.PrunedMaps()
	require.NoError(t, err)
	assert.Empty(t, pruned)
	assert.True(t, exists(bpfgen.SockMapSluiceConnectConfigV2))
}
