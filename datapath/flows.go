package datapath

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// flowCfgNoForwarded mirrors FLOW_CFG_NO_FORWARDED (bpf/lib/flow.h).
const flowCfgNoForwarded = 1 << 0

// Verdict is what happened to a flow (mirrors enum flow_verdict).
type Verdict uint8

// Verdicts.
const (
	VerdictForwarded = Verdict(lxcFlowVerdictFLOW_FORWARDED)
	VerdictDropped   = Verdict(lxcFlowVerdictFLOW_DROPPED)
	// VerdictAudit: policy would have dropped it; audit mode forwarded it.
	VerdictAudit = Verdict(lxcFlowVerdictFLOW_AUDIT)
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
// flow (unless SetForwardedFlowEvents(false)), once per enforcement point: a
// flow between two pods of the node gives an egress event of the sender and
// an ingress event of the receiver.
type Flow struct {
	Time    time.Time
	Verdict Verdict
	// Reason is the drop (or, for audit, would-drop) reason, or how an
	// allowed packet is delivered.
	Reason Reason
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

// FlowReader reads flow events from the ring buffer. There is one consumer
// position per ring buffer: run one reader per datapath.
type FlowReader struct {
	rd       *ringbuf.Reader
	wallBase time.Time
	monoBase int64
}

// NewFlowReader opens the flow event ring buffer.
func (d *Datapath) NewFlowReader() (*FlowReader, error) {
	rd, err := ringbuf.NewReader(d.objs.SluiceFlows)
	if err != nil {
		return nil, fmt.Errorf("open flow ring buffer: %w", err)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		rd.Close()
		return nil, fmt.Errorf("read CLOCK_MONOTONIC: %w", err)
	}
	return &FlowReader{rd: rd, wallBase: time.Now(), monoBase: ts.Nano()}, nil
}

// Read blocks until a flow event arrives. After Close it returns an error
// matching os.ErrClosed.
func (r *FlowReader) Read() (Flow, error) {
	rec, err := r.rd.Read()
	if err != nil {
		return Flow{}, fmt.Errorf("read flow event: %w", err)
	}
	var ev lxcFlowEvent
	if err := binary.Read(bytes.NewReader(rec.RawSample), binary.NativeEndian, &ev); err != nil {
		return Flow{}, fmt.Errorf("decode flow event: %w", err)
	}
	return r.flowOf(ev), nil
}

// SetDeadline makes Read return os.ErrDeadlineExceeded once t has passed
// without an event (zero: no deadline).
func (r *FlowReader) SetDeadline(t time.Time) { r.rd.SetDeadline(t) }

// Close unblocks Read and releases the reader.
func (r *FlowReader) Close() error { return r.rd.Close() }

func (r *FlowReader) flowOf(ev lxcFlowEvent) Flow {
	f := Flow{
		Time:        r.wallBase.Add(time.Duration(int64(ev.Ktime) - r.monoBase)),
		Verdict:     Verdict(ev.Verdict),
		Reason:      Reason(ev.Reason),
		Ingress:     ev.Dir == uint8(DirIngress),
		Src:         netip.AddrPortFrom(addrFromBe32(ev.Saddr), portFromBe16(ev.Sport)),
		Dst:         netip.AddrPortFrom(addrFromBe32(ev.Daddr), portFromBe16(ev.Dport)),
		Proto:       ev.Proto,
		SrcIdentity: ev.SrcIdentity,
		DstIdentity: ev.DstIdentity,
		EndpointID:  ev.EpId,
		Ifindex:     ev.Ifindex,
		RuleID:      ev.RuleId,
	}
	if ev.OrigDaddr != 0 {
		f.OrigDst = netip.AddrPortFrom(addrFromBe32(ev.OrigDaddr), portFromBe16(ev.OrigDport))
	}
	return f
}

// SetForwardedFlowEvents turns events for allowed flows on (the default) or
// off at runtime; drops and audits are always reported.
func (d *Datapath) SetForwardedFlowEvents(on bool) error {
	var (
		zero uint32
		v    lxcFlowConfig
	)
	if !on {
		v.Flags = flowCfgNoForwarded
	}
	if err := d.objs.SluiceFlowConfigV1.Update(&zero, &v, ebpf.UpdateAny); err != nil {
		return mapError("sluice_flow_config_v1", err)
	}
	return nil
}

// FlowEventsLost returns how many flow events found the ring buffer full.
func (d *Datapath) FlowEventsLost() (uint64, error) {
	var (
		zero uint32
		vals []uint64
		sum  uint64
	)
	if err := d.objs.SluiceFlowsLost.Lookup(&zero, &vals); err != nil {
		return 0, fmt.Errorf("lookup sluice_flows_lost: %w", err)
	}
	for _, v := range vals {
		sum += v
	}
	return sum, nil
}
