package cli

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/events"
	"github.com/sluicenet/sluice/agent/server"
	"github.com/sluicenet/sluice/policy/tracing"
)

func ptr[T any](v T) *T { return &v }

// openatEvent is a syscall rule's event: cat opened /etc/shadow.
func openatEvent(action string, enforced bool, policy string) *api.ProcessEvent {
	p := curl()
	p.Binary = "/usr/bin/cat"
	return &api.ProcessEvent{ProcessTracepoint: &api.ProcessTracepoint{
		Process: p, Subsys: "syscalls", Event: "sys_enter_openat", Syscall: "openat",
		Args:   []api.TracepointArg{api.StringArg("filename", "/etc/shadow")},
		Action: action, Enforced: enforced, PolicyName: policy,
	}}
}

// connectEvent is a connect rule's event: curl connecting to addr.
func connectEvent(action string, enforced bool, addr, backend string) *api.ProcessEvent {
	return &api.ProcessEvent{ProcessTracepoint: &api.ProcessTracepoint{
		Process: curl(), Subsys: "sluice", Event: "connect",
		Args:   []api.TracepointArg{{Label: "dest", SockaddrArg: &api.SockaddrArg{Family: "AF_INET", Addr: addr, Port: 80, Protocol: "TCP", Backend: backend}}},
		Action: action, Enforced: enforced, PolicyName: "p",
	}}
}

func TestSyscallAndConnectLines(t *testing.T) {
	exit := openatEvent("KPROBE_ACTION_POST", false, "")
	exit.ProcessTracepoint.Event, exit.ProcessTracepoint.Subsys = "sys_exit", "raw_syscalls"
	exit.ProcessTracepoint.Args = []api.TracepointArg{{Label: "dfd", IntArg: ptr(int64(-100))}, {StringArg: ptr("/very/lo"), Truncated: true}, {SizeArg: ptr(uint64(2))}}
	exit.ProcessTracepoint.Return = ptr(int64(-13))
	for _, tc := range []struct {
		ev   *api.ProcessEvent
		want string
	}{
		{openatEvent("KPROBE_ACTION_POST", false, "p"), "☎ syscall default/a /usr/bin/cat openat /etc/shadow (policy p)"},
		{openatEvent("KPROBE_ACTION_SIGKILL", true, "p"), "🔒 sigkill default/a /usr/bin/cat openat /etc/shadow (policy p)"},
		{openatEvent("KPROBE_ACTION_SIGKILL", false, "p"), "🔍 would sigkill default/a /usr/bin/cat openat /etc/shadow (policy p)"},
		{exit, "☎ syscall default/a /usr/bin/cat openat -100 /very/lo... 2 = -13"},
		{connectEvent("KPROBE_ACTION_OVERRIDE", true, "10.0.0.1", ""), "🔒 deny default/a /usr/bin/curl connect 10.0.0.1:80 (policy p)"},
		{connectEvent("KPROBE_ACTION_OVERRIDE", false, "10.0.0.1", ""), "🔍 would deny default/a /usr/bin/curl connect 10.0.0.1:80 (policy p)"},
		{connectEvent("KPROBE_ACTION_POST", false, "10.96.0.10", "10.0.0.5:8080"), "☎ connect default/a /usr/bin/curl 10.96.0.10:80 (10.0.0.5:8080) (policy p)"},
		{connectEvent("KPROBE_ACTION_SIGKILL", true, "fd00::1", ""), "🔒 sigkill default/a /usr/bin/curl connect [fd00::1]:80 (policy p)"},
	} {
		assert.Equal(t, tc.want, EventLine(tc.ev))
	}
}

func TestEventsPolicyFilterTakesSyscallAndConnectEvents(t *testing.T) {
	hub := events.NewHub(16, nil)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, ev := range []*api.ProcessEvent{
		openatEvent("KPROBE_ACTION_SIGKILL", true, "p"), openatEvent("KPROBE_ACTION_POST", false, "other"),
		connectEvent("KPROBE_ACTION_OVERRIDE", true, "10.0.0.1", ""), {ProcessExec: &api.ProcessExec{Process: curl()}},
	} {
		ev.Time = t0
		hub.Publish(ev)
	}
	run := serve(t, hub, nil)
	out, err := run("events", "--policy", "p")
	require.NoError(t, err)
	assert.Equal(t, "🔒 sigkill default/a /usr/bin/cat openat /etc/shadow (policy p)\n🔒 deny default/a /usr/bin/curl connect 10.0.0.1:80 (policy p)\n", out)
}

func TestTracingPolicyGetListsHooksAndSlots(t *testing.T) {
	ref := tracing.Ref{Kind: tracing.KindTracingPolicy, Name: "files"}
	tp := tracingPolicies{ref: {
		Kind: tracing.KindTracingPolicy, Name: "files", Mode: "enforce", Accepted: true, EventsPosted: 4, ActionsEnforced: 1,
		Hooks: []api.TracingPolicyHook{
			{Table: "exec", Hook: "sched/sched_process_exec", Slots: []int{0}},
			{Table: "syscall", Hook: "syscalls/sys_enter_openat", Syscalls: []string{"openat"}, Slots: []int{3, 4}},
			{Table: "syscall", Hook: "raw_syscalls/sys_enter", Slots: []int{5}},
			{Table: "connect", Hook: "sluice/connect", Slots: []int{0, 1}},
			{Table: "connect", Hook: "sluice/connect"},
		},
		Classes: []int{0, 2},
	}}
	run := serveConfig(t, server.Config{TracingPolicies: tp})
	out, err := run("tracingpolicy", "get", "files")
	require.NoError(t, err)
	assert.Equal(t, `SluiceTracingPolicy files
Mode: enforce
Status: accepted
Events posted: 4
Actions enforced: 1
Actions monitored: 0
Hooks:
  TABLE    HOOK                       SLOTS  SYSCALLS
  exec     sched/sched_process_exec   0      -
  syscall  syscalls/sys_enter_openat  3,4    openat
  syscall  raw_syscalls/sys_enter     5      all
  connect  sluice/connect             0,1    -
  connect  sluice/connect             -      -
Binary classes: 0,2
`, out)
}
