package flows

import (
	"context"
	"net/netip"
	"time"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/monitor"
	"github.com/sluicenet/sluice/policy"
)

// Processes names the local process behind a connection (the process
// sensor's connection table).
type Processes interface {
	ProcessForFlow(proto uint8, src, dst netip.AddrPort) (api.ProcessRef, bool)
}

// JoinDelay is how long a TCP or UDP flow that names no process yet waits
// for one. A TCP connection is known to the sensor once it is established,
// after the flow event of its first packet: the join waits for the reply.
const JoinDelay = 100 * time.Millisecond

// pendingFlow is a flow waiting for its process.
type pendingFlow struct {
	flow     api.Flow
	src, dst netip.AddrPort
	orig     netip.AddrPort
	proto    uint8
	due      time.Time
}

// SetProcesses makes flows name their local process; call before Run.
func (o *Observer) SetProcesses(p Processes) {
	o.procs = p
	o.pending = make(chan pendingFlow, 4096)
}

// addFlow records a converted flow, naming its process; a TCP or UDP flow
// whose process is not known yet waits up to JoinDelay for it (in order,
// on the join loop), unless the wait queue is full.
func (o *Observer) addFlow(f monitor.Flow, out api.Flow) {
	if o.procs == nil || (f.Proto != policy.ProtoTCP && f.Proto != policy.ProtoUDP) {
		o.Add(out)
		return
	}
	p := pendingFlow{flow: out, src: f.Src, dst: f.Dst, orig: f.OrigDst, proto: f.Proto, due: time.Now().Add(JoinDelay)}
	if o.name(&p) {
		o.Add(p.flow)
		return
	}
	select {
	case o.pending <- p:
	default:
		o.Add(out)
	}
}

// name looks the flow's process up, by the translated destination and then
// by the service address (per-packet translation: the socket asked for it).
func (o *Observer) name(p *pendingFlow) bool {
	for _, dst := range []netip.AddrPort{p.dst, p.orig} {
		if !dst.IsValid() {
			continue
		}
		if ref, ok := o.procs.ProcessForFlow(p.proto, p.src, dst); ok {
			p.flow.Process = &ref
			return true
		}
	}
	return false
}

// joinLoop releases waiting flows when their process is known or their
// wait is over, until ctx ends.
func (o *Observer) joinLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-o.pending:
			for !o.name(&p) && time.Now().Before(p.due) {
				select {
				case <-ctx.Done():
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
			o.Add(p.flow)
		}
	}
}
