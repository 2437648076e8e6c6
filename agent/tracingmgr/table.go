package tracingmgr

import (
	"fmt"
	"maps"
	"reflect"
)

// scopeKey is what a scope entry is keyed by: a network namespace inode (a
// pod's: the slots of pod-scoped policies) or, with cgroup, a cgroup v2 id
// (a container's: the slots of containerSelector policies).
type scopeKey struct {
	cgroup bool
	id     uint64
}

func (k scopeKey) String() string {
	if k.cgroup {
		return fmt.Sprintf("cgroup %d", k.id)
	}
	return fmt.Sprintf("netns %d", k.id)
}

func netnsKey(ino uint32) scopeKey { return scopeKey{id: uint64(ino)} }
func cgroupKey(id uint64) scopeKey { return scopeKey{cgroup: true, id: id} }

// scopeFuncs write one table's scopes of both kinds.
type scopeFuncs struct {
	set       func(netns uint32, slots uint64) error
	del       func(netns uint32) error
	setCgroup func(cgroup, slots uint64) error
	delCgroup func(cgroup uint64) error
}

// table is one kernel rule table with its scopes (per network namespace and
// per cgroup) (exec, syscall or connect rules), and what it holds after the
// last successful calls.
type table[R any] struct {
	name   string // in errors: "set exec rules"
	set    func([]R) error
	scopeF scopeFuncs
	// info returns a rule's slot and the binary class ids it tests.
	info func(R) (slot uint8, classes uint64)
	// kernelScopes, when set, reads the scopes the kernel holds (pinned
	// maps that outlive the agent): the first sync takes them in, so that
	// those of pods and containers gone while the agent was down are
	// deleted.
	kernelScopes func() (map[scopeKey]uint64, error)
	adopted      bool
	// kernelChanged, when set, returns the slots whose rule in the kernel
	// (an earlier agent's, in pinned maps) differs from rules: until the
	// table knows what it wrote, only those are taken out of the scopes,
	// so a rule the restart keeps matches throughout.
	kernelChanged func([]R) (uint64, error)

	rules  []R
	known  bool
	scopes map[scopeKey]uint64
	// Of the sync in progress: the slots whose rule changes, and whether
	// writing the rules failed.
	changed uint64
	failed  bool
}

func newTable[R any](name string, set func([]R) error, sf scopeFuncs, info func(R) (uint8, uint64)) *table[R] {
	return &table[R]{name: name, set: set, scopeF: sf, info: info, scopes: map[scopeKey]uint64{}}
}

// unscope starts a sync towards rules: the slots whose rule differs from
// the table's (or tests a class in classesChanged, old rule or new) are taken
// out of every scope, so a pod never runs under a rule meant for others
// while the table is replaced.
func (t *table[R]) unscope(rules []R, classesChanged uint64, full bool) []error {
	t.failed = false
	t.changed = t.changedSlots(rules, classesChanged)
	var errs []error
	if !t.known {
		t.changed = ^uint64(0)
		if t.kernelChanged != nil {
			c, err := t.kernelChanged(rules)
			if err == nil {
				t.changed = c | t.classSlots(rules, classesChanged)
			} else {
				errs = append(errs, fmt.Errorf("compare %s rules with the kernel's: %w", t.name, err))
			}
		}
	}
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
func (t *table[R]) rescope(want map[scopeKey]uint64, full bool) []error {
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

// scope writes one namespace's or cgroup's slots (0: deletes it) and
// records what the kernel holds.
func (t *table[R]) scope(k scopeKey, slots uint64) error {
	if slots == 0 {
		var err error
		if k.cgroup {
			err = t.scopeF.delCgroup(k.id)
		} else {
			err = t.scopeF.del(uint32(k.id))
		}
		if err != nil {
			return fmt.Errorf("delete %s scope of %s: %w", t.name, k, err)
		}
		delete(t.scopes, k)
		return nil
	}
	var err error
	if k.cgroup {
		err = t.scopeF.setCgroup(k.id, slots)
	} else {
		err = t.scopeF.set(uint32(k.id), slots)
	}
	if err != nil {
		delete(t.scopes, k) // unknown: rewritten at the next sync
		return fmt.Errorf("set %s scope of %s: %w", t.name, k, err)
	}
	t.scopes[k] = slots
	return nil
}

// classSlots returns the slots of rules that test a class of classes.
func (t *table[R]) classSlots(rules []R, classes uint64) uint64 {
	var out uint64
	for _, r := range rules {
		if s, cls := t.info(r); cls&classes != 0 {
			out |= 1 << s
		}
	}
	return out
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
