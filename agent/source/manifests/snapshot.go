package manifests

import (
	"bytes"
	"cmp"
	"slices"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Snapshot is the merged content of the manifests directory. Each call to
// Watcher.Snapshot and each callback gets its own deep copy. Every list is
// sorted by namespace and name (Others by apiVersion and kind first).
type Snapshot struct {
	Services       []*corev1.Service
	EndpointSlices []*discoveryv1.EndpointSlice
	Pods           []*corev1.Pod
	Namespaces     []*corev1.Namespace
	// Nodes are v1 Node objects (cluster-scoped: Namespace is empty).
	Nodes  []*corev1.Node
	Others []Raw
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

// placed is an object and the file that defined it.
type placed struct {
	object
	file string
}

// merge builds the snapshot from per-file objects. Files are taken in
// lexical order; an object defined again (later in a file, or in a later
// file) replaces the earlier definition, with a warning.
func merge(files map[string]*fileState, log logrus.FieldLogger) Snapshot {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	byKey := make(map[objectKey]placed)
	for _, n := range names {
		for _, o := range files[n].objects {
			if prev, ok := byKey[o.key]; ok {
				log.WithFields(logrus.Fields{
					"object": o.key.String(), "file": n, "document": o.doc,
					"overridden_file": prev.file, "overridden_document": prev.doc,
				}).Warn("Object defined more than once; the later definition wins")
			}
			byKey[o.key] = placed{o, n}
		}
	}
	var s Snapshot
	for _, p := range byKey {
		switch {
		case p.svc != nil:
			s.Services = append(s.Services, p.svc.DeepCopy())
		case p.slice != nil:
			s.EndpointSlices = append(s.EndpointSlices, p.slice.DeepCopy())
		case p.pod != nil:
			s.Pods = append(s.Pods, p.pod.DeepCopy())
		case p.ns != nil:
			s.Namespaces = append(s.Namespaces, p.ns.DeepCopy())
		case p.node != nil:
			s.Nodes = append(s.Nodes, p.node.DeepCopy())
		case p.raw != nil:
			r := *p.raw
			r.JSON = bytes.Clone(r.JSON)
			s.Others = append(s.Others, r)
		}
	}
	sortByName(s.Services, func(o *corev1.Service) (string, string) { return o.Namespace, o.Name })
	sortByName(s.EndpointSlices, func(o *discoveryv1.EndpointSlice) (string, string) { return o.Namespace, o.Name })
	sortByName(s.Pods, func(o *corev1.Pod) (string, string) { return o.Namespace, o.Name })
	sortByName(s.Namespaces, func(o *corev1.Namespace) (string, string) { return o.Namespace, o.Name })
	sortByName(s.Nodes, func(o *corev1.Node) (string, string) { return "", o.Name })
	slices.SortFunc(s.Others, func(a, b Raw) int {
		return cmp.Or(cmp.Compare(a.APIVersion, b.APIVersion), cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return s
}

func sortByName[T any](s []T, key func(T) (string, string)) {
	slices.SortFunc(s, func(a, b T) int {
		ans, an := key(a)
		bns, bn := key(b)
		return cmp.Or(cmp.Compare(ans, bns), cmp.Compare(an, bn))
	})
}
