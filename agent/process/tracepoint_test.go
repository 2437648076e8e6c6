package process

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/procsensor"
)

// policyCounter is a PolicyNames that knows policy 7 and records calls.
type policyCounter struct{ calls []string }

func (p *policyCounter) PolicyEvent(id uint32, action procsensor.ExecAction, enforced bool) (string, bool) {
	p.calls = append(p.calls, ActionName(action))
	if id != 7 {
		return "", false
	}
	return "default/no-nc", true
}

func TestEnforcementEvent(t *testing.T) {
	pols := &policyCounter{}
	f := newFixture(t, Config{Policies: pols})
	f.seedChain(t, 2)
	f.exec(3, 2, "/bin/sh", "-c", "nc -l")

	// Killed at exec: the cache still has the shell; the event names the
	// binary exec'd, the lineage and the policy.
	f.m.Handle(procsensor.Event{Enforcement: &procsensor.Enforcement{
		Key: key(3), PolicyID: 7, Action: procsensor.ExecSigkill, Signal: 9, Enforced: true, Filename: "/usr/bin/nc",
	}})
	ev := f.rec.last(t)
	require.Equal(t, api.EventProcessTracepoint, ev.Kind())
	assert.Equal(t, testNode, ev.NodeName)
	assert.False(t, ev.Time.IsZero())
	tp := ev.ProcessTracepoint
	assert.Equal(t, "/usr/bin/nc", tp.Process.Binary)
	assert.Empty(t, tp.Process.Arguments, "the shell's arguments are not nc's")
	assert.Equal(t, ExecID(testNode, key(3)), tp.Process.ExecID)
	assert.Same(t, tp.Process, ev.Subject())
	assert.Equal(t, uint32(2), tp.Parent.PID)
	assert.Equal(t, []uint32{1}, pids(tp.Ancestors))
	assert.Equal(t, api.ProcessTracepoint{
		Process: tp.Process, Parent: tp.Parent, Ancestors: tp.Ancestors,
		Subsys: "sched", Event: "sched_process_exec", Args: []api.TracepointArg{api.StringArg("filename", "/usr/bin/nc")},
		Action: "KPROBE_ACTION_SIGKILL", Enforced: true, PolicyName: "default/no-nc",
	}, *tp)
	p, _, _ := f.m.Get(ExecID(testNode, key(3)))
	assert.Equal(t, "/bin/sh", p.Binary, "the cache is not changed by a policy event")

	// Monitor mode, after the exec event was seen; an unknown process and
	// policy still post.
	f.exec(4, 2, "/usr/bin/nc")
	f.m.Handle(procsensor.Event{Enforcement: &procsensor.Enforcement{Key: key(4), PolicyID: 7, Action: procsensor.ExecSigkill, Filename: "/usr/bin/nc"}})
	tp = f.rec.last(t).ProcessTracepoint
	assert.False(t, tp.Enforced)
	assert.Equal(t, "/usr/bin/nc", tp.Process.Binary)
	f.m.Handle(procsensor.Event{Enforcement: &procsensor.Enforcement{Key: key(99), PolicyID: 8, Action: procsensor.ExecPost, Filename: "/bin/x"}})
	tp = f.rec.last(t).ProcessTracepoint
	assert.Equal(t, "KPROBE_ACTION_POST", tp.Action)
	assert.Empty(t, tp.PolicyName)
	assert.Equal(t, uint32(99), tp.Process.PID)
	assert.Equal(t, float64(1), f.misses(t))

	// NoPost publishes and counts nothing.
	f.m.Handle(procsensor.Event{Enforcement: &procsensor.Enforcement{Key: key(4), PolicyID: 7, Action: procsensor.ExecNoPost, Filename: "/usr/bin/nc"}})
	assert.Empty(t, f.rec.take())
	assert.Equal(t, []string{"KPROBE_ACTION_SIGKILL", "KPROBE_ACTION_SIGKILL", "KPROBE_ACTION_POST"}, pols.calls)
}
