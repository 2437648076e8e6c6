// Package monitor reads what the datapath reports about flows: the flow
// event ring buffer (sluice_flows_v1), its runtime config
// (sluice_flow_config_v1) and the count of events lost to a full ring
// (sluice_flows_lost_v1).
package monitor

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/maputil"
	"github.com/sluicenet/sluice/datapath/metricsmap"
)

// Flows is the flow event maps of a loaded datapath.
type Flows struct {
	ring, config, lost *ebpf.Map
}

// New returns the handle of sluice_flows_v1, sluice_flow_config_v1 and
// sluice_flows_lost_v1.
func New(ring, config, lost *ebpf.Map) *Flows { return &Flows{ring: ring, config: config, lost: lost} }

// flowCfgNoForwarded mirrors FLOW_CFG_NO_FORWARDED (bpf/lib/flow.h).
const flowCfgNoForwarded = 1 << 0

// Verdict is what happened to a flow (mirrors enum flow_verdict).
type Verdict uint8

// Verdicts.
const (
	VerdictForwarded = Verdict(bpfgen.LxcFlowVerdictFLOW_FORWARDED)
	VerdictDropped   = Verdict(bpfgen.LxcFlowVerdictFLOW_DROPPED)
	// VerdictAudit: policy would have dropped it; audit mode forwarded it.
	VerdictAudit = Verdict(bpfgen.LxcFlowVerdictFLOW_AUDIT)
)

func (v Verdict) String() string {
	switch v {
	case VerdictForwarded:
		return "FORWARDED"
	case VerdictDropped:
		return "DROPPED"
	case VerdictAudit:
		return "AUDIT"
	}
	return fmt.Sprintf("verdict-%d", uint8(v))
}

// Flow is one flow event: a policy verdict on a packet. Events are emitted on
// every policy drop and audit, and on the first packet of every new allowed
// flow (unless SetForwardedEvents(false)), once per enforcement point: a
// flow between two pods of the node gives an egress event of the sender and
// an ingress event of the receiver.
type Flow struct {
	Time    time.Time
	Verdict Verdict
	// Reason is the drop (or, for audit, would-drop) reason, or how an
	// allowed packet is delivered.
	Reason metricsmap.Reason
	// Ingress: the decision was the ingress policy of EndpointID (else its
	// egress policy).
	Ingress bool
	// Src and Dst after service translation. For ICMP the ports are 0 and
	// Dst's port is the ICMP type.
	Src, Dst netip.AddrPort
	Proto    uint8
	// OrigDst is the service frontend when the packet was translated,
	// else the zero (invalid) AddrPort.
	OrigDst                  netip.AddrPort
	SrcIdentity, DstIdentity uint32
	EndpointID               uint16
	Ifindex                  uint32 // interface the packet was seen on
	RuleID                   uint32 // rule that decided, 0 = none (default verdict)
}

// Reader reads flow events from the ring buffer. There is one consumer
// position per ring buffer: run one reader per datapath.
type Reader struct {
	rd       *ringbuf.Reader
	wallBase time.Time
	monoBase int64
}

// NewReader opens the flow event ring buffer.
func (f *Flows) NewReader() (*Reader, error) {
	rd, err := ringbuf.NewReader(f.ring)
	if err != nil {
		return nil, fmt.Errorf("open flow ring buffer: %w", err)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		rd.Close()
		return nil, fmt.Errorf("read CLOCK_MONOTONIC: %w", err)
	}
	return &Reader{rd: rd, wallBase: time.Now(), monoBase: ts.Nano()}, nil
}

// Read blocks until a flow event arrives. After Close it returns an error
// matching os.ErrClosed.
func (r *Reader) Read() (Flow, error) {
	rec, err := r.rd.Read()
	if err != nil {
		return Flow{}, fmt.Errorf("read flow event: %w", err)
	}
	var ev bpfgen.LxcFlowEvent
	if err := binary.Read(bytes.NewReader(rec.RawSample), binary.NativeEndian, &ev); err != nil {
		return Flow{}, fmt.Errorf("decode flow event: %w", err)
	}
	return r.flowOf(ev), nil
}

// SetDeadline makes Read return os.ErrDeadlineExceeded once t has passed
// without an event (zero: no deadline).
func (r *Reader) SetDeadline(t time.Time) { r.rd.SetDeadline(t) }

// Close unblocks Read and releases the reader.
func (r *Reader) Close() error { return r.rd.Close() }

func (r *Reader) flowOf(ev bpfgen.LxcFlowEvent) Flow {
	f := Flow{
		Time:        r.wallBase.Add(time.Duration(int64(ev.Ktime) - r.monoBase)),
		Verdict:     Verdict(ev.Verdict),
		Reason:      metricsmap.Reason(ev.Reason),
		Ingress:     ev.Dir == uint8(metricsmap.DirIngress),
		Src:         maputil.AddrPort(ev.Saddr, ev.Sport),
		Dst:         maputil.AddrPort(ev.Daddr, ev.Dport),
		Proto:       ev.Proto,
		SrcIdentity: ev.SrcIdentity,
		DstIdentity: ev.DstIdentity,
		EndpointID:  ev.EpId,
		Ifindex:     ev.Ifindex,
		RuleID:      ev.RuleId,
	}
	if ev.OrigDaddr != 0 {
		f.OrigDst = maputil.AddrPort(ev.OrigDaddr, ev.OrigDport)
	}
	return f
}

// SetForwardedEvents turns events for allowed flows on (the default) or
// off at runtime; drops and audits are always reported.
func (f *Flows) SetForwardedEvents(on bool) error {
	var (
		zero uint32
		v    bpfgen.LxcFlowConfig
	)
	if !on {
		v.Flags = flowCfgNoForwarded
	}
	if err := f.config.Update(&zero, &v, ebpf.UpdateAny); err != nil {
		return maputil.UpdateError("sluice_flow_config_v1", err)
	}
	return nil
}

// Lost returns how many flow events found the ring buffer full.
func (f *Flows) Lost() (uint64, error) {
	var (
		zero uint32
		vals []uint64
	)
	if err := f.lost.Lookup(&zero, &vals); err != nil {
		return 0, fmt.Errorf("lookup sluice_flows_lost_v1: %w", err)
	}
	return maputil.SumPerCPU(vals), nil
}
