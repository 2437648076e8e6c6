package endpointmgr

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/endpointmap"
)

// Errors of the manager, for callers to map to API statuses with errors.Is.
var (
	ErrInvalid  = errors.New("invalid endpoint")
	ErrConflict = errors.New("endpoint conflict")
	// ErrNotFound is the API's sentinel, so that callers that know only
	// the api package (the identity manager) can tell a gone endpoint.
	ErrNotFound = api.ErrNotFound
	ErrNoFreeID = errors.New("no free endpoint id")
)

// MaxID is the highest endpoint ID; IDs are allocated in 1..MaxID.
const MaxID = math.MaxUint16

// entry is an endpoint with its parsed addresses.
type entry struct {
	ep      api.Endpoint
	ip      netip.Addr
	mac     net.HardwareAddr
	hostMAC net.HardwareAddr
	// identity is the security identity set by SetIdentity (0 until then).
	identity uint32
}

// parse validates ep and parses its addresses. Address fields of the returned
// entry's endpoint are normalised (canonical IPv4 and lower-case MACs).
func parse(ep api.Endpoint) (*entry, error) {
	if err := ep.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	ip, err := netip.ParseAddr(ep.IPv4)
	if err != nil || !ip.Is4() {
		return nil, fmt.Errorf("%w: ipv4: %q is not an IPv4 address", ErrInvalid, ep.IPv4)
	}
	mac, err := parseMAC("mac", ep.MAC)
	if err != nil {
		return nil, err
	}
	hostMAC, err := parseMAC("hostMAC", ep.HostMAC)
	if err != nil {
		return nil, err
	}
	if ep.HostIfIndex > math.MaxInt32 {
		return nil, fmt.Errorf("%w: hostIfIndex: %d is out of range", ErrInvalid, ep.HostIfIndex)
	}
	ep.IPv4 = ip.String()
	ep.MAC = mac.String()
	ep.HostMAC = hostMAC.String()
	ep.Counters = nil
	ep.PortMappings = normalizePortMappings(ep.PortMappings)
	return &entry{ep: ep, ip: ip, mac: mac, hostMAC: hostMAC}, nil
}

func parseMAC(field, s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return nil, fmt.Errorf("%w: %s: %q is not an Ethernet MAC address", ErrInvalid, field, s)
	}
	return mac, nil
}

// datapath returns the BPF entry of e.
func (e *entry) datapath() endpointmap.Endpoint {
	return endpointmap.Endpoint{
		IP:       e.ip,
		Ifindex:  uint32(e.ep.HostIfIndex),
		ID:       e.ep.ID,
		Identity: e.identity,
		MAC:      e.mac,
		NodeMAC:  e.hostMAC,
	}
}

// allocateID returns the lowest ID in 1..MaxID that used does not hold.
func allocateID(used func(uint16) bool) (uint16, error) {
	for id := 1; id <= MaxID; id++ {
		if !used(uint16(id)) {
			return uint16(id), nil
		}
	}
	return 0, ErrNoFreeID
}
