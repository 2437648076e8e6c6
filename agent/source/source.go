// Package source holds what the agent's state sources share with their
// consumers: the Snapshot of desired state (Services, EndpointSlices, Pods,
// Namespaces, Nodes, and every other object as Raw JSON) and the Source
// contract. The standalone manifests directory (agent/source/manifests) and
// the Kubernetes API (agent/source/k8s) both produce Snapshots; the daemon
// hands them to the managers (servicemgr, identitymgr, policymgr, nodemgr).
package source

import (
	"bytes"
	"cmp"
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
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
	// Changes names the objects changed since the source's previous
	// snapshot; nil when not known (a first snapshot, or after an error).
	Changes *Changes
}

// Changes names the Services, EndpointSlices and Pods added, updated or
// deleted between two snapshots of a source (a name may be listed although
// the object did not change). Consumers that keep state per object (the
// service manager) update only these.
type Changes struct {
	Services       []types.NamespacedName
	EndpointSlices []types.NamespacedName
	Pods           []types.NamespacedName
}

// ChangeSet collects the names of changed objects for the next snapshot.
// The zero value is empty; it is not safe for concurrent use.
type ChangeSet struct {
	svcs, slices, pods map[types.NamespacedName]bool
}

// Kinds a ChangeSet records.
const (
	KindService       = "Service"
	KindEndpointSlice = "EndpointSlice"
	KindPod           = "Pod"
)

// Add records a change of the object kind namespace/name; other kinds than
// KindService, KindEndpointSlice and KindPod are ignored.
func (c *ChangeSet) Add(kind, namespace, name string) {
	var m *map[types.NamespacedName]bool
	switch kind {
	case KindService:
		m = &c.svcs
	case KindEndpointSlice:
		m = &c.slices
	case KindPod:
		m = &c.pods
	default:
		return
	}
	if *m == nil {
		*m = make(map[types.NamespacedName]bool)
	}
	(*m)[types.NamespacedName{Namespace: namespace, Name: name}] = true
}

// Len returns how many names the set holds.
func (c *ChangeSet) Len() int { return len(c.svcs) + len(c.slices) + len(c.pods) }

// Take returns the recorded changes, sorted, and empties the set.
func (c *ChangeSet) Take() *Changes {
	out := &Changes{Services: sortedNames(c.svcs), EndpointSlices: sortedNames(c.slices), Pods: sortedNames(c.pods)}
	*c = ChangeSet{}
	return out
}

func sortedNames(m map[types.NamespacedName]bool) []types.NamespacedName {
	out := make([]types.NamespacedName, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b types.NamespacedName) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
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
	if s.Changes != nil {
		out.Changes = &Changes{
			Services:       slices.Clone(s.Changes.Services),
			EndpointSlices: slices.Clone(s.Changes.EndpointSlices),
			Pods:           slices.Clone(s.Changes.Pods),
		}
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
