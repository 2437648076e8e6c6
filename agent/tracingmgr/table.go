package tracingmgr

import (
	"fmt"
	"maps"
	"reflect"
)

// table is one kernel rule table with its per-network-namespace scopes
// (exec, syscall or connect rules), and what it holds after the last
// successful calls.
type table[R any] struct {
	name     string // in errors: "set exec rules"
	set      func([]R) error
	setScope func(netns uint32, slots uint64) error
	delScope func(netns uint32) error
	// info returns a rule's slot and the binary class ids it tests.
	info func(R) (slot uint8, classes uint64)
	// kernelScopes, when set, reads the scopes the kernel holds (pinned
	// maps that outlive the agent): the first sync takes them in, so that
	// those of pods gone while the agent was down are deleted.
	kernelScopes func() (map[uint32]uint64, error)
	adopted      bool

	rules  []R
	known  bool
	scopes map[uint32]uint64
	// Of the sync in progress: the slots whose rule changes, and whether
	// writing the rules failed.
	changed uint64
	failed  bool
}

func newTable[R any](name string, set func([]R) error, setScope func(uint32, uint64) error, delScope func(uint32) error,
	info func(R) (uint8, uint64)) *table[R] {
	return &table[R]{name: name, set: set, setScope: setScope, delScope: delScope, info: info, scopes: map[uint32]uint64{}}
}

// unscope starts a sync towards rules: the slots whose rule differs from
// the table's (or tests a class in classesChanged, old rule or new) are taken
// out of every scope, so a pod never runs under a rule meant for others
// while the table is replaced.
func (t *table[R]) unscope(rules []R, classesChanged uint64, full bool) []error {
	t.failed = false
	t.changed = t.changedSlots(rules, classesChanged)
	if !t.known {
		t.changed = ^uint64(0)
	}
	var errs []error
	if t.kernelScopes != nil && !t.adopted {
		in, err := t.kernelScopes()
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s scopes: %w", t.name, err))
		}
		for ns, slots := range in {
			if _, ok := t.scopes[ns]; !ok {
				t.scopes[ns] = slots
			}
		}
		t.adopted = err == nil
	}
	if t.changed != 0 || full {
		for ns, slots := range t.scopes {
			if slots&t.changed != 0 {
				errs = append(errs, t.scope(ns, slots&^t.changed))
			}
		}
	}
	return errs
}

// write replaces the rules when unscope found a change (or full).
func (t *table[R]) write(rules []R, full bool) error {
	if t.changed == 0 && !full {
		return nil
	}
	if err := t.set(rules); err != nil {
		t.known, t.failed = false, true
		return fmt.Errorf("set %s rules: %w", t.name, err)
	}
	t.rules, t.known = rules, true
	return nil
}

// rescope writes the scopes want holds and deletes the others (nothing when
// write failed: the next sync starts again).
func (t *table[R]) rescope(want map[uint32]uint64, full bool) []error {
	if t.failed {
		return nil
	}
	var errs []error
	for ns, slots := range want {
		if full || t.scopes[ns] != slots {
			errs = append(errs, t.scope(ns, slots))
		}
	}
	for ns := range maps.Clone(t.scopes) {
		if _, ok := want[ns]; !ok {
			errs = append(errs, t.scope(ns, 0))
		}
	}
	return errs
}

// scope writes one namespace's slots (0: deletes it) and records what the
// kernel holds.
func (t *table[R]) scope(ns uint32, slots uint64) error {
	if slots == 0 {
		if err := t.delScope(ns); err != nil {
			return fmt.Errorf("delete %s scope of netns %d: %w", t.name, ns, err)
		}
		delete(t.scopes, ns)
		return nil
	}
	if err := t.setScope(ns, slots); err != nil {
		delete(t.scopes, ns) // unknown: rewritten at the next sync
		return fmt.Errorf("set %s scope of netns %d: %w", t.name, ns, err)
	}
	t.scopes[ns] = slots
	return nil
}

// changedSlots returns the slots whose rule differs between the table and
// rules (one that exists in only one of them included), or whose rule tests
// a class of classes.
func (t *table[R]) changedSlots(rules []R, classes uint64) uint64 {
	bySlot := func(rs []R) map[uint8]R {
		out := make(map[uint8]R, len(rs))
		for _, r := range rs {
			s, _ := t.info(r)
			out[s] = r
		}
		return out
	}
	o, n := bySlot(t.rules), bySlot(rules)
	var changed uint64
	for s, r := range o {
		_, cls := t.info(r)
		if nr, ok := n[s]; !ok || !reflect.DeepEqual(r, nr) || cls&classes != 0 {
			changed |= 1 << s
		}
	}
	for s, r := range n {
		_, cls := t.info(r)
		if _, ok := o[s]; !ok || cls&classes != 0 {
			changed |= 1 << s
		}
	}
	return changed
}
