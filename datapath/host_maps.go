package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/pin"
)

// NAT entry kinds (mirror SNAT_F_* in bpf/lib/snat.h).
const (
	natOut     = 1 << 0
	natIn      = 1 << 1
	natRevDNAT = 1 << 2
)

// SetNodeAddrs makes addrs the node's addresses NodePort frontends answer on
// (sluice_node_addrs_v1): missing ones are added, others removed. Non-IPv4
// addresses are skipped.
func (d *Datapath) SetNodeAddrs(addrs []netip.Addr) error {
	m := d.host.SluiceNodeAddrsV1
	want := make(map[uint32]bool, len(addrs))
	for _, a := range addrs {
		if a = a.Unmap(); a.Is4() {
			want[be32(a)] = true
		}
	}
	var (
		key  uint32
		val  uint32
		errs []error
		del  []uint32
	)
	it := m.Iterate()
	for it.Next(&key, &val) {
		if !want[key] {
			del = append(del, key)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate sluice_node_addrs_v1: %w", err)
	}
	for _, k := range del {
		if err := m.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("delete node address %s: %w", addrFromBe32(k), err))
		}
	}
	for k := range want {
		var zero uint32
		if err := m.Update(&k, &zero, ebpf.UpdateAny); err != nil {
			errs = append(errs, fmt.Errorf("node address %s: %w", addrFromBe32(k), mapError("sluice_node_addrs_v1", err)))
		}
	}
	return errors.Join(errs...)
}

// NodeAddrs lists sluice_node_addrs_v1.
func (d *Datapath) NodeAddrs() ([]netip.Addr, error) {
	var key, val uint32
	var out []netip.Addr
	it := d.host.SluiceNodeAddrsV1.Iterate()
	for it.Next(&key, &val) {
		out = append(out, addrFromBe32(key))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate sluice_node_addrs_v1: %w", err)
	}
	return out, nil
}

// NATKind says what a NodePort NAT entry records.
type NATKind uint8

// NAT entry kinds.
const (
	NATOut     NATKind = natOut     // client -> backend: the SNAT address the flow uses
	NATIn      NATKind = natIn      // backend -> SNAT address: the client and frontend of replies
	NATRevDNAT NATKind = natRevDNAT // local backend -> client: the frontend replies leave from
)

func (k NATKind) String() string {
	switch k {
	case NATOut:
		return "out"
	case NATIn:
		return "in"
	case NATRevDNAT:
		return "rev-dnat"
	}
	return fmt.Sprintf("nat-kind-%d", uint8(k))
}

// NATEntry is one sluice_snat4_v1 entry.
type NATEntry struct {
	Kind     NATKind
	Src, Dst netip.AddrPort // the packet tuple the entry is keyed by
	Proto    uint8
	To       netip.AddrPort // Out: SNAT address; In: client; RevDNAT: invalid
	Frontend netip.AddrPort // In, RevDNAT: where replies come from
	Expires  time.Duration  // remaining lifetime; negative once expired
}

// NATEntries lists the NodePort NAT map.
func (d *Datapath) NATEntries() ([]NATEntry, error) {
	now, err := bootSeconds()
	if err != nil {
		return nil, err
	}
	var (
		key hostSnat4Tuple
		val hostSnat4Entry
		out []NATEntry
	)
	it := d.host.SluiceSnat4V1.Iterate()
	for it.Next(&key, &val) {
		e := NATEntry{
			Kind:    NATKind(key.Flags),
			Src:     netip.AddrPortFrom(addrFromBe32(key.Saddr), portFromBe16(key.Sport)),
			Dst:     netip.AddrPortFrom(addrFromBe32(key.Daddr), portFromBe16(key.Dport)),
			Proto:   key.Proto,
			Expires: time.Duration(int64(val.Lifetime)-now) * time.Second,
		}
		if e.Kind != NATRevDNAT {
			e.To = netip.AddrPortFrom(addrFromBe32(val.Addr), portFromBe16(val.Port))
		}
		if e.Kind != NATOut {
			e.Frontend = netip.AddrPortFrom(addrFromBe32(val.FeAddr), portFromBe16(val.FePort))
		}
		out = append(out, e)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate sluice_snat4_v1: %w", err)
	}
	return out, nil
}

// PinnedCounters reads sluice_metrics as pinned under root by a running
// agent, without loading anything (for tests and tools).
func PinnedCounters(root string) ([]Counter, error) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(pin.MapsDir(root), "sluice_metrics"), nil)
	if err != nil {
		return nil, fmt.Errorf("open pinned sluice_metrics: %w", err)
	}
	defer m.Close()
	var (
		key  hostMetricsKey
		vals []hostMetricsValue
		out  []Counter
	)
	it := m.Iterate()
	for it.Next(&key, &vals) {
		c := Counter{Ifindex: key.Ifindex, Reason: Reason(key.Reason), Direction: Direction(key.Dir)}
		for _, v := range vals {
			c.Packets += v.Packets
			c.Bytes += v.Bytes
		}
		out = append(out, c)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate sluice_metrics: %w", err)
	}
	return out, nil
}
