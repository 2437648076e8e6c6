package k8s

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// listNodes returns every Node in the informer cache (this node included):
// the node manager routes to each other node's PodCIDR via its InternalIP.
func (s *Source) listNodes() ([]*corev1.Node, error) {
	nodes, err := s.nodes.List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return nodes, nil
}

// snapshotNodes is the Nodes part of a snapshot: copies sorted by name
// (copySorted; s.copyMu held).
func (s *Source) snapshotNodes() ([]*corev1.Node, error) {
	nodes, err := s.listNodes()
	if err != nil {
		return nil, err
	}
	return copySorted(nodes, &s.copies.nodes), nil
}
