package progtest

import (
	"path/filepath"
	"testing"

	"github.com/sluicenet/sluice/datapath"
)

// Load loads the datapath under bpffs, a bpf filesystem private to the test
// (harness.BPFFS): every pin it makes, maps included, is gone when the test
// unmounts it, so each call on a fresh mount starts with empty maps. The
// datapath is closed in cleanup.
func Load(tb testing.TB, bpffs string, opts datapath.Options) *datapath.Datapath {
	tb.Helper()
	d, err := datapath.Load(filepath.Join(bpffs, "sluice"), opts)
	if err != nil {
		tb.Fatalf("load datapath: %v", err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}
