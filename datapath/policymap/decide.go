package policymap

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/maputil"
)

// policyPrefixFull is a key holding every field (POLICY_PREFIX_FULL): the
// lookup key of a packet.
const policyPrefixFull = 80

// Decision is what the datapath decides for a new flow in one direction of
// one endpoint (policy_decide in bpf/lib/policy.h).
type Decision struct {
	// Allowed: policy_decide returned 0 (no drop).
	Allowed bool
	// Matched: an entry decided (its RuleID); else the enforcement did
	// (default deny in an enforced direction, no policy in the other).
	Matched bool
	// Deny: a deny entry decided (DROP_POLICY_DENY); a drop without it is
	// the default deny (DROP_POLICY).
	Deny bool
	// RuleID is the deciding entry's rule (0: none).
	RuleID uint32
	// Enforced: the endpoint's policy is enforced in this direction.
	Enforced bool
	// Audit: a drop that audit mode reports (AUDIT flow) and forwards.
	Audit bool
}

// Decide looks up the verdict for a packet of a new flow the way
// policy_decide does in the kernel, in the maps the kernel holds: endpoint
// epID, direction (ingress: the packet enters the endpoint), the peer's
// identity, the peer's address for the address stage (egress the
// destination after service translation, ingress the source; invalid: the
// stage is skipped), the protocol and the port (destination port, ICMP
// type). The trie lookups are the kernel's own (BPF_MAP_LOOKUP_ELEM on the
// LPM tries); only the order of the lookups and their combination are
// written here, line for line as in policy.h: keep them together.
func (m *Map) Decide(epID uint16, ingress bool, peer uint32, addr netip.Addr, proto uint8, port uint16) (Decision, error) {
	cfg, err := m.Config(epID)
	if err != nil {
		return Decision{}, err
	}
	dir := dirEgress
	addrOn, enforced := cfg.EgressAddr, cfg.EgressEnforced
	if ingress {
		dir, addrOn, enforced = dirIngress, cfg.IngressAddr, cfg.IngressEnforced
	}
	key := bpfgen.LxcPolicyKey{Prefixlen: policyPrefixFull, Identity: peer, EpId: epID, Dir: dir, Proto: proto, Dport: maputil.Be16(port)}
	e, err := m.match(key)
	if err != nil {
		return Decision{}, err
	}
	if addrOn && addr.Is4() {
		a, err := m.addrMatch(key, addr)
		if err != nil {
			return Decision{}, err
		}
		e = combine(e, a)
	}
	d := Decision{Enforced: enforced}
	if e != nil {
		d.Matched, d.RuleID = true, e.RuleId
		if e.Flags&policyFlagDeny == 0 {
			d.Allowed = true
			return d, nil
		}
		d.Deny, d.Audit = true, cfg.Audit
		return d, nil
	}
	d.Allowed = !enforced
	d.Audit = enforced && cfg.Audit
	return d, nil
}

// lookup returns the entry the trie finds for key (its longest matching
// prefix), or nil.
func (m *Map) lookup(key bpfgen.LxcPolicyKey) (*bpfgen.LxcPolicyEntry, error) {
	var v bpfgen.LxcPolicyEntry
	err := m.policy.Lookup(&key, &v)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lookup sluice_policy_v1: %w", err)
	}
	return &v, nil
}

// match is policy_match: the peer's entry, then the any-peer entry; the
// longer prefix wins, the exact peer on a tie.
func (m *Map) match(key bpfgen.LxcPolicyKey) (*bpfgen.LxcPolicyEntry, error) {
	exact, err := m.lookup(key)
	if err != nil || (exact != nil && exact.Prefixlen >= policyPrefixFull) {
		return exact, err
	}
	key.Identity = 0
	anyPeer, err := m.lookup(key)
	if err != nil {
		return nil, err
	}
	if anyPeer == nil || (exact != nil && exact.Prefixlen >= anyPeer.Prefixlen) {
		return exact, nil
	}
	return anyPeer, nil
}

// addrMatch is policy_addr_match: the address-set identity of the longest
// address node holding addr, then that set's entry (for it only).
func (m *Map) addrMatch(key bpfgen.LxcPolicyKey, addr netip.Addr) (*bpfgen.LxcPolicyEntry, error) {
	akey := bpfgen.LxcPolicyAddrKey{Prefixlen: policyAddrPrefixBase + 32, EpId: key.EpId, Dir: key.Dir, Addr: maputil.Be32(addr)}
	var set uint32
	err := m.addr.Lookup(&akey, &set)
	if errors.Is(err, ebpf.ErrKeyNotExist) || (err == nil && set == 0) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lookup sluice_policy_addr_v1: %w", err)
	}
	key.Identity = set
	return m.lookup(key)
}

// combine is policy_combine: a deny from either stage, else an allow from
// either (the identity stage's first).
func combine(e, a *bpfgen.LxcPolicyEntry) *bpfgen.LxcPolicyEntry {
	if e != nil && e.Flags&policyFlagDeny != 0 {
		return e
	}
	if a != nil && (a.Flags&policyFlagDeny != 0 || e == nil) {
		return a
	}
	return e
}
