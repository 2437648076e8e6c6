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
)

// Datapath is an in-memory endpoint map with counters. It implements
// endpoint.Datapath.
type Datapath struct {
	mu       sync.Mutex
	entries  map[netip.Addr]datapath.Endpoint
	counters []datapath.Counter
	// MaxEntries makes UpsertEndpoint of a new key fail with
	// datapath.ErrMapFull once reached (0: unlimited).
	MaxEntries int
	// FailUpsert, when set, is returned by every UpsertEndpoint.
	FailUpsert error
}

// New returns an empty fake datapath.
func New() *Datapath {
	return &Datapath{entries: make(map[netip.Addr]datapath.Endpoint)}
}

// UpsertEndpoint implements endpoint.Datapath.
func (d *Datapath) UpsertEndpoint(ep datapath.Endpoint) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.FailUpsert != nil {
		return d.FailUpsert
	}
	if _, ok := d.entries[ep.IP]; !ok && d.MaxEntries > 0 && len(d.entries) >= d.MaxEntries {
		return fmt.Errorf("update sluice_endpoints: %w", datapath.ErrMapFull)
	}
	d.entries[ep.IP] = ep
	return nil
}

// DeleteEndpoint implements endpoint.Datapath.
func (d *Datapath) DeleteEndpoint(ip netip.Addr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !ip.Is4() {
		return errors.New("not IPv4")
	}
	delete(d.entries, ip)
	return nil
}

// Endpoints implements endpoint.Datapath.
func (d *Datapath) Endpoints() ([]datapath.Endpoint, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]datapath.Endpoint, 0, len(d.entries))
	for _, e := range d.entries {
		out = append(out, e)
	}
	return out, nil
}

// Entry returns the entry of ip, if any.
func (d *Datapath) Entry(ip string) (datapath.Endpoint, bool) {
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
func (d *Datapath) AddCounter(c datapath.Counter) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.counters = append(d.counters, c)
}

// Counters implements endpoint.Datapath.
func (d *Datapath) Counters() ([]datapath.Counter, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]datapath.Counter(nil), d.counters...), nil
}

// DeleteCounters implements endpoint.Datapath.
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
