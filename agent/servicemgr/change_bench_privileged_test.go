package servicemgr

import (
	"fmt"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/test/harness"
)

// BenchmarkServiceChange10k measures one Service change with 10 000
// Services programmed into real maps: each op hands the manager a snapshot
// in which one Service's EndpointSlice has one backend replaced (Changes
// naming it) and syncs; ns/op runs from the snapshot's arrival
// (SetObjects) to the maps updated (the sync returned). Building the
// snapshot is not timed. It reports the median and p99 of the ops and the
// process's CPU time per change (user + system, snapshot building
// included), and prints
//
//	RESULT service_change services=10000 median_ms=… p99_ms=… cpu_ms_per_change=…
//
// hack/bench-service-change.sh runs it over 1 000 changes.
func BenchmarkServiceChange10k(b *testing.B) {
	harness.RequirePrivileged(b)
	const n = 10000
	root := filepath.Join(harness.BPFFS(b), "sluice")
	dp, err := datapath.Load(root, datapath.Options{})
	require.NoError(b, err)
	b.Cleanup(func() {
		dp.Close()
		_ = datapath.Unpin(root)
	})
	objs := generated(n)
	m, err := New(Config{NodeName: "node-a"}, dp.LB(), dp.CT(), endpoints{}, quietLog())
	require.NoError(b, err)
	m.SetObjects(objs)
	st, err := m.Sync(false)
	require.NoError(b, err)
	require.Equal(b, n, st.UpsertedServices)

	var lat []time.Duration
	cpu0 := cpuTime(b)
	i := 0
	for b.Loop() {
		b.StopTimer()
		k := i % n
		next := objs.withChanges(source.Changes{EndpointSlices: []types.NamespacedName{nn(svcName(k) + "-1")}})
		next.EndpointSlices[k] = endpointSlice(svcName(k), backendOf(k, 0), fmt.Sprintf("10.252.%d.%d", i>>8&255, i&255))
		i++
		b.StartTimer()
		start := time.Now()
		m.SetObjects(next)
		st, err := m.Sync(false)
		lat = append(lat, time.Since(start))
		if err != nil || st.UpsertedServices != 1 {
			b.Fatalf("change %d: %d services written: %v", i, st.UpsertedServices, err)
		}
		objs = next
	}
	cpu := cpuTime(b) - cpu0
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	median, p99 := lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	perChange := ms(cpu) / float64(len(lat))
	b.ReportMetric(ms(median), "median-ms")
	b.ReportMetric(ms(p99), "p99-ms")
	b.ReportMetric(perChange, "cpu-ms/change")
	fmt.Printf("RESULT service_change services=%d changes=%d median_ms=%.3f p99_ms=%.3f cpu_ms_per_change=%.3f\n",
		n, len(lat), ms(median), ms(p99), perChange)
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
