package tracingmgr

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/policy/tracing"
)

// sysRule is the syscall rule of one tracepoint selector without its slot,
// group, policy, scope, mode and class ids (given at allocation).
type sysRule struct {
	tp             int // index in Compiled.Tracepoints
	rule           procsensor.SyscallRule
	binary, parent classRefs
}

// buildSyscallRules turns a compiled policy's tracepoints into syscall
// rules, one per selector in order; an error names the field one slot
// cannot express. hostNS resolves matchNamespaces' host_ns.
func buildSyscallRules(c *tracing.Compiled, hostNS hostNSFunc) ([]sysRule, error) {
	var out []sysRule
	for i, tp := range c.Tracepoints {
		if len(tp.Capture) > procsensor.MaxCapture {
			return nil, fmt.Errorf("spec.tracepoints[%d].args: %d values and an event carries at most %d", i, len(tp.Capture), procsensor.MaxCapture)
		}
		capture := make([]procsensor.Value, len(tp.Capture))
		for k, v := range tp.Capture {
			var err error
			if capture[k], err = sensorValue(v, tp.Exit); err != nil {
				return nil, fmt.Errorf("spec.tracepoints[%d].args[%d]: %w", i, k, err)
			}
		}
		for j, sel := range tp.Selectors {
			field := fmt.Sprintf("spec.tracepoints[%d].selectors[%d]", i, j)
			r := sysRule{tp: i, rule: procsensor.SyscallRule{Exit: tp.Exit, Capture: capture, RateLimit: sel.RateLimit}}
			var err error
			if r.rule.Syscalls, err = ruleSyscalls(tp.Syscalls, sel.Syscalls); err != nil {
				return nil, fmt.Errorf("%s: %w", field, err)
			}
			if r.binary, r.parent, err = processClasses(field, sel.ProcessFilters); err != nil {
				return nil, err
			}
			if err := processFilters(field, sel.ProcessFilters, &r.rule, hostNS); err != nil {
				return nil, err
			}
			if r.rule.Args, err = argFilters(field, sel.Args, tp.Exit); err != nil {
				return nil, err
			}
			if r.rule.Action, r.rule.Signal, err = ruleAction(sel.Action, sel.Signal, false); err != nil {
				return nil, fmt.Errorf("%s.matchActions: %w", field, err)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// ruleSyscalls returns the syscalls of a selector: the tracepoint's (nil:
// every syscall), narrowed by the selector's. A selector that narrows to
// nothing is an error (nil would mean every syscall).
func ruleSyscalls(tp, sel []uint32) ([]uint32, error) {
	switch {
	case sel == nil:
		return sortedUnique(tp), nil
	case tp == nil:
		return sortedUnique(sel), nil
	}
	out := slices.DeleteFunc(slices.Clone(sel), func(nr uint32) bool { return !slices.Contains(tp, nr) })
	if len(out) == 0 {
		return nil, errors.New("the syscall numbers selected are not of the tracepoint's syscalls: the selector matches no syscall")
	}
	return sortedUnique(out), nil
}

// sensorValue maps a compiled value to the sensor's.
func sensorValue(v tracing.SyscallValue, exit bool) (procsensor.Value, error) {
	out := procsensor.Value{String: v.Type == tracing.TypeString, Signed: v.Signed}
	if v.Type == tracing.TypeInt && v.Source == tracing.SourceSyscallArg {
		out.Size = uint8(v.Size)
	}
	switch v.Source {
	case tracing.SourceSyscallNr:
		out.Source = procsensor.SourceNr
	case tracing.SourceSyscallArg:
		if v.Index < 0 || v.Index > 5 {
			return out, fmt.Errorf("syscall argument %d: a syscall has arguments 0 to 5", v.Index)
		}
		out.Source, out.Index = procsensor.SourceArg, uint8(v.Index)
	case tracing.SourceReturn:
		if !exit {
			return out, errors.New("the return value is known at sys_exit only")
		}
		out.Source = procsensor.SourceRet
	default:
		return out, fmt.Errorf("value source %d unknown", v.Source)
	}
	if out.String && out.Source != procsensor.SourceArg {
		return out, errors.New("only a syscall argument can point to a string")
	}
	return out, nil
}

// argOps maps matchArgs operators to the sensor's.
var argOps = map[tracing.ArgOp]procsensor.ArgOp{
	tracing.OpEqual: procsensor.ArgEqual, tracing.OpNotEqual: procsensor.ArgNotEqual,
	tracing.OpPrefix: procsensor.ArgPrefix, tracing.OpNotPrefix: procsensor.ArgNotPrefix,
	tracing.OpPostfix: procsensor.ArgPostfix, tracing.OpNotPostfix: procsensor.ArgNotPostfix,
	tracing.OpMask: procsensor.ArgMask, tracing.OpGT: procsensor.ArgGT, tracing.OpLT: procsensor.ArgLT,
}

// argFilters maps a selector's matchArgs to the sensor's filters.
func argFilters(field string, ams []tracing.ArgMatch, exit bool) ([]procsensor.ArgFilter, error) {
	field += ".matchArgs"
	if len(ams) > procsensor.MaxArgFilters {
		return nil, fmt.Errorf("%s: %d entries and a rule holds at most %d", field, len(ams), procsensor.MaxArgFilters)
	}
	var out []procsensor.ArgFilter
	for i, am := range ams {
		path := fmt.Sprintf("%s[%d]", field, i)
		v, err := sensorValue(am.Value, exit)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		op, ok := argOps[am.Op]
		if !ok {
			return nil, fmt.Errorf("%s.operator: %q is not supported", path, am.Op)
		}
		if err := checkArgValues(am, v.String, op); err != nil {
			return nil, fmt.Errorf("%s.%w", path, err)
		}
		out = append(out, procsensor.ArgFilter{Value: v, Op: op, Ints: slices.Clone(am.Ints), Strings: slices.Clone(am.Strings)})
	}
	return out, nil
}

// checkArgValues checks that the operator applies to the value's type and
// that the values fit the sensor's filter: integers 1..MaxArgInts (one for
// GT/LT), strings without NUL and within the bytes a filter key holds (a
// prefix fills the kernel's 255 bytes; an exact or postfix string needs
// its end read too).
func checkArgValues(am tracing.ArgMatch, isString bool, op procsensor.ArgOp) error {
	isStringOp := op >= procsensor.ArgPrefix && op <= procsensor.ArgNotPostfix
	switch {
	case isString && op >= procsensor.ArgMask:
		return fmt.Errorf("operator: %s compares integers, the value is a string", am.Op)
	case !isString && isStringOp:
		return fmt.Errorf("operator: %s compares strings, the value is an integer", am.Op)
	case isString && (len(am.Strings) == 0 || len(am.Ints) > 0):
		return errors.New("values: a string value is compared with strings")
	case !isString && (len(am.Ints) == 0 || len(am.Strings) > 0):
		return errors.New("values: an integer value is compared with integers")
	case (op == procsensor.ArgGT || op == procsensor.ArgLT) && len(am.Ints) != 1:
		return fmt.Errorf("values: %s takes one value", am.Op)
	case len(am.Ints) > procsensor.MaxArgInts:
		return fmt.Errorf("values: %d values and a filter holds at most %d", len(am.Ints), procsensor.MaxArgInts)
	}
	limit := procsensor.StringMax - 2
	if op == procsensor.ArgPrefix || op == procsensor.ArgNotPrefix {
		limit = procsensor.StringMax - 1
	}
	for _, s := range am.Strings {
		switch {
		case strings.IndexByte(s, 0) >= 0:
			return fmt.Errorf("values: %q holds a NUL byte", s)
		case len(s) > limit:
			return fmt.Errorf("values: %q is longer than the %d bytes the kernel compares for %s", s, limit, am.Op)
		}
	}
	return nil
}

// ruleAction maps a selector's action to the sensor's. Override (deny) is
// an action of connect rules only.
func ruleAction(a tracing.Action, signal int, connect bool) (procsensor.ExecAction, uint8, error) {
	switch a {
	case tracing.ActionPost, "":
		return procsensor.ExecPost, 0, nil
	case tracing.ActionNoPost:
		return procsensor.ExecNoPost, 0, nil
	case tracing.ActionSigkill:
		return procsensor.ExecSigkill, 9, nil
	case tracing.ActionSignal:
		if signal <= 0 || signal > 64 {
			return 0, 0, fmt.Errorf("signal %d is not a signal number", signal)
		}
		return procsensor.ExecSignal, uint8(signal), nil
	case tracing.ActionOverride:
		if connect {
			return procsensor.ConnectDeny, 0, nil
		}
		return 0, 0, errors.New("action Override: a syscall hook cannot change the syscall's result (only spec.connects can deny)")
	}
	return 0, 0, fmt.Errorf("action %q is not supported", a)
}
