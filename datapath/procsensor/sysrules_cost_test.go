package procsensor_test

import (
	"fmt"
	"os"
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
// argument 1 points to, often a fault, and a trie lookup), and a Global
// rule on openat whose string filter misses, per openat (the runs of the
// other syscalls counted at the first case's cost). Post rules that never
// match. Logged, not asserted.
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
	}
}
