package procsensor

import (
	"fmt"
	"strings"

	"github.com/sluicenet/sluice/datapath/bpfgen"
)

// Limits of the syscall rule maps beyond the contract's (sysrules.go).
const (
	MaxCapFilters = 4   // CapFilter per rule
	MaxSyscallNr  = 512 // syscall numbers are below
	// String filter bytes: an Equal string with its NUL, a Prefix, or a
	// reversed Postfix fills a trie key of 255 bytes; Postfix needs the
	// whole string read (at most StringMax-2 bytes, or it counts as cut).
	maxEqualString   = 254
	maxPrefixString  = 255
	maxPostfixString = 254
)

// checkSyscallRules validates rules and returns them by slot, with
// Sigkill's signal filled in and each Group holding its own slot.
func checkSyscallRules(rules []SyscallRule) (map[uint8]SyscallRule, error) {
	byslot := make(map[uint8]SyscallRule, len(rules))
	for _, r := range rules {
		if r.Slot >= MaxSyscallRules {
			return nil, fmt.Errorf("syscall rule slot %d: beyond %d slots", r.Slot, MaxSyscallRules)
		}
		if _, dup := byslot[r.Slot]; dup {
			return nil, fmt.Errorf("syscall rule slot %d: given twice", r.Slot)
		}
		if err := checkSyscallRule(&r); err != nil {
			return nil, fmt.Errorf("syscall rule slot %d: %w", r.Slot, err)
		}
		r.Group |= 1 << r.Slot
		byslot[r.Slot] = r
	}
	return byslot, nil
}

func checkSyscallRule(r *SyscallRule) error {
	for _, nr := range r.Syscalls {
		if nr >= MaxSyscallNr {
			return fmt.Errorf("syscall %d: not below %d", nr, MaxSyscallNr)
		}
	}
	switch {
	case len(r.Args) > MaxArgFilters:
		return fmt.Errorf("%d argument filters: at most %d", len(r.Args), MaxArgFilters)
	case len(r.Capture) > MaxCapture:
		return fmt.Errorf("%d captured values: at most %d", len(r.Capture), MaxCapture)
	case len(r.PIDs) > MaxPIDs:
		return fmt.Errorf("%d pids: at most %d", len(r.PIDs), MaxPIDs)
	case len(r.Namespaces) > MaxNSFilters:
		return fmt.Errorf("%d namespace filters: at most %d", len(r.Namespaces), MaxNSFilters)
	case len(r.Caps) > MaxCapFilters:
		return fmt.Errorf("%d capability filters: at most %d", len(r.Caps), MaxCapFilters)
	case r.RateLimit < 0:
		return fmt.Errorf("rate limit %v: negative", r.RateLimit)
	}
	for i, a := range r.Args {
		if err := checkArgFilter(a, r.Exit); err != nil {
			return fmt.Errorf("argument filter %d: %w", i, err)
		}
	}
	for i, v := range r.Capture {
		if err := checkValue(v, r.Exit); err != nil {
			return fmt.Errorf("captured value %d: %w", i, err)
		}
	}
	for i, n := range r.Namespaces {
		if n.Kind < NSUts || n.Kind > NSUser || len(n.Inodes) == 0 || len(n.Inodes) > MaxNSInodes {
			return fmt.Errorf("namespace filter %d: kind %d with %d inodes (kinds 1..%d, 1..%d inodes)",
				i, n.Kind, len(n.Inodes), NSUser, MaxNSInodes)
		}
	}
	for i, c := range r.Caps {
		if c.Set < CapEffective || c.Set > CapInheritable {
			return fmt.Errorf("capability filter %d: unknown set %d", i, c.Set)
		}
	}
	switch r.Action {
	case ExecPost, ExecNoPost:
		r.Signal = 0
	case ExecSigkill:
		r.Signal = 9
	case ExecSignal:
		if r.Signal == 0 || r.Signal > 64 {
			return fmt.Errorf("signal %d: not 1..64", r.Signal)
		}
	default:
		return fmt.Errorf("unknown action %d", r.Action)
	}
	return nil
}

func checkValue(v Value, exit bool) error {
	switch {
	case v.Source == SourceArg && v.Index > 5:
		return fmt.Errorf("argument %d: syscalls have 6 (0..5)", v.Index)
	case v.Source == SourceRet && !exit:
		return fmt.Errorf("the return value exists at sys_exit only")
	case v.Source != SourceNr && v.Source != SourceArg && v.Source != SourceRet:
		return fmt.Errorf("unknown source %d", v.Source)
	case v.String && v.Source != SourceArg:
		return fmt.Errorf("only an argument can be a string")
	case v.Size != 0 && v.Size != 1 && v.Size != 2 && v.Size != 4 && v.Size != 8:
		return fmt.Errorf("an integer is 1, 2, 4 or 8 bytes wide, not %d", v.Size)
	case v.Size != 0 && v.Size != 8 && (v.String || v.Source != SourceArg):
		return fmt.Errorf("only an integer argument has a width")
	}
	return nil
}

func checkArgFilter(a ArgFilter, exit bool) error {
	if err := checkValue(a.Value, exit); err != nil {
		return err
	}
	if a.Value.String {
		limit := map[ArgOp]int{ArgEqual: maxEqualString, ArgNotEqual: maxEqualString, ArgPrefix: maxPrefixString,
			ArgNotPrefix: maxPrefixString, ArgPostfix: maxPostfixString, ArgNotPostfix: maxPostfixString}[a.Op]
		if limit == 0 {
			return fmt.Errorf("operator %d does not apply to strings", a.Op)
		}
		if len(a.Strings) == 0 || len(a.Ints) > 0 {
			return fmt.Errorf("a string filter needs strings (and no integers)")
		}
		for _, s := range a.Strings {
			if len(s) > limit || strings.IndexByte(s, 0) >= 0 {
				return fmt.Errorf("string %q: longer than %d bytes or with a NUL", s, limit)
			}
		}
		return nil
	}
	switch a.Op {
	case ArgEqual, ArgNotEqual, ArgMask:
		if len(a.Ints) == 0 || len(a.Ints) > MaxArgInts {
			return fmt.Errorf("%d integers: 1..%d", len(a.Ints), MaxArgInts)
		}
	case ArgGT, ArgLT:
		if len(a.Ints) != 1 {
			return fmt.Errorf("GT/LT take one integer, not %d", len(a.Ints))
		}
	default:
		return fmt.Errorf("operator %d does not apply to integers", a.Op)
	}
	if len(a.Strings) > 0 {
		return fmt.Errorf("an integer filter takes no strings")
	}
	return nil
}

func sysValue(v Value) bpfgen.ProcessSysValue {
	out := bpfgen.ProcessSysValue{Source: uint8(v.Source), Index: v.Index}
	if v.String {
		out.Flags |= uint8(bpfgen.ProcessSysValueFlagSYS_VAL_STRING)
	}
	if v.Signed {
		out.Flags |= uint8(bpfgen.ProcessSysValueFlagSYS_VAL_SIGNED)
	}
	switch v.Size {
	case 4:
		out.Flags |= uint8(bpfgen.ProcessSysValueFlagSYS_VAL_32)
	case 2:
		out.Flags |= uint8(bpfgen.ProcessSysValueFlagSYS_VAL_16)
	case 1:
		out.Flags |= uint8(bpfgen.ProcessSysValueFlagSYS_VAL_8)
	}
	return out
}

// sysSlotValue is the kernel's configuration of rule r.
func sysSlotValue(r SyscallRule) bpfgen.ProcessSysSlot {
	v := bpfgen.ProcessSysSlot{
		PolicyId: r.PolicyID, Action: uint8(r.Action), Signal: r.Signal, Group: r.Group,
		RateNs: uint64(r.RateLimit), BinAll: r.Binary.All, BinNone: r.Binary.None,
		ParentAll: r.Parent.All, ParentNone: r.Parent.None,
		Nargs: uint8(len(r.Args)), Npids: uint8(len(r.PIDs)), Nns: uint8(len(r.Namespaces)),
		Ncaps: uint8(len(r.Caps)), Ncapture: uint8(len(r.Capture)),
	}
	for _, f := range []struct {
		on   bool
		flag bpfgen.ProcessSysSlotFlag
	}{
		{r.Enforce, bpfgen.ProcessSysSlotFlagSYS_ENFORCE},
		{r.PIDNotIn, bpfgen.ProcessSysSlotFlagSYS_PID_NOTIN},
		{r.NamespacePID, bpfgen.ProcessSysSlotFlagSYS_PID_NS},
		{r.FollowForks && len(r.PIDs) > 0, bpfgen.ProcessSysSlotFlagSYS_PID_FOLLOW},
	} {
		if f.on {
			v.Flags |= uint8(f.flag)
		}
	}
	copy(v.Pids[:], r.PIDs)
	for i, n := range r.Namespaces {
		v.Ns[i] = bpfgen.ProcessSysNs{Kind: uint8(n.Kind), N: uint8(len(n.Inodes))}
		if n.NotIn {
			v.Ns[i].Notin = 1
		}
		copy(v.Ns[i].Inodes[:], n.Inodes)
	}
	for i, c := range r.Caps {
		v.Caps[i] = bpfgen.ProcessSysCap{Set: uint8(c.Set), Mask: c.Mask}
		if c.NotIn {
			v.Caps[i].Notin = 1
		}
		if c.UserNS {
			v.Caps[i].Userns = 1
		}
	}
	for i, a := range r.Args {
		v.Args[i] = bpfgen.ProcessSysArg{Value: sysValue(a.Value), Op: uint8(a.Op), Nints: uint8(len(a.Ints))}
		copy(v.Args[i].Ints[:], a.Ints)
		if a.Value.String {
			heads := sysHeads(a)
			v.Args[i].Nints = uint8(len(heads))
			for j, h := range heads {
				v.Args[i].Ints[j], v.Args[i].Hlen[j] = h.bytes, h.n
			}
		}
	}
	for i, c := range r.Capture {
		v.Capture[i] = sysValue(c)
	}
	return v
}
