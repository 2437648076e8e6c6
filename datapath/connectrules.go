package datapath

import (
	"net/netip"

	"github.com/sluicenet/sluice/datapath/procsensor"
)

// ConnectRule is one slot of the connect rules of tracing policies
// (spec.connects, bpf/lib/connect_rules.h): evaluated by the socket-LB
// connect4 and sendmsg4 hooks in the process's context, before and after
// service translation (either destination matching is a match). CONTRACT:
// the implementation (SetConnectRules, SetConnectScope, DeleteConnectScope
// on *Datapath) is the connect-rules owner's.
type ConnectRule struct {
	Slot     uint8
	PolicyID uint32
	Group    uint64 // slots of the same spec.connects entry: lowest match decides
	// Global: every process in the socket LB's cgroup; else processes in
	// the network namespaces given to SetConnectScope, or with Cgroup, in
	// the cgroups given to SetConnectCgroupScope.
	Global bool
	// Cgroup: scoped by the process's cgroup v2 id (containerSelector)
	// instead of its network namespace.
	Cgroup bool
	Binary procsensor.ClassFilter
	Parent procsensor.ClassFilter
	// Dests: the destination is (NotDests: is not) in one of the prefixes
	// (empty: any).
	Dests    []netip.Prefix
	NotDests bool
	// Ports: the destination port is (NotPorts: is not) one of them
	// (empty: any).
	Ports    []uint16
	NotPorts bool
	Protocol uint8 // IPPROTO_TCP, IPPROTO_UDP; 0 both
	// Action: procsensor.ConnectDeny refuses with EPERM; ExecPost,
	// ExecNoPost, ExecSigkill, ExecSignal as for the other rules.
	Action  procsensor.ExecAction
	Signal  uint8
	Enforce bool // else monitor: reported, not carried out
}

// MaxConnectRules is the number of connect rule slots.
const MaxConnectRules = 64
