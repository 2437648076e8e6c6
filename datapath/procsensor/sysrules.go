package procsensor

import (
	"net/netip"
	"time"
)

// Phase 2 of tracing policies (CONTRACT, implementations by their owners):
// binary classes shared by the syscall and connect rules, syscall rules at
// tp_btf sys_enter/sys_exit (bpf/lib/syscall_rules.h), and the events they
// post. Connect rules live with the socket LB (datapath.ConnectRule) and
// post ConnectEnforcement events into this sensor's ring.

// Limits of the kernel rule tables.
const (
	MaxBinaryClasses = 64
	MaxSyscallRules  = 64
	MaxArgFilters    = 4 // ArgFilter per rule
	MaxArgInts       = 8 // Ints per ArgFilter
	MaxCapture       = 4 // captured values per event
	MaxPIDs          = 8 // PIDs per rule
	MaxNSFilters     = 4
	MaxNSInodes      = 4 // Inodes per NSFilter
	StringMax        = 256
)

// BinaryClass is one matchBinaries/matchParentBinaries entry of the
// syscall and connect rules: a binary is in class ID when its path (as
// exec'd; /proc/PID/exe for processes found running) is one of Exact or
// starts with one of Prefixes. FollowChildren: the descendants of a
// process in the class are in it too.
type BinaryClass struct {
	ID             uint8
	Exact          []string
	Prefixes       []string
	FollowChildren bool
}

// ClassFilter tests a process's class bits: every class of All is set and
// none of None.
type ClassFilter struct {
	All  uint64
	None uint64
}

// ValueSource is where a syscall rule reads a value.
type ValueSource uint8

// Value sources.
const (
	SourceNr  ValueSource = 1 // the syscall number
	SourceArg ValueSource = 2 // syscall argument Index (0..5)
	SourceRet ValueSource = 3 // the return value (exit rules)
)

// Value is a value a rule reads: an integer, or the NUL-terminated user
// string an argument points to (read at the hook, at most StringMax-1
// bytes).
type Value struct {
	Source ValueSource
	Index  uint8
	String bool
	Signed bool // integers: GT/LT compare signed
	// Size is an integer argument's width in bytes (1, 2, 4; 0 or 8: the
	// whole register): the kernel compares the value the syscall uses (a
	// 32-bit int is the register's low half), sign-extended when Signed.
	Size uint8
}

// ArgOp is an argument filter's operator.
type ArgOp uint8

// Argument operators. Strings: Equal, NotEqual, Prefix, NotPrefix,
// Postfix, NotPostfix. Integers: Equal, NotEqual, Mask (any bit of any
// value), GT, LT (Ints[0]).
const (
	ArgEqual ArgOp = iota + 1
	ArgNotEqual
	ArgPrefix
	ArgNotPrefix
	ArgPostfix
	ArgNotPostfix
	ArgMask
	ArgGT
	ArgLT
)

// ArgFilter is one matchArgs entry.
type ArgFilter struct {
	Value   Value
	Op      ArgOp
	Ints    []uint64
	Strings []string
}

// NSFilter is one matchNamespaces entry: the namespace Kind (NSUts, ...)
// inode is (NotIn: is not) one of Inodes.
type NSFilter struct {
	Kind   NSKind
	NotIn  bool
	Inodes []uint32
}

// NSKind is a namespace kind.
type NSKind uint8

// Namespace kinds.
const (
	NSUts NSKind = iota + 1
	NSIpc
	NSMnt
	NSPid
	NSPidForChildren
	NSNet
	NSTime
	NSTimeForChildren
	NSCgroup
	NSUser
)

// CapFilter is one matchCapabilities entry: the Set (CapEffective, ...)
// has any bit of Mask (NotIn: none).
type CapFilter struct {
	Set   CapSet
	NotIn bool
	Mask  uint64
	// UserNS: only for processes outside the host's user namespace.
	UserNS bool
}

// CapSet names a capability set.
type CapSet uint8

// Capability sets.
const (
	CapEffective CapSet = iota + 1
	CapPermitted
	CapInheritable
)

// SyscallRule is one slot of the syscall hooks: a selector of a
// tracepoint. The lowest matching slot of a Group decides for the group
// (a tracepoint's selectors, first match wins); each group decides once
// per syscall.
type SyscallRule struct {
	Slot     uint8
	PolicyID uint32
	Group    uint64 // slots of the same tracepoint, this one included
	Exit     bool   // sys_exit (else sys_enter)
	// Syscalls the rule applies to (nil: every syscall).
	Syscalls []uint32
	// Global: every process (host included); else processes in the network
	// namespaces given to SetSyscallScope, or with Cgroup, in the cgroups
	// given to SetSyscallCgroupScope.
	Global bool
	// Cgroup: scoped by the process's cgroup v2 id (containerSelector)
	// instead of its network namespace.
	Cgroup bool
	Binary ClassFilter
	Parent ClassFilter
	// PIDs: the process's tgid is (PIDNotIn: is not) one of PIDs (as seen
	// in its pid namespace with NamespacePID). FollowForks: descendants of
	// a matching process match too.
	PIDs         []uint32
	PIDNotIn     bool
	NamespacePID bool
	FollowForks  bool
	Namespaces   []NSFilter
	Caps         []CapFilter
	Args         []ArgFilter
	// Capture are the values the event reports.
	Capture []Value
	Action  ExecAction
	Signal  uint8
	Enforce bool
	// RateLimit: Post at most once per process per period (0: no limit).
	RateLimit time.Duration
}

// ArgValue is a captured value.
type ArgValue struct {
	Int       uint64
	Str       string
	IsString  bool
	Truncated bool // the string was longer than StringMax-1 bytes
	Fault     bool // the user memory could not be read
}

// SyscallEvent is the event of a matching syscall rule.
type SyscallEvent struct {
	Time     time.Time
	Key      Key
	PID      uint32 // the thread
	PolicyID uint32
	Slot     uint8
	Action   ExecAction
	Signal   uint8
	Enforced bool // the signal was sent
	Exit     bool
	Nr       uint32
	Ret      int64 // exit rules
	Args     []ArgValue
	NetNS    uint32
}

// ConnectEnforcement is the event of a matching connect rule
// (datapath.ConnectRule), posted by the socket-LB hooks.
type ConnectEnforcement struct {
	Time     time.Time
	Key      Key
	PID      uint32
	PolicyID uint32
	Slot     uint8
	Action   ExecAction // ExecPost, ExecSigkill, ExecSignal, or ConnectDeny
	Signal   uint8
	Enforced bool // the connect was refused (EPERM) / the signal sent
	Proto    uint8
	Dst      netip.AddrPort // as the process asked
	Backend  netip.AddrPort // after service translation (zero when none)
	NetNS    uint32
}

// ConnectDeny is the action of a connect rule that refuses the connect
// (Override, EPERM).
const ConnectDeny ExecAction = 5
