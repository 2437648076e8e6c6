// Package policymap is the datapath's policy maps: the LPM trie of every
// endpoint's policy entries (sluice_policy_v1), the LPM trie of every
// endpoint's address rules (sluice_policy_addr_v1: peer prefix → address-set
// identity, whose entries are in sluice_policy_v1) and each endpoint's
// enforcement (sluice_policy_config_v1).
package policymap

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/maputil"
)

// Map is the policy maps of a loaded datapath.
type Map struct {
	policy, addr, config *ebpf.Map
}

// New returns the handle of sluice_policy_v1, sluice_policy_addr_v1 and
// sluice_policy_config_v1.
func New(policy, addr, config *ebpf.Map) *Map {
	return &Map{policy: policy, addr: addr, config: config}
}

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

	policyCfgAddrIngress = 1 << 3 // POLICY_CFG_ADDR_INGRESS
	policyCfgAddrEgress  = 1 << 4 // POLICY_CFG_ADDR_EGRESS

	dirEgress  = uint8(bpfgen.LxcSluiceDirectionDIR_EGRESS)
	dirIngress = uint8(bpfgen.LxcSluiceDirectionDIR_INGRESS)
)

// Key is one entry key of an endpoint's policy. Identity 0 is any
// peer; Proto 0 is any protocol (then Port and PortPrefixLen are 0). Port
// with PortPrefixLen is an aligned block of ports (16: one port; 0 with Port
// 0: every port); for ICMP it holds the ICMP type.
type Key struct {
	Ingress       bool
	Identity      uint32
	Proto         uint8
	Port          uint16
	PortPrefixLen uint8
}

func (k Key) String() string {
	dir := "egress"
	if k.Ingress {
		dir = "ingress"
	}
	return fmt.Sprintf("%s identity=%d proto=%d port=%d/%d", dir, k.Identity, k.Proto, k.Port, k.PortPrefixLen)
}

// Entry is what a matching key decides. RuleID names the policy rule
// (assigned by the agent) in flow events; 0 is none.
type Entry struct {
	Deny   bool
	RuleID uint32
}

// Config is an endpoint's enforcement: a packet no entry
// matches is dropped in an enforced direction. Audit reports policy drops as
// VerdictAudit flows and forwards the packets. IngressAddr and EgressAddr
// turn on the address stage (the endpoint's address entries, UpsertAddr)
// for a direction; without them its address entries are not consulted.
type Config struct {
	IngressEnforced, EgressEnforced, Audit bool
	IngressAddr, EgressAddr                bool
}

func (k Key) bpf(epID uint16) (bpfgen.LxcPolicyKey, error) {
	bk := bpfgen.LxcPolicyKey{Identity: k.Identity, EpId: epID, Dir: dirEgress}
	if k.Ingress {
		bk.Dir = dirIngress
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
	bk.Dport = maputil.Be16(k.Port)
	bk.Prefixlen = policyPrefixProto + uint32(k.PortPrefixLen)
	return bk, nil
}

func keyOf(bk bpfgen.LxcPolicyKey) Key {
	k := Key{Ingress: bk.Dir == dirIngress, Identity: bk.Identity, Proto: bk.Proto}
	if bk.Prefixlen >= policyPrefixProto {
		k.Port = maputil.PortFromBe16(bk.Dport)
		k.PortPrefixLen = uint8(bk.Prefixlen - policyPrefixProto)
	}
	return k
}

// SetConfig writes the enforcement of endpoint epID.
func (m *Map) SetConfig(epID uint16, c Config) error {
	var v bpfgen.LxcPolicyConfig
	if c.IngressEnforced {
		v.Flags |= policyCfgIngress
	}
	if c.EgressEnforced {
		v.Flags |= policyCfgEgress
	}
	if c.Audit {
		v.Flags |= policyCfgAudit
	}
	if c.IngressAddr {
		v.Flags |= policyCfgAddrIngress
	}
	if c.EgressAddr {
		v.Flags |= policyCfgAddrEgress
	}
	if err := m.config.Update(&epID, &v, ebpf.UpdateAny); err != nil {
		return maputil.UpdateError("sluice_policy_config_v1", err)
	}
	return nil
}

// Config reads the enforcement of endpoint epID (zero if none is set).
func (m *Map) Config(epID uint16) (Config, error) {
	var v bpfgen.LxcPolicyConfig
	err := m.config.Lookup(&epID, &v)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return Config{}, nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("lookup policy config of endpoint %d: %w", epID, err)
	}
	return Config{
		IngressEnforced: v.Flags&policyCfgIngress != 0,
		EgressEnforced:  v.Flags&policyCfgEgress != 0,
		Audit:           v.Flags&policyCfgAudit != 0,
		IngressAddr:     v.Flags&policyCfgAddrIngress != 0,
		EgressAddr:      v.Flags&policyCfgAddrEgress != 0,
	}, nil
}

// Upsert writes one policy entry of endpoint epID.
func (m *Map) Upsert(epID uint16, k Key, e Entry) error {
	bk, err := k.bpf(epID)
	if err != nil {
		return err
	}
	v := bpfgen.LxcPolicyEntry{RuleId: e.RuleID, Prefixlen: uint8(bk.Prefixlen)}
	if e.Deny {
		v.Flags = policyFlagDeny
	}
	if err := m.policy.Update(&bk, &v, ebpf.UpdateAny); err != nil {
		return maputil.UpdateError("sluice_policy_v1", err)
	}
	return nil
}

// Delete removes one policy entry of endpoint epID; a missing entry is
// not an error.
func (m *Map) Delete(epID uint16, k Key) error {
	bk, err := k.bpf(epID)
	if err != nil {
		return err
	}
	if err := maputil.Delete(m.policy, &bk); err != nil {
		return fmt.Errorf("delete policy entry %s of endpoint %d: %w", k, epID, err)
	}
	return nil
}

// walk calls fn for every entry of m (name: the map's name, for errors).
func walk[K, V any](m *ebpf.Map, name string, fn func(k K, v V)) error {
	var (
		k K
		v V
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		fn(k, v)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate %s: %w", name, err)
	}
	return nil
}

// deleteKeys deletes keys from m (missing keys are fine) and returns the
// errors joined.
func deleteKeys[K any](m *ebpf.Map, keys []K) error {
	var errs []error
	for i := range keys {
		if err := maputil.Delete(m, &keys[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// each calls fn for every entry of sluice_policy_v1.
func (m *Map) each(fn func(bk bpfgen.LxcPolicyKey, v bpfgen.LxcPolicyEntry)) error {
	return walk(m.policy, "sluice_policy_v1", fn)
}

// Entries lists the policy entries of endpoint epID.
func (m *Map) Entries(epID uint16) (map[Key]Entry, error) {
	out := make(map[Key]Entry)
	err := m.each(func(bk bpfgen.LxcPolicyKey, v bpfgen.LxcPolicyEntry) {
		if bk.EpId == epID {
			out[keyOf(bk)] = Entry{Deny: v.Flags&policyFlagDeny != 0, RuleID: v.RuleId}
		}
	})
	return out, err
}

// DeleteEndpoint removes every policy entry, every address entry and the
// enforcement of endpoint epID.
func (m *Map) DeleteEndpoint(epID uint16) error {
	var del []bpfgen.LxcPolicyKey
	if err := m.each(func(bk bpfgen.LxcPolicyKey, _ bpfgen.LxcPolicyEntry) {
		if bk.EpId == epID {
			del = append(del, bk)
		}
	}); err != nil {
		return err
	}
	errs := []error{deleteKeys(m.policy, del), m.deleteAddrs(epID), maputil.Delete(m.config, &epID)}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete policy of endpoint %d: %w", epID, err)
	}
	return nil
}

// Pressure returns the entries in the policy map (all endpoints)
// and its capacity. It walks the map: call it at metrics-scrape pace.
func (m *Map) Pressure() (used, max int, err error) {
	err = m.each(func(bpfgen.LxcPolicyKey, bpfgen.LxcPolicyEntry) { used++ })
	return used, int(m.policy.MaxEntries()), err
}

// Sync makes endpoint epID's policy in the kernel equal to cfg and
// want: it writes new and changed entries, then the enforcement, then
// deletes entries not in want. It returns how many entries it wrote and
// deleted.
func (m *Map) Sync(epID uint16, cfg Config, want map[Key]Entry) (written, deleted int, err error) {
	have, err := m.Entries(epID)
	if err != nil {
		return 0, 0, err
	}
	for k, e := range want {
		if he, ok := have[k]; ok && he == e {
			continue
		}
		if err := m.Upsert(epID, k, e); err != nil {
			return written, deleted, err
		}
		written++
	}
	if err := m.SetConfig(epID, cfg); err != nil {
		return written, deleted, err
	}
	for k := range have {
		if _, ok := want[k]; ok {
			continue
		}
		if err := m.Delete(epID, k); err != nil {
			return written, deleted, err
		}
		deleted++
	}
	return written, deleted, nil
}

// Endpoints returns the endpoint IDs that have policy entries, address
// entries or an enforcement config in the kernel (for pruning endpoints that
// went away while the agent was down).
func (m *Map) Endpoints() (map[uint16]bool, error) {
	out := map[uint16]bool{}
	if err := m.each(func(bk bpfgen.LxcPolicyKey, _ bpfgen.LxcPolicyEntry) { out[bk.EpId] = true }); err != nil {
		return nil, err
	}
	if err := m.eachAddr(func(bk bpfgen.LxcPolicyAddrKey, _ uint32) { out[bk.EpId] = true }); err != nil {
		return nil, err
	}
	if err := walk(m.config, "sluice_policy_config_v1", func(id uint16, _ bpfgen.LxcPolicyConfig) { out[id] = true }); err != nil {
		return nil, err
	}
	return out, nil
}
