package procsensor_test

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath/procsensor"
)

// The sys_enter program's run time per syscall (kernel BPF statistics,
// every syscall of the machine while the program is attached; the test
// adds a loop of getpid and openat/close): a rule on a syscall nobody
// calls (one array lookup), a rule on every syscall scoped to the test
// netns (the nr and scope lookups miss on the host), a Global rule on every
// syscall whose string filter on argument 1 misses (a read of whatever
// argument 1 points to, often a fault), and a Global rule on openat whose
// string filter misses, per openat (the runs of the other syscalls counted
// at the first case's cost): in the first 8 bytes (the head check decides)
// or after them (the whole path is read and the trie decides). Post rules
// that never match. Logged, not asserted.
func TestPrivilegedSyscallRuleCost(t *testing.T) {
	e := newSysEnv(t)
	const n = 200000
	miss := func(slot uint8) procsensor.SyscallRule {
		return openatRule(slot, procsensor.ArgEqual, procsensor.ExecPost, "/nonexistent/sluice-cost")
	}
	noNr := miss(0)
	noNr.Syscalls = []uint32{500} // none on x86_64
	scope := miss(0)
	scope.Syscalls = nil
	str := scope
	str.Global = true
	openat := miss(0)
	openat.Global = true
	// The same directory: the first 8 bytes match, the trie decides.
	head := miss(0)
	head.Global, head.Args[0].Strings = true, []string{e.dir + "/sluice-cost"}
	var base time.Duration
	measure := func(name string, r procsensor.SyscallRule, opens bool) {
		e.setSys(t, r)
		before, err := e.s.ProgramStats()
		require.NoError(t, err)
		runtime.LockOSThread()
		for i := 0; i < n; i++ {
			if opens || i%4 == 0 {
				if f, err := os.Open(e.other); err == nil {
					f.Close()
				}
				continue
			}
			syscall.Getpid()
		}
		runtime.UnlockOSThread()
		after, err := e.s.ProgramStats()
		require.NoError(t, err)
		hook := procsensor.HookSysEnter
		d := procsensor.Stats{RunCount: after[hook].RunCount - before[hook].RunCount, RunTime: after[hook].RunTime - before[hook].RunTime}
		if base == 0 {
			base = d.PerRun()
		}
		per := ""
		if opens {
			per = fmt.Sprintf("  %v/openat", (d.RunTime-time.Duration(d.RunCount-n)*base)/n)
		}
		t.Logf("%-30s runs %7d  %v/run%s", name, d.RunCount, d.PerRun(), per)
	}
	for round := 0; round < 3; round++ {
		measure("rule on another syscall", noNr, false)
		measure("every syscall, scope miss", scope, false)
		measure("every syscall, string miss", str, false)
		measure("openat, string miss", openat, true)
		measure("openat, head hit, string miss", head, true)
	}
}

// The exec, fork and exit programs' run time without binary classes and
// with 64 classes (exact and prefix paths, none matching): the classes of
// every process are kept from the first class on. Logged, not asserted.
func TestPrivilegedBinaryClassCost(t *testing.T) {
	e := newSysEnv(t)
	var classes []procsensor.BinaryClass
	for i := 0; i < procsensor.MaxBinaryClasses; i++ {
		p := fmt.Sprintf("%s/bin-%02d", e.dir, i)
		classes = append(classes, procsensor.BinaryClass{ID: uint8(i), Exact: []string{p}, Prefixes: []string{p + "/"}, FollowChildren: i%2 == 0})
	}
	const n = 2000
	measure := func(name string, classes []procsensor.BinaryClass) {
		require.NoError(t, e.s.SetBinaryClasses(classes))
		before, err := e.s.ProgramStats()
		require.NoError(t, err)
		for i := 0; i < n; i++ {
			require.NoError(t, exec.Command(e.tr).Run())
		}
		after, err := e.s.ProgramStats()
		require.NoError(t, err)
		for _, hook := range []string{procsensor.HookExec, procsensor.HookFork, procsensor.HookExit} {
			d := procsensor.Stats{RunCount: after[hook].RunCount - before[hook].RunCount, RunTime: after[hook].RunTime - before[hook].RunTime}
			t.Logf("%-12s %-28s runs %6d  %v/run", name, hook, d.RunCount, d.PerRun())
		}
	}
	for round := 0; round < 2; round++ {
		measure("no classes", nil)
		measure("64 classes", classes)
	}
}
