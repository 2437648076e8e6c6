package process

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/procsensor"
)

// hookTable is a SyscallHooks of fixed slots.
type hookTable map[[2]uint32]SyscallHook

func (h hookTable) SyscallHook(policyID uint32, slot uint8) (SyscallHook, bool) {
	hk, ok := h[[2]uint32{policyID, uint32(slot)}]
	return hk, ok
}

func ptr[T any](v T) *T { return &v }

func TestSyscallEvent(t *testing.T) {
	pols := &policyCounter{}
	hooks := hookTable{{7, 3}: {Subsys: "syscalls", Event: "sys_enter_openat", Args: []HookArg{{Label: "dfd", Signed: true}, {Label: "filename"}, {Label: "flags"}}}}
	f := newFixture(t, Config{Policies: pols, Hooks: hooks})
	f.seedChain(t, 2)
	f.exec(3, 2, "/usr/bin/cat", "/etc/shadow")
	at := time.Unix(1700000000, 0)

	f.m.Handle(procsensor.Event{Syscall: &procsensor.SyscallEvent{
		Time: at, Key: key(3), PID: 3, PolicyID: 7, Slot: 3, Action: procsensor.ExecSigkill, Signal: 9, Enforced: true, Nr: 257,
		Args: []procsensor.ArgValue{{Int: uint64(0xffffffffffffff9c)}, {Str: "/etc/shadow", IsString: true}, {Int: 0x80000}},
	}})
	ev := f.rec.last(t)
	require.Equal(t, api.EventProcessTracepoint, ev.Kind())
	assert.Equal(t, at, ev.Time, "the kernel's time")
	tp := ev.ProcessTracepoint
	assert.Equal(t, "/usr/bin/cat", tp.Process.Binary)
	assert.Equal(t, "/etc/shadow", tp.Process.Arguments)
	assert.Equal(t, uint32(2), tp.Parent.PID)
	assert.Equal(t, api.ProcessTracepoint{
		Process: tp.Process, Parent: tp.Parent, Ancestors: tp.Ancestors,
		Subsys: "syscalls", Event: "sys_enter_openat", Syscall: "openat",
		Args: []api.TracepointArg{
			{Label: "dfd", IntArg: ptr(int64(-100))},
			{Label: "filename", StringArg: ptr("/etc/shadow")},
			{Label: "flags", SizeArg: ptr(uint64(0x80000))},
		},
		Action: "KPROBE_ACTION_SIGKILL", Enforced: true, PolicyName: "default/no-nc",
	}, *tp)

	// An exit rule whose slot is gone (the rules moved): the raw hook, the
	// return value, a truncated string.
	f.m.Handle(procsensor.Event{Syscall: &procsensor.SyscallEvent{
		Key: key(3), PolicyID: 7, Slot: 9, Action: procsensor.ExecPost, Exit: true, Nr: 257, Ret: -13,
		Args: []procsensor.ArgValue{{Str: "/very/long", IsString: true, Truncated: true}},
	}})
	tp = f.rec.last(t).ProcessTracepoint
	assert.Equal(t, []string{"raw_syscalls", "sys_exit", "openat"}, []string{tp.Subsys, tp.Event, tp.Syscall})
	assert.Equal(t, ptr(int64(-13)), tp.Return)
	assert.Equal(t, []api.TracepointArg{{StringArg: ptr("/very/long"), Truncated: true}}, tp.Args)
	assert.Equal(t, "KPROBE_ACTION_POST", tp.Action)
	assert.False(t, tp.Enforced)

	// NoPost publishes and counts nothing.
	f.m.Handle(procsensor.Event{Syscall: &procsensor.SyscallEvent{Key: key(3), PolicyID: 7, Slot: 3, Action: procsensor.ExecNoPost, Nr: 257}})
	assert.Empty(t, f.rec.take())
	assert.Equal(t, []string{"KPROBE_ACTION_SIGKILL", "KPROBE_ACTION_POST"}, pols.calls)
}

func TestConnectRuleEvent(t *testing.T) {
	pols := &policyCounter{}
	f := newFixture(t, Config{Policies: pols})
	f.seedChain(t, 2)
	f.exec(3, 2, "/usr/bin/curl", "http://web")

	f.m.Handle(procsensor.Event{ConnectRule: &procsensor.ConnectEnforcement{
		Key: key(3), PID: 3, PolicyID: 7, Action: procsensor.ConnectDeny, Enforced: true, Proto: 6,
		Dst: netip.MustParseAddrPort("10.96.0.10:80"), Backend: netip.MustParseAddrPort("10.0.0.5:8080"),
	}})
	tp := f.rec.last(t).ProcessTracepoint
	assert.Equal(t, "/usr/bin/curl", tp.Process.Binary)
	assert.Equal(t, api.ProcessTracepoint{
		Process: tp.Process, Parent: tp.Parent, Ancestors: tp.Ancestors, Subsys: "sluice", Event: "connect",
		Args: []api.TracepointArg{{Label: "dest", SockaddrArg: &api.SockaddrArg{
			Family: "AF_INET", Addr: "10.96.0.10", Port: 80, Protocol: "TCP", Backend: "10.0.0.5:8080",
		}}},
		Action: "KPROBE_ACTION_OVERRIDE", Enforced: true, PolicyName: "default/no-nc",
	}, *tp)

	// Monitor mode, no translation.
	f.m.Handle(procsensor.Event{ConnectRule: &procsensor.ConnectEnforcement{
		Key: key(3), PolicyID: 7, Action: procsensor.ConnectDeny, Proto: 17, Dst: netip.MustParseAddrPort("10.0.0.1:53"),
	}})
	tp = f.rec.last(t).ProcessTracepoint
	assert.False(t, tp.Enforced)
	assert.Equal(t, &api.SockaddrArg{Family: "AF_INET", Addr: "10.0.0.1", Port: 53, Protocol: "UDP"}, tp.Args[0].SockaddrArg)

	f.m.Handle(procsensor.Event{ConnectRule: &procsensor.ConnectEnforcement{Key: key(3), PolicyID: 7, Action: procsensor.ExecNoPost}})
	assert.Empty(t, f.rec.take())
	assert.Equal(t, []string{"KPROBE_ACTION_OVERRIDE", "KPROBE_ACTION_OVERRIDE"}, pols.calls)
}
