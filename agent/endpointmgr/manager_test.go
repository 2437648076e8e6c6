package endpointmgr_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/deletequeue"
	"github.com/sluicenet/sluice/agent/endpointmgr"
	"github.com/sluicenet/sluice/agent/endpointmgr/endpointtest"
	"github.com/sluicenet/sluice/agent/state"
	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/metricsmap"
)

type fixture struct {
	dp    *endpointtest.Datapath
	store *state.Store
	m     *endpointmgr.Manager
	log   logrus.FieldLogger
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	store, err := state.New(filepath.Join(t.TempDir(), "endpoints"))
	require.NoError(t, err)
	log, _ := logtest.NewNullLogger()
	dp := endpointtest.New()
	return &fixture{dp: dp, store: store, m: endpointmgr.New(dp, dp, store, log), log: log}
}

// restart returns a fresh manager over the same store and datapath.
func (f *fixture) restart(t *testing.T, linkExists endpointmgr.LinkChecker) {
	t.Helper()
	f.m = endpointmgr.New(f.dp, f.dp, f.store, f.log)
	require.NoError(t, f.m.Restore(linkExists))
}

func ep(cid, ip string, ifindex int) api.Endpoint {
	return api.Endpoint{
		ContainerID: cid, IfName: "eth0", IPv4: ip, MAC: "02:00:00:00:00:05",
		HostIfName: "lxc-" + cid, HostIfIndex: ifindex, HostMAC: "02:00:00:00:01:07",
	}
}

func TestPutAllocatesLowestFreeID(t *testing.T) {
	f := newFixture(t)
	for i, cid := range []string{"a", "b", "c"} {
		out, err := f.m.Put(ep(cid, "10.0.0."+string(rune('1'+i)), 10+i))
		require.NoError(t, err)
		assert.Equal(t, uint16(i+1), out.ID)
		assert.False(t, out.Created.IsZero())
	}
	require.NoError(t, f.m.Delete("b", "eth0"))
	out, err := f.m.Put(ep("d", "10.0.0.9", 20))
	require.NoError(t, err)
	assert.Equal(t, uint16(2), out.ID, "the freed ID is reused")

	e, ok := f.dp.Entry("10.0.0.9")
	require.True(t, ok)
	assert.Equal(t, uint16(2), e.ID)
	assert.Equal(t, uint32(20), e.Ifindex)
	assert.Equal(t, "02:00:00:00:01:07", e.NodeMAC.String())
}

func TestPutReplaceKeepsIDAndMovesIP(t *testing.T) {
	f := newFixture(t)
	first, err := f.m.Put(ep("a", "10.0.0.1", 10))
	require.NoError(t, err)
	f.dp.AddCounter(metricsmap.Counter{Ifindex: 10, Packets: 3})

	second, err := f.m.Put(ep("a", "10.0.0.2", 11))
	require.NoError(t, err)
	assert.Equal(t, first.ID, second.ID)
	assert.Equal(t, first.Created, second.Created)
	_, ok := f.dp.Entry("10.0.0.1")
	assert.False(t, ok, "old address removed from the map")
	_, ok = f.dp.Entry("10.0.0.2")
	assert.True(t, ok)
	cs, _ := f.dp.Counters()
	assert.Empty(t, cs, "counters of the old host interface removed")
	assert.Equal(t, 1, f.m.Len())
}

func TestPutConflictingIP(t *testing.T) {
	f := newFixture(t)
	_, err := f.m.Put(ep("a", "10.0.0.1", 10))
	require.NoError(t, err)
	_, err = f.m.Put(ep("b", "10.0.0.1", 11))
	require.ErrorIs(t, err, endpointmgr.ErrConflict)
	assert.Contains(t, err.Error(), "a/eth0")
	assert.True(t, endpointmgr.IsClientError(err))
	assert.Equal(t, 1, f.m.Len())
}

func TestPutMapFullUndoesState(t *testing.T) {
	f := newFixture(t)
	f.dp.MaxEntries = 1
	old, err := f.m.Put(ep("a", "10.0.0.1", 10))
	require.NoError(t, err)

	_, err = f.m.Put(ep("b", "10.0.0.2", 11))
	require.ErrorIs(t, err, datapath.ErrMapFull)
	assert.NoFileExists(t, f.store.Path(2), "state file of the failed endpoint removed")
	assert.Equal(t, 1, f.m.Len())

	// A failed replacement restores the old state file.
	f.dp.FailUpsert = errors.New("boom")
	_, err = f.m.Put(ep("a", "10.0.0.3", 12))
	require.Error(t, err)
	eps, _, err := f.store.LoadAll()
	require.NoError(t, err)
	require.Len(t, eps, 1)
	assert.Equal(t, old.IPv4, eps[0].IPv4)
	got, err := f.m.Get("a", "eth0")
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.1", got.IPv4)
}

func TestDelete(t *testing.T) {
	f := newFixture(t)
	out, err := f.m.Put(ep("a", "10.0.0.1", 10))
	require.NoError(t, err)
	f.dp.AddCounter(metricsmap.Counter{Ifindex: 10, Packets: 3})
	require.NoError(t, f.m.Delete("a", "eth0"))
	assert.Equal(t, 0, f.dp.Len())
	cs, _ := f.dp.Counters()
	assert.Empty(t, cs)
	assert.NoFileExists(t, f.store.Path(out.ID))
	require.ErrorIs(t, f.m.Delete("a", "eth0"), endpointmgr.ErrNotFound)
	_, err = f.m.Get("a", "eth0")
	require.ErrorIs(t, err, endpointmgr.ErrNotFound)
}

func TestListWithCounters(t *testing.T) {
	f := newFixture(t)
	_, err := f.m.Put(ep("b", "10.0.0.2", 11))
	require.NoError(t, err)
	_, err = f.m.Put(ep("a", "10.0.0.1", 10))
	require.NoError(t, err)
	f.dp.AddCounter(metricsmap.Counter{Ifindex: 10, Direction: metricsmap.DirIngress, Reason: metricsmap.ReasonFwdLocal, Packets: 2, Bytes: 200})
	f.dp.AddCounter(metricsmap.Counter{Ifindex: 10, Direction: metricsmap.DirEgress, Reason: metricsmap.DropSpoofIP, Packets: 1, Bytes: 60})

	eps, err := f.m.List()
	require.NoError(t, err)
	require.Len(t, eps, 2)
	assert.Equal(t, "b", eps[0].ContainerID, "sorted by id")
	assert.Empty(t, eps[0].Counters)
	assert.Equal(t, []api.Counter{
		{Direction: "egress", Reason: "drop-spoofed-source-ip", Drop: true, Packets: 1, Bytes: 60},
		{Direction: "ingress", Reason: "forward-local", Packets: 2, Bytes: 200},
	}, eps[1].Counters)
}

func TestReconcile(t *testing.T) {
	f := newFixture(t)
	_, err := f.m.Put(ep("a", "10.0.0.1", 10))
	require.NoError(t, err)
	_, err = f.m.Put(ep("b", "10.0.0.2", 11))
	require.NoError(t, err)

	// Drift: a stray entry, a missing one and a different one.
	stray, _ := f.dp.Entry("10.0.0.1")
	stray.IP = netipMust("10.9.9.9")
	require.NoError(t, f.dp.Upsert(stray))
	require.NoError(t, f.dp.Delete(netipMust("10.0.0.1")))
	changed, _ := f.dp.Entry("10.0.0.2")
	changed.Ifindex = 99
	require.NoError(t, f.dp.Upsert(changed))

	st, err := f.m.Reconcile()
	require.NoError(t, err)
	assert.Equal(t, endpointmgr.ReconcileStats{Written: 2, Deleted: 1}, st)
	assert.Equal(t, 2, f.dp.Len())
	b, _ := f.dp.Entry("10.0.0.2")
	assert.Equal(t, uint32(11), b.Ifindex)

	st, err = f.m.Reconcile()
	require.NoError(t, err)
	assert.Equal(t, endpointmgr.ReconcileStats{}, st, "idempotent")
}

func TestRestore(t *testing.T) {
	f := newFixture(t)
	a, err := f.m.Put(ep("a", "10.0.0.1", 10))
	require.NoError(t, err)
	_, err = f.m.Put(ep("gone", "10.0.0.2", 11))
	require.NoError(t, err)
	f.dp.AddCounter(metricsmap.Counter{Ifindex: 11, Packets: 1})
	require.NoError(t, os.WriteFile(filepath.Join(f.store.Dir(), "77.json"), []byte("{nope"), 0o600))

	f.restart(t, func(name string, index int) (bool, error) {
		return name == "lxc-a" && index == 10, nil
	})
	assert.Equal(t, 1, f.m.Len())
	got, err := f.m.Get("a", "eth0")
	require.NoError(t, err)
	assert.Equal(t, a.ID, got.ID)
	assert.Equal(t, a.Created.Unix(), got.Created.Unix())
	assert.NoFileExists(t, f.store.Path(2), "state of the endpoint with a gone interface dropped")
	cs, _ := f.dp.Counters()
	assert.Empty(t, cs)
	assert.NoFileExists(t, filepath.Join(f.store.Dir(), "77.json"))
	assert.FileExists(t, filepath.Join(f.store.Dir(), ".77.json.bad"))

	_, err = f.m.Reconcile()
	require.NoError(t, err)
	assert.Equal(t, 1, f.dp.Len(), "the dropped endpoint's entry is pruned")

	// A restarted manager continues allocating above restored IDs.
	out, err := f.m.Put(ep("c", "10.0.0.3", 12))
	require.NoError(t, err)
	assert.Equal(t, uint16(2), out.ID)
}

func TestRestoreKeepsEndpointWhenLinkCheckFails(t *testing.T) {
	f := newFixture(t)
	_, err := f.m.Put(ep("a", "10.0.0.1", 10))
	require.NoError(t, err)
	f.restart(t, func(string, int) (bool, error) { return false, errors.New("netlink down") })
	assert.Equal(t, 1, f.m.Len())
}

func TestProcessDeleteQueue(t *testing.T) {
	f := newFixture(t)
	_, err := f.m.Put(ep("a", "10.0.0.1", 10))
	require.NoError(t, err)
	_, err = f.m.Put(ep("b", "10.0.0.2", 11))
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "delete-queue")
	require.NoError(t, deletequeue.Enqueue(dir, deletequeue.Entry{ContainerID: "a", IfName: "eth0"}))
	require.NoError(t, deletequeue.Enqueue(dir, deletequeue.Entry{ContainerID: "unknown", IfName: "eth0"}))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "junk"), []byte("not json"), 0o600))

	require.NoError(t, f.m.ProcessDeleteQueue(dir))
	assert.Equal(t, 1, f.m.Len())
	_, err = f.m.Get("b", "eth0")
	require.NoError(t, err)
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, left, "processed and unusable files removed")

	require.NoError(t, f.m.ProcessDeleteQueue(filepath.Join(t.TempDir(), "missing")))
}
