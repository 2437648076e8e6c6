package servicemgr

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/lb"
	"github.com/sluicenet/sluice/datapath/lbmap"
)

// Services returns the desired services in API form (GET /v1/services);
// those not in the load-balancing maps as desired carry the error of their
// last write.
func (m *Manager) Services() []api.Service {
	desired := m.rec.Desired()
	out := make([]api.Service, 0, len(desired))
	for _, s := range desired {
		as := api.Service{
			Name:      s.Name.String(),
			Kind:      s.Kind.String(),
			Frontend:  netip.AddrPortFrom(s.Frontend.Addr, s.Frontend.Port).String(),
			Protocol:  s.Frontend.Proto.String(),
			Affinity:  int(s.Affinity.Seconds()),
			LocalOnly: s.LocalOnly,
			Algorithm: string(m.cfg.LB.EffectiveAlgorithm(s)),
			Mode:      string(m.cfg.LB.EffectiveMode(s)),
			Warnings:  s.Warnings,
			Backends:  []api.ServiceBackend{},
		}
		if err := m.rec.Failed(s.Frontend); err != nil {
			as.Error = err.Error()
		}
		for _, b := range s.Backends {
			id, _ := m.rec.BackendID(b.Addr, s.Frontend.Proto)
			as.Backends = append(as.Backends, api.ServiceBackend{ID: id, Address: b.Addr.String(), State: b.State.String(), Local: b.Local, Pod: b.Pod})
		}
		out = append(out, as)
	}
	return out
}

// ServiceByFrontend names the service of a programmed frontend (proto is an
// IP protocol number), for process connect events.
func (m *Manager) ServiceByFrontend(proto uint8, fe netip.AddrPort) (namespace, name string, ok bool) {
	n, ok := m.rec.ServiceName(lb.Frontend{Addr: fe.Addr().Unmap(), Port: fe.Port(), Proto: lb.Proto(proto)})
	return n.Namespace, n.Name, ok
}

// BackendFor returns the backend the per-packet load balancer chose for the
// connection src -> frontend (its conntrack service entry), for process
// connect events of sockets the socket LB did not translate.
func (m *Manager) BackendFor(proto uint8, src, frontend netip.AddrPort) (netip.AddrPort, bool) {
	id, ok := m.ct.ServiceBackend(proto, src, frontend)
	if !ok {
		return netip.AddrPort{}, false
	}
	b, ok := m.rec.Backend(id)
	if !ok {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(b.Addr, b.Port), true
}

// LBMaps dumps the load-balancing maps in API form (GET /v1/bpf/lb).
func (m *Manager) LBMaps() (api.LBMaps, error) {
	out := api.LBMaps{Services: []api.LBMapService{}, Backends: []api.LBMapBackend{}, RevNAT: []api.LBMapRevNAT{}}
	svcs, err := m.lb.Services()
	if err != nil {
		return out, fmt.Errorf("dump services: %w", err)
	}
	bes, err := m.lb.Backends()
	if err != nil {
		return out, fmt.Errorf("dump backends: %w", err)
	}
	rns, err := m.lb.RevNATs()
	if err != nil {
		return out, fmt.Errorf("dump reverse NAT: %w", err)
	}
	for fe, s := range svcs {
		out.Services = append(out.Services, api.LBMapService{
			Frontend: netip.AddrPortFrom(fe.Addr, fe.Port).String(), Protocol: lb.Proto(fe.Proto).String(),
			RevNATID: s.RevNATID, Flags: flagNames(s.Flags), AffinitySeconds: int(s.AffinityTimeout.Seconds()),
			BackendIDs: append([]uint32{}, s.Backends...),
		})
	}
	for id, b := range bes {
		out.Backends = append(out.Backends, api.LBMapBackend{ID: id, Address: netip.AddrPortFrom(b.Addr, b.Port).String(), Protocol: lb.Proto(b.Proto).String(), Terminating: b.Terminating})
	}
	for id, fe := range rns {
		out.RevNAT = append(out.RevNAT, api.LBMapRevNAT{ID: id, Frontend: netip.AddrPortFrom(fe.Addr, fe.Port).String() + "/" + lb.Proto(fe.Proto).String()})
	}
	sort.Slice(out.Services, func(i, j int) bool {
		return out.Services[i].Frontend+out.Services[i].Protocol < out.Services[j].Frontend+out.Services[j].Protocol
	})
	sort.Slice(out.Backends, func(i, j int) bool { return out.Backends[i].ID < out.Backends[j].ID })
	sort.Slice(out.RevNAT, func(i, j int) bool { return out.RevNAT[i].ID < out.RevNAT[j].ID })
	return out, nil
}

func flagNames(f lbmap.Flags) []string {
	var out []string
	for _, n := range []struct {
		flag lbmap.Flags
		name string
	}{
		{lbmap.FlagNodePort, "nodeport"},
		{lbmap.FlagExternal, "external"},
		{lbmap.FlagLocalOnly, "local-only"},
		{lbmap.FlagAffinity, "affinity"},
		{lbmap.FlagMaglev, "maglev"},
		{lbmap.FlagModeSet, "mode-set"},
		{lbmap.FlagDSR, "dsr"},
	} {
		if f&n.flag != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

// Conntrack dumps the conntrack map in API form (GET /v1/bpf/ct).
func (m *Manager) Conntrack() ([]api.CTEntry, error) {
	ct, err := m.ct.Entries()
	if err != nil {
		return nil, err
	}
	out := make([]api.CTEntry, 0, len(ct))
	for _, e := range ct {
		out = append(out, api.CTEntry{
			Source: e.Src.String(), Destination: e.Dst.String(), Protocol: lb.Proto(e.Proto).String(),
			Service: e.Service, BackendID: e.BackendID, RevNATID: e.RevNATID,
			ExpiresIn: int(e.Expires.Seconds()), Closing: e.Closing,
			PolicyAllowed: e.PolicyAllowed, Packets: e.Packets,
		})
	}
	return out, nil
}

// MaglevTables reads back from the kernel the Maglev tables of the
// frontends of a service (GET /v1/bpf/lb/maglev): service is
// "namespace/name" (every port), "namespace/name:port" or a frontend
// "address:port/protocol". Each table gives every backend's share of
// entries, the backends named by the kernel's backends map.
func (m *Manager) MaglevTables(service string) ([]api.MaglevTable, error) {
	var out []api.MaglevTable
	bes, err := m.lb.Backends()
	if err != nil {
		return nil, fmt.Errorf("dump backends: %w", err)
	}
	for _, s := range m.rec.Desired() {
		fe := netip.AddrPortFrom(s.Frontend.Addr, s.Frontend.Port).String() + "/" + s.Frontend.Proto.String()
		name := s.Name.String()
		if service != name && service != s.Name.Namespace+"/"+s.Name.Name && !strings.EqualFold(service, fe) {
			continue
		}
		t := api.MaglevTable{Service: name, Frontend: fe}
		id, ok := m.rec.RevNATID(s.Frontend)
		if !ok {
			t.Error = "not programmed"
			out = append(out, t)
			continue
		}
		t.RevNATID = id
		table, err := m.lb.Maglev(id)
		if errors.Is(err, lbmap.ErrNoMaglev) {
			t.Error = "no Maglev table (random selection, or fewer than 2 backends)"
			out = append(out, t)
			continue
		}
		if err != nil {
			return nil, err
		}
		t.Size = len(table)
		count := map[uint32]int{}
		for _, bid := range table {
			count[bid]++
		}
		for bid, n := range count {
			b := api.MaglevBackend{ID: bid, Entries: n, Share: float64(n) / float64(len(table))}
			if kb, ok := bes[bid]; ok {
				b.Address = netip.AddrPortFrom(kb.Addr, kb.Port).String()
			} else {
				b.Address = "(missing)"
			}
			t.Backends = append(t.Backends, b)
		}
		sort.Slice(t.Backends, func(i, j int) bool {
			a, aerr := netip.ParseAddrPort(t.Backends[i].Address)
			b, berr := netip.ParseAddrPort(t.Backends[j].Address)
			if aerr != nil || berr != nil {
				return t.Backends[i].Address < t.Backends[j].Address
			}
			return a.Compare(b) < 0
		})
		t.Entries = table
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no service %q (give namespace/name, namespace/name:port or address:port/protocol)", service)
	}
	return out, nil
}
