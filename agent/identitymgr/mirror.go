package identitymgr

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/sirupsen/logrus"
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

// Run syncs identities on every change and mirrors the IP cache into the
// datapath, with a full resync every ResyncInterval and exponential backoff
// after failures, until ctx ends. onErr (may be nil) sees every failure.
func (m *Manager) Run(ctx context.Context, onErr func(error)) {
	resync := time.NewTicker(m.cfg.ResyncInterval)
	defer resync.Stop()
	gc := time.NewTicker(time.Minute)
	defer gc.Stop()
	var retry <-chan time.Time
	backoff := 100 * time.Millisecond
	pass := func(sync bool) {
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
		if err != nil {
			if onErr != nil {
				onErr(err)
			}
			m.log.WithError(err).Warn("Identity sync incomplete; retrying")
			retry = time.After(backoff)
			backoff = min(backoff*2, 30*time.Second)
			return
		}
		retry, backoff = nil, 100*time.Millisecond
	}
	pass(true)
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.trigger:
			pass(true)
		case <-m.mirror:
			pass(false)
		case <-retry:
			pass(true)
		case <-resync.C:
			pass(true)
		case <-gc.C:
			if n, err := m.alloc.GC(ctx); err != nil {
				m.log.WithError(err).Warn("Identity garbage collection failed")
			} else if n > 0 {
				m.log.WithField("collected", n).Debug("Unused identities collected")
			}
		}
	}
}

// hostPrefix returns the host prefix of an address.
func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }
