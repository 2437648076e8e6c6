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
		err := d.Resync()
		var next time.Duration
		next, backoff = schedule(err != nil, backoff, interval)
		if err != nil {
			d.log.WithError(err).WithField("retryIn", next).Warn("Resync failed")
		}
		t.Reset(next)
	}
}

// schedule returns the delay before the next resync and the backoff after
// that one: the current backoff (then doubled, up to interval) after a
// failure, the interval (and a reset backoff) after a success.
func schedule(failed bool, backoff, interval time.Duration) (next, nextBackoff time.Duration) {
	if !failed {
		return interval, min(minBackoff, interval)
	}
	return backoff, min(2*backoff, interval)
}
