package api

import "time"

// The process events of the tracing sensor, shaped like Tetragon's
// GetEventsResponse JSON (field names in snake_case, one event kind set per
// object) so `tetra getevents -o json` users find their way.

// Process event kinds (the names of the set field, and --type values).
const (
	EventProcessExec     = "process_exec"
	EventProcessExit     = "process_exit"
	EventProcessConnect  = "process_connect"
	EventProcessThrottle = "process_throttle"
)

// ProcessEvent is one event: exactly one of the kind fields is set.
type ProcessEvent struct {
	ProcessExec     *ProcessExec     `json:"process_exec,omitempty"`
	ProcessExit     *ProcessExit     `json:"process_exit,omitempty"`
	ProcessConnect  *ProcessConnect  `json:"process_connect,omitempty"`
	ProcessThrottle *ProcessThrottle `json:"process_throttle,omitempty"`
	// ProcessTracepoint is an event of a tracing policy.
	ProcessTracepoint *ProcessTracepoint `json:"process_tracepoint,omitempty"`
	NodeName          string             `json:"node_name"`
	Time              time.Time          `json:"time"`
}

// Kind returns the name of the set kind field ("" when none is set).
func (e *ProcessEvent) Kind() string {
	switch {
	case e.ProcessExec != nil:
		return EventProcessExec
	case e.ProcessExit != nil:
		return EventProcessExit
	case e.ProcessConnect != nil:
		return EventProcessConnect
	case e.ProcessThrottle != nil:
		return EventProcessThrottle
	case e.ProcessTracepoint != nil:
		return EventProcessTracepoint
	}
	return ""
}

// Subject returns the process the event is about (nil for throttle events).
func (e *ProcessEvent) Subject() *Process {
	switch {
	case e.ProcessExec != nil:
		return e.ProcessExec.Process
	case e.ProcessExit != nil:
		return e.ProcessExit.Process
	case e.ProcessConnect != nil:
		return e.ProcessConnect.Process
	case e.ProcessTracepoint != nil:
		return e.ProcessTracepoint.Process
	}
	return nil
}

// Process is a process as the agent's process cache knows it.
type Process struct {
	// ExecID is base64("node:start_time_ns:tgid"): the same string in every
	// event about the process (start_time_ns is the kernel's task start
	// time, CLOCK_MONOTONIC nanoseconds, of the thread-group leader).
	ExecID       string `json:"exec_id"`
	ParentExecID string `json:"parent_exec_id,omitempty"`
	PID          uint32 `json:"pid"` // tgid, in the host pid namespace
	UID          uint32 `json:"uid"`
	EUID         uint32 `json:"euid"`
	// AUID is the login uid (4294967295 when unset).
	AUID      uint32 `json:"auid"`
	Cwd       string `json:"cwd"`
	Binary    string `json:"binary"`
	Arguments string `json:"arguments,omitempty"` // argv[1:], space-separated
	// Flags as Tetragon's: space-separated words among "execve", "procFS",
	// "clone", "truncArgs", "truncCwd", "truncFilename", "rootcwd".
	Flags     string        `json:"flags"`
	StartTime time.Time     `json:"start_time"`
	Pod       *Pod          `json:"pod,omitempty"` // nil on the host
	Cap       *Capabilities `json:"cap,omitempty"`
	NS        *Namespaces   `json:"ns,omitempty"`
	CgroupID  uint64        `json:"cgroup_id,omitempty"`
	// Exited is set once the process's exit was seen (kept while a live
	// descendant needs it as an ancestor).
	Exited bool `json:"exited,omitempty"`
}

// Pod is where a process runs: the pod Sluice wired, its container and its
// workload.
type Pod struct {
	Namespace    string            `json:"namespace"`
	Name         string            `json:"name"`
	Labels       map[string]string `json:"pod_labels,omitempty"`
	Container    *Container        `json:"container,omitempty"`
	Workload     string            `json:"workload,omitempty"`
	WorkloadKind string            `json:"workload_kind,omitempty"`
}

// Container is the container of a pod a process runs in.
type Container struct {
	ID    string `json:"id"` // without the runtime prefix ("containerd://")
	Name  string `json:"name,omitempty"`
	Image *Image `json:"image,omitempty"`
}

// Image is a container image.
type Image struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name"`
}

// Capabilities are a process's capability sets by name ("CAP_NET_ADMIN").
type Capabilities struct {
	Permitted []string `json:"permitted,omitempty"`
	Effective []string `json:"effective,omitempty"`
}

// Namespaces are the inode numbers of a process's namespaces, and whether
// each is the host's.
type Namespaces struct {
	PID Namespace `json:"pid"`
	Mnt Namespace `json:"mnt"`
	Net Namespace `json:"net"`
}

// Namespace is one namespace of a process.
type Namespace struct {
	Inum   uint32 `json:"inum"`
	IsHost bool   `json:"is_host,omitempty"`
}

// ProcessExec is an exec (or a process found in /proc at start, flag procFS).
type ProcessExec struct {
	Process   *Process   `json:"process"`
	Parent    *Process   `json:"parent,omitempty"`
	Ancestors []*Process `json:"ancestors,omitempty"` // parent's parent first
}

// ProcessExit is the end of a whole process (every thread), once.
type ProcessExit struct {
	Process   *Process   `json:"process"`
	Parent    *Process   `json:"parent,omitempty"`
	Ancestors []*Process `json:"ancestors,omitempty"`
	Signal    string     `json:"signal,omitempty"` // "SIGKILL" when killed by a signal
	Status    uint32     `json:"status"`           // exit status when not killed
}

// ProcessConnect is a connection a process opened (TCP connect, UDP
// connect or first sendmsg to a destination).
type ProcessConnect struct {
	Process     *Process   `json:"process"`
	Parent      *Process   `json:"parent,omitempty"`
	Ancestors   []*Process `json:"ancestors,omitempty"`
	Protocol    string     `json:"protocol"` // TCP, UDP
	Source      string     `json:"source"`   // ip:port (port 0 when not yet bound)
	Destination string     `json:"destination"`
	// Service is the address the process asked for when it was a service
	// frontend that Sluice translated (Destination is then the backend).
	Service *ServiceRef `json:"service,omitempty"`
	// DestinationPod is the pod that holds Destination, when one does.
	DestinationPod string `json:"destination_pod,omitempty"` // namespace/name
	// Failed is set when a TCP connection never reached ESTABLISHED.
	Failed bool `json:"failed,omitempty"`
}

// ServiceRef names a service frontend.
type ServiceRef struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	Address   string `json:"address"` // ip:port the process connected to
}

// ProcessThrottle says a pod's events started or stopped being dropped by
// the per-pod rate limit.
type ProcessThrottle struct {
	Type      string `json:"type"` // THROTTLE_START, THROTTLE_STOP
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	// Dropped is how many events were dropped (on THROTTLE_STOP).
	Dropped uint64 `json:"dropped,omitempty"`
}

// Throttle types.
const (
	ThrottleStart = "THROTTLE_START"
	ThrottleStop  = "THROTTLE_STOP"
)

// ProcessRef names the local process behind a flow.
type ProcessRef struct {
	ExecID string `json:"exec_id"`
	PID    uint32 `json:"pid"`
	Binary string `json:"binary"`
}

// ProcessDetail is GET /v1/processes/{exec_id}: a process of the cache and
// its ancestors, parent first.
type ProcessDetail struct {
	Process   *Process   `json:"process"`
	Ancestors []*Process `json:"ancestors,omitempty"`
}

// EventProcessTracepoint is the kind of policy events.
const EventProcessTracepoint = "process_tracepoint"

// ProcessTracepoint is an event a tracing policy posted: the hook, what the
// process did, and the action taken (or, in monitor mode, that would have
// been taken).
type ProcessTracepoint struct {
	Process   *Process        `json:"process"`
	Parent    *Process        `json:"parent,omitempty"`
	Ancestors []*Process      `json:"ancestors,omitempty"`
	Subsys    string          `json:"subsys"` // "sched" for exec rules
	Event     string          `json:"event"`  // "sched_process_exec"
	Args      []TracepointArg `json:"args,omitempty"`
	// Syscall names the syscall of a syscall hook (openat, ...).
	Syscall string `json:"syscall,omitempty"`
	// Return is the syscall's return value (sys_exit hooks).
	Return     *int64 `json:"return,omitempty"`
	Action     string `json:"action"` // Tetragon's names: KPROBE_ACTION_SIGKILL, ..._POST, ..._SIGNAL
	Enforced   bool   `json:"enforced"`
	PolicyName string `json:"policy_name"` // namespace/name or name
}

// TracingPolicy is a tracing policy as the agent holds it.
type TracingPolicy struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Mode      string `json:"mode"` // enforce, monitor
	Accepted  bool   `json:"accepted"`
	Reason    string `json:"reason,omitempty"` // why rejected, naming the field
	// Counters since the policy was loaded.
	EventsPosted     uint64 `json:"eventsPosted"`
	ActionsEnforced  uint64 `json:"actionsEnforced"`
	ActionsMonitored uint64 `json:"actionsMonitored"`
	// ModeOverridden: Mode was set with set-mode (kept until the object's
	// own mode changes).
	ModeOverridden bool `json:"modeOverridden,omitempty"`
	// Hooks are the policy's hooks and the rule slots of their selectors
	// (no slots while it does not fit).
	Hooks []TracingPolicyHook `json:"hooks,omitempty"`
	// Classes are the ids of the binary classes its syscall and connect
	// rules test (matchBinaries, matchParentBinaries).
	Classes []int `json:"classes,omitempty"`
}

// TracingPolicyHook is one hook of a tracing policy: an exec, syscall or
// connect rule table's slots, one per selector (connect: per selector and
// protocol).
type TracingPolicyHook struct {
	Table string `json:"table"` // exec, syscall, connect
	Hook  string `json:"hook"`  // sched/sched_process_exec, syscalls/sys_enter_openat, sluice/connect
	// Syscalls of a syscall hook (none: every syscall).
	Syscalls []string `json:"syscalls,omitempty"`
	Slots    []int    `json:"slots,omitempty"`
}

// TracepointArg is one argument of a process_tracepoint event, in
// Tetragon's shape: exactly one of the value fields is set.
type TracepointArg struct {
	Label       string       `json:"label,omitempty"`
	IntArg      *int64       `json:"int_arg,omitempty"`
	SizeArg     *uint64      `json:"size_arg,omitempty"`
	StringArg   *string      `json:"string_arg,omitempty"`
	SockaddrArg *SockaddrArg `json:"sockaddr_arg,omitempty"`
	// Truncated: the string was cut (the kernel reads at most 255 bytes).
	Truncated bool `json:"truncated,omitempty"`
}

// SockaddrArg is a destination address argument (connect rules).
type SockaddrArg struct {
	Family   string `json:"family"` // AF_INET
	Addr     string `json:"addr"`
	Port     uint16 `json:"port"`
	Protocol string `json:"protocol,omitempty"` // TCP, UDP
	// Backend is the address after service translation, when the socket
	// LB translated it.
	Backend string `json:"backend,omitempty"`
}

// StringArg returns a TracepointArg holding s.
func StringArg(label, s string) TracepointArg {
	return TracepointArg{Label: label, StringArg: &s}
}
