package tracing

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// maxConnectPorts bounds the ports of a DPort/NotDPort filter (ranges
// included).
const maxConnectPorts = 64

// Protocol numbers of spec.connects' Protocol values.
const (
	protoTCP = 6
	protoUDP = 17
)

// connectOps maps Tetragon's spellings of the socket operators that apply
// to a connect's destination.
var connectOps = map[string]string{
	"DAddr": "DAddr", "Daddr": "DAddr", "daddr": "DAddr",
	"NotDAddr": "NotDAddr", "NotDaddr": "NotDAddr", "notdaddr": "NotDAddr",
	"DPort": "DPort", "Dport": "DPort", "dport": "DPort",
	"NotDPort": "NotDPort", "NotDport": "NotDPort", "notdport": "NotDPort",
	"Protocol": "Protocol", "protocol": "Protocol",
}

// connect compiles one spec.connects entry.
func (c *compiler) connect(path string, e ConnectSpec) {
	if len(e.Selectors) == 0 {
		c.add(path, errors.New("required: a connect entry needs at least one selector"))
		return
	}
	var sels []ConnectSelector
	for j := range e.Selectors {
		if sel, ok := c.connectSelector(fmt.Sprintf("%s[%d]", path, j), &e.Selectors[j]); ok {
			sels = append(sels, sel)
		}
	}
	c.out.Connects = append(c.out.Connects, sels)
}

func (c *compiler) connectSelector(path string, s *Selector) (ConnectSelector, bool) {
	nerr := len(c.errs)
	c.unsupportedFilters(path, s)
	sel := ConnectSelector{ProcessFilters: c.processFilters(path, s)}
	seen := map[string]bool{}
	for i, m := range s.MatchArgs {
		c.destFilter(fmt.Sprintf("%s.matchArgs[%d]", path, i), m, &sel, seen)
	}
	// The connect rules test binaries and destinations only.
	for _, f := range []field{{"matchPIDs", len(s.MatchPIDs) > 0}, {"matchNamespaces", len(s.MatchNamespaces) > 0},
		{"matchCapabilities", len(s.MatchCapabilities) > 0}} {
		if f.set {
			c.add(path+"."+f.name, fmt.Errorf("in spec.connects: %w", ErrNotYet))
		}
	}
	a := c.actions(path, s.MatchActions, hookConnect)
	c.notHere(path, s.MatchActions, a.RateLimit, "spec.connects")
	sel.Action, sel.Signal, sel.RateLimit = a.Action, a.Signal, a.RateLimit
	return sel, len(c.errs) == nerr
}

// destFilter compiles a matchArgs entry of a connect selector: index 0,
// the destination, with a socket operator.
func (c *compiler) destFilter(path string, m ArgSelector, sel *ConnectSelector, seen map[string]bool) {
	if m.Index != 0 || len(m.Args) > 0 {
		c.addf(path+".index", "spec.connects has one argument: index 0, the destination")
		return
	}
	op, ok := connectOps[m.Operator]
	switch {
	case !ok && (m.Operator == "DPortPriv" || m.Operator == "NotDPortPriv" || m.Operator == "NotDportPriv"):
		c.add(path+".operator", fmt.Errorf("%s: %w", m.Operator, ErrNotYet))
		return
	case !ok:
		c.addf(path+".operator", "%q: spec.connects takes DAddr, NotDAddr, DPort, NotDPort or Protocol "+
			"(the source is not chosen yet when connect() is called)", m.Operator)
		return
	case len(m.Values) == 0:
		c.addf(path+".values", "required")
		return
	}
	kind := strings.TrimPrefix(op, "Not")
	if seen[kind] {
		c.addf(path+".operator", "one %s filter per selector", kind)
		return
	}
	seen[kind] = true
	for i, v := range m.Values {
		vp := fmt.Sprintf("%s.values[%d]", path, i)
		var err error
		switch kind {
		case "DAddr":
			var p netip.Prefix
			if p, err = parseDest(v); err == nil {
				sel.Dests, sel.NotDests = append(sel.Dests, p), op == "NotDAddr"
			}
		case "DPort":
			var ports []uint16
			if ports, err = parsePorts(v); err == nil {
				sel.Ports, sel.NotPorts = append(sel.Ports, ports...), op == "NotDPort"
			}
		default:
			var proto uint8
			if proto, err = parseProtocol(v); err == nil && !slices.Contains(sel.Protocols, proto) {
				sel.Protocols = append(sel.Protocols, proto)
			}
		}
		if err != nil {
			c.add(vp, err)
		}
	}
	if len(sel.Ports) > maxConnectPorts {
		c.addf(path+".values", "at most %d ports per filter, got %d", maxConnectPorts, len(sel.Ports))
	}
}

// parseDest parses an IPv4 address or CIDR.
func parseDest(v string) (netip.Prefix, error) {
	var p netip.Prefix
	var err error
	if strings.Contains(v, "/") {
		p, err = netip.ParsePrefix(v)
	} else {
		var a netip.Addr
		if a, err = netip.ParseAddr(v); err == nil {
			p = netip.PrefixFrom(a, a.BitLen())
		}
	}
	switch {
	case err != nil:
		return p, fmt.Errorf("%q is not an address or CIDR", v)
	case p.Addr().Is4In6() && p.Bits() >= 96:
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	case p.Addr().Is6():
		return p, fmt.Errorf("%q: IPv6 destinations: the connect rules run in the IPv4 hooks (connect4, sendmsg4): %w", v, ErrNotYet)
	}
	return p.Masked(), nil
}

// parsePorts parses a port (1..65535) or a range "min:max".
func parsePorts(v string) ([]uint16, error) {
	lo, hi, isRange := strings.Cut(v, ":")
	if !isRange {
		hi = lo
	}
	a, aerr := strconv.ParseUint(lo, 10, 16)
	b, berr := strconv.ParseUint(hi, 10, 16)
	if aerr != nil || berr != nil || a == 0 || a > b {
		return nil, fmt.Errorf("%q is not a port 1..65535 or a range min:max", v)
	}
	if b-a >= maxConnectPorts {
		return nil, fmt.Errorf("%q: at most %d ports per filter", v, maxConnectPorts)
	}
	var ports []uint16
	for p := a; p <= b; p++ {
		ports = append(ports, uint16(p))
	}
	return ports, nil
}

// parseProtocol parses TCP, UDP (IPPROTO_TCP, IPPROTO_UDP, 6, 17).
func parseProtocol(v string) (uint8, error) {
	switch strings.TrimPrefix(strings.ToUpper(v), "IPPROTO_") {
	case "TCP", "6":
		return protoTCP, nil
	case "UDP", "17":
		return protoUDP, nil
	}
	return 0, fmt.Errorf("%q: only TCP and UDP go through the cgroup connect4/sendmsg4 hooks", v)
}
