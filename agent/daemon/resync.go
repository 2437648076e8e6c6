package daemon

import (
	"context"
	"time"
)

// minBackoff is the first retry delay after a failed resync.
const minBackoff = time.Second

// resyncLoop runs Resync every interval; after a failure it retries sooner,
// with exponential backoff from minBackoff up to the interval.
func (d *Daemon) resyncLoop(ctx context.Context) {
	interval := d.cfg.ResyncInterval
	backoff := min(minBackoff, interval)
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := interval
		if err := d.Resync(); err != nil {
			next = backoff
			d.log.WithError(err).WithField("retryIn", next).Warn("Resync failed")
			backoff = min(2*backoff, interval)
		} else {
			backoff = min(minBackoff, interval)
		}
		t.Reset(next)
	}
}
