package procsensor

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/bpfgen"
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

func TestKeptFollow(t *testing.T) {
	old := map[uint8]ExecRule{
		0: {Slot: 0, PolicyID: 1, Exact: []string{"/sh"}, FollowChildren: true, Children: 1 << 5, Enforce: false},
		1: {Slot: 1, PolicyID: 2, Exact: []string{"/sh"}, FollowChildren: true, Children: 1 << 1},
	}
	next := map[uint8]ExecRule{
		0: {Slot: 0, PolicyID: 1, Exact: []string{"/sh"}, FollowChildren: true, Children: 1 << 5, Enforce: true},
		1: {Slot: 1, PolicyID: 3, Exact: []string{"/sh"}, FollowChildren: true, Children: 1 << 1},
	}
	assert.Equal(t, uint64(1<<5), keptFollow(old, next), "a mode change keeps, a new policy in the slot drops")
}
