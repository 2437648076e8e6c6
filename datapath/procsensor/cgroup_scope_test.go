package procsensor_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/test/harness"
)

// Tracing safety: the rules here match only binaries copied into the test's
// directory and are scoped to cgroups the test created (two "containers" a
// and b under a test cgroup, their processes in the test's netns).

// cgroupPair is a test cgroup with two children, a and b, and their ids.
type cgroupPair struct {
	a, b     string
	aID, bID uint64
}

func newCgroupPair(t *testing.T) cgroupPair {
	t.Helper()
	parent := harness.Cgroup(t)
	var p cgroupPair
	p.a, p.aID = harness.SubCgroup(t, parent, "a")
	p.b, p.bID = harness.SubCgroup(t, parent, "b")
	return p
}

// shellIn runs the copied sh with script in the test netns and cgroup cg,
// and returns the outcome and whether its marker exists afterwards.
func (r *ruleEnv) shellIn(t *testing.T, cg, script string) (outcome, bool) {
	t.Helper()
	marker := filepath.Join(r.dir, "marker")
	os.Remove(marker)
	cmd, release, err := harness.CommandIn(r.ns, cg, r.sh, "-c", ": > "+marker+"; "+script)
	require.NoError(t, err)
	defer release()
	o := runCmd(t, cmd)
	_, err = os.Stat(marker)
	return o, err == nil
}

// A Cgroup exec rule applies to the processes of the cgroups it is scoped
// to only: of two cgroups sharing one network namespace (two containers of
// a pod), the binary is killed in one and runs in the other; the netns
// scope does not carry it; deleting the cgroup scope lifts it.
func TestPrivilegedExecRuleCgroupScope(t *testing.T) {
	r := newRuleEnv(t)
	cg := newCgroupPair(t)
	t.Cleanup(func() {
		assert.NoError(t, r.s.DeleteExecCgroupScope(cg.aID))
		assert.NoError(t, r.s.DeleteExecCgroupScope(cg.bID))
	})
	kill := procsensor.ExecRule{Slot: 2, PolicyID: 9, Exact: []string{r.sh}, Action: procsensor.ExecSigkill, Enforce: true, Cgroup: true}
	post := procsensor.ExecRule{Slot: 4, PolicyID: 10, Exact: []string{r.tr}, Action: procsensor.ExecPost}
	require.NoError(t, r.s.SetExecRules([]procsensor.ExecRule{kill, post}))
	// The netns scope lists slot 2 too: it cannot carry a Cgroup slot.
	require.NoError(t, r.s.SetExecScope(r.netns, 1<<4|1<<2))
	require.NoError(t, r.s.SetExecCgroupScope(cg.aID, 1<<2))

	o, ran := r.shellIn(t, cg.a, "")
	assert.Equal(t, syscall.SIGKILL, o.signal, "killed in container a")
	assert.False(t, ran, "the shell never ran in container a")
	en := r.wait(t, 1, 10*time.Second, enforcementOf(o.pid))[0].Enforcement
	assert.Equal(t, uint32(9), en.PolicyID)
	assert.True(t, en.Enforced)
	assert.Equal(t, r.netns, en.NetNS)

	o, ran = r.shellIn(t, cg.b, r.tr)
	assert.Equal(t, outcome{pid: o.pid}, o, "runs in container b, same netns")
	assert.True(t, ran)
	r.noEnforcement(t, o.pid)
	// The netns-scoped rule of another policy still applies in b.
	tr := r.wait(t, 1, 10*time.Second, func(ev procsensor.Event) bool {
		return ev.Enforcement != nil && ev.Enforcement.Filename == r.tr
	})[0].Enforcement
	assert.Equal(t, uint32(10), tr.PolicyID)

	// A cgroup scope entry of another slot does not carry slot 2.
	require.NoError(t, r.s.SetExecCgroupScope(cg.bID, 1<<4))
	o, ran = r.shellIn(t, cg.b, "")
	assert.True(t, ran && o.signal == 0, "slot 4 only in b")

	n, err := r.s.ExecEntries()
	require.NoError(t, err)
	assert.Equal(t, 2, n.CgroupScope)
	require.NoError(t, r.s.DeleteExecCgroupScope(cg.aID))
	require.NoError(t, r.s.DeleteExecCgroupScope(cg.aID), "deleting twice")
	o, ran = r.shellIn(t, cg.a, "")
	assert.True(t, ran && o.signal == 0, "scope deleted: runs in a")
	r.noEnforcement(t, o.pid)
	require.NoError(t, r.s.DeleteExecCgroupScope(cg.bID))
	n, err = r.s.ExecEntries()
	require.NoError(t, err)
	assert.Zero(t, n.CgroupScope)
}

// A Cgroup syscall rule: cat's openat of the shadow file posts in container
// a and not in container b (same netns).
func TestPrivilegedSyscallRuleCgroupScope(t *testing.T) {
	e := newSysEnv(t)
	cg := newCgroupPair(t)
	t.Cleanup(func() { assert.NoError(t, e.s.DeleteSyscallCgroupScope(cg.aID)) })
	r := openatRule(3, procsensor.ArgEqual, procsensor.ExecPost, e.shadow)
	r.Cgroup = true
	require.NoError(t, e.s.SetSyscallRules([]procsensor.SyscallRule{r}))
	require.NoError(t, e.s.SetSyscallCgroupScope(cg.aID, 1<<3))
	catIn := func(cgDir string) outcome {
		cmd, release, err := harness.CommandIn(e.ns, cgDir, e.cat, e.shadow)
		require.NoError(t, err)
		defer release()
		return runCmd(t, cmd)
	}
	o := catIn(cg.a)
	require.Equal(t, 0, o.status)
	ev := e.syscallEvent(t, o.pid)
	assert.Equal(t, uint32(103), ev.PolicyID)
	assert.Equal(t, e.shadow, ev.Args[0].Str)
	e.noSyscall(t, catIn(cg.b).pid)
	// The netns scope does not carry a Cgroup slot.
	require.NoError(t, e.s.SetSyscallScope(e.netns, 1<<3))
	e.noSyscall(t, catIn(cg.b).pid)

	n, err := e.s.SyscallEntries()
	require.NoError(t, err)
	assert.Equal(t, 1, n.CgroupScope)
	require.NoError(t, e.s.DeleteSyscallCgroupScope(cg.aID))
	e.noSyscall(t, catIn(cg.a).pid)
}
