// Package servicemgr is the agent's service manager and the one owner of the
// load-balancing BPF maps (services, backends, reverse NAT). It joins the
// state source (Services, EndpointSlices and Pods from the manifests
// directory or the Kubernetes API) with the pods wired on this node,
// translates them with kube-proxy's semantics (agent/lb/translate) into the
// load-balancing model (agent/lb), and writes that model into the maps
// (lbsync.go: idempotent upserts, deletes and prunes with backend and
// reverse-NAT IDs adopted across restarts) from one owner loop
// (agent/reconcile) with full periodic resyncs and retry with backoff.
// Between full syncs it works per Service (model.go): the state source names
// the objects that changed, only the Services they concern are translated
// again, and only the entries of the frontends they touch are written
// (lbSync.ApplyChanged); a failed incremental sync is retried as a full one.
// The pods' hostPorts (the CNI's port mappings on the endpoints wired here,
// hostport.go) are frontends of kind HostPort in the same model, recomputed
// whenever an endpoint comes or goes.
// It also garbage-collects expired conntrack entries and exposes the
// services, LB maps and conntrack entries the local API serves.
package servicemgr
