package daemon

import (
	"context"
	"sync"
	"time"
)

// Rate window and sampling of `sluice status`'s event rates.
const (
	rateWindow = time.Minute
	rateSample = 5 * time.Second
)

// rateMeter turns a growing total into a rate over the last rateWindow.
// It keeps the totals sampled in the window and the last one before it.
type rateMeter struct {
	mu      sync.Mutex
	samples []rateSampleAt // oldest first
}

type rateSampleAt struct {
	at time.Time
	n  uint64
}

// observe records total n at now.
func (r *rateMeter) observe(now time.Time, n uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, rateSampleAt{now, n})
	// Drop what the window no longer needs: the oldest kept sample is the
	// last one at or before now - rateWindow.
	for len(r.samples) > 1 && !r.samples[1].at.After(now.Add(-rateWindow)) {
		r.samples = r.samples[1:]
	}
}

// rate returns the rate of the total (n at now) over the last minute, or
// since the first sample when that is younger.
func (r *rateMeter) rate(now time.Time, n uint64) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) == 0 {
		return 0
	}
	// The last sample at or before now - rateWindow, else the oldest.
	old := r.samples[0]
	for _, smp := range r.samples[1:] {
		if smp.at.After(now.Add(-rateWindow)) {
			break
		}
		old = smp
	}
	d := now.Sub(old.at).Seconds()
	if d <= 0 || n < old.n {
		return 0
	}
	return float64(n-old.n) / d
}

// eventRates are the rates of flows and process events.
type eventRates struct {
	flows, process rateMeter
}

// sampleRates samples the flow and process event totals every rateSample
// until ctx ends.
func (d *Daemon) sampleRates(ctx context.Context) {
	sample := func(now time.Time) {
		d.rates.flows.observe(now, d.flows.Total())
		if d.proc != nil {
			published, _ := d.proc.pipe.Counts()
			d.rates.process.observe(now, published)
		}
	}
	// Totals were 0 when the agent started: a young agent's rate is over
	// its lifetime.
	d.rates.flows.observe(d.started, 0)
	d.rates.process.observe(d.started, 0)
	sample(time.Now())
	t := time.NewTicker(rateSample)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			sample(now)
		}
	}
}
