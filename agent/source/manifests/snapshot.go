package manifests

import (
	"cmp"
	"slices"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/sluicenet/sluice/agent/source"
)

// placed is an object and the file that defined it.
type placed struct {
	object
	file string
}

// merge builds the snapshot from per-file objects. Files are taken in
// lexical order; an object defined again (later in a file, or in a later
// file) replaces the earlier definition, with a warning.
func merge(files map[string]*fileState, log logrus.FieldLogger) source.Snapshot {
	s, _ := mergeIndexed(files, log)
	return s
}

// mergeIndexed is merge that also returns the winning definitions by key.
func mergeIndexed(files map[string]*fileState, log logrus.FieldLogger) (source.Snapshot, map[objectKey]placed) {
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
	// The snapshot shares the parsed objects, which nothing modifies (a
	// changed file gets new ones); callers get deep copies (publish).
	var s source.Snapshot
	for _, p := range byKey {
		switch {
		case p.svc != nil:
			s.Services = append(s.Services, p.svc)
		case p.slice != nil:
			s.EndpointSlices = append(s.EndpointSlices, p.slice)
		case p.pod != nil:
			s.Pods = append(s.Pods, p.pod)
		case p.ns != nil:
			s.Namespaces = append(s.Namespaces, p.ns)
		case p.node != nil:
			s.Nodes = append(s.Nodes, p.node)
		case p.raw != nil:
			s.Others = append(s.Others, *p.raw)
		}
	}
	sortByName(s.Services, func(o *corev1.Service) (string, string) { return o.Namespace, o.Name })
	sortByName(s.EndpointSlices, func(o *discoveryv1.EndpointSlice) (string, string) { return o.Namespace, o.Name })
	sortByName(s.Pods, func(o *corev1.Pod) (string, string) { return o.Namespace, o.Name })
	sortByName(s.Namespaces, func(o *corev1.Namespace) (string, string) { return o.Namespace, o.Name })
	sortByName(s.Nodes, func(o *corev1.Node) (string, string) { return "", o.Name })
	slices.SortFunc(s.Others, compareRaw)
	return s, byKey
}

func sortByName[T any](s []T, key func(T) (string, string)) {
	slices.SortFunc(s, func(a, b T) int {
		ans, an := key(a)
		bns, bn := key(b)
		return cmp.Or(cmp.Compare(ans, bns), cmp.Compare(an, bn))
	})
}
