package policymgr

import (
	"sync"

	"github.com/sluicenet/sluice/policy"
)

// RuleTable gives every rule reference a stable number (the RuleID carried in
// map entries and flow events) and maps numbers back. 0 is "no rule". It is
// safe for concurrent use.
type RuleTable struct {
	mu    sync.RWMutex
	ids   map[policy.RuleRef]uint32
	rules []policy.RuleRef // index id-1
}

// NewRuleTable returns an empty table.
func NewRuleTable() *RuleTable { return &RuleTable{ids: map[policy.RuleRef]uint32{}} }

// ID returns the rule's number, assigning the next one to a new rule.
func (t *RuleTable) ID(r policy.RuleRef) uint32 {
	if r == (policy.RuleRef{}) {
		return 0
	}
	t.mu.RLock()
	id, ok := t.ids[r]
	t.mu.RUnlock()
	if ok {
		return id
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.ids[r]; ok {
		return id
	}
	t.rules = append(t.rules, r)
	id = uint32(len(t.rules))
	t.ids[r] = id
	return id
}

// Lookup returns the rule of a number.
func (t *RuleTable) Lookup(id uint32) (policy.RuleRef, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if id == 0 || int(id) > len(t.rules) {
		return policy.RuleRef{}, false
	}
	return t.rules[id-1], true
}

// Len returns how many rules have numbers.
func (t *RuleTable) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.rules)
}
