package identity

import (
	"strconv"
)

// NumericIdentity is a security identity's number, as carried in the
// datapath's maps and events.
type NumericIdentity uint32

// Reserved identities, numbered as Cilium numbers them.
const (
	// IdentityUnknown is no identity; in policy keys it means "any peer".
	IdentityUnknown       NumericIdentity = 0
	ReservedHost          NumericIdentity = 1
	ReservedWorld         NumericIdentity = 2
	ReservedUnmanaged     NumericIdentity = 3
	ReservedHealth        NumericIdentity = 4
	ReservedInit          NumericIdentity = 5
	ReservedRemoteNode    NumericIdentity = 6
	ReservedKubeAPIServer NumericIdentity = 7
	ReservedWorldV4       NumericIdentity = 9
	ReservedWorldV6       NumericIdentity = 10
)

// Number ranges.
const (
	// MinAllocated is the first number given to a label set.
	MinAllocated NumericIdentity = 256
	// MaxAllocated is the last cluster-scope number (Cilium's default range).
	MaxAllocated NumericIdentity = 65535
	// LocalScope is the scope bit of node-local identities (CIDR identities).
	LocalScope NumericIdentity = 1 << 24
	// MaxLocal is the last node-local number.
	MaxLocal NumericIdentity = LocalScope | (1<<24 - 1)
)

// reservedNames holds the reserved identities' label keys.
var reservedNames = map[NumericIdentity]string{
	ReservedHost:          "host",
	ReservedWorld:         "world",
	ReservedUnmanaged:     "unmanaged",
	ReservedHealth:        "health",
	ReservedInit:          "init",
	ReservedRemoteNode:    "remote-node",
	ReservedKubeAPIServer: "kube-apiserver",
	ReservedWorldV4:       "world-ipv4",
	ReservedWorldV6:       "world-ipv6",
}

var reservedByName = func() map[string]NumericIdentity {
	m := make(map[string]NumericIdentity, len(reservedNames))
	for id, n := range reservedNames {
		m[n] = id
	}
	return m
}()

// ReservedIdentities returns every reserved identity with its labels.
func ReservedIdentities() map[NumericIdentity]Labels {
	m := make(map[NumericIdentity]Labels, len(reservedNames))
	for id := range reservedNames {
		m[id] = ReservedLabels(id)
	}
	return m
}

// ReservedLabels returns a reserved identity's labels (reserved:<name>), or
// nil for a number that is not reserved.
func ReservedLabels(id NumericIdentity) Labels {
	n, ok := reservedNames[id]
	if !ok {
		return nil
	}
	return Labels{{Source: SourceReserved, Key: n}}
}

// ReservedByName returns the reserved identity named like its label key
// ("host", "world", "remote-node", …).
func ReservedByName(name string) (NumericIdentity, bool) {
	id, ok := reservedByName[name]
	return id, ok
}

// reservedFor returns the reserved identity whose labels are exactly ls.
func reservedFor(ls Labels) (NumericIdentity, bool) {
	if len(ls) != 1 || ls[0].Source != SourceReserved || ls[0].Value != "" {
		return 0, false
	}
	return ReservedByName(ls[0].Key)
}

// IsReserved reports whether the number is a reserved identity.
func (id NumericIdentity) IsReserved() bool {
	_, ok := reservedNames[id]
	return ok
}

// IsLocal reports whether the number has the node-local scope bit.
func (id NumericIdentity) IsLocal() bool { return id&LocalScope != 0 }

// IsWorld reports whether the number is world, world-ipv4 or world-ipv6.
func (id NumericIdentity) IsWorld() bool {
	return id == ReservedWorld || id == ReservedWorldV4 || id == ReservedWorldV6
}

// String returns the number, or the reserved name for reserved identities.
func (id NumericIdentity) String() string {
	if n, ok := reservedNames[id]; ok {
		return n
	}
	return strconv.FormatUint(uint64(id), 10)
}
