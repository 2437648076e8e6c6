// Package endpointmap is the datapath's endpoint map (sluice_endpoints_v1):
// one entry per pod on this node, keyed by its IPv4 address.
package endpointmap

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/addrfilter"
	"github.com/sluicenet/sluice/datapath/internal/maputil"
)

// Map is the endpoint map of a loaded datapath.
type Map struct {
	m *ebpf.Map

	mu     sync.Mutex         // endpoint writes against filter rebuilds
	filter *addrfilter.Filter // nil: no filter (SetFilter)
}

// New returns the handle of sluice_endpoints_v1.
func New(m *ebpf.Map) *Map { return &Map{m: m} }

// SetFilter makes m maintain filter (sluice_endpoints_filter_v1, with a bit
// for every endpoint address: the pod programs look a destination up only
// when its bit is set; see datapath/internal/addrfilter) and rebuilds it
// from the endpoint map. Call it before the pod programs run.
func (m *Map) SetFilter(filter *ebpf.Map) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.filter = addrfilter.New(filter, "sluice_endpoints_filter_v1")
	return m.rebuildFilter()
}

// rebuildFilter recomputes the filter from the endpoint map (m.mu held).
func (m *Map) rebuildFilter() error {
	var (
		key bpfgen.LxcEndpointKey
		val bpfgen.LxcEndpointInfo
		set []uint32
	)
	it := m.m.Iterate()
	for it.Next(&key, &val) {
		set = append(set, key.Ip)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate sluice_endpoints_v1: %w", err)
	}
	return m.filter.Rebuild(set)
}

// Endpoint is one entry of sluice_endpoints_v1: a pod on this node.
type Endpoint struct {
	IP       netip.Addr       // pod IPv4
	Ifindex  uint32           // host-side veth
	ID       uint16           // endpoint id
	Identity uint32           // security identity
	MAC      net.HardwareAddr // pod interface MAC
	NodeMAC  net.HardwareAddr // host-side veth MAC
}

func endpointKey(ip netip.Addr) (bpfgen.LxcEndpointKey, error) {
	if !ip.Is4() {
		return bpfgen.LxcEndpointKey{}, fmt.Errorf("endpoint address %s is not IPv4", ip)
	}
	return bpfgen.LxcEndpointKey{Ip: maputil.Be32(ip)}, nil
}

// Upsert writes ep into sluice_endpoints_v1.
func (m *Map) Upsert(ep Endpoint) error {
	key, err := endpointKey(ep.IP)
	if err != nil {
		return err
	}
	if len(ep.MAC) != 6 || len(ep.NodeMAC) != 6 {
		return fmt.Errorf("endpoint %s: MACs must be 6 bytes", ep.IP)
	}
	val := bpfgen.LxcEndpointInfo{Ifindex: ep.Ifindex, SecIdentity: ep.Identity, Id: ep.ID}
	copy(val.Mac[:], ep.MAC)
	copy(val.NodeMac[:], ep.NodeMAC)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.filter != nil {
		if err := m.filter.Add(key.Ip); err != nil {
			return err
		}
	}
	if err := m.m.Update(&key, &val, ebpf.UpdateAny); err != nil {
		return maputil.UpdateError("sluice_endpoints_v1", err)
	}
	return nil
}

// Delete removes ip from sluice_endpoints_v1; a missing entry is not an error.
func (m *Map) Delete(ip netip.Addr) error {
	key, err := endpointKey(ip)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := maputil.Delete(m.m, &key); err != nil {
		return fmt.Errorf("delete endpoint %s: %w", ip, err)
	}
	if m.filter != nil && m.filter.Removed() {
		return m.rebuildFilter()
	}
	return nil
}

// List lists sluice_endpoints_v1.
func (m *Map) List() ([]Endpoint, error) {
	var (
		key bpfgen.LxcEndpointKey
		val bpfgen.LxcEndpointInfo
		out []Endpoint
	)
	it := m.m.Iterate()
	for it.Next(&key, &val) {
		out = append(out, endpointOf(key, val))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate sluice_endpoints_v1: %w", err)
	}
	return out, nil
}

// Lookup returns the entry of ip, as the datapath looks a local endpoint up
// by address; ok is false when there is none.
func (m *Map) Lookup(ip netip.Addr) (ep Endpoint, ok bool, err error) {
	key, err := endpointKey(ip)
	if err != nil {
		return Endpoint{}, false, err
	}
	var val bpfgen.LxcEndpointInfo
	err = m.m.Lookup(&key, &val)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return Endpoint{}, false, nil
	}
	if err != nil {
		return Endpoint{}, false, fmt.Errorf("lookup sluice_endpoints_v1: %w", err)
	}
	return endpointOf(key, val), true, nil
}

func endpointOf(key bpfgen.LxcEndpointKey, val bpfgen.LxcEndpointInfo) Endpoint {
	return Endpoint{
		IP:       maputil.AddrFromBe32(key.Ip),
		Ifindex:  val.Ifindex,
		ID:       val.Id,
		Identity: val.SecIdentity,
		MAC:      append(net.HardwareAddr(nil), val.Mac[:]...),
		NodeMAC:  append(net.HardwareAddr(nil), val.NodeMac[:]...),
	}
}
