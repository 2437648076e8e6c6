package lbmap

import (
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/maputil"
)

// The frontend filter (sluice_lb4_fe_filter_v1, bpf/lib/lb_filter.h) is a
// one-hash Bloom filter over every frontend address in the services map and
// every node address: the pod programs skip the service and NodePort lookups
// for a destination whose bit is clear. So a bit is set before the write that
// makes its address a frontend or node address (UpsertService, SetNodeAddrs,
// under mu), and bits are cleared only by a rebuild from the maps (under mu,
// so no write slips between the rebuild's read and its write).
const (
	filterBitsLog = 20 // LB4_FE_FILTER_BITS_LOG
	filterWords   = 1 << (filterBitsLog - 6)
	// A rebuild drops the bits of deleted frontends once this many (or as
	// many as there were frontends at the last rebuild, if more) were
	// deleted: a rebuild reads the whole services map.
	filterRebuildMin = 1024
)

// filterBit is lb4_fe_filter_bit: the top bits of a multiplicative hash of
// the address as the C side loads it.
func filterBit(a netip.Addr) uint32 {
	return (maputil.Be32(a) * 0x9e3779b1) >> (32 - filterBitsLog)
}

// frontendFilter is the Go copy of the filter (the agent is its only
// writer) and the deletions since the last rebuild.
type frontendFilter struct {
	m        *ebpf.Map
	words    []uint64
	deleted  int
	rebuildN int
}

// SetFrontendFilter makes m maintain filter (sluice_lb4_fe_filter_v1) and
// rebuilds it from the services and node address maps. Call it before the
// pod programs that read the filter run.
func (m *Map) SetFrontendFilter(filter *ebpf.Map) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.filter = &frontendFilter{m: filter}
	return m.rebuildFilter()
}

// filterAdd sets the bit of a. Called with m.mu held.
func (m *Map) filterAdd(a netip.Addr) error {
	f := m.filter
	if f == nil {
		return nil
	}
	bit := filterBit(a)
	word, mask := bit/64, uint64(1)<<(bit%64)
	if f.words[word]&mask != 0 {
		return nil
	}
	w := f.words[word] | mask
	if err := f.m.Update(&word, &w, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("frontend filter bit of %s: %w", a, err)
	}
	f.words[word] = w
	return nil
}

// filterDeleted counts a deleted frontend and rebuilds the filter when
// enough were. Called with m.mu held.
func (m *Map) filterDeleted() error {
	f := m.filter
	if f == nil {
		return nil
	}
	f.deleted++
	if f.deleted < max(filterRebuildMin, f.rebuildN) {
		return nil
	}
	return m.rebuildFilter()
}

// rebuildFilter recomputes the filter from the frontends and node addresses
// in the maps and writes the words that changed (all of them the first
// time). Called with m.mu held.
func (m *Map) rebuildFilter() error {
	f := m.filter
	words := make([]uint64, filterWords)
	set := func(v uint32) {
		bit := filterBit(maputil.AddrFromBe32(v))
		words[bit/64] |= 1 << (bit % 64)
	}
	var (
		key bpfgen.LxcLb4Key
		val bpfgen.LxcLb4Service
		n   int
	)
	it := m.services.Iterate()
	for it.Next(&key, &val) {
		if key.BackendSlot == 0 {
			set(key.Address)
			n++
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate sluice_lb4_services_v1: %w", err)
	}
	var addr, flags uint32
	it = m.nodeAddrs.Iterate()
	for it.Next(&addr, &flags) {
		set(addr)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate sluice_node_addrs_v1: %w", err)
	}
	for i, w := range words {
		if f.words != nil && f.words[i] == w {
			continue
		}
		word := uint32(i)
		if err := f.m.Update(&word, &w, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("write frontend filter: %w", err)
		}
	}
	f.words, f.deleted, f.rebuildN = words, 0, n
	return nil
}
