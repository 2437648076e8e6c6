package api

import (
	"context"
	"net/http"
)

// Service is one frontend of a service port as the agent programs it.
//
// Routes:
//
//	GET /v1/services   the desired services with their backends
//	GET /v1/bpf/lb     the load-balancing maps as the kernel holds them
//	GET /v1/bpf/ct     the conntrack table
type Service struct {
	Name      string           `json:"name"`     // namespace/name[:port]
	Kind      string           `json:"kind"`     // ClusterIP, NodePort, ExternalIP, LoadBalancer
	Frontend  string           `json:"frontend"` // address:port
	Protocol  string           `json:"protocol"` // TCP or UDP
	Backends  []ServiceBackend `json:"backends"`
	Affinity  int              `json:"sessionAffinitySeconds,omitempty"`
	LocalOnly bool             `json:"localOnly,omitempty"` // traffic policy Local
	// Error, when set, says why the service is not programmed: the
	// load-balancing maps hold none of it or an older version (a map full,
	// for example). Empty: every entry of it is in the maps.
	Error string `json:"error,omitempty"`
	// HealthCheck is the Service's health-check node port on this node
	// (LoadBalancer with externalTrafficPolicy Local), nil without one.
	HealthCheck *ServiceHealthCheck `json:"healthCheck,omitempty"`
}

// ServiceHealthCheck is a Service's health-check node port as this node
// serves it (kube-proxy's healthCheckNodePort server).
type ServiceHealthCheck struct {
	Port int `json:"port"`
	// LocalEndpoints is what the port answers: this node's ready
	// endpoints of the Service (200 with one or more, 503 with none).
	LocalEndpoints int `json:"localEndpoints"`
	// Listening: the port is open; Error says why not.
	Listening bool   `json:"listening"`
	Error     string `json:"error,omitempty"`
}

// ServiceBackend is one backend of a Service.
type ServiceBackend struct {
	ID      uint32 `json:"id"`
	Address string `json:"address"` // ip:port
	State   string `json:"state"`   // active or terminating
	Local   bool   `json:"local"`
	Pod     string `json:"pod,omitempty"`
}

// LBMaps is a dump of the load-balancing maps.
type LBMaps struct {
	Services []LBMapService `json:"services"`
	Backends []LBMapBackend `json:"backends"`
	RevNAT   []LBMapRevNAT  `json:"revNAT"`
}

// LBMapService is one master entry of the services map.
type LBMapService struct {
	Frontend        string   `json:"frontend"`
	Protocol        string   `json:"protocol"`
	RevNATID        uint16   `json:"revNATID"`
	Flags           []string `json:"flags,omitempty"`
	AffinitySeconds int      `json:"affinitySeconds,omitempty"`
	BackendIDs      []uint32 `json:"backendIDs"`
}

// LBMapBackend is one entry of the backends map.
type LBMapBackend struct {
	ID          uint32 `json:"id"`
	Address     string `json:"address"`
	Protocol    string `json:"protocol"`
	Terminating bool   `json:"terminating,omitempty"`
}

// LBMapRevNAT is one entry of the reverse-NAT map.
type LBMapRevNAT struct {
	ID       uint16 `json:"id"`
	Frontend string `json:"frontend"`
}

// CTEntry is one conntrack entry.
type CTEntry struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Protocol    string `json:"protocol"`
	Service     bool   `json:"service"`
	BackendID   uint32 `json:"backendID,omitempty"`
	RevNATID    uint16 `json:"revNATID,omitempty"`
	ExpiresIn   int    `json:"expiresInSeconds"`
	Closing     bool   `json:"closing,omitempty"`
	// PolicyAllowed: policy allowed the flow; its later packets and
	// replies pass by conntrack.
	PolicyAllowed bool   `json:"policyAllowed,omitempty"`
	Packets       uint64 `json:"packets"`
}

// ListServices returns the services the agent programs.
func (c *Client) ListServices(ctx context.Context) ([]Service, error) {
	var out []Service
	err := c.do(ctx, http.MethodGet, "/v1/services", nil, &out)
	return out, err
}

// LBMaps returns a dump of the load-balancing maps.
func (c *Client) LBMaps(ctx context.Context) (LBMaps, error) {
	var out LBMaps
	err := c.do(ctx, http.MethodGet, "/v1/bpf/lb", nil, &out)
	return out, err
}

// CT returns the conntrack table.
func (c *Client) CT(ctx context.Context) ([]CTEntry, error) {
	var out []CTEntry
	err := c.do(ctx, http.MethodGet, "/v1/bpf/ct", nil, &out)
	return out, err
}
