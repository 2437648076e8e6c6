// Package ipcachemap is the datapath's IP cache (sluice_ipcache4_v1): an LPM
// trie from IPv4 prefixes to the security identity of the addresses in them.
package ipcachemap

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/maputil"
)

// Map is the IP cache of a loaded datapath.
type Map struct{ m *ebpf.Map }

// New returns the handle of sluice_ipcache4_v1.
func New(m *ebpf.Map) *Map { return &Map{m: m} }

func ipcacheKey(p netip.Prefix) (bpfgen.LxcIpcache4Key, error) {
	if !p.IsValid() || !p.Addr().Is4() {
		return bpfgen.LxcIpcache4Key{}, fmt.Errorf("ipcache prefix %s is not IPv4", p)
	}
	p = p.Masked()
	return bpfgen.LxcIpcache4Key{Prefixlen: uint32(p.Bits()), Addr: maputil.Be32(p.Addr())}, nil
}

// Upsert maps the IPv4 prefix p (host bits ignored) to identity in
// sluice_ipcache4_v1. The longest prefix holding an address decides its
// identity; an address no prefix holds is world.
func (m *Map) Upsert(p netip.Prefix, identity uint32) error {
	k, err := ipcacheKey(p)
	if err != nil {
		return err
	}
	v := bpfgen.LxcIpcache4Value{Identity: identity}
	if err := m.m.Update(&k, &v, ebpf.UpdateAny); err != nil {
		return maputil.UpdateError("sluice_ipcache4_v1", err)
	}
	return nil
}

// Delete removes the prefix p; a missing entry is not an error.
func (m *Map) Delete(p netip.Prefix) error {
	k, err := ipcacheKey(p)
	if err != nil {
		return err
	}
	if err := maputil.Delete(m.m, &k); err != nil {
		return fmt.Errorf("delete ipcache entry %s: %w", p, err)
	}
	return nil
}

// List lists sluice_ipcache4_v1.
func (m *Map) List() (map[netip.Prefix]uint32, error) {
	var (
		k   bpfgen.LxcIpcache4Key
		v   bpfgen.LxcIpcache4Value
		out = make(map[netip.Prefix]uint32)
	)
	it := m.m.Iterate()
	for it.Next(&k, &v) {
		out[netip.PrefixFrom(maputil.AddrFromBe32(k.Addr), int(k.Prefixlen))] = v.Identity
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate sluice_ipcache4_v1: %w", err)
	}
	return out, nil
}

// Identity returns the identity of the longest prefix holding addr, as the
// datapath finds it (ipcache4_identity in bpf/lib/identity.h: one LPM
// lookup); found is false when no prefix holds it (the datapath then uses
// world).
func (m *Map) Identity(addr netip.Addr) (id uint32, found bool, err error) {
	k, err := ipcacheKey(netip.PrefixFrom(addr, 32))
	if err != nil {
		return 0, false, err
	}
	var v bpfgen.LxcIpcache4Value
	err = m.m.Lookup(&k, &v)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("lookup sluice_ipcache4_v1: %w", err)
	}
	return v.Identity, true, nil
}
