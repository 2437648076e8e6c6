package k8s

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"

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
	nodes, err := s.snapshotNodes()
	if err != nil {
		return source.Snapshot{}, err
	}
	return source.Snapshot{
		Nodes:          nodes,
		Namespaces:     copySorted(nss),
		Pods:           copySorted(livePods(pods)),
		Services:       copySorted(svcs),
		EndpointSlices: copySorted(eps),
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
	DeepCopy() *T
}

// copySorted deep-copies cached objects (the cache's own must never be
// modified) into a slice sorted by namespace/name.
func copySorted[T any, P object[T]](in []P) []P {
	out := make([]P, len(in))
	for i, o := range in {
		out[i] = o.DeepCopy()
	}
	slices.SortFunc(out, func(a, b P) int {
		return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
	})
	return out
}
