package events

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/ring"
)

// DefaultHistory is the number of events a hub keeps.
const DefaultHistory = 8192

// Hub keeps recent process events and streams new ones to followers.
// Events are shared with every reader: nobody modifies one once published.
type Hub struct {
	ring *ring.Ring[*api.ProcessEvent]
	lost prometheus.Counter
}

// NewHub returns a hub keeping capacity events (DefaultHistory when <= 0)
// and registers its counter with reg (may be nil).
func NewHub(capacity int, reg prometheus.Registerer) *Hub {
	if capacity <= 0 {
		capacity = DefaultHistory
	}
	h := &Hub{lost: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sluice_process_events_follower_dropped_total",
		Help: "Process events not delivered to a slow follower of the local API.",
	})}
	h.ring = ring.New[*api.ProcessEvent](capacity, h.lost.Inc)
	if reg != nil {
		reg.MustRegister(h.lost)
	}
	return h
}

// Publish records ev and offers it to every follower; a follower that
// cannot keep up loses it (counted).
func (h *Hub) Publish(ev *api.ProcessEvent) { h.ring.Add(ev) }

// History returns the kept events the filter selects, oldest first, at most
// f.Last of them when f.Last > 0.
func (h *Hub) History(f api.EventFilter) []*api.ProcessEvent {
	return h.ring.History(f.Match, f.Last)
}

// Follow returns the kept events the filter selects and a channel of new
// events (unfiltered), atomically, so nothing falls in between. Call cancel
// when done.
func (h *Hub) Follow(f api.EventFilter, buffer int) (history []*api.ProcessEvent, ch <-chan *api.ProcessEvent, cancel func()) {
	return h.ring.Follow(f.Match, f.Last, buffer)
}
