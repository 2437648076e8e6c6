package procsensor

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/maputil"
	"github.com/sluicenet/sluice/datapath/pin"
)

// Syscall rule maps (bpf/lib/syscall_types.h), pinned by name like the
// sensor's links (pins.go): the rules outlive the agent.
const (
	sysConfigMap  = bpfgen.ProcessMapSluiceSysConfigV1
	sysNrMap      = bpfgen.ProcessMapSluiceSysNrV1
	sysSlotsMap   = bpfgen.ProcessMapSluiceSysSlotsV1
	sysScopeMap   = bpfgen.ProcessMapSluiceSysScopeV1
	sysCgMap      = bpfgen.ProcessMapSluiceSysCgscopeV1
	sysFollowMap  = bpfgen.ProcessMapSluiceSysFollowV1
	sysStrMap     = bpfgen.ProcessMapSluiceSysStrV1
	sysPostfixMap = bpfgen.ProcessMapSluiceSysPostfixV1
	sysRateMap    = bpfgen.ProcessMapSluiceSysRateV1
)

// sysHookProgs are the programs of the syscall hooks.
var sysHookProgs = map[string]string{
	HookSysEnter: bpfgen.ProcessProgTraceSysEnter,
	HookSysExit:  bpfgen.ProcessProgTraceSysExit,
}

// sysState is what the syscall rule maps hold (read back from the pinned
// maps on first use: adoptSys).
type sysState struct {
	mu      sync.Mutex
	adopted bool
	cfg     bpfgen.ProcessSysConfig
	slots   map[uint8]bpfgen.ProcessSysSlot // active slots
	nrs     map[uint32]bpfgen.ProcessSysNr  // non-zero entries
	str     map[string]uint64               // id byte + bytes
	postfix map[string]uint64
}

// loadSyscallHooks loads (without attaching) the syscall programs; one the
// kernel refuses fails SetSyscallRules for its hook, not the sensor.
func (s *Sensor) loadSyscallHooks(spec *ebpf.CollectionSpec) {
	s.sysLinks, s.sysErr = map[string]link.Link{}, map[string]error{}
	for hook, name := range sysHookProgs {
		prog, err := s.loadHook(spec, []string{name})
		if err != nil {
			s.sysErr[hook] = err
			continue
		}
		s.progs[hook] = prog
	}
}

// setSyscallHook attaches and pins (on) or unpins and detaches the program
// of a syscall hook.
func (s *Sensor) setSyscallHook(hook string, on bool) error {
	l := s.sysLinks[hook]
	if on == (l != nil) {
		return nil
	}
	path := pin.TracingLinkPath(s.root, linkPins[hook])
	if !on {
		delete(s.sysLinks, hook)
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.Close()
			return fmt.Errorf("unpin %s: %w", hook, err)
		}
		if err := l.Close(); err != nil {
			return fmt.Errorf("detach %s: %w", hook, err)
		}
		return nil
	}
	prog := s.progs[hook]
	if prog == nil {
		return fmt.Errorf("attach %s: program not loaded: %w", hook, s.sysErr[hook])
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceRawTp})
	if err != nil {
		return fmt.Errorf("attach %s: %w", hook, err)
	}
	if err := pinLink(l, path); err != nil {
		l.Close()
		return fmt.Errorf("pin %s link: %w", hook, err)
	}
	s.sysLinks[hook] = l
	return nil
}

// SetSyscallRules replaces the whole syscall rule set. Like SetExecRules
// it makes the slots whose match changes (or go) inactive first, then
// writes the string entries and syscall numbers of the new set (removing
// stale ones), the slots and the slot masks, so a rule kept from the
// previous set matches at every moment, also across an agent restart (the
// first call reads what an earlier agent left in the pinned maps), and a
// changed slot never applies to the old rule's entries. The sys_enter and
// sys_exit programs are attached while some rule of theirs exists (their
// links pinned). On error the maps hold a mix of the old and new sets, with
// the changed slots inactive; calling again with either converges.
func (s *Sensor) SetSyscallRules(rules []SyscallRule) error {
	byslot, err := checkSyscallRules(rules)
	if err != nil {
		return err
	}
	st := &s.sys
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := s.adoptSys(); err != nil {
		return err
	}
	var enter, exit bool
	for _, r := range byslot {
		enter, exit = enter || !r.Exit, exit || r.Exit
	}
	if err := s.setSyscallHook(HookSysEnter, enter || s.sysLinks[HookSysEnter] != nil); err != nil {
		return err
	}
	if err := s.setSyscallHook(HookSysExit, exit || s.sysLinks[HookSysExit] != nil); err != nil {
		return err
	}
	str, postfix := sysStrings(byslot)
	nrs := sysNrBits(byslot)
	cfg, values := sysConfig(byslot)
	changed := sysChanged(st, cfg, values, nrs, str, postfix)
	kept := keptSysSlots(st, changed, values)
	if changed != 0 {
		c := st.cfg
		c.Active &^= changed
		if err := s.putSysConfig(c); err != nil {
			return err
		}
	}
	if err := s.putPaths(sysStrMap, st.str, str, sysStrKey); err != nil {
		return err
	}
	if err := s.putPaths(sysPostfixMap, st.postfix, postfix, sysStrKey); err != nil {
		return err
	}
	// Stale entries belong to inactive slots now.
	if err := s.deletePaths(sysStrMap, st.str, str, sysStrKey); err != nil {
		return err
	}
	if err := s.deletePaths(sysPostfixMap, st.postfix, postfix, sysStrKey); err != nil {
		return err
	}
	if err := s.purgeFollow(sysFollowMap, kept); err != nil {
		return err
	}
	if err := s.writeNrs(nrs); err != nil {
		return err
	}
	if err := putSlots(s.maps[sysSlotsMap], "syscall", st.slots, byslot, sysSlotValue); err != nil {
		return err
	}
	if err := s.seedSysFollow(byslot); err != nil {
		return err
	}
	if err := s.putSysConfig(cfg); err != nil {
		return err
	}
	if err := clearSlots(s.maps[sysSlotsMap], "syscall", st.slots, byslot); err != nil {
		return err
	}
	if err := s.purgeRate(kept); err != nil {
		return err
	}
	if err := s.setSyscallHook(HookSysEnter, enter); err != nil {
		return err
	}
	return s.setSyscallHook(HookSysExit, exit)
}

// sysConfig returns the slot masks and slot values of rules.
func sysConfig(byslot map[uint8]SyscallRule) (bpfgen.ProcessSysConfig, map[uint8]bpfgen.ProcessSysSlot) {
	var cfg bpfgen.ProcessSysConfig
	values := make(map[uint8]bpfgen.ProcessSysSlot, len(byslot))
	for slot, r := range byslot {
		values[slot] = sysSlotValue(r)
		bit := uint64(1) << slot
		cfg.Active |= bit
		if r.Global {
			cfg.Global |= bit
		}
		if r.Cgroup {
			cfg.Cgroup |= bit
		}
		if r.FollowForks && len(r.PIDs) > 0 {
			cfg.Follow |= bit
		}
	}
	return cfg, values
}

func (s *Sensor) putSysConfig(cfg bpfgen.ProcessSysConfig) error {
	if err := s.maps[sysConfigMap].Put(uint32(0), cfg); err != nil {
		return fmt.Errorf("write syscall rule config: %w", err)
	}
	s.sys.cfg = cfg
	return nil
}

// sysStrings returns the entries of the string tries: for filter f of
// slot, the id byte slot<<2|f, then the string (Equal: with its NUL;
// Postfix: reversed, in the second trie).
func sysStrings(byslot map[uint8]SyscallRule) (str, postfix map[string]uint64) {
	str, postfix = map[string]uint64{}, map[string]uint64{}
	for slot, r := range byslot {
		for f, a := range r.Args {
			if !a.Value.String {
				continue
			}
			id := string([]byte{slot<<2 | uint8(f)})
			for _, v := range a.Strings {
				switch a.Op {
				case ArgEqual, ArgNotEqual:
					str[id+v+"\x00"] = 1
				case ArgPrefix, ArgNotPrefix:
					str[id+v] = 1
				case ArgPostfix, ArgNotPostfix:
					postfix[id+reverse(v)] = 1
				}
			}
		}
	}
	return str, postfix
}

func reverse(v string) string {
	b := []byte(v)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

func sysStrKey(e string) any {
	k := bpfgen.ProcessSysStrKey{Prefixlen: uint32(len(e)) * 8, Id: e[0]}
	for i := 1; i < len(e); i++ {
		k.Str[i-1] = int8(e[i])
	}
	return k
}

// sysNrBits returns the slots of each syscall number.
func sysNrBits(byslot map[uint8]SyscallRule) map[uint32]bpfgen.ProcessSysNr {
	out := map[uint32]bpfgen.ProcessSysNr{}
	for slot, r := range byslot {
		nrs := r.Syscalls
		if nrs == nil {
			for nr := uint32(0); nr < MaxSyscallNr; nr++ {
				nrs = append(nrs, nr)
			}
		}
		for _, nr := range nrs {
			v := out[nr]
			if r.Exit {
				v.Exit |= 1 << slot
			} else {
				v.Enter |= 1 << slot
			}
			out[nr] = v
		}
	}
	return out
}

func nrUnion(a, b map[uint32]bpfgen.ProcessSysNr) map[uint32]bpfgen.ProcessSysNr {
	out := make(map[uint32]bpfgen.ProcessSysNr, len(a)+len(b))
	for _, m := range []map[uint32]bpfgen.ProcessSysNr{a, b} {
		for nr, v := range m {
			o := out[nr]
			out[nr] = bpfgen.ProcessSysNr{Enter: o.Enter | v.Enter, Exit: o.Exit | v.Exit}
		}
	}
	return out
}

// writeNrs makes the syscall number array hold want (zero elsewhere),
// writing only the entries that change.
func (s *Sensor) writeNrs(want map[uint32]bpfgen.ProcessSysNr) error {
	cur := s.sys.nrs
	for nr := uint32(0); nr < MaxSyscallNr; nr++ {
		if cur[nr] == want[nr] {
			continue
		}
		if err := s.maps[sysNrMap].Put(nr, want[nr]); err != nil {
			return fmt.Errorf("write syscall %d slots: %w", nr, err)
		}
		if want[nr] == (bpfgen.ProcessSysNr{}) {
			delete(cur, nr)
		} else {
			cur[nr] = want[nr]
		}
	}
	return nil
}

// seedSysFollow gives the listed pids of followForks rules their slot in
// the follow map (the kernel copies it at fork): their descendants are in
// the list too (In: they match; NotIn: they do not). Pids in their own pid
// namespace get it when their pid is first seen listed.
func (s *Sensor) seedSysFollow(byslot map[uint8]SyscallRule) error {
	m := s.maps[sysFollowMap]
	for slot, r := range byslot {
		if !r.FollowForks || r.NamespacePID {
			continue
		}
		for _, pid := range r.PIDs {
			var v uint64
			if err := m.Lookup(pid, &v); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("read %s: %w", sysFollowMap, err)
			}
			if err := m.Put(pid, v|1<<slot); err != nil {
				return maputil.UpdateError(sysFollowMap, err)
			}
		}
	}
	return nil
}

// purgeRate drops the rate-limit state of the slots not in keep.
func (s *Sensor) purgeRate(keep uint64) error {
	m := s.maps[sysRateMap]
	var (
		k     bpfgen.ProcessSysRateKey
		v     uint64
		stale []bpfgen.ProcessSysRateKey
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		if k.Slot >= 64 || keep&(1<<k.Slot) == 0 {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read %s: %w", sysRateMap, err)
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete %s: %w", sysRateMap, err)
		}
	}
	return nil
}

// SetSyscallScope makes the slots in the bit set slots apply to the
// processes of the network namespace with inode netns, replacing what it
// had.
func (s *Sensor) SetSyscallScope(netns uint32, slots uint64) error {
	return s.setScope(sysScopeMap, "syscall", netns, slots)
}

// SetSyscallCgroupScope makes the Cgroup slots in the bit set slots apply
// to the processes of the cgroup v2 with id cgroup, replacing what it had.
func (s *Sensor) SetSyscallCgroupScope(cgroup uint64, slots uint64) error {
	return s.setCgroupScope(sysCgMap, "syscall", cgroup, slots)
}

// DeleteSyscallCgroupScope removes the syscall scope of a cgroup (no error
// when it had none).
func (s *Sensor) DeleteSyscallCgroupScope(cgroup uint64) error {
	return s.deleteCgroupScope(sysCgMap, "syscall", cgroup)
}

// DeleteSyscallScope removes the syscall scope of a network namespace (no
// error when it had none).
func (s *Sensor) DeleteSyscallScope(netns uint32) error {
	return s.deleteScope(sysScopeMap, "syscall", netns)
}

// SyscallEntries counts the entries of the syscall rule maps.
type SyscallEntries struct {
	Slots, Nrs, Strings, Postfixes, Scope, CgroupScope, Follow, Rate int
}

// SyscallEntries returns how many entries each syscall rule map holds
// (Slots: the active slots; Nrs: syscall numbers with slots), read from the
// kernel, to check that removing rules leaves nothing behind.
func (s *Sensor) SyscallEntries() (SyscallEntries, error) {
	var out SyscallEntries
	var cfg bpfgen.ProcessSysConfig
	if err := s.maps[sysConfigMap].Lookup(uint32(0), &cfg); err != nil {
		return out, fmt.Errorf("read %s: %w", sysConfigMap, err)
	}
	out.Slots = bits.OnesCount64(cfg.Active)
	var (
		nr uint32
		v  bpfgen.ProcessSysNr
	)
	it := s.maps[sysNrMap].Iterate()
	for it.Next(&nr, &v) {
		if v != (bpfgen.ProcessSysNr{}) {
			out.Nrs++
		}
	}
	if err := it.Err(); err != nil {
		return out, fmt.Errorf("read %s: %w", sysNrMap, err)
	}
	return out, s.countEntries(map[string]*int{sysStrMap: &out.Strings, sysPostfixMap: &out.Postfixes,
		sysScopeMap: &out.Scope, sysCgMap: &out.CgroupScope, sysFollowMap: &out.Follow, sysRateMap: &out.Rate})
}

// countEntries counts the entries of each named map into its counter.
func (s *Sensor) countEntries(counters map[string]*int) error {
	for name, n := range counters {
		var k, v []byte
		it := s.maps[name].Iterate()
		for it.Next(&k, &v) {
			*n++
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
	}
	return nil
}
