package tracingmgr

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/policy"
	"github.com/sluicenet/sluice/policy/tracing"
)

// connRule is the connect rule of one spec.connects selector (and
// protocol) without its slot, group, policy, scope, mode and class ids.
type connRule struct {
	entry          int // index in Compiled.Connects
	rule           datapath.ConnectRule
	binary, parent classRefs
}

// buildConnectRules turns a compiled policy's connects into connect rules:
// one per selector, or one per protocol when a selector names one of TCP
// and UDP. An error names the field the cgroup hooks cannot test.
func buildConnectRules(c *tracing.Compiled) ([]connRule, error) {
	var out []connRule
	for i, sels := range c.Connects {
		for j, sel := range sels {
			field := fmt.Sprintf("spec.connects[%d].selectors[%d]", i, j)
			if err := noProcessFilters(field, sel.ProcessFilters); err != nil {
				return nil, err
			}
			if sel.RateLimit != 0 {
				return nil, fmt.Errorf("%s.matchActions.rateLimit: not supported in spec.connects by this agent", field)
			}
			binary, parent, err := processClasses(field, sel.ProcessFilters)
			if err != nil {
				return nil, err
			}
			protos, err := connectProtocols(sel.Protocols)
			if err != nil {
				return nil, fmt.Errorf("%s.matchArgs: %w", field, err)
			}
			r := datapath.ConnectRule{NotDests: sel.NotDests, Ports: sortedUnique(sel.Ports), NotPorts: sel.NotPorts}
			if r.Dests, err = connectDests(sel); err != nil {
				return nil, fmt.Errorf("%s.matchArgs: %w", field, err)
			}
			if r.Action, r.Signal, err = ruleAction(sel.Action, sel.Signal, true); err != nil {
				return nil, fmt.Errorf("%s.matchActions: %w", field, err)
			}
			for _, p := range protos {
				r.Protocol = p
				out = append(out, connRule{entry: i, rule: r, binary: binary, parent: parent})
			}
		}
	}
	return out, nil
}

// connectDests checks a selector's destinations and ports and returns the
// prefixes masked: IPv4 (the hooks are connect4 and sendmsg4), NotDAddr and
// NotDPort with values, no port 0.
func connectDests(sel tracing.ConnectSelector) ([]netip.Prefix, error) {
	switch {
	case sel.NotDests && len(sel.Dests) == 0:
		return nil, errors.New("NotDAddr: values required")
	case sel.NotPorts && len(sel.Ports) == 0:
		return nil, errors.New("NotDPort: values required")
	case slices.Contains(sel.Ports, 0):
		return nil, errors.New("port 0: no connect goes to port 0")
	}
	var out []netip.Prefix
	for _, p := range sel.Dests {
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("%s: not an IPv4 prefix (the connect hooks are connect4 and sendmsg4)", p)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// connectProtocols returns the protocols of the rules of a selector: 0
// (both) for none or both of TCP and UDP.
func connectProtocols(ps []uint8) ([]uint8, error) {
	ps = sortedUnique(ps)
	for _, p := range ps {
		if p != policy.ProtoTCP && p != policy.ProtoUDP {
			return nil, fmt.Errorf("protocol %d: the connect hooks see TCP (%d) and UDP (%d)", p, policy.ProtoTCP, policy.ProtoUDP)
		}
	}
	if len(ps) == 0 || len(ps) == 2 {
		return []uint8{0}, nil
	}
	return ps, nil
}
