// Package manifests is the standalone state source: it watches a directory
// of Kubernetes manifests (*.yaml, *.yml, *.json, several documents per file
// separated by ---) and keeps a merged source.Snapshot of the Services,
// EndpointSlices, Pods, Namespaces and Nodes they define, plus every other
// object as raw JSON for later consumers (NetworkPolicy, SluiceNetworkPolicy,
// ...).
//
// Known kinds are decoded strictly: an unknown or duplicate field, a wrong
// type, a missing name or an unsupported version of a known kind makes the
// whole file bad. A bad file is logged (file, document, field or line) and
// its last good objects are kept, so that a typo never withdraws services.
// Changes are picked up incrementally (inotify, with a periodic rescan as
// the fallback): only files whose size, mtime or content changed are
// re-parsed, only their objects are re-merged, a burst of changes yields one
// callback, and the snapshot names the Services, EndpointSlices and Pods of
// the changed files (source.Changes) so that the service manager updates
// only those. Plain YAML (block and one-line flow style, unambiguous
// scalars) is converted to JSON by a fast path; anything else goes through
// sigs.k8s.io/yaml, which also words the errors.
package manifests
