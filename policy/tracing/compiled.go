// Package tracing holds the SluiceTracingPolicy and
// SluiceTracingPolicyNamespaced CRD types (Tetragon's TracingPolicy schema
// where its hooks exist on this kernel) and compiles them into the rules the
// process sensor enforces.
//
// +groupName=sluice.io
// +versionName=v1alpha1
package tracing

import (
	"net/netip"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kinds of the tracing policies (group sluice.io, version v1alpha1).
const (
	KindTracingPolicy           = "SluiceTracingPolicy"
	KindTracingPolicyNamespaced = "SluiceTracingPolicyNamespaced"
)

// Mode is a policy's enforcement mode (spec.options policy-mode).
type Mode string

// Modes: in monitor mode enforcement actions are reported, not carried out.
const (
	ModeEnforce Mode = "enforce"
	ModeMonitor Mode = "monitor"
)

// Ref names a tracing policy.
type Ref struct {
	Kind      string
	Namespace string // "" for the cluster-scoped kind
	Name      string
}

// BinaryOp is a matchBinaries operator.
type BinaryOp string

// matchBinaries operators.
const (
	BinaryIn     BinaryOp = "In"
	BinaryNotIn  BinaryOp = "NotIn"
	BinaryPrefix BinaryOp = "Prefix"
)

// Action is a matchActions action.
type Action string

// Actions supported on this kernel.
const (
	ActionPost    Action = "Post"
	ActionNoPost  Action = "NoPost"
	ActionSigkill Action = "Sigkill"
	ActionSignal  Action = "Signal"
)

// BinaryMatch is one matchBinaries entry: the binary path (as exec'd) is In
// Values, NotIn them, or has one of them as a Prefix. FollowChildren: the
// processes a matching process forks (and what they exec) match too.
type BinaryMatch struct {
	Op             BinaryOp
	Values         []string
	FollowChildren bool
}

// ExecSelector is one selector of spec.execs (exec prevention and
// monitoring, a Sluice extension evaluated at sched_process_exec): the
// binary that is exec'd matches Binaries (every entry, ANDed), and the
// first matching selector of a policy decides.
type ExecSelector struct {
	Binaries []BinaryMatch
	Action   Action
	// Signal is the signal number for ActionSignal (9 for ActionSigkill).
	Signal int
	// RateLimit, for Post: at most one event per process per this duration
	// ("" none), as Tetragon's rateLimit.
	RateLimit metav1.Duration
}

// Compiled is a validated policy in the form the agent programs.
type Compiled struct {
	Ref  Ref
	Mode Mode
	// PodSelector selects the pods the policy applies to (nil: every pod and
	// the host for the cluster-scoped kind; every pod of Ref.Namespace for
	// the namespaced kind).
	PodSelector *metav1.LabelSelector
	// ContainerSelector, when set, narrows the policy to the containers of
	// the selected pods whose fields (ContainerLabels: name, repo) it
	// matches: the processes in those containers' cgroups. Set (even
	// empty), the policy applies to no host process.
	ContainerSelector *metav1.LabelSelector
	Execs             []ExecSelector
	// Tracepoints are spec.tracepoints compiled to the syscall hooks.
	Tracepoints []Tracepoint
	// Connects are spec.connects (Sluice extension): selectors evaluated
	// by the cgroup connect4/sendmsg4 hooks; each entry's first matching
	// selector decides.
	Connects [][]ConnectSelector
}

// --- phase 2: tracepoints, connect rules and the process filters ---

// ActionOverride is Tetragon's Override; here only in spec.connects, where
// the cgroup hooks make connect()/sendmsg() fail with EPERM (argError -1,
// the one error these hooks can return).
const ActionOverride Action = "Override"

// ArgSource says where a syscall hook reads a value.
type ArgSource uint8

// Value sources of the syscall hooks.
const (
	SourceSyscallNr  ArgSource = iota + 1 // the syscall number (raw_syscalls id, __syscall_nr)
	SourceSyscallArg                      // argument Index (0..5) of the syscall
	SourceReturn                          // the return value (sys_exit)
)

// ArgType is how a value is read and compared.
type ArgType uint8

// Value types: integers are read as 64 bits (Signed says how GT/LT
// compare); strings are NUL-terminated user memory the argument points to
// (char *, const char __user * filename), read when the hook runs.
const (
	TypeInt ArgType = iota + 1
	TypeString
)

// SyscallValue is one value a syscall hook can read.
type SyscallValue struct {
	Source ArgSource
	Index  int // SourceSyscallArg: 0..5
	Type   ArgType
	Signed bool
	// Label is Tetragon's arg label (reported with the value), or the
	// argument's name from the syscall's signature.
	Label string
	// Size is the width of the integer in bytes (1, 2, 4 or 8; 0 for
	// strings): a hook compares the register's low Size bytes,
	// sign-extended when Signed (an int argument holding -100 is -100, not
	// 4294967196). Ints of an ArgMatch are given as 64-bit values.
	Size uint8
}

// ArgOp is a matchArgs operator.
type ArgOp string

// matchArgs operators (Tetragon's names). InMap/NotInMap compile to
// Equal/NotEqual. Prefix/Postfix (and Not*) apply to strings; Mask, GT and
// LT to integers; Equal/NotEqual to both.
const (
	OpEqual      ArgOp = "Equal"
	OpNotEqual   ArgOp = "NotEqual"
	OpPrefix     ArgOp = "Prefix"
	OpNotPrefix  ArgOp = "NotPrefix"
	OpPostfix    ArgOp = "Postfix"
	OpNotPostfix ArgOp = "NotPostfix"
	OpMask       ArgOp = "Mask"
	OpGT         ArgOp = "GT"
	OpLT         ArgOp = "LT"
)

// ArgMatch is one matchArgs entry: Value compared with Ints or Strings
// (any of the values for Equal/Prefix/Postfix/Mask, none of them for the
// Not operators, the single value for GT/LT).
type ArgMatch struct {
	Value   SyscallValue
	Op      ArgOp
	Ints    []uint64 // two's complement for negative values
	Strings []string
}

// PIDMatch is a matchPIDs entry.
type PIDMatch struct {
	NotIn          bool
	Values         []uint32
	IsNamespacePID bool // compare the pid as seen in the process's pid namespace
	FollowForks    bool // the children of a matching process match too
}

// NamespaceMatch is a matchNamespaces entry: the process's namespace of
// kind Namespace (Uts, Ipc, Mnt, Pid, PidForChildren, Net, Time,
// TimeForChildren, Cgroup, User) is (NotIn: is not) one of Inodes, or the
// host's when Host ("host_ns" among Tetragon's values).
type NamespaceMatch struct {
	Namespace string
	NotIn     bool
	Host      bool
	Inodes    []uint32
}

// CapabilityMatch is a matchCapabilities entry: the process's Type
// capability set (Effective, Permitted, Inheritable) has any of Mask (In)
// or none of it (NotIn).
type CapabilityMatch struct {
	Type  string
	NotIn bool
	Mask  uint64
	// IsNamespaceCapability: only in a user namespace other than the host's.
	IsNamespaceCapability bool
}

// ProcessFilters are the filters of a selector about the process that
// runs the hook; each set filter must pass (ANDed).
type ProcessFilters struct {
	Binaries       []BinaryMatch
	ParentBinaries []BinaryMatch
	PIDs           []PIDMatch
	Namespaces     []NamespaceMatch
	Capabilities   []CapabilityMatch
}

// Tracepoint is one spec.tracepoints entry compiled to the raw syscall
// hooks (tp_btf sys_enter / sys_exit): raw_syscalls/sys_enter|sys_exit for
// every syscall, syscalls/sys_enter_X|sys_exit_X for syscall X.
type Tracepoint struct {
	Subsystem string // as written: raw_syscalls, syscalls
	Event     string // sys_enter, sys_exit, sys_enter_openat, ...
	Exit      bool   // the sys_exit hook
	// Syscalls are the syscall numbers the event covers (nil: all).
	Syscalls []uint32
	// Capture are the values the event reports (spec args, in order;
	// matchArgs index i refers to Capture[i], as in Tetragon).
	Capture   []SyscallValue
	Selectors []TracepointSelector
	// Message and Tags are Tetragon's, reported with the events.
	Message string
	Tags    []string
}

// TracepointSelector is one selector of a tracepoint: its filters ANDed,
// the first matching selector of the tracepoint decides. Syscalls, when
// set, narrows the tracepoint's syscalls (a matchArgs on the syscall
// number compiles here, not to Args).
type TracepointSelector struct {
	ProcessFilters
	Syscalls  []uint32
	Args      []ArgMatch
	Action    Action
	Signal    int
	RateLimit time.Duration
}

// ConnectSelector is one selector of spec.connects: the process filters,
// then the destination (after and before service translation: either
// matching is a match). matchArgs index 0 is the destination sockaddr,
// with Tetragon's socket operators DAddr/NotDAddr (CIDRs), DPort/NotDPort,
// Protocol (TCP, UDP).
type ConnectSelector struct {
	ProcessFilters
	Dests     []netip.Prefix
	NotDests  bool
	Ports     []uint16
	NotPorts  bool
	Protocols []uint8 // IPPROTO_TCP, IPPROTO_UDP; nil: both
	// Action: Override (EPERM), Post, NoPost, Sigkill or Signal.
	Action    Action
	Signal    int
	RateLimit time.Duration
}
