package cli

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/server"
	"github.com/sluicenet/sluice/policy/tracing"
)

func TestTracepointLine(t *testing.T) {
	nc := func(action string, enforced bool) *api.ProcessEvent {
		p := curl()
		p.Binary = "/bin/sh" // the cache's image before the exec
		return &api.ProcessEvent{ProcessTracepoint: &api.ProcessTracepoint{Process: p, Subsys: "sched", Event: "sched_process_exec",
			Args: []api.TracepointArg{api.StringArg("filename", "/usr/bin/nc")}, Action: action, Enforced: enforced, PolicyName: "no-nc"}}
	}
	for _, tc := range []struct {
		ev   *api.ProcessEvent
		want string
	}{
		{nc("KPROBE_ACTION_SIGKILL", true), "🔒 sigkill default/a /usr/bin/nc (policy no-nc)"},
		{nc("KPROBE_ACTION_SIGKILL", false), "🔍 would sigkill default/a /usr/bin/nc (policy no-nc)"},
		{nc("KPROBE_ACTION_SIGNAL", true), "🔒 signal default/a /usr/bin/nc (policy no-nc)"},
		{nc("KPROBE_ACTION_POST", false), "☎ exec default/a /usr/bin/nc (policy no-nc)"},
		{&api.ProcessEvent{ProcessTracepoint: &api.ProcessTracepoint{Process: &api.Process{Binary: "/bin/x"}, Subsys: "sched",
			Event: "sched_process_exec", Action: "KPROBE_ACTION_POST"}}, "☎ exec host /bin/x"},
	} {
		assert.Equal(t, tc.want, EventLine(tc.ev))
	}
}

// tracingPolicies holds fixed policies and records set-mode like the
// manager (tested in agent/tracingmgr).
type tracingPolicies map[tracing.Ref]*api.TracingPolicy

func (tp tracingPolicies) List() []api.TracingPolicy {
	return []api.TracingPolicy{
		*tp[tracing.Ref{Kind: tracing.KindTracingPolicy, Name: "kprobes"}],
		*tp[tracing.Ref{Kind: tracing.KindTracingPolicy, Name: "no-nc"}],
		*tp[tracing.Ref{Kind: tracing.KindTracingPolicyNamespaced, Namespace: "default", Name: "no-sh"}],
	}
}

func (tp tracingPolicies) Get(ref tracing.Ref) (api.TracingPolicy, error) {
	if p := tp[ref]; p != nil {
		return *p, nil
	}
	return api.TracingPolicy{}, fmt.Errorf("%s %s: %w", ref.Kind, ref.Name, api.ErrTracingPolicyNotFound)
}

func (tp tracingPolicies) SetMode(ref tracing.Ref, mode tracing.Mode) error {
	if _, err := tp.Get(ref); err != nil {
		return err
	}
	tp[ref].Mode, tp[ref].ModeOverridden = string(mode), true
	return nil
}

func TestTracingPolicyCommand(t *testing.T) {
	tp := tracingPolicies{
		{Kind: tracing.KindTracingPolicy, Name: "kprobes"}: {Kind: tracing.KindTracingPolicy, Name: "kprobes",
			Reason: "spec.kprobes: this kernel has no kprobes"},
		{Kind: tracing.KindTracingPolicy, Name: "no-nc"}: {Kind: tracing.KindTracingPolicy, Name: "no-nc", Mode: "enforce",
			Accepted: true, EventsPosted: 3, ActionsEnforced: 2, ActionsMonitored: 1},
		{Kind: tracing.KindTracingPolicyNamespaced, Namespace: "default", Name: "no-sh"}: {Kind: tracing.KindTracingPolicyNamespaced,
			Namespace: "default", Name: "no-sh", Mode: "monitor", Accepted: true},
	}
	run := serveConfig(t, server.Config{TracingPolicies: tp})

	out, err := run("tracingpolicy", "list")
	require.NoError(t, err)
	assert.Equal(t, `KIND                           POLICY         MODE     STATUS    POSTED  ENFORCED  MONITORED  REASON
SluiceTracingPolicy            kprobes        -        rejected  0       0         0          spec.kprobes: this kernel has no kprobes
SluiceTracingPolicy            no-nc          enforce  accepted  3       2         1          -
SluiceTracingPolicyNamespaced  default/no-sh  monitor  accepted  0       0         0          -
`, out)

	out, err = run("tracingpolicy", "set-mode", "no-sh", "-n", "default", "enforce")
	require.NoError(t, err)
	assert.Equal(t, "SluiceTracingPolicyNamespaced default/no-sh: mode enforce\n", out)
	out, err = run("tp", "get", "-n", "default", "no-sh")
	require.NoError(t, err)
	assert.Equal(t, "SluiceTracingPolicyNamespaced default/no-sh\nMode: enforce (set)\nStatus: accepted\n"+
		"Events posted: 0\nActions enforced: 0\nActions monitored: 0\n", out)
	out, err = run("tracingpolicy", "get", "kprobes", "-o", "json")
	require.NoError(t, err)
	assert.JSONEq(t, `{"kind":"SluiceTracingPolicy","name":"kprobes","mode":"","accepted":false,
		"reason":"spec.kprobes: this kernel has no kprobes","eventsPosted":0,"actionsEnforced":0,"actionsMonitored":0}`, out)

	_, err = run("tracingpolicy", "get", "no-sh")
	assert.EqualError(t, err, "tracing policy not found: no-sh", "without -n: the cluster-scoped kind")
	_, err = run("tracingpolicy", "set-mode", "no-nc")
	assert.Error(t, err)
}

func TestWriteTracingRuleEntries(t *testing.T) {
	var b strings.Builder
	require.NoError(t, WriteTracingRuleEntries(&b, api.TracingRuleEntries{"syscall.slots": 3, "exec.slots": 0}))
	assert.Equal(t, "MAP            ENTRIES\nexec.slots     0\nsyscall.slots  3\n", b.String())
}
