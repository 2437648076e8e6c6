package tracing

import (
	"errors"
	"fmt"
	"strings"
)

// Subsystems of the tracepoints that run on the raw syscall hooks.
const (
	SubsystemRawSyscalls = "raw_syscalls"
	SubsystemSyscalls    = "syscalls"
)

// Tracepoint format indexes (Tetragon's args index): 0..3 are the common
// fields, then the event's own.
const (
	formatCommonFields = 4 // common_type, common_flags, common_preempt_count, common_pid
	formatNr           = 4 // raw_syscalls id, syscalls __syscall_nr
	formatFirst        = 5 // raw_syscalls args (args[0]) or ret; syscalls argument 0 or ret
	maxSyscallArgs     = 6
	maxMessageLen      = 256
	maxTags            = 16
)

// event is what a tracepoint's subsystem and event name resolve to.
type event struct {
	exit    bool
	raw     bool   // Tetragon's raw: the raw tracepoint's arguments
	syscall string // syscalls/sys_enter_X: X ("" for raw_syscalls)
	nr      uint32
	args    []syscallArg // the arguments of syscall (nil when unknown)
	known   bool         // args describes the syscall
}

// tracepoint compiles one spec.tracepoints entry.
func (c *compiler) tracepoint(path string, t *TracepointSpec) {
	ev, ok := c.event(path, t)
	if !ok {
		return
	}
	tp := Tracepoint{Subsystem: t.Subsystem, Event: t.Event, Exit: ev.exit, Message: t.Message, Tags: t.Tags}
	if ev.syscall != "" {
		tp.Syscalls = []uint32{ev.nr}
	}
	if len(t.Message) > maxMessageLen {
		c.addf(path+".message", "at most %d characters, got %d", maxMessageLen, len(t.Message))
	}
	if len(t.Tags) > maxTags {
		c.addf(path+".tags", "at most %d tags, got %d", maxTags, len(t.Tags))
	}
	if len(t.Args) > MaxCapture {
		c.addf(path+".args", "at most %d values per event, got %d", MaxCapture, len(t.Args))
	}
	formatIndex := make([]uint32, len(t.Args))
	valid := true
	for i, a := range t.Args {
		formatIndex[i] = a.Index
		v, ok := c.captureValue(fmt.Sprintf("%s.args[%d]", path, i), ev, a)
		valid = valid && ok
		tp.Capture = append(tp.Capture, v)
	}
	if !valid {
		return // matchArgs refer to the captured values
	}
	for i := range t.Selectors {
		if sel, ok := c.tracepointSelector(fmt.Sprintf("%s.selectors[%d]", path, i), &t.Selectors[i], &tp, formatIndex); ok {
			tp.Selectors = append(tp.Selectors, sel)
		}
	}
	if len(t.Selectors) == 0 {
		// Tetragon: a tracepoint without selectors posts every event.
		tp.Selectors = []TracepointSelector{{Action: ActionPost}}
	}
	c.out.Tracepoints = append(c.out.Tracepoints, tp)
}

// event resolves a tracepoint's subsystem and event.
func (c *compiler) event(path string, t *TracepointSpec) (event, bool) {
	ev := event{raw: t.Raw}
	switch t.Subsystem {
	case SubsystemRawSyscalls:
		switch t.Event {
		case "sys_enter":
		case "sys_exit":
			ev.exit = true
		default:
			c.addf(path+".event", "%s has the events sys_enter and sys_exit, not %q", t.Subsystem, t.Event)
			return ev, false
		}
		return ev, true
	case SubsystemSyscalls:
		if t.Raw {
			c.addf(path+".raw", "the syscalls/* tracepoints are not raw tracepoints (raw applies to raw_syscalls)")
			return ev, false
		}
		switch {
		case strings.HasPrefix(t.Event, "sys_enter_"):
			ev.syscall = strings.TrimPrefix(t.Event, "sys_enter_")
		case strings.HasPrefix(t.Event, "sys_exit_"):
			ev.syscall, ev.exit = strings.TrimPrefix(t.Event, "sys_exit_"), true
		default:
			c.addf(path+".event", "%q is not sys_enter_NAME or sys_exit_NAME", t.Event)
			return ev, false
		}
		var ok bool
		if ev.nr, ev.args, ev.known, ok = tracepointSyscall(ev.syscall); !ok {
			c.addf(path+".event", "unknown syscall %q", ev.syscall)
			return ev, false
		}
		return ev, true
	case "":
		c.add(path+".subsystem", errors.New("required"))
	case "sched":
		c.add(path, fmt.Errorf("%s/%s: only the syscall tracepoints (raw_syscalls, syscalls) run here (spec.execs covers exec): %w",
			t.Subsystem, t.Event, ErrNotYet))
	default:
		c.add(path, fmt.Errorf("%s/%s: only the syscall tracepoints (raw_syscalls, syscalls) run here: %w", t.Subsystem, t.Event, ErrNotYet))
	}
	return ev, false
}

// declared is what a format field holds: its value source and, when
// known, its C type.
type declared struct {
	value SyscallValue
	ctype string // "" when unknown
}

// field resolves a format index of the tracepoint.
func (ev event) field(index uint32) (declared, error) {
	nr := declared{value: SyscallValue{Source: SourceSyscallNr, Label: "__syscall_nr", Type: TypeInt, Signed: true, Size: 4}, ctype: "int"}
	ret := declared{value: SyscallValue{Source: SourceReturn, Label: "ret", Type: TypeInt, Signed: true, Size: 8}, ctype: "long"}
	switch {
	case ev.raw && index == 0:
		return declared{}, fmt.Errorf("index 0 is the raw tracepoint's struct pt_regs *, which is not read (resolve): %w", ErrNotYet)
	case ev.raw && index == 1 && ev.exit:
		return ret, nil
	case ev.raw && index == 1:
		nr.value.Label, nr.value.Size, nr.ctype = "id", 8, "long"
		return nr, nil
	case ev.raw:
		return declared{}, fmt.Errorf("index %d: the raw syscall tracepoints have the arguments 0 (regs) and 1 (%s)", index, ev.raw1())
	case index < formatCommonFields:
		return declared{}, fmt.Errorf("index %d is a common field (common_type, common_flags, common_preempt_count, common_pid), "+
			"which the syscall hooks do not read: %w", index, ErrNotYet)
	case index == formatNr && ev.syscall == "":
		nr.value.Label, nr.value.Size, nr.ctype = "id", 8, "long"
		return nr, nil
	case index == formatNr:
		return nr, nil
	case index == formatFirst && ev.exit:
		return ret, nil
	case ev.exit:
		return declared{}, fmt.Errorf("index %d: a sys_exit tracepoint has the fields 4 (the syscall number) and 5 (ret)", index)
	case ev.syscall == "" && index == formatFirst:
		arg0 := SyscallValue{Source: SourceSyscallArg, Index: 0, Label: "args[0]", Type: TypeInt, Size: 8}
		return declared{value: arg0, ctype: "unsigned long"}, nil // as the format declares args[6]
	case ev.syscall == "":
		return declared{}, fmt.Errorf("index %d: raw_syscalls/sys_enter has the fields 4 (id) and 5 (args: the first argument)", index)
	}
	i := int(index - formatFirst)
	if ev.known && i >= len(ev.args) || i >= maxSyscallArgs {
		return declared{}, fmt.Errorf("index %d: %s has %d arguments (indexes 5..%d)", index, ev.syscall, len(ev.args), formatFirst+len(ev.args)-1)
	}
	if !ev.known {
		return declared{value: SyscallValue{Source: SourceSyscallArg, Index: i, Label: fmt.Sprintf("arg%d", i), Type: TypeInt, Size: 8}}, nil
	}
	a := ev.args[i]
	return declared{value: SyscallValue{Source: SourceSyscallArg, Index: i, Label: a.Name, Type: a.Type, Signed: a.Signed, Size: a.Size},
		ctype: a.CType}, nil
}

func (ev event) raw1() string {
	if ev.exit {
		return "ret"
	}
	return "id"
}

// captureValue compiles one spec args entry.
func (c *compiler) captureValue(path string, ev event, a ArgSpec) (SyscallValue, bool) {
	c.notYet(path+".", []field{
		{"sizeArgIndex", a.SizeArgIndex != 0}, {"returnCopy", a.ReturnCopy}, {"maxData", a.MaxData},
		{"resolve", a.Resolve != ""}, {"source", a.Source != ""}, {"btfType", a.BTFType != ""},
		{"btfTypeModule", a.BTFTypeModule != ""},
	})
	d, err := ev.field(a.Index)
	if err != nil {
		c.add(path+".index", err)
		return SyscallValue{}, false
	}
	v := d.value
	if a.Label != "" {
		v.Label = a.Label
	}
	ok := c.valueType(path+".type", a.Type, d, &v)
	return v, ok
}
