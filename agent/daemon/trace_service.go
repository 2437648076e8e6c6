package daemon

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/policy"
)

// serviceBackends finds the ClusterIP frontend of service svc
// ("namespace/name") on port and proto and its backends as the
// load-balancing maps hold them: one path (and destination) per backend,
// with the backend's port (what policy sees after translation).
func (t tracer) serviceBackends(svc string, proto uint8, port uint16, res *api.TraceResult) ([]api.TracePath, []traceEnd, error) {
	ns, name := splitName(svc)
	fe, err := clusterFrontend(t.d.svcs.Services(), ns+"/"+name, policy.ProtoName(proto), port)
	if err != nil {
		return nil, nil, err
	}
	res.Service, res.ServiceName = fe, ns+"/"+name
	dump, err := t.d.svcs.LBMaps()
	if err != nil {
		return nil, nil, err
	}
	backends, err := lbBackends(dump, fe, policy.ProtoName(proto))
	if err != nil {
		return nil, nil, err
	}
	var (
		paths []api.TracePath
		dsts  []traceEnd
	)
	for _, b := range backends {
		ap, err := netip.ParseAddrPort(b.Address)
		if err != nil {
			return nil, nil, fmt.Errorf("backend %d address %q: %w", b.ID, b.Address, err)
		}
		label := ap.Addr().String()
		if p, ok := t.d.ids.PodByIP(ap.Addr()); ok && p.Name != "" {
			label = p.Namespace + "/" + p.Name
		}
		dst, err := t.byAddr(label, ap.Addr())
		if err != nil {
			return nil, nil, err
		}
		paths = append(paths, api.TracePath{Port: ap.Port(), Backend: b.Address, Terminating: b.Terminating})
		dsts = append(dsts, dst)
	}
	if len(paths) == 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("service %s/%s (%s) has no backend: the flow is not delivered", ns, name, fe))
	}
	return paths, dsts, nil
}

// clusterFrontend returns the ClusterIP frontend (address:port) of service
// name ("namespace/name") for port and proto.
func clusterFrontend(svcs []api.Service, name, proto string, port uint16) (string, error) {
	var ports []string
	for _, s := range svcs {
		if n, _, _ := strings.Cut(s.Name, ":"); n != name || s.Kind != "ClusterIP" {
			continue
		}
		ap, err := netip.ParseAddrPort(s.Frontend)
		if err != nil {
			continue
		}
		if ap.Port() == port && s.Protocol == proto {
			return s.Frontend, nil
		}
		ports = append(ports, fmt.Sprintf("%d/%s", ap.Port(), s.Protocol))
	}
	if len(ports) == 0 {
		return "", badRequest("no service %s with a cluster IP is programmed", name)
	}
	slices.Sort(ports)
	return "", badRequest("service %s has no port %d/%s (it has %s)", name, port, proto, strings.Join(ports, ", "))
}

// lbBackends returns the backends of frontend fe (address:port) and proto
// in a dump of the load-balancing maps, in the order of the service entry.
func lbBackends(dump api.LBMaps, fe, proto string) ([]api.LBMapBackend, error) {
	byID := make(map[uint32]api.LBMapBackend, len(dump.Backends))
	for _, b := range dump.Backends {
		byID[b.ID] = b
	}
	for _, s := range dump.Services {
		if s.Frontend != fe || s.Protocol != proto {
			continue
		}
		out := make([]api.LBMapBackend, 0, len(s.BackendIDs))
		for _, id := range s.BackendIDs {
			b, ok := byID[id]
			if !ok {
				return nil, fmt.Errorf("frontend %s/%s names backend %d, which is not in the backends map", fe, proto, id)
			}
			out = append(out, b)
		}
		return out, nil
	}
	return nil, fmt.Errorf("frontend %s/%s is not in the services map (not programmed yet?)", fe, proto)
}
