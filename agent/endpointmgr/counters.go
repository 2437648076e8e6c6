package endpointmgr

import (
	"cmp"
	"slices"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/metricsmap"
)

// countersByIfindex groups datapath counters into API counters per host
// interface, sorted by direction then reason.
func countersByIfindex(cs []metricsmap.Counter) map[uint32][]api.Counter {
	slices.SortFunc(cs, func(a, b metricsmap.Counter) int {
		return cmp.Or(cmp.Compare(a.Direction, b.Direction), cmp.Compare(a.Reason, b.Reason))
	})
	out := make(map[uint32][]api.Counter)
	for _, c := range cs {
		out[c.Ifindex] = append(out[c.Ifindex], api.Counter{
			Direction: c.Direction.String(),
			Reason:    c.Reason.String(),
			Drop:      c.Reason.IsDrop(),
			Packets:   c.Packets,
			Bytes:     c.Bytes,
		})
	}
	return out
}
