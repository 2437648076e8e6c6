package tracing

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
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
	Tracepoints []apiextensionsv1.JSON `json:"tracepoints,omitempty"`
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
	Lists []apiextensionsv1.JSON `json:"lists,omitempty"`
	// +optional
	Loader bool `json:"loader,omitempty"`
	// +optional
	SelectorsMacros *apiextensionsv1.JSON `json:"selectorsMacros,omitempty"`
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
	MatchPIDs []apiextensionsv1.JSON `json:"matchPIDs,omitempty"`
	// +optional
	MatchArgs []apiextensionsv1.JSON `json:"matchArgs,omitempty"`
	// +optional
	MatchData []apiextensionsv1.JSON `json:"matchData,omitempty"`
	// +optional
	MatchReturnArgs []apiextensionsv1.JSON `json:"matchReturnArgs,omitempty"`
	// +optional
	MatchReturnActions []apiextensionsv1.JSON `json:"matchReturnActions,omitempty"`
	// +optional
	MatchParentBinaries []apiextensionsv1.JSON `json:"matchParentBinaries,omitempty"`
	// +optional
	MatchNamespaces []apiextensionsv1.JSON `json:"matchNamespaces,omitempty"`
	// +optional
	MatchNamespaceChanges []apiextensionsv1.JSON `json:"matchNamespaceChanges,omitempty"`
	// +optional
	MatchCapabilities []apiextensionsv1.JSON `json:"matchCapabilities,omitempty"`
	// +optional
	MatchCapabilityChanges []apiextensionsv1.JSON `json:"matchCapabilityChanges,omitempty"`
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
