// Package lbmap is the datapath's load-balancing maps: services (a master
// entry per frontend plus one slot per backend), backends, reverse NAT,
// session affinity (written by the programs only) and the node's addresses
// NodePort frontends answer on. Its types are the Go view of the entries.
package lbmap

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/addrfilter"
	"github.com/sluicenet/sluice/datapath/internal/maputil"
)

// Map is the load-balancing maps of a loaded datapath.
type Map struct {
	services, backends, revNAT, nodeAddrs *ebpf.Map
	maglev                                *ebpf.Map // nil: no Maglev tables (SetMaglevMap)

	mu            sync.Mutex         // writes that set filter bits against filter rebuilds
	filter        *addrfilter.Filter // nil: no frontend filters (SetFrontendFilter)
	nodePorts     *addrfilter.Filter
	backendFilter *addrfilter.Filter // nil: no backend filter (SetBackendFilter)
}

// New returns the handle of the LB maps (sluice_lb4_services_v1,
// sluice_lb4_backends_v1, sluice_lb4_reverse_nat_v1, sluice_node_addrs_v1).
func New(services, backends, revNAT, nodeAddrs *ebpf.Map) *Map {
	return &Map{services: services, backends: backends, revNAT: revNAT, nodeAddrs: nodeAddrs}
}

// Frontend is an address clients reach a service on. A NodePort frontend
// has the unspecified address 0.0.0.0.
type Frontend struct {
	Addr  netip.Addr
	Port  uint16
	Proto uint8 // IP protocol number (6 TCP, 17 UDP)
}

func (fe Frontend) String() string {
	return fmt.Sprintf("%s/%d", netip.AddrPortFrom(fe.Addr, fe.Port), fe.Proto)
}

// Flags are the flags of a service's master entry (mirror LB_FLAG_* in
// bpf/lib/lb.h).
type Flags uint16

// Service flags.
const (
	FlagNodePort  Flags = 1 << 0 // NodePort frontend (not translated by the socket hooks)
	FlagExternal  Flags = 1 << 1 // ExternalIP or LoadBalancer frontend
	FlagLocalOnly Flags = 1 << 2 // traffic policy Local: Backends are node-local ones
	FlagAffinity  Flags = 1 << 3 // sessionAffinity ClientIP for AffinityTimeout
	FlagMaglev    Flags = 1 << 4 // packets pick from the service's Maglev table (SetMaglev)
	// FlagModeSet: the service's own forwarding mode to remote backends
	// applies (a Service annotation), DSR with FlagDSR, else SNAT; without
	// it the node's --lb-mode does.
	FlagModeSet Flags = 1 << 5
	FlagDSR     Flags = 1 << 6
)

// Service is what a frontend is translated to.
type Service struct {
	RevNATID        uint16
	Flags           Flags
	AffinityTimeout time.Duration // whole seconds; used with FlagAffinity
	Backends        []uint32      // backend IDs for slots 1..n
}

// Backend is one backend (an endpoint address of a service port).
type Backend struct {
	Addr        netip.Addr
	Port        uint16
	Proto       uint8
	Terminating bool
}

const lbBackendTerminating = 1 << 0 // LB_BACKEND_TERMINATING

func lbKey(fe Frontend, slot uint16) bpfgen.LxcLb4Key {
	return bpfgen.LxcLb4Key{Address: maputil.Be32(fe.Addr), Dport: maputil.Be16(fe.Port), Proto: fe.Proto, BackendSlot: slot}
}

func frontendOf(k bpfgen.LxcLb4Key) Frontend {
	return Frontend{Addr: maputil.AddrFromBe32(k.Address), Port: maputil.PortFromBe16(k.Dport), Proto: k.Proto}
}

// UpsertBackend writes backend id.
func (m *Map) UpsertBackend(id uint32, b Backend) error {
	if err := maputil.CheckV4("backend", b.Addr); err != nil {
		return err
	}
	if id == 0 {
		return errors.New("backend id 0 is reserved")
	}
	val := bpfgen.LxcLb4Backend{Address: maputil.Be32(b.Addr), Port: maputil.Be16(b.Port), Proto: b.Proto}
	if b.Terminating {
		val.Flags = lbBackendTerminating
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.backendFilter != nil {
		if err := m.backendFilter.Add(val.Address); err != nil {
			return err
		}
	}
	if err := m.backends.Update(&id, &val, ebpf.UpdateAny); err != nil {
		return maputil.UpdateError("sluice_lb4_backends_v1", err)
	}
	return nil
}

// DeleteBackend removes backend id; a missing backend is not an error.
// Flows conntrack pinned to it select a new backend on their next packet.
// Its address keeps its bit in the backend filter (see SetBackendFilter).
func (m *Map) DeleteBackend(id uint32) error {
	if err := maputil.Delete(m.backends, &id); err != nil {
		return fmt.Errorf("delete backend %d: %w", id, err)
	}
	return nil
}

// Backends lists the backends map.
func (m *Map) Backends() (map[uint32]Backend, error) {
	out := make(map[uint32]Backend)
	err := maputil.Dump(m.backends, func(id uint32, val bpfgen.LxcLb4Backend) {
		out[id] = Backend{
			Addr:        maputil.AddrFromBe32(val.Address),
			Port:        maputil.PortFromBe16(val.Port),
			Proto:       val.Proto,
			Terminating: val.Flags&lbBackendTerminating != 0,
		}
	})
	if err != nil {
		return nil, fmt.Errorf("iterate sluice_lb4_backends_v1: %w", err)
	}
	return out, nil
}

// UpsertService writes the frontend fe: slots 1..n first, then the master
// (slot 0), then deletes slots beyond n, so the programs never see a master
// pointing at missing slots.
func (m *Map) UpsertService(fe Frontend, s Service) error {
	if err := maputil.CheckV4("frontend", fe.Addr); err != nil {
		return err
	}
	if len(s.Backends) > math.MaxUint16 {
		return fmt.Errorf("frontend %s: %d backends, at most %d", fe, len(s.Backends), math.MaxUint16)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	svc := m.services
	oldCount := 0
	var old bpfgen.LxcLb4Service
	key := lbKey(fe, 0)
	if err := svc.Lookup(&key, &old); err == nil {
		oldCount = int(old.BackendId)
	} else if !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("look up frontend %s: %w", fe, err)
	}
	for i, id := range s.Backends {
		key := lbKey(fe, uint16(i+1))
		val := bpfgen.LxcLb4Service{BackendId: id}
		if err := svc.Update(&key, &val, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("frontend %s slot %d: %w", fe, i+1, maputil.UpdateError("sluice_lb4_services_v1", err))
		}
	}
	timeout := uint64((s.AffinityTimeout + time.Second - 1) / time.Second)
	if timeout > math.MaxUint32 {
		timeout = math.MaxUint32
	}
	master := bpfgen.LxcLb4Service{
		BackendId:       uint32(len(s.Backends)),
		RevNatId:        s.RevNATID,
		Flags:           uint16(s.Flags),
		AffinityTimeout: uint32(timeout),
	}
	if err := m.filterAdd(key, fe); err != nil {
		return err
	}
	if err := svc.Update(&key, &master, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("frontend %s: %w", fe, maputil.UpdateError("sluice_lb4_services_v1", err))
	}
	return m.deleteSlots(fe, len(s.Backends)+1, oldCount)
}

// deleteSlots deletes slots from..to and any further ones up to the first
// missing slot (left over by an interrupted writer).
func (m *Map) deleteSlots(fe Frontend, from, to int) error {
	for slot := from; slot <= math.MaxUint16; slot++ {
		key := lbKey(fe, uint16(slot))
		err := m.services.Delete(&key)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			if slot > to {
				return nil
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("delete frontend %s slot %d: %w", fe, slot, err)
		}
	}
	return nil
}

// DeleteService removes the frontend fe, master first, then its slots; a
// missing frontend is not an error.
func (m *Map) DeleteService(fe Frontend) error {
	if err := maputil.CheckV4("frontend", fe.Addr); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	svc := m.services
	key := lbKey(fe, 0)
	var old bpfgen.LxcLb4Service
	count := 0
	if err := svc.Lookup(&key, &old); err == nil {
		count = int(old.BackendId)
		if err := maputil.Delete(svc, &key); err != nil {
			return fmt.Errorf("delete frontend %s: %w", fe, err)
		}
		if err := m.filterRemoved(); err != nil {
			return err
		}
	} else if !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("look up frontend %s: %w", fe, err)
	}
	return m.deleteSlots(fe, 1, count)
}

// Services lists the services map: every master entry with the backend IDs
// of its slots (0 for a slot that is missing).
func (m *Map) Services() (map[Frontend]Service, error) {
	masters := make(map[Frontend]bpfgen.LxcLb4Service)
	slots := make(map[Frontend]map[uint16]uint32)
	err := maputil.Dump(m.services, func(key bpfgen.LxcLb4Key, val bpfgen.LxcLb4Service) {
		fe := frontendOf(key)
		if key.BackendSlot == 0 {
			masters[fe] = val
			return
		}
		if slots[fe] == nil {
			slots[fe] = make(map[uint16]uint32)
		}
		slots[fe][key.BackendSlot] = val.BackendId
	})
	if err != nil {
		return nil, fmt.Errorf("iterate sluice_lb4_services_v1: %w", err)
	}
	out := make(map[Frontend]Service, len(masters))
	for fe, ms := range masters {
		s := Service{
			RevNATID:        ms.RevNatId,
			Flags:           Flags(ms.Flags),
			AffinityTimeout: time.Duration(ms.AffinityTimeout) * time.Second,
			Backends:        make([]uint32, ms.BackendId),
		}
		for i := range s.Backends {
			s.Backends[i] = slots[fe][uint16(i+1)]
		}
		out[fe] = s
	}
	return out, nil
}

// UpsertRevNAT writes reverse-NAT id: replies of flows translated for the
// frontend with this id are shown as coming from fe.
func (m *Map) UpsertRevNAT(id uint16, fe Frontend) error {
	if err := maputil.CheckV4("reverse NAT", fe.Addr); err != nil {
		return err
	}
	val := bpfgen.LxcLb4ReverseNat{Address: maputil.Be32(fe.Addr), Port: maputil.Be16(fe.Port), Proto: fe.Proto}
	if err := m.revNAT.Update(&id, &val, ebpf.UpdateAny); err != nil {
		return maputil.UpdateError("sluice_lb4_reverse_nat_v1", err)
	}
	return nil
}

// DeleteRevNAT removes reverse-NAT id; a missing entry is not an error.
func (m *Map) DeleteRevNAT(id uint16) error {
	if err := maputil.Delete(m.revNAT, &id); err != nil {
		return fmt.Errorf("delete reverse NAT %d: %w", id, err)
	}
	return nil
}

// RevNATs lists the reverse-NAT map.
func (m *Map) RevNATs() (map[uint16]Frontend, error) {
	out := make(map[uint16]Frontend)
	err := maputil.Dump(m.revNAT, func(id uint16, val bpfgen.LxcLb4ReverseNat) {
		out[id] = Frontend{Addr: maputil.AddrFromBe32(val.Address), Port: maputil.PortFromBe16(val.Port), Proto: val.Proto}
	})
	if err != nil {
		return nil, fmt.Errorf("iterate sluice_lb4_reverse_nat_v1: %w", err)
	}
	return out, nil
}
