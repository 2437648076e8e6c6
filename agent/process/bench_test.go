package process

import (
	"testing"

	"github.com/sluicenet/sluice/agent/endpointmgr"
	"github.com/sluicenet/sluice/datapath/procsensor"
)

// The daemon passes its endpoint manager as the association's lister.
var _ EndpointLister = (*endpointmgr.Manager)(nil)

// BenchmarkForkExecExit is the agent's share of one /bin/true of an exec
// storm: fork, exec and exit through the cache, two events published.
func BenchmarkForkExecExit(b *testing.B) {
	f := newFixture(b, Config{})
	f.seedChain(b, 3)
	e := execOf(100, 3, "/bin/true", "-x")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k := procsensor.Key{TGID: uint32(100 + i%30000), StartTime: uint64(1e6 + i)}
		f.m.Handle(procsensor.Event{Fork: &procsensor.Fork{Key: k, Parent: key(3)}})
		e.Key = k
		f.m.Handle(procsensor.Event{Exec: e})
		f.m.Handle(procsensor.Event{Exit: &procsensor.Exit{Key: k}})
		if i%1024 == 0 {
			f.rec.take()
		}
	}
}
