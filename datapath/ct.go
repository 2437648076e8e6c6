package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Conntrack flags (mirror bpf/lib/conntrack.h).
const (
	ctTupleService = 1 << 0 // CT_F_SERVICE
	ctEntryClosing = 1 << 0 // CT_E_CLOSING
	ctEntryPolicy  = 1 << 4 // CT_E_POLICY
)

// CTEntry is one conntrack entry. Src and Dst are in the client's
// orientation: for a service entry Dst is the frontend, otherwise the backend.
type CTEntry struct {
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

// bootSeconds reads CLOCK_BOOTTIME in whole seconds, the clock the programs
// set conntrack lifetimes by (bpf_ktime_get_boot_ns).
func bootSeconds() (int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, fmt.Errorf("read CLOCK_BOOTTIME: %w", err)
	}
	return ts.Sec, nil
}

// CTEntries lists the conntrack table.
func (d *Datapath) CTEntries() ([]CTEntry, error) {
	now, err := bootSeconds()
	if err != nil {
		return nil, err
	}
	var (
		key lxcCt4Tuple
		val lxcCt4Entry
		out []CTEntry
	)
	it := d.objs.SluiceCt4V1.Iterate()
	for it.Next(&key, &val) {
		out = append(out, CTEntry{
			Src:           netip.AddrPortFrom(addrFromBe32(key.Saddr), portFromBe16(key.Sport)),
			Dst:           netip.AddrPortFrom(addrFromBe32(key.Daddr), portFromBe16(key.Dport)),
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

// CTGC deletes the expired conntrack entries and returns how many it deleted.
// An entry is re-read right before its deletion, so one a packet refreshed
// since the scan is kept (the window left is one lookup-to-delete).
func (d *Datapath) CTGC() (deleted int, err error) {
	now, err := bootSeconds()
	if err != nil {
		return 0, err
	}
	var (
		key     lxcCt4Tuple
		val     lxcCt4Entry
		expired []lxcCt4Tuple
	)
	m := d.objs.SluiceCt4V1
	it := m.Iterate()
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
		if err := m.Lookup(&expired[i], &val); err != nil || int64(val.Lifetime) >= now {
			continue
		}
		if err := m.Delete(&expired[i]); err != nil {
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
