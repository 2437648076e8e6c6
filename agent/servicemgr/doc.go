// Package servicemgr is the agent's service manager: it joins the state source
// (Services, EndpointSlices and Pods from the manifests directory or the
// Kubernetes API) with the pods wired on this node, translates them with
// kube-proxy's semantics (agent/lb/translate) into the load-balancing model, and
// drives the LB map reconciler (agent/lbmap) from one loop with full periodic
// resyncs and retry with backoff. It also garbage-collects expired conntrack
// entries and serves the services and BPF dump routes of the local API.
package servicemgr
