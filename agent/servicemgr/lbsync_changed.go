package servicemgr

import (
	"errors"
	"fmt"

	"github.com/sluicenet/sluice/agent/lb"
)

// ApplyChanged changes the desired state for some frontends only and writes
// what that changes in the maps: each service of upserts replaces the one
// desired for its frontend, each frontend of gone is no longer desired.
// Unchanged entries are not rewritten, and only the backends and
// reverse-NAT entries these frontends no longer use are pruned; nothing else
// is read or written. The order is Apply's: service entries deleted first,
// backends written before the services pointing at them, backends deleted
// last. Errors of single entries do not stop the rest; a full Apply repairs
// whatever failed.
func (r *lbSync) ApplyChanged(upserts []lb.Service, gone []lb.Frontend) (SyncStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := &applyPass{wantRevNAT: map[uint16]bool{}, wantBE: map[uint32]bool{}}
	var released []backendKey
	release := func(fe lb.Frontend) {
		old, ok := r.desired[fe]
		if !ok {
			return
		}
		r.addRefs(old, -1)
		for _, b := range old.Backends {
			released = append(released, backendKey{b.Addr, fe.Proto})
		}
	}
	for _, fe := range gone {
		release(fe)
		delete(r.desired, fe)
		delete(r.failed, fe)
		lfe := fromFrontend(fe)
		if _, ok := r.written[lfe]; !ok {
			continue
		}
		if err := r.maps.DeleteService(lfe); err != nil {
			p.fail(fmt.Errorf("delete service %s: %w", fe, err))
			continue
		}
		delete(r.written, lfe)
		p.st.DeletedServices++
	}
	for _, s := range upserts {
		release(s.Frontend)
		r.desired[s.Frontend] = s
		r.addRefs(s, 1)
		r.writeService(p, s)
	}
	for _, fe := range gone {
		if _, ok := r.desired[fe]; ok {
			continue // given in upserts too
		}
		id, ok := r.revNATs[fe]
		if !ok {
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
		delete(r.revNATs, fe)
		delete(r.wRevNAT, id)
	}
	r.releaseBackends(p, released)
	p.st.Services, p.st.Backends = len(r.desired), len(r.refs)
	return p.st, errors.Join(p.errs...)
}

// releaseBackends deletes the backends of keys that no desired service
// uses any more.
func (r *lbSync) releaseBackends(p *applyPass, keys []backendKey) {
	for _, k := range keys {
		if r.refs[k] > 0 {
			continue
		}
		delete(r.refs, k)
		id, ok := r.backends[k]
		if !ok {
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

// addRefs counts (n = 1) or uncounts (n = -1) the backends of s as used.
func (r *lbSync) addRefs(s lb.Service, n int) {
	for _, b := range s.Backends {
		r.refs[backendKey{b.Addr, s.Frontend.Proto}] += n
	}
}
