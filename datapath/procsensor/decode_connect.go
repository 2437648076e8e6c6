package procsensor

import (
	"fmt"
	"net/netip"
	"time"
)

// Offsets of struct process_connect_rule (bpf/lib/connect_rules.h, posted
// by the socket-LB hooks), checked against its bpf2go mirror in
// decode_connect_test.go.
const (
	offRulePolicyID = 32 // policy_id u32, slot, action, signal, enforced u8
	offRuleProto    = 40
	offRuleDport    = 42
	offRuleDaddr    = 44
	offRuleBackend  = 48 // backend_addr be32, backend_port be16
	offRuleNetNS    = 56
	connectRuleSize = 64
)

// decodeConnectRule decodes a PROCESS_CONNECT_RULE event.
func decodeConnectRule(b []byte, t time.Time) (Event, error) {
	if len(b) < connectRuleSize {
		return Event{}, fmt.Errorf("connect rule event of %d bytes", len(b))
	}
	c := &ConnectEnforcement{Time: t, Key: key(b[offKey:]), PID: le.Uint32(b[offPID:]), PolicyID: le.Uint32(b[offRulePolicyID:])}
	v := b[offRulePolicyID+4 : offRulePolicyID+8] // slot, action, signal, enforced
	c.Slot, c.Action, c.Signal, c.Enforced = v[0], ExecAction(v[1]), v[2], v[3] != 0
	c.Proto, c.Dst, c.NetNS = b[offRuleProto], addrPort(b[offRuleDaddr:], b[offRuleDport:]), le.Uint32(b[offRuleNetNS:])
	if be := addrPort(b[offRuleBackend:], b[offRuleBackend+4:]); be.Addr() != netip.IPv4Unspecified() || be.Port() != 0 {
		c.Backend = be
	}
	return Event{ConnectRule: c}, nil
}
