// Package healthcheck serves kube-proxy's health checks from the agent,
// which replaces kube-proxy on the node:
//
//   - Health-check node ports (manager.go, service.go): for every
//     LoadBalancer Service with externalTrafficPolicy Local, an HTTP server
//     on its spec.healthCheckNodePort (TCP, every address of the node's
//     network namespace) answers any request with the count of the
//     Service's ready endpoints on this node, 200 when there is one and 503
//     when there is none (or the service proxy is unhealthy), with
//     kube-proxy's JSON body and headers, so that cloud load balancers send
//     traffic only to nodes that can serve it. The Manager is the one owner
//     of these listeners: the service manager hands it the desired ports and
//     counts (agent/lb/translate.HealthCheck), and its owner loop
//     (agent/reconcile) opens, moves and closes listeners, retrying ports
//     it could not bind with backoff. A port that cannot be bound is logged,
//     counted (sluice_healthcheck_listen_errors_total) and reported per
//     Service; it never stops the agent.
//   - The node's proxy health (node.go): kube-proxy's /healthz and /livez
//     (by default on port 10256), which load balancers and the upstream
//     tests probe to learn whether the node's service proxy is up to date.
//
// The answers follow k8s.io/kubernetes pkg/proxy/healthcheck at v1.33.
package healthcheck
