package tracingmgr

import (
	"errors"
	"fmt"
	"maps"
	"reflect"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/process"
	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/policy/tracing"
)

// Sync writes the exec rules and scopes the policies want: the rules of the
// accepted policies in their slots, and for every network namespace of a
// selected pod's endpoint the union of the slots of the policies selecting
// it. Slots whose rule changes are first taken out of every scope, so a pod
// never runs under a rule meant for others while the table is replaced.
// full rewrites everything; otherwise only what differs from what was
// written.
func (m *Manager) Sync(full bool) error {
	eps, err := m.cfg.Endpoints.List()
	if err != nil {
		return fmt.Errorf("list endpoints: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rules, allocs, refused := allocate(m.accepted())
	for _, e := range m.entries {
		e.refused, e.slots = refused[e], 0
	}
	for _, a := range allocs {
		a.e.slots = a.slots
	}
	want := m.scopesFor(allocs, eps)

	changed := changedSlots(m.rules, rules)
	if !m.rulesKnown {
		changed = ^uint64(0)
	}
	var errs []error
	if changed != 0 || full {
		for ns, slots := range m.scopes {
			if slots&changed != 0 {
				errs = append(errs, m.setScope(ns, slots&^changed))
			}
		}
		if err := m.cfg.Rules.SetExecRules(rules); err != nil {
			m.rulesKnown = false
			return errors.Join(append(errs, fmt.Errorf("set exec rules: %w", err))...)
		}
		m.rules, m.rulesKnown = rules, true
	}
	for ns, slots := range want {
		if full || m.scopes[ns] != slots {
			errs = append(errs, m.setScope(ns, slots))
		}
	}
	for ns := range maps.Clone(m.scopes) {
		if _, ok := want[ns]; !ok {
			errs = append(errs, m.setScope(ns, 0))
		}
	}
	return errors.Join(errs...)
}

// accepted returns the compiled policies. Called with mu held.
func (m *Manager) accepted() []*entry {
	var out []*entry
	for _, e := range m.entries {
		if e.compiled != nil {
			out = append(out, e)
		}
	}
	return out
}

// setScope writes one namespace's slots (0: deletes it) and records what
// the sensor holds. Called with mu held.
func (m *Manager) setScope(ns uint32, slots uint64) error {
	if slots == 0 {
		if err := m.cfg.Rules.DeleteExecScope(ns); err != nil {
			return fmt.Errorf("delete exec scope of netns %d: %w", ns, err)
		}
		delete(m.scopes, ns)
		return nil
	}
	if err := m.cfg.Rules.SetExecScope(ns, slots); err != nil {
		delete(m.scopes, ns) // unknown: rewritten at the next sync
		return fmt.Errorf("set exec scope of netns %d: %w", ns, err)
	}
	m.scopes[ns] = slots
	return nil
}

// changedSlots returns the slots whose rule differs between old and new
// (one that exists in only one of them included).
func changedSlots(old, new []procsensor.ExecRule) uint64 {
	bySlot := func(rs []procsensor.ExecRule) map[uint8]procsensor.ExecRule {
		out := make(map[uint8]procsensor.ExecRule, len(rs))
		for _, r := range rs {
			out[r.Slot] = r
		}
		return out
	}
	o, n := bySlot(old), bySlot(new)
	var changed uint64
	for s, r := range o {
		if nr, ok := n[s]; !ok || !reflect.DeepEqual(r, nr) {
			changed |= 1 << s
		}
	}
	for s := range n {
		if _, ok := o[s]; !ok {
			changed |= 1 << s
		}
	}
	return changed
}

// scopesFor returns, per network namespace inode, the slots of the
// non-global policies that select the pod of an endpoint there. Endpoints
// whose namespace cannot be read any more are skipped (the pod is going).
// Called with mu held.
func (m *Manager) scopesFor(allocs []allocation, eps []api.Endpoint) map[uint32]uint64 {
	out := map[uint32]uint64{}
	for _, ep := range eps {
		var slots uint64
		for _, a := range allocs {
			if !a.e.global() && m.selects(a.e, ep) {
				slots |= a.slots
			}
		}
		if slots == 0 || ep.NetNS == "" {
			continue
		}
		ino, err := process.EndpointNetNS(ep)
		if err != nil {
			m.cfg.Log.WithError(err).WithField("endpoint", ep.Key()).Debug("Endpoint's network namespace not readable; no exec scope")
			continue
		}
		out[ino] |= slots
	}
	return out
}

// selects reports whether a pod-scoped policy applies to the pod of ep: of
// the policy's namespace for the namespaced kind, with labels its pod
// selector matches (every pod when it has none).
func (m *Manager) selects(e *entry, ep api.Endpoint) bool {
	if e.ref.Kind == tracing.KindTracingPolicyNamespaced && ep.PodNamespace != e.ref.Namespace {
		return false
	}
	if e.selector == nil {
		return true
	}
	lbls := m.pods[types.NamespacedName{Namespace: ep.PodNamespace, Name: ep.PodName}]
	return e.selector.Matches(labels.Set(lbls))
}
