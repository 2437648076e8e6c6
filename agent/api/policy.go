package api

// Policy, identity and flow routes:
//
//	GET /v1/policy/status                              accepted and rejected policies with reasons
//	GET /v1/policy/endpoint/{containerID}/{ifName}     an endpoint's resolved policy
//	GET /v1/identities                                 known security identities
//	GET /v1/flows?last=N&since=RFC3339|duration&follow=true   flows as NDJSON (streamed with follow)

import "time"

// PolicyStatus says whether the agent accepted a policy object.
type PolicyStatus struct {
	Kind      string   `json:"kind"`
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name"`
	File      string   `json:"file,omitempty"`
	Accepted  bool     `json:"accepted"`
	Reason    string   `json:"reason,omitempty"` // why it was rejected, naming the field
	Warnings  []string `json:"warnings,omitempty"`
	// DefaultDeny lists the directions (ingress, egress) in which the
	// endpoints a rejected policy selects get default deny instead
	// (--rejected-policy=deny, the default: fail closed).
	DefaultDeny []string `json:"defaultDeny,omitempty"`
	// Message is the status in one line, as the policy's status condition
	// says it: "accepted", or "rejected: <reason>; enforcing default deny
	// for ingress and egress".
	Message string `json:"message,omitempty"`
	// Endpoints counts the local endpoints the policy selects.
	Endpoints int `json:"endpoints"`
}

// PolicyRule is one resolved policy map entry of an endpoint.
type PolicyRule struct {
	Direction string `json:"direction"` // ingress or egress
	Peer      string `json:"peer"`      // identity number or reserved name; "any"
	PeerID    uint32 `json:"peerID"`
	Protocol  string `json:"protocol"` // ANY, TCP, UDP, ICMP
	Ports     string `json:"ports,omitempty"`
	Verdict   string `json:"verdict"` // allow or deny
	Rule      string `json:"rule"`    // namespace/name[index] of the rule
	RuleID    uint32 `json:"ruleID"`
}

// PolicyAddr is one node of an endpoint's address trie (address rules:
// ipBlock, or CIDR peers with address semantics): the rules its address set
// holds, none for an except hole.
type PolicyAddr struct {
	Direction string   `json:"direction"` // ingress or egress
	Prefix    string   `json:"prefix"`
	Set       uint32   `json:"set"`               // address-set identity; 0: no rule (an except)
	SetName   string   `json:"setName,omitempty"` // addr-set:<n>, the peer of the set's entries in Rules
	Rules     []string `json:"rules"`             // namespace/name[section:index] of each rule of the set
}

// EndpointPolicy is an endpoint's resolved policy.
type EndpointPolicy struct {
	ContainerID     string       `json:"containerID"`
	IfName          string       `json:"ifName"`
	EndpointID      uint16       `json:"endpointID"`
	Pod             string       `json:"pod,omitempty"`
	Identity        uint32       `json:"identity"`
	Labels          []string     `json:"labels"`
	IngressEnforced bool         `json:"ingressEnforced"`
	EgressEnforced  bool         `json:"egressEnforced"`
	Audit           bool         `json:"audit"`
	SelectedBy      []string     `json:"selectedBy"`
	Rules           []PolicyRule `json:"rules"`
	// Addrs are the address trie nodes; Rules holds their sets' entries
	// (peer: the set identity).
	Addrs []PolicyAddr `json:"addrs,omitempty"`
	// MapEntries counts the kernel map entries (port blocks) written.
	MapEntries int `json:"mapEntries"`
}

// Identity is a security identity and its labels.
type Identity struct {
	ID     uint32   `json:"id"`
	Name   string   `json:"name,omitempty"` // reserved name
	Labels []string `json:"labels"`
	Refs   int      `json:"refs"`
}

// Flow is one policy or forwarding verdict seen by the datapath.
type Flow struct {
	Time        time.Time `json:"time"`
	Verdict     string    `json:"verdict"` // FORWARDED, DROPPED, AUDIT
	Reason      string    `json:"reason,omitempty"`
	Direction   string    `json:"direction"` // ingress or egress, seen from EndpointPod
	Protocol    string    `json:"protocol"`
	Source      string    `json:"source"` // ip:port
	Destination string    `json:"destination"`
	OrigDest    string    `json:"origDestination,omitempty"` // before service translation
	SrcIdentity uint32    `json:"srcIdentity"`
	DstIdentity uint32    `json:"dstIdentity"`
	SrcPod      string    `json:"srcPod,omitempty"` // namespace/name
	DstPod      string    `json:"dstPod,omitempty"`
	SrcLabels   []string  `json:"srcLabels,omitempty"`
	DstLabels   []string  `json:"dstLabels,omitempty"`
	EndpointID  uint16    `json:"endpointID"`
	EndpointPod string    `json:"endpointPod,omitempty"`
	RuleID      uint32    `json:"ruleID,omitempty"`
	Rule        string    `json:"rule,omitempty"` // namespace/name[index]
	RuleKind    string    `json:"ruleKind,omitempty"`
	RuleSection string    `json:"ruleSection,omitempty"`
	Ifindex     uint32    `json:"ifindex,omitempty"`
	DstPort     uint16    `json:"dstPort"`
	// Process is the local process that opened the connection, when the
	// process sensor saw it.
	Process *ProcessRef `json:"process,omitempty"`
}
