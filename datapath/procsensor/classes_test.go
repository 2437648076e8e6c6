package procsensor_test

import (
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/procsensor"
)

// waiter is a copy of the test binary blocked until told to open a file.
type waiter struct {
	cmd *exec.Cmd
	in  io.WriteCloser
}

func (e *sysEnv) startWaiter(t *testing.T, bin, path string) *waiter {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), childEnv+"=waitopen:"+path)
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	e.wait(t, 1, 10*time.Second, func(ev procsensor.Event) bool {
		return ev.Exec != nil && ev.Exec.Key.TGID == uint32(cmd.Process.Pid)
	})
	return &waiter{cmd: cmd, in: in}
}

// open makes the waiter open its file and exit.
func (w *waiter) open(t *testing.T) int {
	t.Helper()
	_, err := w.in.Write([]byte("go\n"))
	require.NoError(t, err)
	require.NoError(t, w.cmd.Wait())
	return w.cmd.Process.Pid
}

// matchBinaries and matchParentBinaries by binary class: exact path, a
// process running before its class existed (seeded from /proc) and one
// whose classes changed after its exec (recomputed from its path), the
// parent's class, followChildren. The rules are Global but match only
// binaries copied into the test's directory.
func TestPrivilegedSyscallRuleClasses(t *testing.T) {
	e := newSysEnv(t)
	child := e.selfBin(t)
	cat2 := e.copyBin(t, "/bin/cat", "cat2")
	before := e.startWaiter(t, child, e.other) // no classes yet: the kernel keeps no entry
	require.NoError(t, e.s.SetBinaryClasses([]procsensor.BinaryClass{{ID: 3, Exact: []string{e.cat}}}))
	changed := e.startWaiter(t, child, e.other) // an entry without class 4
	require.NoError(t, e.s.SetBinaryClasses([]procsensor.BinaryClass{
		{ID: 3, Exact: []string{e.cat}},
		{ID: 4, Exact: []string{child}},
		{ID: 5, Exact: []string{e.sh}},
		{ID: 6, Prefixes: []string{e.dir + "/sh"}, FollowChildren: true},
		{ID: 7, Exact: []string{e.sh}},
	}))
	rule := func(slot uint8, self, parent uint64) procsensor.SyscallRule {
		r := openatRule(slot, procsensor.ArgPrefix, procsensor.ExecPost, e.dir+"/")
		r.Global, r.Binary.All, r.Parent.All = true, self, parent
		return r
	}
	notCat := rule(5, 1<<4, 0)
	notCat.Binary.None = 1 << 3
	require.NoError(t, e.s.SetSyscallRules([]procsensor.SyscallRule{
		rule(0, 1<<3, 0), rule(1, 1<<4, 0), rule(2, 0, 1<<5), rule(3, 1<<6, 0), rule(4, 1<<7, 0), notCat,
	}))

	assert.Equal(t, []uint32{101, 105}, e.policiesOf(t, before.open(t)), "seeded from /proc")
	assert.Equal(t, []uint32{101, 105}, e.policiesOf(t, changed.open(t)), "recomputed")
	assert.Equal(t, []uint32{100}, e.policiesOf(t, e.catIn(t, false, e.other).pid))
	e.noSyscall(t, runCmd(t, exec.Command(cat2, e.other)).pid)
	// cat under the copied sh: its parent is in 5, and it inherits 6 (sh's
	// prefix class with followChildren) but not 7.
	o := runCmd(t, exec.Command(e.sh, "-c", cat2+" "+e.other+"; true"))
	require.Equal(t, 0, o.status)
	ev := e.wait(t, 1, 10*time.Second, func(ev procsensor.Event) bool {
		return ev.Exec != nil && ev.Exec.Filename == cat2 && ev.Exec.Parent.TGID == uint32(o.pid)
	})[0]
	catPID := ev.Exec.Key.TGID
	assert.Equal(t, []uint32{102, 103}, e.policiesOf(t, int(catPID)))

	readable := 0 // processes whose binary this test can see
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	for _, d := range ents {
		if _, err := os.Readlink("/proc/" + d.Name() + "/exe"); err == nil {
			readable++
		}
	}
	n, err := e.s.ClassEntries()
	require.NoError(t, err)
	assert.Equal(t, 3, n.Exact)
	assert.Equal(t, 1, n.Prefix)
	t.Logf("%d process entries, %d processes with a readable /proc/PID/exe", n.Procs, readable)
	assert.GreaterOrEqual(t, n.Procs, readable/2, "the running processes, seeded (some may have exited since)")
	require.NoError(t, e.s.SetBinaryClasses(nil))
	n, err = e.s.ClassEntries()
	require.NoError(t, err)
	assert.Equal(t, procsensor.ClassEntries{}, n)
}
