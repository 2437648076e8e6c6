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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/test/harness"
)

// Tracing safety: the rules of these tests name only binaries copied into
// the test's own directory, and every rule is scoped to a network namespace
// the test created (or applies only through followChildren from such a
// scope); everything is removed in cleanup.

// ruleEnv is a sensor, a test netns with its inode, and copies of /bin/sh
// (the "sh" field) and /bin/true in the test's directory.
type ruleEnv struct {
	*sensorEnv
	ns     *harness.NetNS
	netns  uint32
	sh, tr string
}

func newRuleEnv(t *testing.T) *ruleEnv {
	t.Helper()
	e := newSensorEnv(t)
	r := &ruleEnv{sensorEnv: e, ns: harness.NewNetNS(t, "sl-trp-")}
	var st unix.Stat_t
	require.NoError(t, unix.Stat(r.ns.Path(), &st))
	r.netns = uint32(st.Ino)
	r.sh = e.copyBin(t, "/bin/sh", "sh")
	r.tr = e.copyBin(t, "/bin/true", "true")
	t.Cleanup(func() {
		assert.NoError(t, e.s.SetExecRules(nil))
		assert.NoError(t, e.s.DeleteExecScope(r.netns))
	})
	return r
}

// outcome of a command: its pid, exit status (-1 when signalled), signal.
type outcome struct {
	pid    int
	status int
	signal syscall.Signal
}

func runCmd(t *testing.T, cmd *exec.Cmd) outcome {
	t.Helper()
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run %v: %v", cmd.Args, err)
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	o := outcome{pid: cmd.Process.Pid, status: ws.ExitStatus()}
	if ws.Signaled() {
		o.signal = ws.Signal()
	}
	return o
}

// shell runs the copied sh with script, in the test netns or on the host,
// and returns the outcome and whether marker exists afterwards. The script
// creates marker with a shell redirection (no exec): it exists only if the
// shell ran.
func (r *ruleEnv) shell(t *testing.T, inNS bool, script string) (outcome, bool) {
	t.Helper()
	marker := filepath.Join(r.dir, "marker")
	os.Remove(marker)
	args := []string{"-c", ": > " + marker + "; " + script}
	cmd := exec.Command(r.sh, args...)
	if inNS {
		cmd = r.ns.Command(r.sh, args...)
	}
	o := runCmd(t, cmd)
	_, err := os.Stat(marker)
	return o, err == nil
}

func enforcementOf(pid int) func(procsensor.Event) bool {
	return func(ev procsensor.Event) bool {
		return ev.Enforcement != nil && ev.Enforcement.Key.TGID == uint32(pid)
	}
}

// noEnforcement checks that pid posted no enforcement: its exit event came
// (the ring is ordered, an enforcement at its exec would be before it).
func (r *ruleEnv) noEnforcement(t *testing.T, pid int) {
	t.Helper()
	r.wait(t, 1, 10*time.Second, exitOf(pid))
	assert.Empty(t, r.matching(enforcementOf(pid)), "no enforcement event for %d", pid)
}

func (r *ruleEnv) set(t *testing.T, scope uint64, rules ...procsensor.ExecRule) {
	t.Helper()
	require.NoError(t, r.s.SetExecRules(rules))
	require.NoError(t, r.s.SetExecScope(r.netns, scope))
}

// Each action in the test netns (enforce and monitor mode), and the same
// binary on the host, outside the rule's scope.
func TestPrivilegedExecRuleActions(t *testing.T) {
	r := newRuleEnv(t)
	for _, c := range []struct {
		name    string
		action  procsensor.ExecAction
		signal  uint8
		enforce bool
		killed  syscall.Signal // 0: runs
		posts   bool
	}{
		{"sigkill", procsensor.ExecSigkill, 0, true, syscall.SIGKILL, true},
		{"sigkill monitor", procsensor.ExecSigkill, 0, false, 0, true},
		{"signal", procsensor.ExecSignal, uint8(syscall.SIGUSR1), true, syscall.SIGUSR1, true},
		{"post", procsensor.ExecPost, 0, true, 0, true},
		{"nopost", procsensor.ExecNoPost, 0, true, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r.set(t, 1<<3, procsensor.ExecRule{Slot: 3, PolicyID: 77, Exact: []string{r.sh}, Action: c.action, Signal: c.signal, Enforce: c.enforce})
			o, ran := r.shell(t, true, "")
			assert.Equal(t, c.killed, o.signal, "terminating signal")
			assert.Equal(t, c.killed == 0, ran, "the shell ran (its marker)")
			if c.killed == syscall.SIGKILL {
				assert.Equal(t, 137, 128+int(o.signal), "exit 137 in a shell")
			}
			if !c.posts {
				r.noEnforcement(t, o.pid)
			} else {
				en := r.wait(t, 1, 10*time.Second, enforcementOf(o.pid))[0].Enforcement
				x := r.wait(t, 1, 10*time.Second, execOf(o.pid))[0].Exec
				wantSig := c.signal
				if c.action == procsensor.ExecSigkill {
					wantSig = 9
				}
				assert.Equal(t, procsensor.Enforcement{
					Time: en.Time, Key: x.Key, PID: uint32(o.pid), PolicyID: 77, Slot: 3, Action: c.action,
					Signal: wantSig, Enforced: c.killed != 0, Filename: r.sh, NetNS: r.netns,
				}, *en)
				assert.WithinDuration(t, x.Time, en.Time, time.Second)
			}
			// Outside the scope the same binary runs, unreported.
			o, ran = r.shell(t, false, "")
			assert.Equal(t, outcome{pid: o.pid}, o)
			assert.True(t, ran)
			r.noEnforcement(t, o.pid)
		})
	}
}

// A prefix of the test directory kills what runs from it; a longer prefix
// carries the shorter one's rule too (the trie answers with one entry).
func TestPrivilegedExecRulePrefix(t *testing.T) {
	r := newRuleEnv(t)
	r.set(t, 1<<1|1<<2,
		procsensor.ExecRule{Slot: 1, PolicyID: 1, Prefixes: []string{r.dir + "/"}, Action: procsensor.ExecSigkill, Enforce: true},
		procsensor.ExecRule{Slot: 2, PolicyID: 2, Prefixes: []string{r.dir + "/s"}, Action: procsensor.ExecPost})
	o, ran := r.shell(t, true, "")
	assert.Equal(t, syscall.SIGKILL, o.signal)
	assert.False(t, ran)
	en := r.wait(t, 1, 10*time.Second, enforcementOf(o.pid))[0].Enforcement
	assert.Equal(t, uint8(1), en.Slot, "the lower slot decides")
	assert.True(t, en.Enforced)

	// Without slot 1, "sh" matches the longer prefix only.
	r.set(t, 1<<2, procsensor.ExecRule{Slot: 2, PolicyID: 2, Prefixes: []string{r.dir + "/s"}, Action: procsensor.ExecPost})
	o, ran = r.shell(t, true, r.tr)
	assert.Equal(t, 0, o.status)
	assert.True(t, ran)
	en = r.wait(t, 1, 10*time.Second, enforcementOf(o.pid))[0].Enforcement
	assert.Equal(t, uint8(2), en.Slot)
	assert.Len(t, r.matching(func(ev procsensor.Event) bool {
		return ev.Enforcement != nil && ev.Enforcement.Filename == r.tr
	}), 0, "true is not under the prefix .../s")
}

// NotIn: every binary but the listed ones is killed in the scope.
func TestPrivilegedExecRuleNotIn(t *testing.T) {
	r := newRuleEnv(t)
	r.set(t, 1<<0, procsensor.ExecRule{Slot: 0, PolicyID: 5, Exact: []string{r.sh}, NotIn: true, Action: procsensor.ExecSigkill, Enforce: true})
	o, ran := r.shell(t, true, r.tr)
	assert.True(t, ran, "the listed shell runs")
	assert.Equal(t, 137, o.status, "the shell reports its child killed")
	en := r.wait(t, 1, 10*time.Second, func(ev procsensor.Event) bool {
		return ev.Enforcement != nil && ev.Enforcement.Filename == r.tr
	})[0].Enforcement
	assert.Equal(t, uint32(5), en.PolicyID)
	r.noEnforcement(t, o.pid)
}

// followChildren: a rule on "true" that is neither global nor scoped applies
// only to descendants of a shell that a scoped followChildren rule matched.
func TestPrivilegedExecRuleFollowChildren(t *testing.T) {
	r := newRuleEnv(t)
	r.set(t, 1<<0,
		procsensor.ExecRule{Slot: 0, PolicyID: 1, Exact: []string{r.sh}, FollowChildren: true, Children: 1 << 5, Action: procsensor.ExecNoPost},
		procsensor.ExecRule{Slot: 5, PolicyID: 2, Exact: []string{r.tr}, Action: procsensor.ExecSigkill, Enforce: true})

	// The shell's child, and its grandchild through a subshell.
	o, ran := r.shell(t, true, r.tr)
	assert.True(t, ran)
	assert.Equal(t, 137, o.status, "the shell's child was killed")
	o, ran = r.shell(t, true, "("+r.tr+"); exit $?")
	assert.True(t, ran)
	assert.Equal(t, 137, o.status, "the subshell's child was killed")
	en := r.wait(t, 2, 10*time.Second, func(ev procsensor.Event) bool {
		return ev.Enforcement != nil && ev.Enforcement.Filename == r.tr
	})[0].Enforcement
	assert.Equal(t, uint8(5), en.Slot)

	// Not under the shell: "true" runs, in the scope and outside it.
	o = runCmd(t, r.ns.Command(r.tr))
	assert.Equal(t, outcome{pid: o.pid}, o)
	o, ran = r.shell(t, false, r.tr)
	assert.True(t, ran)
	assert.Equal(t, 0, o.status, "no inheritance outside the scope")

	// Exits removed the inherited slots.
	time.Sleep(100 * time.Millisecond)
	n, err := r.s.ExecEntries()
	require.NoError(t, err)
	assert.Zero(t, n.Follow, "follow entries after the processes exited")
}

// Replacing the rule set keeps a kept rule enforcing at every moment, and
// drops a removed one; an empty set leaves no entries.
func TestPrivilegedExecRuleReplace(t *testing.T) {
	r := newRuleEnv(t)
	kept := procsensor.ExecRule{Slot: 1, PolicyID: 1, Exact: []string{r.sh}, Action: procsensor.ExecSigkill, Enforce: true}
	dropped := procsensor.ExecRule{Slot: 2, PolicyID: 2, Exact: []string{r.tr}, Prefixes: []string{r.dir + "/t"}, Action: procsensor.ExecSigkill, Enforce: true}
	other := procsensor.ExecRule{Slot: 3, PolicyID: 3, Exact: []string{r.dir + "/other"}, Prefixes: []string{r.dir + "/o"}, Action: procsensor.ExecPost}
	r.set(t, 1<<1|1<<2|1<<3, kept, dropped)
	o := runCmd(t, r.ns.Command(r.tr))
	assert.Equal(t, syscall.SIGKILL, o.signal, "true killed before the replacement")

	// Alternate the sets while the kept rule's binary runs in the scope.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var swaps int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			set := []procsensor.ExecRule{kept, other}
			if i%2 == 1 {
				set = []procsensor.ExecRule{other, kept, dropped}
			}
			if err := r.s.SetExecRules(set); err != nil {
				t.Error(err)
				return
			}
			swaps++
		}
	}()
	for i := 0; i < 40; i++ {
		o, ran := r.shell(t, true, "")
		if o.signal != syscall.SIGKILL || ran {
			t.Errorf("run %d during replacement: %+v, ran %v", i, o, ran)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d replacements during 40 runs", swaps)

	r.set(t, 1<<1|1<<3, kept, other)
	o = runCmd(t, r.ns.Command(r.tr))
	assert.Equal(t, outcome{pid: o.pid}, o, "the dropped rule no longer kills")
	o, ran := r.shell(t, true, "")
	assert.Equal(t, syscall.SIGKILL, o.signal)
	assert.False(t, ran)
	n, err := r.s.ExecEntries()
	require.NoError(t, err)
	assert.Equal(t, procsensor.ExecEntries{Slots: 2, Exact: 2, Prefix: 1, Scope: 1}, n)

	require.NoError(t, r.s.SetExecRules(nil))
	require.NoError(t, r.s.DeleteExecScope(r.netns))
	n, err = r.s.ExecEntries()
	require.NoError(t, err)
	assert.Equal(t, procsensor.ExecEntries{}, n)
	o, ran = r.shell(t, true, "")
	assert.Equal(t, outcome{pid: o.pid}, o)
	assert.True(t, ran)
}
