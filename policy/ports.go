package policy

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// IP protocol numbers used in map keys. 0 means any protocol.
const (
	ProtoAny    uint8 = 0
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
)

// ProtoName returns a protocol's name.
func ProtoName(p uint8) string {
	switch p {
	case ProtoAny:
		return "ANY"
	case ProtoICMP:
		return "ICMP"
	case ProtoTCP:
		return "TCP"
	case ProtoUDP:
		return "UDP"
	case ProtoICMPv6:
		return "ICMPv6"
	}
	return "proto-" + strconv.Itoa(int(p))
}

// PortPrefix is an aligned block of ports: the ports whose top PrefixLen
// bits equal Port's (PrefixLen 16 is one port, 0 every port).
type PortPrefix struct {
	Port      uint16
	PrefixLen uint8
}

// Last returns the block's last port.
func (p PortPrefix) Last() uint16 {
	return p.Port | uint16(uint32(1)<<(16-p.PrefixLen)-1)
}

// PortRangeToPrefixes splits the inclusive range lo..hi into the fewest
// aligned blocks (the maximal ones), in ascending order. It returns nil when
// lo > hi.
func PortRangeToPrefixes(lo, hi uint16) []PortPrefix {
	if lo > hi {
		return nil
	}
	var out []PortPrefix
	cur := uint32(lo)
	end := uint32(hi)
	for cur <= end {
		// Largest block aligned at cur that does not pass end.
		size := uint32(1) << 16
		if cur != 0 {
			size = uint32(1) << bits.TrailingZeros32(cur)
		}
		for cur+size-1 > end {
			size >>= 1
		}
		out = append(out, PortPrefix{Port: uint16(cur), PrefixLen: uint8(16 - bits.TrailingZeros32(size))})
		cur += size
	}
	return out
}

// validPortName reports whether s is a valid IANA service name (what
// Kubernetes accepts as a container port name).
func validPortName(s string) bool {
	if len(s) == 0 || len(s) > 15 || strings.HasPrefix(s, "-") || strings.HasSuffix(s, "-") || strings.Contains(s, "--") {
		return false
	}
	letter := false
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z':
			letter = true
		case c >= '0' && c <= '9', c == '-':
		default:
			return false
		}
	}
	return letter
}

// NamedPort is a container port by name.
type NamedPort struct {
	Port  uint16
	Proto uint8
}

// l4 is one compiled protocol/port match. proto 0 is any protocol (then the
// ports are all); lo..hi is the inclusive range, 0..0 for all ports. A
// named port has name set and is resolved per endpoint.
type l4 struct {
	proto  uint8
	lo, hi uint16
	name   string
}

// icmpTypes maps Cilium's ICMP type names.
var icmpTypes = map[string][2]int{ // name → {IPv4 type, IPv6 type}; -1 none
	"EchoReply":              {0, 129},
	"DestinationUnreachable": {3, 1},
	"Redirect":               {5, 137},
	"EchoRequest":            {8, 128},
	"TimeExceeded":           {11, 3},
	"ParameterProblem":       {12, 4},
	"Timestamp":              {13, -1},
	"TimestampReply":         {14, -1},
	"PacketTooBig":           {-1, 2},
	"RouterSolicitation":     {10, 133},
	"RouterAdvertisement":    {9, 134},
	"NeighborSolicitation":   {-1, 135},
	"NeighborAdvertisement":  {-1, 136},
}

// compilePortProtocol turns a PortProtocol into l4 matches. ANY with a port
// becomes one TCP and one UDP match.
func compilePortProtocol(pp PortProtocol) ([]l4, string, error) {
	var protos []uint8
	switch strings.ToUpper(pp.Protocol) {
	case "", "ANY":
		protos = []uint8{ProtoTCP, ProtoUDP}
	case "TCP":
		protos = []uint8{ProtoTCP}
	case "UDP":
		protos = []uint8{ProtoUDP}
	default:
		return nil, "protocol", fmt.Errorf("%q is not a supported protocol (TCP, UDP, ANY)", pp.Protocol)
	}
	var lo, hi uint16
	var name string
	s := pp.Port.String()
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 65535 {
			return nil, "port", fmt.Errorf("%q is not a valid port", s)
		}
		lo, hi = uint16(n), uint16(n)
	} else if s == "" {
		lo, hi = 0, 0
	} else if validPortName(s) {
		name = s
	} else {
		return nil, "port", fmt.Errorf("%q is not a valid port", s)
	}
	if pp.EndPort != 0 {
		switch {
		case name != "":
			return nil, "endPort", fmt.Errorf("endPort needs a numeric port, not %q", name)
		case lo == 0:
			return nil, "endPort", fmt.Errorf("endPort needs a non-zero port")
		case pp.EndPort < int32(lo) || pp.EndPort > 65535:
			return nil, "endPort", fmt.Errorf("%d must be between port %d and 65535", pp.EndPort, lo)
		}
		hi = uint16(pp.EndPort)
	}
	if lo == 0 && name == "" && len(protos) == 2 {
		return []l4{{proto: ProtoAny}}, "", nil
	}
	out := make([]l4, 0, len(protos))
	for _, p := range protos {
		out = append(out, l4{proto: p, lo: lo, hi: hi, name: name})
	}
	return out, "", nil
}

// compileICMP turns an ICMP field into an l4 match: the type goes into the
// port slot (lo = hi = type).
func compileICMP(f ICMPField) (l4, string, error) {
	proto := ProtoICMP
	fam := 0
	switch f.Family {
	case "", "IPv4":
	case "IPv6":
		proto, fam = ProtoICMPv6, 1
	default:
		return l4{}, "family", fmt.Errorf("%q is not a valid family (IPv4, IPv6)", f.Family)
	}
	if f.Type == nil {
		return l4{}, "type", fmt.Errorf("required")
	}
	s := f.Type.String()
	t, err := strconv.Atoi(s)
	if err != nil {
		ts, ok := icmpTypes[s]
		if !ok || ts[fam] < 0 {
			return l4{}, "type", fmt.Errorf("%q is not a valid ICMP type for %s", s, ProtoName(proto))
		}
		t = ts[fam]
	}
	if t < 0 || t > 255 {
		return l4{}, "type", fmt.Errorf("%d is not a valid ICMP type", t)
	}
	return l4{proto: proto, lo: uint16(t), hi: uint16(t)}, "", nil
}
