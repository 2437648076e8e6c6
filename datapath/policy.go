package datapath

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Policy map layout (mirrors bpf/lib/policy.h): the LPM trie matches
// identity, endpoint and direction in full, then the protocol, then the port
// prefix.
const (
	policyPrefixAnyProto = 56 // POLICY_PREFIX_ANY_PROTO
	policyPrefixProto    = 64 // POLICY_PREFIX_PROTO
	policyFlagDeny       = 1  // POLICY_F_DENY

	policyCfgIngress = 1 << 0 // POLICY_CFG_INGRESS
	policyCfgEgress  = 1 << 1 // POLICY_CFG_EGRESS
	policyCfgAudit   = 1 << 2 // POLICY_CFG_AUDIT
)

// PolicyKey is one entry key of an endpoint's policy. Identity 0 is any
// peer; Proto 0 is any protocol (then Port and PortPrefixLen are 0). Port
// with PortPrefixLen is an aligned block of ports (16: one port; 0 with Port
// 0: every port); for ICMP it holds the ICMP type.
type PolicyKey struct {
	Ingress       bool
	Identity      uint32
	Proto         uint8
	Port          uint16
	PortPrefixLen uint8
}

func (k PolicyKey) String() string {
	dir := "egress"
	if k.Ingress {
		dir = "ingress"
	}
	return fmt.Sprintf("%s identity=%d proto=%d port=%d/%d", dir, k.Identity, k.Proto, k.Port, k.PortPrefixLen)
}

// PolicyEntry is what a matching key decides. RuleID names the policy rule
// (assigned by the agent) in flow events; 0 is none.
type PolicyEntry struct {
	Deny   bool
	RuleID uint32
}

// EndpointPolicyConfig is an endpoint's enforcement: a packet no entry
// matches is dropped in an enforced direction. Audit reports policy drops as
// VerdictAudit flows and forwards the packets.
type EndpointPolicyConfig struct {
	IngressEnforced, EgressEnforced, Audit bool
}

func (k PolicyKey) bpf(epID uint16) (lxcPolicyKey, error) {
	bk := lxcPolicyKey{Identity: k.Identity, EpId: epID, Dir: uint8(DirEgress)}
	if k.Ingress {
		bk.Dir = uint8(DirIngress)
	}
	if k.PortPrefixLen > 16 {
		return bk, fmt.Errorf("policy key %s: port prefix length above 16", k)
	}
	if k.Proto == 0 {
		if k.Port != 0 || k.PortPrefixLen != 0 {
			return bk, fmt.Errorf("policy key %s: a port needs a protocol", k)
		}
		bk.Prefixlen = policyPrefixAnyProto
		return bk, nil
	}
	if mask := uint16(0xffff) >> k.PortPrefixLen; k.PortPrefixLen < 16 && k.Port&mask != 0 {
		return bk, fmt.Errorf("policy key %s: port has bits beyond its prefix", k)
	}
	bk.Proto = k.Proto
	bk.Dport = be16(k.Port)
	bk.Prefixlen = policyPrefixProto + uint32(k.PortPrefixLen)
	return bk, nil
}

func policyKeyOf(bk lxcPolicyKey) PolicyKey {
	k := PolicyKey{Ingress: bk.Dir == uint8(DirIngress), Identity: bk.Identity, Proto: bk.Proto}
	if bk.Prefixlen >= policyPrefixProto {
		k.Port = portFromBe16(bk.Dport)
		k.PortPrefixLen = uint8(bk.Prefixlen - policyPrefixProto)
	}
	return k
}

// SetPolicyConfig writes the enforcement of endpoint epID.
func (d *Datapath) SetPolicyConfig(epID uint16, c EndpointPolicyConfig) error {
	var v lxcPolicyConfig
	if c.IngressEnforced {
		v.Flags |= policyCfgIngress
	}
	if c.EgressEnforced {
		v.Flags |= policyCfgEgress
	}
	if c.Audit {
		v.Flags |= policyCfgAudit
	}
	if err := d.objs.SluicePolicyConfigV1.Update(&epID, &v, ebpf.UpdateAny); err != nil {
		return mapError("sluice_policy_config_v1", err)
	}
	return nil
}

// PolicyConfig reads the enforcement of endpoint epID (zero if none is set).
func (d *Datapath) PolicyConfig(epID uint16) (EndpointPolicyConfig, error) {
	var v lxcPolicyConfig
	err := d.objs.SluicePolicyConfigV1.Lookup(&epID, &v)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return EndpointPolicyConfig{}, nil
	}
	if err != nil {
		return EndpointPolicyConfig{}, fmt.Errorf("lookup policy config of endpoint %d: %w", epID, err)
	}
	return EndpointPolicyConfig{
		IngressEnforced: v.Flags&policyCfgIngress != 0,
		EgressEnforced:  v.Flags&policyCfgEgress != 0,
		Audit:           v.Flags&policyCfgAudit != 0,
	}, nil
}

// UpsertPolicy writes one policy entry of endpoint epID.
func (d *Datapath) UpsertPolicy(epID uint16, k PolicyKey, e PolicyEntry) error {
	bk, err := k.bpf(epID)
	if err != nil {
		return err
	}
	v := lxcPolicyEntry{RuleId: e.RuleID, Prefixlen: uint8(bk.Prefixlen)}
	if e.Deny {
		v.Flags = policyFlagDeny
	}
	if err := d.objs.SluicePolicyV1.Update(&bk, &v, ebpf.UpdateAny); err != nil {
		return mapError("sluice_policy_v1", err)
	}
	return nil
}

// DeletePolicy removes one policy entry of endpoint epID; a missing entry is
// not an error.
func (d *Datapath) DeletePolicy(epID uint16, k PolicyKey) error {
	bk, err := k.bpf(epID)
	if err != nil {
		return err
	}
	if err := d.objs.SluicePolicyV1.Delete(&bk); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete policy entry %s of endpoint %d: %w", k, epID, err)
	}
	return nil
}

// policyEach calls fn for every entry of sluice_policy_v1.
func (d *Datapath) policyEach(fn func(bk lxcPolicyKey, v lxcPolicyEntry)) error {
	var (
		bk lxcPolicyKey
		v  lxcPolicyEntry
	)
	it := d.objs.SluicePolicyV1.Iterate()
	for it.Next(&bk, &v) {
		fn(bk, v)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate sluice_policy_v1: %w", err)
	}
	return nil
}

// PolicyEntries lists the policy entries of endpoint epID.
func (d *Datapath) PolicyEntries(epID uint16) (map[PolicyKey]PolicyEntry, error) {
	out := make(map[PolicyKey]PolicyEntry)
	err := d.policyEach(func(bk lxcPolicyKey, v lxcPolicyEntry) {
		if bk.EpId == epID {
			out[policyKeyOf(bk)] = PolicyEntry{Deny: v.Flags&policyFlagDeny != 0, RuleID: v.RuleId}
		}
	})
	return out, err
}

// DeleteEndpointPolicy removes every policy entry and the enforcement of
// endpoint epID.
func (d *Datapath) DeleteEndpointPolicy(epID uint16) error {
	var del []lxcPolicyKey
	if err := d.policyEach(func(bk lxcPolicyKey, _ lxcPolicyEntry) {
		if bk.EpId == epID {
			del = append(del, bk)
		}
	}); err != nil {
		return err
	}
	var errs []error
	for i := range del {
		if err := d.objs.SluicePolicyV1.Delete(&del[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	if err := d.objs.SluicePolicyConfigV1.Delete(&epID); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("delete policy of endpoint %d: %w", epID, errors.Join(errs...))
	}
	return nil
}

// PolicyMapPressure returns the entries in the policy map (all endpoints)
// and its capacity. It walks the map: call it at metrics-scrape pace.
func (d *Datapath) PolicyMapPressure() (used, max int, err error) {
	err = d.policyEach(func(lxcPolicyKey, lxcPolicyEntry) { used++ })
	return used, int(d.objs.SluicePolicyV1.MaxEntries()), err
}

// SyncPolicy makes endpoint epID's policy in the kernel equal to cfg and
// want: it writes new and changed entries, then the enforcement, then
// deletes entries not in want. It returns how many entries it wrote and
// deleted.
func (d *Datapath) SyncPolicy(epID uint16, cfg EndpointPolicyConfig, want map[PolicyKey]PolicyEntry) (written, deleted int, err error) {
	have, err := d.PolicyEntries(epID)
	if err != nil {
		return 0, 0, err
	}
	for k, e := range want {
		if he, ok := have[k]; ok && he == e {
			continue
		}
		if err := d.UpsertPolicy(epID, k, e); err != nil {
			return written, deleted, err
		}
		written++
	}
	if err := d.SetPolicyConfig(epID, cfg); err != nil {
		return written, deleted, err
	}
	for k := range have {
		if _, ok := want[k]; ok {
			continue
		}
		if err := d.DeletePolicy(epID, k); err != nil {
			return written, deleted, err
		}
		deleted++
	}
	return written, deleted, nil
}

// PolicyEndpoints returns the endpoint IDs that have policy entries or an
// enforcement config in the kernel (for pruning endpoints that went away
// while the agent was down).
func (d *Datapath) PolicyEndpoints() (map[uint16]bool, error) {
	out := map[uint16]bool{}
	if err := d.policyEach(func(bk lxcPolicyKey, _ lxcPolicyEntry) { out[bk.EpId] = true }); err != nil {
		return nil, err
	}
	var (
		id  uint16
		val lxcPolicyConfig
	)
	it := d.objs.SluicePolicyConfigV1.Iterate()
	for it.Next(&id, &val) {
		out[id] = true
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate policy config map: %w", err)
	}
	return out, nil
}
