package harness

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	current "github.com/containernetworking/cni/pkg/types/100"
)

// AddPodIn is AddPod for a pod in a Kubernetes namespace (the CNI args carry
// K8S_POD_NAMESPACE, so the agent joins the endpoint with the Pod object and
// its namespace's labels).
func (n *Node) AddPodIn(tb T, namespace, name string) *Pod {
	tb.Helper()
	p := &Pod{Name: name, Namespace: namespace, ContainerID: NewContainerID(), Node: n}
	p.NS = NewNetNS(tb, "sl-pod-")
	res, err := n.CNI.AddNetworkList(context.Background(), n.ConfList, p.RuntimeConf())
	if err != nil {
		tb.Fatalf("CNI ADD %s/%s: %v", namespace, name, err)
	}
	tb.Cleanup(func() {
		if err := p.Del(); err != nil {
			tb.Errorf("CNI DEL %s/%s: %v", namespace, name, err)
		}
	})
	r, err := current.NewResultFromResult(res)
	if err != nil {
		tb.Fatalf("convert result: %v", err)
	}
	p.Result = r
	if len(r.IPs) != 1 {
		tb.Fatalf("want one IP in the result, got %v", r.IPs)
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
	return p
}

// FullName returns "<namespace>/<name>".
func (p *Pod) FullName() string { return fmt.Sprintf("%s/%s", p.Namespace, p.Name) }
