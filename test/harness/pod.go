package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/sluicenet/sluice/agent/api"
)

// Pod is a network namespace wired into a node by sluice-cni.
type Pod struct {
	Name        string
	Namespace   string
	ContainerID string
	NS          *NetNS
	Node        *Node
	IP          netip.Addr
	MAC         net.HardwareAddr
	HostIfName  string
	HostMAC     net.HardwareAddr
	Result      *current.Result
	// PortMappings are the hostPorts the runtime passes on every CNI call
	// (runtimeConfig.portMappings, the conflist declares the capability).
	PortMappings []api.PortMapping
}

// NewContainerID returns a random 64-hex-character container ID.
func NewContainerID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// RuntimeConf is what libcni passes to the plugin for this pod.
func (p *Pod) RuntimeConf() *libcni.RuntimeConf {
	rc := &libcni.RuntimeConf{
		ContainerID: p.ContainerID,
		NetNS:       p.NS.Path(),
		IfName:      "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", p.Namespace},
			{"K8S_POD_NAME", p.Name},
		},
	}
	if len(p.PortMappings) > 0 {
		rc.CapabilityArgs = map[string]any{"portMappings": p.PortMappings}
	}
	return rc
}

// AddPod creates a pod netns and runs CNI ADD for it through the real
// sluice-cni binary; it fails tb on error. CNI DEL runs in cleanup.
func (n *Node) AddPod(tb T, name string) *Pod {
	tb.Helper()
	p, err := n.TryAddPod(tb, name)
	if err != nil {
		tb.Fatalf("CNI ADD %s: %v", name, err)
	}
	return p
}

// TryAddPod is AddPod that returns the ADD error (the pod netns exists and is
// removed in cleanup either way).
func (n *Node) TryAddPod(tb T, name string) (*Pod, error) {
	tb.Helper()
	return n.TryAddPodIn(tb, "default", name)
}

// TryAddPodIn is TryAddPod for a pod in a Kubernetes namespace.
func (n *Node) TryAddPodIn(tb T, namespace, name string) (*Pod, error) {
	tb.Helper()
	return n.TryAddPodWithPorts(tb, namespace, name)
}

// TryAddPodWithPorts is TryAddPodIn for a pod with hostPorts.
func (n *Node) TryAddPodWithPorts(tb T, namespace, name string, pms ...api.PortMapping) (*Pod, error) {
	tb.Helper()
	p := &Pod{Name: name, Namespace: namespace, ContainerID: NewContainerID(), Node: n, PortMappings: pms}
	p.NS = NewNetNS(tb, "sl-pod-")
	res, err := n.CNI.AddNetworkList(context.Background(), n.ConfList, p.RuntimeConf())
	if err != nil {
		return p, err
	}
	tb.Cleanup(func() {
		if err := p.Del(); err != nil {
			tb.Errorf("CNI DEL %s: %v", p.FullName(), err)
		}
	})
	r, err := current.NewResultFromResult(res)
	if err != nil {
		return p, fmt.Errorf("convert result: %w", err)
	}
	p.Result = r
	if len(r.IPs) != 1 {
		return p, fmt.Errorf("want one IP in the result, got %v", r.IPs)
	}
	p.IP, _ = netip.AddrFromSlice(r.IPs[0].Address.IP.To4())
	for _, iface := range r.Interfaces {
		switch {
		case iface.Sandbox != "":
			p.MAC, _ = net.ParseMAC(iface.Mac)
		default:
			p.HostIfName = iface.Name
			p.HostMAC, _ = net.ParseMAC(iface.Mac)
		}
	}
	return p, nil
}

// Del runs CNI DEL for the pod; safe to call more than once.
func (p *Pod) Del() error {
	return p.Node.CNI.DelNetworkList(context.Background(), p.Node.ConfList, p.RuntimeConf())
}

// Check runs CNI CHECK for the pod.
func (p *Pod) Check() error {
	return p.Node.CNI.CheckNetworkList(context.Background(), p.Node.ConfList, p.RuntimeConf())
}

// GC runs CNI GC on the node with pods as the valid attachments.
func (n *Node) GC(pods ...*Pod) error {
	args := &libcni.GCArgs{}
	for _, p := range pods {
		args.ValidAttachments = append(args.ValidAttachments, types.GCAttachment{ContainerID: p.ContainerID, IfName: "eth0"})
	}
	return n.CNI.GCNetworkList(context.Background(), n.ConfList, args)
}

// Status runs CNI STATUS on the node.
func (n *Node) Status() error {
	return n.CNI.GetStatusNetworkList(context.Background(), n.ConfList)
}

// Addr returns "<pod IP>:<port>".
func (p *Pod) Addr(port int) string { return fmt.Sprintf("%s:%d", p.IP, port) }
