package events

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
)

// throttleOf describes a throttle event as "TYPE ns/pod dropped".
func throttleOf(evs []*api.ProcessEvent) []string {
	var out []string
	for _, ev := range evs {
		th := ev.ProcessThrottle
		out = append(out, th.Type+" "+th.Namespace+"/"+th.Pod+" "+strconv.FormatUint(th.Dropped, 10))
	}
	return out
}

func TestRateLimiterThrottle(t *testing.T) {
	l := NewRateLimiter(3)
	admit := func(ev *api.ProcessEvent, at time.Duration) (bool, []string) {
		pass, th := l.Admit(ev, t0.Add(at))
		for _, e := range th {
			assert.Equal(t, "node-1", e.NodeName)
			assert.Equal(t, t0.Add(at), e.Time)
		}
		return pass, throttleOf(th)
	}
	ms := time.Millisecond

	// Three per second pass; the fourth is dropped and starts throttling.
	for i := range 3 {
		pass, th := admit(exec("default/a", uint32(i)), time.Duration(i)*ms)
		require.True(t, pass, i)
		require.Empty(t, th)
	}
	pass, th := admit(exec("default/a", 3), 10*ms)
	assert.False(t, pass)
	assert.Equal(t, []string{"THROTTLE_START default/a 0"}, th)
	pass, th = admit(event(api.EventProcessConnect, "default/a", "/bin/true", 4), 20*ms)
	assert.False(t, pass, "connects are limited too")
	assert.Empty(t, th, "one start per throttling")

	// Exits and throttle events always pass and use no budget; other pods
	// and the host have their own.
	for i := range 10 {
		pass, th = admit(event(api.EventProcessExit, "default/a", "/bin/true", uint32(i)), 30*ms)
		require.True(t, pass)
		require.Empty(t, th)
	}
	pass, _ = admit(event(api.EventProcessThrottle, "default/a", "", 0), 30*ms)
	assert.True(t, pass)
	pass, _ = admit(exec("default/b", 5), 40*ms)
	assert.True(t, pass)
	for i := range 3 {
		pass, _ = admit(exec("", uint32(i)), 40*ms)
		require.True(t, pass)
	}
	pass, th = admit(exec("", 9), 40*ms)
	assert.False(t, pass)
	assert.Equal(t, []string{"THROTTLE_START / 0"}, th, "the host is one pod")

	// A new window lets three through again; the pod stays throttled while
	// it keeps dropping.
	pass, th = admit(exec("default/a", 6), 1010*ms)
	assert.True(t, pass)
	assert.Empty(t, th, "the last drop was under a second ago")
	admit(exec("default/a", 7), 1011*ms)
	admit(exec("default/a", 8), 1012*ms)
	pass, th = admit(exec("default/a", 9), 1015*ms)
	assert.False(t, pass)
	assert.Empty(t, th, "still throttled: no second start")

	// A second without a drop: the next event comes after the stop with
	// the count of all drops.
	pass, th = admit(exec("default/a", 10), 2015*ms)
	assert.True(t, pass)
	assert.Equal(t, []string{"THROTTLE_STOP default/a 3"}, th)

	// Dropping again starts a new throttling, counted afresh.
	admit(exec("default/a", 11), 2016*ms)
	admit(exec("default/a", 12), 2017*ms)
	pass, th = admit(exec("default/a", 13), 2018*ms)
	assert.False(t, pass)
	assert.Equal(t, []string{"THROTTLE_START default/a 0"}, th)
}

func TestRateLimiterSweep(t *testing.T) {
	l := NewRateLimiter(1)
	for _, pod := range []string{"ns2/x", "ns1/y", "ns1/y", "ns2/x", "ns3/idle"} {
		l.Admit(exec(pod, 1), t0)
	}
	require.Len(t, l.pods, 3)
	assert.Empty(t, l.Sweep(t0.Add(999*time.Millisecond)), "under a second since the drops")
	stops := l.Sweep(t0.Add(time.Second))
	assert.Equal(t, []string{"THROTTLE_STOP ns1/y 1", "THROTTLE_STOP ns2/x 1"}, throttleOf(stops), "ordered by pod")
	assert.Empty(t, l.Sweep(t0.Add(1500*time.Millisecond)), "one stop per throttling")

	// Pods idle for two windows are forgotten; an event starts afresh.
	l.Sweep(t0.Add(2 * time.Second))
	assert.Empty(t, l.pods)
	pass, th := l.Admit(exec("ns1/y", 2), t0.Add(3*time.Second))
	assert.True(t, pass)
	assert.Empty(t, th)
}

func TestRateLimiterExitsNeverDropped(t *testing.T) {
	l := NewRateLimiter(1)
	passed := 0
	for i := range 1000 {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		if pass, _ := l.Admit(exec("default/a", uint32(i)), at); pass {
			passed++
		}
		pass, _ := l.Admit(event(api.EventProcessExit, "default/a", "/bin/true", uint32(i)), at)
		require.True(t, pass, "exit %d", i)
	}
	assert.Equal(t, 1, passed, "one exec in the second")
	assert.Equal(t, 1, NewRateLimiter(0).limit, "at least one per second")
}

func TestRateLimiterPolicyEventsNeverDropped(t *testing.T) {
	l := NewRateLimiter(1)
	pass, _ := l.Admit(exec("default/a", 1), t0)
	require.True(t, pass)
	for i := range 100 {
		pass, th := l.Admit(event(api.EventProcessTracepoint, "default/a", "/usr/bin/nc", uint32(i)), t0)
		require.True(t, pass, "policy event %d", i)
		require.Empty(t, th)
	}
	pass, _ = l.Admit(exec("default/a", 2), t0)
	assert.False(t, pass, "policy events use no budget, the exec still exceeds it")
}
