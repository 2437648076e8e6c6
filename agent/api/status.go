package api

// Status route:
//
//	GET /v1/status   the agent's state for `sluice status` (Status)

import (
	"context"
	"net/http"
	"time"
)

// MapWarnPercent is the fill level above which `sluice status` warns about
// a BPF map.
const MapWarnPercent = 90

// Status is the agent's state as an operator sees it. Healthy is false
// when Problems is not empty; Warnings never make it unhealthy. What is
// unhealthy is, precisely (agent/daemon's status.go decides it):
//
//   - the node is not ready: the datapath is not loaded or a pod program
//     is not pinned; in Kubernetes mode the caches have not synced, or the
//     API server does not answer; the state source has not delivered its
//     first snapshot, or identities have not synced since;
//   - an owner loop's last sync failed (it is retrying: its map or routes
//     are not all written);
//   - a desired service frontend is not programmed (not in the
//     load-balancing maps, or programmed from an older version).
//
// Warnings: a BPF map above MapWarnPercent, flow or process events lost
// (ring buffer full), a policy rejected (its endpoints get default deny in
// its directions).
type Status struct {
	Version  string    `json:"version"`
	Node     string    `json:"node"`
	Started  time.Time `json:"started"`
	Healthy  bool      `json:"healthy"`
	Problems []string  `json:"problems"`
	Warnings []string  `json:"warnings"`

	Source     SourceStatus    `json:"source"`
	KubeProxy  KubeProxyStatus `json:"kubeProxyReplacement"`
	Routing    RoutingStatus   `json:"routing"`
	IPAM       IPAMStatus      `json:"ipam"`
	Endpoints  int             `json:"endpoints"`
	Identities int             `json:"identities"`
	Policies   PolicySummary   `json:"policies"`
	Services   ServiceSummary  `json:"services"`
	Maps       []MapStatus     `json:"maps"`
	Loops      []LoopStatus    `json:"loops"`
	Flows      EventStats      `json:"flows"`
	Process    *ProcessStatus  `json:"process,omitempty"`
}

// SourceStatus is where the agent's desired state comes from.
type SourceStatus struct {
	// Mode is kubernetes, standalone (a manifests directory) or none.
	Mode string `json:"mode"`
	// ManifestsDir is the standalone source's directory.
	ManifestsDir string `json:"manifestsDir,omitempty"`
	// APIServer says, in Kubernetes mode, whether the API server answered
	// now ("ok" or the error); CachesSynced whether the informers listed.
	APIServer    string `json:"apiServer,omitempty"`
	CachesSynced bool   `json:"cachesSynced,omitempty"`
	// LastSnapshot is when the source last delivered a snapshot (zero:
	// never).
	LastSnapshot time.Time `json:"lastSnapshot,omitzero"`
}

// KubeProxyStatus is what of kube-proxy the agent replaces.
type KubeProxyStatus struct {
	// SocketLB: services translated at connect() by cgroup hooks on
	// SocketLBCgroup.
	SocketLB       bool   `json:"socketLB"`
	SocketLBCgroup string `json:"socketLBCgroup,omitempty"`
	// PerPacketLB: services translated per packet at the pod's veth (tc);
	// always on, it serves what the socket hooks do not see.
	PerPacketLB bool `json:"perPacketLB"`
	// NodePortDevices are the external devices with the host programs
	// (NodePort, ExternalIP, LoadBalancer); NodePortAttach how (tc).
	NodePortDevices []string `json:"nodePortDevices"`
	NodePortAttach  string   `json:"nodePortAttach,omitempty"`
	// NodePortXDP says per device how --lb-acceleration is served: "xdp
	// native", "xdp generic", or "tc" with why not XDP.
	NodePortXDP map[string]string `json:"nodePortXDP,omitempty"`
	// LBAcceleration is the --lb-acceleration asked for.
	LBAcceleration string `json:"lbAcceleration,omitempty"`
	// LBMode is --lb-mode (snat, dsr or hybrid).
	LBMode string `json:"lbMode,omitempty"`
	NodeIP string `json:"nodeIP,omitempty"`
	// Algorithm is the backend selection (random).
	Algorithm string `json:"algorithm"`
	// ServiceProxyName is the service-proxy-name the agent answers to.
	ServiceProxyName string `json:"serviceProxyName,omitempty"`
}

// RoutingStatus is how pods reach other nodes.
type RoutingStatus struct {
	Mode        string `json:"mode"`             // native, vxlan, none
	Tunnel      string `json:"tunnel,omitempty"` // the VXLAN device
	PodMTU      int    `json:"podMTU"`
	UnderlayMTU int    `json:"underlayMTU,omitempty"`
	// Peers are the other nodes routed to.
	Peers int `json:"peers"`
}

// IPAMStatus is the node's pod address range.
type IPAMStatus struct {
	// PodCIDR is the node's range ("" when the agent does not know it:
	// standalone mode without a conflist).
	PodCIDR string `json:"podCIDR,omitempty"`
	// Used counts local endpoints with an address in PodCIDR; Free the
	// addresses left (host-local hands out all but the network, gateway
	// and broadcast addresses).
	Used int `json:"used"`
	Free int `json:"free,omitempty"`
}

// PolicySummary counts the policies and names the rejected ones.
type PolicySummary struct {
	Enforcement string `json:"enforcement"` // default, always, never
	Audit       bool   `json:"audit"`
	Accepted    int    `json:"accepted"`
	// Enforced counts endpoints with policy enforced in some direction;
	// AuditEndpoints those in audit mode.
	Enforced       int              `json:"enforcedEndpoints"`
	AuditEndpoints int              `json:"auditEndpoints"`
	Rejected       []RejectedPolicy `json:"rejected"`
}

// RejectedPolicy is a policy the agent did not accept.
type RejectedPolicy struct {
	Name   string `json:"name"` // kind namespace/name
	Reason string `json:"reason"`
}

// ServiceSummary compares the desired service frontends with the
// programmed ones.
type ServiceSummary struct {
	Desired    int `json:"desired"`
	Programmed int `json:"programmed"`
	// Failed names frontends that are not programmed, with why.
	Failed []string `json:"failed"`
	// HealthCheckPorts counts the health-check node ports open
	// (LoadBalancer Services with externalTrafficPolicy Local);
	// HealthCheckFailed names those that could not be opened, with why.
	HealthCheckPorts  int      `json:"healthCheckPorts"`
	HealthCheckFailed []string `json:"healthCheckFailed,omitempty"`
}

// MapStatus is the fill level of one BPF map.
type MapStatus struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Entries  int    `json:"entries"`
	Capacity int    `json:"capacity"`
	// Percent is Entries/Capacity in percent; Warning is set above
	// MapWarnPercent.
	Percent float64 `json:"percent"`
	Warning bool    `json:"warning,omitempty"`
	// FullWrites counts writes of this agent that found the map full.
	FullWrites uint64 `json:"fullWrites,omitempty"`
}

// LoopStatus is one owner loop (reconcile) of the agent.
type LoopStatus struct {
	Name        string    `json:"name"`
	Syncs       uint64    `json:"syncs"`
	Failures    uint64    `json:"failures"`
	Retries     uint64    `json:"retries"` // failed syncs since the last success
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
	LastFailure time.Time `json:"lastFailure,omitzero"`
	LastError   string    `json:"lastError,omitempty"`
}

// EventStats are an event stream's totals since the start and its rate.
type EventStats struct {
	Total uint64 `json:"total"`
	// Rate is events per second over the last minute (since the start
	// when the agent is younger).
	Rate float64 `json:"ratePerSecond"`
	// Lost counts events the kernel could not put in the ring buffer.
	Lost uint64 `json:"lost"`
	// RateLimited counts process events the per-pod limit dropped.
	RateLimited uint64 `json:"rateLimited,omitempty"`
}

// ProcessStatus is the process sensor's state.
type ProcessStatus struct {
	Hooks  []string   `json:"hooks"`
	Events EventStats `json:"events"`
}

// Status returns the agent's state. An agent that predates the route
// answers ErrNotFound.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var out Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &out)
	return out, err
}
