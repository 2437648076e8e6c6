package daemon

import (
	"context"
	"time"

	"github.com/sluicenet/sluice/agent/reconcile"
)

// minBackoff is the first retry delay after a failed resync.
const minBackoff = time.Second

// resyncSchedule is the daemon's resync loop: no sync at start (New just
// did it all), then every interval; after a failure sooner, with
// exponential backoff from minBackoff up to the interval.
func resyncSchedule(interval time.Duration) reconcile.Config {
	return reconcile.Config{Resync: interval, MinBackoff: min(minBackoff, interval), MaxBackoff: interval, NoInitialSync: true}
}

// resyncLoop runs Resync on resyncSchedule until ctx ends.
func (d *Daemon) resyncLoop(ctx context.Context) {
	cfg := resyncSchedule(d.cfg.ResyncInterval)
	cfg.Status = &d.resync
	reconcile.Loop(ctx, cfg, func(bool) error {
		err := d.Resync()
		if err != nil {
			d.log.WithError(err).Warn("Resync failed; retrying")
		}
		return err
	})
}
