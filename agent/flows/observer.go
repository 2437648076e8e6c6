package flows

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/ring"
	"github.com/sluicenet/sluice/datapath/monitor"
	"github.com/sluicenet/sluice/policy"
)

// DefaultCapacity is the number of flows the ring keeps.
const DefaultCapacity = 8192

// Reader yields flow events (implemented by *monitor.Reader).
type Reader interface {
	Read() (monitor.Flow, error)
	Close() error
}

// Names resolves what flow events carry as numbers.
type Names interface {
	// EndpointPod names a local endpoint's pod ("namespace/name").
	EndpointPod(epID uint16) string
	// PodByIP names the pod that has addr.
	PodByIP(addr netip.Addr) string
	// IdentityLabels returns an identity's labels in string form.
	IdentityLabels(id uint32) []string
	// Rule returns the rule behind a rule ID.
	Rule(id uint32) (policy.RuleRef, bool)
	// FormatRule names a rule for display.
	FormatRule(policy.RuleRef) string
}

// Observer keeps recent flows and streams new ones.
type Observer struct {
	names Names
	log   logrus.FieldLogger

	ring *ring.Ring[api.Flow]

	procs   Processes        // nil: flows name no process
	pending chan pendingFlow // flows waiting for their process

	verdicts *prometheus.CounterVec
	// ruleVerdicts counts the verdicts by the rule that decided.
	ruleVerdicts *prometheus.CounterVec
	lost         prometheus.Counter
	total        atomic.Uint64 // flows added (Total)
}

// New returns an observer keeping capacity flows (DefaultCapacity when <= 0)
// and registers its counters with reg (may be nil).
func New(capacity int, names Names, reg prometheus.Registerer, log logrus.FieldLogger) *Observer {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	o := &Observer{
		names: names, log: log,
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_policy_verdicts_total",
			Help: "Policy verdicts reported by flow events, by verdict, direction and reason.",
		}, []string{"verdict", "direction", "reason"}),
		ruleVerdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_policy_rule_verdicts_total",
			Help: "Policy verdicts reported by flow events, by the rule that decided (ns/name[section:i]; \"\" for default deny or no policy), verdict and direction.",
		}, []string{"rule", "verdict", "direction"}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_flows_follower_dropped_total",
			Help: "Flows not delivered to a slow follower.",
		}),
	}
	o.ring = ring.New[api.Flow](capacity, o.lost.Inc)
	if reg != nil {
		reg.MustRegister(o.verdicts, o.ruleVerdicts, o.lost)
	}
	return o
}

// Run reads r until ctx ends (closing r) or r fails.
func (o *Observer) Run(ctx context.Context, r Reader) error {
	stop := context.AfterFunc(ctx, func() { r.Close() })
	defer stop()
	if o.procs != nil {
		jctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go o.joinLoop(jctx)
	}
	for {
		f, err := r.Read()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return err
		}
		o.addFlow(f, o.convert(f))
	}
}

// convert names a flow event's numbers.
func (o *Observer) convert(f monitor.Flow) api.Flow {
	dir := "egress"
	if f.Ingress {
		dir = "ingress"
	}
	out := api.Flow{
		Time: f.Time, Verdict: f.Verdict.String(), Direction: dir,
		Protocol: policy.ProtoName(f.Proto), Source: f.Src.String(), Destination: f.Dst.String(),
		SrcIdentity: f.SrcIdentity, DstIdentity: f.DstIdentity, EndpointID: f.EndpointID,
		RuleID: f.RuleID, Ifindex: f.Ifindex, DstPort: f.Dst.Port(),
	}
	if f.Reason != 0 {
		out.Reason = f.Reason.String()
	}
	if f.OrigDst.IsValid() {
		out.OrigDest = f.OrigDst.String()
	}
	if o.names != nil {
		out.EndpointPod = o.names.EndpointPod(f.EndpointID)
		out.SrcPod = o.names.PodByIP(f.Src.Addr())
		out.DstPod = o.names.PodByIP(f.Dst.Addr())
		out.SrcLabels = o.names.IdentityLabels(f.SrcIdentity)
		out.DstLabels = o.names.IdentityLabels(f.DstIdentity)
		if r, ok := o.names.Rule(f.RuleID); ok {
			out.Rule = o.names.FormatRule(r)
			out.RuleKind, out.RuleSection = r.Kind, r.Section
		}
	}
	return out
}

// Add records a flow: into the ring, the counters and every follower. A
// follower that cannot keep up loses the flow (counted).
func (o *Observer) Add(f api.Flow) {
	o.verdicts.WithLabelValues(f.Verdict, f.Direction, f.Reason).Inc()
	o.ruleVerdicts.WithLabelValues(f.Rule, f.Verdict, f.Direction).Inc()
	o.total.Add(1)
	o.ring.Add(f)
}

// Total returns how many flows were added since the start.
func (o *Observer) Total() uint64 { return o.total.Load() }

// History returns the kept flows the filter selects, oldest first, at most
// f.Last of them when f.Last > 0.
func (o *Observer) History(f api.FlowFilter) []api.Flow {
	return o.ring.History(f.Match, f.Last)
}

// Follow returns the kept flows the filter selects and a channel of new
// flows (unfiltered), atomically, so nothing falls in between. Call cancel
// when done.
func (o *Observer) Follow(f api.FlowFilter, buffer int) (history []api.Flow, ch <-chan api.Flow, cancel func()) {
	return o.ring.Follow(f.Match, f.Last, buffer)
}
