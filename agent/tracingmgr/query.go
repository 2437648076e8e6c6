package tracingmgr

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/process"
	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/policy/tracing"
)

// ErrNotFound is returned for a policy the manager does not hold.
var ErrNotFound = api.ErrTracingPolicyNotFound

// policyName names a policy in events and metrics: namespace/name for the
// namespaced kind, name for the cluster-scoped one.
func policyName(ref tracing.Ref) string {
	if ref.Namespace == "" {
		return ref.Name
	}
	return ref.Namespace + "/" + ref.Name
}

// List returns every policy, by kind, namespace and name.
func (m *Manager) List() []api.TracingPolicy {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]api.TracingPolicy, 0, len(m.entries))
	for _, e := range m.entries {
		out = append(out, e.api())
	}
	slices.SortFunc(out, func(a, b api.TracingPolicy) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// Get returns one policy.
func (m *Manager) Get(ref tracing.Ref) (api.TracingPolicy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[ref]
	if e == nil {
		return api.TracingPolicy{}, fmt.Errorf("%s %s: %w", ref.Kind, policyName(ref), ErrNotFound)
	}
	return e.api(), nil
}

// SetMode overrides a policy's mode until the object's own mode changes,
// and schedules a sync that rewrites its rules.
func (m *Manager) SetMode(ref tracing.Ref, mode tracing.Mode) error {
	if mode != tracing.ModeEnforce && mode != tracing.ModeMonitor {
		return fmt.Errorf("mode %q: want %s or %s", mode, tracing.ModeEnforce, tracing.ModeMonitor)
	}
	m.mu.Lock()
	e := m.entries[ref]
	switch {
	case e == nil:
		m.mu.Unlock()
		return fmt.Errorf("%s %s: %w", ref.Kind, policyName(ref), ErrNotFound)
	case e.compiled == nil:
		m.mu.Unlock()
		return fmt.Errorf("%s %s is rejected: %s", ref.Kind, policyName(ref), e.reason)
	}
	e.override = mode
	m.mu.Unlock()
	m.Changed()
	return nil
}

func (e *entry) api() api.TracingPolicy {
	p := api.TracingPolicy{
		Kind: e.ref.Kind, Namespace: e.ref.Namespace, Name: e.ref.Name,
		Mode: string(e.mode()), Accepted: e.compiled != nil && e.refused == "",
		Reason:       cmp.Or(e.reason, e.refused),
		EventsPosted: e.posted, ActionsEnforced: e.enforced, ActionsMonitored: e.monitored,
		ModeOverridden: e.override != "",
	}
	if e.compiled != nil {
		p.Hooks = e.hooks()
		p.Classes = bitList(e.alloc.classes)
	}
	return p
}

// hooks lists the policy's hooks with the slots of their selectors.
func (e *entry) hooks() []api.TracingPolicyHook {
	var out []api.TracingPolicyHook
	if len(e.rules) > 0 {
		out = append(out, api.TracingPolicyHook{Table: "exec", Hook: "sched/sched_process_exec", Slots: bitList(e.alloc.slots)})
	}
	sys := bitList(e.alloc.sysSlots)
	for i, tp := range e.compiled.Tracepoints {
		h := api.TracingPolicyHook{Table: "syscall", Hook: tp.Subsystem + "/" + tp.Event}
		var nrs []uint32
		all := false
		for k, r := range e.sys {
			if r.tp != i {
				continue
			}
			all = all || len(r.rule.Syscalls) == 0
			nrs = append(nrs, r.rule.Syscalls...)
			if k < len(sys) {
				h.Slots = append(h.Slots, sys[k])
			}
		}
		if !all {
			for _, nr := range sortedUnique(nrs) {
				h.Syscalls = append(h.Syscalls, cmp.Or(tracing.SyscallName(nr), fmt.Sprintf("#%d", nr)))
			}
		}
		out = append(out, h)
	}
	conn := bitList(e.alloc.connSlots)
	for i := range e.compiled.Connects {
		h := api.TracingPolicyHook{Table: "connect", Hook: process.ConnectSubsys + "/" + process.ConnectEvent}
		for k, r := range e.conn {
			if r.entry == i && k < len(conn) {
				h.Slots = append(h.Slots, conn[k])
			}
		}
		out = append(out, h)
	}
	return out
}

// bitList returns the set bits of b, lowest first.
func bitList(b uint64) []int {
	var out []int
	for ; b != 0; b &= b - 1 {
		out = append(out, bits.TrailingZeros64(b))
	}
	return out
}

// SyscallHook describes the tracepoint of a syscall rule's events by the
// rule's policy and slot; an event the sensor sent before the slots last
// moved finds its rule among the previous ones.
func (m *Manager) SyscallHook(policyID uint32, slot uint8) (process.SyscallHook, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.hooks[slotRef{policyID, slot}]; ok {
		return h, true
	}
	h, ok := m.prevHooks[slotRef{policyID, slot}]
	return h, ok
}

// PolicyEvent names the policy of an exec, syscall or connect rule's event
// (id is the rule's PolicyID) and counts it: one event posted, and for
// Sigkill, Signal and deny (connect rules' Override) one action enforced or
// monitored. ok is false for a policy that is gone.
func (m *Manager) PolicyEvent(id uint32, action procsensor.ExecAction, enforced bool) (name string, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.byID[id]
	if e == nil {
		return "", false
	}
	e.posted++
	label := actionLabel(action, enforced)
	if action == procsensor.ExecSigkill || action == procsensor.ExecSignal || action == procsensor.ConnectDeny {
		if enforced {
			e.enforced++
		} else {
			e.monitored++
		}
	}
	name = policyName(e.ref)
	m.events.With(prometheus.Labels{"policy": name, "action": label}).Inc()
	return name, true
}

// actionLabel names an action for metrics and compact event lines: post,
// nopost, sigkill, signal, deny, and would_sigkill / would_signal /
// would_deny when monitored.
func actionLabel(action procsensor.ExecAction, enforced bool) string {
	var s string
	switch action {
	case procsensor.ExecPost:
		return "post"
	case procsensor.ExecNoPost:
		return "nopost"
	case procsensor.ExecSigkill:
		s = "sigkill"
	case procsensor.ExecSignal:
		s = "signal"
	case procsensor.ConnectDeny:
		s = "deny"
	default:
		return "unknown"
	}
	if !enforced {
		s = "would_" + s
	}
	return s
}
