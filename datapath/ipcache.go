package datapath

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

func ipcacheKey(p netip.Prefix) (lxcIpcache4Key, error) {
	if !p.IsValid() || !p.Addr().Is4() {
		return lxcIpcache4Key{}, fmt.Errorf("ipcache prefix %s is not IPv4", p)
	}
	p = p.Masked()
	return lxcIpcache4Key{Prefixlen: uint32(p.Bits()), Addr: be32(p.Addr())}, nil
}

// UpsertIPCache maps the IPv4 prefix p (host bits ignored) to identity in
// sluice_ipcache4_v1. The longest prefix holding an address decides its
// identity; an address no prefix holds is world.
func (d *Datapath) UpsertIPCache(p netip.Prefix, identity uint32) error {
	k, err := ipcacheKey(p)
	if err != nil {
		return err
	}
	v := lxcIpcache4Value{Identity: identity}
	if err := d.objs.SluiceIpcache4V1.Update(&k, &v, ebpf.UpdateAny); err != nil {
		return mapError("sluice_ipcache4_v1", err)
	}
	return nil
}

// DeleteIPCache removes the prefix p; a missing entry is not an error.
func (d *Datapath) DeleteIPCache(p netip.Prefix) error {
	k, err := ipcacheKey(p)
	if err != nil {
		return err
	}
	if err := d.objs.SluiceIpcache4V1.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete ipcache entry %s: %w", p, err)
	}
	return nil
}

// IPCacheEntries lists sluice_ipcache4_v1.
func (d *Datapath) IPCacheEntries() (map[netip.Prefix]uint32, error) {
	var (
		k   lxcIpcache4Key
		v   lxcIpcache4Value
		out = make(map[netip.Prefix]uint32)
	)
	it := d.objs.SluiceIpcache4V1.Iterate()
	for it.Next(&k, &v) {
		out[netip.PrefixFrom(addrFromBe32(k.Addr), int(k.Prefixlen))] = v.Identity
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate sluice_ipcache4_v1: %w", err)
	}
	return out, nil
}
