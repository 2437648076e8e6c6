package daemon

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/sluicenet/sluice/datapath"
)

// The maps are counted at the first get and again only once the count is
// older than the interval.
func TestUsageCache(t *testing.T) {
	walks := 0
	c := &usageCache{every: 10 * time.Second, count: func() ([]datapath.MapUsage, error) {
		walks++
		return []datapath.MapUsage{{Name: "m", Entries: walks, Capacity: 8}}, nil
	}}
	t0 := time.Unix(1000, 0)
	assert.Equal(t, 1, c.get(t0)[0].Entries)
	assert.Equal(t, 1, c.get(t0.Add(9 * time.Second))[0].Entries, "within the interval: the last count")
	assert.Equal(t, 2, c.get(t0.Add(10 * time.Second))[0].Entries, "past it: counted anew")
	assert.Equal(t, 2, walks)
}
