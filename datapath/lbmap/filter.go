package lbmap

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/addrfilter"
)

// The pod programs' filters over the services map (bpf/lib/addr_filter.h,
// datapath/internal/addrfilter): sluice_lb4_fe_filter_v1 holds every
// frontend address, sluice_lb4_nodeport_filter_v1 the port of every
// wildcard (NodePort) frontend; the programs skip the service lookup for a
// destination address, and the NodePort lookups for a destination port,
// whose bit is clear. UpsertService sets the bits before it writes the
// master entry, DeleteService counts removals towards a rebuild, all under
// mu.

// SetFrontendFilter makes m maintain filter (sluice_lb4_fe_filter_v1) and
// nodePorts (sluice_lb4_nodeport_filter_v1) and rebuilds them from the
// services map. Call it before the pod programs that read them run.
func (m *Map) SetFrontendFilter(filter, nodePorts *ebpf.Map) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.filter = addrfilter.New(filter, "sluice_lb4_fe_filter_v1")
	m.nodePorts = addrfilter.NewPorts(nodePorts, "sluice_lb4_nodeport_filter_v1")
	return m.rebuildFilter()
}

// filterAdd sets the filter bits of the frontend key (m.mu held).
func (m *Map) filterAdd(key bpfgen.LxcLb4Key, fe Frontend) error {
	if m.filter == nil {
		return nil
	}
	if err := m.filter.Add(key.Address); err != nil {
		return err
	}
	if key.Address != 0 {
		return nil
	}
	return m.nodePorts.Add(uint32(fe.Port))
}

// filterRemoved counts a removed frontend and rebuilds the filters when
// enough were (m.mu held).
func (m *Map) filterRemoved() error {
	if m.filter == nil || !m.filter.Removed() {
		return nil
	}
	return m.rebuildFilter()
}

// rebuildFilter recomputes the filters from the frontends in the services
// map (m.mu held).
func (m *Map) rebuildFilter() error {
	var (
		key       bpfgen.LxcLb4Key
		val       bpfgen.LxcLb4Service
		addrs     []uint32
		nodePorts []uint32
	)
	it := m.services.Iterate()
	for it.Next(&key, &val) {
		if key.BackendSlot != 0 {
			continue
		}
		addrs = append(addrs, key.Address)
		if key.Address == 0 {
			nodePorts = append(nodePorts, uint32(frontendOf(key).Port))
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate sluice_lb4_services_v1: %w", err)
	}
	if err := m.filter.Rebuild(addrs); err != nil {
		return err
	}
	return m.nodePorts.Rebuild(nodePorts)
}

// SetBackendFilter makes m maintain filter (sluice_lb4_backend_filter_v1,
// bpf/lib/addr_filter.h: the pod programs look a packet up for reverse NAT
// only when its source has a bit) and rebuilds it from the addresses of the
// backends map and revNATBackends, the backend addresses of the conntrack
// entries that carry a reverse-NAT id (ctmap.RevNATBackends). A reply stays
// one as long as conntrack remembers its flow, after its backend is
// deleted, so from then on bits are only set (UpsertBackend), never cleared.
// Call it when the agent starts, before the pod programs that read the
// filter run: the agent is the only writer of the backends map, and the
// programs make reverse-NAT entries only for backends in it.
func (m *Map) SetBackendFilter(filter *ebpf.Map, revNATBackends []uint32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var (
		id  uint32
		val bpfgen.LxcLb4Backend
	)
	set := revNATBackends
	it := m.backends.Iterate()
	for it.Next(&id, &val) {
		set = append(set, val.Address)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate sluice_lb4_backends_v1: %w", err)
	}
	f := addrfilter.New(filter, "sluice_lb4_backend_filter_v1")
	if err := f.Rebuild(set); err != nil {
		return err
	}
	m.backendFilter = f
	return nil
}
