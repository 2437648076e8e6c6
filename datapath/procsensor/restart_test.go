package procsensor_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/pin"
	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/test/harness"
)

// Tracing safety: the rules here name only binaries copied into the test's
// directory, are scoped to a cgroup the test created (its processes run in
// a netns the test created), and are removed, the sensor unpinned, in
// cleanup.

// restartEnv is a private bpffs root in which sensors come and go (an
// agent restarting), a test cgroup and netns, and copies of sh, true and
// cat with two files for cat.
type restartEnv struct {
	root          string
	ns            *harness.NetNS
	cg            string
	cgID          uint64
	dir           string
	sh, tr, cat   string
	shadow, other string
}

func newRestartEnv(t *testing.T) *restartEnv {
	t.Helper()
	harness.RequirePrivileged(t)
	e := &restartEnv{root: filepath.Join(harness.BPFFS(t), "sluice")}
	// Runs after every sensor's Close (registered later): nothing stays
	// attached, whatever the test did.
	t.Cleanup(func() {
		ids := pinnedLinks(t, e.root)
		assert.NoError(t, procsensor.Unpin(e.root))
		for name, id := range ids {
			detached(t, id, name)
		}
	})
	e.ns = harness.NewNetNS(t, "sl-trs-")
	e.cg, e.cgID = harness.SubCgroup(t, harness.Cgroup(t), "c")
	e.dir = t.TempDir()
	require.NoError(t, os.Chmod(e.dir, 0o755))
	for src, dst := range map[string]*string{"/bin/sh": &e.sh, "/bin/true": &e.tr, "/bin/cat": &e.cat} {
		*dst = filepath.Join(e.dir, filepath.Base(src))
		require.NoError(t, harness.CopyExecutable(src, *dst))
	}
	e.shadow, e.other = filepath.Join(e.dir, "shadow"), filepath.Join(e.dir, "other")
	for _, p := range []string{e.shadow, e.other} {
		require.NoError(t, os.WriteFile(p, []byte("x\n"), 0o644))
	}
	return e
}

// load loads a sensor from the env's root (an agent starting).
func (e *restartEnv) load(t *testing.T) *procsensor.Sensor {
	t.Helper()
	s, err := procsensor.Load(e.root, procsensor.Options{NoConnect: true})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// run runs bin with args in the test netns and cgroup.
func (e *restartEnv) run(t *testing.T, bin string, args ...string) outcome {
	t.Helper()
	cmd, release, err := harness.CommandIn(e.ns, e.cg, bin, args...)
	require.NoError(t, err)
	defer release()
	return runCmd(t, cmd)
}

func (e *restartEnv) killed(t *testing.T, what string, bin string, args ...string) {
	t.Helper()
	o := e.run(t, bin, args...)
	assert.Equal(t, syscall.SIGKILL, o.signal, "%s: %s killed (exit 137 in a shell)", what, filepath.Base(bin))
}

func (e *restartEnv) runs(t *testing.T, what string, bin string, args ...string) {
	t.Helper()
	o := e.run(t, bin, args...)
	assert.Equal(t, outcome{pid: o.pid}, o, "%s: %s runs", what, filepath.Base(bin))
}

// pinnedLinks returns the ids of the links pinned under root's
// links/tracing, by pin name.
func pinnedLinks(t *testing.T, root string) map[string]link.ID {
	t.Helper()
	dir := pin.LinkDir(root, pin.TracingLinksName)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	out := map[string]link.ID{}
	for _, ent := range ents {
		l, err := link.LoadPinnedLink(filepath.Join(dir, ent.Name()), nil)
		require.NoError(t, err)
		info, err := l.Info()
		require.NoError(t, err)
		out[ent.Name()] = info.ID
		l.Close()
	}
	return out
}

// linkExists reports whether the kernel still has link id.
func linkExists(id link.ID) bool {
	l, err := link.NewFromID(id)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// detached waits until the kernel has freed link id: a link whose last pin
// and handle went is freed after an RCU grace period and a work item.
func detached(t *testing.T, id link.ID, what string) {
	t.Helper()
	assert.Eventually(t, func() bool { return !linkExists(id) }, 5*time.Second, 20*time.Millisecond, "%s detached", what)
}

// An exec rule (Sigkill, scoped to the test cgroup) stays enforced when the
// sensor is closed (the agent exits) and when the next sensor loads from
// the same root (its links replace the earlier ones); the first
// SetExecRules of the new sensor, with no rules, lifts it and leaves no
// entry behind.
func TestPrivilegedExecRuleSurvivesRestart(t *testing.T) {
	e := newRestartEnv(t)
	a := e.load(t)
	kill := procsensor.ExecRule{Slot: 3, PolicyID: 7, Exact: []string{e.sh}, Action: procsensor.ExecSigkill,
		Enforce: true, Cgroup: true}
	require.NoError(t, a.SetExecRules([]procsensor.ExecRule{kill}))
	require.NoError(t, a.SetExecCgroupScope(e.cgID, 1<<3))
	e.killed(t, "sensor A", e.sh, "-c", ":")
	e.runs(t, "sensor A", e.tr)
	idsA := pinnedLinks(t, e.root)
	require.Len(t, idsA, 3, "exec, exit and fork links pinned")

	require.NoError(t, a.Close())
	e.killed(t, "A closed", e.sh, "-c", ":")
	for name, id := range idsA {
		assert.True(t, linkExists(id), "%s stays attached after Close", name)
	}

	b := e.load(t)
	idsB := pinnedLinks(t, e.root)
	require.Len(t, idsB, 3)
	for name, id := range idsA {
		assert.NotEqual(t, id, idsB[name], "%s: B's own link pinned", name)
		detached(t, id, "A's link of "+name+" (B's pinned)")
	}
	e.killed(t, "sensor B loaded", e.sh, "-c", ":")
	n, err := b.ExecEntries()
	require.NoError(t, err)
	assert.Equal(t, procsensor.ExecEntries{Slots: 1, Exact: 1, CgroupScope: 1}, n, "B reuses A's rule maps")

	require.NoError(t, b.SetExecRules(nil))
	e.runs(t, "B without rules", e.sh, "-c", ":")
	require.NoError(t, b.DeleteExecCgroupScope(e.cgID))
	n, err = b.ExecEntries()
	require.NoError(t, err)
	assert.Zero(t, n, "no stale entry")
}

// A syscall rule (Sigkill on openat of one file, scoped to the test
// cgroup) stays enforced across a restart: the sys_enter link is pinned
// while the rule exists and the next sensor takes it over; its first
// SetSyscallRules with no rules lifts it, detaches sys_enter and leaves no
// entry behind.
func TestPrivilegedSyscallRuleSurvivesRestart(t *testing.T) {
	e := newRestartEnv(t)
	a := e.load(t)
	kill := openatRule(5, procsensor.ArgEqual, procsensor.ExecSigkill, e.shadow)
	kill.Enforce, kill.Cgroup = true, true
	require.NoError(t, a.SetSyscallRules([]procsensor.SyscallRule{kill}))
	require.NoError(t, a.SetSyscallCgroupScope(e.cgID, 1<<5))
	e.killed(t, "sensor A", e.cat, e.shadow)
	e.runs(t, "sensor A", e.cat, e.other)
	require.Contains(t, pinnedLinks(t, e.root), "sys_enter_v1")

	require.NoError(t, a.Close())
	e.killed(t, "A closed", e.cat, e.shadow)

	b := e.load(t)
	assert.Contains(t, b.Hooks(), procsensor.HookSysEnter, "B runs the pinned rules' hook")
	e.killed(t, "sensor B loaded", e.cat, e.shadow)
	e.runs(t, "sensor B loaded", e.cat, e.other)

	require.NoError(t, b.SetSyscallRules(nil))
	e.runs(t, "B without rules", e.cat, e.shadow)
	assert.NotContains(t, b.Hooks(), procsensor.HookSysEnter)
	assert.NotContains(t, pinnedLinks(t, e.root), "sys_enter_v1", "sys_enter unpinned")
	require.NoError(t, b.DeleteSyscallCgroupScope(e.cgID))
	n, err := b.SyscallEntries()
	require.NoError(t, err)
	assert.Zero(t, n, "no stale entry")
}

// A rule set changed across a restart converges exactly: a kept rule
// (same slot and match, another policy id) kills at every moment of the
// first SetExecRules, the removed rule's path is gone, and the new rule in
// the removed rule's slot applies to its own path only. The same for
// syscall rules (a slot whose string changes).
func TestPrivilegedRulesChangeAcrossRestart(t *testing.T) {
	e := newRestartEnv(t)
	a := e.load(t)
	rule := func(slot uint8, policy uint32, path string) procsensor.ExecRule {
		return procsensor.ExecRule{Slot: slot, PolicyID: policy, Exact: []string{path}, Action: procsensor.ExecSigkill,
			Enforce: true, Cgroup: true}
	}
	require.NoError(t, a.SetExecRules([]procsensor.ExecRule{rule(1, 1, e.sh), rule(2, 2, e.tr)}))
	require.NoError(t, a.SetExecCgroupScope(e.cgID, 1<<1|1<<2))
	sysKill := openatRule(4, procsensor.ArgEqual, procsensor.ExecSigkill, e.shadow)
	sysKill.Enforce, sysKill.Cgroup = true, true
	require.NoError(t, a.SetSyscallRules([]procsensor.SyscallRule{sysKill}))
	require.NoError(t, a.SetSyscallCgroupScope(e.cgID, 1<<4))
	require.NoError(t, a.SetBinaryClasses([]procsensor.BinaryClass{{ID: 0, Exact: []string{e.cat}},
		{ID: 1, Prefixes: []string{e.dir + "/"}}}))
	e.killed(t, "A", e.tr)
	e.killed(t, "A", e.cat, e.shadow)
	e.runs(t, "A", e.cat, e.other)
	require.NoError(t, a.Close())

	b := e.load(t)
	next := []procsensor.ExecRule{rule(1, 11, e.sh), rule(2, 12, e.cat)}
	changed, err := b.ExecRulesChanged(next)
	require.NoError(t, err)
	assert.Equal(t, uint64(1<<2), changed, "slot 1 keeps its rule (another policy id: the agent's numbering)")
	// The kept rule is tried while the first SetExecRules runs.
	var (
		wg       sync.WaitGroup
		done     = make(chan struct{})
		tries    int
		survived []outcome
	)
	wg.Go(func() {
		for {
			cmd, release, err := harness.CommandIn(e.ns, e.cg, e.sh, "-c", ":")
			if err != nil {
				t.Error(err)
				return
			}
			err = cmd.Run()
			release()
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Error(err)
				return
			}
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			tries++
			if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				survived = append(survived, outcome{pid: cmd.Process.Pid, status: ws.ExitStatus()})
			}
			select {
			case <-done:
				if tries >= 3 {
					return
				}
			default:
			}
		}
	})
	err = b.SetExecRules(next)
	close(done)
	wg.Wait()
	require.NoError(t, err)
	assert.Empty(t, survived, "the kept rule killed sh at every one of %d tries", tries)

	e.killed(t, "B", e.sh, "-c", ":")
	e.runs(t, "B: the removed rule's path", e.tr)
	e.killed(t, "B: the new rule in its slot", e.cat, e.other)

	newSys := openatRule(4, procsensor.ArgEqual, procsensor.ExecPost, e.other)
	newSys.Cgroup = true
	changed, err = b.SyscallRulesChanged([]procsensor.SyscallRule{newSys})
	require.NoError(t, err)
	assert.Equal(t, uint64(1<<4), changed)
	changed, err = b.SyscallRulesChanged([]procsensor.SyscallRule{sysKill})
	require.NoError(t, err)
	assert.Zero(t, changed, "the same rule")
	require.NoError(t, b.SetSyscallRules([]procsensor.SyscallRule{newSys}))
	// Slot 2 of the exec rules would kill cat: lift it to see openat.
	require.NoError(t, b.SetExecRules([]procsensor.ExecRule{rule(1, 11, e.sh)}))
	e.runs(t, "B: the old syscall rule's file", e.cat, e.shadow)
	e.runs(t, "B: Post only", e.cat, e.other)

	exact, prefix, str, err := procsensor.RulePaths(b)
	require.NoError(t, err)
	assert.Equal(t, map[string]uint64{e.sh: 1 << 1}, exact, "exec paths: the kept rule's only")
	assert.Empty(t, prefix)
	assert.Equal(t, map[string]uint64{string([]byte{4 << 2}) + e.other + "\x00": 1}, str,
		"syscall strings: the new rule's only")
	// The binary classes (pinned before the rules were) are read back, and
	// converge too.
	cs, err := b.BinaryClasses()
	require.NoError(t, err)
	assert.Equal(t, []procsensor.BinaryClass{{ID: 0, Exact: []string{e.cat}}, {ID: 1, Prefixes: []string{e.dir + "/"}}}, cs)
	require.NoError(t, b.SetBinaryClasses([]procsensor.BinaryClass{{ID: 0, Exact: []string{e.cat}}}))
	cexact, cprefix, err := procsensor.ClassPaths(b)
	require.NoError(t, err)
	assert.Equal(t, map[string]uint64{e.cat: 1}, cexact)
	assert.Empty(t, cprefix, "the removed class's prefix is gone")
	require.NoError(t, b.SetBinaryClasses(nil))

	n, err := b.ExecEntries()
	require.NoError(t, err)
	assert.Equal(t, 1, n.Slots)
	sn, err := b.SyscallEntries()
	require.NoError(t, err)
	assert.Equal(t, 1, sn.Slots)
	assert.Equal(t, 1, sn.Nrs)

	require.NoError(t, b.SetExecRules(nil))
	require.NoError(t, b.SetSyscallRules(nil))
	require.NoError(t, b.DeleteExecCgroupScope(e.cgID))
	require.NoError(t, b.DeleteSyscallCgroupScope(e.cgID))
}

// Unpin (the uninstall path) stops the sensor: every link it pinned is
// detached once the sensor is closed, and its rule maps and links
// directory are gone; a later Load starts with empty rule maps.
func TestPrivilegedSensorUnpin(t *testing.T) {
	e := newRestartEnv(t)
	a := e.load(t)
	kill := openatRule(0, procsensor.ArgEqual, procsensor.ExecSigkill, e.shadow)
	kill.Enforce, kill.Cgroup = true, true
	require.NoError(t, a.SetSyscallRules([]procsensor.SyscallRule{kill}))
	require.NoError(t, a.SetSyscallCgroupScope(e.cgID, 1))
	require.NoError(t, a.SetExecRules([]procsensor.ExecRule{{Slot: 0, Exact: []string{e.sh}, Action: procsensor.ExecSigkill,
		Enforce: true, Cgroup: true}}))
	require.NoError(t, a.SetExecCgroupScope(e.cgID, 1))
	ids := pinnedLinks(t, e.root)
	require.Len(t, ids, 4, "exec, exit, fork and sys_enter")
	require.NoError(t, a.Close())
	require.NoError(t, procsensor.Unpin(e.root))
	for name, id := range ids {
		detached(t, id, name)
	}
	_, err := os.Stat(pin.LinkDir(e.root, pin.TracingLinksName))
	assert.ErrorIs(t, err, os.ErrNotExist)
	ents, err := os.ReadDir(pin.MapsDir(e.root))
	require.NoError(t, err)
	for _, ent := range ents {
		assert.NotContains(t, []string{"sluice_exec_config_v2", "sluice_sys_config_v1"}, ent.Name())
	}
	e.runs(t, "unpinned", e.cat, e.shadow)
	e.runs(t, "unpinned", e.sh, "-c", ":")

	b := e.load(t)
	n, err := b.ExecEntries()
	require.NoError(t, err)
	assert.Zero(t, n)
	sn, err := b.SyscallEntries()
	require.NoError(t, err)
	assert.Zero(t, sn)
}

// A rule map pinned with another layout under the sensor's name is not
// reused: Load unpins it, creates the map anew and says so.
func TestPrivilegedSensorRecreatesIncompatibleRuleMap(t *testing.T) {
	e := newRestartEnv(t)
	require.NoError(t, pin.EnsureRoot(e.root, false))
	const name = "sluice_exec_slots_v1"
	old, err := ebpf.NewMap(&ebpf.MapSpec{Name: "old_layout", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 64})
	require.NoError(t, err)
	require.NoError(t, old.Pin(filepath.Join(pin.MapsDir(e.root), name)))
	old.Close()

	s := e.load(t)
	assert.Equal(t, []string{name}, s.RecreatedMaps())
	m, err := ebpf.LoadPinnedMap(filepath.Join(pin.MapsDir(e.root), name), nil)
	require.NoError(t, err)
	defer m.Close()
	assert.Equal(t, uint32(16), m.ValueSize(), "the sensor's layout (struct exec_slot)")
	require.NoError(t, s.SetExecRules([]procsensor.ExecRule{{Slot: 1, Exact: []string{e.sh}, Action: procsensor.ExecSigkill,
		Enforce: true, Cgroup: true}}))
	require.NoError(t, s.SetExecCgroupScope(e.cgID, 1<<1))
	e.killed(t, "recreated map", e.sh, "-c", ":")
	require.NoError(t, s.SetExecRules(nil))
	require.NoError(t, s.DeleteExecCgroupScope(e.cgID))
	assert.Empty(t, e.load(t).RecreatedMaps(), "the next Load reuses it")
}
