package procsensor_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath/procsensor"
)

// Tracing safety: the syscall rules of these tests are scoped to the test's
// network namespace, or match only binaries copied into the test's
// directory (by class), or only the test's own pids; Sigkill rules are
// among the first two; everything is removed in cleanup.

// sysEnv is a ruleEnv with a copy of cat and two files in the test's
// directory: "secret/shadow" and "other.txt".
type sysEnv struct {
	*ruleEnv
	cat, shadow, other string
}

func newSysEnv(t *testing.T) *sysEnv {
	t.Helper()
	r := newRuleEnv(t)
	e := &sysEnv{ruleEnv: r, cat: r.copyBin(t, "/bin/cat", "cat")}
	require.NoError(t, os.Mkdir(filepath.Join(r.dir, "secret"), 0o755))
	e.shadow = filepath.Join(r.dir, "secret", "shadow")
	e.other = filepath.Join(r.dir, "other.txt")
	for _, p := range []string{e.shadow, e.other} {
		require.NoError(t, os.WriteFile(p, []byte("x\n"), 0o644))
	}
	t.Cleanup(func() {
		assert.NoError(t, r.s.SetSyscallRules(nil))
		assert.NoError(t, r.s.DeleteSyscallScope(r.netns))
		assert.NoError(t, r.s.SetBinaryClasses(nil))
	})
	return e
}

// setSys installs rules, scoped (every slot) to the test netns.
func (e *sysEnv) setSys(t *testing.T, rules ...procsensor.SyscallRule) {
	t.Helper()
	require.NoError(t, e.s.SetSyscallRules(rules))
	require.NoError(t, e.s.SetSyscallScope(e.netns, ^uint64(0)))
}

// catIn runs the copied cat on path in the test netns (inNS) or on the
// host.
func (e *sysEnv) catIn(t *testing.T, inNS bool, path string) outcome {
	t.Helper()
	cmd := exec.Command(e.cat, path)
	if inNS {
		cmd = e.ns.Command(e.cat, path)
	}
	return runCmd(t, cmd)
}

func syscallOf(pid int) func(procsensor.Event) bool {
	return func(ev procsensor.Event) bool {
		return ev.Syscall != nil && ev.Syscall.Key.TGID == uint32(pid)
	}
}

// noSyscall checks that pid posted no syscall event (its exit came after).
func (e *sysEnv) noSyscall(t *testing.T, pid int) {
	t.Helper()
	e.wait(t, 1, 10*time.Second, exitOf(pid))
	assert.Empty(t, e.matching(syscallOf(pid)), "no syscall event for %d", pid)
}

func (e *sysEnv) syscallEvent(t *testing.T, pid int) *procsensor.SyscallEvent {
	t.Helper()
	return e.wait(t, 1, 10*time.Second, syscallOf(pid))[0].Syscall
}

var (
	openatPath  = procsensor.Value{Source: procsensor.SourceArg, Index: 1, String: true}
	openatFlags = procsensor.Value{Source: procsensor.SourceArg, Index: 2}
)

// openatRule is a rule on openat's path.
func openatRule(slot uint8, op procsensor.ArgOp, action procsensor.ExecAction, strs ...string) procsensor.SyscallRule {
	return procsensor.SyscallRule{
		Slot: slot, PolicyID: 100 + uint32(slot), Syscalls: []uint32{unix.SYS_OPENAT},
		Args:    []procsensor.ArgFilter{{Value: openatPath, Op: op, Strings: strs}},
		Capture: []procsensor.Value{openatPath, openatFlags}, Action: action,
	}
}

// A Post rule on openat of the shadow file posts an event with the path,
// the syscall number and the captured flags; other paths post nothing, and
// the same binary outside the scope neither.
func TestPrivilegedSyscallRulePost(t *testing.T) {
	e := newSysEnv(t)
	e.setSys(t, openatRule(0, procsensor.ArgEqual, procsensor.ExecPost, e.shadow))
	assert.Contains(t, e.s.Hooks(), procsensor.HookSysEnter)
	assert.NotContains(t, e.s.Hooks(), procsensor.HookSysExit)

	o := e.catIn(t, true, e.shadow)
	require.Equal(t, 0, o.status)
	ev := e.syscallEvent(t, o.pid)
	assert.Equal(t, uint32(100), ev.PolicyID)
	assert.Equal(t, procsensor.ExecPost, ev.Action)
	assert.Equal(t, uint32(unix.SYS_OPENAT), ev.Nr)
	assert.False(t, ev.Exit)
	assert.Equal(t, e.netns, ev.NetNS)
	require.Len(t, ev.Args, 2)
	assert.True(t, ev.Args[0].IsString)
	assert.Equal(t, e.shadow, ev.Args[0].Str)
	assert.False(t, ev.Args[0].Truncated || ev.Args[0].Fault)
	assert.False(t, ev.Args[1].IsString)
	assert.Equal(t, uint64(unix.O_RDONLY), ev.Args[1].Int&unix.O_ACCMODE)
	assert.Len(t, e.matching(syscallOf(o.pid)), 1, "one openat of the file")

	e.noSyscall(t, e.catIn(t, true, e.other).pid)
	e.noSyscall(t, e.catIn(t, false, e.shadow).pid)
}

// Sigkill kills the process at its openat of the file in enforce mode
// (exit by SIGKILL, an enforced event) and not in monitor mode.
func TestPrivilegedSyscallRuleSigkill(t *testing.T) {
	e := newSysEnv(t)
	kill := openatRule(0, procsensor.ArgEqual, procsensor.ExecSigkill, e.shadow)
	kill.Enforce = true
	e.setSys(t, kill)
	o := e.catIn(t, true, e.shadow)
	assert.Equal(t, syscall.SIGKILL, o.signal)
	ev := e.syscallEvent(t, o.pid)
	assert.True(t, ev.Enforced)
	assert.Equal(t, procsensor.ExecSigkill, ev.Action)
	assert.Equal(t, uint8(9), ev.Signal)
	assert.Equal(t, 0, e.catIn(t, true, e.other).status)

	kill.Enforce = false
	e.setSys(t, kill)
	o = e.catIn(t, true, e.shadow)
	assert.Equal(t, 0, o.status)
	assert.Zero(t, o.signal)
	ev = e.syscallEvent(t, o.pid)
	assert.False(t, ev.Enforced)
	assert.Equal(t, procsensor.ExecSigkill, ev.Action)
}

// Removing the rules removes every map entry and detaches the programs.
func TestPrivilegedSyscallRuleRemoval(t *testing.T) {
	e := newSysEnv(t)
	exit := openatRule(1, procsensor.ArgPostfix, procsensor.ExecPost, "/shadow")
	exit.Exit = true
	rate := openatRule(2, procsensor.ArgPrefix, procsensor.ExecPost, e.dir+"/")
	rate.RateLimit = time.Hour
	rate.PIDs, rate.FollowForks, rate.Global = []uint32{uint32(os.Getpid())}, true, true
	e.setSys(t, openatRule(0, procsensor.ArgEqual, procsensor.ExecPost, e.shadow), exit, rate)
	hooks := e.s.Hooks()
	assert.True(t, slices.Contains(hooks, procsensor.HookSysEnter) && slices.Contains(hooks, procsensor.HookSysExit), "%v", hooks)
	f, err := os.Open(e.other) // this process: the rate and follow maps get entries
	require.NoError(t, err)
	f.Close()
	n, err := e.s.SyscallEntries()
	require.NoError(t, err)
	assert.Equal(t, procsensor.SyscallEntries{Slots: 3, Nrs: 1, Strings: 2, Postfixes: 1, Scope: 1, Follow: 1, Rate: 1}, n)

	require.NoError(t, e.s.SetSyscallRules(nil))
	require.NoError(t, e.s.DeleteSyscallScope(e.netns))
	n, err = e.s.SyscallEntries()
	require.NoError(t, err)
	assert.Equal(t, procsensor.SyscallEntries{}, n)
	assert.NotContains(t, e.s.Hooks(), procsensor.HookSysEnter)
	assert.NotContains(t, e.s.Hooks(), procsensor.HookSysExit)
}

// Replacing the rule set keeps a kept rule enforcing at every moment
// (while other slots come and go and move between hooks), and drops a
// removed one.
func TestPrivilegedSyscallRuleReplace(t *testing.T) {
	e := newSysEnv(t)
	kept := openatRule(1, procsensor.ArgEqual, procsensor.ExecSigkill, e.shadow)
	kept.Enforce = true
	dropped := openatRule(2, procsensor.ArgPrefix, procsensor.ExecSigkill, e.other)
	dropped.Enforce = true
	other := openatRule(3, procsensor.ArgPostfix, procsensor.ExecPost, "/nowhere")
	other.Exit = true
	e.setSys(t, kept, dropped)

	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		swaps := 0
		defer func() { done <- swaps }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			set := []procsensor.SyscallRule{kept, other}
			if i%2 == 1 {
				set = []procsensor.SyscallRule{other, kept, dropped}
			}
			if err := e.s.SetSyscallRules(set); err != nil {
				t.Error(err)
				return
			}
			swaps++
		}
	}()
	for i := 0; i < 40; i++ {
		if o := e.catIn(t, true, e.shadow); o.signal != syscall.SIGKILL {
			t.Errorf("run %d during replacement: %+v", i, o)
		}
	}
	close(stop)
	t.Logf("%d replacements during 40 runs", <-done)

	require.NoError(t, e.s.SetSyscallRules([]procsensor.SyscallRule{kept, other}))
	assert.Equal(t, 0, e.catIn(t, true, e.other).status, "the dropped rule no longer kills")
	assert.Equal(t, syscall.SIGKILL, e.catIn(t, true, e.shadow).signal)
	n, err := e.s.SyscallEntries()
	require.NoError(t, err)
	assert.Equal(t, procsensor.SyscallEntries{Slots: 2, Nrs: 1, Strings: 1, Postfixes: 1, Scope: 1}, n)
}

// Signal sends its signal; NoPost decides for its group without an event;
// a path longer than the read is reported cut.
func TestPrivilegedSyscallRuleSignalNoPost(t *testing.T) {
	e := newSysEnv(t)
	term := openatRule(0, procsensor.ArgEqual, procsensor.ExecSignal, e.shadow)
	term.Signal, term.Enforce = uint8(syscall.SIGTERM), true
	quiet := openatRule(1, procsensor.ArgPrefix, procsensor.ExecNoPost, e.dir+"/other")
	post := openatRule(2, procsensor.ArgPrefix, procsensor.ExecPost, e.dir+"/")
	quiet.Group, post.Group = 1<<1|1<<2, 1<<1|1<<2
	e.setSys(t, term, quiet, post)

	o := e.catIn(t, true, e.shadow)
	assert.Equal(t, syscall.SIGTERM, o.signal)
	assert.Equal(t, []uint32{100, 102}, e.policiesOf(t, o.pid))
	ev := e.syscallEvent(t, o.pid)
	assert.Equal(t, procsensor.ExecSignal, ev.Action)
	assert.Equal(t, uint8(syscall.SIGTERM), ev.Signal)
	assert.True(t, ev.Enforced)
	e.noSyscall(t, e.catIn(t, true, e.other).pid)

	long := filepath.Join(e.dir, strings.Repeat("d", 150), strings.Repeat("f", 150))
	o = e.catIn(t, true, long)
	assert.Equal(t, 1, o.status)
	ev = e.syscallEvent(t, o.pid)
	assert.Equal(t, uint32(102), ev.PolicyID)
	assert.True(t, ev.Args[0].Truncated)
	assert.Equal(t, long[:procsensor.StringMax-1], ev.Args[0].Str)
}
