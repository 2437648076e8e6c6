package events

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/sluicenet/sluice/agent/api"
)

// Config configures a Pipeline.
type Config struct {
	// History is the number of events the hub keeps (DefaultHistory when
	// <= 0).
	History int
	// RateLimit is the number of events per second let through per pod
	// (0: no limit).
	RateLimit int
	// Export, when set, writes events to a file.
	Export *ExportConfig
	// Registerer takes the pipeline's metrics (may be nil).
	Registerer prometheus.Registerer
	Log        logrus.FieldLogger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Pipeline takes every process event: the rate limiter first, then the
// counters, then the hub and the exporter. It implements the process
// manager's sink.
type Pipeline struct {
	hub      *Hub
	limiter  *RateLimiter // nil: no limit
	exporter *Exporter    // nil: no export
	log      logrus.FieldLogger
	now      func() time.Time

	events  *prometheus.CounterVec
	dropped *prometheus.CounterVec

	exportFailing atomic.Bool
	// delivered and limited count what the counters above count, in all
	// (Counts).
	delivered, limited atomic.Uint64
}

// NewPipeline returns the pipeline of cfg; it opens the export file.
func NewPipeline(cfg Config) (*Pipeline, error) {
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Pipeline{
		hub: NewHub(cfg.History, cfg.Registerer), log: cfg.Log, now: cfg.Now,
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_process_events_total",
			Help: "Process events published (after the rate limit), by type and pod namespace (\"\" on the host).",
		}, []string{"type", "namespace"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_process_ratelimit_dropped_total",
			Help: "Process events dropped by the per-pod rate limit, by pod namespace (\"\" on the host).",
		}, []string{"namespace"}),
	}
	if cfg.RateLimit > 0 {
		p.limiter = NewRateLimiter(cfg.RateLimit)
	}
	if cfg.Export != nil {
		x, err := NewExporter(*cfg.Export)
		if err != nil {
			return nil, err
		}
		p.exporter = x
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(p.events, p.dropped)
	}
	return p, nil
}

// Hub is where the pipeline keeps recent events (for the local API).
func (p *Pipeline) Hub() *Hub { return p.hub }

// Publish takes one event. The pipeline keeps ev: the caller must not
// modify it afterwards.
func (p *Pipeline) Publish(ev *api.ProcessEvent) {
	if p.limiter != nil {
		pass, throttle := p.limiter.Admit(ev, p.now())
		for _, t := range throttle {
			p.deliver(t)
		}
		if !pass {
			ns, _ := ev.PodName()
			p.dropped.WithLabelValues(ns).Inc()
			p.limited.Add(1)
			return
		}
	}
	p.deliver(ev)
}

// deliver counts ev and hands it to the hub and the exporter.
func (p *Pipeline) deliver(ev *api.ProcessEvent) {
	ns, _ := ev.PodName()
	p.events.WithLabelValues(ev.Kind(), ns).Inc()
	p.delivered.Add(1)
	p.hub.Publish(ev)
	if p.exporter != nil {
		p.exported(p.exporter.Export(ev))
	}
}

// Counts returns how many events were published (throttle events
// included) and how many the rate limit dropped, since the start.
func (p *Pipeline) Counts() (published, rateLimited uint64) {
	return p.delivered.Load(), p.limited.Load()
}

// exported logs the first failure of a streak of export failures and the
// recovery, not every failed write.
func (p *Pipeline) exported(err error) {
	was := p.exportFailing.Swap(err != nil)
	switch {
	case err != nil && !was:
		p.log.WithError(err).Warn("Process event export failing; events are not written until it recovers")
	case err == nil && was:
		p.log.Info("Process event export recovered")
	}
}

// Run calls Tick every second until ctx ends.
func (p *Pipeline) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.Tick()
		}
	}
}

// Tick publishes the throttle stops of pods that went a second without a
// drop and writes pending export lines out.
func (p *Pipeline) Tick() {
	if p.limiter != nil {
		for _, ev := range p.limiter.Sweep(p.now()) {
			p.deliver(ev)
		}
	}
	if p.exporter != nil {
		p.exported(p.exporter.Flush())
	}
}

// Close writes the pending export lines and closes the export file.
func (p *Pipeline) Close() error {
	if p.exporter == nil {
		return nil
	}
	return p.exporter.Close()
}
