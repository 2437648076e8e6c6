package daemon

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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
	backoff := minBackoff
	var got []time.Duration
	for range 6 {
		var next time.Duration
		next, backoff = schedule(true, backoff, interval)
		got = append(got, next)
	}
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, interval, interval}, got)
	next, backoff := schedule(false, backoff, interval)
	assert.Equal(t, interval, next)
	assert.Equal(t, minBackoff, backoff)
	next, _ = schedule(true, min(minBackoff, 100*time.Millisecond), 100*time.Millisecond)
	assert.Equal(t, 100*time.Millisecond, next, "backoff never exceeds a short interval")
}
