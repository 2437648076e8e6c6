package datapath

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

const unixE2BIG = unix.E2BIG

// Reason says why a packet was forwarded or dropped (mirrors enum sluice_reason).
type Reason uint8

// Reasons, from the generated mirror of enum sluice_reason.
const (
	ReasonFwdLocal              = Reason(lxcSluiceReasonREASON_FWD_LOCAL)
	ReasonFwdStack              = Reason(lxcSluiceReasonREASON_FWD_STACK)
	ReasonFwdToEndpoint         = Reason(lxcSluiceReasonREASON_FWD_TO_EP)
	ReasonLBTranslated          = Reason(lxcSluiceReasonREASON_LB_TRANSLATED)
	ReasonLBRevNAT              = Reason(lxcSluiceReasonREASON_LB_REV_NAT)
	DropInvalid                 = Reason(lxcSluiceReasonDROP_INVALID)
	DropSpoofIP                 = Reason(lxcSluiceReasonDROP_SPOOF_IP)
	DropSpoofMAC                = Reason(lxcSluiceReasonDROP_SPOOF_MAC)
	DropARPSpoof                = Reason(lxcSluiceReasonDROP_ARP_SPOOF)
	DropUnsupportedL3           = Reason(lxcSluiceReasonDROP_UNSUPPORTED_L3)
	DropNoServiceBackend        = Reason(lxcSluiceReasonDROP_NO_SERVICE_BACKEND)
	DropNoLocalBackend          = Reason(lxcSluiceReasonDROP_NO_LOCAL_BACKEND)
	DropCTMapFull               = Reason(lxcSluiceReasonDROP_CT_MAP_FULL)
	DropNATFailed               = Reason(lxcSluiceReasonDROP_NAT_FAILED)
	ReasonPolicyAudit           = Reason(lxcSluiceReasonREASON_POLICY_AUDIT)
	DropPolicy                  = Reason(lxcSluiceReasonDROP_POLICY)
	DropPolicyDeny              = Reason(lxcSluiceReasonDROP_POLICY_DENY)
	ReasonLBSNAT                = Reason(hostSluiceReasonREASON_LB_SNAT)
	ReasonLBRevSNAT             = Reason(hostSluiceReasonREASON_LB_REV_SNAT)
	DropNoRoute                 = Reason(hostSluiceReasonDROP_NO_ROUTE)
	DropNATNoPort               = Reason(hostSluiceReasonDROP_NAT_NO_PORT)
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
	DirEgress  = Direction(lxcSluiceDirectionDIR_EGRESS)
	DirIngress = Direction(lxcSluiceDirectionDIR_INGRESS)
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

// Counter is one sluice_metrics entry summed over CPUs.
type Counter struct {
	Ifindex   uint32
	Reason    Reason
	Direction Direction
	Packets   uint64
	Bytes     uint64
}

// Counters reads sluice_metrics, summing the per-CPU values.
func (d *Datapath) Counters() ([]Counter, error) {
	var (
		key  lxcMetricsKey
		vals []lxcMetricsValue
		out  []Counter
	)
	it := d.objs.SluiceMetrics.Iterate()
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

// DeleteCounters removes the counters of ifindex (its pod is gone).
func (d *Datapath) DeleteCounters(ifindex uint32) error {
	var (
		key  lxcMetricsKey
		vals []lxcMetricsValue
		del  []lxcMetricsKey
	)
	it := d.objs.SluiceMetrics.Iterate()
	for it.Next(&key, &vals) {
		if key.Ifindex == ifindex {
			del = append(del, key)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate sluice_metrics: %w", err)
	}
	for i := range del {
		if err := d.objs.SluiceMetrics.Delete(&del[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete counters of ifindex %d: %w", ifindex, err)
		}
	}
	return nil
}
