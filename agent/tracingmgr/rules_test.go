package tracingmgr

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/policy/tracing"
)

func TestBinaryRule(t *testing.T) {
	in := func(vs ...string) tracing.BinaryMatch { return tracing.BinaryMatch{Op: tracing.BinaryIn, Values: vs} }
	notIn := func(vs ...string) tracing.BinaryMatch {
		return tracing.BinaryMatch{Op: tracing.BinaryNotIn, Values: vs}
	}
	prefix := func(vs ...string) tracing.BinaryMatch {
		return tracing.BinaryMatch{Op: tracing.BinaryPrefix, Values: vs}
	}
	for _, tc := range []struct {
		name string
		bs   []tracing.BinaryMatch
		want execRule
		err  string
	}{
		{name: "none matches every binary", want: execRule{notIn: true}},
		{name: "in", bs: []tracing.BinaryMatch{in("/usr/bin/nc", "/bin/nc", "/bin/nc")}, want: execRule{exact: []string{"/bin/nc", "/usr/bin/nc"}}},
		{name: "notIn", bs: []tracing.BinaryMatch{notIn("/bin/sh")}, want: execRule{exact: []string{"/bin/sh"}, notIn: true}},
		{name: "prefix", bs: []tracing.BinaryMatch{prefix("/tmp/")}, want: execRule{prefixes: []string{"/tmp/"}}},
		{name: "in and in intersect", bs: []tracing.BinaryMatch{in("/a", "/b"), in("/b", "/c")}, want: execRule{exact: []string{"/b"}}},
		{name: "in minus notIn", bs: []tracing.BinaryMatch{in("/a", "/b"), notIn("/a")}, want: execRule{exact: []string{"/b"}}},
		{name: "in filtered by prefix", bs: []tracing.BinaryMatch{in("/tmp/x", "/usr/bin/x"), prefix("/tmp/")}, want: execRule{exact: []string{"/tmp/x"}}},
		{name: "notIn entries unite", bs: []tracing.BinaryMatch{notIn("/a"), notIn("/b")}, want: execRule{exact: []string{"/a", "/b"}, notIn: true}},
		{name: "prefixes intersect", bs: []tracing.BinaryMatch{prefix("/usr/", "/opt/"), prefix("/usr/local/", "/srv/")}, want: execRule{prefixes: []string{"/usr/local/"}}},
		{name: "followChildren of any entry", bs: []tracing.BinaryMatch{in("/a"), {Op: tracing.BinaryNotIn, Values: []string{"/b"}, FollowChildren: true}}, want: execRule{exact: []string{"/a"}, followChildren: true}},
		{name: "prefix and notIn need two tests", bs: []tracing.BinaryMatch{prefix("/tmp/"), notIn("/tmp/ok")}, err: "operators Prefix and NotIn together: not supported yet"},
		{name: "empty intersection", bs: []tracing.BinaryMatch{in("/a"), in("/b")}, err: "match no binary"},
		{name: "disjoint prefixes", bs: []tracing.BinaryMatch{prefix("/a/"), prefix("/b/")}, err: "match no binary"},
		{name: "unknown operator", bs: []tracing.BinaryMatch{{Op: "Postfix", Values: []string{"nc"}}}, err: `operator "Postfix"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := binaryRule(tc.bs)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestBuildRulesNamesTheSelector(t *testing.T) {
	c := &tracing.Compiled{Execs: []tracing.ExecSelector{
		sigkill("/bin/nc"),
		{Action: tracing.ActionSignal, Signal: 0},
	}}
	_, err := buildRules(c)
	require.EqualError(t, err, "spec.execs selector 2.matchActions: signal 0 is not a signal number")

	c.Execs[1] = tracing.ExecSelector{Action: tracing.ActionSignal, Signal: 15}
	rs, err := buildRules(c)
	require.NoError(t, err)
	require.Len(t, rs, 2)
	assert.Equal(t, procsensor.ExecSigkill, rs[0].action)
	assert.Equal(t, uint8(9), rs[0].signal)
	assert.Equal(t, procsensor.ExecSignal, rs[1].action)
	assert.Equal(t, uint8(15), rs[1].signal)
}

// entries builds accepted entries with n selectors each.
func entries(t *testing.T, specs ...struct {
	ref tracing.Ref
	n   int
}) []*entry {
	var out []*entry
	for i, s := range specs {
		c := &tracing.Compiled{Ref: s.ref, Mode: tracing.ModeEnforce}
		for j := range s.n {
			c.Execs = append(c.Execs, sigkill(fmt.Sprintf("/bin/%s-%d", s.ref.Name, j)))
		}
		rs, err := buildRules(c)
		require.NoError(t, err)
		out = append(out, &entry{ref: s.ref, id: uint32(i + 1), compiled: c, rules: rs, objMode: tracing.ModeEnforce})
	}
	return out
}

type spec = struct {
	ref tracing.Ref
	n   int
}

func TestAllocateOrdersPoliciesAndSelectors(t *testing.T) {
	cl := func(name string) tracing.Ref { return tracing.Ref{Kind: tracing.KindTracingPolicy, Name: name} }
	nsd := func(ns, name string) tracing.Ref {
		return tracing.Ref{Kind: tracing.KindTracingPolicyNamespaced, Namespace: ns, Name: name}
	}
	// Given out of order: slots follow kind, namespace, name.
	es := entries(t, spec{nsd("b", "x"), 1}, spec{cl("z"), 2}, spec{nsd("a", "y"), 1}, spec{cl("a"), 1})
	p := allocate(es, nil)
	rules, allocs, refused := p.exec, p.allocs, p.refused
	require.Empty(t, refused)
	var got []string
	for _, r := range rules {
		got = append(got, fmt.Sprintf("%d %s", r.Slot, r.Exact[0]))
	}
	assert.Equal(t, []string{"0 /bin/a-0", "1 /bin/z-0", "2 /bin/z-1", "3 /bin/y-0", "4 /bin/x-0"}, got)
	require.Len(t, allocs, 4)
	assert.Equal(t, uint64(0b110), allocs[1].slots)
	assert.True(t, rules[0].Global && rules[0].Enforce)
	assert.False(t, rules[3].Global, "namespaced policies are scoped")
}

func TestAllocateRefusesWhatDoesNotFit(t *testing.T) {
	cl := func(name string) tracing.Ref { return tracing.Ref{Kind: tracing.KindTracingPolicy, Name: name} }
	es := entries(t, spec{cl("a"), 60}, spec{cl("b"), 5}, spec{cl("c"), 4})
	p := allocate(es, nil)
	rules, allocs, refused := p.exec, p.allocs, p.refused
	require.Len(t, rules, procsensor.MaxExecRules)
	require.Len(t, allocs, 2)
	assert.Equal(t, "a", allocs[0].e.ref.Name)
	assert.Equal(t, "c", allocs[1].e.ref.Name, "a later policy that fits still gets its slots")
	assert.Equal(t, uint64(0xf)<<60, allocs[1].slots)
	assert.Equal(t, map[*entry]string{es[1]: "spec.execs: needs 5 exec rule slots and only 4 of 64 are left"}, refused)
}
