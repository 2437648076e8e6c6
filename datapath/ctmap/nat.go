package ctmap

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/maputil"
)

// NAT entry kinds (mirror SNAT_F_* in bpf/lib/snat.h).
const (
	natOut     = 1 << 0
	natIn      = 1 << 1
	natRevDNAT = 1 << 2
)

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

// snatEntryDSR is SNAT_E_DSR (bpf/lib/snat.h).
const snatEntryDSR = 1

// NATEntry is one sluice_snat4_v1 entry.
type NATEntry struct {
	Kind     NATKind
	Src, Dst netip.AddrPort // the packet tuple the entry is keyed by
	Proto    uint8
	To       netip.AddrPort // Out: SNAT address; In: client; RevDNAT: invalid
	Frontend netip.AddrPort // In, RevDNAT: where replies come from
	Expires  time.Duration  // remaining lifetime; negative once expired
	// DSR: a RevDNAT entry of a flow that came IP-in-IP (--lb-mode dsr):
	// its SYN-ACK's MSS is clamped for the encapsulation.
	DSR bool
}

// NATEntries lists the NodePort NAT map.
func (m *Map) NATEntries() ([]NATEntry, error) {
	now, err := maputil.BootSeconds()
	if err != nil {
		return nil, err
	}
	var (
		key bpfgen.HostSnat4Tuple
		val bpfgen.HostSnat4Entry
		out []NATEntry
	)
	it := m.snat.Iterate()
	for it.Next(&key, &val) {
		e := NATEntry{
			Kind:    NATKind(key.Flags),
			Src:     maputil.AddrPort(key.Saddr, key.Sport),
			Dst:     maputil.AddrPort(key.Daddr, key.Dport),
			Proto:   key.Proto,
			Expires: time.Duration(int64(val.Lifetime)-now) * time.Second,
		}
		if e.Kind != NATRevDNAT {
			e.To = maputil.AddrPort(val.Addr, val.Port)
		}
		if e.Kind != NATOut {
			e.Frontend = maputil.AddrPort(val.FeAddr, val.FePort)
		}
		e.DSR = e.Kind == NATRevDNAT && val.Flags&snatEntryDSR != 0
		out = append(out, e)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate sluice_snat4_v1: %w", err)
	}
	return out, nil
}
