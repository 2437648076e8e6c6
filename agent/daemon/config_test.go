package daemon

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/sluicenet/sluice/agent/reconcile"
)

func TestConfigPaths(t *testing.T) {
	c := DefaultConfig()
	assert.Equal(t, "/var/run/sluice/agent.sock", c.SocketPath())
	assert.Equal(t, "/var/run/sluice/endpoints", c.EndpointsDir())
	assert.Equal(t, "/var/run/sluice/delete-queue", c.DeleteQueueDir())
	assert.True(t, c.IPForward)
}

func TestConfigMountsParent(t *testing.T) {
	tests := []struct {
		root string
		want bool
	}{
		{"/sys/fs/bpf/sluice", true},
		{"/sys/fs/bpf/sluice/", true},
		{"/sys/fs/bpf/a/sluice", false},
		{"/tmp/x/bpffs/sluice", false},
		{"/sys/fs/bpf", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Config{BPFRoot: tt.root}.mountsParent(), tt.root)
	}
}

func TestResyncSchedule(t *testing.T) {
	interval := 10 * time.Second
	cfg := resyncSchedule(interval)
	assert.True(t, cfg.NoInitialSync, "New has just synced")
	assert.Equal(t, interval, cfg.Resync, "after a success the next resync is an interval later")
	backoff := reconcile.Backoff{Min: cfg.MinBackoff, Max: cfg.MaxBackoff}
	var got []time.Duration
	for range 6 {
		got = append(got, backoff.Next())
	}
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, interval, interval}, got)
	backoff.Reset()
	assert.Equal(t, minBackoff, backoff.Next(), "a success resets the backoff")
	short := resyncSchedule(100 * time.Millisecond)
	backoff = reconcile.Backoff{Min: short.MinBackoff, Max: short.MaxBackoff}
	assert.Equal(t, 100*time.Millisecond, backoff.Next(), "backoff never exceeds a short interval")
}
