package tracingmgr

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/policy/tracing"
)

var (
	locked = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "locked"}}
	tests  = compiler{
		"global-nc":  {Mode: tracing.ModeEnforce, Execs: []tracing.ExecSelector{sigkill("/usr/bin/nc")}},
		"locked-nc":  {Mode: tracing.ModeEnforce, PodSelector: locked, Execs: []tracing.ExecSelector{sigkill("/usr/bin/nc")}},
		"locked-2":   {Mode: tracing.ModeMonitor, PodSelector: locked, Execs: []tracing.ExecSelector{sigkill("/bin/a"), sigkill("/bin/b")}},
		"ns-all":     {Execs: []tracing.ExecSelector{sigkill("/bin/sh")}},
		"bad-binary": {Execs: []tracing.ExecSelector{{Binaries: []tracing.BinaryMatch{{Op: "In"}}}}},
	}
	clusterRef = func(name string) tracing.Ref { return tracing.Ref{Kind: tracing.KindTracingPolicy, Name: name} }
	nsRef      = func(ns, name string) tracing.Ref {
		return tracing.Ref{Kind: tracing.KindTracingPolicyNamespaced, Namespace: ns, Name: name}
	}
)

func cluster(t *testing.T, name, compiled string) source.Raw {
	return raw(t, tracing.KindTracingPolicy, "", name, map[string]any{"compiled": compiled})
}

func namespaced(t *testing.T, ns, name, compiled string) source.Raw {
	return raw(t, tracing.KindTracingPolicyNamespaced, ns, name, map[string]any{"compiled": compiled})
}

func TestGlobalPolicyNeedsNoScope(t *testing.T) {
	h := newHarness(t, tests)
	h.m.SetObjects([]source.Raw{cluster(t, "no-nc", "global-nc"), {APIVersion: "v1", Kind: "ConfigMap", Name: "x"}})
	h.sync(t, false)
	require.Len(t, h.dp.rules, 1)
	r := h.dp.rules[0]
	assert.Equal(t, procsensor.ExecRule{Slot: 0, PolicyID: 1, Exact: []string{"/usr/bin/nc"}, Action: procsensor.ExecSigkill, Signal: 9, Enforce: true, Global: true}, r)
	assert.Empty(t, h.dp.scopes)
	assert.Equal(t, []api.TracingPolicy{{
		Kind: tracing.KindTracingPolicy, Name: "no-nc", Mode: "enforce", Accepted: true,
		Hooks: []api.TracingPolicyHook{{Table: "exec", Hook: "sched/sched_process_exec", Slots: []int{0}}},
	}}, h.m.List())

	// Nothing changed: nothing written; a full sync writes it again.
	h.dp.takeCalls()
	h.sync(t, false)
	assert.Empty(t, h.dp.takeCalls())
	h.sync(t, true)
	assert.Equal(t, []string{"rules 1"}, h.dp.takeCalls())
}

func TestScopesFollowPodsAndEndpoints(t *testing.T) {
	h := newHarness(t, tests)
	pathA, inoA := netnsFile(t, "a")
	pathB, inoB := netnsFile(t, "b")
	pathC, inoC := netnsFile(t, "c")
	h.eps.eps = []api.Endpoint{endpoint(1, pathA, "default", "a"), endpoint(2, pathB, "default", "b"), endpoint(3, pathC, "other", "c")}
	h.m.SetPods([]*corev1.Pod{
		pod("default", "a", map[string]string{"app": "locked"}),
		pod("default", "b", map[string]string{"app": "web"}),
		pod("other", "c", map[string]string{"app": "locked"}),
	})
	h.m.SetObjects([]source.Raw{cluster(t, "no-nc", "locked-nc"), namespaced(t, "default", "no-sh", "ns-all")})
	h.sync(t, false)
	require.Len(t, h.dp.rules, 2)
	assert.False(t, h.dp.rules[0].Global)
	// Slot 0: the cluster policy (app=locked anywhere); slot 1: every pod of
	// namespace default.
	assert.Equal(t, map[uint32]uint64{inoA: 0b11, inoB: 0b10, inoC: 0b01}, h.dp.scopes)

	// Pod a loses its label; pod c goes with its endpoint.
	h.m.SetPods([]*corev1.Pod{pod("default", "a", nil), pod("default", "b", map[string]string{"app": "web"})})
	h.eps.eps = h.eps.eps[:2]
	h.dp.takeCalls()
	h.sync(t, false)
	assert.Equal(t, map[uint32]uint64{inoA: 0b10, inoB: 0b10}, h.dp.scopes)
	assert.ElementsMatch(t, []string{fmt.Sprintf("scope %d 0x2", inoA), fmt.Sprintf("delete %d", inoC)}, h.dp.takeCalls())

	// An endpoint whose namespace is gone gets no scope; removing every
	// policy removes every scope and rule.
	h.eps.eps = append(h.eps.eps, endpoint(4, pathC+"-gone", "default", "d"))
	h.m.SetObjects(nil)
	h.sync(t, false)
	assert.Empty(t, h.dp.scopes)
	assert.Empty(t, h.dp.rules)
	assert.Empty(t, h.m.List())
}

func TestChangedSlotsLeaveScopesBeforeTheRulesChange(t *testing.T) {
	h := newHarness(t, tests)
	path, ino := netnsFile(t, "a")
	h.eps.eps = []api.Endpoint{endpoint(1, path, "default", "a")}
	h.m.SetPods([]*corev1.Pod{pod("default", "a", map[string]string{"app": "locked"})})
	h.m.SetObjects([]source.Raw{cluster(t, "a", "locked-nc"), cluster(t, "b", "locked-2")})
	h.sync(t, false)
	assert.Equal(t, map[uint32]uint64{ino: 0b111}, h.dp.scopes)
	h.dp.takeCalls()

	// Removing a moves b's rules from slots 1-2 to 0-1: every slot changes,
	// so the pod's scope goes before the rules are replaced and comes back
	// with b's new slots after.
	h.m.SetObjects([]source.Raw{cluster(t, "b", "locked-2")})
	h.sync(t, false)
	assert.Equal(t, []string{fmt.Sprintf("delete %d", ino), "rules 2", fmt.Sprintf("scope %d 0x3", ino)}, h.dp.takeCalls())

	// Adding a policy after b keeps b's slots: the scope only widens after
	// the rules are written.
	h.m.SetObjects([]source.Raw{cluster(t, "b", "locked-2"), cluster(t, "c", "locked-nc")})
	h.sync(t, false)
	assert.Equal(t, []string{"rules 3", fmt.Sprintf("scope %d 0x7", ino)}, h.dp.takeCalls())
	assert.Equal(t, []uint32{2, 2, 3}, []uint32{h.dp.rules[0].PolicyID, h.dp.rules[1].PolicyID, h.dp.rules[2].PolicyID})
}

func TestRejectedPolicyKeepsItsReasonAndOthersWork(t *testing.T) {
	h := newHarness(t, tests)
	h.m.SetObjects([]source.Raw{
		raw(t, tracing.KindTracingPolicy, "", "kprobes", map[string]any{"reject": "spec.kprobes: this kernel has no kprobes"}),
		cluster(t, "empty-in", "bad-binary"),
		cluster(t, "no-nc", "global-nc"),
	})
	h.sync(t, false)
	require.Len(t, h.dp.rules, 1)
	assert.Equal(t, []string{"/usr/bin/nc"}, h.dp.rules[0].Exact)
	list := h.m.List()
	require.Len(t, list, 3)
	assert.Equal(t, api.TracingPolicy{Kind: tracing.KindTracingPolicy, Name: "empty-in", Reason: "spec.execs selector 1.matchBinaries: the entries together match no binary"}, list[0])
	assert.Equal(t, api.TracingPolicy{Kind: tracing.KindTracingPolicy, Name: "kprobes", Reason: "spec.kprobes: this kernel has no kprobes"}, list[1])
	assert.True(t, list[2].Accepted)

	err := h.m.SetMode(clusterRef("kprobes"), tracing.ModeMonitor)
	require.ErrorContains(t, err, "is rejected: spec.kprobes")
	_, err = h.m.Get(clusterRef("nope"))
	require.ErrorIs(t, err, ErrNotFound)
}

func TestSlotOverflowRejectsThePolicy(t *testing.T) {
	many := &tracing.Compiled{}
	for i := range procsensor.MaxExecRules {
		many.Execs = append(many.Execs, sigkill(fmt.Sprintf("/bin/%d", i)))
	}
	h := newHarness(t, compiler{"many": many, "global-nc": tests["global-nc"]})
	h.m.SetObjects([]source.Raw{cluster(t, "a", "global-nc"), cluster(t, "b", "many")})
	h.sync(t, false)
	assert.Len(t, h.dp.rules, 1)
	p, err := h.m.Get(clusterRef("b"))
	require.NoError(t, err)
	assert.False(t, p.Accepted)
	assert.Equal(t, "spec.execs: needs 64 exec rule slots and only 63 of 64 are left", p.Reason)

	// Once a goes, b fits.
	h.m.SetObjects([]source.Raw{cluster(t, "b", "many")})
	h.sync(t, false)
	assert.Len(t, h.dp.rules, procsensor.MaxExecRules)
	p, _ = h.m.Get(clusterRef("b"))
	assert.True(t, p.Accepted)
	assert.Empty(t, p.Reason)
}

func TestSetModeKeptUntilTheObjectsModeChanges(t *testing.T) {
	h := newHarness(t, compiler{
		"enforce": tests["global-nc"],
		"monitor": {Mode: tracing.ModeMonitor, Execs: tests["global-nc"].Execs},
	})
	ref := clusterRef("no-nc")
	obj := func(compiled, gen string) source.Raw {
		return raw(t, tracing.KindTracingPolicy, "", "no-nc", map[string]any{"compiled": compiled, "gen": gen})
	}
	h.m.SetObjects([]source.Raw{obj("enforce", "1")})
	h.sync(t, false)
	require.True(t, h.dp.rules[0].Enforce)

	require.NoError(t, h.m.SetMode(ref, tracing.ModeMonitor))
	h.sync(t, false)
	assert.False(t, h.dp.rules[0].Enforce)
	p, _ := h.m.Get(ref)
	assert.Equal(t, "monitor", p.Mode)
	assert.True(t, p.ModeOverridden)

	// Another edit that keeps the object's mode keeps the override.
	h.m.SetObjects([]source.Raw{obj("enforce", "2")})
	h.sync(t, false)
	assert.False(t, h.dp.rules[0].Enforce)

	// The object's own mode changes: the override goes.
	h.m.SetObjects([]source.Raw{obj("monitor", "3")})
	h.m.SetObjects([]source.Raw{obj("enforce", "4")})
	h.sync(t, false)
	assert.True(t, h.dp.rules[0].Enforce)
	p, _ = h.m.Get(ref)
	assert.False(t, p.ModeOverridden)

	require.ErrorContains(t, h.m.SetMode(ref, "audit"), `mode "audit": want enforce or monitor`)
}

func TestPolicyEventCounts(t *testing.T) {
	h := newHarness(t, tests)
	h.m.SetObjects([]source.Raw{namespaced(t, "default", "no-nc", "locked-nc")})
	h.sync(t, false)
	id := h.dp.rules[0].PolicyID

	for _, ev := range []struct {
		action   procsensor.ExecAction
		enforced bool
	}{{procsensor.ExecSigkill, true}, {procsensor.ExecSigkill, true}, {procsensor.ExecSigkill, false}, {procsensor.ExecPost, false}} {
		name, ok := h.m.PolicyEvent(id, ev.action, ev.enforced)
		require.True(t, ok)
		assert.Equal(t, "default/no-nc", name)
	}
	_, ok := h.m.PolicyEvent(id+1, procsensor.ExecPost, false)
	assert.False(t, ok, "an unknown policy")

	p, err := h.m.Get(nsRef("default", "no-nc"))
	require.NoError(t, err)
	assert.Equal(t, [3]uint64{4, 2, 1}, [3]uint64{p.EventsPosted, p.ActionsEnforced, p.ActionsMonitored})
	assert.Equal(t, map[string]float64{
		"default/no-nc post": 1, "default/no-nc sigkill": 2, "default/no-nc would_sigkill": 1,
	}, eventSeries(t, h))

	// Removing the policy drops its series.
	h.m.SetObjects(nil)
	assert.Empty(t, eventSeries(t, h))
}

// eventSeries returns sluice_tracingpolicy_events_total by "policy action".
func eventSeries(t *testing.T, h *harness) map[string]float64 {
	mfs, err := h.reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "sluice_tracingpolicy_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			out[l["policy"]+" "+l["action"]] = m.GetCounter().GetValue()
		}
	}
	return out
}
