package procsensor_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/test/harness"
)

const clockTicksNs = 10_000_000 // USER_HZ 100

func execOf(pid int) func(procsensor.Event) bool {
	return func(ev procsensor.Event) bool { return ev.Exec != nil && ev.Exec.Key.TGID == uint32(pid) }
}

func exitOf(pid int) func(procsensor.Event) bool {
	return func(ev procsensor.Event) bool { return ev.Exit != nil && ev.Exit.Key.TGID == uint32(pid) }
}

func nsInode(t *testing.T, pid int, ns string) uint32 {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, ns), &st))
	return uint32(st.Ino)
}

// An exec reports the binary, argv, cwd, credentials, namespaces, cgroup
// and parent of the new image, for a process run under another uid.
func TestPrivilegedSensorExec(t *testing.T) {
	e := newSensorEnv(t)
	bin := e.selfBin(t)
	var realCwd string
	cwd := filepath.Join(e.dir, "work dir", "sub")
	require.NoError(t, os.MkdirAll(cwd, 0o755))

	cmd := exec.Command(bin, "-test.run=^$", "second arg")
	cmd.Env = []string{childEnv + "=sleep"}
	cmd.Dir = cwd
	cg := harness.Cgroup(t)
	cgfd, err := unix.Open(cg, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(cgfd)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential:  &syscall.Credential{Uid: 65534, Gid: 65533},
		UseCgroupFD: true, CgroupFD: cgfd,
	}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid

	x := e.wait(t, 1, 10*time.Second, execOf(pid))[0].Exec
	t.Logf("exec: %+v", *x)
	assert.Equal(t, bin, x.Filename)
	assert.Equal(t, []string{bin, "-test.run=^$", "second arg"}, x.Args)
	assert.False(t, x.ArgsTruncated || x.FilenameTruncated || x.CwdTruncated)
	realCwd, err = filepath.EvalSymlinks(cwd)
	require.NoError(t, err)
	assert.Equal(t, realCwd, x.Cwd)
	assert.Equal(t, uint32(pid), x.PID)
	assert.Equal(t, uint32(65534), x.UID)
	assert.Equal(t, uint32(65534), x.EUID)
	assert.Equal(t, uint32(65533), x.GID)
	loginuid, err := os.ReadFile(fmt.Sprintf("/proc/%d/loginuid", pid))
	require.NoError(t, err)
	assert.Equal(t, strings.TrimSpace(string(loginuid)), fmt.Sprint(x.AUID))
	assert.Zero(t, x.CapEffective, "a non-root uid has no effective capabilities")
	assert.Zero(t, x.CapPermitted)
	assert.Equal(t, procsensor.Namespaces{PID: nsInode(t, pid, "pid"), Mnt: nsInode(t, pid, "mnt"), Net: nsInode(t, pid, "net")}, x.NS)
	var cgst unix.Stat_t
	require.NoError(t, unix.Stat(cg, &cgst))
	assert.Equal(t, cgst.Ino, x.CgroupID, "the test's cgroup")
	assert.Equal(t, "/"+filepath.Base(cg), cgroupV2Path(t, pid))
	assert.Equal(t, uint32(os.Getpid()), x.Parent.TGID)
	assert.Equal(t, selfStartTicks(t), x.Parent.StartTime/clockTicksNs, "parent start time")
	assert.WithinDuration(t, time.Now(), x.Time, 5*time.Second)

	// The same process, as the task iterator and /proc see it.
	running, err := e.s.Running()
	require.NoError(t, err)
	var found bool
	for _, r := range running {
		if r.Key != x.Key {
			continue
		}
		found = true
		assert.True(t, r.ProcFS)
		assert.Equal(t, x.Parent, r.Parent)
		assert.Equal(t, x.UID, r.UID)
		assert.Equal(t, x.NS, r.NS)
		assert.Equal(t, x.CgroupID, r.CgroupID)
		assert.Equal(t, x.Args, r.Args)
		assert.Equal(t, realCwd, r.Cwd)
		assert.Equal(t, bin, r.Filename)
	}
	assert.True(t, found, "Running lists the process")
}

func cgroupV2Path(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return p
		}
	}
	t.Fatal("no cgroup v2 line")
	return ""
}

// A long argument list is cut at the sensor's bound and flagged.
func TestPrivilegedSensorExecLongArgs(t *testing.T) {
	e := newSensorEnv(t)
	bin := e.selfBin(t)
	args := []string{"-test.run=^$"}
	for i := 0; i < 300; i++ {
		args = append(args, fmt.Sprintf("argument-%04d-xxxxxxxx", i))
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{childEnv + "=exit:0"}
	require.NoError(t, cmd.Run())

	x := e.wait(t, 1, 10*time.Second, execOf(cmd.Process.Pid))[0].Exec
	assert.True(t, x.ArgsTruncated)
	require.Greater(t, len(x.Args), 50)
	n := len(x.Args) - 1 // the last one is cut
	assert.Equal(t, append([]string{bin}, args...)[:n], x.Args[:n])
	assert.True(t, strings.HasPrefix(fmt.Sprint(args[n-1]), x.Args[n]) || x.Args[n] == args[n-1])
	total := 0
	for _, a := range x.Args {
		total += len(a) + 1
	}
	assert.LessOrEqual(t, total, 2048+1)
}

// Exit status, terminating signal, and one exit per process however many
// threads it had.
func TestPrivilegedSensorExit(t *testing.T) {
	e := newSensorEnv(t)
	bin := e.selfBin(t)
	run := func(job string, kill syscall.Signal) int {
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = []string{childEnv + "=" + job}
		require.NoError(t, cmd.Start())
		if kill != 0 {
			e.wait(t, 1, 10*time.Second, execOf(cmd.Process.Pid))
			require.NoError(t, cmd.Process.Signal(kill))
		}
		cmd.Wait()
		return cmd.Process.Pid
	}
	status := run("exit:3", 0)
	killed := run("sleep", syscall.SIGKILL)
	termed := run("sleep", syscall.SIGTERM)
	threads := run("threads:8", 0)

	x := e.wait(t, 1, 10*time.Second, exitOf(status))[0].Exit
	assert.Equal(t, procsensor.Exit{Time: x.Time, Key: x.Key, Status: 3}, *x)
	assert.Equal(t, uint32(syscall.SIGKILL), e.wait(t, 1, 10*time.Second, exitOf(killed))[0].Exit.Signal)
	assert.Equal(t, uint32(syscall.SIGTERM), e.wait(t, 1, 10*time.Second, exitOf(termed))[0].Exit.Signal)
	x = e.wait(t, 1, 10*time.Second, exitOf(threads))[0].Exit
	assert.Equal(t, uint32(3), x.Status)
	exec0 := e.wait(t, 1, 10*time.Second, execOf(threads))[0].Exec
	assert.Equal(t, exec0.Key, x.Key, "exit and exec name one process")
	time.Sleep(200 * time.Millisecond)
	assert.Len(t, e.matching(exitOf(threads)), 1, "one exit for a process of 9+ threads")
}

// A fork reports the child process with the key its exec keeps.
func TestPrivilegedSensorFork(t *testing.T) {
	e := newSensorEnv(t)
	bin := e.selfBin(t)
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = []string{childEnv + "=exit:0"}
	require.NoError(t, cmd.Run())
	pid := cmd.Process.Pid

	f := e.wait(t, 1, 10*time.Second, func(ev procsensor.Event) bool {
		return ev.Fork != nil && ev.Fork.Key.TGID == uint32(pid)
	})[0].Fork
	x := e.wait(t, 1, 10*time.Second, execOf(pid))[0].Exec
	assert.Equal(t, x.Key, f.Key, "the exec keeps the forked task's start time")
	assert.Equal(t, x.Parent, f.Parent)
	assert.Equal(t, uint32(os.Getpid()), f.Parent.TGID)
	// Threads are not processes: the child's own threads made no forks.
	assert.Len(t, e.matching(func(ev procsensor.Event) bool {
		return ev.Fork != nil && ev.Fork.Parent.TGID == uint32(pid)
	}), 0)
}

// Every exec of a burst is received or counted as lost; run time per event
// from the kernel's BPF statistics.
func TestPrivilegedSensorExecBurst(t *testing.T) {
	e := newSensorEnv(t)
	bin := e.copyBin(t, "/bin/true", "true")
	lost0, err := e.s.Lost()
	require.NoError(t, err)
	stats0, err := e.s.ProgramStats()
	require.NoError(t, err)

	const n, workers = 10000, 4
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= n {
				if err := exec.Command(bin).Run(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	isBurst := func(ev procsensor.Event) bool { return ev.Exec != nil && ev.Exec.Filename == bin }
	time.Sleep(time.Second)
	lost1, err := e.s.Lost()
	require.NoError(t, err)
	lost := lost1 - lost0
	got := e.wait(t, n-int(min(lost, n)), 30*time.Second, isBurst)
	t.Logf("execs %d, received %d, lost %d (machine-wide)", n, len(got), lost)
	assert.LessOrEqual(t, len(got), n)
	assert.GreaterOrEqual(t, uint64(len(got))+lost, uint64(n))

	stats1, err := e.s.ProgramStats()
	require.NoError(t, err)
	for hook, st := range stats1 {
		d := procsensor.Stats{RunCount: st.RunCount - stats0[hook].RunCount, RunTime: st.RunTime - stats0[hook].RunTime}
		t.Logf("%-28s runs %7d  %v/run", hook, d.RunCount, d.PerRun())
	}
}
