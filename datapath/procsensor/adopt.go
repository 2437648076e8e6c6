package procsensor

import (
	"fmt"
	"math/bits"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/maputil"
)

// The rule maps are pinned (pins.go): an earlier sensor may have left
// rules in them. The first SetExecRules/SetSyscallRules reads what they
// hold into the state (adoptExec, adoptSys), so it converges them to the
// new set (stale entries found and removed) the way any later call does.

// activeSlots reads the values of the active slots from the slots array m
// (named name).
func activeSlots[V any](m *ebpf.Map, name string, active uint64) (map[uint8]V, error) {
	out := map[uint8]V{}
	for a := active; a != 0; a &= a - 1 {
		slot := uint8(bits.TrailingZeros64(a))
		var v V
		if err := m.Lookup(uint32(slot), &v); err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		out[slot] = v
	}
	return out, nil
}

// adoptExec reads the exec rule maps into the state once.
func (s *Sensor) adoptExec() error {
	st := &s.exec
	if st.adopted {
		return nil
	}
	st.exact, st.prefix = map[string]uint64{}, map[string]uint64{}
	if err := s.maps[execConfigMap].Lookup(uint32(0), &st.cfg); err != nil {
		return fmt.Errorf("read %s: %w", execConfigMap, err)
	}
	var err error
	if st.slots, err = activeSlots[bpfgen.ProcessExecSlot](s.maps[execSlotsMap], execSlotsMap, st.cfg.Active); err != nil {
		return err
	}
	if err := maputil.Dump(s.maps[execExactMap], func(k bpfgen.ProcessExecPath, v uint64) {
		st.exact[cString(k.Path[:])] = v
	}); err != nil {
		return fmt.Errorf("read %s: %w", execExactMap, err)
	}
	if err := maputil.Dump(s.maps[execPrefixMap], func(k bpfgen.ProcessExecPrefixKey, v uint64) {
		st.prefix[goString(k.Path[:min(int(k.Prefixlen/8), len(k.Path))])] = v
	}); err != nil {
		return fmt.Errorf("read %s: %w", execPrefixMap, err)
	}
	st.adopted = true
	return nil
}

// adoptSys reads the syscall rule maps into the state once.
func (s *Sensor) adoptSys() error {
	st := &s.sys
	if st.adopted {
		return nil
	}
	st.nrs = map[uint32]bpfgen.ProcessSysNr{}
	st.str, st.postfix = map[string]uint64{}, map[string]uint64{}
	if err := s.maps[sysConfigMap].Lookup(uint32(0), &st.cfg); err != nil {
		return fmt.Errorf("read %s: %w", sysConfigMap, err)
	}
	var err error
	if st.slots, err = activeSlots[bpfgen.ProcessSysSlot](s.maps[sysSlotsMap], sysSlotsMap, st.cfg.Active); err != nil {
		return err
	}
	if err := maputil.Dump(s.maps[sysNrMap], func(nr uint32, v bpfgen.ProcessSysNr) {
		if v != (bpfgen.ProcessSysNr{}) {
			st.nrs[nr] = v
		}
	}); err != nil {
		return fmt.Errorf("read %s: %w", sysNrMap, err)
	}
	for name, cur := range map[string]map[string]uint64{sysStrMap: st.str, sysPostfixMap: st.postfix} {
		if err := maputil.Dump(s.maps[name], func(k bpfgen.ProcessSysStrKey, v uint64) {
			n := min(max(int(k.Prefixlen/8)-1, 0), len(k.Str))
			cur[string([]byte{k.Id})+goString(k.Str[:n])] = v
		}); err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
	}
	st.adopted = true
	return nil
}

// adoptClasses reads the path entries of the binary class maps into the
// state.
func (s *Sensor) adoptClasses() error {
	exact, prefix := map[string]uint64{}, map[string]uint64{}
	if err := maputil.Dump(s.maps[classExactMap], func(k bpfgen.ProcessClassPath, v uint64) {
		exact[cString(k.Path[:])] = v
	}); err != nil {
		return fmt.Errorf("read %s: %w", classExactMap, err)
	}
	if err := maputil.Dump(s.maps[classPrefixMap], func(k bpfgen.ProcessClassPrefixKey, v uint64) {
		prefix[goString(k.Path[:min(int(k.Prefixlen/8), len(k.Path))])] = v
	}); err != nil {
		return fmt.Errorf("read %s: %w", classPrefixMap, err)
	}
	s.class.exact, s.class.prefix = exact, prefix
	return nil
}

func goString(b []int8) string {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = byte(c)
	}
	return string(out)
}

// cString returns b up to its first NUL.
func cString(b []int8) string {
	str := goString(b)
	if i := strings.IndexByte(str, 0); i >= 0 {
		return str[:i]
	}
	return str
}

// ownPrefixes returns the prefix trie entries (execPathBits) without the
// bits they carry for a shorter prefix in the trie: what decides whether a
// slot's prefixes changed (a shorter prefix still answers for those).
func ownPrefixes(prefix map[string]uint64) map[string]uint64 {
	own := make(map[string]uint64, len(prefix))
	for p, v := range prefix {
		for q, b := range prefix {
			if len(q) < len(p) && strings.HasPrefix(p, q) {
				v &^= b
			}
		}
		if v != 0 {
			own[p] = v
		}
	}
	return own
}

// execChanged returns the active slots whose match changes from what the
// maps hold (st) to the new configuration: a path entry, a scope or match
// mask, the inherited slots, or the slot's flags but enforcement. Removed
// slots are changed. Their policy, action, signal and mode may change
// without: the slot value is written in one step.
func execChanged(st *execState, cfg bpfgen.ProcessExecConfig, values map[uint8]bpfgen.ProcessExecSlot,
	exact, prefix map[string]uint64) uint64 {
	o := st.cfg
	changed := maputil.SlotBitsChanged(st.exact, exact) | maputil.SlotBitsChanged(ownPrefixes(st.prefix), ownPrefixes(prefix))
	// (Parenthesized: ^ binds no tighter than |.)
	changed |= o.Active&^cfg.Active | (o.Global ^ cfg.Global) | (o.Cgroup ^ cfg.Cgroup) | (o.Notin ^ cfg.Notin) |
		(o.Follow ^ cfg.Follow)
	const mode = uint8(bpfgen.ProcessExecSlotFlagEXEC_ENFORCE)
	for slot, v := range values {
		if old, ok := st.slots[slot]; ok && (old.Children != v.Children || (old.Flags^v.Flags)&^mode != 0) {
			changed |= 1 << slot
		}
	}
	return changed & o.Active
}

// keptFollow returns the inherited slots that stay meaningful from the
// maps to the new rules: the Children of followChildren rules whose slot
// was active with the same match and Children (changed: execChanged).
func keptFollow(st *execState, changed uint64, next map[uint8]ExecRule) uint64 {
	var keep uint64
	for slot, r := range next {
		if _, ok := st.slots[slot]; ok && r.FollowChildren && changed&(1<<slot) == 0 && st.cfg.Active&(1<<slot) != 0 {
			keep |= r.Children
		}
	}
	return keep
}

// sysChanged returns the active syscall slots whose match changes from
// what the maps hold (st) to the new configuration: a string entry, a
// syscall number, a scope or follow mask, or the slot's filters (all of
// its value but the policy, action, signal, mode and rate limit). Removed
// slots are changed.
func sysChanged(st *sysState, cfg bpfgen.ProcessSysConfig, values map[uint8]bpfgen.ProcessSysSlot,
	nrs map[uint32]bpfgen.ProcessSysNr, str, postfix map[string]uint64) uint64 {
	o := st.cfg
	changed := o.Active&^cfg.Active | (o.Global ^ cfg.Global) | (o.Cgroup ^ cfg.Cgroup) | (o.Follow ^ cfg.Follow)
	changed |= stringSlotsChanged(st.str, str) | stringSlotsChanged(st.postfix, postfix)
	for nr := range nrUnion(st.nrs, nrs) {
		a, b := st.nrs[nr], nrs[nr]
		changed |= (a.Enter ^ b.Enter) | (a.Exit ^ b.Exit)
	}
	for slot, v := range values {
		if old, ok := st.slots[slot]; ok && sysFilters(old) != sysFilters(v) {
			changed |= 1 << slot
		}
	}
	return changed & o.Active
}

// sysFilters is a slot value without what may change in one step.
func sysFilters(v bpfgen.ProcessSysSlot) bpfgen.ProcessSysSlot {
	v.PolicyId, v.Action, v.Signal, v.RateNs = 0, 0, 0, 0
	v.Flags &^= uint8(bpfgen.ProcessSysSlotFlagSYS_ENFORCE)
	return v
}

// stringSlotsChanged returns the slots of the string entries (id byte:
// slot<<2|filter) in one set only.
func stringSlotsChanged(cur, want map[string]uint64) uint64 {
	var changed uint64
	for k := range cur {
		if _, ok := want[k]; !ok {
			changed |= 1 << (k[0] >> 2)
		}
	}
	for k := range want {
		if _, ok := cur[k]; !ok {
			changed |= 1 << (k[0] >> 2)
		}
	}
	return changed
}

// keptSysSlots are the slots whose rule is the same in the maps and in
// the new set: their follow and rate-limit state stays.
func keptSysSlots(st *sysState, changed uint64, values map[uint8]bpfgen.ProcessSysSlot) uint64 {
	var keep uint64
	for slot, v := range values {
		if old, ok := st.slots[slot]; ok && old == v && changed&(1<<slot) == 0 && st.cfg.Active&(1<<slot) != 0 {
			keep |= 1 << slot
		}
	}
	return keep
}

// ExecRulesChanged returns the slots whose rule in the exec rule maps (an
// earlier agent's, after a restart) differs from rules, the policy id
// aside (an agent numbers its policies itself): a slot in one of them
// only, or whose match, action, signal or mode differs. An agent taking
// over pinned maps takes these slots out of its scopes before
// SetExecRules, and keeps the others scoped throughout.
func (s *Sensor) ExecRulesChanged(rules []ExecRule) (uint64, error) {
	byslot, err := checkExecRules(rules)
	if err != nil {
		return 0, err
	}
	st := &s.exec
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := s.adoptExec(); err != nil {
		return 0, err
	}
	exact, prefix := execPathBits(byslot)
	cfg, values := execConfig(byslot, exact, prefix)
	changed := execChanged(st, cfg, values, exact, prefix) | (st.cfg.Active ^ cfg.Active)
	for slot, v := range values {
		old := st.slots[slot]
		old.PolicyId, v.PolicyId = 0, 0
		if old != v {
			changed |= 1 << slot
		}
	}
	return changed, nil
}

// SyscallRulesChanged is ExecRulesChanged for the syscall rule maps.
func (s *Sensor) SyscallRulesChanged(rules []SyscallRule) (uint64, error) {
	byslot, err := checkSyscallRules(rules)
	if err != nil {
		return 0, err
	}
	st := &s.sys
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := s.adoptSys(); err != nil {
		return 0, err
	}
	str, postfix := sysStrings(byslot)
	cfg, values := sysConfig(byslot)
	changed := sysChanged(st, cfg, values, sysNrBits(byslot), str, postfix) | (st.cfg.Active ^ cfg.Active)
	for slot, v := range values {
		old := st.slots[slot]
		old.PolicyId, v.PolicyId = 0, 0
		if old != v {
			changed |= 1 << slot
		}
	}
	return changed, nil
}

// ExecScopes returns the exec rule scopes in the kernel (netns inode ->
// slots), for an agent to prune those of pods gone while it was down.
func (s *Sensor) ExecScopes() (map[uint32]uint64, error) { return readScopes[uint32](s, execScopeMap) }

// ExecCgroupScopes returns the exec rule scopes of cgroups in the kernel.
func (s *Sensor) ExecCgroupScopes() (map[uint64]uint64, error) {
	return readScopes[uint64](s, execCgMap)
}

// SyscallScopes returns the syscall rule scopes in the kernel (netns
// inode -> slots).
func (s *Sensor) SyscallScopes() (map[uint32]uint64, error) {
	return readScopes[uint32](s, sysScopeMap)
}

// SyscallCgroupScopes returns the syscall rule scopes of cgroups in the
// kernel.
func (s *Sensor) SyscallCgroupScopes() (map[uint64]uint64, error) {
	return readScopes[uint64](s, sysCgMap)
}

func readScopes[K comparable](s *Sensor, name string) (map[K]uint64, error) {
	out := map[K]uint64{}
	if err := maputil.Dump(s.maps[name], func(k K, v uint64) { out[k] = v }); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

// BinaryClasses returns the binary classes the class maps hold (an earlier
// agent's, after a restart), for an agent to keep their ids: each active
// class with its exact paths and the prefixes no shorter prefix of it
// covers, sorted.
func (s *Sensor) BinaryClasses() ([]BinaryClass, error) {
	st := &s.class
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.exact == nil {
		if err := s.adoptClasses(); err != nil {
			return nil, err
		}
	}
	var cfg bpfgen.ProcessClassConfig
	if err := s.maps[classConfigMap].Lookup(uint32(0), &cfg); err != nil {
		return nil, fmt.Errorf("read %s: %w", classConfigMap, err)
	}
	var out []BinaryClass
	own := ownPrefixes(st.prefix)
	for a := cfg.Active; a != 0; a &= a - 1 {
		id := uint8(bits.TrailingZeros64(a))
		c := BinaryClass{ID: id, FollowChildren: cfg.Follow&(1<<id) != 0}
		for _, p := range sortedKeys(st.exact) {
			if st.exact[p]&(1<<id) != 0 {
				c.Exact = append(c.Exact, p)
			}
		}
		for _, p := range sortedKeys(own) {
			if own[p]&(1<<id) != 0 {
				c.Prefixes = append(c.Prefixes, p)
			}
		}
		out = append(out, c)
	}
	return out, nil
}
