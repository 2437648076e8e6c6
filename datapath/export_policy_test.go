package datapath

import (
	"fmt"
	"net/netip"
)

// ctEntryPolicy mirrors CT_E_POLICY (bpf/lib/conntrack.h).
const ctEntryPolicy = 1 << 4

// CTPolicyAllowed reports whether the conntrack entry src -> dst (a plain or
// backend entry, not a service entry) carries the policy-allowed mark; a
// missing entry is an error. Only for tests: the agent has no use for the
// flag.
func CTPolicyAllowed(d *Datapath, src, dst netip.AddrPort, proto uint8) (bool, error) {
	key := lxcCt4Tuple{
		Saddr: be32(src.Addr()), Daddr: be32(dst.Addr()),
		Sport: be16(src.Port()), Dport: be16(dst.Port()), Proto: proto,
	}
	var val lxcCt4Entry
	if err := d.objs.SluiceCt4V1.Lookup(&key, &val); err != nil {
		return false, fmt.Errorf("conntrack entry %s -> %s: %w", src, dst, err)
	}
	return val.Flags&ctEntryPolicy != 0, nil
}
