package progtest

import (
	"path/filepath"
	"testing"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/test/harness"
)

// Load loads the datapath into a private bpffs of the test (harness.BPFFS):
// every pin it makes, maps included, is gone when the test ends, so each
// call starts with empty maps. The datapath is closed in cleanup.
func Load(tb testing.TB, opts datapath.Options) *datapath.Datapath {
	tb.Helper()
	d, err := datapath.Load(filepath.Join(harness.BPFFS(tb), "sluice"), opts)
	if err != nil {
		tb.Fatalf("load datapath: %v", err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}
