package manifests

import (
	"cmp"
	"slices"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/sluicenet/sluice/agent/source"
)

// merged is the merged state kept between publishes, so that a change
// re-merges only the objects of the files that changed.
type merged struct {
	snap  source.Snapshot               // lists sorted as merge sorts them
	byKey map[objectKey]placed          // the winning definitions
	defs  map[objectKey]map[string]bool // the files defining each object
}

// newMerged indexes the state mergeIndexed built from files.
func newMerged(files map[string]*fileState, snap source.Snapshot, byKey map[objectKey]placed) *merged {
	m := &merged{snap: snap, byKey: byKey, defs: map[objectKey]map[string]bool{}}
	for name, st := range files {
		m.define(name, nil, st.objects)
	}
	return m
}

// define records that file now defines objs instead of old.
func (m *merged) define(file string, old, objs []object) {
	for _, o := range old {
		delete(m.defs[o.key], file)
		if len(m.defs[o.key]) == 0 {
			delete(m.defs, o.key)
		}
	}
	for _, o := range objs {
		if m.defs[o.key] == nil {
			m.defs[o.key] = map[string]bool{}
		}
		m.defs[o.key][file] = true
	}
}

// winner returns the definition of k that wins (the last in file and
// document order), warning about the ones it overrides when log is set, as
// merge does.
func (m *merged) winner(files map[string]*fileState, k objectKey, log logrus.FieldLogger) placed {
	names := make([]string, 0, len(m.defs[k]))
	for n := range m.defs[k] {
		names = append(names, n)
	}
	slices.Sort(names)
	var win placed
	for _, n := range names {
		for _, i := range files[n].definitions(k) {
			o := files[n].objects[i]
			if win.file != "" && log != nil {
				log.WithFields(logrus.Fields{
					"object": o.key.String(), "file": n, "document": o.doc,
					"overridden_file": win.file, "overridden_document": win.doc,
				}).Warn("Object defined more than once; the later definition wins")
			}
			win = placed{o, n}
		}
	}
	return win
}

// remerge brings the object k up to date in the snapshot.
func (m *merged) remerge(files map[string]*fileState, k objectKey, log logrus.FieldLogger) {
	if old, ok := m.byKey[k]; ok {
		m.place(old, false)
		delete(m.byKey, k)
	}
	if len(m.defs[k]) == 0 {
		return
	}
	win := m.winner(files, k, log)
	m.byKey[k] = win
	m.place(win, true)
}

// place inserts (add) or removes p in its sorted snapshot list.
func (m *merged) place(p placed, add bool) {
	s := &m.snap
	switch {
	case p.svc != nil:
		s.Services = update(s.Services, p.svc, add, func(o *corev1.Service) (string, string) { return o.Namespace, o.Name })
	case p.slice != nil:
		s.EndpointSlices = update(s.EndpointSlices, p.slice, add, func(o *discoveryv1.EndpointSlice) (string, string) { return o.Namespace, o.Name })
	case p.pod != nil:
		s.Pods = update(s.Pods, p.pod, add, func(o *corev1.Pod) (string, string) { return o.Namespace, o.Name })
	case p.ns != nil:
		s.Namespaces = update(s.Namespaces, p.ns, add, func(o *corev1.Namespace) (string, string) { return o.Namespace, o.Name })
	case p.node != nil:
		s.Nodes = update(s.Nodes, p.node, add, func(o *corev1.Node) (string, string) { return "", o.Name })
	case p.raw != nil:
		i, found := slices.BinarySearchFunc(s.Others, *p.raw, compareRaw)
		switch {
		case add && found:
			s.Others[i] = *p.raw
		case add:
			s.Others = slices.Insert(s.Others, i, *p.raw)
		case found:
			s.Others = slices.Delete(s.Others, i, i+1)
		}
		if len(s.Others) == 0 {
			s.Others = nil
		}
	}
}

// update inserts (or replaces) v in the list sorted by key, or removes the
// element with v's key.
func update[T any](list []T, v T, add bool, key func(T) (string, string)) []T {
	ns, name := key(v)
	i, found := slices.BinarySearchFunc(list, v, func(e, _ T) int {
		ens, en := key(e)
		return cmp.Or(cmp.Compare(ens, ns), cmp.Compare(en, name))
	})
	switch {
	case add && found:
		list[i] = v
	case add:
		list = slices.Insert(list, i, v)
	case found:
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 0 {
		return nil // as merge leaves a kind without objects
	}
	return list
}

func compareRaw(a, b source.Raw) int {
	return cmp.Or(cmp.Compare(a.APIVersion, b.APIVersion), cmp.Compare(a.Kind, b.Kind),
		cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}
