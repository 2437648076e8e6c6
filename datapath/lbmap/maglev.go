package lbmap

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath/internal/maputil"
)

const maglevMapName = "sluice_lb4_maglev_v1"

// ErrNoMaglev is returned (wrapped) by Maglev for a service without table.
var ErrNoMaglev = errors.New("no Maglev table")

// SetMaglevMap gives the handle the Maglev outer map (sluice_lb4_maglev_v1,
// bpf/lib/lb.h): a hash of maps from a service's reverse-NAT id to its
// lookup table, an array of backend IDs.
func (m *Map) SetMaglevMap(outer *ebpf.Map) { m.maglev = outer }

// SetMaglev makes table (backend IDs, one per entry; its length is the
// table size, which the programs must have been loaded with) the Maglev
// table of service revNATID. The table is written into a new inner map
// which then replaces the service's old one with a single update of the
// outer map, so the programs see the old table or the new one, never a
// partly written one. It returns the kernel's ID of the new inner map
// (MaglevIDs lists them).
func (m *Map) SetMaglev(revNATID uint16, table []uint32) (uint32, error) {
	if m.maglev == nil {
		return 0, errors.New("no Maglev map")
	}
	if len(table) == 0 {
		return 0, errors.New("empty Maglev table")
	}
	inner, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       "sluice_maglev_in",
		Type:       ebpf.Array,
		KeySize:    4,
		ValueSize:  4,
		MaxEntries: uint32(len(table)),
		Flags:      unix.BPF_F_INNER_MAP, // as the template in lb.h: any size fits the outer map
	})
	if err != nil {
		return 0, fmt.Errorf("create Maglev table of service %d: %w", revNATID, err)
	}
	defer inner.Close() // the outer map holds its own reference
	keys := make([]uint32, len(table))
	for i := range keys {
		keys[i] = uint32(i)
	}
	if _, err := inner.BatchUpdate(keys, table, nil); err != nil {
		// Kernels without batch ops on arrays: one entry at a time.
		for i := range table {
			if err := inner.Update(&keys[i], &table[i], ebpf.UpdateAny); err != nil {
				return 0, fmt.Errorf("fill Maglev table of service %d: %w", revNATID, err)
			}
		}
	}
	info, err := inner.Info()
	if err != nil {
		return 0, fmt.Errorf("maglev table of service %d: %w", revNATID, err)
	}
	id, _ := info.ID()
	if err := m.maglev.Update(&revNATID, inner, ebpf.UpdateAny); err != nil {
		return 0, fmt.Errorf("service %d: %w", revNATID, maputil.UpdateError(maglevMapName, err))
	}
	return uint32(id), nil
}

// DeleteMaglev removes the Maglev table of service revNATID; a missing one
// is not an error.
func (m *Map) DeleteMaglev(revNATID uint16) error {
	if m.maglev == nil {
		return nil
	}
	if err := maputil.Delete(m.maglev, &revNATID); err != nil {
		return fmt.Errorf("delete Maglev table of service %d: %w", revNATID, err)
	}
	return nil
}

// MaglevIDs lists the services (reverse-NAT ids) that have a Maglev table,
// with the kernel's ID of each table's inner map.
func (m *Map) MaglevIDs() (map[uint16]uint32, error) {
	out := map[uint16]uint32{}
	if m.maglev == nil {
		return out, nil
	}
	var key uint16
	var id uint32
	it := m.maglev.Iterate()
	for it.Next(&key, &id) {
		out[key] = id
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate %s: %w", maglevMapName, err)
	}
	return out, nil
}

// Maglev reads the Maglev table of service revNATID back from the kernel:
// the backend ID of every entry. ErrNoMaglev (wrapped) when the service has
// none.
func (m *Map) Maglev(revNATID uint16) ([]uint32, error) {
	if m.maglev == nil {
		return nil, fmt.Errorf("service %d: %w", revNATID, ErrNoMaglev)
	}
	var innerID uint32
	if err := m.maglev.Lookup(&revNATID, &innerID); errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, fmt.Errorf("service %d: %w", revNATID, ErrNoMaglev)
	} else if err != nil {
		return nil, fmt.Errorf("maglev table of service %d: %w", revNATID, err)
	}
	inner, err := ebpf.NewMapFromID(ebpf.MapID(innerID))
	if err != nil {
		return nil, fmt.Errorf("open Maglev table of service %d: %w", revNATID, err)
	}
	defer inner.Close()
	n := inner.MaxEntries()
	out := make([]uint32, n)
	for i := range n {
		if err := inner.Lookup(&i, &out[i]); err != nil {
			return nil, fmt.Errorf("maglev table of service %d entry %d: %w", revNATID, i, err)
		}
	}
	return out, nil
}
