package servicemgr

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/agent/source/manifests"
	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/test/bench/services"
	"github.com/sluicenet/sluice/test/harness"
)

var crrBackends = []netip.AddrPort{netip.MustParseAddrPort("10.244.1.2:8080"), netip.MustParseAddrPort("10.244.1.3:8080")}

// BenchmarkManifestsToKernel10k measures the standalone agent's path for
// 10 000 Services (the TCP_CRR benchmark's manifests, one file): the
// manifests watcher's load (read, decode, snapshot), then the services
// manager's first sync (translation and writes into empty real maps).
func BenchmarkManifestsToKernel10k(b *testing.B) {
	harness.RequirePrivileged(b)
	set, err := services.Set(10000, crrBackends, crrBackends)
	require.NoError(b, err)
	var buf bytes.Buffer
	require.NoError(b, services.WriteManifests(&buf, set))
	dir := b.TempDir()
	require.NoError(b, os.WriteFile(filepath.Join(dir, "services.yaml"), buf.Bytes(), 0o600))
	bpffs := harness.BPFFS(b)
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		root := filepath.Join(bpffs, fmt.Sprintf("sluice-%d", i)) // empty maps each round
		dp, err := datapath.Load(root, datapath.Options{})
		require.NoError(b, err)
		m, err := New(Config{NodeName: "node-a"}, dp.LB(), dp.CT(), endpoints{}, quietLog())
		require.NoError(b, err)
		ctx, cancel := context.WithCancel(context.Background())
		b.StartTimer()
		done := make(chan error, 1)
		go func() {
			done <- manifests.New(dir, quietLog()).Run(ctx, func(s source.Snapshot) {
				m.SetObjects(Objects{Services: s.Services, EndpointSlices: s.EndpointSlices, Pods: s.Pods, Changes: s.Changes})
				cancel()
			})
		}()
		require.NoError(b, <-done)
		st, err := m.Sync(false)
		b.StopTimer()
		require.NoError(b, err)
		require.Equal(b, 10000, st.UpsertedServices)
		dp.Close()
		require.NoError(b, datapath.Unpin(root))
		b.StartTimer()
	}
}
