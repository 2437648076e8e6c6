// Package source holds what the agent's state sources share with their
// consumers: the Snapshot of desired state (Services, EndpointSlices, Pods,
// Namespaces, Nodes, and every other object as Raw JSON) and the Source
// contract. The standalone manifests directory (agent/source/manifests) and
// the Kubernetes API (agent/source/k8s) both produce Snapshots; the daemon
// hands them to the managers (servicemgr, identitymgr, policymgr, nodemgr).
package source

import (
	"bytes"
	"context"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Source is where desired state comes from.
type Source interface {
	// Run delivers a Snapshot to onChange after every change until ctx
	// ends.
	Run(ctx context.Context, onChange func(Snapshot)) error
}

// Snapshot is the desired state a source holds. Each callback gets its own
// deep copy. Every list is sorted by namespace and name (Others by
// apiVersion and kind first).
type Snapshot struct {
	Services       []*corev1.Service
	EndpointSlices []*discoveryv1.EndpointSlice
	Pods           []*corev1.Pod
	Namespaces     []*corev1.Namespace
	// Nodes are v1 Node objects (cluster-scoped: Namespace is empty).
	Nodes  []*corev1.Node
	Others []Raw
}

// Raw is an object of a kind the sources do not decode, kept for later
// consumers (NetworkPolicy, SluiceNetworkPolicy, ...). JSON is the document
// converted to JSON. Namespace defaults to "default" like every object's;
// consumers of cluster-scoped kinds ignore it.
type Raw struct {
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
	JSON       []byte
	File       string // base name of the file that defined it (manifests source)
}

// DeepCopy returns a copy of s that shares nothing with it.
func (s Snapshot) DeepCopy() Snapshot {
	out := Snapshot{
		Services:       copyAll(s.Services, (*corev1.Service).DeepCopy),
		EndpointSlices: copyAll(s.EndpointSlices, (*discoveryv1.EndpointSlice).DeepCopy),
		Pods:           copyAll(s.Pods, (*corev1.Pod).DeepCopy),
		Namespaces:     copyAll(s.Namespaces, (*corev1.Namespace).DeepCopy),
		Nodes:          copyAll(s.Nodes, (*corev1.Node).DeepCopy),
	}
	for _, r := range s.Others {
		r.JSON = bytes.Clone(r.JSON)
		out.Others = append(out.Others, r)
	}
	return out
}

func copyAll[T any](in []*T, deepCopy func(*T) *T) []*T {
	if in == nil {
		return nil
	}
	out := make([]*T, len(in))
	for i, v := range in {
		out[i] = deepCopy(v)
	}
	return out
}
