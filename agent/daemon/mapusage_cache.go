package daemon

import (
	"sync"
	"time"

	"github.com/sluicenet/sluice/datapath"
)

// mapUsageEvery bounds how often scrapes walk the BPF maps' keys (a full
// conntrack map alone is 262144 lookups): scrapes in between, from one
// Prometheus or several, get the last count.
const mapUsageEvery = 10 * time.Second

// usageCache keeps the last count of the maps' entries for every.
type usageCache struct {
	every time.Duration
	count func() ([]datapath.MapUsage, error)

	mu    sync.Mutex
	at    time.Time
	usage []datapath.MapUsage
}

// get returns the count, made anew when the last one is older than every
// (a count that failed for some maps keeps the others).
func (c *usageCache) get(now time.Time) []datapath.MapUsage {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || now.Sub(c.at) >= c.every {
		c.usage, _ = c.count()
		c.at = now
	}
	return c.usage
}
