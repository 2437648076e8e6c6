package flows

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/monitor"
	"github.com/sluicenet/sluice/policy"
)

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// flow returns a flow numbered n (its DstPort), the verdict alternating.
func flow(n int) api.Flow {
	v := "FORWARDED"
	if n%2 == 1 {
		v = "DROPPED"
	}
	return api.Flow{Verdict: v, Direction: "ingress", DstPort: uint16(n)}
}

func ports(fs []api.Flow) []int {
	out := make([]int, 0, len(fs))
	for _, f := range fs {
		out = append(out, int(f.DstPort))
	}
	return out
}

func TestHistoryRing(t *testing.T) {
	tests := []struct {
		name   string
		added  int
		filter api.FlowFilter
		want   []int
	}{
		{name: "empty", added: 0, want: []int{}},
		{name: "not full", added: 3, want: []int{0, 1, 2}},
		{name: "exactly full", added: 4, want: []int{0, 1, 2, 3}},
		{name: "wrapped keeps the newest oldest first", added: 10, want: []int{6, 7, 8, 9}},
		{name: "filter", added: 10, filter: api.FlowFilter{Verdict: "dropped"}, want: []int{7, 9}},
		{name: "last", added: 10, filter: api.FlowFilter{Last: 3}, want: []int{7, 8, 9}},
		{name: "last over what matches", added: 10, filter: api.FlowFilter{Verdict: "FORWARDED", Last: 5}, want: []int{6, 8}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := New(4, nil, nil, quietLog())
			for i := range tc.added {
				o.Add(flow(i))
			}
			assert.Equal(t, tc.want, ports(o.History(tc.filter)))
		})
	}
}

func TestDefaultCapacity(t *testing.T) {
	o := New(0, nil, nil, quietLog())
	for i := range DefaultCapacity + 1 {
		o.Add(flow(i))
	}
	h := o.History(api.FlowFilter{})
	require.Len(t, h, DefaultCapacity)
	assert.Equal(t, uint16(1), h[0].DstPort)
}

func TestFollow(t *testing.T) {
	reg := prometheus.NewRegistry()
	o := New(8, nil, reg, quietLog())
	o.Add(flow(0))
	o.Add(flow(1))
	hist, ch, cancel := o.Follow(api.FlowFilter{Verdict: "DROPPED"}, 1)
	assert.Equal(t, []int{1}, ports(hist), "history is filtered")

	o.Add(flow(2)) // delivered, unfiltered
	o.Add(flow(3)) // the follower's buffer is full: lost
	assert.Equal(t, uint16(2), (<-ch).DstPort)
	select {
	case f := <-ch:
		t.Fatalf("unexpected flow %d", f.DstPort)
	default:
	}
	assert.Equal(t, 1.0, value(t, o.lost))

	cancel()
	o.Add(flow(4))
	select {
	case f := <-ch:
		t.Fatalf("flow %d after cancel", f.DstPort)
	default:
	}
	assert.Equal(t, 1.0, value(t, o.lost), "a cancelled follower loses nothing")
	assert.Equal(t, 3.0, value(t, o.verdicts.WithLabelValues("FORWARDED", "ingress", "")))
	assert.Equal(t, 2.0, value(t, o.verdicts.WithLabelValues("DROPPED", "ingress", "")))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var registered []string
	for _, mf := range mfs {
		registered = append(registered, mf.GetName())
	}
	assert.ElementsMatch(t, []string{"sluice_policy_verdicts_total", "sluice_policy_rule_verdicts_total", "sluice_flows_follower_dropped_total"}, registered)
}

// Verdicts are counted by the rule that decided; a flow no rule decided
// counts under rule "".
func TestRuleVerdicts(t *testing.T) {
	o := New(4, nil, prometheus.NewRegistry(), quietLog())
	allowed, denied := flow(0), flow(1)
	allowed.Rule = "x/allow-a[ingress:0]"
	denied.Verdict = "DROPPED"
	o.Add(allowed)
	o.Add(allowed)
	o.Add(denied)
	assert.Equal(t, 2.0, value(t, o.ruleVerdicts.WithLabelValues("x/allow-a[ingress:0]", allowed.Verdict, allowed.Direction)))
	assert.Equal(t, 1.0, value(t, o.ruleVerdicts.WithLabelValues("", "DROPPED", denied.Direction)))
	assert.Equal(t, 0.0, value(t, o.ruleVerdicts.WithLabelValues("x/allow-a[ingress:0]", "DROPPED", denied.Direction)))
}

func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}

// names resolves from fixed tables.
type names struct{}

func (names) EndpointPod(id uint16) string { return fmt.Sprintf("default/ep-%d", id) }
func (names) PodByIP(a netip.Addr) string {
	if a == netip.MustParseAddr("10.0.0.1") {
		return "default/client"
	}
	return ""
}
func (names) IdentityLabels(id uint32) []string { return []string{fmt.Sprintf("k8s:id=%d", id)} }
func (names) Rule(id uint32) (policy.RuleRef, bool) {
	return policy.RuleRef{Kind: "NetworkPolicy", Name: "allow", Section: "ingress"}, id == 7
}
func (names) FormatRule(r policy.RuleRef) string { return r.Name + "[0]" }

// reader yields fixed events, then err.
type reader struct {
	flows  []monitor.Flow
	err    error
	closed bool
}

func (r *reader) Read() (monitor.Flow, error) {
	if len(r.flows) == 0 {
		return monitor.Flow{}, r.err
	}
	f := r.flows[0]
	r.flows = r.flows[1:]
	return f, nil
}

func (r *reader) Close() error { r.closed = true; return nil }

func TestRunConverts(t *testing.T) {
	now := time.Unix(1700000000, 0)
	src := netip.MustParseAddrPort("10.0.0.1:40000")
	dst := netip.MustParseAddrPort("10.0.0.2:8080")
	svc := netip.MustParseAddrPort("10.96.0.10:80")
	boom := errors.New("ring buffer gone")
	r := &reader{err: boom, flows: []monitor.Flow{
		{Time: now, Verdict: monitor.VerdictForwarded, Ingress: true, Src: src, Dst: dst, Proto: 6,
			OrigDst: svc, SrcIdentity: 300, DstIdentity: 301, EndpointID: 5, Ifindex: 9, RuleID: 7},
		{Time: now, Verdict: monitor.VerdictDropped, Src: src, Dst: dst, Proto: 17, EndpointID: 5},
	}}
	o := New(8, names{}, nil, quietLog())
	require.ErrorIs(t, o.Run(context.Background(), r), boom, "a read failure ends Run")
	got := o.History(api.FlowFilter{})
	require.Len(t, got, 2)
	assert.Equal(t, api.Flow{
		Time: now, Verdict: "FORWARDED", Direction: "ingress", Protocol: "TCP",
		Source: "10.0.0.1:40000", Destination: "10.0.0.2:8080", OrigDest: "10.96.0.10:80",
		SrcIdentity: 300, DstIdentity: 301, SrcPod: "default/client",
		SrcLabels: []string{"k8s:id=300"}, DstLabels: []string{"k8s:id=301"},
		EndpointID: 5, EndpointPod: "default/ep-5", RuleID: 7, Rule: "allow[0]",
		RuleKind: "NetworkPolicy", RuleSection: "ingress", Ifindex: 9, DstPort: 8080,
	}, got[0])
	assert.Equal(t, "DROPPED", got[1].Verdict)
	assert.Equal(t, "egress", got[1].Direction)
	assert.Equal(t, "UDP", got[1].Protocol)
	assert.Empty(t, got[1].OrigDest, "no translation, no original destination")
	assert.Empty(t, got[1].Rule, "rule 0 names no rule")

	// A deadline is not a failure; a cancelled context ends Run cleanly
	// and closes the reader.
	ctx, cancel := context.WithCancel(context.Background())
	r = &reader{err: fmt.Errorf("poll: %w", os.ErrDeadlineExceeded)}
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx, r) }()
	time.Sleep(10 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
