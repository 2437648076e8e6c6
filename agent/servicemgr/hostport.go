package servicemgr

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/lb"
	"github.com/sluicenet/sluice/agent/lb/translate"
)

// hostPortsKey is the model's key of the pods' hostPort frontends: no
// Service has an empty name.
var hostPortsKey = name{}

// hostPortName is the service port name of a pod's hostPorts.
const hostPortName = "hostport"

// hostPorts recomputes the hostPort frontends of the endpoints wired here
// and swaps them into the model (see model.swap for what it returns).
func (m *Manager) hostPorts(md *model, eps []api.Endpoint) (fes []lb.Frontend, before, after []translate.Diagnostic) {
	addrs, err := m.lb.NodeAddrs()
	if err != nil {
		m.log.WithError(err).Warn("List node addresses for hostPorts")
	}
	out, diags := hostPortServices(eps, addrs)
	return md.swap(hostPortsKey, out, diags)
}

// hostPortServices turns the endpoints' port mappings into load-balancing
// services of kind HostPort, as Cilium does with the CNI's portMappings:
// frontend hostIP:hostPort (0.0.0.0, every node address, without hostIP),
// one local backend podIP:containerPort. A host address that is not one of
// nodeAddrs is skipped with a diagnostic: a socket hook translating it would
// capture the node's connections to another machine. The endpoint manager
// refuses overlapping hostPorts of two pods; should restored state still
// hold two for one frontend, the endpoint listed first (lowest ID) keeps it.
func hostPortServices(eps []api.Endpoint, nodeAddrs []netip.Addr) ([]lb.Service, []translate.Diagnostic) {
	var (
		out   []lb.Service
		diags []translate.Diagnostic
		taken = map[lb.Frontend]string{}
	)
	for _, ep := range eps {
		ip, err := netip.ParseAddr(ep.IPv4)
		if err != nil {
			continue
		}
		pod := ep.PodNamespace + "/" + ep.PodName
		sn := lb.ServiceName{Namespace: ep.PodNamespace, Name: ep.PodName, Port: hostPortName}
		if ep.PodName == "" {
			pod, sn.Name = ep.Key(), ep.Key()
		}
		for _, p := range ep.PortMappings {
			if p.Validate() != nil {
				continue // the endpoint manager stores valid ones only
			}
			proto := lb.TCP
			if p.Proto() == "UDP" {
				proto = lb.UDP
			}
			fe := lb.Frontend{Addr: p.Addr(), Port: uint16(p.HostPort), Proto: proto}
			diag := func(reason string) {
				diags = append(diags, translate.Diagnostic{Service: pod, Reason: fmt.Sprintf("%s: %s, not programmed", p, reason)})
			}
			if !fe.Addr.IsUnspecified() && !slices.Contains(nodeAddrs, fe.Addr) {
				diag(fmt.Sprintf("hostIP %s is not an address of this node", fe.Addr))
				continue
			}
			if holder, ok := taken[fe]; ok {
				diag("already used by " + holder)
				continue
			}
			taken[fe] = pod
			out = append(out, lb.Service{
				Name: sn, Kind: lb.HostPort, Frontend: fe,
				Backends: []lb.Backend{{Addr: netip.AddrPortFrom(ip, uint16(p.ContainerPort)), Local: true, Pod: pod}},
			})
		}
	}
	slices.SortStableFunc(out, translate.CompareServices)
	return out, diags
}
