package lbmap

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/addrfilter"
)

// The frontend filter (sluice_lb4_fe_filter_v1, bpf/lib/lb_filter.h) holds
// every frontend address of the services map and every node address: the
// pod programs skip the service and NodePort lookups for a destination
// whose bit is clear. UpsertService and SetNodeAddrs set a bit before the
// write that needs it, DeleteService counts removals towards a rebuild, all
// under mu (see datapath/internal/addrfilter).

// SetFrontendFilter makes m maintain filter (sluice_lb4_fe_filter_v1) and
// rebuilds it from the services and node address maps. Call it before the
// pod programs that read the filter run.
func (m *Map) SetFrontendFilter(filter *ebpf.Map) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.filter = addrfilter.New(filter, "sluice_lb4_fe_filter_v1")
	return m.rebuildFilter()
}

// filterAdd sets the filter bit of a frontend or node address (m.mu held).
func (m *Map) filterAdd(a uint32) error {
	if m.filter == nil {
		return nil
	}
	return m.filter.Add(a)
}

// filterRemoved counts a removed frontend and rebuilds the filter when
// enough were (m.mu held).
func (m *Map) filterRemoved() error {
	if m.filter == nil || !m.filter.Removed() {
		return nil
	}
	return m.rebuildFilter()
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

// rebuildFilter recomputes the filter from the frontends and node addresses
// in the maps (m.mu held).
func (m *Map) rebuildFilter() error {
	var (
		key bpfgen.LxcLb4Key
		val bpfgen.LxcLb4Service
		set []uint32
	)
	it := m.services.Iterate()
	for it.Next(&key, &val) {
		if key.BackendSlot == 0 {
			set = append(set, key.Address)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate sluice_lb4_services_v1: %w", err)
	}
	var addr, flags uint32
	it = m.nodeAddrs.Iterate()
	for it.Next(&addr, &flags) {
		set = append(set, addr)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate sluice_node_addrs_v1: %w", err)
	}
	return m.filter.Rebuild(set)
}
