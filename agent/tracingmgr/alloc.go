package tracingmgr

import (
	"fmt"
	"math/bits"
	"net/netip"
	"slices"

	"github.com/sluicenet/sluice/agent/process"
	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/policy/tracing"
)

// allocation is one accepted policy's place in the rule tables.
type allocation struct {
	e         *entry
	slots     uint64 // exec rule slots (bit i: slot i)
	sysSlots  uint64 // syscall rule slots
	connSlots uint64 // connect rule slots
	classes   uint64 // ids of the binary classes its rules use
}

// slotRef names a syscall rule's slot by its policy (the key of an event's
// hook).
type slotRef struct {
	policy uint32
	slot   uint8
}

// plan is what the kernel should hold: the rules of the accepted policies in
// their slots, the binary classes they use, and why the others got none.
type plan struct {
	exec     []procsensor.ExecRule
	sys      []procsensor.SyscallRule
	conn     []datapath.ConnectRule
	classes  []procsensor.BinaryClass // by ID
	classIDs map[classKey]uint8
	allocs   []allocation
	refused  map[*entry]string
	hooks    map[slotRef]process.SyscallHook
}

// allocate gives each policy with rules (in refCompare order) consecutive
// slots of each table, lower slots first, and ids to the binary classes its
// rules use: a class keeps its id of oldIDs, and a new one gets an id no
// class had before while one is left (so a rule replaced in the same sync
// never finds another class under its id). A policy that needs more slots
// of a table than are left, or more classes, is refused whole (with a
// reason) and the next ones still get theirs.
func allocate(es []*entry, oldIDs map[classKey]uint8) plan {
	es = slices.Clone(es)
	slices.SortFunc(es, func(a, b *entry) int { return refCompare(a.ref, b.ref) })
	p := plan{refused: map[*entry]string{}, classIDs: map[classKey]uint8{}, hooks: map[slotRef]process.SyscallHook{}}
	var nExec, nSys, nConn int
	var keys []classKey // in first-use order
	dests, ports := map[netip.Prefix]bool{}, map[uint16]bool{}
	for _, e := range es {
		if e.compiled == nil {
			continue
		}
		fresh := newOnes(e.classKeys(), func(k classKey) bool { return slices.Contains(keys, k) })
		var eDests []netip.Prefix
		var ePorts []uint16
		for _, r := range e.conn {
			eDests, ePorts = append(eDests, r.rule.Dests...), append(ePorts, r.rule.Ports...)
		}
		freshDests := newOnes(eDests, func(d netip.Prefix) bool { return dests[d] })
		freshPorts := newOnes(ePorts, func(p uint16) bool { return ports[p] })
		if reason := fits([]need{
			{"spec.execs", "exec rule slots", len(e.rules), nExec, procsensor.MaxExecRules},
			{"spec.tracepoints", "syscall rule slots", len(e.sys), nSys, procsensor.MaxSyscallRules},
			{"spec.connects", "connect rule slots", len(e.conn), nConn, datapath.MaxConnectRules},
			{"spec.connects", "more destination prefixes", len(freshDests), len(dests), maxConnectDests},
			{"spec.connects", "more destination ports", len(freshPorts), len(ports), maxConnectPorts},
			{"matchBinaries and matchParentBinaries", "more binary classes", len(fresh), len(keys), procsensor.MaxBinaryClasses},
		}); reason != "" {
			p.refused[e] = reason
			continue
		}
		for _, d := range freshDests {
			dests[d] = true
		}
		for _, p := range freshPorts {
			ports[p] = true
		}
		p.allocs = append(p.allocs, allocation{
			e: e, slots: slotRange(nExec, len(e.rules)), sysSlots: slotRange(nSys, len(e.sys)), connSlots: slotRange(nConn, len(e.conn)),
		})
		nExec, nSys, nConn = nExec+len(e.rules), nSys+len(e.sys), nConn+len(e.conn)
		keys = append(keys, fresh...)
	}
	p.assignClassIDs(keys, oldIDs)
	for i := range p.allocs {
		p.addRules(&p.allocs[i])
	}
	return p
}

// Table-wide limits of the connect rules (datapath.MaxConnectDests and
// MaxConnectPorts, the connect rules owner's): distinct prefixes and ports
// of every rule.
const (
	maxConnectDests = 4096
	maxConnectPorts = 1024
)

// newOnes returns the distinct values of vs that have is false.
func newOnes[T comparable](vs []T, has func(T) bool) []T {
	var out []T
	seen := map[T]bool{}
	for _, v := range vs {
		if !has(v) && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// need is one table's demand of a policy.
type need struct {
	field, what            string
	want, used, tableLimit int
}

// fits returns why a policy does not fit ("" when it does).
func fits(ns []need) string {
	for _, n := range ns {
		if n.used+n.want > n.tableLimit {
			return fmt.Sprintf("%s: needs %d %s and only %d of %d are left", n.field, n.want, n.what, n.tableLimit-n.used, n.tableLimit)
		}
	}
	return ""
}

// slotRange returns the bits of n slots from first.
func slotRange(first, n int) uint64 {
	if n == 0 {
		return 0
	}
	return (^uint64(0) >> (64 - n)) << first
}

// assignClassIDs gives keys their ids and fills p.classes.
func (p *plan) assignClassIDs(keys []classKey, oldIDs map[classKey]uint8) {
	var used, before uint64
	for _, id := range oldIDs {
		before |= 1 << id
	}
	for _, k := range keys {
		if id, ok := oldIDs[k]; ok {
			p.classIDs[k] = id
			used |= 1 << id
		}
	}
	for _, k := range keys {
		if _, ok := p.classIDs[k]; ok {
			continue
		}
		free := ^(used | before)
		if free == 0 {
			free = ^used
		}
		id := uint8(bits.TrailingZeros64(free))
		p.classIDs[k] = id
		used |= 1 << id
	}
	for k, id := range p.classIDs {
		p.classes = append(p.classes, k.class(id))
	}
	slices.SortFunc(p.classes, func(a, b procsensor.BinaryClass) int { return int(a.ID) - int(b.ID) })
}

// addRules appends the rules of one accepted policy in its slots.
func (p *plan) addRules(a *allocation) {
	e := a.e
	enforce, global, byCgroup := e.mode() == tracing.ModeEnforce, e.global(), e.byCgroup()
	slot := bits.TrailingZeros64(a.slots)
	for _, r := range e.rules {
		p.exec = append(p.exec, procsensor.ExecRule{
			Slot: uint8(slot), PolicyID: e.id,
			Exact: r.exact, Prefixes: r.prefixes, NotIn: r.notIn, FollowChildren: r.followChildren,
			Action: r.action, Signal: r.signal, Enforce: enforce, Global: global, Cgroup: byCgroup,
		})
		slot++
	}
	p.sys = append(p.sys, place(e.sys, a.sysSlots, func(r sysRule) int { return r.tp },
		func(r sysRule, slot uint8, group uint64) procsensor.SyscallRule {
			sr := r.rule
			sr.Slot, sr.PolicyID, sr.Group, sr.Global, sr.Enforce, sr.Cgroup = slot, e.id, group, global, enforce, byCgroup
			sr.Binary, sr.Parent = r.binary.filter(p.classIDs), r.parent.filter(p.classIDs)
			a.classes |= classBits(sr.Binary, sr.Parent)
			p.hooks[slotRef{e.id, slot}] = e.hook(r.tp)
			return sr
		})...)
	p.conn = append(p.conn, place(e.conn, a.connSlots, func(r connRule) int { return r.entry },
		func(r connRule, slot uint8, group uint64) datapath.ConnectRule {
			cr := r.rule
			cr.Slot, cr.PolicyID, cr.Group, cr.Global, cr.Enforce, cr.Cgroup = slot, e.id, group, global, enforce, byCgroup
			cr.Binary, cr.Parent = r.binary.filter(p.classIDs), r.parent.filter(p.classIDs)
			a.classes |= classBits(cr.Binary, cr.Parent)
			return cr
		})...)
}

// place builds the rules of rs in consecutive slots from the lowest of
// slots; the group of a rule is the slots of the rules with its key (one
// tracepoint, one spec.connects entry).
func place[T, R any](rs []T, slots uint64, key func(T) int, build func(r T, slot uint8, group uint64) R) []R {
	first := bits.TrailingZeros64(slots)
	groups := map[int]uint64{}
	for i, r := range rs {
		groups[key(r)] |= 1 << (first + i)
	}
	out := make([]R, 0, len(rs))
	for i, r := range rs {
		out = append(out, build(r, uint8(first+i), groups[key(r)]))
	}
	return out
}

// classBits returns the classes a rule's filters test.
func classBits(binary, parent procsensor.ClassFilter) uint64 {
	return binary.All | binary.None | parent.All | parent.None
}

// classKeys returns the binary classes the policy's rules use.
func (e *entry) classKeys() []classKey {
	var out []classKey
	for _, r := range e.sys {
		out = append(append(out, r.binary.keys()...), r.parent.keys()...)
	}
	for _, r := range e.conn {
		out = append(append(out, r.binary.keys()...), r.parent.keys()...)
	}
	return out
}

// hook describes tracepoint i of the policy for its events.
func (e *entry) hook(i int) process.SyscallHook {
	tp := e.compiled.Tracepoints[i]
	h := process.SyscallHook{Subsys: tp.Subsystem, Event: tp.Event}
	for _, v := range tp.Capture {
		h.Args = append(h.Args, process.HookArg{Label: v.Label, Signed: v.Signed})
	}
	return h
}
