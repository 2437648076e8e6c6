package events

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
)

func TestHubHistory(t *testing.T) {
	h := NewHub(4, nil)
	for i := range uint32(6) {
		pod := "default/a"
		if i%2 == 1 {
			pod = "default/b"
		}
		h.Publish(exec(pod, i))
	}
	assert.Equal(t, []uint32{2, 3, 4, 5}, pids(h.History(api.EventFilter{})), "the newest four, oldest first")
	assert.Equal(t, []uint32{3, 5}, pids(h.History(api.EventFilter{Pod: "default/b"})))
	assert.Equal(t, []uint32{5}, pids(h.History(api.EventFilter{Pod: "b", Last: 1})))
	assert.Empty(t, h.History(api.EventFilter{Types: []string{"exit"}}))
	assert.Len(t, NewHub(0, nil).ring.History(nil, 0), 0)
}

func TestHubFollow(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := NewHub(8, reg)
	h.Publish(exec("default/a", 1))
	h.Publish(event(api.EventProcessExit, "default/a", "/bin/true", 2))
	hist, ch, cancel := h.Follow(api.EventFilter{Types: []string{"exit"}}, 1)
	assert.Equal(t, []uint32{2}, pids(hist))

	h.Publish(exec("default/a", 3)) // delivered unfiltered: the reader filters
	h.Publish(exec("default/a", 4)) // the buffer is full: lost
	assert.Equal(t, uint32(3), (<-ch).Subject().PID)
	assert.Equal(t, 1.0, counterValue(t, h.lost))
	cancel()
	h.Publish(exec("default/a", 5))
	assert.Empty(t, ch)

	mfs, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, mfs, 1)
	assert.Equal(t, "sluice_process_events_follower_dropped_total", mfs[0].GetName())
}
