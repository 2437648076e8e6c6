package policy

import (
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// API group and kinds.
const (
	Group                     = "sluice.io"
	Version                   = "v1alpha1"
	APIVersion                = Group + "/" + Version
	KindNetworkPolicy         = "SluiceNetworkPolicy"
	KindClusterwidePolicy     = "SluiceClusterwideNetworkPolicy"
	KindKubernetesPolicy      = "NetworkPolicy"
	KindKubernetesPolicyGroup = "networking.k8s.io"
)

// SluiceNetworkPolicy is a namespaced CiliumNetworkPolicy-compatible policy:
// a CiliumNetworkPolicy manifest applies after changing only apiVersion and
// kind.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=snp
// +kubebuilder:subresource:status
type SluiceNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`

	// Spec is the policy rule.
	// +optional
	Spec *Rule `json:"spec,omitempty"`
	// Specs is a list of policy rules.
	// +optional
	Specs []Rule `json:"specs,omitempty"`
	// Status is written by the agent.
	// +optional
	Status PolicyStatus `json:"status,omitempty"`
}

// SluiceNetworkPolicyList is a list of SluiceNetworkPolicy.
//
// +kubebuilder:object:root=true
type SluiceNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`
	Items           []SluiceNetworkPolicy `json:"items"`
}

// SluiceClusterwideNetworkPolicy is the cluster-scoped variant; its selectors
// are not restricted to a namespace.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=scnp
// +kubebuilder:subresource:status
type SluiceClusterwideNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`

	// +optional
	Spec *Rule `json:"spec,omitempty"`
	// +optional
	Specs []Rule `json:"specs,omitempty"`
	// +optional
	Status PolicyStatus `json:"status,omitempty"`
}

// SluiceClusterwideNetworkPolicyList is a list of SluiceClusterwideNetworkPolicy.
//
// +kubebuilder:object:root=true
type SluiceClusterwideNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`
	Items           []SluiceClusterwideNetworkPolicy `json:"items"`
}

// PolicyStatus reports whether the agent accepted the policy.
type PolicyStatus struct {
	// Conditions are written by each node's agent under its own type
	// ("<node>/Accepted"), so agents never overwrite each other.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Rule is one policy rule (CiliumNetworkPolicy's api.Rule, L3/L4 subset).
type Rule struct {
	// EndpointSelector selects the endpoints the rule applies to.
	// +optional
	EndpointSelector *metav1.LabelSelector `json:"endpointSelector,omitempty"`
	// NodeSelector (host policies) is not supported and rejected.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`
	// +optional
	Ingress []IngressRule `json:"ingress,omitempty"`
	// +optional
	IngressDeny []IngressRule `json:"ingressDeny,omitempty"`
	// +optional
	Egress []EgressRule `json:"egress,omitempty"`
	// +optional
	EgressDeny []EgressRule `json:"egressDeny,omitempty"`
	// Labels identify the rule (free-form, carried into rule references).
	// +optional
	Labels []RuleLabel `json:"labels,omitempty"`
	// +optional
	Description string `json:"description,omitempty"`
	// EnableDefaultDeny overrides, per direction, whether selecting an
	// endpoint puts it in default-deny (default: true for each direction
	// the rule has allow or deny rules for).
	// +optional
	EnableDefaultDeny DefaultDenyConfig `json:"enableDefaultDeny,omitempty"`
}

// RuleLabel is a rule label (Cilium's labels.Label).
type RuleLabel struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Source string `json:"source,omitempty"`
}

// DefaultDenyConfig is Cilium's enableDefaultDeny.
type DefaultDenyConfig struct {
	// +optional
	Ingress *bool `json:"ingress,omitempty"`
	// +optional
	Egress *bool `json:"egress,omitempty"`
}

// IngressRule allows (or, in ingressDeny, denies) traffic from the peers it
// names on the ports it names. With no peer field the rule applies to all
// peers if it has toPorts or icmps, and selects nothing otherwise.
type IngressRule struct {
	// +optional
	FromEndpoints []metav1.LabelSelector `json:"fromEndpoints,omitempty"`
	// +optional
	FromCIDR []string `json:"fromCIDR,omitempty"`
	// +optional
	FromCIDRSet []CIDRRule `json:"fromCIDRSet,omitempty"`
	// +optional
	FromEntities []string `json:"fromEntities,omitempty"`
	// +optional
	ToPorts []PortRule `json:"toPorts,omitempty"`
	// +optional
	ICMPs []ICMPRule `json:"icmps,omitempty"`

	// Unsupported fields: rejected by Validate, never ignored.

	// +optional
	FromRequires []metav1.LabelSelector `json:"fromRequires,omitempty"`
	// +optional
	FromNodes []metav1.LabelSelector `json:"fromNodes,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	FromGroups []json.RawMessage `json:"fromGroups,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	Authentication json.RawMessage `json:"authentication,omitempty"`
}

// EgressRule allows (or, in egressDeny, denies) traffic to the peers it names.
type EgressRule struct {
	// +optional
	ToEndpoints []metav1.LabelSelector `json:"toEndpoints,omitempty"`
	// +optional
	ToCIDR []string `json:"toCIDR,omitempty"`
	// +optional
	ToCIDRSet []CIDRRule `json:"toCIDRSet,omitempty"`
	// +optional
	ToEntities []string `json:"toEntities,omitempty"`
	// +optional
	ToPorts []PortRule `json:"toPorts,omitempty"`
	// +optional
	ICMPs []ICMPRule `json:"icmps,omitempty"`

	// Unsupported fields: rejected by Validate, never ignored.

	// +optional
	ToRequires []metav1.LabelSelector `json:"toRequires,omitempty"`
	// +optional
	ToNodes []metav1.LabelSelector `json:"toNodes,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	ToServices []json.RawMessage `json:"toServices,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	ToFQDNs []json.RawMessage `json:"toFQDNs,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	ToGroups []json.RawMessage `json:"toGroups,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	Authentication json.RawMessage `json:"authentication,omitempty"`
}

// CIDRRule is a CIDR with exceptions (fromCIDRSet/toCIDRSet).
type CIDRRule struct {
	// +optional
	CIDR string `json:"cidr,omitempty"`
	// +optional
	Except []string `json:"except,omitempty"`
	// CIDRGroupRef is not supported and rejected.
	// +optional
	CIDRGroupRef string `json:"cidrGroupRef,omitempty"`
	// CIDRGroupSelector is not supported and rejected.
	// +optional
	CIDRGroupSelector *metav1.LabelSelector `json:"cidrGroupSelector,omitempty"`
}

// PortRule lists ports; L7 rules and TLS settings are rejected.
type PortRule struct {
	// +optional
	Ports []PortProtocol `json:"ports,omitempty"`

	// Unsupported fields: rejected by Validate, never ignored.

	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	Rules json.RawMessage `json:"rules,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	TerminatingTLS json.RawMessage `json:"terminatingTLS,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	OriginatingTLS json.RawMessage `json:"originatingTLS,omitempty"`
	// +optional
	ServerNames []string `json:"serverNames,omitempty"`
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	Listener json.RawMessage `json:"listener,omitempty"`
}

// PortProtocol is a port (number, name, or 0/empty for all) with an
// optional inclusive endPort and a protocol (TCP, UDP or ANY; default ANY).
type PortProtocol struct {
	// +kubebuilder:validation:XIntOrString
	Port intstr.IntOrString `json:"port"`
	// +optional
	EndPort int32 `json:"endPort,omitempty"`
	// +optional
	// +kubebuilder:validation:Enum=TCP;UDP;ANY
	Protocol string `json:"protocol,omitempty"`
}

// ICMPRule lists ICMP types.
type ICMPRule struct {
	// +optional
	Fields []ICMPField `json:"fields,omitempty"`
}

// ICMPField is an ICMP (IPv4) or ICMPv6 type, by number or name.
type ICMPField struct {
	// +optional
	// +kubebuilder:validation:Enum=IPv4;IPv6
	Family string `json:"family,omitempty"`
	// +kubebuilder:validation:XIntOrString
	Type *intstr.IntOrString `json:"type"`
}
