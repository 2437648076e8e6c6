package lbmap

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/internal/maputil"
)

// SetNodeAddrs makes addrs the node's addresses NodePort frontends answer on
// (sluice_node_addrs_v1): missing ones are added, others removed. Non-IPv4
// addresses are skipped.
func (m *Map) SetNodeAddrs(addrs []netip.Addr) error {
	na := m.nodeAddrs
	want := make(map[uint32]bool, len(addrs))
	for _, a := range addrs {
		if a = a.Unmap(); a.Is4() {
			want[maputil.Be32(a)] = true
		}
	}
	var (
		key  uint32
		val  uint32
		errs []error
		del  []uint32
	)
	it := na.Iterate()
	for it.Next(&key, &val) {
		if !want[key] {
			del = append(del, key)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate sluice_node_addrs_v1: %w", err)
	}
	for _, k := range del {
		if err := maputil.Delete(na, &k); err != nil {
			errs = append(errs, fmt.Errorf("delete node address %s: %w", maputil.AddrFromBe32(k), err))
		}
	}
	for k := range want {
		var zero uint32
		if err := na.Update(&k, &zero, ebpf.UpdateAny); err != nil {
			errs = append(errs, fmt.Errorf("node address %s: %w", maputil.AddrFromBe32(k), maputil.UpdateError("sluice_node_addrs_v1", err)))
		}
	}
	return errors.Join(errs...)
}

// NodeAddrs lists sluice_node_addrs_v1.
func (m *Map) NodeAddrs() ([]netip.Addr, error) {
	var key, val uint32
	var out []netip.Addr
	it := m.nodeAddrs.Iterate()
	for it.Next(&key, &val) {
		out = append(out, maputil.AddrFromBe32(key))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate sluice_node_addrs_v1: %w", err)
	}
	return out, nil
}
