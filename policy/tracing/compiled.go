// Package tracing holds the SluiceTracingPolicy and
// SluiceTracingPolicyNamespaced CRD types (Tetragon's TracingPolicy schema
// where its hooks exist on this kernel) and compiles them into the rules the
// process sensor enforces.
//
// +groupName=sluice.io
// +versionName=v1alpha1
package tracing

import (
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
	Execs       []ExecSelector
}
