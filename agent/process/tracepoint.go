package process

import (
	"time"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/procsensor"
)

// PolicyNames names the tracing policy of a rule's event (exec, syscall or
// connect rule) and counts the event (*tracingmgr.Manager). ok is false for
// a policy that is gone.
type PolicyNames interface {
	PolicyEvent(id uint32, action procsensor.ExecAction, enforced bool) (name string, ok bool)
}

// Tetragon's names of the actions, for process_tracepoint events.
const (
	ActionPost    = "KPROBE_ACTION_POST"
	ActionNoPost  = "KPROBE_ACTION_NOPOST"
	ActionSigkill = "KPROBE_ACTION_SIGKILL"
	ActionSignal  = "KPROBE_ACTION_SIGNAL"
	// ActionOverride: a connect rule refused the connect (EPERM).
	ActionOverride = "KPROBE_ACTION_OVERRIDE"
)

// ActionName returns Tetragon's name of a rule's action.
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
	case procsensor.ConnectDeny:
		return ActionOverride
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
	tp := &api.ProcessTracepoint{
		Subsys: "sched", Event: "sched_process_exec", Args: []api.TracepointArg{api.StringArg("filename", x.Filename)},
		Action: ActionName(x.Action), Enforced: x.Enforced, PolicyName: m.policyEvent(x.PolicyID, x.Action, x.Enforced),
	}
	m.publishTracepoint(tp, x.Key, x.NetNS, x.Filename, time.Now())
}

// policyEvent names the policy of an event and counts it ("" when unknown).
func (m *Manager) policyEvent(id uint32, action procsensor.ExecAction, enforced bool) string {
	if m.cfg.Policies == nil {
		return ""
	}
	name, _ := m.cfg.Policies.PolicyEvent(id, action, enforced)
	return name
}

// publishTracepoint publishes a policy event about the process of key with
// the lineage the cache knows, in the pod of netns. A binary other than the
// cached process's (exec rules: the image exec'd, whose exec event has not
// been seen, or never comes as the process was killed before it ran)
// replaces it.
func (m *Manager) publishTracepoint(tp *api.ProcessTracepoint, key procsensor.Key, netns uint32, binary string, t time.Time) {
	m.mu.Lock()
	l, ok := m.cache.lookup(key)
	m.mu.Unlock()
	if !ok {
		l.proc = m.unknown(key)
	}
	if binary != "" && l.proc.Binary != binary {
		cp := *l.proc
		cp.Binary, cp.Arguments = binary, ""
		l.proc = &cp
	}
	l.proc = m.enteredPod(l.proc, netns)
	tp.Process, tp.Parent, tp.Ancestors = l.proc, l.parent, l.ancestors
	m.publish(&api.ProcessEvent{ProcessTracepoint: tp}, l, t)
}
