package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
)

// LBFrontend is an address clients reach a service on. A NodePort frontend
// has the unspecified address 0.0.0.0.
type LBFrontend struct {
	Addr  netip.Addr
	Port  uint16
	Proto uint8 // IP protocol number (6 TCP, 17 UDP)
}

func (fe LBFrontend) String() string {
	return fmt.Sprintf("%s/%d", netip.AddrPortFrom(fe.Addr, fe.Port), fe.Proto)
}

// LBFlags are the flags of a service's master entry (mirror LB_FLAG_* in
// bpf/lib/lb.h).
type LBFlags uint16

// Service flags.
const (
	LBFlagNodePort  LBFlags = 1 << 0 // NodePort frontend (not translated by the socket hooks)
	LBFlagExternal  LBFlags = 1 << 1 // ExternalIP or LoadBalancer frontend
	LBFlagLocalOnly LBFlags = 1 << 2 // traffic policy Local: Backends are node-local ones
	LBFlagAffinity  LBFlags = 1 << 3 // sessionAffinity ClientIP for AffinityTimeout
)

// LBService is what a frontend is translated to.
type LBService struct {
	RevNATID        uint16
	Flags           LBFlags
	AffinityTimeout time.Duration // whole seconds; used with LBFlagAffinity
	Backends        []uint32      // backend IDs for slots 1..n
}

// LBBackend is one backend (an endpoint address of a service port).
type LBBackend struct {
	Addr        netip.Addr
	Port        uint16
	Proto       uint8
	Terminating bool
}

const lbBackendTerminating = 1 << 0 // LB_BACKEND_TERMINATING

// be32 returns the IPv4 address as the uint32 whose in-memory (little-endian)
// bytes are the address in network order, as the C side stores __be32.
func be32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.LittleEndian.Uint32(b[:])
}

func addrFromBe32(v uint32) netip.Addr {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// be16 converts a port to the __be16 the C side stores.
func be16(p uint16) uint16 { return p<<8 | p>>8 }

func portFromBe16(v uint16) uint16 { return v<<8 | v>>8 }

func checkV4(what string, a netip.Addr) error {
	if !a.Is4() {
		return fmt.Errorf("%s address %s is not IPv4", what, a)
	}
	return nil
}

func lbKey(fe LBFrontend, slot uint16) lxcLb4Key {
	return lxcLb4Key{Address: be32(fe.Addr), Dport: be16(fe.Port), Proto: fe.Proto, BackendSlot: slot}
}

func frontendOf(k lxcLb4Key) LBFrontend {
	return LBFrontend{Addr: addrFromBe32(k.Address), Port: portFromBe16(k.Dport), Proto: k.Proto}
}

// UpsertLBBackend writes backend id.
func (d *Datapath) UpsertLBBackend(id uint32, b LBBackend) error {
	if err := checkV4("backend", b.Addr); err != nil {
		return err
	}
	if id == 0 {
		return errors.New("backend id 0 is reserved")
	}
	val := lxcLb4Backend{Address: be32(b.Addr), Port: be16(b.Port), Proto: b.Proto}
	if b.Terminating {
		val.Flags = lbBackendTerminating
	}
	if err := d.objs.SluiceLb4BackendsV1.Update(&id, &val, ebpf.UpdateAny); err != nil {
		return mapError("sluice_lb4_backends_v1", err)
	}
	return nil
}

// DeleteLBBackend removes backend id; a missing backend is not an error.
// Flows conntrack pinned to it select a new backend on their next packet.
func (d *Datapath) DeleteLBBackend(id uint32) error {
	if err := d.objs.SluiceLb4BackendsV1.Delete(&id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete backend %d: %w", id, err)
	}
	return nil
}

// LBBackends lists the backends map.
func (d *Datapath) LBBackends() (map[uint32]LBBackend, error) {
	var (
		id  uint32
		val lxcLb4Backend
	)
	out := make(map[uint32]LBBackend)
	it := d.objs.SluiceLb4BackendsV1.Iterate()
	for it.Next(&id, &val) {
		out[id] = LBBackend{
			Addr:        addrFromBe32(val.Address),
			Port:        portFromBe16(val.Port),
			Proto:       val.Proto,
			Terminating: val.Flags&lbBackendTerminating != 0,
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate sluice_lb4_backends_v1: %w", err)
	}
	return out, nil
}

// UpsertLBService writes the frontend fe: slots 1..n first, then the master
// (slot 0), then deletes slots beyond n, so the programs never see a master
// pointing at missing slots.
func (d *Datapath) UpsertLBService(fe LBFrontend, s LBService) error {
	if err := checkV4("frontend", fe.Addr); err != nil {
		return err
	}
	if len(s.Backends) > math.MaxUint16 {
		return fmt.Errorf("frontend %s: %d backends, at most %d", fe, len(s.Backends), math.MaxUint16)
	}
	m := d.objs.SluiceLb4ServicesV1
	oldCount := 0
	var old lxcLb4Service
	key := lbKey(fe, 0)
	if err := m.Lookup(&key, &old); err == nil {
		oldCount = int(old.BackendId)
	} else if !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("look up frontend %s: %w", fe, err)
	}
	for i, id := range s.Backends {
		key := lbKey(fe, uint16(i+1))
		val := lxcLb4Service{BackendId: id}
		if err := m.Update(&key, &val, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("frontend %s slot %d: %w", fe, i+1, mapError("sluice_lb4_services_v1", err))
		}
	}
	timeout := uint64((s.AffinityTimeout + time.Second - 1) / time.Second)
	if timeout > math.MaxUint32 {
		timeout = math.MaxUint32
	}
	master := lxcLb4Service{
		BackendId:       uint32(len(s.Backends)),
		RevNatId:        s.RevNATID,
		Flags:           uint16(s.Flags),
		AffinityTimeout: uint32(timeout),
	}
	if err := m.Update(&key, &master, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("frontend %s: %w", fe, mapError("sluice_lb4_services_v1", err))
	}
	return d.deleteSlots(fe, len(s.Backends)+1, oldCount)
}

// deleteSlots deletes slots from..to and any further ones up to the first
// missing slot (left over by an interrupted writer).
func (d *Datapath) deleteSlots(fe LBFrontend, from, to int) error {
	for slot := from; slot <= math.MaxUint16; slot++ {
		key := lbKey(fe, uint16(slot))
		err := d.objs.SluiceLb4ServicesV1.Delete(&key)
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

// DeleteLBService removes the frontend fe, master first, then its slots; a
// missing frontend is not an error.
func (d *Datapath) DeleteLBService(fe LBFrontend) error {
	if err := checkV4("frontend", fe.Addr); err != nil {
		return err
	}
	m := d.objs.SluiceLb4ServicesV1
	key := lbKey(fe, 0)
	var old lxcLb4Service
	count := 0
	if err := m.Lookup(&key, &old); err == nil {
		count = int(old.BackendId)
		if err := m.Delete(&key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete frontend %s: %w", fe, err)
		}
	} else if !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("look up frontend %s: %w", fe, err)
	}
	return d.deleteSlots(fe, 1, count)
}

// LBServices lists the services map: every master entry with the backend IDs
// of its slots (0 for a slot that is missing).
func (d *Datapath) LBServices() (map[LBFrontend]LBService, error) {
	var (
		key lxcLb4Key
		val lxcLb4Service
	)
	masters := make(map[LBFrontend]lxcLb4Service)
	slots := make(map[LBFrontend]map[uint16]uint32)
	it := d.objs.SluiceLb4ServicesV1.Iterate()
	for it.Next(&key, &val) {
		fe := frontendOf(key)
		if key.BackendSlot == 0 {
			masters[fe] = val
			continue
		}
		if slots[fe] == nil {
			slots[fe] = make(map[uint16]uint32)
		}
		slots[fe][key.BackendSlot] = val.BackendId
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate sluice_lb4_services_v1: %w", err)
	}
	out := make(map[LBFrontend]LBService, len(masters))
	for fe, m := range masters {
		s := LBService{
			RevNATID:        m.RevNatId,
			Flags:           LBFlags(m.Flags),
			AffinityTimeout: time.Duration(m.AffinityTimeout) * time.Second,
			Backends:        make([]uint32, m.BackendId),
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
func (d *Datapath) UpsertRevNAT(id uint16, fe LBFrontend) error {
	if err := checkV4("reverse NAT", fe.Addr); err != nil {
		return err
	}
	val := lxcLb4ReverseNat{Address: be32(fe.Addr), Port: be16(fe.Port), Proto: fe.Proto}
	if err := d.objs.SluiceLb4ReverseNatV1.Update(&id, &val, ebpf.UpdateAny); err != nil {
		return mapError("sluice_lb4_reverse_nat_v1", err)
	}
	return nil
}

// DeleteRevNAT removes reverse-NAT id; a missing entry is not an error.
func (d *Datapath) DeleteRevNAT(id uint16) error {
	if err := d.objs.SluiceLb4ReverseNatV1.Delete(&id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete reverse NAT %d: %w", id, err)
	}
	return nil
}

// RevNATs lists the reverse-NAT map.
func (d *Datapath) RevNATs() (map[uint16]LBFrontend, error) {
	var (
		id  uint16
		val lxcLb4ReverseNat
	)
	out := make(map[uint16]LBFrontend)
	it := d.objs.SluiceLb4ReverseNatV1.Iterate()
	for it.Next(&id, &val) {
		out[id] = LBFrontend{Addr: addrFromBe32(val.Address), Port: portFromBe16(val.Port), Proto: val.Proto}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate sluice_lb4_reverse_nat_v1: %w", err)
	}
	return out, nil
}
