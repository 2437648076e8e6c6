package servicemgr

import (
	"maps"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/datapath"
	dplb "github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/test/harness"
)

// incrementalSetup programs objs through a manager over real maps (a full
// sync) and returns the manager, the counting maps and the real ones.
func incrementalSetup(t *testing.T, objs Objects, eps Endpoints) (*Manager, *countingMaps, *dplb.Map) {
	t.Helper()
	d := progtest.Load(t, harness.BPFFS(t), datapath.Options{})
	cm := &countingMaps{Maps: d.LB()}
	m, err := New(Config{NodeName: "node-a"}, cm, d.CT(), eps, quietLog())
	require.NoError(t, err)
	m.SetObjects(objs)
	_, err = m.Sync(false) // the first sync is a full one
	require.NoError(t, err)
	return m, cm, d.LB()
}

func readLB(t *testing.T, dp *dplb.Map) lbState {
	t.Helper()
	svcs, err := dp.Services()
	require.NoError(t, err)
	bes, err := dp.Backends()
	require.NoError(t, err)
	rns, err := dp.RevNATs()
	require.NoError(t, err)
	return lbState{svcs, bes, rns}
}

// syncChange hands the manager o and syncs incrementally, returning the
// map writes the sync made.
func syncChange(t *testing.T, m *Manager, cm *countingMaps, o Objects) map[string]int {
	t.Helper()
	cm.writes = nil
	m.SetObjects(o)
	_, err := m.Sync(false)
	require.NoError(t, err)
	return cm.writes
}

// requireConverged asserts that a full sync finds nothing to repair: the
// incremental syncs left the maps exactly as a full translation wants them.
func requireConverged(t *testing.T, m *Manager, cm *countingMaps) {
	t.Helper()
	cm.writes = nil
	st, err := m.Sync(true)
	require.NoError(t, err)
	assert.Empty(t, cm.writes, "a full sync after incremental ones writes nothing")
	assert.Zero(t, st.UpsertedServices+st.DeletedServices+st.UpsertedBackends+st.DeletedBackends)
}

func TestPrivilegedIncrementalServiceChange(t *testing.T) {
	harness.RequirePrivileged(t)
	objs := generated(100)
	m, cm, dp := incrementalSetup(t, objs, endpoints{})
	before := readLB(t, dp)
	require.Len(t, before.svcs, 100)

	// One backend of one Service changes: that Service's entry and the new
	// backend are written, the old backend deleted, nothing else touched.
	objs = objs.withChanges(source.Changes{EndpointSlices: []types.NamespacedName{nn(svcName(42) + "-1")}})
	objs.EndpointSlices[42] = endpointSlice(svcName(42), backendOf(42, 0), "10.250.0.1")
	writes := syncChange(t, m, cm, objs)
	assert.Equal(t, map[string]int{"upsert service": 1, "upsert backend": 1, "delete backend": 1}, writes)
	after := readLB(t, dp)
	fe42 := dplb.Frontend{Addr: vipOf(42), Port: 80, Proto: 6}
	assert.Equal(t, []string{backendOf(42, 0) + ":8080", "10.250.0.1:8080"}, backendAddrs(t, dp, fe42))
	assert.Equal(t, before.rns, after.rns)
	oldID := before.svcs[fe42].Backends[1]
	for fe, s := range before.svcs {
		if fe != fe42 {
			assert.Equal(t, s, after.svcs[fe], "service %v unchanged", fe)
		}
	}
	wantBes := maps.Clone(before.bes)
	delete(wantBes, oldID)
	newID := after.svcs[fe42].Backends[1]
	wantBes[newID] = dplb.Backend{Addr: netip.MustParseAddr("10.250.0.1"), Port: 8080, Proto: 6}
	assert.Equal(t, wantBes, after.bes)
	requireConverged(t, m, cm)

	// One Service and its EndpointSlice deleted: exactly its service entry,
	// reverse NAT and backends go.
	before = readLB(t, dp)
	fe7 := dplb.Frontend{Addr: vipOf(7), Port: 80, Proto: 6}
	gone := before.svcs[fe7]
	objs = objs.withChanges(source.Changes{Services: []types.NamespacedName{nn(svcName(7))}, EndpointSlices: []types.NamespacedName{nn(svcName(7) + "-1")}})
	objs.Services = append(objs.Services[:7], objs.Services[8:]...)
	objs.EndpointSlices = append(objs.EndpointSlices[:7], objs.EndpointSlices[8:]...)
	writes = syncChange(t, m, cm, objs)
	assert.Equal(t, map[string]int{"delete service": 1, "delete rev NAT": 1, "delete backend": 2}, writes)
	after = readLB(t, dp)
	want := lbState{maps.Clone(before.svcs), maps.Clone(before.bes), maps.Clone(before.rns)}
	delete(want.svcs, fe7)
	delete(want.rns, gone.RevNATID)
	for _, id := range gone.Backends {
		delete(want.bes, id)
	}
	assert.Equal(t, want, after)
	requireConverged(t, m, cm)

	// An unchanged object named as changed writes nothing.
	writes = syncChange(t, m, cm, objs.withChanges(source.Changes{Services: []types.NamespacedName{nn(svcName(3))}}))
	assert.Empty(t, writes)
}

// A Service that loses a frontend to another (same cluster IP, earlier
// name) takes it over when the other goes; a Pod change re-translates the
// selector Services that select it.
func TestPrivilegedIncrementalFrontendsAndPods(t *testing.T) {
	harness.RequirePrivileged(t)
	objs := generated(10)
	dup := clusterIPService("zz-dup", vipOf(3))
	objs.Services = append(objs.Services, dup)
	objs.EndpointSlices = append(objs.EndpointSlices, endpointSlice("zz-dup", "10.251.0.1"))
	web := selectorService()
	web.Spec.ClusterIP, web.Spec.ClusterIPs = "10.97.0.10", nil
	webLabels := map[string]string{"app": "web"}
	objs.Services = append(objs.Services, web)
	objs.Pods = []*corev1.Pod{
		podObj("default", "a", "10.1.0.1", "node-b", true, webLabels),
		podObj("default", "b", "10.1.0.2", "node-b", true, webLabels),
	}
	eps := endpoints{list: []api.Endpoint{{PodNamespace: "default", PodName: "local", IPv4: "10.0.0.9"}}}
	m, cm, dp := incrementalSetup(t, objs, eps)
	fe3 := dplb.Frontend{Addr: vipOf(3), Port: 80, Proto: 6}
	assert.Equal(t, []string{backendOf(3, 0) + ":8080", backendOf(3, 1) + ":8080"}, backendAddrs(t, dp, fe3))

	objs = objs.withChanges(source.Changes{Services: []types.NamespacedName{nn(svcName(3))}})
	objs.Services = append(objs.Services[:3:3], objs.Services[4:]...)
	writes := syncChange(t, m, cm, objs)
	assert.Equal(t, map[string]int{"upsert service": 1, "upsert backend": 1, "delete backend": 2}, writes)
	assert.Equal(t, []string{"10.251.0.1:8080"}, backendAddrs(t, dp, fe3), "the other Service owns the frontend now")
	requireConverged(t, m, cm)

	// Pod b stops being ready: web's entry loses it; nothing else changes.
	feWeb := dplb.Frontend{Addr: netip.MustParseAddr("10.97.0.10"), Port: 80, Proto: 6}
	assert.Equal(t, []string{"10.1.0.1:8080", "10.1.0.2:8080"}, backendAddrs(t, dp, feWeb))
	objs = objs.withChanges(source.Changes{Pods: []types.NamespacedName{nn("b")}})
	objs.Pods[1] = podObj("default", "b", "10.1.0.2", "node-b", false, webLabels)
	writes = syncChange(t, m, cm, objs)
	assert.Equal(t, map[string]int{"upsert service": 1, "delete backend": 1}, writes)
	assert.Equal(t, []string{"10.1.0.1:8080"}, backendAddrs(t, dp, feWeb))

	// The local pod gets web's label: the CNI's address is its backend.
	objs = objs.withChanges(source.Changes{Pods: []types.NamespacedName{nn("local")}})
	objs.Pods = append(objs.Pods, podObj("default", "local", "", "", true, webLabels))
	syncChange(t, m, cm, objs)
	assert.Equal(t, []string{"10.0.0.9:8080", "10.1.0.1:8080"}, backendAddrs(t, dp, feWeb))
	requireConverged(t, m, cm)
}
