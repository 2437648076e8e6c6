package daemon

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRateMeterLastMinute(t *testing.T) {
	var r rateMeter
	t0 := time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC)
	assert.Zero(t, r.rate(t0, 10), "no sample yet")
	r.observe(t0, 0)
	assert.InDelta(t, 10.0, r.rate(t0.Add(2*time.Second), 20), 1e-9, "younger than a minute: since the first sample")
	// 10 events a second for two minutes, sampled every 5 s.
	for s := 5; s <= 120; s += 5 {
		r.observe(t0.Add(time.Duration(s)*time.Second), uint64(10*s))
	}
	// Then 100 a second for 30 s: the last minute holds 30 s of each.
	now := t0.Add(150 * time.Second)
	assert.InDelta(t, (30*10+30*100)/60.0, r.rate(now, 1200+3000), 1e-9)
	assert.LessOrEqual(t, len(r.samples), 14, "only the window is kept")
	assert.Zero(t, r.rate(now, 5), "a total that went back (restart) is no rate")
}
