// Package ctmap is the datapath's connection tracking: the conntrack table
// (sluice_ct4_v1) the pod and host programs share, its garbage collection,
// and the NodePort NAT table (sluice_snat4_v1).
package ctmap

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/maputil"
)

// Map is the conntrack and NAT tables of a loaded datapath.
type Map struct {
	ct, snat *ebpf.Map
}

// New returns the handle of sluice_ct4_v1 and sluice_snat4_v1.
func New(ct, snat *ebpf.Map) *Map { return &Map{ct: ct, snat: snat} }

// Conntrack flags (mirror bpf/lib/conntrack.h).
const (
	ctTupleService = 1 << 0 // CT_F_SERVICE
	ctEntryClosing = 1 << 0 // CT_E_CLOSING
	ctEntryPolicy  = 1 << 4 // CT_E_POLICY
)

// Entry is one conntrack entry. Src and Dst are in the client's
// orientation: for a service entry Dst is the frontend, otherwise the backend.
type Entry struct {
	Src, Dst  netip.AddrPort
	Proto     uint8
	Service   bool // the entry on the frontend tuple (pre-DNAT)
	BackendID uint32
	RevNATID  uint16
	Expires   time.Duration // remaining lifetime; negative once expired
	Closing   bool
	// PolicyAllowed: policy allowed the flow, so its later packets and
	// replies pass by conntrack (set on a backend or plain entry).
	PolicyAllowed bool
	Packets       uint64 // both directions
}

// Entries lists the conntrack table.
func (m *Map) Entries() ([]Entry, error) {
	now, err := maputil.BootSeconds()
	if err != nil {
		return nil, err
	}
	var (
		key bpfgen.LxcCt4Tuple
		val bpfgen.LxcCt4Entry
		out []Entry
	)
	it := m.ct.Iterate()
	for it.Next(&key, &val) {
		out = append(out, Entry{
			Src:           maputil.AddrPort(key.Saddr, key.Sport),
			Dst:           maputil.AddrPort(key.Daddr, key.Dport),
			Proto:         key.Proto,
			Service:       key.Flags&ctTupleService != 0,
			BackendID:     val.BackendId,
			RevNATID:      val.RevNatId,
			Expires:       time.Duration(int64(val.Lifetime)-now) * time.Second,
			Closing:       val.Flags&ctEntryClosing != 0,
			PolicyAllowed: val.Flags&ctEntryPolicy != 0,
			Packets:       val.TxPackets + val.RxPackets,
		})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate sluice_ct4_v1: %w", err)
	}
	return out, nil
}

// RevNATBackends lists the backend address (maputil.Be32) of every entry
// whose replies the pod programs reverse-NAT (a backend entry with a
// reverse-NAT id), for lbmap.SetBackendFilter.
func (m *Map) RevNATBackends() ([]uint32, error) {
	var (
		key bpfgen.LxcCt4Tuple
		val bpfgen.LxcCt4Entry
		out []uint32
	)
	it := m.ct.Iterate()
	for it.Next(&key, &val) {
		if key.Flags&ctTupleService == 0 && val.RevNatId != 0 {
			out = append(out, key.Daddr)
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate sluice_ct4_v1: %w", err)
	}
	return out, nil
}

// ServiceBackend returns the backend ID the per-packet load balancer chose
// for the flow src -> frontend (its service entry), if there is one.
func (m *Map) ServiceBackend(proto uint8, src, frontend netip.AddrPort) (uint32, bool) {
	if !src.Addr().Unmap().Is4() || !frontend.Addr().Unmap().Is4() {
		return 0, false
	}
	key := bpfgen.LxcCt4Tuple{
		Saddr: maputil.Be32(src.Addr().Unmap()), Daddr: maputil.Be32(frontend.Addr().Unmap()),
		Sport: maputil.Be16(src.Port()), Dport: maputil.Be16(frontend.Port()),
		Proto: proto, Flags: ctTupleService,
	}
	var val bpfgen.LxcCt4Entry
	if err := m.ct.Lookup(&key, &val); err != nil || val.BackendId == 0 {
		return 0, false
	}
	return val.BackendId, true
}

// GC deletes the expired conntrack entries and returns how many it deleted.
// An entry is re-read right before its deletion, so one a packet refreshed
// since the scan is kept (the window left is one lookup-to-delete).
func (m *Map) GC() (deleted int, err error) {
	now, err := maputil.BootSeconds()
	if err != nil {
		return 0, err
	}
	var (
		key     bpfgen.LxcCt4Tuple
		val     bpfgen.LxcCt4Entry
		expired []bpfgen.LxcCt4Tuple
	)
	ct := m.ct
	it := ct.Iterate()
	for it.Next(&key, &val) {
		if int64(val.Lifetime) < now {
			expired = append(expired, key)
		}
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("iterate sluice_ct4_v1: %w", err)
	}
	var errs []error
	for i := range expired {
		if err := ct.Lookup(&expired[i], &val); err != nil || int64(val.Lifetime) >= now {
			continue
		}
		if err := ct.Delete(&expired[i]); err != nil {
			if !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		deleted++
	}
	if len(errs) > 0 {
		return deleted, fmt.Errorf("delete expired conntrack entries: %w", errors.Join(errs...))
	}
	return deleted, nil
}
