// Package endpointtest provides an in-memory stand-in for the datapath's
// endpoint and metrics maps, for unprivileged tests of the endpoint manager
// and the API server.
package endpointtest

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/endpointmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
)

// Datapath is an in-memory endpoint map with counters. It implements
// endpointmgr.EndpointMap and endpointmgr.CounterMap.
type Datapath struct {
	mu       sync.Mutex
	entries  map[netip.Addr]endpointmap.Endpoint
	counters []metricsmap.Counter
	// MaxEntries makes Upsert of a new key fail with
	// datapath.ErrMapFull once reached (0: unlimited).
	MaxEntries int
	// FailUpsert, when set, is returned by every Upsert.
	FailUpsert error
}

// New returns an empty fake datapath.
func New() *Datapath {
	return &Datapath{entries: make(map[netip.Addr]endpointmap.Endpoint)}
}

// Upsert implements endpointmgr.EndpointMap.
func (d *Datapath) Upsert(ep endpointmap.Endpoint) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.FailUpsert != nil {
		return d.FailUpsert
	}
	if _, ok := d.entries[ep.IP]; !ok && d.MaxEntries > 0 && len(d.entries) >= d.MaxEntries {
		return fmt.Errorf("update sluice_endpoints_v1: %w", datapath.ErrMapFull)
	}
	d.entries[ep.IP] = ep
	return nil
}

// Delete implements endpointmgr.EndpointMap.
func (d *Datapath) Delete(ip netip.Addr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !ip.Is4() {
		return errors.New("not IPv4")
	}
	delete(d.entries, ip)
	return nil
}

// List implements endpointmgr.EndpointMap.
func (d *Datapath) List() ([]endpointmap.Endpoint, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]endpointmap.Endpoint, 0, len(d.entries))
	for _, e := range d.entries {
		out = append(out, e)
	}
	return out, nil
}

// Entry returns the entry of ip, if any.
func (d *Datapath) Entry(ip string) (endpointmap.Endpoint, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.entries[netip.MustParseAddr(ip)]
	return e, ok
}

// Len returns the number of entries.
func (d *Datapath) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.entries)
}

// AddCounter adds a counter entry, as the BPF programs would.
func (d *Datapath) AddCounter(c metricsmap.Counter) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.counters = append(d.counters, c)
}

// Counters implements endpointmgr.CounterMap.
func (d *Datapath) Counters() ([]metricsmap.Counter, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]metricsmap.Counter(nil), d.counters...), nil
}

// DeleteCounters implements endpointmgr.CounterMap.
func (d *Datapath) DeleteCounters(ifindex uint32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	kept := d.counters[:0]
	for _, c := range d.counters {
		if c.Ifindex != ifindex {
			kept = append(kept, c)
		}
	}
	d.counters = kept
	return nil
}
