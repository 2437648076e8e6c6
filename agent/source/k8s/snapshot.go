package k8s

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluicenet/sluice/agent/source"
)

// Snapshot builds the desired state from the informer caches, in the same
// shape the manifests source produces: deep copies sorted by namespace and
// name, so equal cluster states give equal snapshots. Pods are all pods of
// the cluster that may still run (their IPs map to identities); which are
// this node's endpoints is decided by the consumer from spec.nodeName.
func (s *Source) Snapshot() (source.Snapshot, error) {
	nss, pods, svcs, eps, err := s.listAll()
	if err != nil {
		return source.Snapshot{}, err
	}
	others, err := s.listPolicies()
	if err != nil {
		return source.Snapshot{}, err
	}
	s.copyMu.Lock()
	defer s.copyMu.Unlock()
	nodes, err := s.snapshotNodes()
	if err != nil {
		return source.Snapshot{}, err
	}
	return source.Snapshot{
		Nodes:          nodes,
		Namespaces:     copySorted(nss, &s.copies.namespaces),
		Pods:           copySorted(livePods(pods), &s.copies.pods),
		Services:       copySorted(svcs, &s.copies.services),
		EndpointSlices: copySorted(eps, &s.copies.slices),
		Others:         others,
	}, nil
}

// livePods drops pods that will never run again: their IPs may already
// belong to a new pod.
func livePods(pods []*corev1.Pod) []*corev1.Pod {
	out := pods[:0:0]
	for _, p := range pods {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		out = append(out, p)
	}
	return out
}

type object[T any] interface {
	*T
	GetNamespace() string
	GetName() string
	GetUID() types.UID
	GetResourceVersion() string
	DeepCopy() *T
}

// snapshotCopies keeps, per kind, the copies the last snapshot handed out.
type snapshotCopies struct {
	nodes      copyMemo[*corev1.Node]
	namespaces copyMemo[*corev1.Namespace]
	pods       copyMemo[*corev1.Pod]
	services   copyMemo[*corev1.Service]
	slices     copyMemo[*discoveryv1.EndpointSlice]
}

// copyMemo is what one kind's last snapshot handed out: its sorted copies,
// and by UID the resourceVersion and position of each.
type copyMemo[P any] struct {
	sorted []P
	byUID  map[types.UID]memoCopy
}

type memoCopy struct {
	resourceVersion string
	pos             int
}

// copySorted copies cached objects (the cache's own must never be modified)
// into a slice sorted by namespace/name. An object whose UID and
// resourceVersion are those of a copy the previous snapshot handed out gets
// that copy again instead of a new deep copy: the API server gives every
// change a new resourceVersion, so an unchanged version is an unchanged object.
// When the objects are the previous snapshot's (same UIDs; namespace and name
// never change), they keep its order and nothing is sorted. At 10 000
// Services the deep copies and then the sort were most of a snapshot's cost.
// Consumers treat snapshot objects as read-only, as they do within one
// snapshot shared by their goroutines. memo becomes this call's.
func copySorted[T any, P object[T]](in []P, memo *copyMemo[P]) []P {
	out := make([]P, len(in))
	next := copyMemo[P]{byUID: make(map[types.UID]memoCopy, len(in))}
	samePlaces := len(in) == len(memo.sorted)
	for i, o := range in {
		uid, rv := o.GetUID(), o.GetResourceVersion()
		c, known := memo.byUID[uid]
		known = known && uid != ""
		if known && rv != "" && c.resourceVersion == rv {
			out[i] = memo.sorted[c.pos]
		} else {
			out[i] = o.DeepCopy()
		}
		samePlaces = samePlaces && known
		if uid != "" {
			next.byUID[uid] = memoCopy{resourceVersion: rv}
		}
	}
	if samePlaces { // the same objects: the previous order, positions unchanged
		sorted := make([]P, len(out))
		for _, o := range out {
			sorted[memo.byUID[o.GetUID()].pos] = o
		}
		out = sorted
	} else {
		slices.SortFunc(out, func(a, b P) int {
			return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
		})
	}
	for i, o := range out {
		if uid := o.GetUID(); uid != "" {
			next.byUID[uid] = memoCopy{resourceVersion: next.byUID[uid].resourceVersion, pos: i}
		}
	}
	next.sorted = out
	*memo = next
	return out
}
