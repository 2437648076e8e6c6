package procsensor

import (
	"errors"
	"fmt"
	"math/bits"
	"sort"
	"strings"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/maputil"
)

// Exec rule maps (bpf/lib/process_rules.h), pinned by name like the
// sensor's links (pins.go): the rules outlive the agent.
const (
	execConfigMap = bpfgen.ProcessMapSluiceExecConfigV2
	execSlotsMap  = bpfgen.ProcessMapSluiceExecSlotsV1
	execExactMap  = bpfgen.ProcessMapSluiceExecExactV1
	execPrefixMap = bpfgen.ProcessMapSluiceExecPrefixV1
	execScopeMap  = bpfgen.ProcessMapSluiceExecScopeV1
	execCgMap     = bpfgen.ProcessMapSluiceExecCgscopeV1
	execFollowMap = bpfgen.ProcessMapSluiceExecFollowV1
)

// Path limits of the rule maps: an exact path fits its 256-byte key with a
// NUL to spare (a 255-byte read may have been cut), a prefix fills it.
const (
	execPathMax   = len(bpfgen.ProcessExecPath{}.Path)
	maxExactPath  = execPathMax - 2
	maxPrefixPath = execPathMax - 1
)

// execState is what the exec rule maps hold (read back from the pinned
// maps on first use: adoptExec), so SetExecRules writes only what changed
// and removes only what is stale.
type execState struct {
	mu      sync.Mutex
	adopted bool
	cfg     bpfgen.ProcessExecConfig
	slots   map[uint8]bpfgen.ProcessExecSlot // active slots
	exact   map[string]uint64
	prefix  map[string]uint64
}

// SetExecRules replaces the whole rule set. Slots whose match changes (or
// go) are made inactive first; then new and changed path entries are
// written and stale ones removed, then the per-slot configuration, then the
// slot masks that make slots active: a rule kept from the previous set
// (same slot, same match; its policy, action or mode may change) matches at
// every moment, also across an agent restart (the first call reads what an
// earlier agent left in the pinned maps), and a changed rule's slot never
// applies to the old rule's paths nor the old rule to the new paths. On
// error the maps hold a mix of the old and new sets, with the changed slots
// inactive; calling again with either converges.
func (s *Sensor) SetExecRules(rules []ExecRule) error {
	byslot, err := checkExecRules(rules)
	if err != nil {
		return err
	}
	st := &s.exec
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := s.adoptExec(); err != nil {
		return err
	}
	exact, prefix := execPathBits(byslot)
	cfg, values := execConfig(byslot, exact, prefix)
	changed := execChanged(st, cfg, values, exact, prefix)
	// Inherited slots of rules that went or changed meaning go before the
	// slot is reused.
	keep := keptFollow(st, changed, byslot)
	if changed != 0 {
		c := st.cfg
		c.Active &^= changed
		// The path flags keep the entries of both sets looked up meanwhile.
		c.Flags |= cfg.Flags
		if err := s.putExecConfig(c); err != nil {
			return err
		}
	}
	if err := s.putPaths(execExactMap, st.exact, exact, exactKey); err != nil {
		return err
	}
	if err := s.putPaths(execPrefixMap, st.prefix, prefix, prefixKey); err != nil {
		return err
	}
	// Stale entries hold only bits of inactive slots now (a kept slot has
	// the same entries, or the shorter prefix answers for it).
	if err := s.deletePaths(execExactMap, st.exact, exact, exactKey); err != nil {
		return err
	}
	if err := s.deletePaths(execPrefixMap, st.prefix, prefix, prefixKey); err != nil {
		return err
	}
	if err := s.purgeFollow(execFollowMap, keep); err != nil {
		return err
	}
	if err := putSlots(s.maps[execSlotsMap], "exec", st.slots, byslot, execSlotValue); err != nil {
		return err
	}
	if err := s.putExecConfig(cfg); err != nil {
		return err
	}
	return clearSlots(s.maps[execSlotsMap], "exec", st.slots, byslot)
}

func (s *Sensor) putExecConfig(cfg bpfgen.ProcessExecConfig) error {
	if err := s.maps[execConfigMap].Put(uint32(0), cfg); err != nil {
		return fmt.Errorf("write exec rule config: %w", err)
	}
	s.exec.cfg = cfg
	return nil
}

// execConfig returns the slot masks and slot values of rules.
func execConfig(byslot map[uint8]ExecRule, exact, prefix map[string]uint64) (bpfgen.ProcessExecConfig, map[uint8]bpfgen.ProcessExecSlot) {
	var cfg bpfgen.ProcessExecConfig
	values := make(map[uint8]bpfgen.ProcessExecSlot, len(byslot))
	for slot, r := range byslot {
		values[slot] = execSlotValue(r)
		bit := uint64(1) << slot
		cfg.Active |= bit
		if r.Global {
			cfg.Global |= bit
		}
		if r.Cgroup {
			cfg.Cgroup |= bit
		}
		if r.NotIn {
			cfg.Notin |= bit
		}
		if r.FollowChildren {
			cfg.Follow |= bit
		}
	}
	if len(exact) > 0 {
		cfg.Flags |= uint32(bpfgen.ProcessExecConfigFlagEXEC_HAS_EXACT)
	}
	if len(prefix) > 0 {
		cfg.Flags |= uint32(bpfgen.ProcessExecConfigFlagEXEC_HAS_PREFIX)
	}
	return cfg, values
}

// putSlots writes the slot values of the rules in want that cur (what the
// kernel holds) lacks or holds otherwise.
func putSlots[R any, V comparable](m *ebpf.Map, kind string, cur map[uint8]V, want map[uint8]R, value func(R) V) error {
	for slot, r := range want {
		v := value(r)
		if old, ok := cur[slot]; ok && old == v {
			continue
		}
		if err := m.Put(uint32(slot), v); err != nil {
			return fmt.Errorf("write %s rule slot %d: %w", kind, slot, err)
		}
		cur[slot] = v
	}
	return nil
}

// clearSlots zeroes the slots of cur that keep lacks.
func clearSlots[R any, V comparable](m *ebpf.Map, kind string, cur map[uint8]V, keep map[uint8]R) error {
	var zero V
	for slot := range cur {
		if _, ok := keep[slot]; ok {
			continue
		}
		if err := m.Put(uint32(slot), zero); err != nil {
			return fmt.Errorf("clear %s rule slot %d: %w", kind, slot, err)
		}
		delete(cur, slot)
	}
	return nil
}

// checkExecRules validates rules and returns them by slot, with Sigkill's
// signal and FollowChildren's default Children filled in.
func checkExecRules(rules []ExecRule) (map[uint8]ExecRule, error) {
	byslot := make(map[uint8]ExecRule, len(rules))
	for _, r := range rules {
		if r.Slot >= MaxExecRules {
			return nil, fmt.Errorf("exec rule slot %d: beyond %d slots", r.Slot, MaxExecRules)
		}
		if _, dup := byslot[r.Slot]; dup {
			return nil, fmt.Errorf("exec rule slot %d: given twice", r.Slot)
		}
		if err := checkPaths(r.Exact, r.Prefixes); err != nil {
			return nil, fmt.Errorf("exec rule slot %d: %w", r.Slot, err)
		}
		switch r.Action {
		case ExecPost, ExecNoPost:
			r.Signal = 0
		case ExecSigkill:
			r.Signal = 9
		case ExecSignal:
			if r.Signal == 0 || r.Signal > 64 {
				return nil, fmt.Errorf("exec rule slot %d: signal %d: not 1..64", r.Slot, r.Signal)
			}
		default:
			return nil, fmt.Errorf("exec rule slot %d: unknown action %d", r.Slot, r.Action)
		}
		if r.FollowChildren && r.Children == 0 {
			r.Children = 1 << r.Slot
		}
		if !r.FollowChildren {
			r.Children = 0
		}
		byslot[r.Slot] = r
	}
	return byslot, nil
}

// checkPaths validates the exact paths and prefixes of a rule or class.
func checkPaths(exact, prefixes []string) error {
	for _, p := range exact {
		if p == "" || len(p) > maxExactPath || strings.IndexByte(p, 0) >= 0 {
			return fmt.Errorf("exact path %q: empty, longer than %d bytes or with a NUL", p, maxExactPath)
		}
	}
	for _, p := range prefixes {
		if p == "" || len(p) > maxPrefixPath || strings.IndexByte(p, 0) >= 0 {
			return fmt.Errorf("prefix %q: empty, longer than %d bytes or with a NUL", p, maxPrefixPath)
		}
	}
	return nil
}

// execPathBits returns the slot bits of each exact path and prefix. The
// prefix trie answers with the longest matching prefix only, so a prefix
// carries the bits of every shorter prefix of it too.
func execPathBits(byslot map[uint8]ExecRule) (exact, prefix map[string]uint64) {
	exact, prefix = map[string]uint64{}, map[string]uint64{}
	for slot, r := range byslot {
		for _, p := range r.Exact {
			exact[p] |= 1 << slot
		}
		for _, p := range r.Prefixes {
			prefix[p] |= 1 << slot
		}
	}
	own := make(map[string]uint64, len(prefix))
	for p, b := range prefix {
		own[p] = b
	}
	for p := range prefix {
		for q, b := range own {
			if len(q) < len(p) && strings.HasPrefix(p, q) {
				prefix[p] |= b
			}
		}
	}
	return exact, prefix
}

func execSlotValue(r ExecRule) bpfgen.ProcessExecSlot {
	v := bpfgen.ProcessExecSlot{PolicyId: r.PolicyID, Action: uint8(r.Action), Signal: r.Signal, Children: r.Children}
	for _, f := range []struct {
		on   bool
		flag bpfgen.ProcessExecSlotFlag
	}{
		{r.Enforce, bpfgen.ProcessExecSlotFlagEXEC_ENFORCE},
		{r.NotIn, bpfgen.ProcessExecSlotFlagEXEC_NOTIN},
		{r.FollowChildren, bpfgen.ProcessExecSlotFlagEXEC_FOLLOW},
		{r.Global, bpfgen.ProcessExecSlotFlagEXEC_GLOBAL},
	} {
		if f.on {
			v.Flags |= uint8(f.flag)
		}
	}
	return v
}

func pathBytes(p string) (b [execPathMax]int8) {
	for i := 0; i < len(p); i++ {
		b[i] = int8(p[i])
	}
	return b
}

func exactKey(p string) any { return bpfgen.ProcessExecPath{Path: pathBytes(p)} }

func prefixKey(p string) any {
	return bpfgen.ProcessExecPrefixKey{Prefixlen: uint32(len(p)) * 8, Path: pathBytes(p)}
}

// putPaths writes the entries of want that cur lacks or holds otherwise.
func (s *Sensor) putPaths(name string, cur, want map[string]uint64, key func(string) any) error {
	for _, p := range sortedKeys(want) {
		if b, ok := cur[p]; ok && b == want[p] {
			continue
		}
		if err := s.maps[name].Put(key(p), want[p]); err != nil {
			return fmt.Errorf("write %q: %w", p, maputil.UpdateError(name, err))
		}
		cur[p] = want[p]
	}
	return nil
}

// deletePaths removes the entries of cur that want lacks.
func (s *Sensor) deletePaths(name string, cur, want map[string]uint64, key func(string) any) error {
	for _, p := range sortedKeys(cur) {
		if _, ok := want[p]; ok {
			continue
		}
		if err := s.maps[name].Delete(key(p)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete %s %q: %w", name, p, err)
		}
		delete(cur, p)
	}
	return nil
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// purgeFollow drops every inherited slot not in keep from the tgid ->
// slots map name.
func (s *Sensor) purgeFollow(name string, keep uint64) error {
	m := s.maps[name]
	var (
		tgid  uint32
		v     uint64
		tgids []uint32
		vals  []uint64
	)
	it := m.Iterate()
	for it.Next(&tgid, &v) {
		if v&^keep != 0 {
			tgids, vals = append(tgids, tgid), append(vals, v&keep)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	for i, tgid := range tgids {
		var err error
		if vals[i] == 0 {
			err = m.Delete(tgid)
		} else {
			err = m.Update(tgid, vals[i], ebpf.UpdateExist)
		}
		if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("update %s: %w", name, err)
		}
	}
	return nil
}

// SetExecScope makes the slots in the bit set slots apply to the processes
// of the network namespace with inode netns (a pod's), replacing what it
// had.
func (s *Sensor) SetExecScope(netns uint32, slots uint64) error {
	return s.setScope(execScopeMap, "exec", netns, slots)
}

// DeleteExecScope removes the scope of a network namespace (no error when
// it had none).
func (s *Sensor) DeleteExecScope(netns uint32) error {
	return s.deleteScope(execScopeMap, "exec", netns)
}

// SetExecCgroupScope makes the Cgroup slots in the bit set slots apply to
// the processes of the cgroup v2 with id cgroup (a container's), replacing
// what it had.
func (s *Sensor) SetExecCgroupScope(cgroup uint64, slots uint64) error {
	return s.setCgroupScope(execCgMap, "exec", cgroup, slots)
}

// DeleteExecCgroupScope removes the scope of a cgroup (no error when it had
// none).
func (s *Sensor) DeleteExecCgroupScope(cgroup uint64) error {
	return s.deleteCgroupScope(execCgMap, "exec", cgroup)
}

// setCgroupScope writes the slots of a cgroup into a cgroup scope map.
func (s *Sensor) setCgroupScope(name, kind string, cgroup, slots uint64) error {
	if err := s.maps[name].Put(cgroup, slots); err != nil {
		return fmt.Errorf("write %s scope of cgroup %d: %w", kind, cgroup, maputil.UpdateError(name, err))
	}
	return nil
}

// deleteCgroupScope removes a cgroup from a cgroup scope map.
func (s *Sensor) deleteCgroupScope(name, kind string, cgroup uint64) error {
	if err := s.maps[name].Delete(cgroup); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete %s scope of cgroup %d: %w", kind, cgroup, err)
	}
	return nil
}

// setScope writes the slots of a network namespace into a scope map.
func (s *Sensor) setScope(name, kind string, netns uint32, slots uint64) error {
	if err := s.maps[name].Put(netns, slots); err != nil {
		return fmt.Errorf("write %s scope of netns %d: %w", kind, netns, maputil.UpdateError(name, err))
	}
	return nil
}

// deleteScope removes a network namespace from a scope map.
func (s *Sensor) deleteScope(name, kind string, netns uint32) error {
	if err := s.maps[name].Delete(netns); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete %s scope of netns %d: %w", kind, netns, err)
	}
	return nil
}

// ExecEntries counts the entries of the exec rule maps.
type ExecEntries struct {
	Slots, Exact, Prefix, Scope, CgroupScope, Follow int
}

// ExecEntries returns how many entries each exec rule map holds (Slots:
// the active slots), read from the kernel, to check that removing rules
// leaves nothing behind.
func (s *Sensor) ExecEntries() (ExecEntries, error) {
	var out ExecEntries
	var cfg bpfgen.ProcessExecConfig
	if err := s.maps[execConfigMap].Lookup(uint32(0), &cfg); err != nil {
		return out, fmt.Errorf("read %s: %w", execConfigMap, err)
	}
	out.Slots = bits.OnesCount64(cfg.Active)
	return out, s.countEntries(map[string]*int{execExactMap: &out.Exact, execPrefixMap: &out.Prefix,
		execScopeMap: &out.Scope, execCgMap: &out.CgroupScope, execFollowMap: &out.Follow})
}
