package tracingmgr

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"k8s.io/apimachinery/pkg/types"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/process"
	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/policy/tracing"
)

// Sync writes the rules, binary classes and scopes the policies want: the
// rules of the accepted policies in their slots of each table, and for
// every network namespace of a selected pod's endpoint (every cgroup of a
// selected container, for containerSelector policies) the union of the
// slots of the policies selecting it. Slots whose rule changes are first
// taken out of every scope, so a pod never runs under a rule meant for
// others while a table is replaced; new classes are written before the
// rules that test them, and classes no rule tests any more are removed
// after the rules. full rewrites everything; otherwise only what differs
// from what was written.
func (m *Manager) Sync(full bool) error {
	eps, err := m.cfg.Endpoints.List()
	if err != nil {
		return fmt.Errorf("list endpoints: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.adoptClasses()
	p := allocate(m.accepted(), m.classIDs)
	for _, e := range m.entries {
		e.refused, e.alloc = p.refused[e], allocation{}
	}
	for _, a := range p.allocs {
		a.e.alloc = a
	}
	m.classIDs = p.classIDs
	if !reflect.DeepEqual(m.hooks, p.hooks) {
		m.prevHooks, m.hooks = m.hooks, p.hooks
	}
	want := m.scopesFor(p.allocs, eps)

	classesChanged := ^uint64(0)
	if m.classesKnown {
		classesChanged = classDiff(m.classes, p.classes)
	}
	var errs []error
	errs = append(errs, m.exec.unscope(p.exec, 0, full)...)
	if m.sys != nil {
		errs = append(errs, m.sys.unscope(p.sys, classesChanged, full)...)
	}
	if m.conn != nil {
		errs = append(errs, m.conn.unscope(p.conn, classesChanged, full)...)
	}
	if m.sys != nil {
		// The classes of the old rules stay until those are replaced.
		if err := m.setClasses(withOld(p.classes, m.classes), full); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}
	written := true
	if err := m.exec.write(p.exec, full); err != nil {
		errs, written = append(errs, err), false
	}
	errs = append(errs, m.exec.rescope(want.exec, full)...)
	if m.sys != nil {
		if err := m.sys.write(p.sys, full); err != nil {
			errs, written = append(errs, err), false
		}
		errs = append(errs, m.sys.rescope(want.sys, full)...)
	}
	if m.conn != nil {
		if err := m.conn.write(p.conn, full); err != nil {
			errs, written = append(errs, err), false
		}
		errs = append(errs, m.conn.rescope(want.conn, full)...)
	}
	if m.sys != nil && written {
		errs = append(errs, m.setClasses(p.classes, false))
	}
	return errors.Join(errs...)
}

// adoptClasses takes in, once, the binary classes an earlier agent left in
// the kernel (pinned maps): a class keeps its id, so the rules that test
// it are the same rules and stay scoped, and a class no rule tests any
// more stays until the rules are replaced, as within one run. Called with
// mu held.
func (m *Manager) adoptClasses() {
	l, ok := m.cfg.Syscalls.(classKernel)
	if m.classesAdopted || m.classesKnown || !ok {
		return
	}
	cs, err := l.BinaryClasses()
	if err != nil {
		m.cfg.Log.WithError(err).Warn("Cannot read the binary classes in the kernel; rewriting them")
		return
	}
	m.classesAdopted = true
	for _, c := range cs {
		k := newClassKey(c.Exact, c.Prefixes, c.FollowChildren)
		if _, ok := m.classIDs[k]; !ok {
			m.classIDs[k] = c.ID
		}
	}
	m.classes, m.classesKnown = cs, true
}

// setClasses writes the binary classes when they differ from the kernel's
// (or full). Called with mu held.
func (m *Manager) setClasses(cs []procsensor.BinaryClass, full bool) error {
	if m.classesKnown && !full && reflect.DeepEqual(cs, m.classes) {
		return nil
	}
	if err := m.cfg.Syscalls.SetBinaryClasses(cs); err != nil {
		m.classesKnown = false
		return fmt.Errorf("set binary classes: %w", err)
	}
	m.classes, m.classesKnown = cs, true
	return nil
}

// withOld returns the classes cs with those of old whose id cs does not use.
func withOld(cs, old []procsensor.BinaryClass) []procsensor.BinaryClass {
	out := slices.Clone(cs)
	for _, o := range old {
		if !slices.ContainsFunc(cs, func(c procsensor.BinaryClass) bool { return c.ID == o.ID }) {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b procsensor.BinaryClass) int { return int(a.ID) - int(b.ID) })
	return out
}

// classDiff returns the ids whose class differs between old and new.
func classDiff(old, new []procsensor.BinaryClass) uint64 {
	byID := func(cs []procsensor.BinaryClass) map[uint8]procsensor.BinaryClass {
		out := map[uint8]procsensor.BinaryClass{}
		for _, c := range cs {
			out[c.ID] = c
		}
		return out
	}
	o, n := byID(old), byID(new)
	var diff uint64
	for id := range uint8(procsensor.MaxBinaryClasses) {
		oc, inOld := o[id]
		nc, inNew := n[id]
		if inOld != inNew || !reflect.DeepEqual(oc, nc) {
			diff |= 1 << id
		}
	}
	return diff
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

// scopes are the slots of each table per network namespace inode and per
// cgroup id.
type scopes struct {
	exec, sys, conn map[scopeKey]uint64
}

// add adds the slots of a to key's scope in each table.
func (s scopes) add(key scopeKey, a allocation) {
	for _, t := range []struct {
		to    map[scopeKey]uint64
		slots uint64
	}{{s.exec, a.slots}, {s.sys, a.sysSlots}, {s.conn, a.connSlots}} {
		if t.slots != 0 {
			t.to[key] |= t.slots
		}
	}
}

// scopesFor returns, per table, the slots of the non-global policies that
// select the pod of an endpoint: those without a containerSelector by the
// endpoint's network namespace inode, those with one by the cgroup id of
// each container of the pod's status it selects. Endpoints whose namespace
// cannot be read any more are skipped (the pod is going), and so are
// containers whose cgroup is not found (not started yet, or gone). Called
// with mu held.
func (m *Manager) scopesFor(allocs []allocation, eps []api.Endpoint) scopes {
	out := scopes{exec: map[scopeKey]uint64{}, sys: map[scopeKey]uint64{}, conn: map[scopeKey]uint64{}}
	byContainer := map[string]allocation{} // container id -> slots
	for _, ep := range eps {
		var sel allocation
		pod := m.pods[types.NamespacedName{Namespace: ep.PodNamespace, Name: ep.PodName}]
		for _, a := range allocs {
			if a.e.global() || !m.selects(a.e, ep, pod) {
				continue
			}
			if !a.e.byCgroup() {
				sel.add(a)
				continue
			}
			for _, c := range pod.containers {
				if c.id != "" && tracing.ContainerMatches(a.e.compiled.ContainerSelector, c.fields) {
					cs := byContainer[c.id]
					cs.add(a)
					byContainer[c.id] = cs
				}
			}
		}
		if sel.slots|sel.sysSlots|sel.connSlots == 0 || ep.NetNS == "" {
			continue
		}
		ino, err := process.EndpointNetNS(ep)
		if err != nil {
			m.cfg.Log.WithError(err).WithField("endpoint", ep.Key()).Debug("Endpoint's network namespace not readable; no scope")
			continue
		}
		out.add(netnsKey(ino), sel)
	}
	if len(byContainer) == 0 {
		return out
	}
	ids := slices.Sorted(maps.Keys(byContainer))
	found := m.cfg.Cgroups.ContainerCgroups(ids)
	for _, id := range ids {
		cg, ok := found[id]
		if !ok {
			m.cfg.Log.WithField("container", id).Debug("Container's cgroup not found; no scope")
			continue
		}
		out.add(cgroupKey(cg), byContainer[id])
	}
	return out
}

// add adds the slots of b to a.
func (a *allocation) add(b allocation) {
	a.slots |= b.slots
	a.sysSlots |= b.sysSlots
	a.connSlots |= b.connSlots
}

// selects reports whether a pod-scoped policy applies to the pod of ep: of
// the policy's namespace for the namespaced kind, with labels its pod
// selector matches (every pod when it has none).
func (m *Manager) selects(e *entry, ep api.Endpoint, pod podInfo) bool {
	if e.ref.Kind == tracing.KindTracingPolicyNamespaced && ep.PodNamespace != e.ref.Namespace {
		return false
	}
	if e.selector == nil {
		return true
	}
	return e.selector.Matches(pod.labels)
}
