package process

import (
	"time"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/procsensor"
)

// PolicyNames names the tracing policy of an exec rule's event and counts
// the event (*tracingmgr.Manager). ok is false for a policy that is gone.
type PolicyNames interface {
	PolicyEvent(id uint32, action procsensor.ExecAction, enforced bool) (name string, ok bool)
}

// Tetragon's names of the actions, for process_tracepoint events.
const (
	ActionPost    = "KPROBE_ACTION_POST"
	ActionNoPost  = "KPROBE_ACTION_NOPOST"
	ActionSigkill = "KPROBE_ACTION_SIGKILL"
	ActionSignal  = "KPROBE_ACTION_SIGNAL"
)

// ActionName returns Tetragon's name of an exec rule's action.
func ActionName(a procsensor.ExecAction) string {
	switch a {
	case procsensor.ExecPost:
		return ActionPost
	case procsensor.ExecNoPost:
		return ActionNoPost
	case procsensor.ExecSigkill:
		return ActionSigkill
	case procsensor.ExecSignal:
		return ActionSignal
	}
	return "KPROBE_ACTION_UNKNOWN"
}

// handleEnforcement publishes the process_tracepoint event of an exec rule
// that matched (sched_process_exec; the argument is the binary exec'd), with
// the process lineage the cache knows, and counts it for its policy. NoPost
// matches publish nothing.
func (m *Manager) handleEnforcement(x *procsensor.Enforcement) {
	if x.Action == procsensor.ExecNoPost {
		return
	}
	var name string
	if m.cfg.Policies != nil {
		name, _ = m.cfg.Policies.PolicyEvent(x.PolicyID, x.Action, x.Enforced)
	}
	m.mu.Lock()
	l, ok := m.cache.lookup(x.Key)
	m.mu.Unlock()
	if !ok {
		l.proc = m.unknown(x.Key)
	}
	if l.proc.Binary != x.Filename {
		// The exec event of the new image has not been seen (or never
		// comes: the process was killed before it ran).
		cp := *l.proc
		cp.Binary, cp.Arguments = x.Filename, ""
		l.proc = &cp
	}
	l.proc = m.enteredPod(l.proc, x.NetNS)
	tp := &api.ProcessTracepoint{
		Process: l.proc, Parent: l.parent, Ancestors: l.ancestors,
		Subsys: "sched", Event: "sched_process_exec", Args: []api.TracepointArg{api.StringArg("filename", x.Filename)},
		Action: ActionName(x.Action), Enforced: x.Enforced, PolicyName: name,
	}
	m.publish(&api.ProcessEvent{ProcessTracepoint: tp}, l, time.Now())
}
