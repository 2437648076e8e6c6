// Package metricsmap is the datapath's counters: packets and bytes per
// interface, reason and direction (sluice_metrics_v1, with its per-CPU front
// sluice_metrics_fast_v1 for the forwarding reasons), and the socket-LB
// hooks' counters per reason (sluice_sock_metrics_v1), all per CPU.
package metricsmap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/maputil"
	"github.com/sluicenet/sluice/datapath/pin"
)

// Name is the pinned name of the counters map.
const Name = "sluice_metrics_v1"

// FastName is the pinned name of the per-CPU front of Name (bpf/lib/maps.h):
// slots of (key, counts) that a key's count is also spread over.
const FastName = "sluice_metrics_fast_v1"

// Map is the counters maps of a loaded datapath.
type Map struct{ m, fast *ebpf.Map }

// New returns the handle of sluice_metrics_v1 and sluice_metrics_fast_v1
// (nil for programs built before it existed).
func New(m, fast *ebpf.Map) *Map { return &Map{m: m, fast: fast} }

// Reason says why a packet was forwarded or dropped (mirrors enum sluice_reason).
type Reason uint8

// Reasons, from the generated mirror of enum sluice_reason.
const (
	ReasonFwdLocal              = Reason(bpfgen.LxcSluiceReasonREASON_FWD_LOCAL)
	ReasonFwdStack              = Reason(bpfgen.LxcSluiceReasonREASON_FWD_STACK)
	ReasonFwdToEndpoint         = Reason(bpfgen.LxcSluiceReasonREASON_FWD_TO_EP)
	ReasonLBTranslated          = Reason(bpfgen.LxcSluiceReasonREASON_LB_TRANSLATED)
	ReasonLBRevNAT              = Reason(bpfgen.LxcSluiceReasonREASON_LB_REV_NAT)
	DropInvalid                 = Reason(bpfgen.LxcSluiceReasonDROP_INVALID)
	DropSpoofIP                 = Reason(bpfgen.LxcSluiceReasonDROP_SPOOF_IP)
	DropSpoofMAC                = Reason(bpfgen.LxcSluiceReasonDROP_SPOOF_MAC)
	DropARPSpoof                = Reason(bpfgen.LxcSluiceReasonDROP_ARP_SPOOF)
	DropUnsupportedL3           = Reason(bpfgen.LxcSluiceReasonDROP_UNSUPPORTED_L3)
	DropNoServiceBackend        = Reason(bpfgen.LxcSluiceReasonDROP_NO_SERVICE_BACKEND)
	DropNoLocalBackend          = Reason(bpfgen.LxcSluiceReasonDROP_NO_LOCAL_BACKEND)
	DropCTMapFull               = Reason(bpfgen.LxcSluiceReasonDROP_CT_MAP_FULL)
	DropNATFailed               = Reason(bpfgen.LxcSluiceReasonDROP_NAT_FAILED)
	ReasonPolicyAudit           = Reason(bpfgen.LxcSluiceReasonREASON_POLICY_AUDIT)
	DropPolicy                  = Reason(bpfgen.LxcSluiceReasonDROP_POLICY)
	DropPolicyDeny              = Reason(bpfgen.LxcSluiceReasonDROP_POLICY_DENY)
	ReasonLBSNAT                = Reason(bpfgen.HostSluiceReasonREASON_LB_SNAT)
	ReasonLBRevSNAT             = Reason(bpfgen.HostSluiceReasonREASON_LB_REV_SNAT)
	DropNoRoute                 = Reason(bpfgen.HostSluiceReasonDROP_NO_ROUTE)
	DropNATNoPort               = Reason(bpfgen.HostSluiceReasonDROP_NAT_NO_PORT)
	ReasonXDPLBSNAT             = Reason(bpfgen.HostSluiceReasonREASON_XDP_LB_SNAT)
	ReasonXDPLBRevSNAT          = Reason(bpfgen.HostSluiceReasonREASON_XDP_LB_REV_SNAT)
	ReasonLBDSR                 = Reason(bpfgen.HostSluiceReasonREASON_LB_DSR)
	ReasonLBDSRRx               = Reason(bpfgen.HostSluiceReasonREASON_LB_DSR_RX)
	ReasonLBDSRRevNAT           = Reason(bpfgen.HostSluiceReasonREASON_LB_DSR_REV_NAT)
	DropDSRInvalid              = Reason(bpfgen.HostSluiceReasonDROP_DSR_INVALID)
	ReasonXDPLBDSR              = Reason(bpfgen.HostSluiceReasonREASON_XDP_LB_DSR)
	firstDropReason      Reason = 128
)

var reasonNames = map[Reason]string{
	ReasonFwdLocal:       "forward-local",
	ReasonFwdStack:       "forward-stack",
	ReasonFwdToEndpoint:  "forward-to-endpoint",
	ReasonLBTranslated:   "lb-translated",
	ReasonLBRevNAT:       "lb-reverse-nat",
	DropInvalid:          "drop-invalid-packet",
	DropSpoofIP:          "drop-spoofed-source-ip",
	DropSpoofMAC:         "drop-spoofed-source-mac",
	DropARPSpoof:         "drop-spoofed-arp",
	DropUnsupportedL3:    "drop-unsupported-l3",
	DropNoServiceBackend: "drop-no-service-backend",
	DropNoLocalBackend:   "drop-no-local-backend",
	DropCTMapFull:        "drop-ct-map-full",
	DropNATFailed:        "drop-nat-failed",
	ReasonPolicyAudit:    "policy-audit",
	DropPolicy:           "drop-policy",
	DropPolicyDeny:       "drop-policy-deny",
	ReasonLBSNAT:         "lb-snat",
	ReasonLBRevSNAT:      "lb-reverse-snat",
	ReasonXDPLBSNAT:      "xdp-lb-snat",
	ReasonXDPLBRevSNAT:   "xdp-lb-reverse-snat",
	ReasonLBDSR:          "lb-dsr",
	ReasonLBDSRRx:        "lb-dsr-receive",
	ReasonLBDSRRevNAT:    "lb-dsr-reverse-nat",
	DropDSRInvalid:       "drop-dsr-invalid",
	ReasonXDPLBDSR:       "xdp-lb-dsr",
	DropNoRoute:          "drop-no-route",
	DropNATNoPort:        "drop-nat-no-port",
}

func (r Reason) String() string {
	if s, ok := reasonNames[r]; ok {
		return s
	}
	return fmt.Sprintf("reason-%d", uint8(r))
}

// IsDrop reports whether r is a drop reason.
func (r Reason) IsDrop() bool { return r >= firstDropReason }

// Direction is relative to the pod (mirrors enum sluice_direction).
type Direction uint8

// Directions.
const (
	DirEgress  = Direction(bpfgen.LxcSluiceDirectionDIR_EGRESS)
	DirIngress = Direction(bpfgen.LxcSluiceDirectionDIR_INGRESS)
)

func (d Direction) String() string {
	switch d {
	case DirEgress:
		return "egress"
	case DirIngress:
		return "ingress"
	}
	return fmt.Sprintf("direction-%d", uint8(d))
}

// Counter is one sluice_metrics_v1 entry summed over CPUs.
type Counter struct {
	Ifindex   uint32
	Reason    Reason
	Direction Direction
	Packets   uint64
	Bytes     uint64
}

// Counters reads sluice_metrics_v1 and its fast slots, summing the per-CPU
// values: one Counter per key.
func (m *Map) Counters() ([]Counter, error) {
	cs, err := counters(m.m)
	if err != nil || m.fast == nil {
		return cs, err
	}
	return addFast(cs, m.fast)
}

// PinnedCounters reads the counters as pinned under root by a running
// agent, without loading anything (for tests and tools).
func PinnedCounters(root string) ([]Counter, error) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(pin.MapsDir(root), Name), nil)
	if err != nil {
		return nil, fmt.Errorf("open pinned %s: %w", Name, err)
	}
	defer m.Close()
	fast, err := ebpf.LoadPinnedMap(filepath.Join(pin.MapsDir(root), FastName), nil)
	if errors.Is(err, os.ErrNotExist) {
		return counters(m) // pinned by an agent from before the fast slots
	}
	if err != nil {
		return nil, fmt.Errorf("open pinned %s: %w", FastName, err)
	}
	defer fast.Close()
	return New(m, fast).Counters()
}

type counterKey struct {
	ifindex uint32
	reason  Reason
	dir     Direction
}

// addFast adds every CPU's claimed fast slot to the Counter of its key.
func addFast(cs []Counter, fast *ebpf.Map) ([]Counter, error) {
	index := make(map[counterKey]int, len(cs))
	for i, c := range cs {
		index[counterKey{c.Ifindex, c.Reason, c.Direction}] = i
	}
	var (
		slot  uint32
		slots []bpfgen.LxcMetricsFastSlot
	)
	it := fast.Iterate()
	for it.Next(&slot, &slots) {
		for _, v := range slots {
			if v.Ifindex == 0 {
				continue
			}
			k := counterKey{v.Ifindex, Reason(v.Reason), Direction(v.Dir)}
			i, ok := index[k]
			if !ok {
				i = len(cs)
				index[k] = i
				cs = append(cs, Counter{Ifindex: k.ifindex, Reason: k.reason, Direction: k.dir})
			}
			cs[i].Packets += v.Packets
			cs[i].Bytes += v.Bytes
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate %s: %w", FastName, err)
	}
	return cs, nil
}

func counters(m *ebpf.Map) ([]Counter, error) {
	var (
		key  bpfgen.LxcMetricsKey
		vals []bpfgen.LxcMetricsValue
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
		return nil, fmt.Errorf("iterate %s: %w", Name, err)
	}
	return out, nil
}

// DeleteCounters removes the counters of ifindex (its pod is gone).
func (m *Map) DeleteCounters(ifindex uint32) error {
	var (
		key  bpfgen.LxcMetricsKey
		vals []bpfgen.LxcMetricsValue
		del  []bpfgen.LxcMetricsKey
	)
	it := m.m.Iterate()
	for it.Next(&key, &vals) {
		if key.Ifindex == ifindex {
			del = append(del, key)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate %s: %w", Name, err)
	}
	for i := range del {
		if err := maputil.Delete(m.m, &del[i]); err != nil {
			return fmt.Errorf("delete counters of ifindex %d: %w", ifindex, err)
		}
	}
	if m.fast == nil {
		return nil
	}
	return freeFast(m.fast, ifindex)
}

// freeFast frees every CPU's fast slot that ifindex holds. The slot's value
// is written for all CPUs at once, so a packet another CPU counts in the same
// slot index for another key between the read and the write is lost: the
// interface is gone, and a collision on one of 1024 slots is rare.
func freeFast(fast *ebpf.Map, ifindex uint32) error {
	var (
		slot  uint32
		slots []bpfgen.LxcMetricsFastSlot
		dirty []uint32
	)
	it := fast.Iterate()
	for it.Next(&slot, &slots) {
		for _, v := range slots {
			if v.Ifindex == ifindex {
				dirty = append(dirty, slot)
				break
			}
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate %s: %w", FastName, err)
	}
	for _, k := range dirty {
		if err := fast.Lookup(&k, &slots); err != nil {
			return fmt.Errorf("read %s slot %d: %w", FastName, k, err)
		}
		for i := range slots {
			if slots[i].Ifindex == ifindex {
				slots[i] = bpfgen.LxcMetricsFastSlot{}
			}
		}
		if err := fast.Put(&k, slots); err != nil {
			return fmt.Errorf("free %s slot %d of ifindex %d: %w", FastName, k, ifindex, err)
		}
	}
	return nil
}
