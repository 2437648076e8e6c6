// Package translate translates Kubernetes Services and EndpointSlices into the
// agent's load-balancing model (agent/lb) with kube-proxy's semantics:
// one lb.Service per service port and frontend (ClusterIP, NodePort,
// ExternalIP, LoadBalancer ingress IP), ready endpoints first and
// serving-terminating endpoints as the fallback, externalTrafficPolicy and
// internalTrafficPolicy Local, ClientIP session affinity, and endpoints
// synthesized from Pods for selector services that have no EndpointSlice.
//
// The translation is pure and deterministic: the same input always gives
// the same, sorted output. What cannot be translated (SCTP, IPv6, invalid
// addresses, unresolvable named ports, conflicting frontends) is skipped and
// reported as a Diagnostic for the caller to log. So are Services that belong
// to another service proxy (the service.kubernetes.io/service-proxy-name
// label, matched against Input.ServiceProxyName as kube-proxy and Cilium do)
// and Services labelled service.kubernetes.io/headless.
//
// Service and Frontends give the same result one Service at a time, for the
// service manager's incremental updates.
package translate
