package k8sstore

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GVR is the SluiceIdentity resource.
var GVR = schema.GroupVersionResource{Group: "sluice.io", Version: "v1alpha1", Resource: "sluiceidentities"}

// Kind and APIVersion of SluiceIdentity objects.
const (
	Kind       = "SluiceIdentity"
	APIVersion = "sluice.io/v1alpha1"
)

// SluiceIdentity is one cluster-wide security identity: its name is the
// number (decimal) and its spec the label set it stands for. Agents create
// them (the first Create of a number wins) and garbage-collect them once no
// Pod uses their labels; they are never updated.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=sid
// +kubebuilder:printcolumn:name="Labels",type=string,JSONPath=`.spec.labels`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type SluiceIdentity struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`

	// Spec holds the identity's labels.
	Spec SluiceIdentitySpec `json:"spec"`
}

// SluiceIdentitySpec is the label set of an identity.
type SluiceIdentitySpec struct {
	// Labels are the security-relevant labels in canonical
	// "source:key=value" form, sorted.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="labels are immutable"
	Labels []string `json:"labels"`
}

// SluiceIdentityList is a list of SluiceIdentity.
//
// +kubebuilder:object:root=true
type SluiceIdentityList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`
	Items           []SluiceIdentity `json:"items"`
}
