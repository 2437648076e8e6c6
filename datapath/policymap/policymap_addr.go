package policymap

import (
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/maputil"
)

// Address map layout (mirrors bpf/lib/policy.h): endpoint, direction and pad
// are matched in full (32 bits), then the peer prefix.
const policyAddrPrefixBase = 32 // POLICY_ADDR_PREFIX_BASE

// AddrKey is one address entry key of an endpoint: a peer IPv4 prefix
// (masked: no bits beyond its length) in one direction. The entry's value is
// the address-set identity whose policy entries (Upsert, under that
// identity) decide packets to (egress) or from (ingress) the addresses the
// prefix is the longest entry for; set identity 0 is a hole (no address rule
// matches there: an except).
type AddrKey struct {
	Ingress bool
	Prefix  netip.Prefix
}

func (k AddrKey) String() string {
	dir := "egress"
	if k.Ingress {
		dir = "ingress"
	}
	return fmt.Sprintf("%s %s", dir, k.Prefix)
}

func (k AddrKey) bpf(epID uint16) (bpfgen.LxcPolicyAddrKey, error) {
	bk := bpfgen.LxcPolicyAddrKey{EpId: epID, Dir: dirEgress}
	if k.Ingress {
		bk.Dir = dirIngress
	}
	p := k.Prefix
	if !p.IsValid() || !p.Addr().Is4() {
		return bk, fmt.Errorf("address key %s: not an IPv4 prefix", k)
	}
	if p.Masked() != p {
		return bk, fmt.Errorf("address key %s: address has bits beyond the prefix", k)
	}
	bk.Prefixlen = policyAddrPrefixBase + uint32(p.Bits())
	bk.Addr = maputil.Be32(p.Addr())
	return bk, nil
}

func addrKeyOf(bk bpfgen.LxcPolicyAddrKey) AddrKey {
	return AddrKey{
		Ingress: bk.Dir == dirIngress,
		Prefix:  netip.PrefixFrom(maputil.AddrFromBe32(bk.Addr), int(bk.Prefixlen-policyAddrPrefixBase)),
	}
}

// UpsertAddr writes one address entry of endpoint epID: peers in k.Prefix
// (where no longer entry holds them) are judged by the policy entries of
// address-set identity set; set 0 is a hole (no address rule matches).
func (m *Map) UpsertAddr(epID uint16, k AddrKey, set uint32) error {
	bk, err := k.bpf(epID)
	if err != nil {
		return err
	}
	if err := m.addr.Update(&bk, &set, ebpf.UpdateAny); err != nil {
		return maputil.UpdateError("sluice_policy_addr_v1", err)
	}
	return nil
}

// DeleteAddr removes one address entry of endpoint epID; a missing entry is
// not an error.
func (m *Map) DeleteAddr(epID uint16, k AddrKey) error {
	bk, err := k.bpf(epID)
	if err == nil {
		err = maputil.Delete(m.addr, &bk)
	}
	if err != nil {
		return fmt.Errorf("delete address entry of endpoint %d: %w", epID, err)
	}
	return nil
}

// eachAddr calls fn for every entry of sluice_policy_addr_v1.
func (m *Map) eachAddr(fn func(bk bpfgen.LxcPolicyAddrKey, set uint32)) error {
	return walk(m.addr, "sluice_policy_addr_v1", fn)
}

// Addrs lists the address entries of endpoint epID (key → set identity).
func (m *Map) Addrs(epID uint16) (map[AddrKey]uint32, error) {
	out := make(map[AddrKey]uint32)
	err := m.eachAddr(func(bk bpfgen.LxcPolicyAddrKey, set uint32) {
		if bk.EpId == epID {
			out[addrKeyOf(bk)] = set
		}
	})
	return out, err
}

// SyncAddrs makes endpoint epID's address entries in the kernel equal to
// want: it writes new and changed entries, then deletes entries not in want.
// Holes (set 0) are written before the other entries and deleted after them,
// so an except never lets its block's rules match while both change. It
// returns how many entries it wrote and deleted.
func (m *Map) SyncAddrs(epID uint16, want map[AddrKey]uint32) (written, deleted int, err error) {
	have, err := m.Addrs(epID)
	if err != nil {
		return 0, 0, err
	}
	for _, holes := range []bool{true, false} {
		for k, set := range want {
			if hs, ok := have[k]; (set == 0) != holes || (ok && hs == set) {
				continue
			}
			if err := m.UpsertAddr(epID, k, set); err != nil {
				return written, deleted, err
			}
			written++
		}
	}
	for _, holes := range []bool{false, true} {
		for k, set := range have {
			if _, ok := want[k]; ok || (set == 0) != holes {
				continue
			}
			if err := m.DeleteAddr(epID, k); err != nil {
				return written, deleted, err
			}
			deleted++
		}
	}
	return written, deleted, nil
}

// deleteAddrs removes every address entry of endpoint epID.
func (m *Map) deleteAddrs(epID uint16) error {
	var del []bpfgen.LxcPolicyAddrKey
	if err := m.eachAddr(func(bk bpfgen.LxcPolicyAddrKey, _ uint32) {
		if bk.EpId == epID {
			del = append(del, bk)
		}
	}); err != nil {
		return err
	}
	return deleteKeys(m.addr, del)
}

// AddrPressure returns the entries in the address map (all endpoints) and
// its capacity. It walks the map: call it at metrics-scrape pace.
func (m *Map) AddrPressure() (used, max int, err error) {
	err = m.eachAddr(func(bpfgen.LxcPolicyAddrKey, uint32) { used++ })
	return used, int(m.addr.MaxEntries()), err
}
