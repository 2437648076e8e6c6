// Package api is the agent's local API: JSON over HTTP on a unix socket
// (default /var/run/sluice/agent.sock, root only). It holds the wire types and
// a client; the CNI plugin and the CLI use the client, the agent serves it.
//
// Routes:
//
//	GET    /v1/healthz                            agent is up and its programs are pinned
//	GET    /v1/config                             settings sluice-cni applies to pods (AgentConfig)
//	GET    /v1/endpoints                          list endpoints with counters
//	GET    /v1/endpoints/{containerID}/{ifName}   one endpoint
//	PUT    /v1/endpoints/{containerID}/{ifName}   add or replace; answers once the BPF entry is in place
//	DELETE /v1/endpoints/{containerID}/{ifName}   remove; a missing endpoint is 404
//
// The service and BPF dump routes are listed in services.go, the policy,
// identity and flow routes in policy.go, the policy trace in trace.go;
// agent/server registers them all.
// Errors are JSON {"error": "..."} with a 4xx/5xx status.
package api

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// DefaultSocket is the agent's socket path.
const DefaultSocket = "/var/run/sluice/agent.sock"

// Endpoint is one pod interface known to the agent. The CNI plugin fills the
// request fields; the agent fills ID, Created and Counters.
type Endpoint struct {
	ID          uint16 `json:"id"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	NetNS       string `json:"netns"`
	// NetNSInode is the inode of NetNS as sluice-cni saw it on the host (the
	// agent may not see the runtime's netns mounts from its own mount
	// namespace); 0 when unknown.
	NetNSInode   uint32    `json:"netnsInode,omitempty"`
	PodNamespace string    `json:"podNamespace,omitempty"`
	PodName      string    `json:"podName,omitempty"`
	IPv4         string    `json:"ipv4"`
	MAC          string    `json:"mac"`
	HostIfName   string    `json:"hostIfName"`
	HostIfIndex  int       `json:"hostIfIndex"`
	HostMAC      string    `json:"hostMAC"`
	Created      time.Time `json:"created,omitzero"`
	Counters     []Counter `json:"counters,omitempty"`
	// PortMappings are the pod's hostPorts (the runtime's
	// runtimeConfig.portMappings); the agent serves them as load-balancing
	// frontends of kind HostPort.
	PortMappings []PortMapping `json:"portMappings,omitempty"`
}

// Key names the endpoint the way CNI names an attachment.
func (e *Endpoint) Key() string { return e.ContainerID + "/" + e.IfName }

// Validate checks the fields a client must supply.
func (e *Endpoint) Validate() error {
	switch {
	case e.ContainerID == "":
		return fmt.Errorf("containerID is required")
	case e.IfName == "":
		return fmt.Errorf("ifName is required")
	case e.IPv4 == "":
		return fmt.Errorf("ipv4 is required")
	case e.MAC == "":
		return fmt.Errorf("mac is required")
	case e.HostIfName == "":
		return fmt.Errorf("hostIfName is required")
	case e.HostIfIndex <= 0:
		return fmt.Errorf("hostIfIndex must be positive")
	case e.HostMAC == "":
		return fmt.Errorf("hostMAC is required")
	}
	// Text that survives the JSON state file unchanged: a name that is not
	// valid UTF-8 would come back from it (and from the API) as another
	// name, so a restarted agent would know the endpoint by a key no DEL
	// can name.
	for _, f := range []struct{ field, s string }{{"containerID", e.ContainerID}, {"ifName", e.IfName}, {"netns", e.NetNS},
		{"podNamespace", e.PodNamespace}, {"podName", e.PodName}, {"hostIfName", e.HostIfName}} {
		if !utf8.ValidString(f.s) {
			return fmt.Errorf("%s %q is not valid UTF-8", f.field, f.s)
		}
	}
	return ValidatePortMappings(e.PortMappings)
}

// Counter is a packet/byte count for one direction and reason of an endpoint.
type Counter struct {
	Direction string `json:"direction"` // egress (from the pod) or ingress (into it)
	Reason    string `json:"reason"`    // e.g. forward-local, drop-spoofed-source-ip
	Drop      bool   `json:"drop"`
	Packets   uint64 `json:"packets"`
	Bytes     uint64 `json:"bytes"`
}

// Health is the answer of /v1/healthz.
type Health struct {
	Status    string `json:"status"` // "ok"
	BPFRoot   string `json:"bpfRoot"`
	Endpoints int    `json:"endpoints"`
	// Tracing is the process sensor's state (nil when it is off).
	Tracing *TracingStatus `json:"tracing,omitempty"`
}

// TracingStatus says which tracing hooks the process sensor runs and what
// it lost.
type TracingStatus struct {
	Hooks []string `json:"hooks"`
	// Lost counts events the kernel could not put in the ring buffer.
	Lost uint64 `json:"lost"`
}

// AgentConfig is the answer of /v1/config: the agent's settings that
// sluice-cni applies to the pods it wires.
type AgentConfig struct {
	// PodMTU is the MTU of both ends of a pod's veth, used unless the CNI
	// network config sets "mtu".
	PodMTU int `json:"podMTU"`
}

// Error is the body of a failed request.
type Error struct {
	Error string `json:"error"`
}
