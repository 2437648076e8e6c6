package process

import (
	"time"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/policy"
	"github.com/sluicenet/sluice/policy/tracing"
)

// SyscallHook describes the tracepoint of a syscall rule, for its events.
type SyscallHook struct {
	Subsys, Event string // as the policy wrote them
	// Args describe the values the rule captures, in order.
	Args []HookArg
}

// HookArg describes a captured value: its label, and for an integer
// whether it is signed (int_arg) or not (size_arg).
type HookArg struct {
	Label  string
	Signed bool
}

// SyscallHooks describes the tracepoint of a syscall rule by its policy
// and slot (*tracingmgr.Manager); ok is false for a rule that is gone.
type SyscallHooks interface {
	SyscallHook(policyID uint32, slot uint8) (SyscallHook, bool)
}

// Subsystem and event of connect rule events (spec.connects, a Sluice
// extension evaluated by the cgroup connect hooks).
const (
	ConnectSubsys = "sluice"
	ConnectEvent  = "connect"
)

// handleSyscall publishes the process_tracepoint event of a syscall rule
// that matched: the tracepoint as the policy wrote it, the syscall, the
// captured values typed and labelled, the return value of exit rules. NoPost
// matches publish nothing.
func (m *Manager) handleSyscall(x *procsensor.SyscallEvent) {
	if x.Action == procsensor.ExecNoPost {
		return
	}
	var hook SyscallHook
	ok := false
	if m.cfg.Hooks != nil {
		hook, ok = m.cfg.Hooks.SyscallHook(x.PolicyID, x.Slot)
	}
	if !ok {
		hook.Subsys, hook.Event = "raw_syscalls", "sys_enter"
		if x.Exit {
			hook.Event = "sys_exit"
		}
	}
	tp := &api.ProcessTracepoint{
		Subsys: hook.Subsys, Event: hook.Event, Syscall: tracing.SyscallName(x.Nr), Args: syscallArgs(x.Args, hook.Args),
		Action: ActionName(x.Action), Enforced: x.Enforced, PolicyName: m.policyEvent(x.PolicyID, x.Action, x.Enforced),
	}
	if x.Exit {
		ret := x.Ret
		tp.Return = &ret
	}
	m.publishTracepoint(tp, x.Key, x.NetNS, "", eventTime(x.Time))
}

// syscallArgs types the captured values: strings as string_arg, signed
// integers as int_arg, the others as size_arg. A string the kernel could
// not read is an empty string_arg.
func syscallArgs(vs []procsensor.ArgValue, desc []HookArg) []api.TracepointArg {
	var out []api.TracepointArg
	for i, v := range vs {
		var d HookArg
		if i < len(desc) {
			d = desc[i]
		}
		a := api.TracepointArg{Label: d.Label}
		switch {
		case v.IsString:
			s := v.Str
			a.StringArg, a.Truncated = &s, v.Truncated
		case d.Signed:
			n := int64(v.Int)
			a.IntArg = &n
		default:
			n := v.Int
			a.SizeArg = &n
		}
		out = append(out, a)
	}
	return out
}

// handleConnectRule publishes the process_tracepoint event of a connect
// rule that matched (Override: the connect was refused with EPERM): the
// destination as the process asked, with the backend the socket load
// balancer chose when it translated a service. NoPost matches publish
// nothing.
func (m *Manager) handleConnectRule(x *procsensor.ConnectEnforcement) {
	if x.Action == procsensor.ExecNoPost {
		return
	}
	sa := &api.SockaddrArg{Family: "AF_INET", Addr: x.Dst.Addr().String(), Port: x.Dst.Port(), Protocol: policy.ProtoName(x.Proto)}
	if x.Dst.Addr().Is6() {
		sa.Family = "AF_INET6"
	}
	if x.Backend.IsValid() && x.Backend != x.Dst {
		sa.Backend = x.Backend.String()
	}
	tp := &api.ProcessTracepoint{
		Subsys: ConnectSubsys, Event: ConnectEvent, Args: []api.TracepointArg{{Label: "dest", SockaddrArg: sa}},
		Action: ActionName(x.Action), Enforced: x.Enforced, PolicyName: m.policyEvent(x.PolicyID, x.Action, x.Enforced),
	}
	m.publishTracepoint(tp, x.Key, x.NetNS, "", eventTime(x.Time))
}

// eventTime is the event's time, or now when the event has none.
func eventTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}
