package policymgr

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/policy"
)

func TestRuleTable(t *testing.T) {
	a := policy.RuleRef{Kind: policy.KindNetworkPolicy, Namespace: "x", Name: "a", Section: "ingress"}
	b := a
	b.Index = 1
	c := policy.RuleRef{Kind: policy.KindClusterwidePolicy, Name: "a", Section: "ingress"}
	tbl := NewRuleTable()
	tests := []struct {
		name string
		ref  policy.RuleRef
		want uint32
	}{
		{name: "no rule is 0", ref: policy.RuleRef{}, want: 0},
		{name: "first rule is 1", ref: a, want: 1},
		{name: "same rule same number", ref: a, want: 1},
		{name: "another index", ref: b, want: 2},
		{name: "same name, other kind", ref: c, want: 3},
		{name: "still stable", ref: b, want: 2},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, tbl.ID(tc.ref), tc.name)
	}
	assert.Equal(t, 3, tbl.Len(), "the empty rule takes no number")
	for id, want := range map[uint32]policy.RuleRef{1: a, 2: b, 3: c} {
		got, ok := tbl.Lookup(id)
		require.True(t, ok, "rule %d", id)
		assert.Equal(t, want, got)
	}
	for _, id := range []uint32{0, 4, 1 << 31} {
		_, ok := tbl.Lookup(id)
		assert.False(t, ok, "rule %d", id)
	}
}

func TestRuleTableConcurrent(t *testing.T) {
	tbl := NewRuleTable()
	refs := make([]policy.RuleRef, 50)
	for i := range refs {
		refs[i] = policy.RuleRef{Kind: policy.KindNetworkPolicy, Name: "p", Index: i}
	}
	ids := make([][]uint32, 8)
	var wg sync.WaitGroup
	for g := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, r := range refs {
				ids[g] = append(ids[g], tbl.ID(r))
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, len(refs), tbl.Len(), "every rule numbered once")
	for g := range ids {
		assert.Equal(t, ids[0], ids[g], "every caller sees the same numbers")
	}
	for i, id := range ids[0] {
		got, ok := tbl.Lookup(id)
		require.True(t, ok)
		assert.Equal(t, refs[i], got)
	}
}

func TestFormatRule(t *testing.T) {
	tests := []struct {
		ref  policy.RuleRef
		want string
	}{
		{policy.RuleRef{}, ""},
		{policy.RuleRef{Kind: policy.KindNetworkPolicy, Namespace: "x", Name: "web", Section: "ingress", Index: 2}, "x/web[ingress:2]"},
		{policy.RuleRef{Kind: policy.KindClusterwidePolicy, Name: "all", Section: "egressDeny"}, "all[egressDeny:0]"},
		{policy.RuleRef{Kind: policy.KindNetworkPolicy, Namespace: "x", Name: "m", Spec: 1, Section: "egress", Index: 3}, "x/m[spec1.egress:3]"},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, FormatRule(tc.ref), "%+v", tc.ref)
	}
}
