package tracing

import (
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicenet/sluice/policy"
)

// SluiceTracingPolicy is a cluster-scoped tracing policy: Tetragon's
// TracingPolicy schema (a Tetragon policy whose hooks exist here applies
// after changing apiVersion and kind) plus the Sluice extension spec.execs.
// Without a podSelector it applies to every process, the host's included.
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

// TracingPolicySpec is Tetragon's TracingPolicySpec plus Execs. The hooks
// this agent does not implement are kept loosely typed so that the API
// server accepts a Tetragon manifest; Compile rejects them by name, with the
// reason, rather than ignoring them.
type TracingPolicySpec struct {
	// Options are name/value pairs; "policy-mode" is enforce (the default)
	// or monitor (enforcement actions are reported, not carried out).
	// +optional
	Options []OptionSpec `json:"options,omitempty"`
	// PodSelector selects the pods the policy applies to.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
	// Execs are the Sluice extension: selectors evaluated when a process
	// execs a binary (sched_process_exec), before the new image runs.
	// +optional
	Execs []ExecSpec `json:"execs,omitempty"`

	// Tetragon fields this agent rejects (see Compile for each reason).

	// ContainerSelector selects containers (Tetragon); not supported yet.
	// +optional
	ContainerSelector *metav1.LabelSelector `json:"containerSelector,omitempty"`
	// HostSelector selects hosts (Tetragon); not supported yet.
	// +optional
	HostSelector *metav1.LabelSelector `json:"hostSelector,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	Tracepoints []json.RawMessage `json:"tracepoints,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	KProbes []json.RawMessage `json:"kprobes,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	Fentries []json.RawMessage `json:"fentries,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	LsmHooks []json.RawMessage `json:"lsmhooks,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	UProbes []json.RawMessage `json:"uprobes,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	Usdts []json.RawMessage `json:"usdts,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	Enforcers []json.RawMessage `json:"enforcers,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	Lists []json.RawMessage `json:"lists,omitempty"`
	// +optional
	Loader bool `json:"loader,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	SelectorsMacros json.RawMessage `json:"selectorsMacros,omitempty"`
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
// other filters are kept so that they are rejected by name.
type Selector struct {
	// +optional
	MatchBinaries []BinarySelector `json:"matchBinaries,omitempty"`
	// +optional
	MatchActions []ActionSelector `json:"matchActions,omitempty"`

	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	MatchPIDs []json.RawMessage `json:"matchPIDs,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	MatchArgs []json.RawMessage `json:"matchArgs,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	MatchData []json.RawMessage `json:"matchData,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	MatchReturnArgs []json.RawMessage `json:"matchReturnArgs,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	MatchReturnActions []json.RawMessage `json:"matchReturnActions,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	MatchParentBinaries []json.RawMessage `json:"matchParentBinaries,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	MatchNamespaces []json.RawMessage `json:"matchNamespaces,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	MatchNamespaceChanges []json.RawMessage `json:"matchNamespaceChanges,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	MatchCapabilities []json.RawMessage `json:"matchCapabilities,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	MatchCapabilityChanges []json.RawMessage `json:"matchCapabilityChanges,omitempty"`
}

// BinarySelector is a matchBinaries entry: the path of the exec'd binary is
// In Values, NotIn them, or starts with one of them (Prefix).
type BinarySelector struct {
	// Operator is In, NotIn or Prefix.
	Operator string `json:"operator"`
	// Values are absolute paths (or path prefixes).
	Values []string `json:"values"`
	// FollowChildren: the descendants of a matching process match too.
	// +optional
	FollowChildren bool `json:"followChildren,omitempty"`
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

	// Arguments of Tetragon actions this agent does not implement.

	// +optional
	ArgError int32 `json:"argError,omitempty"`
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
