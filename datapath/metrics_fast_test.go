package datapath_test

import (
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/endpointmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/pin"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/test/harness"
)

// TestPrivilegedMetricsFastSlots: forwarding counters go to the per-CPU fast
// slots; a second key landing on a taken slot is counted in the hash map; a
// key's count is the sum of both; deleting an interface's counters frees its
// slots for the next key. All runs on one CPU, so the slot claims are known.
func TestPrivilegedMetricsFastSlots(t *testing.T) {
	harness.RequirePrivileged(t)
	d := loadPod(t)
	// Test runs need the interfaces to exist: lo is 1 in a fresh namespace,
	// cIfindex is a veth created there with that index.
	ns := harness.NewNetNS(t, "mfast")
	ns.Run(t, "ip", "link", "add", "name", "mfast0", "index", "129", "type", "veth", "peer", "name", "mfast1")
	ns.Do(t, func() {
		var one unix.CPUSet
		one.Set(0)
		require.NoError(t, unix.SchedSetaffinity(0, &one))
		defer func() {
			var all unix.CPUSet
			for i := range runtime.NumCPU() {
				all.Set(i)
			}
			unix.SchedSetaffinity(0, &all)
		}()
		fastSlots(t, d)
	})
}

func fastSlots(t *testing.T, d *datapath.Datapath) {
	// cIfindex lands on aIfindex's slot: (ifindex*8 + reason*2 + dir) mod 1024.
	const cIfindex = aIfindex + 128
	cIP, cMAC := netip.MustParseAddr("10.244.1.12"), net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0c}
	require.NoError(t, d.Endpoints().Upsert(endpointmap.Endpoint{IP: cIP, Ifindex: cIfindex, ID: 3, MAC: cMAC, NodeMAC: aNodeMAC}))
	toStack := func(src netip.Addr, mac net.HardwareAddr, ifindex uint32, n int) int {
		in := progtest.Packet{SrcMAC: mac, DstMAC: aNodeMAC, Src: src, Dst: gwIP, DstPort: 22}.IPv4()
		for range n {
			require.Equal(t, uint32(progtest.ActOK), progtest.Run(t, d.FromContainer(), in, ifindex).Verdict)
		}
		return len(in)
	}
	aLen := toStack(aIP, aMAC, aIfindex, 5)
	cLen := toStack(cIP, cMAC, cIfindex, 3)

	a := counter(t, d, aIfindex, metricsmap.ReasonFwdStack, metricsmap.DirEgress)
	assert.Equal(t, uint64(5), a.Packets)
	assert.Equal(t, uint64(5*aLen), a.Bytes)
	c := counter(t, d, cIfindex, metricsmap.ReasonFwdStack, metricsmap.DirEgress)
	assert.Equal(t, uint64(3), c.Packets)
	assert.Equal(t, uint64(3*cLen), c.Bytes)

	fast := openPinned(t, d.Root(), metricsmap.FastName)
	hash := openPinned(t, d.Root(), metricsmap.Name)
	inFast := func(ifindex uint32) uint64 {
		var (
			slot  uint32
			slots []bpfgen.LxcMetricsFastSlot
			n     uint64
		)
		it := fast.Iterate()
		for it.Next(&slot, &slots) {
			for _, v := range slots {
				if v.Ifindex == ifindex {
					n += v.Packets
				}
			}
		}
		require.NoError(t, it.Err())
		return n
	}
	inHash := func(ifindex uint32) bool {
		var vals []bpfgen.LxcMetricsValue
		key := bpfgen.LxcMetricsKey{Ifindex: ifindex, Reason: uint8(metricsmap.ReasonFwdStack), Dir: uint8(metricsmap.DirEgress)}
		return hash.Lookup(&key, &vals) == nil
	}
	assert.Equal(t, uint64(5), inFast(aIfindex), "the first key claims the slot")
	assert.False(t, inHash(aIfindex))
	assert.Zero(t, inFast(cIfindex), "the slot is taken")
	assert.True(t, inHash(cIfindex), "the second key is counted in the hash map")

	// a's pod goes: its slot is freed and c takes it; c's count spans both maps.
	require.NoError(t, d.Metrics().DeleteCounters(aIfindex))
	assert.Zero(t, counter(t, d, aIfindex, metricsmap.ReasonFwdStack, metricsmap.DirEgress).Packets)
	toStack(cIP, cMAC, cIfindex, 4)
	assert.Equal(t, uint64(4), inFast(cIfindex))
	assert.Equal(t, uint64(7), counter(t, d, cIfindex, metricsmap.ReasonFwdStack, metricsmap.DirEgress).Packets)

	// Drops never use the slots.
	progtest.Run(t, d.FromContainer(), progtest.Packet{SrcMAC: cMAC, DstMAC: aNodeMAC, Src: aIP, Dst: gwIP}.IPv4(), cIfindex)
	assert.Equal(t, uint64(1), counter(t, d, cIfindex, metricsmap.DropSpoofIP, metricsmap.DirEgress).Packets)
	assert.Equal(t, uint64(4), inFast(cIfindex))

	// PinnedCounters sums the same way.
	pinned, err := metricsmap.PinnedCounters(d.Root())
	require.NoError(t, err)
	var total uint64
	for _, x := range pinned {
		if x.Ifindex == cIfindex && x.Reason == metricsmap.ReasonFwdStack {
			total += x.Packets
		}
	}
	assert.Equal(t, uint64(7), total)
}

func openPinned(t *testing.T, root, name string) *ebpf.Map {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(filepath.Join(pin.MapsDir(root), name), nil)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}
