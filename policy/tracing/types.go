package tracing

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicenet/sluice/policy"
)

// SluiceTracingPolicy is a cluster-scoped tracing policy: Tetragon's
// TracingPolicy schema (a Tetragon policy whose hooks exist here applies
// after changing apiVersion and kind) plus the Sluice extensions spec.execs
// and spec.connects.
// Without a podSelector or containerSelector it applies to every process,
// the host's included.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=stp
// +kubebuilder:subresource:status
type SluiceTracingPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`

	// Spec is the policy.
	Spec TracingPolicySpec `json:"spec"`
	// Status is written by the agents, one condition per node.
	// +optional
	Status policy.PolicyStatus `json:"status,omitempty"`
}

// SluiceTracingPolicyList is a list of SluiceTracingPolicy.
//
// +kubebuilder:object:root=true
type SluiceTracingPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`
	Items           []SluiceTracingPolicy `json:"items"`
}

// SluiceTracingPolicyNamespaced is the namespaced variant (Tetragon's
// TracingPolicyNamespaced): it applies only to the pods of its namespace.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=sluicetracingpoliciesnamespaced,singular=sluicetracingpolicynamespaced,shortName=stpn
// +kubebuilder:subresource:status
type SluiceTracingPolicyNamespaced struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`

	// Spec is the policy.
	Spec TracingPolicySpec `json:"spec"`
	// Status is written by the agents, one condition per node.
	// +optional
	Status policy.PolicyStatus `json:"status,omitempty"`
}

// SluiceTracingPolicyNamespacedList is a list of SluiceTracingPolicyNamespaced.
//
// +kubebuilder:object:root=true
type SluiceTracingPolicyNamespacedList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`
	Items           []SluiceTracingPolicyNamespaced `json:"items"`
}

// TracingPolicySpec is Tetragon's TracingPolicySpec plus Execs and
// Connects. The hooks and filters this agent does not implement are kept
// (loosely typed) so that the API server accepts a Tetragon manifest;
// Compile rejects them by name, with the reason, rather than ignoring them.
type TracingPolicySpec struct {
	// Options are name/value pairs; "policy-mode" is enforce (the default)
	// or monitor (enforcement actions are reported, not carried out).
	// +optional
	Options []OptionSpec `json:"options,omitempty"`
	// PodSelector selects the pods the policy applies to.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
	// ContainerSelector selects, as Tetragon's, the containers of the
	// selected pods the policy applies to: a label selector over the
	// container fields name (the container's name) and repo (its image
	// without tag and digest), ANDed with podSelector. Processes are
	// matched by their cgroup (the container's).
	// +optional
	ContainerSelector *metav1.LabelSelector `json:"containerSelector,omitempty"`
	// Execs are the Sluice extension: selectors evaluated when a process
	// execs a binary (sched_process_exec), before the new image runs.
	// +optional
	Execs []ExecSpec `json:"execs,omitempty"`

	// Tracepoints are Tetragon's tracepoints; this agent runs the syscall
	// ones (raw_syscalls/sys_enter|sys_exit, syscalls/sys_enter_X|sys_exit_X)
	// on its raw syscall hooks.
	// +optional
	Tracepoints []TracepointSpec `json:"tracepoints,omitempty"`
	// Connects are the Sluice extension for connect denial: selectors
	// evaluated by the cgroup connect4/sendmsg4 hooks (matchArgs index 0 is
	// the destination: DAddr, NotDAddr, DPort, NotDPort, Protocol), where
	// Override (argError -1) refuses the connect with EPERM.
	// +optional
	Connects []ConnectSpec `json:"connects,omitempty"`
	// Lists are named value lists (Tetragon); selectors refer to a list of
	// type syscalls as "list:NAME".
	// +optional
	Lists []ListSpec `json:"lists,omitempty"`

	// Tetragon fields this agent rejects (see Compile for each reason).

	// HostSelector selects hosts (Tetragon); not supported yet.
	// +optional
	HostSelector *metav1.LabelSelector `json:"hostSelector,omitempty"`
	// +optional
	KProbes []apiextensionsv1.JSON `json:"kprobes,omitempty"`
	// +optional
	Fentries []apiextensionsv1.JSON `json:"fentries,omitempty"`
	// +optional
	LsmHooks []apiextensionsv1.JSON `json:"lsmhooks,omitempty"`
	// +optional
	UProbes []apiextensionsv1.JSON `json:"uprobes,omitempty"`
	// +optional
	Usdts []apiextensionsv1.JSON `json:"usdts,omitempty"`
	// +optional
	Enforcers []apiextensionsv1.JSON `json:"enforcers,omitempty"`
	// +optional
	Loader bool `json:"loader,omitempty"`
	// +optional
	SelectorsMacros *apiextensionsv1.JSON `json:"selectorsMacros,omitempty"`
}

// TracepointSpec is Tetragon's TracepointSpec. Args name the captured
// values by the tracepoint's format index (0..3 are the common fields;
// raw_syscalls/sys_enter: 4 the syscall id, 5 its first argument;
// sys_exit: 4 the id, 5 the return value; syscalls/sys_enter_X: 4 the
// syscall number, 5+i argument i; syscalls/sys_exit_X: 4 the number, 5
// the return value). A matchArgs index is the format index of one of Args
// or, as in Tetragon, a position in Args.
type TracepointSpec struct {
	// Subsystem is raw_syscalls or syscalls.
	Subsystem string `json:"subsystem"`
	// Event is sys_enter or sys_exit (raw_syscalls), sys_enter_X or
	// sys_exit_X (syscalls).
	Event string `json:"event"`
	// Raw: the raw tracepoint's arguments (raw_syscalls only: index 1 is
	// the syscall id at sys_enter, the return value at sys_exit).
	// +optional
	Raw bool `json:"raw,omitempty"`
	// Message is included in the events (at most 256 characters).
	// +optional
	Message string `json:"message,omitempty"`
	// Args are the values the events report.
	// +optional
	Args []ArgSpec `json:"args,omitempty"`
	// Selectors are tried in order; the first that matches decides. None:
	// every event is posted.
	// +optional
	Selectors []Selector `json:"selectors,omitempty"`
	// Tags are included in the events (at most 16).
	// +optional
	Tags []string `json:"tags,omitempty"`
}

// ArgSpec is Tetragon's KProbeArg: one captured value of a tracepoint.
type ArgSpec struct {
	// Index is the tracepoint format index of the value.
	Index uint32 `json:"index"`
	// Type: auto (the default: from the syscall's declaration), an integer
	// type (int, int8..int64, sint8..sint64, uint8..uint64, long, ulong,
	// size_t, syscall64, fd) or string (the NUL-terminated user memory a
	// path argument points to).
	// +optional
	Type string `json:"type,omitempty"`
	// Label names the value in the events.
	// +optional
	Label string `json:"label,omitempty"`

	// Tetragon fields this agent rejects.

	// +optional
	SizeArgIndex uint32 `json:"sizeArgIndex,omitempty"`
	// +optional
	ReturnCopy bool `json:"returnCopy,omitempty"`
	// +optional
	MaxData bool `json:"maxData,omitempty"`
	// +optional
	Resolve string `json:"resolve,omitempty"`
	// +optional
	Source string `json:"source,omitempty"`
	// +optional
	BTFType string `json:"btfType,omitempty"`
	// +optional
	BTFTypeModule string `json:"btfTypeModule,omitempty"`
}

// ListSpec is Tetragon's ListSpec: a named list of values.
type ListSpec struct {
	// Name is referred to as "list:NAME".
	Name string `json:"name"`
	// Type is syscalls (Values are syscall names: sys_dup or dup) or
	// generated_syscalls (every syscall).
	// +optional
	Type string `json:"type,omitempty"`
	// +optional
	Values []string `json:"values,omitempty"`
	// Pattern is for Tetragon's generated_ftrace lists (rejected here).
	// +optional
	Pattern *string `json:"pattern,omitempty"`
	// +optional
	Validated bool `json:"validated,omitempty"`
}

// ConnectSpec is one spec.connects entry (Sluice extension): its selectors
// are tried in order and the first that matches decides.
type ConnectSpec struct {
	// +optional
	Selectors []Selector `json:"selectors,omitempty"`
}

// OptionSpec is one spec.options entry.
type OptionSpec struct {
	Name string `json:"name"`
	// +optional
	Value string `json:"value,omitempty"`
}

// ExecSpec is one spec.execs entry: its selectors are tried in order and the
// first that matches decides (Tetragon's semantics).
type ExecSpec struct {
	// +optional
	Selectors []Selector `json:"selectors,omitempty"`
}

// Selector is Tetragon's selector (KProbeSelector): its filters are ANDed.
// In spec.execs only matchBinaries and matchActions are supported; the
// unsupported filters are kept so that they are rejected by name.
type Selector struct {
	// Label names the selector (Tetragon: in status and metrics).
	// +optional
	Label string `json:"label,omitempty"`
	// +optional
	MatchBinaries []BinarySelector `json:"matchBinaries,omitempty"`
	// +optional
	MatchParentBinaries []BinarySelector `json:"matchParentBinaries,omitempty"`
	// +optional
	MatchArgs []ArgSelector `json:"matchArgs,omitempty"`
	// +optional
	MatchPIDs []PIDSelector `json:"matchPIDs,omitempty"`
	// +optional
	MatchNamespaces []NamespaceSelector `json:"matchNamespaces,omitempty"`
	// +optional
	MatchCapabilities []CapabilitiesSelector `json:"matchCapabilities,omitempty"`
	// +optional
	MatchActions []ActionSelector `json:"matchActions,omitempty"`

	// Tetragon filters this agent rejects.

	// +optional
	MatchData []apiextensionsv1.JSON `json:"matchData,omitempty"`
	// +optional
	MatchReturnArgs []apiextensionsv1.JSON `json:"matchReturnArgs,omitempty"`
	// +optional
	MatchReturnActions []apiextensionsv1.JSON `json:"matchReturnActions,omitempty"`
	// +optional
	MatchNamespaceChanges []apiextensionsv1.JSON `json:"matchNamespaceChanges,omitempty"`
	// +optional
	MatchCapabilityChanges []apiextensionsv1.JSON `json:"matchCapabilityChanges,omitempty"`
	// +optional
	MatchWorkloads *apiextensionsv1.JSON `json:"matchWorkloads,omitempty"`
	// +optional
	Macros []string `json:"macros,omitempty"`
}

// BinarySelector is a matchBinaries or matchParentBinaries entry: the path
// of the exec'd binary (of the parent) is In Values, NotIn them, or starts
// with one of them (Prefix).
type BinarySelector struct {
	// Operator is In, NotIn or Prefix.
	Operator string `json:"operator"`
	// Values are absolute paths (or path prefixes).
	Values []string `json:"values"`
	// FollowChildren: the descendants of a matching process match too.
	// +optional
	FollowChildren bool `json:"followChildren,omitempty"`
}

// ArgSelector is a matchArgs entry (Tetragon's ArgSelector).
type ArgSelector struct {
	// Index is the format index of a captured value (tracepoints), or a
	// position in the tracepoint's args; 0 (the destination) in
	// spec.connects.
	// +optional
	Index uint32 `json:"index"`
	// Args: Tetragon's explicit position in the tracepoint's args (one).
	// +optional
	Args []uint32 `json:"args,omitempty"`
	// Operator: Equal, NotEqual, InMap, NotInMap, Prefix, NotPrefix,
	// Postfix, NotPostfix, Mask, GT, LT; in spec.connects DAddr, NotDAddr,
	// DPort, NotDPort, Protocol.
	Operator string `json:"operator"`
	// +optional
	Values []string `json:"values,omitempty"`
}

// PIDSelector is a matchPIDs entry (Tetragon's PIDSelector).
type PIDSelector struct {
	// Operator is In or NotIn.
	Operator string   `json:"operator"`
	Values   []uint32 `json:"values"`
	// IsNamespacePID: the pids are as seen in the process's pid namespace.
	// +optional
	IsNamespacePID bool `json:"isNamespacePID,omitempty"`
	// FollowForks: the descendants of a matching process match too.
	// +optional
	FollowForks bool `json:"followForks,omitempty"`
}

// NamespaceSelector is a matchNamespaces entry (Tetragon's).
type NamespaceSelector struct {
	// Namespace is Uts, Ipc, Mnt, Pid, PidForChildren, Net, Time,
	// TimeForChildren, Cgroup or User.
	Namespace string `json:"namespace"`
	// Operator is In or NotIn.
	Operator string `json:"operator"`
	// Values are namespace inode numbers, or host_ns (the host's).
	Values []string `json:"values"`
}

// CapabilitiesSelector is a matchCapabilities entry (Tetragon's).
type CapabilitiesSelector struct {
	// Type is Effective (the default), Permitted or Inheritable.
	// +optional
	Type string `json:"type,omitempty"`
	// Operator is In or NotIn.
	Operator string `json:"operator"`
	// IsNamespaceCapability: only in a user namespace other than the
	// host's.
	// +optional
	IsNamespaceCapability bool `json:"isNamespaceCapability,omitempty"`
	// Values are capability names (CAP_SYS_ADMIN, ...).
	Values []string `json:"values"`
}

// ActionSelector is a matchActions entry (Tetragon's ActionSelector).
type ActionSelector struct {
	// Action is Post, NoPost, Sigkill or Signal.
	Action string `json:"action"`
	// ArgSig is the signal number of Signal (1..64).
	// +optional
	ArgSig uint32 `json:"argSig,omitempty"`
	// RateLimit, for Post: at most one event per process in this period
	// (seconds by default, or with an s, m or h suffix).
	// +optional
	RateLimit string `json:"rateLimit,omitempty"`
	// RateLimitScope is thread or process (the same at exec); global is
	// not supported yet.
	// +optional
	RateLimitScope string `json:"rateLimitScope,omitempty"`

	// ArgError is Override's error: -1 (EPERM) in spec.connects, the one
	// error the cgroup connect hooks can return.
	// +optional
	ArgError int32 `json:"argError,omitempty"`

	// Arguments of Tetragon actions this agent does not implement.

	// +optional
	ArgFd uint32 `json:"argFd,omitempty"`
	// +optional
	ArgName uint32 `json:"argName,omitempty"`
	// +optional
	ArgURL string `json:"argUrl,omitempty"`
	// +optional
	ArgFqdn string `json:"argFqdn,omitempty"`
	// +optional
	ArgSock uint32 `json:"argSock,omitempty"`
	// +optional
	KernelStackTrace bool `json:"kernelStackTrace,omitempty"`
	// +optional
	UserStackTrace bool `json:"userStackTrace,omitempty"`
	// +optional
	ImaHash bool `json:"imaHash,omitempty"`
}
