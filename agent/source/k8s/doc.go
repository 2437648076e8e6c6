// Package k8s is the agent's Kubernetes state source: client-go shared
// informers on Nodes, Namespaces, Pods, Services and EndpointSlices, turned
// into the same source.Snapshot the standalone manifests source produces,
// plus this node's PodCIDR and InternalIP from its Node object. It also
// renders the CNI conflist the agent writes from that PodCIDR.
//
// The source is leader-free (one per node) and keeps its state across API
// server restarts and watch expiry: the informers relist and the snapshot is
// always computed from their caches, never from individual events.
package k8s
