package servicemgr

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/sluicenet/sluice/agent/lb"
)

// backendID returns the ID of a backend, allocating a new one. IDs are
// handed out in increasing order and not reused until they wrap: a conntrack
// entry that still names a deleted backend's ID must not find a different
// backend under it.
func (r *lbSync) backendID(addr netip.AddrPort, proto lb.Proto) (uint32, error) {
	k := backendKey{addr, proto}
	if id, ok := r.backends[k]; ok {
		return id, nil
	}
	id, err := allocate(&r.nextBackend, maxBackendID, func(id uint32) bool { _, used := r.wBackend[id]; return used || r.backendInUse(id) })
	if err != nil {
		return 0, fmt.Errorf("backend %s: %w", addr, err)
	}
	r.backends[k] = id
	return id, nil
}

func (r *lbSync) backendInUse(id uint32) bool {
	for _, v := range r.backends {
		if v == id {
			return true
		}
	}
	return false
}

// revNATID returns the reverse-NAT ID of a frontend, allocating a new one the
// same way as backend IDs.
func (r *lbSync) revNATID(fe lb.Frontend) (uint16, error) {
	if id, ok := r.revNATs[fe]; ok {
		return id, nil
	}
	used := func(id uint32) bool {
		for _, v := range r.revNATs {
			if uint32(v) == id {
				return true
			}
		}
		return false
	}
	id, err := allocate(&r.nextRevNAT, maxRevNATID, used)
	if err != nil {
		return 0, fmt.Errorf("frontend %s: %w", fe, err)
	}
	r.revNATs[fe] = uint16(id)
	return uint16(id), nil
}

const (
	maxBackendID = 1<<31 - 1
	maxRevNATID  = 1<<16 - 1
)

var errNoIDs = errors.New("no free IDs")

// allocate returns *next and advances it. When *next passed max it starts
// over at 1 and skips IDs for which inUse is true (a linear scan, only
// after a wrap).
func allocate(next *uint32, max uint32, inUse func(uint32) bool) (uint32, error) {
	if *next == 0 {
		*next = 1
	}
	if *next <= max {
		id := *next
		*next++
		return id, nil
	}
	for id := uint32(1); id <= max; id++ {
		if !inUse(id) {
			return id, nil
		}
	}
	return 0, errNoIDs
}
