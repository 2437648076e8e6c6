package tracingmgr

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicenet/sluice/agent/api"
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
	return p
}

// PolicyEvent names the policy of an exec rule's event (id is
// ExecRule.PolicyID) and counts it: one event posted, and for Sigkill and
// Signal one action enforced or monitored. ok is false for a policy that is
// gone.
func (m *Manager) PolicyEvent(id uint32, action procsensor.ExecAction, enforced bool) (name string, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.byID[id]
	if e == nil {
		return "", false
	}
	e.posted++
	label := actionLabel(action, enforced)
	if action == procsensor.ExecSigkill || action == procsensor.ExecSignal {
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
// nopost, sigkill, signal, and would_sigkill / would_signal when monitored.
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
	default:
		return "unknown"
	}
	if !enforced {
		s = "would_" + s
	}
	return s
}
