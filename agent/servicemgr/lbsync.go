package servicemgr

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/sluicenet/sluice/agent/lb"
	"github.com/sluicenet/sluice/agent/lb/maglev"
	"github.com/sluicenet/sluice/agent/lb/translate"
	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/lbmap"
)

// Maps is the part of the datapath the LB sync writes: the services,
// backends and reverse-NAT maps.
type Maps interface {
	UpsertBackend(id uint32, b lbmap.Backend) error
	DeleteBackend(id uint32) error
	Backends() (map[uint32]lbmap.Backend, error)
	UpsertService(fe lbmap.Frontend, s lbmap.Service) error
	DeleteService(fe lbmap.Frontend) error
	Services() (map[lbmap.Frontend]lbmap.Service, error)
	UpsertRevNAT(id uint16, fe lbmap.Frontend) error
	DeleteRevNAT(id uint16) error
	RevNATs() (map[uint16]lbmap.Frontend, error)
	// SetMaglev swaps in the Maglev table of a service (backend IDs by
	// entry), DeleteMaglev removes it, MaglevIDs lists the services that
	// have one and Maglev reads one back.
	SetMaglev(revNATID uint16, table []uint32) (innerID uint32, err error)
	DeleteMaglev(revNATID uint16) error
	MaglevIDs() (map[uint16]uint32, error)
	Maglev(revNATID uint16) ([]uint32, error)
	// NodeAddrs lists the node's addresses (sluice_node_addrs_v1): a
	// hostPort on a given host address is served only on one of these.
	NodeAddrs() ([]netip.Addr, error)
}

// SyncStats says what one sync changed in the maps.
type SyncStats struct {
	Services, Backends int // desired counts
	UpsertedServices   int
	DeletedServices    int
	UpsertedBackends   int
	DeletedBackends    int
	Failed             int // entries that could not be written
	MapFull            bool
}

// lbSync writes desired services into the LB maps with idempotent upserts,
// deletes and prunes. It keeps backend and reverse-NAT IDs stable across
// agent restarts by adopting the IDs it finds in the pinned maps: conntrack
// entries refer to those IDs, so established flows survive a restart and a
// backend removal never disturbs flows to the others.
type lbSync struct {
	maps Maps

	mu       sync.Mutex
	backends map[backendKey]uint32            // backend → ID
	revNATs  map[lb.Frontend]uint16           // frontend → reverse-NAT ID
	written  map[lbmap.Frontend]lbmap.Service // last written service entries
	wBackend map[uint32]lbmap.Backend         // last written backends
	wRevNAT  map[uint16]lbmap.Frontend        // last written reverse-NAT entries
	desired  map[lb.Frontend]lb.Service       // by frontend
	refs     map[backendKey]int               // desired services using each backend
	failed   map[lb.Frontend]error            // desired services whose last write failed

	// maglevSize is the Maglev table size the programs were loaded with
	// (0: none), defaults the node's --lb-algorithm and --lb-mode: a
	// service whose algorithm (its own, else the default) is maglev gets a
	// table. wMaglev holds, by reverse-NAT id, what the
	// table last written was built from and the kernel ID of its inner
	// map; empty after a start, so the first sync rebuilds every table
	// (the size may have changed), each swapped in whole.
	maglevSize uint32
	defaults   translate.LBDefaults
	wMaglev    map[uint16]writtenMaglev

	nextBackend, nextRevNAT uint32 // next IDs to hand out
}

type backendKey struct {
	Addr  netip.AddrPort
	Proto lb.Proto
}

// newLBSync returns an LB sync that adopts the IDs already in the maps.
func newLBSync(maps Maps) (*lbSync, error) {
	r := &lbSync{maps: maps, desired: map[lb.Frontend]lb.Service{}, refs: map[backendKey]int{}, failed: map[lb.Frontend]error{},
		wMaglev: map[uint16]writtenMaglev{}}
	if err := r.adopt(); err != nil {
		return nil, err
	}
	return r, nil
}

// adopt reads the maps and rebuilds the ID allocations from them.
func (r *lbSync) adopt() error {
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
	r.wBackend = make(map[uint32]lbmap.Backend, len(bes))
	for id, b := range bes {
		r.backends[backendKey{netip.AddrPortFrom(b.Addr, b.Port), lb.Proto(b.Proto)}] = id
		r.wBackend[id] = b
	}
	r.revNATs = make(map[lb.Frontend]uint16, len(rns))
	for id, fe := range rns {
		r.revNATs[toFrontend(fe)] = id
	}
	r.wRevNAT = rns
	r.written = svcs
	for id := range bes {
		r.nextBackend = max(r.nextBackend, id+1)
	}
	for id := range rns {
		r.nextRevNAT = max(r.nextRevNAT, uint32(id)+1)
	}
	return nil
}

func toFrontend(fe lbmap.Frontend) lb.Frontend {
	return lb.Frontend{Addr: fe.Addr, Port: fe.Port, Proto: lb.Proto(fe.Proto)}
}

func fromFrontend(fe lb.Frontend) lbmap.Frontend {
	return lbmap.Frontend{Addr: fe.Addr, Port: fe.Port, Proto: uint8(fe.Proto)}
}

// Desired returns the desired state (given to Apply, then changed by
// ApplyChanged), sorted like translate's output.
func (r *lbSync) Desired() []lb.Service {
	r.mu.Lock()
	out := make([]lb.Service, 0, len(r.desired))
	for _, s := range r.desired {
		out = append(out, s)
	}
	r.mu.Unlock()
	slices.SortFunc(out, translate.CompareServices)
	return out
}

// Failed returns why a desired service is not in the maps as desired (its
// last write failed), or nil when it is.
func (r *lbSync) Failed(fe lb.Frontend) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed[fe]
}

// Backend returns the backend last written with id.
func (r *lbSync) Backend(id uint32) (lbmap.Backend, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.wBackend[id]
	return b, ok
}

// ServiceName returns the service of a desired frontend.
func (r *lbSync) ServiceName(fe lb.Frontend) (lb.ServiceName, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.desired[fe]
	return s.Name, ok
}

// RevNATID returns the reverse-NAT ID of a frontend, if allocated.
func (r *lbSync) RevNATID(fe lb.Frontend) (uint16, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.revNATs[fe]
	return id, ok
}

// BackendID returns the ID of a backend, if allocated.
func (r *lbSync) BackendID(addr netip.AddrPort, proto lb.Proto) (uint32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.backends[backendKey{addr, proto}]
	return id, ok
}

// applyPass collects what one Apply changed and the errors of single
// entries, which do not stop the rest.
type applyPass struct {
	st         SyncStats
	errs       []error
	wantRevNAT map[uint16]bool
	wantBE     map[uint32]bool
}

func (p *applyPass) fail(err error) {
	p.st.Failed++
	if errors.Is(err, datapath.ErrMapFull) {
		p.st.MapFull = true
	}
	p.errs = append(p.errs, err)
}

// Apply makes the maps hold exactly desired. Order matters for readers in
// the kernel and for full maps: services no longer desired are deleted
// first, backends are written before the services that point at them, and
// backends are deleted last. With full set, entries are rewritten even if
// the last write is believed current (the periodic resync repairs drift).
// Errors of single entries do not stop the rest; they are returned joined.
func (r *lbSync) Apply(desired []lb.Service, full bool) (SyncStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.desired = make(map[lb.Frontend]lb.Service, len(desired))
	r.refs = make(map[backendKey]int)
	for _, s := range desired {
		r.desired[s.Frontend] = s
		r.addRefs(s, 1)
	}
	p := &applyPass{wantRevNAT: map[uint16]bool{}, wantBE: map[uint32]bool{}}
	if full {
		if err := r.refresh(); err != nil {
			return p.st, err
		}
	}
	maglevIDs, err := r.maps.MaglevIDs()
	if err != nil {
		return p.st, fmt.Errorf("read Maglev tables: %w", err)
	}
	if full {
		r.forgetMissingMaglev(maglevIDs)
	}
	r.deleteServices(p, desired)
	for fe := range r.failed {
		if _, ok := r.desired[fe]; !ok {
			delete(r.failed, fe)
		}
	}
	for _, s := range desired {
		r.writeService(p, s)
	}
	p.st.Backends = len(p.wantBE)
	r.pruneRevNATs(p)
	r.pruneMaglev(p, maglevIDs)
	r.pruneBackends(p)
	return p.st, errors.Join(p.errs...)
}

// deleteServices deletes the service entries no longer desired. They go
// first: they free room for new ones in a full map, and nothing desired
// points at them.
func (r *lbSync) deleteServices(p *applyPass, desired []lb.Service) {
	want := make(map[lbmap.Frontend]bool, len(desired))
	for _, s := range desired {
		want[fromFrontend(s.Frontend)] = true
	}
	p.st.Services = len(want)
	for fe := range r.written {
		if want[fe] {
			continue
		}
		if err := r.maps.DeleteService(fe); err != nil {
			p.fail(fmt.Errorf("delete service %s: %w", toFrontend(fe), err))
			continue
		}
		delete(r.written, fe)
		p.st.DeletedServices++
	}
}

// writeService writes the reverse-NAT entry, the backends and then the
// service entry of one desired service, backends before the service entry
// pointing at them, and records whether the service is in the maps now.
func (r *lbSync) writeService(p *applyPass, s lb.Service) {
	if err := r.writeServiceEntries(p, s); err != nil {
		p.fail(err)
		r.failed[s.Frontend] = err
		return
	}
	delete(r.failed, s.Frontend)
}

func (r *lbSync) writeServiceEntries(p *applyPass, s lb.Service) error {
	fe := fromFrontend(s.Frontend)
	revID, err := r.revNATID(s.Frontend)
	if err != nil {
		return err
	}
	p.wantRevNAT[revID] = true
	if cur, seen := r.wRevNAT[revID]; !seen || cur != fe {
		if err := r.maps.UpsertRevNAT(revID, fe); err != nil {
			return fmt.Errorf("reverse NAT %d for %s: %w", revID, s.Frontend, err)
		}
		r.wRevNAT[revID] = fe
	}
	ids, err := r.writeBackends(p, s)
	if err != nil {
		return err
	}
	fl := flags(s)
	// One backend needs no table: any selection picks it (a hostPort, a
	// single-replica service), and the table would cost its 4 bytes per
	// entry for nothing.
	maglevOn := r.maglevSize != 0 && len(ids) > 1 && r.defaults.EffectiveAlgorithm(s) == lb.Maglev
	if maglevOn {
		// The table before the master entry that points the programs at it.
		if err := r.writeMaglev(revID, s, ids); err != nil {
			return err
		}
		fl |= lbmap.FlagMaglev
	}
	want := lbmap.Service{RevNATID: revID, Flags: fl, AffinityTimeout: s.Affinity, Backends: ids}
	if cur, seen := r.written[fe]; !seen || !sameService(cur, want) {
		if err := r.maps.UpsertService(fe, want); err != nil {
			return fmt.Errorf("service %s (%s): %w", s.Frontend, s.Name, err)
		}
		r.written[fe] = want
		p.st.UpsertedServices++
	}
	if !maglevOn {
		// After the master entry that no longer points at it.
		if _, ok := r.wMaglev[revID]; ok {
			if err := r.deleteMaglev(revID); err != nil {
				return err
			}
		}
	}
	return nil
}

// writtenMaglev is a Maglev table the LB sync wrote.
type writtenMaglev struct {
	sig     string // maglevSignature
	innerID uint32 // the kernel's ID of its inner map
}

// maglevSignature says what a Maglev table is built from: the table size
// and each backend's name (its address:port) with its ID.
func maglevSignature(size uint32, s lb.Service, ids []uint32) string {
	var b strings.Builder
	fmt.Fprint(&b, size)
	for i, be := range s.Backends {
		fmt.Fprintf(&b, " %s=%d", be.Addr, ids[i])
	}
	return b.String()
}

// writeMaglev builds the Maglev table of s (whose backends have ids) and
// swaps it in for service revID, unless the table there is built from the
// same backends.
func (r *lbSync) writeMaglev(revID uint16, s lb.Service, ids []uint32) error {
	sig := maglevSignature(r.maglevSize, s, ids)
	if r.wMaglev[revID].sig == sig {
		return nil
	}
	bes := make([]maglev.Backend, len(s.Backends))
	for i, b := range s.Backends {
		bes[i] = maglev.Backend{Name: b.Addr.String()}
	}
	idx, err := maglev.Build(bes, r.maglevSize)
	if err != nil {
		return fmt.Errorf("maglev table of %s (%s): %w", s.Frontend, s.Name, err)
	}
	table := make([]uint32, len(idx))
	for i, j := range idx {
		table[i] = ids[j]
	}
	innerID, err := r.maps.SetMaglev(revID, table)
	if err != nil {
		delete(r.wMaglev, revID)
		return fmt.Errorf("maglev table of %s (%s): %w", s.Frontend, s.Name, err)
	}
	r.wMaglev[revID] = writtenMaglev{sig: sig, innerID: innerID}
	return nil
}

func (r *lbSync) deleteMaglev(revID uint16) error {
	if err := r.maps.DeleteMaglev(revID); err != nil {
		return err
	}
	delete(r.wMaglev, revID)
	return nil
}

// forgetMissingMaglev drops what the LB sync believes written for tables
// that are not in the map as it wrote them (present: inner map IDs by
// service), missing or replaced by another inner map, so they are written
// again. An entry changed inside a table it wrote goes unnoticed: reading
// every table back on every resync would cost more than it is worth.
func (r *lbSync) forgetMissingMaglev(present map[uint16]uint32) {
	for id, w := range r.wMaglev {
		if present[id] != w.innerID {
			delete(r.wMaglev, id)
		}
	}
}

// pruneMaglev deletes the tables of present (listed before the pass) that
// no desired service uses: those of services gone while the agent was down,
// or all of them after a switch back to random selection.
func (r *lbSync) pruneMaglev(p *applyPass, present map[uint16]uint32) {
	for id := range present {
		if _, ok := r.wMaglev[id]; ok {
			continue
		}
		if err := r.maps.DeleteMaglev(id); err != nil {
			p.fail(fmt.Errorf("delete Maglev table %d: %w", id, err))
		}
	}
}

// writeBackends writes the backends of s that are not current and returns
// their IDs in order, or the first failure.
func (r *lbSync) writeBackends(p *applyPass, s lb.Service) ([]uint32, error) {
	ids := make([]uint32, 0, len(s.Backends))
	for _, b := range s.Backends {
		id, err := r.backendID(b.Addr, s.Frontend.Proto)
		if err != nil {
			return nil, err
		}
		p.wantBE[id] = true
		want := lbmap.Backend{Addr: b.Addr.Addr(), Port: b.Addr.Port(), Proto: uint8(s.Frontend.Proto), Terminating: b.State == lb.Terminating}
		if cur, seen := r.wBackend[id]; !seen || cur != want {
			if err := r.maps.UpsertBackend(id, want); err != nil {
				return nil, fmt.Errorf("backend %s: %w", b.Addr, err)
			}
			r.wBackend[id] = want
			p.st.UpsertedBackends++
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// pruneRevNATs deletes the reverse-NAT entries no longer desired.
func (r *lbSync) pruneRevNATs(p *applyPass) {
	for f, id := range r.revNATs {
		if p.wantRevNAT[id] {
			continue
		}
		if err := r.deleteMaglev(id); err != nil {
			p.fail(fmt.Errorf("delete Maglev table %d: %w", id, err))
			continue
		}
		if err := r.maps.DeleteRevNAT(id); err != nil {
			p.fail(fmt.Errorf("delete reverse NAT %d: %w", id, err))
			continue
		}
		delete(r.revNATs, f)
		delete(r.wRevNAT, id)
	}
}

// pruneBackends deletes the backends nobody points at any more.
func (r *lbSync) pruneBackends(p *applyPass) {
	for k, id := range r.backends {
		if p.wantBE[id] {
			continue
		}
		if err := r.maps.DeleteBackend(id); err != nil {
			p.fail(fmt.Errorf("delete backend %s: %w", k.Addr, err))
			continue
		}
		delete(r.backends, k)
		delete(r.wBackend, id)
		p.st.DeletedBackends++
	}
}

// refresh re-reads the maps so that Apply repairs anything changed behind
// the LB sync's back (entries deleted or altered by hand).
func (r *lbSync) refresh() error {
	bes, err := r.maps.Backends()
	if err != nil {
		return fmt.Errorf("read backends: %w", err)
	}
	svcs, err := r.maps.Services()
	if err != nil {
		return fmt.Errorf("read services: %w", err)
	}
	rns, err := r.maps.RevNATs()
	if err != nil {
		return fmt.Errorf("read reverse NAT: %w", err)
	}
	r.wBackend, r.wRevNAT = bes, rns
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

func flags(s lb.Service) lbmap.Flags {
	var f lbmap.Flags
	switch s.Kind {
	case lb.NodePort:
		f |= lbmap.FlagNodePort
	case lb.ExternalIP, lb.LoadBalancer:
		f |= lbmap.FlagExternal
	case lb.HostPort:
		// On every address of the node like a NodePort, or on one like an
		// ExternalIP: the programs serve it as they serve those.
		if s.Frontend.Addr.IsUnspecified() {
			f |= lbmap.FlagNodePort
		} else {
			f |= lbmap.FlagExternal
		}
	}
	if s.LocalOnly {
		f |= lbmap.FlagLocalOnly
	}
	if s.Affinity > 0 {
		f |= lbmap.FlagAffinity
	}
	// The Service's own mode, resolved for the frontend's protocol
	// (hybrid: DSR for TCP); without it the node's --lb-mode applies.
	if s.Mode != "" && s.Kind.External() {
		f |= lbmap.FlagModeSet
		if s.Mode.DSR(s.Frontend.Proto) {
			f |= lbmap.FlagDSR
		}
	}
	return f
}

func sameService(a, b lbmap.Service) bool {
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
