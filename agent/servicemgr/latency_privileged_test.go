package servicemgr

import (
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/test/harness"
)

// latencySamples returns how many latencies the manager observed and
// their sum.
func latencySamples(t *testing.T, m *Manager) (uint64, float64) {
	t.Helper()
	var out dto.Metric
	require.NoError(t, m.latency.Write(&out))
	return out.GetHistogram().GetSampleCount(), out.GetHistogram().GetSampleSum()
}

// Each sync that programs changes observes one programming latency; a
// resync with nothing pending observes none.
func TestPrivilegedProgrammingLatency(t *testing.T) {
	harness.RequirePrivileged(t)
	objs := generated(10)
	m, cm, _ := incrementalSetup(t, objs, endpoints{})
	n, sum := latencySamples(t, m)
	assert.Equal(t, uint64(1), n, "the first sync programmed the objects")
	assert.Positive(t, sum)

	objs = objs.withChanges(source.Changes{EndpointSlices: []types.NamespacedName{nn(svcName(4) + "-1")}})
	objs.EndpointSlices[4] = endpointSlice(svcName(4), backendOf(4, 0), "10.250.0.1")
	syncChange(t, m, cm, objs)
	n, _ = latencySamples(t, m)
	assert.Equal(t, uint64(2), n, "an incremental sync of a change")

	_, err := m.Sync(true)
	require.NoError(t, err)
	n, _ = latencySamples(t, m)
	assert.Equal(t, uint64(2), n, "a resync with no change pending observes nothing")
	assert.Len(t, m.Collectors(), 1)
}
