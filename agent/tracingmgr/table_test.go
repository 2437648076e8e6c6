package tracingmgr

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/procsensor"
)

// After a restart the exec table takes over the scopes an earlier agent
// left pinned: only the slots whose rule in the kernel differs from the new
// one are taken out of them before the rules are written (a kept rule stays
// scoped throughout), and the scopes of pods gone meanwhile are deleted.
func TestFirstSyncKeepsKernelRulesScoped(t *testing.T) {
	var log []string
	kernel := map[uint32]uint64{5: 0b11, 6: 0b01}
	tb := newTable("exec", func(rs []procsensor.ExecRule) error {
		log = append(log, fmt.Sprintf("rules %d", len(rs)))
		return nil
	}, scopeFuncs{
		set: func(ns uint32, slots uint64) error {
			log = append(log, fmt.Sprintf("scope %d %#b", ns, slots))
			kernel[ns] = slots
			return nil
		},
		del: func(ns uint32) error {
			log = append(log, fmt.Sprintf("delete %d", ns))
			delete(kernel, ns)
			return nil
		},
	}, func(r procsensor.ExecRule) (uint8, uint64) { return r.Slot, 0 })
	tb.kernelScopes = func() (map[scopeKey]uint64, error) {
		out := map[scopeKey]uint64{}
		for k, v := range kernel {
			out[netnsKey(k)] = v
		}
		return out, nil
	}
	rules := []procsensor.ExecRule{{Slot: 0}, {Slot: 1}}
	tb.kernelChanged = func(rs []procsensor.ExecRule) (uint64, error) {
		require.Equal(t, rules, rs)
		return 0b10, nil
	}
	assert.NoError(t, errors.Join(tb.unscope(rules, 0, false)...))
	require.NoError(t, tb.write(rules, false))
	assert.NoError(t, errors.Join(tb.rescope(map[scopeKey]uint64{netnsKey(5): 0b11}, false)...))
	assert.Equal(t, []string{"scope 5 0b1", "rules 2", "scope 5 0b11", "delete 6"}, log,
		"slot 0 (the same in the kernel) stays scoped; netns 6 is gone")
	assert.Equal(t, map[uint32]uint64{5: 0b11}, kernel)
}
