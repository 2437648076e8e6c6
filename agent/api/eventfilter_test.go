package api

import (
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func curl() *Process {
	return &Process{ExecID: "Y3VybA==", ParentExecID: "c2g=", PID: 42, Binary: "/usr/bin/curl", Arguments: "http://b",
		Pod: &Pod{Namespace: "default", Name: "a"}}
}

func testEvents() map[string]*ProcessEvent {
	host := &Process{ExecID: "aG9zdA==", PID: 1, Binary: "/sbin/init"}
	return map[string]*ProcessEvent{
		"exec":     {Time: t0, ProcessExec: &ProcessExec{Process: curl()}},
		"exit":     {Time: t0.Add(time.Second), ProcessExit: &ProcessExit{Process: curl(), Status: 7}},
		"connect":  {Time: t0.Add(2 * time.Second), ProcessConnect: &ProcessConnect{Process: curl(), Protocol: "TCP"}},
		"throttle": {Time: t0.Add(3 * time.Second), ProcessThrottle: &ProcessThrottle{Type: ThrottleStart, Namespace: "kube-system", Pod: "dns"}},
		"host":     {Time: t0.Add(4 * time.Second), ProcessExec: &ProcessExec{Process: host}},
	}
}

func TestEventFilterMatch(t *testing.T) {
	tests := []struct {
		name   string
		filter EventFilter
		want   []string // the events of testEvents that match
	}{
		{"zero selects all", EventFilter{}, []string{"connect", "exec", "exit", "host", "throttle"}},
		{"type", EventFilter{Types: []string{"process_exit"}}, []string{"exit"}},
		{"types short and any case", EventFilter{Types: []string{"EXEC", "Throttle"}}, []string{"exec", "host", "throttle"}},
		{"unknown type matches nothing", EventFilter{Types: []string{"fork"}}, nil},
		{"namespace", EventFilter{Namespace: "default"}, []string{"connect", "exec", "exit"}},
		{"namespace of a throttled pod", EventFilter{Namespace: "kube-system"}, []string{"throttle"}},
		{"pod with namespace", EventFilter{Pod: "default/a"}, []string{"connect", "exec", "exit"}},
		{"bare pod in any namespace", EventFilter{Pod: "dns"}, []string{"throttle"}},
		{"bare pod takes Namespace", EventFilter{Namespace: "kube-system", Pod: "a"}, nil},
		{"bare pod and its namespace", EventFilter{Namespace: "default", Pod: "a"}, []string{"connect", "exec", "exit"}},
		{"binary regex", EventFilter{Binary: "^/usr/bin/cu"}, []string{"connect", "exec", "exit"}},
		{"binary regex unanchored", EventFilter{Binary: "init"}, []string{"host"}},
		{"invalid binary regex matches nothing", EventFilter{Binary: "("}, nil},
		{"exec id", EventFilter{ExecID: "Y3VybA=="}, []string{"connect", "exec", "exit"}},
		{"exec id of the parent", EventFilter{ExecID: "c2g="}, []string{"connect", "exec", "exit"}},
		{"exec id unknown", EventFilter{ExecID: "bm9wZQ=="}, nil},
		{"since", EventFilter{Since: t0.Add(3 * time.Second)}, []string{"host", "throttle"}},
		{"every field", EventFilter{Types: []string{"exit"}, Namespace: "default", Pod: "a", Binary: "curl", ExecID: "c2g=", Since: t0},
			[]string{"exit"}},
	}
	events := testEvents()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, name := range []string{"connect", "exec", "exit", "host", "throttle"} {
				if tc.filter.Match(events[name]) {
					got = append(got, name)
				}
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestEventFilterQueryRoundTrip(t *testing.T) {
	f := EventFilter{Types: []string{"process_exec", "exit"}, Namespace: "default", Pod: "a", Binary: "^/bin/(ba)?sh$",
		ExecID: "a/b+c=", Since: t0, Last: 5, Follow: true}
	q := f.Query()
	assert.Equal(t, url.Values{"type": {"process_exec", "exit"}, "namespace": {"default"}, "pod": {"a"},
		"binary": {"^/bin/(ba)?sh$"}, "exec-id": {"a/b+c="}, "since": {"2026-01-02T03:04:05Z"}, "last": {"5"},
		"follow": {"true"}}, q)
	back, err := ParseEventFilter(q, t0)
	require.NoError(t, err)
	require.NotNil(t, back.binary, "the expression is compiled once")
	back.binary = nil
	assert.Equal(t, f, back)
	assert.Empty(t, EventFilter{}.Query())
}

func TestParseEventFilter(t *testing.T) {
	now := t0
	f, err := ParseEventFilter(url.Values{"since": {"5m"}, "type": {"exec,connect"}}, now)
	require.NoError(t, err)
	assert.Equal(t, now.Add(-5*time.Minute), f.Since)
	assert.Equal(t, []string{"exec", "connect"}, f.Types, "a comma list is split")

	for _, tc := range []struct{ q, err string }{
		{"type=fork", `invalid type filter: "fork"`},
		{"binary=(", `invalid binary filter: "("`},
		{"since=yesterday", `invalid since filter: "yesterday"`},
		{"last=-1", `invalid last filter: "-1"`},
		{"last=x", `invalid last filter: "x"`},
		{"follow=maybe", `invalid follow filter: "maybe"`},
	} {
		q, err := url.ParseQuery(tc.q)
		require.NoError(t, err)
		_, err = ParseEventFilter(q, now)
		assert.EqualError(t, err, tc.err, tc.q)
	}
}

func TestEventKind(t *testing.T) {
	for in, want := range map[string]string{
		"process_exec": EventProcessExec, "EXIT": EventProcessExit, " connect ": EventProcessConnect,
		"PROCESS_THROTTLE": EventProcessThrottle, "fork": "", "": "", "process_": "",
	} {
		assert.Equal(t, want, EventKind(in), in)
	}
}

func TestPodName(t *testing.T) {
	ev := testEvents()
	for name, want := range map[string][2]string{
		"exec": {"default", "a"}, "throttle": {"kube-system", "dns"}, "host": {"", ""},
	} {
		ns, pod := ev[name].PodName()
		assert.Equal(t, want, [2]string{ns, pod}, name)
	}
}

func TestEventFilterPolicy(t *testing.T) {
	kill := &ProcessEvent{Time: t0, ProcessTracepoint: &ProcessTracepoint{Process: curl(), Subsys: "sched",
		Event: "sched_process_exec", Action: "KPROBE_ACTION_SIGKILL", PolicyName: "default/no-curl"}}
	assert.Equal(t, EventProcessTracepoint, kill.Kind())
	assert.Equal(t, "/usr/bin/curl", kill.Subject().Binary)
	exec := testEvents()["exec"]

	f, err := ParseEventFilter(EventFilter{Policy: "default/no-curl"}.Query(), t0)
	require.NoError(t, err)
	assert.Equal(t, "default/no-curl", f.Policy)
	assert.True(t, f.Match(kill))
	assert.False(t, f.Match(exec), "only policy events have a policy")
	assert.False(t, EventFilter{Policy: "other"}.Match(kill))

	f, err = ParseEventFilter(url.Values{"type": {"tracepoint"}}, t0)
	require.NoError(t, err)
	assert.True(t, f.Match(kill))
	assert.False(t, f.Match(exec))
	ns, pod := kill.PodName()
	assert.Equal(t, "default/a", ns+"/"+pod)
}
