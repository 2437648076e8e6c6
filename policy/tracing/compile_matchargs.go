package tracing

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// maxSyscallNr bounds the syscall numbers a NotEqual/NotInMap on the
// syscall number stands for: x86-64 syscall numbers are below 512 (x32's
// start at 512, with bit 30 set).
const maxSyscallNr = 511

// argOps maps Tetragon's matchArgs operator spellings to the compiled
// operator; InMap/NotInMap become Equal/NotEqual (integers only).
var argOps = map[string]ArgOp{
	"Equal": OpEqual, "eq": OpEqual, "NotEqual": OpNotEqual, "neq": OpNotEqual,
	"InMap": OpEqual, "NotInMap": OpNotEqual,
	"Prefix": OpPrefix, "prefix": OpPrefix, "NotPrefix": OpNotPrefix, "notprefix": OpNotPrefix,
	"Postfix": OpPostfix, "postfix": OpPostfix, "NotPostfix": OpNotPostfix, "notpostfix": OpNotPostfix,
	"Mask": OpMask, "mask": OpMask,
	"GT": OpGT, "gt": OpGT, "GreaterThan": OpGT, "LT": OpLT, "lt": OpLT, "LessThan": OpLT,
}

// Tetragon operators the syscall hooks do not evaluate yet, and its socket
// operators (spec.connects' here).
var (
	notYetOps = []string{"InRange", "NotInRange", "SubString", "SubStringIgnCase", "CelExpr", "FileType",
		"NotFileType", "CapabilitiesGained"}
	socketOps = []string{"SAddr", "NotSAddr", "DAddr", "NotDAddr", "SPort", "NotSPort", "DPort", "NotDPort",
		"SPortPriv", "NotSPortPriv", "NotSportPriv", "DPortPriv", "NotDPortPriv", "Protocol", "Family", "State"}
)

// tracepointSelector compiles one selector of a tracepoint.
func (c *compiler) tracepointSelector(path string, s *Selector, tp *Tracepoint, formatIndex []uint32) (TracepointSelector, bool) {
	nerr := len(c.errs)
	c.unsupportedFilters(path, s)
	sel := TracepointSelector{ProcessFilters: c.processFilters(path, s)}
	positions := argPositions(s.MatchArgs, formatIndex)
	narrowed := false
	for i, m := range s.MatchArgs {
		p := fmt.Sprintf("%s.matchArgs[%d]", path, i)
		pos, ok := c.argPosition(p, m, positions[i], len(tp.Capture))
		if !ok {
			continue
		}
		v := tp.Capture[pos]
		if v.Source != SourceSyscallNr {
			if am, ok := c.argMatch(p, m, v); ok {
				sel.Args = append(sel.Args, am)
			}
			continue
		}
		nrs, ok := c.syscallFilter(p, m, tp.Syscalls)
		if !ok {
			continue
		}
		if narrowed {
			nrs = intersect(sel.Syscalls, nrs)
		}
		sel.Syscalls, narrowed = nrs, true
		if len(nrs) == 0 {
			c.addf(p, "the selector matches no syscall of %s/%s", tp.Subsystem, tp.Event)
		}
	}
	if len(sel.Args) > MaxArgFilters {
		c.addf(path+".matchArgs", "at most %d argument filters per selector (a filter on the syscall number does not count), got %d",
			MaxArgFilters, len(sel.Args))
	}
	a := c.actions(path, s.MatchActions, hookSyscall)
	sel.Action, sel.Signal, sel.RateLimit = a.Action, a.Signal, a.RateLimit
	return sel, len(c.errs) == nerr
}

// argPositions resolves matchArgs indexes as Tetragon does for
// tracepoints: an index equal to the format index of one of the
// tracepoint's args refers to that arg (rewritten in the args' order);
// any other index is a position in the args.
func argPositions(ms []ArgSelector, formatIndex []uint32) []uint32 {
	idx := make([]uint32, len(ms))
	for i, m := range ms {
		idx[i] = m.Index
	}
	for pos, f := range formatIndex {
		for i := range idx {
			if idx[i] == f {
				idx[i] = uint32(pos)
			}
		}
	}
	return idx
}

func (c *compiler) argPosition(path string, m ArgSelector, pos uint32, n int) (int, bool) {
	switch {
	case len(m.Args) > 1:
		c.addf(path+".args", "one position (two are for CapabilitiesGained, which is not supported)")
		return 0, false
	case len(m.Args) == 1 && int(m.Args[0]) >= n:
		c.addf(path+".args", "position %d: the tracepoint has %d args", m.Args[0], n)
		return 0, false
	case len(m.Args) == 1:
		return int(m.Args[0]), true
	case int(pos) >= n:
		c.addf(path+".index", "%d is neither the format index of one of the tracepoint's args nor a position in them (%d args)", m.Index, n)
		return 0, false
	}
	return int(pos), true
}

// syscallFilter compiles a matchArgs entry on the syscall number into the
// set of syscalls it passes, within the tracepoint's (nil: all).
func (c *compiler) syscallFilter(path string, m ArgSelector, within []uint32) ([]uint32, bool) {
	op, known := argOps[m.Operator]
	if !known || (op != OpEqual && op != OpNotEqual) {
		c.addf(path+".operator", "%q: the syscall number takes Equal, NotEqual, InMap or NotInMap", m.Operator)
		return nil, false
	}
	if len(m.Values) == 0 {
		c.addf(path+".values", "required")
		return nil, false
	}
	var nrs []uint32
	ok := true
	for i, v := range m.Values {
		vs, err := c.syscallValue(v)
		if err != nil {
			c.add(fmt.Sprintf("%s.values[%d]", path, i), err)
			ok = false
		}
		nrs = append(nrs, vs...)
	}
	nrs = sortedUnique(nrs)
	if within == nil {
		within = make([]uint32, maxSyscallNr+1)
		for i := range within {
			within[i] = uint32(i)
		}
	}
	if op == OpNotEqual {
		return subtract(within, nrs), ok
	}
	return intersect(within, nrs), ok
}

// syscallValue parses a value of the syscall number: a number, a name
// (dup or sys_dup), a range "a:b" or "list:NAME" (spec.lists).
func (c *compiler) syscallValue(v string) ([]uint32, error) {
	if name, ok := strings.CutPrefix(v, "list:"); ok {
		nrs, ok := c.lists[name]
		if !ok {
			return nil, fmt.Errorf("no list %q in spec.lists", name)
		}
		return nrs, nil
	}
	if lo, hi, ok := strings.Cut(v, ":"); ok {
		a, aerr := strconv.ParseUint(lo, 0, 32)
		b, berr := strconv.ParseUint(hi, 0, 32)
		if aerr != nil || berr != nil || a > b || b > maxSyscallNr {
			return nil, fmt.Errorf("%q is not a range of syscall numbers min:max (0..%d)", v, maxSyscallNr)
		}
		var nrs []uint32
		for n := a; n <= b; n++ {
			nrs = append(nrs, uint32(n))
		}
		return nrs, nil
	}
	if n, err := strconv.ParseUint(v, 0, 32); err == nil {
		return []uint32{uint32(n)}, nil
	}
	if nr, ok := SyscallNumber(v); ok {
		return []uint32{nr}, nil
	}
	return nil, fmt.Errorf("unknown syscall %q", v)
}

// argMatch compiles a matchArgs entry on a captured argument or return
// value.
func (c *compiler) argMatch(path string, m ArgSelector, v SyscallValue) (ArgMatch, bool) {
	op, known := argOps[m.Operator]
	switch {
	case known:
	case slices.Contains(notYetOps, m.Operator):
		c.add(path+".operator", fmt.Errorf("%s: %w", m.Operator, ErrNotYet))
		return ArgMatch{}, false
	case slices.Contains(socketOps, m.Operator):
		c.addf(path+".operator", "%s: the socket operators are for spec.connects (index 0: the destination)", m.Operator)
		return ArgMatch{}, false
	default:
		c.addf(path+".operator", "unknown operator %q", m.Operator)
		return ArgMatch{}, false
	}
	am := ArgMatch{Value: v, Op: op}
	str := v.Type == TypeString
	isMap := m.Operator == "InMap" || m.Operator == "NotInMap"
	switch {
	case str && isMap:
		c.addf(path+".operator", "%s takes integers; %s is a string (use Equal or NotEqual)", m.Operator, v.Label)
		return am, false
	case str && (op == OpMask || op == OpGT || op == OpLT):
		c.addf(path+".operator", "%s applies to integers; %s is a string", m.Operator, v.Label)
		return am, false
	case !str && (op == OpPrefix || op == OpNotPrefix || op == OpPostfix || op == OpNotPostfix):
		c.addf(path+".operator", "%s applies to strings; %s is an integer", m.Operator, v.Label)
		return am, false
	case len(m.Values) == 0:
		c.addf(path+".values", "required")
		return am, false
	case (op == OpGT || op == OpLT) && len(m.Values) != 1:
		c.addf(path+".values", "%s takes one value, got %d", m.Operator, len(m.Values))
		return am, false
	}
	ok := true
	for i, s := range m.Values {
		vp := fmt.Sprintf("%s.values[%d]", path, i)
		if str {
			if err := checkString(op, s); err != nil {
				c.add(vp, err)
				ok = false
			}
			am.Strings = append(am.Strings, s)
			continue
		}
		ints, err := parseInts(s, v, isMap)
		if err != nil {
			c.add(vp, err)
			ok = false
		}
		am.Ints = append(am.Ints, ints...)
	}
	if len(am.Ints) > MaxArgInts {
		c.addf(path+".values", "at most %d integer values per filter, got %d", MaxArgInts, len(am.Ints))
		ok = false
	}
	return am, ok
}

func checkString(op ArgOp, s string) error {
	switch {
	case len(s) > MaxStringLen:
		return fmt.Errorf("%d bytes: the hooks read at most %d bytes of a string, so it could never match", len(s), MaxStringLen)
	case s == "" && op != OpEqual && op != OpNotEqual:
		return errors.New("an empty prefix or postfix would match every string")
	}
	return nil
}

// parseInts parses an integer value of v's type (two's complement for a
// negative one); with InMap/NotInMap a range "min:max" too.
func parseInts(s string, v SyscallValue, isMap bool) ([]uint64, error) {
	if strings.HasPrefix(s, "list:") {
		return nil, fmt.Errorf("%q: lists hold syscalls, for the syscall number only", s)
	}
	if lo, hi, ok := strings.Cut(s, ":"); ok && isMap {
		a, aerr := parseInt(lo, v)
		b, berr := parseInt(hi, v)
		if err := errors.Join(aerr, berr); err != nil {
			return nil, err
		}
		if (v.Signed && int64(a) > int64(b)) || (!v.Signed && a > b) || b-a >= MaxArgInts {
			return nil, fmt.Errorf("%q is not a range min:max of at most %d values", s, MaxArgInts)
		}
		var out []uint64
		for n := a; ; n++ {
			out = append(out, n)
			if n == b {
				return out, nil
			}
		}
	}
	n, err := parseInt(s, v)
	return []uint64{n}, err
}

func parseInt(s string, v SyscallValue) (uint64, error) {
	bits := int(v.Size) * 8
	if v.Signed {
		n, err := strconv.ParseInt(s, 0, bits)
		if err != nil {
			return 0, fmt.Errorf("%q is not a signed %d-bit integer (%s)", s, bits, v.Label)
		}
		return uint64(n), nil
	}
	n, err := strconv.ParseUint(s, 0, bits)
	if err != nil {
		return 0, fmt.Errorf("%q is not an unsigned %d-bit integer (%s)", s, bits, v.Label)
	}
	return n, nil
}

// intersect and subtract work on sorted, unique sets.
func intersect(a, b []uint32) []uint32 {
	out := []uint32{}
	for _, x := range a {
		if _, found := slices.BinarySearch(b, x); found {
			out = append(out, x)
		}
	}
	return out
}

func subtract(a, b []uint32) []uint32 {
	out := []uint32{}
	for _, x := range a {
		if _, found := slices.BinarySearch(b, x); !found {
			out = append(out, x)
		}
	}
	return out
}
