// Package identity turns security-relevant label sets into numeric security
// identities and maps IP prefixes to them.
//
// It follows Cilium's conventions so that CiliumNetworkPolicy-style selectors
// keep their meaning: pod labels carry the "k8s:" source, the pod namespace is
// the label k8s:io.kubernetes.pod.namespace, namespace labels appear as
// k8s:io.cilium.k8s.namespace.labels.<key>=<value>, reserved identities have
// fixed numbers (host=1, world=2, …) and "reserved:" labels, and CIDR
// identities are node-local numbers with the local scope bit (1<<24) and the
// labels cidr:<prefix> plus reserved:world.
//
// Allocation goes through the Allocator interface. StoreAllocator implements
// it over a Store: NewStandaloneAllocator uses a private in-memory Store
// (standalone mode), NewClusterAllocator a Store shared by every node (the
// Kubernetes SluiceIdentity store), where the number is the object's name and
// creating it is the atomic step that makes racing nodes converge.
//
// IPCache maps prefixes to identities with longest-prefix lookup and a change
// stream for the agent to mirror into the kernel's LPM map. The package is
// pure Go: it imports no BPF library and does no logging.
package identity
