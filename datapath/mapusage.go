package datapath

import (
	"errors"
	"fmt"
	"reflect"
	"sort"

	"github.com/cilium/ebpf"
)

// MapUsage is how full one BPF map is.
type MapUsage struct {
	Name string
	Type string // hash, lru_hash, lpm_trie, ...
	// Entries is the number of keys; Capacity the map's max_entries.
	Entries, Capacity int
}

// counted reports whether entries of a map of type t come and go (hash
// maps and tries); an array always holds max_entries and a ring buffer's
// max_entries is bytes, so those are not reported.
func counted(t ebpf.MapType) bool {
	switch t {
	case ebpf.Hash, ebpf.LRUHash, ebpf.PerCPUHash, ebpf.LRUCPUHash, ebpf.LPMTrie:
		return true
	}
	return false
}

// MapUsage counts the entries of every map of the pod, socket-LB and host
// programs whose entries come and go (hash maps and LPM tries; not arrays
// or ring buffers), sorted by name. It walks each map's keys: call it at
// the pace of an operator's `sluice status`, not per packet.
func (d *Datapath) MapUsage() ([]MapUsage, error) {
	maps := map[string]*ebpf.Map{}
	for _, objs := range []any{&d.objs.LxcMaps, &d.sock.SockMaps, &d.host.HostMaps} {
		collectMaps(objs, maps)
	}
	return CountMaps(maps)
}

// CountMaps returns the usage of the counted maps of maps (by name),
// sorted by name.
func CountMaps(maps map[string]*ebpf.Map) ([]MapUsage, error) {
	var (
		out  []MapUsage
		errs []error
	)
	for name, m := range maps {
		if m == nil || !counted(m.Type()) {
			continue
		}
		n, err := countKeys(m)
		if err != nil {
			errs = append(errs, fmt.Errorf("count %s: %w", name, err))
			continue
		}
		out = append(out, MapUsage{Name: name, Type: m.Type().String(), Entries: n, Capacity: int(m.MaxEntries())})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, errors.Join(errs...)
}

// collectMaps adds the *ebpf.Map fields of a bpf2go maps struct (by their
// ebpf tag, the map's name) to into.
func collectMaps(objs any, into map[string]*ebpf.Map) {
	v := reflect.ValueOf(objs).Elem()
	for i := 0; i < v.NumField(); i++ {
		m, ok := v.Field(i).Interface().(*ebpf.Map)
		if name := v.Type().Field(i).Tag.Get("ebpf"); ok && m != nil && name != "" {
			into[name] = m
		}
	}
}

// countKeys counts m's keys by walking them. A walk that meets a deleted
// key starts over in the kernel; it is bounded so that churn cannot keep it
// going.
func countKeys(m *ebpf.Map) (int, error) {
	limit := 2*int(m.MaxEntries()) + 1
	var key any
	n := 0
	for ; n < limit; n++ {
		next, err := m.NextKeyBytes(key)
		if err != nil {
			return 0, err
		}
		if next == nil {
			return n, nil
		}
		key = next
	}
	return min(n, int(m.MaxEntries())), nil
}
