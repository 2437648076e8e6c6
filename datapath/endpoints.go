package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"
)

// ErrMapFull is returned when a map has no room for a new entry.
var ErrMapFull = errors.New("bpf map is full")

// Endpoint is one entry of sluice_endpoints: a pod on this node.
type Endpoint struct {
	IP       netip.Addr       // pod IPv4
	Ifindex  uint32           // host-side veth
	ID       uint16           // endpoint id
	Identity uint32           // security identity
	MAC      net.HardwareAddr // pod interface MAC
	NodeMAC  net.HardwareAddr // host-side veth MAC
}

func endpointKey(ip netip.Addr) (lxcEndpointKey, error) {
	if !ip.Is4() {
		return lxcEndpointKey{}, fmt.Errorf("endpoint address %s is not IPv4", ip)
	}
	b := ip.As4()
	// The key holds the address in network byte order; Go writes uint32 in
	// host (little-endian) order, so read the bytes as little endian.
	return lxcEndpointKey{Ip: binary.LittleEndian.Uint32(b[:])}, nil
}

func keyAddr(k lxcEndpointKey) netip.Addr {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], k.Ip)
	return netip.AddrFrom4(b)
}

// UpsertEndpoint writes ep into sluice_endpoints.
func (d *Datapath) UpsertEndpoint(ep Endpoint) error {
	key, err := endpointKey(ep.IP)
	if err != nil {
		return err
	}
	if len(ep.MAC) != 6 || len(ep.NodeMAC) != 6 {
		return fmt.Errorf("endpoint %s: MACs must be 6 bytes", ep.IP)
	}
	val := lxcEndpointInfo{Ifindex: ep.Ifindex, SecIdentity: ep.Identity, Id: ep.ID}
	copy(val.Mac[:], ep.MAC)
	copy(val.NodeMac[:], ep.NodeMAC)
	if err := d.objs.SluiceEndpoints.Update(&key, &val, ebpf.UpdateAny); err != nil {
		return mapError("sluice_endpoints", err)
	}
	return nil
}

// DeleteEndpoint removes ip from sluice_endpoints; a missing entry is not an error.
func (d *Datapath) DeleteEndpoint(ip netip.Addr) error {
	key, err := endpointKey(ip)
	if err != nil {
		return err
	}
	if err := d.objs.SluiceEndpoints.Delete(&key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete endpoint %s: %w", ip, err)
	}
	return nil
}

// Endpoints lists sluice_endpoints.
func (d *Datapath) Endpoints() ([]Endpoint, error) {
	var (
		key lxcEndpointKey
		val lxcEndpointInfo
		out []Endpoint
	)
	it := d.objs.SluiceEndpoints.Iterate()
	for it.Next(&key, &val) {
		out = append(out, Endpoint{
			IP:       keyAddr(key),
			Ifindex:  val.Ifindex,
			ID:       val.Id,
			Identity: val.SecIdentity,
			MAC:      append(net.HardwareAddr(nil), val.Mac[:]...),
			NodeMAC:  append(net.HardwareAddr(nil), val.NodeMac[:]...),
		})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate sluice_endpoints: %w", err)
	}
	return out, nil
}

func mapError(name string, err error) error {
	if errors.Is(err, unixE2BIG) {
		return fmt.Errorf("update %s: %w", name, ErrMapFull)
	}
	return fmt.Errorf("update %s: %w", name, err)
}
