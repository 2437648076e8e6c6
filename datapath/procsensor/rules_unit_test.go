package procsensor

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/maputil"
)

// The Go constants of exec rules are the C enums of bpf/lib/process_rules.h.
func TestExecRuleEnums(t *testing.T) {
	assert.Equal(t, uint8(bpfgen.ProcessExecActionEXEC_POST), uint8(ExecPost))
	assert.Equal(t, uint8(bpfgen.ProcessExecActionEXEC_NOPOST), uint8(ExecNoPost))
	assert.Equal(t, uint8(bpfgen.ProcessExecActionEXEC_SIGKILL), uint8(ExecSigkill))
	assert.Equal(t, uint8(bpfgen.ProcessExecActionEXEC_SIGNAL), uint8(ExecSignal))
	assert.Equal(t, 256, execPathMax)
}

func TestCheckExecRules(t *testing.T) {
	for _, bad := range [][]ExecRule{
		{{Slot: 64, Action: ExecPost}},
		{{Slot: 1, Action: ExecPost}, {Slot: 1, Action: ExecPost}},
		{{Slot: 1, Action: 9}},
		{{Slot: 1, Action: ExecSignal}},
		{{Slot: 1, Action: ExecPost, Exact: []string{""}}},
		{{Slot: 1, Action: ExecPost, Exact: []string{string(make([]byte, 255))}}},
		{{Slot: 1, Action: ExecPost, Prefixes: []string{"/a\x00"}}},
	} {
		_, err := checkExecRules(bad)
		assert.Error(t, err, "%+v", bad)
	}
	got, err := checkExecRules([]ExecRule{
		{Slot: 2, Action: ExecSigkill, FollowChildren: true},
		{Slot: 3, Action: ExecPost, Signal: 4, Children: 1},
	})
	require.NoError(t, err)
	assert.Equal(t, uint8(9), got[2].Signal)
	assert.Equal(t, uint64(1<<2), got[2].Children, "followChildren passes on its own slot by default")
	assert.Zero(t, got[3].Signal)
	assert.Zero(t, got[3].Children, "no children without followChildren")
}

// A prefix entry carries the slots of the shorter prefixes it extends: the
// trie returns only the longest match.
func TestExecPathBits(t *testing.T) {
	exact, prefix := execPathBits(map[uint8]ExecRule{
		0: {Exact: []string{"/a/x"}, Prefixes: []string{"/a/"}},
		1: {Exact: []string{"/a/x", "/b"}, Prefixes: []string{"/a/b/"}},
		2: {Prefixes: []string{"/c/"}},
	})
	assert.Equal(t, map[string]uint64{"/a/x": 3, "/b": 2}, exact)
	assert.Equal(t, map[string]uint64{"/a/": 1, "/a/b/": 3, "/c/": 4}, prefix)
}

// Inherited slots stay for a followChildren rule whose match and Children
// stay (its policy, action or mode may change), whatever wrote the maps.
func TestKeptFollow(t *testing.T) {
	old := map[uint8]ExecRule{
		0: {Slot: 0, PolicyID: 1, Exact: []string{"/sh"}, FollowChildren: true, Children: 1 << 5, Enforce: false},
		1: {Slot: 1, PolicyID: 2, Exact: []string{"/sh"}, FollowChildren: true, Children: 1 << 1},
		2: {Slot: 2, PolicyID: 3, Exact: []string{"/bash"}, FollowChildren: true, Children: 1 << 2},
	}
	next := map[uint8]ExecRule{
		0: {Slot: 0, PolicyID: 1, Exact: []string{"/sh"}, FollowChildren: true, Children: 1 << 5, Enforce: true},
		1: {Slot: 1, PolicyID: 3, Exact: []string{"/sh"}, FollowChildren: true, Children: 1 << 3},
		2: {Slot: 2, PolicyID: 4, Exact: []string{"/zsh"}, FollowChildren: true, Children: 1 << 2},
	}
	st := stateOf(old)
	exact, prefix := execPathBits(next)
	var cfg bpfgen.ProcessExecConfig
	values := map[uint8]bpfgen.ProcessExecSlot{}
	for slot, r := range next {
		values[slot] = execSlotValue(r)
		cfg.Active |= 1 << slot
		cfg.Follow |= 1 << slot
	}
	changed := execChanged(st, cfg, values, exact, prefix)
	assert.Equal(t, uint64(1<<1|1<<2), changed, "other children, other paths change; a mode change does not")
	assert.Equal(t, uint64(1<<5), keptFollow(st, changed, next))
}

// stateOf is the state of maps holding rules.
func stateOf(rules map[uint8]ExecRule) *execState {
	st := &execState{slots: map[uint8]bpfgen.ProcessExecSlot{}}
	st.exact, st.prefix = execPathBits(rules)
	for slot, r := range rules {
		st.slots[slot] = execSlotValue(r)
		st.cfg.Active |= 1 << slot
		if r.FollowChildren {
			st.cfg.Follow |= 1 << slot
		}
	}
	return st
}

// A prefix that a shorter prefix of the trie covers is no change of its
// own when it goes.
func TestOwnPrefixes(t *testing.T) {
	_, prefix := execPathBits(map[uint8]ExecRule{0: {Prefixes: []string{"/a/"}}, 1: {Prefixes: []string{"/a/b/"}}})
	assert.Equal(t, map[string]uint64{"/a/": 1, "/a/b/": 2}, ownPrefixes(prefix))
	_, next := execPathBits(map[uint8]ExecRule{0: {Prefixes: []string{"/a/"}}})
	assert.Equal(t, uint64(2), maputil.SlotBitsChanged(ownPrefixes(prefix), ownPrefixes(next)))
}
