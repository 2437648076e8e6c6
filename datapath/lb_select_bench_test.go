package datapath_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/progtest"
)

// BenchmarkLBSelectRandom measures the random backend selection of a new
// flow in from_netdev (ns/pkt, in-kernel repeat): the NodePort's two slots
// name backends that do not exist and its traffic policy is Local, so every
// run looks the frontend and the flow up, selects (twice at random) and
// drops (no ICMP for Local) without touching the packet or creating state.
// It is the figure that must not move with --lb-algorithm=random.
func BenchmarkLBSelectRandom(b *testing.B) {
	e := newHostEnv(b)
	e.service(b, nodePortFE(hostNodePort), lbmap.FlagNodePort|lbmap.FlagLocalOnly, 77, 78)
	pkt := e.fromClient(hostExtIP, hostNodePort, 40000, progtest.TCPSyn)
	var (
		ret uint32
		per float64
		err error
	)
	e.ns.Do(b, func() {
		r, d, rerr := e.d.FromNetdev().Benchmark(pkt, b.N, nil)
		ret, err, per = r, rerr, float64(d.Nanoseconds())
	})
	require.NoError(b, err)
	require.Equal(b, uint32(progtest.ActShot), ret)
	b.ReportMetric(per, "ns/pkt")
}
