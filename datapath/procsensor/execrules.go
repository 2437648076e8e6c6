package procsensor

import "time"

// The exec-prevention rules the sensor enforces at sched_process_exec (a
// Sluice extension of tracing policies). The agent compiles policies into
// rules, each in a slot (0..MaxExecRules-1, lower slots are tried first),
// and tells the sensor which slots apply to which pods (by network namespace
// inode) and which apply everywhere.

// MaxExecRules is the number of rule slots.
const MaxExecRules = 64

// ExecAction is what a matching exec rule does.
type ExecAction uint8

// Exec actions.
const (
	ExecPost    ExecAction = 1 // report (process_tracepoint event)
	ExecNoPost  ExecAction = 2 // match silently
	ExecSigkill ExecAction = 3 // SIGKILL before the new image runs
	ExecSignal  ExecAction = 4 // send Signal
)

// ExecRule is one slot: a binary match (exact paths, or path prefixes, or
// NOT any of the exact paths), an action, and the policy it comes from.
type ExecRule struct {
	Slot     uint8
	PolicyID uint32 // agent's id of the policy, reported in events
	Exact    []string
	Prefixes []string
	NotIn    bool // match when the path is NOT in Exact
	// FollowChildren: an exec this rule matches adds Children to the
	// process's inherited slots, which its descendants (forks, and what
	// they exec) keep; an inherited slot applies to the process wherever it
	// runs, as if Global (its path filter must still pass).
	FollowChildren bool
	// Children are the slots FollowChildren passes on; 0 means this rule's
	// own slot. (Added by T2: a selector such as "nc run under sh" is a
	// followChildren rule on sh, NoPost, passing on the slot of a rule on
	// nc that is neither Global nor scoped.)
	Children uint64
	Action   ExecAction
	Signal   uint8
	// Enforce: carry out Sigkill/Signal; otherwise (monitor mode) report
	// what would have been done.
	Enforce bool
	// Global: applies to every process (host included); otherwise only to
	// processes in network namespaces given to SetExecScope, or with
	// Cgroup, only to processes in cgroups given to SetExecCgroupScope.
	Global bool
	// Cgroup: the rule is scoped by the process's cgroup v2 id (a
	// containerSelector's containers) instead of its network namespace.
	Cgroup bool
}

// Enforcement is the event of a matching exec rule.
type Enforcement struct {
	Time     time.Time
	Key      Key
	PID      uint32 // the thread that exec'd
	PolicyID uint32
	Slot     uint8
	Action   ExecAction
	Signal   uint8
	Enforced bool   // the signal was sent (false in monitor mode)
	Filename string // bprm->filename, the path the rules matched
	// FilenameTruncated: the path was cut at the rules' 255 bytes.
	FilenameTruncated bool
	NetNS             uint32
}
