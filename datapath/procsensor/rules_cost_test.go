package procsensor_test

import (
	"fmt"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/procsensor"
)

// The exec program's run time per exec (kernel BPF statistics) without
// rules, with 64 rules that do not match (the scope is the test netns, the
// execs run on the host), the same scoped by cgroup, and with a Global Post rule on the exec'd copy of
// /bin/true that matches every exec. Logged, not asserted.
func TestPrivilegedExecRuleCost(t *testing.T) {
	r := newRuleEnv(t)
	var miss []procsensor.ExecRule
	for i := 0; i < procsensor.MaxExecRules; i++ {
		p := fmt.Sprintf("%s/bin-%02d", r.dir, i)
		miss = append(miss, procsensor.ExecRule{Slot: uint8(i), PolicyID: uint32(i), Exact: []string{p},
			Prefixes: []string{p + "/"}, Action: procsensor.ExecSigkill, Enforce: true})
	}
	// The last slot matches true but only in the test netns.
	miss[63].Exact = append(miss[63].Exact, r.tr)
	match := []procsensor.ExecRule{{Slot: 0, PolicyID: 1, Exact: []string{r.tr}, Action: procsensor.ExecPost, Global: true}}
	const n = 2000
	measure := func(name string, rules []procsensor.ExecRule) {
		require.NoError(t, r.s.SetExecRules(rules))
		require.NoError(t, r.s.SetExecScope(r.netns, ^uint64(0)))
		before, err := r.s.ProgramStats()
		require.NoError(t, err)
		for i := 0; i < n; i++ {
			require.NoError(t, exec.Command(r.tr).Run())
		}
		after, err := r.s.ProgramStats()
		require.NoError(t, err)
		for _, hook := range []string{procsensor.HookExec, procsensor.HookFork, procsensor.HookExit} {
			d := procsensor.Stats{RunCount: after[hook].RunCount - before[hook].RunCount, RunTime: after[hook].RunTime - before[hook].RunTime}
			t.Logf("%-22s %-28s runs %6d  %v/run", name, hook, d.RunCount, d.PerRun())
		}
	}
	// The same rules scoped by cgroup (containerSelector): slot 63's path
	// matches true, so each exec reads its cgroup id and looks it up (the
	// scope is a cgroup id no process has).
	var cgMiss []procsensor.ExecRule
	for _, r := range miss {
		r.Cgroup = true
		cgMiss = append(cgMiss, r)
	}
	require.NoError(t, r.s.SetExecCgroupScope(1<<62, ^uint64(0)))
	t.Cleanup(func() { require.NoError(t, r.s.DeleteExecCgroupScope(1<<62)) })
	for round := 0; round < 2; round++ {
		measure("no rules", nil)
		measure("64 rules, no match", miss)
		measure("64 cgroup rules, none", cgMiss)
		measure("global Post match", match)
	}
}
