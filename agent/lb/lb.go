// Package lb is the agent's load-balancing model: what a Service turns into
// once kube-proxy's semantics have been applied (which endpoints are usable,
// which are node-local, affinity, traffic policies). It is pure Go. The LB
// has one home per layer: this model; agent/lb/translate, which produces it
// from Kubernetes objects; and agent/servicemgr, the one owner of the LB
// maps, which writes it into the BPF maps.
package lb

import (
	"fmt"
	"net/netip"
	"time"
)

// Proto is an IP protocol number.
type Proto uint8

// Supported protocols.
const (
	TCP Proto = 6
	UDP Proto = 17
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

// Kind says how a frontend is reached.
type Kind uint8

// Frontend kinds.
const (
	ClusterIP Kind = iota + 1
	NodePort
	ExternalIP
	LoadBalancer
	// HostPort is a pod's hostPort (from the CNI's portMappings): its
	// frontend is the host address, or 0.0.0.0 for every address of the
	// node as for a NodePort, and its one backend the pod's port.
	HostPort
)

func (k Kind) String() string {
	switch k {
	case ClusterIP:
		return "ClusterIP"
	case NodePort:
		return "NodePort"
	case ExternalIP:
		return "ExternalIP"
	case LoadBalancer:
		return "LoadBalancer"
	case HostPort:
		return "HostPort"
	}
	return fmt.Sprintf("kind-%d", uint8(k))
}

// External reports whether the kind is subject to externalTrafficPolicy.
func (k Kind) External() bool { return k != ClusterIP }

// Frontend is an address clients connect to. A NodePort frontend (and a
// HostPort one without host address) has the unspecified address 0.0.0.0:
// it matches every address of the node.
type Frontend struct {
	Addr  netip.Addr
	Port  uint16
	Proto Proto
}

func (f Frontend) String() string {
	return fmt.Sprintf("%s/%s", netip.AddrPortFrom(f.Addr, f.Port), f.Proto)
}

// BackendState is a backend's condition.
type BackendState uint8

// Backend states. Terminating backends are only used when no backend of the
// service is active (kube-proxy's serving-and-terminating fallback); the
// translator already applied that rule, so every backend in a Service is
// eligible for new connections.
const (
	Active BackendState = iota
	Terminating
)

func (s BackendState) String() string {
	if s == Terminating {
		return "terminating"
	}
	return "active"
}

// Backend is one endpoint address and target port of a service port.
type Backend struct {
	Addr  netip.AddrPort
	State BackendState
	Local bool   // the endpoint runs on this node
	Pod   string // namespace/name of the target pod, "" if unknown (display only)
}

// ServiceName names a Kubernetes service port.
type ServiceName struct {
	Namespace string
	Name      string
	Port      string // the port's name, "" for an unnamed port
}

func (n ServiceName) String() string {
	s := n.Namespace + "/" + n.Name
	if n.Port != "" {
		s += ":" + n.Port
	}
	return s
}

// Mode is how flows of a frontend reach a backend on another node
// (--lb-mode, or the Service's lb-mode annotation), with Cilium's names.
type Mode string

// Forwarding modes.
const (
	ModeSNAT   Mode = "snat"   // source NAT to the node: replies return through it
	ModeDSR    Mode = "dsr"    // direct server return: IP-in-IP to the backend's node
	ModeHybrid Mode = "hybrid" // DSR for TCP, SNAT for UDP
)

// DSR reports whether flows of proto go by DSR in mode m.
func (m Mode) DSR(proto Proto) bool {
	return m == ModeDSR || (m == ModeHybrid && proto == TCP)
}

// Algorithm is how packets of a new flow pick a backend (--lb-algorithm, or
// the Service's lb-algorithm annotation).
type Algorithm string

// Backend selection algorithms.
const (
	Random Algorithm = "random"
	Maglev Algorithm = "maglev"
)

// Service is one frontend of one service port with its eligible backends.
type Service struct {
	Name     ServiceName
	Kind     Kind
	Frontend Frontend
	// Backends are the eligible backends, in a stable order (sorted by address).
	Backends []Backend
	// Affinity is the ClientIP session affinity timeout; 0 means none.
	Affinity time.Duration
	// LocalOnly is set when the applicable traffic policy (externalTrafficPolicy
	// for external kinds, internalTrafficPolicy for ClusterIP) is Local:
	// Backends then holds only node-local backends, and no backend means
	// packets are dropped (counted as "no local backend") rather than refused.
	LocalOnly bool
	// Algorithm is how packets of a new flow pick a backend, from the
	// Service's annotation; "": the node's --lb-algorithm.
	Algorithm Algorithm
	// Mode is how flows reach a backend on another node, from the
	// Service's annotation, written into its entries; "": the programs
	// apply the node's --lb-mode. Set only for frontends reached from
	// outside the cluster (Kind.External).
	Mode Mode
	// Warnings say which of the Service's annotations were not honoured
	// and what applies instead (a bad value, DSR on a node that cannot do
	// it).
	Warnings []string
}
