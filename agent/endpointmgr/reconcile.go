package endpointmgr

import (
	"bytes"
	"errors"
	"net/netip"

	"github.com/sluicenet/sluice/datapath/endpointmap"
)

// ReconcileStats says what a reconciliation changed in the map.
type ReconcileStats struct {
	Written int // entries added or rewritten
	Deleted int // stray entries removed
}

// Reconcile makes sluice_endpoints_v1 hold exactly the desired endpoints:
// entries of unknown addresses are deleted, missing or different ones are
// (re)written. It continues past individual failures and returns them joined.
func (m *Manager) Reconcile() (ReconcileStats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var st ReconcileStats
	actual, err := m.dp.List()
	if err != nil {
		return st, err
	}
	inMap := make(map[netip.Addr]endpointmap.Endpoint, len(actual))
	var errs []error
	for _, a := range actual {
		if m.byIP[a.IP] == nil {
			if err := m.dp.Delete(a.IP); err != nil {
				errs = append(errs, err)
				continue
			}
			m.log.WithField("ipv4", a.IP).Info("Removed stray endpoint map entry")
			st.Deleted++
			continue
		}
		inMap[a.IP] = a
	}
	for ip, e := range m.byIP {
		want := e.datapath()
		if a, ok := inMap[ip]; ok && sameEntry(a, want) {
			continue
		}
		if err := m.dp.Upsert(want); err != nil {
			errs = append(errs, err)
			continue
		}
		st.Written++
	}
	return st, errors.Join(errs...)
}

func sameEntry(a, b endpointmap.Endpoint) bool {
	return a.IP == b.IP && a.Ifindex == b.Ifindex && a.ID == b.ID && a.Identity == b.Identity &&
		bytes.Equal(a.MAC, b.MAC) && bytes.Equal(a.NodeMAC, b.NodeMAC)
}
