package procsensor_test

import (
	"path/filepath"
	"testing"

	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/test/harness"
)

func TestPrivilegedLoadProbe(t *testing.T) {
	harness.RequirePrivileged(t)
	s, err := procsensor.Load(filepath.Join(harness.BPFFS(t), "sluice"), procsensor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t.Log(s.Hooks())
}
