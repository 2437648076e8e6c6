// Package maputil holds what every map family package of the datapath needs:
// the conversions between Go values and the network byte order the C side
// stores (__be32 addresses, __be16 ports), the map-full error and the clock
// the programs set lifetimes by.
package maputil

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ErrMapFull is returned when a map has no room for a new entry (re-exported
// as datapath.ErrMapFull).
var ErrMapFull = errors.New("bpf map is full")

// Be32 returns the IPv4 address as the uint32 whose in-memory (little-endian)
// bytes are the address in network order, as the C side stores __be32.
func Be32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.LittleEndian.Uint32(b[:])
}

// AddrFromBe32 is the inverse of Be32.
func AddrFromBe32(v uint32) netip.Addr {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// Be16 converts a port to the __be16 the C side stores.
func Be16(p uint16) uint16 { return p<<8 | p>>8 }

// PortFromBe16 is the inverse of Be16.
func PortFromBe16(v uint16) uint16 { return v<<8 | v>>8 }

// AddrPort builds an address and port from their stored (network order) form.
func AddrPort(addr uint32, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(AddrFromBe32(addr), PortFromBe16(port))
}

// CheckV4 fails when a is not an IPv4 address; what names it in the error.
func CheckV4(what string, a netip.Addr) error {
	if !a.Is4() {
		return fmt.Errorf("%s address %s is not IPv4", what, a)
	}
	return nil
}

// UpdateError wraps a failed update of map name, as ErrMapFull when the
// kernel found the map full (E2BIG from a hash map, ENOSPC from an LPM
// trie), and counts that in FullCounts under name.
func UpdateError(name string, err error) error {
	if errors.Is(err, unix.E2BIG) || errors.Is(err, unix.ENOSPC) {
		v, _ := fullCounts.LoadOrStore(name, new(atomic.Uint64))
		v.(*atomic.Uint64).Add(1)
		return fmt.Errorf("update %s: %w", name, ErrMapFull)
	}
	return fmt.Errorf("update %s: %w", name, err)
}

// fullCounts maps a map name to the *atomic.Uint64 of its writes that
// found it full.
var fullCounts sync.Map

// FullCounts returns, by map name, how many writes of this process found
// the map full (maps never found full are absent).
func FullCounts() map[string]uint64 {
	out := map[string]uint64{}
	fullCounts.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}

// BootSeconds reads CLOCK_BOOTTIME in whole seconds, the clock the programs
// set conntrack and NAT lifetimes by (bpf_ktime_get_boot_ns).
func BootSeconds() (int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, fmt.Errorf("read CLOCK_BOOTTIME: %w", err)
	}
	return ts.Sec, nil
}

// SumPerCPU sums the per-CPU values of a PERCPU map entry.
func SumPerCPU(vals []uint64) uint64 {
	var sum uint64
	for _, v := range vals {
		sum += v
	}
	return sum
}

// Delete deletes key from m; a missing key is not an error (every owner's
// delete is idempotent).
func Delete(m *ebpf.Map, key any) error {
	if err := m.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

// SlotBitsChanged returns the slot bits that differ between two sets of
// rule map entries whose values are slot bits (a key in one set only
// changes all its bits).
func SlotBitsChanged[K comparable](cur, want map[K]uint64) uint64 {
	var changed uint64
	for k, v := range cur {
		changed |= v ^ want[k]
	}
	for k, v := range want {
		if _, ok := cur[k]; !ok {
			changed |= v
		}
	}
	return changed
}
