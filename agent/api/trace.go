package api

// Policy trace route:
//
//	POST /v1/policy/trace   TraceRequest → TraceResult: the verdicts the datapath gives a new flow

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// TracePeer names one end of a traced flow: exactly one field is set.
type TracePeer struct {
	// Pod is "namespace/name" (or "name" in namespace default).
	Pod string `json:"pod,omitempty"`
	// Labels select the identity whose labels hold them all (key=value,
	// the source prefix such as k8s: optional).
	Labels []string `json:"labels,omitempty"`
	// CIDR is an address or prefix (its first address is traced).
	CIDR string `json:"cidr,omitempty"`
	// Service is "namespace/name" (destination only): the flow goes to
	// each of its backends for the traced port.
	Service string `json:"service,omitempty"`
}

// Kind says which field of p is set ("" when none); more than one is an
// error.
func (p TracePeer) Kind() (string, error) {
	var set []string
	if p.Pod != "" {
		set = append(set, "pod")
	}
	if len(p.Labels) > 0 {
		set = append(set, "labels")
	}
	if p.CIDR != "" {
		set = append(set, "cidr")
	}
	if p.Service != "" {
		set = append(set, "service")
	}
	switch len(set) {
	case 0:
		return "", nil
	case 1:
		return set[0], nil
	}
	return "", fmt.Errorf("name the peer one way, not by %s", strings.Join(set, " and "))
}

// TraceRequest asks for the verdicts of a new flow from Src to Dst on a
// protocol and destination port (for ICMP the type).
type TraceRequest struct {
	Src      TracePeer `json:"src"`
	Dst      TracePeer `json:"dst"`
	Protocol string    `json:"protocol"` // TCP, UDP, ICMP or a number
	Port     uint16    `json:"port"`
}

// ParsePortProto parses "80/TCP", "53/udp", "80" (TCP) or "8/ICMP" (type).
func ParsePortProto(s string) (port uint16, proto string, err error) {
	ps, proto, ok := strings.Cut(s, "/")
	if !ok {
		proto = "TCP"
	}
	proto = strings.ToUpper(proto)
	n, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return 0, "", fmt.Errorf("port %q: want a number 0-65535 with an optional /TCP, /UDP or /ICMP", ps)
	}
	switch proto {
	case "TCP", "UDP", "ICMP":
	default:
		return 0, "", fmt.Errorf("protocol %q: want TCP, UDP or ICMP", proto)
	}
	return uint16(n), proto, nil
}

// TraceEnd is one end of a traced flow as the datapath sees it.
type TraceEnd struct {
	// Name describes the end: namespace/name of a pod, the CIDR, the
	// labels.
	Name string `json:"name"`
	// Address is the traced address ("" for a label peer: no address
	// rule is consulted).
	Address  string `json:"address,omitempty"`
	Identity uint32 `json:"identity"`
	// IdentityName is the reserved name of the identity, if any.
	IdentityName string   `json:"identityName,omitempty"`
	Labels       []string `json:"labels,omitempty"`
	// EndpointID is the local endpoint (0: not on this node, so its
	// policy is not enforced here).
	EndpointID uint16 `json:"endpointID,omitempty"`
}

// TraceVerdict is the verdict of one direction: an endpoint's egress or
// ingress policy.
type TraceVerdict struct {
	Direction string `json:"direction"` // egress or ingress
	Endpoint  string `json:"endpoint"`  // the pod whose policy decides
	// Verdict is FORWARDED, DROPPED or AUDIT, as flows say it.
	Verdict string `json:"verdict"`
	// Reason is the drop reason a flow would carry (policy-denied,
	// policy-deny-rule), empty when forwarded.
	Reason string `json:"reason,omitempty"`
	// Rule is the deciding rule, namespace/name[section:index]; empty
	// when none decided (Decision says which default applied).
	Rule   string `json:"rule,omitempty"`
	RuleID uint32 `json:"ruleID,omitempty"`
	// Decision is "rule <rule>", "default deny" or "no policy", as
	// `sluice observe` names it.
	Decision string `json:"decision"`
	Enforced bool   `json:"enforced"`
}

// TracePath is the flow to one destination (a service's backend, or the
// destination itself).
type TracePath struct {
	Dst TraceEnd `json:"dst"`
	// Port is the destination port policy sees (a service's backend port).
	Port uint16 `json:"port"`
	// Backend is the backend address a service translates to ("" without
	// a service); Terminating backends take no new flows.
	Backend     string `json:"backend,omitempty"`
	Terminating bool   `json:"terminating,omitempty"`
	// Egress and Ingress are the verdicts of the source's and the
	// destination's policies; nil when that end is not a local endpoint
	// (its policy is not enforced on this node).
	Egress  *TraceVerdict `json:"egress,omitempty"`
	Ingress *TraceVerdict `json:"ingress,omitempty"`
	// Allowed: neither direction drops (an audited drop passes).
	Allowed bool `json:"allowed"`
}

// TraceResult is the answer of a trace.
type TraceResult struct {
	Src      TraceEnd `json:"src"`
	Protocol string   `json:"protocol"`
	Port     uint16   `json:"port"`
	// Service is the traced service's frontend (address:port) and
	// ServiceName its namespace/name, if a service was traced.
	Service     string      `json:"service,omitempty"`
	ServiceName string      `json:"serviceName,omitempty"`
	Paths       []TracePath `json:"paths"`
	// Notes say what the trace could not take into account.
	Notes []string `json:"notes,omitempty"`
}

// Trace asks the agent for the verdicts of a new flow.
func (c *Client) Trace(ctx context.Context, req TraceRequest) (TraceResult, error) {
	var out TraceResult
	err := c.do(ctx, http.MethodPost, "/v1/policy/trace", req, &out)
	return out, err
}

// Decision names what decided a verdict the way `sluice observe` and
// `sluice policy trace` print it: "rule <rule>" when a rule decided, else
// "default deny" for a drop (or audited drop) and "no policy" for a
// forward.
func Decision(verdict, rule string) string {
	switch {
	case rule != "":
		return "rule " + rule
	case verdict == "DROPPED" || verdict == "AUDIT":
		return "default deny"
	}
	return "no policy"
}
