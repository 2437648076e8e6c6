package datapath

import (
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/maputil"
)

// Options are load-time knobs of the programs (volatile const globals). Zero
// values keep the defaults compiled into the C.
type Options struct {
	CTLifetimeTCP        time.Duration // established TCP flow (default 6h)
	CTLifetimeTCPSyn     time.Duration // TCP flow before its first reply (default 60s)
	CTLifetimeTCPClosing time.Duration // after RST, or FIN both ways (default 10s)
	CTLifetimeNonTCP     time.Duration // UDP flow (default 60s)
	// HairpinIPv4 is the link-local address a pod's flow to itself through
	// a service is SNATed to (lb_hairpin_ipv4; default 169.254.42.1).
	HairpinIPv4 netip.Addr
	// MaglevTableSize turns per-packet Maglev selection on
	// (lb_maglev_table_size, bpf/lib/lb.h): services flagged
	// lbmap.FlagMaglev pick the backend of their table (lbmap.SetMaglev,
	// tables of this many entries) at the flow's hash. 0: off, every
	// service picks at random and the Maglev code is removed at load. A
	// prime below 65536 (agent/lb/maglev.ValidateTableSize).
	MaglevTableSize uint32
	// MaxEntries overrides the size of maps by name (tests use it to fill a
	// map; a pinned map of another size is refused at load).
	MaxEntries map[string]uint32
	// Host are the knobs of the host device programs.
	Host HostOptions
	// ProcessEvents makes the socket-LB hooks report UDP connect() and
	// sendmsg() destinations with their process into the process sensor's
	// ring buffer (datapath/procsensor), shared by its pin under the maps
	// directory, and apply the connect rules of tracing policies
	// (SetConnectRules). Off, that code is removed at load and the sensor's
	// maps and the connect rule maps are neither created full-size nor
	// pinned here.
	ProcessEvents bool
}

// Maps the socket-LB programs share by pin when ProcessEvents is set: the
// process sensor's (bpf/lib/process.h, process_class.h) and the connect
// rules' (bpf/lib/connect_rules.h).
var processMaps = []string{
	bpfgen.SockMapSluiceProcessEventsV1, bpfgen.SockMapSluiceProcessLostV1,
	bpfgen.SockMapSluiceClassConfigV1, bpfgen.SockMapSluiceClassExactV1,
	bpfgen.SockMapSluiceClassPrefixV1, bpfgen.SockMapSluiceProcClassV1,
	connectConfigMap, connectSlotsMap, connectDestsMap, connectPortsMap, connectScopeMap,
}

// applySock sets the socket-LB knobs and map sizes.
func (o Options) applySock(spec *ebpf.CollectionSpec) error {
	o.applyMaps(spec)
	if o.ProcessEvents {
		return setKnob(spec, "sock_process_events", uint8(1))
	}
	for _, name := range processMaps {
		m, ok := spec.Maps[name]
		if !ok {
			return fmt.Errorf("socket-LB map %s missing", name)
		}
		m.Pinning = ebpf.PinNone
		switch m.Type {
		case ebpf.RingBuf:
			m.MaxEntries = 4096 // never written: one page
		case ebpf.Hash, ebpf.LPMTrie, ebpf.Array:
			m.MaxEntries = 1 // never read
		}
	}
	return nil
}

// applyMaps sets the map sizes of MaxEntries present in spec.
func (o Options) applyMaps(spec *ebpf.CollectionSpec) {
	for name, n := range o.MaxEntries {
		if m, ok := spec.Maps[name]; ok {
			m.MaxEntries = n
		}
	}
}

// DefaultHairpinIPv4 is the default of Options.HairpinIPv4 (Cilium's).
var DefaultHairpinIPv4 = netip.AddrFrom4([4]byte{169, 254, 42, 1})

func (o Options) apply(spec *ebpf.CollectionSpec) error {
	o.applyMaps(spec)
	knobs := []struct {
		name string
		d    time.Duration
	}{
		{"ct_lifetime_tcp", o.CTLifetimeTCP},
		{"ct_lifetime_tcp_syn", o.CTLifetimeTCPSyn},
		{"ct_lifetime_tcp_closing", o.CTLifetimeTCPClosing},
		{"ct_lifetime_nontcp", o.CTLifetimeNonTCP},
	}
	if o.MaglevTableSize != 0 {
		if o.MaglevTableSize > math.MaxUint16 {
			return fmt.Errorf("maglev table size %d: above %d", o.MaglevTableSize, math.MaxUint16)
		}
		if err := setKnob(spec, "lb_maglev_table_size", o.MaglevTableSize); err != nil {
			return err
		}
		if m := spec.Maps[bpfgen.LxcMapSluiceLb4MaglevV1]; m != nil && m.InnerMap != nil {
			m.InnerMap.MaxEntries = o.MaglevTableSize
		}
	}
	for _, k := range knobs {
		if k.d == 0 {
			continue
		}
		secs := (k.d + time.Second - 1) / time.Second
		if k.d < 0 || secs > math.MaxUint32 {
			return fmt.Errorf("%s: %v out of range", k.name, k.d)
		}
		if err := setKnob(spec, k.name, uint32(secs)); err != nil {
			return err
		}
	}
	return nil
}

// setKnob sets the volatile const global name of spec to v.
func setKnob(spec *ebpf.CollectionSpec, name string, v any) error {
	sv, ok := spec.Variables[name]
	if !ok {
		return fmt.Errorf("program knob %s missing", name)
	}
	if err := sv.Set(v); err != nil {
		return fmt.Errorf("set %s: %w", name, err)
	}
	return nil
}

// applyPod sets the knobs only the pod programs have.
func (o Options) applyPod(spec *ebpf.CollectionSpec) error {
	if err := o.apply(spec); err != nil {
		return err
	}
	if o.HairpinIPv4.IsValid() {
		if !o.HairpinIPv4.Is4() || !o.HairpinIPv4.IsLinkLocalUnicast() {
			return fmt.Errorf("hairpin address %s: not an IPv4 link-local address", o.HairpinIPv4)
		}
		return setKnob(spec, "lb_hairpin_ipv4", maputil.Be32(o.HairpinIPv4))
	}
	return nil
}

// HostOptions are load-time knobs of the host device programs (volatile
// const globals in bpf/lib/snat.h). Zero values keep the C defaults.
type HostOptions struct {
	// SNATAddr is the node IPv4 address NodePort/ExternalIP flows to remote
	// backends are source-NATed to. Unset: such flows are dropped
	// (drop-nat-no-port); local backends work without it.
	SNATAddr netip.Addr
	// SNATPortMin and SNATPortMax bound the SNAT source ports (default
	// 61000-65535, above Linux's ephemeral port range).
	SNATPortMin, SNATPortMax uint16
	// LBMode is how flows to remote backends are forwarded (--lb-mode;
	// lb_mode in bpf/lib/dsr.h): LBModeSNAT (default), LBModeDSR or
	// LBModeHybrid.
	LBMode LBMode
}

// LBMode is --lb-mode: SNAT, DSR (IP-in-IP to the backend's node, which
// answers the client itself) or hybrid (DSR for TCP, SNAT for UDP), with
// Cilium's names.
type LBMode string

// The --lb-mode values.
const (
	LBModeSNAT   LBMode = "snat"
	LBModeDSR    LBMode = "dsr"
	LBModeHybrid LBMode = "hybrid"
)

// ParseLBMode checks s ("" is snat).
func ParseLBMode(s string) (LBMode, error) {
	switch LBMode(s) {
	case "", LBModeSNAT:
		return LBModeSNAT, nil
	case LBModeDSR, LBModeHybrid:
		return LBMode(s), nil
	}
	return "", fmt.Errorf("lb mode %q: want snat, dsr or hybrid", s)
}

// knob is the value of lb_mode.
func (m LBMode) knob() uint8 {
	switch m {
	case LBModeDSR:
		return 1
	case LBModeHybrid:
		return 2
	}
	return 0
}

func (o HostOptions) apply(spec *ebpf.CollectionSpec) error {
	if _, err := ParseLBMode(string(o.LBMode)); err != nil {
		return err
	}
	if k := o.LBMode.knob(); k != 0 {
		if err := setKnob(spec, "lb_mode", k); err != nil {
			return err
		}
	}
	if o.SNATAddr.IsValid() {
		if err := maputil.CheckV4("SNAT", o.SNATAddr); err != nil {
			return err
		}
		if err := setKnob(spec, "snat_ipv4", maputil.Be32(o.SNATAddr)); err != nil {
			return err
		}
	}
	if o.SNATPortMin != 0 || o.SNATPortMax != 0 {
		if o.SNATPortMin == 0 || o.SNATPortMax < o.SNATPortMin {
			return fmt.Errorf("SNAT port range %d-%d is invalid", o.SNATPortMin, o.SNATPortMax)
		}
		if err := setKnob(spec, "snat_port_min", o.SNATPortMin); err != nil {
			return err
		}
		if err := setKnob(spec, "snat_port_max", o.SNATPortMax); err != nil {
			return err
		}
	}
	return nil
}
