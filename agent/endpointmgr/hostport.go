package endpointmgr

import (
	"fmt"
	"maps"
	"slices"

	"github.com/sluicenet/sluice/agent/api"
)

// normalizePortMappings returns pms (validated) in the form api.PortMapping
// Normalized gives.
func normalizePortMappings(pms []api.PortMapping) []api.PortMapping {
	if len(pms) == 0 {
		return nil
	}
	out := make([]api.PortMapping, len(pms))
	for i, p := range pms {
		out[i] = p.Normalized()
	}
	return out
}

// hostPortConflict returns the error for e's first hostPort that an
// endpoint other than e and old already uses, nil if there is none. The
// scheduler and kubelet keep such pods off one node; this catches what
// bypasses them (another runtime, a standalone node, a stale endpoint) with
// a message that names the pod holding the port.
func (m *Manager) hostPortConflict(e, old *entry) error {
	if len(e.ep.PortMappings) == 0 {
		return nil
	}
	ids := slices.Sorted(maps.Keys(m.byID)) // the lowest ID is named first
	for _, p := range e.ep.PortMappings {
		for _, id := range ids {
			other := m.byID[id]
			if other == old || other.ep.Key() == e.ep.Key() {
				continue
			}
			for _, q := range other.ep.PortMappings {
				if p.Overlaps(q) {
					return fmt.Errorf("%w: %s: the port is already used by %s (%s)",
						ErrConflict, p, podOf(other.ep), q)
				}
			}
		}
	}
	return nil
}

// podOf names the pod of an endpoint, or the endpoint when it has no pod name.
func podOf(ep api.Endpoint) string {
	if ep.PodName == "" {
		return "endpoint " + ep.Key()
	}
	return "pod " + ep.PodNamespace + "/" + ep.PodName + " (endpoint " + ep.Key() + ")"
}
