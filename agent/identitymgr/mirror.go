package identitymgr

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sluicenet/sluice/agent/reconcile"
)

// MirrorStats says what one mirror pass changed in the kernel map.
type MirrorStats struct {
	Upserted, Deleted int
}

// Mirror makes the datapath's IP cache map equal to the IP cache: stray
// entries are deleted, missing or different ones written. It continues past
// individual failures and returns them joined.
func (m *Manager) Mirror() (MirrorStats, error) {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	var st MirrorStats
	have, err := m.dp.List()
	if err != nil {
		return st, fmt.Errorf("dump ip cache map: %w", err)
	}
	want := m.ipc.Snapshot()
	var errs []error
	for p := range have {
		if _, ok := want[p]; ok {
			continue
		}
		if err := m.dp.Delete(p); err != nil {
			errs = append(errs, fmt.Errorf("delete ip cache entry %s: %w", p, err))
			continue
		}
		st.Deleted++
	}
	for p, e := range want {
		if id, ok := have[p]; ok && id == uint32(e.ID) {
			continue
		}
		if err := m.dp.Upsert(p, uint32(e.ID)); err != nil {
			errs = append(errs, fmt.Errorf("write ip cache entry %s: %w", p, err))
			continue
		}
		st.Upserted++
	}
	return st, errors.Join(errs...)
}

// Run is the owner loop of identities and the IP cache map
// (agent/reconcile): it syncs identities and mirrors the IP cache into the
// datapath at start, on every change, with a full resync every
// ResyncInterval and with exponential backoff after failures; a change of
// the IP cache alone only mirrors it. It collects unused identities every
// minute, until ctx ends. onErr (may be nil) sees every failure.
func (m *Manager) Run(ctx context.Context, onErr func(error)) {
	cfg := reconcile.Config{
		Trigger: m.trigger, Resync: m.cfg.ResyncInterval, Status: &m.loop,
		Tasks: []reconcile.Task{{Every: time.Minute, Do: func() { m.collect(ctx) }}},
	}
	reconcile.Loop(ctx, cfg, func(full bool) error {
		err := m.pass(ctx, full || m.dirty.Swap(false))
		if err != nil {
			if onErr != nil {
				onErr(err)
			}
			m.log.WithError(err).Warn("Identity sync incomplete; retrying")
		}
		return err
	})
}

// LoopStatus returns the outcomes of the owner loop's passes.
func (m *Manager) LoopStatus() reconcile.LoopStatus { return m.loop.Get() }

// pass syncs identities (if sync is set) and mirrors the IP cache, and
// records the outcome for Errors.
func (m *Manager) pass(ctx context.Context, sync bool) error {
	var err error
	if sync {
		err = m.Sync(ctx)
	}
	st, merr := m.Mirror()
	err = errors.Join(err, merr)
	if st.Upserted+st.Deleted > 0 {
		m.log.WithFields(logrus.Fields{"upserted": st.Upserted, "deleted": st.Deleted}).Debug("IP cache map updated")
	}
	m.mu.Lock()
	m.lastErr = err
	if err != nil {
		m.errCount++
	}
	m.mu.Unlock()
	return err
}

// collect forgets identities nobody has referenced for the grace period.
func (m *Manager) collect(ctx context.Context) {
	if n, err := m.alloc.GC(ctx); err != nil {
		m.log.WithError(err).Warn("Identity garbage collection failed")
	} else if n > 0 {
		m.log.WithField("collected", n).Debug("Unused identities collected")
	}
}

// hostPrefix returns the host prefix of an address.
func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }
