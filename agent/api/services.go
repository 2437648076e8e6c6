package api

import (
	"context"
	"net/http"
	"net/url"
)

// Service is one frontend of a service port as the agent programs it.
//
// Routes:
//
//	GET /v1/services   the desired services with their backends
//	GET /v1/bpf/lb     the load-balancing maps as the kernel holds them
//	GET /v1/bpf/ct     the conntrack table
//	GET /v1/bpf/lb/maglev?service=S  the Maglev tables of a service, from the kernel
type Service struct {
	Name      string           `json:"name"`     // namespace/name[:port]
	Kind      string           `json:"kind"`     // ClusterIP, NodePort, ExternalIP, LoadBalancer
	Frontend  string           `json:"frontend"` // address:port
	Protocol  string           `json:"protocol"` // TCP or UDP
	Backends  []ServiceBackend `json:"backends"`
	Affinity  int              `json:"sessionAffinitySeconds,omitempty"`
	LocalOnly bool             `json:"localOnly,omitempty"` // traffic policy Local
	// Algorithm is how packets of a new flow pick a backend: random or
	// maglev (the Service's lb-algorithm annotation, else --lb-algorithm).
	Algorithm string `json:"algorithm,omitempty"`
	// Mode is how flows from outside reach a backend on another node:
	// snat, dsr or hybrid (the Service's lb-mode annotation, else
	// --lb-mode). Empty for a ClusterIP frontend, which has none.
	Mode string `json:"mode,omitempty"`
	// Warnings say which of the Service's annotations were not honoured
	// and what applies instead.
	Warnings []string `json:"warnings,omitempty"`
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

// MaglevTable is a Maglev lookup table as the kernel holds it.
type MaglevTable struct {
	Service  string          `json:"service"`  // namespace/name[:port]
	Frontend string          `json:"frontend"` // address:port/protocol
	RevNATID uint16          `json:"revNATID,omitempty"`
	Size     int             `json:"size"` // entries
	Backends []MaglevBackend `json:"backends,omitempty"`
	// Entries are the backend IDs of the table, entry by entry.
	Entries []uint32 `json:"entries,omitempty"`
	Error   string   `json:"error,omitempty"` // why there is no table
}

// MaglevBackend is one backend's part of a Maglev table.
type MaglevBackend struct {
	ID      uint32  `json:"id"`
	Address string  `json:"address"` // ip:port, from the kernel's backends map
	Entries int     `json:"entries"`
	Share   float64 `json:"share"` // entries / size
}

// Maglev returns the Maglev tables of a service's frontends, read back from
// the kernel (service: namespace/name, namespace/name:port or
// address:port/protocol).
func (c *Client) Maglev(ctx context.Context, service string) ([]MaglevTable, error) {
	var out []MaglevTable
	err := c.do(ctx, http.MethodGet, "/v1/bpf/lb/maglev?service="+url.QueryEscape(service), nil, &out)
	return out, err
}

// CT returns the conntrack table.
func (c *Client) CT(ctx context.Context) ([]CTEntry, error) {
	var out []CTEntry
	err := c.do(ctx, http.MethodGet, "/v1/bpf/ct", nil, &out)
	return out, err
}
