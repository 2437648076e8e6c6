// Package policy holds Sluice's network policy: the API types of the
// SluiceNetworkPolicy and SluiceClusterwideNetworkPolicy CRDs (whose spec is
// the CiliumNetworkPolicy schema, L3/L4 subset), the translation of
// Kubernetes networking.k8s.io/v1 NetworkPolicy, validation, label selector
// matching over identity labels, and the Resolver that turns policies,
// endpoints and identities into per-endpoint map states
// ({direction, peer identity, protocol, port range} → allow/deny), plus the
// per-endpoint address trie of address rules (ipBlock; addr.go), with
// incremental diffs.
//
// Everything here is plain Go values: the datapath package converts map
// states into BPF map entries (see PortRangeToPrefixes and
// EndpointPolicy.LookupMostSpecific for the lookup contract the kernel side
// must follow).
//
// +groupName=sluice.io
// +versionName=v1alpha1
package policy
