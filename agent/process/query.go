package process

import (
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/procsensor"
)

// List returns the processes in the cache, oldest first (exited ones that a
// live descendant still needs included, with Exited set).
func (m *Manager) List() []*api.Process {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cache.list()
}

// Get returns the process of an exec id and its cached ancestors, parent
// first; ok is false when the process is not in the cache.
func (m *Manager) Get(execID string) (proc *api.Process, ancestors []*api.Process, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cache.byExecID(execID)
}

// Lookup returns the cached process of a sensor key.
func (m *Manager) Lookup(k procsensor.Key) (*api.Process, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.cache.byKey[k]; e != nil {
		return e.proc, true
	}
	return nil, false
}

// ProcessForFlow names the local process of a flow (either direction) from
// the connections processes opened; for a UDP socket whose source port was
// not bound when it sent, the flow matches without its source port.
func (m *Manager) ProcessForFlow(proto uint8, src, dst netip.AddrPort) (api.ProcessRef, bool) {
	return m.conns.lookup(proto, src, dst)
}

func (m *Manager) collectors() []prometheus.Collector {
	cs := []prometheus.Collector{
		m.misses, m.heldOut,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_process_cache_size", Help: "Processes in the process cache.",
		}, func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			return float64(m.cache.len())
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sluice_process_cache_evictions_total",
			Help: "Processes evicted from the full process cache (exited ones first, then least recently used).",
		}, func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			return float64(m.cache.evictions)
		}),
	}
	if m.cfg.Lost != nil {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sluice_process_events_lost_total",
			Help: "Process events the sensor could not send (ring buffer full).",
		}, func() float64 { return float64(m.cfg.Lost()) }))
	}
	return cs
}
