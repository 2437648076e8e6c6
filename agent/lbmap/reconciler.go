package lbmap

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/sluicenet/sluice/agent/lb"
	"github.com/sluicenet/sluice/datapath"
	dplb "github.com/sluicenet/sluice/datapath/lbmap"
)

// Maps is the part of the datapath the reconciler writes.
type Maps interface {
	UpsertBackend(id uint32, b dplb.Backend) error
	DeleteBackend(id uint32) error
	Backends() (map[uint32]dplb.Backend, error)
	UpsertService(fe dplb.Frontend, s dplb.Service) error
	DeleteService(fe dplb.Frontend) error
	Services() (map[dplb.Frontend]dplb.Service, error)
	UpsertRevNAT(id uint16, fe dplb.Frontend) error
	DeleteRevNAT(id uint16) error
	RevNATs() (map[uint16]dplb.Frontend, error)
}

// Stats says what one Apply changed.
type Stats struct {
	Services, Backends int // desired counts
	UpsertedServices   int
	DeletedServices    int
	UpsertedBackends   int
	DeletedBackends    int
	Failed             int // entries that could not be written
	MapFull            bool
}

// Reconciler writes desired services into the maps.
type Reconciler struct {
	maps Maps

	mu       sync.Mutex
	backends map[backendKey]uint32          // backend → ID
	revNATs  map[lb.Frontend]uint16         // frontend → reverse-NAT ID
	written  map[dplb.Frontend]dplb.Service // last written service entries
	wBackend map[uint32]dplb.Backend        // last written backends
	desired  []lb.Service

	nextBackend, nextRevNAT uint32 // next IDs to hand out
}

type backendKey struct {
	Addr  netip.AddrPort
	Proto lb.Proto
}

// New returns a reconciler that adopts the IDs already in the maps.
func New(maps Maps) (*Reconciler, error) {
	r := &Reconciler{maps: maps}
	if err := r.adopt(); err != nil {
		return nil, err
	}
	return r, nil
}

// adopt reads the maps and rebuilds the ID allocations from them.
func (r *Reconciler) adopt() error {
	bes, err := r.maps.Backends()
	if err != nil {
		return fmt.Errorf("read backends: %w", err)
	}
	rns, err := r.maps.RevNATs()
	if err != nil {
		return fmt.Errorf("read reverse NAT: %w", err)
	}
	svcs, err := r.maps.Services()
	if err != nil {
		return fmt.Errorf("read services: %w", err)
	}
	r.backends = make(map[backendKey]uint32, len(bes))
	r.wBackend = make(map[uint32]dplb.Backend, len(bes))
	for id, b := range bes {
		r.backends[backendKey{netip.AddrPortFrom(b.Addr, b.Port), lb.Proto(b.Proto)}] = id
		r.wBackend[id] = b
	}
	r.revNATs = make(map[lb.Frontend]uint16, len(rns))
	for id, fe := range rns {
		r.revNATs[toFrontend(fe)] = id
	}
	r.written = svcs
	for id := range bes {
		r.nextBackend = max(r.nextBackend, id+1)
	}
	for id := range rns {
		r.nextRevNAT = max(r.nextRevNAT, uint32(id)+1)
	}
	return nil
}

func toFrontend(fe dplb.Frontend) lb.Frontend {
	return lb.Frontend{Addr: fe.Addr, Port: fe.Port, Proto: lb.Proto(fe.Proto)}
}

func fromFrontend(fe lb.Frontend) dplb.Frontend {
	return dplb.Frontend{Addr: fe.Addr, Port: fe.Port, Proto: uint8(fe.Proto)}
}

// Desired returns the last desired state given to Apply.
func (r *Reconciler) Desired() []lb.Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]lb.Service(nil), r.desired...)
}

// BackendID returns the ID of a backend, if allocated.
func (r *Reconciler) BackendID(addr netip.AddrPort, proto lb.Proto) (uint32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.backends[backendKey{addr, proto}]
	return id, ok
}

// Apply makes the maps hold exactly desired. Order matters for readers in
// the kernel and for full maps: services no longer desired are deleted
// first, backends are written before the services that point at them, and
// backends are deleted last. With
// full set, entries are rewritten even if the last write is believed current
// (the periodic resync repairs drift). Errors of single entries do not stop
// the rest; they are returned joined.
func (r *Reconciler) Apply(desired []lb.Service, full bool) (Stats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.desired = append([]lb.Service(nil), desired...)
	var (
		st   Stats
		errs []error
	)
	fail := func(err error) {
		st.Failed++
		if errors.Is(err, datapath.ErrMapFull) {
			st.MapFull = true
		}
		errs = append(errs, err)
	}
	if full {
		if err := r.refresh(); err != nil {
			return st, err
		}
	}

	// 1. Services no longer desired go first: they free room for new ones
	// in a full map, and nothing desired points at them.
	wantServices := make(map[dplb.Frontend]bool, len(desired))
	for _, s := range desired {
		wantServices[fromFrontend(s.Frontend)] = true
	}
	for fe := range r.written {
		if wantServices[fe] {
			continue
		}
		if err := r.maps.DeleteService(fe); err != nil {
			fail(fmt.Errorf("delete service %s: %w", toFrontend(fe), err))
			continue
		}
		delete(r.written, fe)
		st.DeletedServices++
	}

	// 2. Backends, reverse NAT entries and service entries of every
	// desired service, backends before the services pointing at them.
	wantBackends := map[uint32]bool{}
	wantRevNAT := map[uint16]bool{}
	for _, s := range desired {
		fe := fromFrontend(s.Frontend)
		revID, err := r.revNATID(s.Frontend)
		if err != nil {
			fail(err)
			continue
		}
		wantRevNAT[revID] = true
		if err := r.maps.UpsertRevNAT(revID, fe); err != nil {
			fail(fmt.Errorf("reverse NAT %d for %s: %w", revID, s.Frontend, err))
			continue
		}
		ids := make([]uint32, 0, len(s.Backends))
		ok := true
		for _, b := range s.Backends {
			id, err := r.backendID(b.Addr, s.Frontend.Proto)
			if err != nil {
				fail(err)
				ok = false
				break
			}
			wantBackends[id] = true
			want := dplb.Backend{Addr: b.Addr.Addr(), Port: b.Addr.Port(), Proto: uint8(s.Frontend.Proto), Terminating: b.State == lb.Terminating}
			if cur, seen := r.wBackend[id]; !seen || cur != want {
				if err := r.maps.UpsertBackend(id, want); err != nil {
					fail(fmt.Errorf("backend %s: %w", b.Addr, err))
					ok = false
					break
				}
				r.wBackend[id] = want
				st.UpsertedBackends++
			}
			ids = append(ids, id)
		}
		if !ok {
			continue
		}
		// The service entry itself.
		want := dplb.Service{RevNATID: revID, Flags: flags(s), AffinityTimeout: s.Affinity, Backends: ids}
		if cur, seen := r.written[fe]; !seen || !sameService(cur, want) {
			if err := r.maps.UpsertService(fe, want); err != nil {
				fail(fmt.Errorf("service %s (%s): %w", s.Frontend, s.Name, err))
				continue
			}
			r.written[fe] = want
			st.UpsertedServices++
		}
	}
	st.Services, st.Backends = len(wantServices), len(wantBackends)

	// 3. Reverse NAT entries no longer desired.
	for f, id := range r.revNATs {
		if wantRevNAT[id] {
			continue
		}
		if err := r.maps.DeleteRevNAT(id); err != nil {
			fail(fmt.Errorf("delete reverse NAT %d: %w", id, err))
			continue
		}
		delete(r.revNATs, f)
	}
	// 4. Backends nobody points at any more.
	for k, id := range r.backends {
		if wantBackends[id] {
			continue
		}
		if err := r.maps.DeleteBackend(id); err != nil {
			fail(fmt.Errorf("delete backend %s: %w", k.Addr, err))
			continue
		}
		delete(r.backends, k)
		delete(r.wBackend, id)
		st.DeletedBackends++
	}
	return st, errors.Join(errs...)
}

// refresh re-reads the maps so that Apply repairs anything changed behind
// the reconciler's back (entries deleted or altered by hand).
func (r *Reconciler) refresh() error {
	bes, err := r.maps.Backends()
	if err != nil {
		return fmt.Errorf("read backends: %w", err)
	}
	svcs, err := r.maps.Services()
	if err != nil {
		return fmt.Errorf("read services: %w", err)
	}
	r.wBackend = bes
	// Backends present in the maps but unknown to the allocator get adopted
	// so that they are pruned (or reused) below.
	for id, b := range bes {
		k := backendKey{netip.AddrPortFrom(b.Addr, b.Port), lb.Proto(b.Proto)}
		if _, ok := r.backends[k]; !ok {
			r.backends[k] = id
		}
	}
	r.written = svcs
	return nil
}

func flags(s lb.Service) dplb.Flags {
	var f dplb.Flags
	switch s.Kind {
	case lb.NodePort:
		f |= dplb.FlagNodePort
	case lb.ExternalIP, lb.LoadBalancer:
		f |= dplb.FlagExternal
	}
	if s.LocalOnly {
		f |= dplb.FlagLocalOnly
	}
	if s.Affinity > 0 {
		f |= dplb.FlagAffinity
	}
	return f
}

func sameService(a, b dplb.Service) bool {
	if a.RevNATID != b.RevNATID || a.Flags != b.Flags || a.AffinityTimeout != b.AffinityTimeout || len(a.Backends) != len(b.Backends) {
		return false
	}
	for i := range a.Backends {
		if a.Backends[i] != b.Backends[i] {
			return false
		}
	}
	return true
}

// backendID returns the ID of a backend, allocating a new one. IDs are
// handed out in increasing order and not reused until they wrap: a conntrack
// entry that still names a deleted backend's ID must not find a different
// backend under it.
func (r *Reconciler) backendID(addr netip.AddrPort, proto lb.Proto) (uint32, error) {
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

func (r *Reconciler) backendInUse(id uint32) bool {
	for _, v := range r.backends {
		if v == id {
			return true
		}
	}
	return false
}

// revNATID returns the reverse-NAT ID of a frontend, allocating a new one the
// same way as backend IDs.
func (r *Reconciler) revNATID(fe lb.Frontend) (uint16, error) {
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
