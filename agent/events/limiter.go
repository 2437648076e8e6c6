package events

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/sluicenet/sluice/agent/api"
)

// throttleQuiet is how long a throttled pod must go without a dropped event
// before its THROTTLE_STOP.
const throttleQuiet = time.Second

// RateLimiter lets at most a fixed number of events per pod through in each
// one-second window (the host counts as one pod). When a pod's first event
// is dropped it emits a THROTTLE_START event for the pod, and once a second
// has passed without a drop a THROTTLE_STOP with the number dropped. Exit
// and throttle events always pass and are not counted, so every process
// seen starting is seen ending; so do tracing policy events (an enforced or
// monitored action is never lost to the limit). Time is passed in, so tests drive it.
type RateLimiter struct {
	limit int

	mu   sync.Mutex
	pods map[podKey]*podRate
}

type podKey struct{ namespace, name string }

// podRate is one pod's window and throttle state.
type podRate struct {
	window    time.Time // start of the current window
	count     int       // events let through in it
	throttled bool
	dropped   uint64
	lastDrop  time.Time
	node      string // for the throttle events
}

// NewRateLimiter returns a limiter letting perSecond events of each pod
// through per second (at least one).
func NewRateLimiter(perSecond int) *RateLimiter {
	return &RateLimiter{limit: max(perSecond, 1), pods: map[podKey]*podRate{}}
}

// Admit decides whether ev passes at now. It also returns the throttle
// events to publish before ev: the pod's THROTTLE_STOP when it was
// throttled and a second passed without a drop, its THROTTLE_START when ev
// is the first event dropped.
func (l *RateLimiter) Admit(ev *api.ProcessEvent, now time.Time) (pass bool, throttle []*api.ProcessEvent) {
	ns, pod := ev.PodName()
	k := podKey{ns, pod}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.pods[k]
	if r == nil {
		r = &podRate{window: now}
		l.pods[k] = r
	}
	r.node = ev.NodeName
	if r.throttled && now.Sub(r.lastDrop) >= throttleQuiet {
		throttle = append(throttle, r.stop(k, now))
	}
	switch ev.Kind() {
	case api.EventProcessExit, api.EventProcessThrottle, api.EventProcessTracepoint:
		return true, throttle
	}
	if now.Sub(r.window) >= time.Second {
		r.window, r.count = now, 0
	}
	if r.count < l.limit {
		r.count++
		return true, throttle
	}
	r.dropped++
	r.lastDrop = now
	if !r.throttled {
		r.throttled = true
		throttle = append(throttle, throttleEvent(k, r.node, now, api.ThrottleStart, 0))
	}
	return false, throttle
}

// Sweep returns the THROTTLE_STOP events of the pods that went a second
// without a drop (ordered by pod), and forgets pods idle for more than a
// window. Call it
// about once a second so a pod whose events simply stopped gets its stop.
func (l *RateLimiter) Sweep(now time.Time) []*api.ProcessEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*api.ProcessEvent
	for k, r := range l.pods {
		if r.throttled && now.Sub(r.lastDrop) >= throttleQuiet {
			out = append(out, r.stop(k, now))
		}
		if !r.throttled && now.Sub(r.window) >= 2*time.Second {
			delete(l.pods, k)
		}
	}
	slices.SortFunc(out, func(a, b *api.ProcessEvent) int {
		return cmp.Or(cmp.Compare(a.ProcessThrottle.Namespace, b.ProcessThrottle.Namespace),
			cmp.Compare(a.ProcessThrottle.Pod, b.ProcessThrottle.Pod))
	})
	return out
}

// stop ends a pod's throttling and returns its THROTTLE_STOP.
func (r *podRate) stop(k podKey, now time.Time) *api.ProcessEvent {
	ev := throttleEvent(k, r.node, now, api.ThrottleStop, r.dropped)
	r.throttled, r.dropped = false, 0
	return ev
}

func throttleEvent(k podKey, node string, now time.Time, typ string, dropped uint64) *api.ProcessEvent {
	return &api.ProcessEvent{NodeName: node, Time: now, ProcessThrottle: &api.ProcessThrottle{
		Type: typ, Namespace: k.namespace, Pod: k.name, Dropped: dropped,
	}}
}
