package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestPrivilegedCommandIn(t *testing.T) {
	RequirePrivileged(t)
	ns := NewNetNS(t, "sl-cg-")
	cg := Cgroup(t)
	cmd, release, err := CommandIn(ns, cg, "sh", "-c", "cat /proc/self/cgroup; readlink /proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	out, err := cmd.Output()
	release()
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(ns.Path(), &st); err != nil {
		t.Fatal(err)
	}
	wantNS := fmt.Sprintf("net:[%d]", st.Ino)
	wantCG := "0::/" + filepath.Base(cg)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var gotCG bool
	for _, l := range lines {
		if l == wantCG {
			gotCG = true
		}
	}
	if !gotCG {
		t.Errorf("process not in %s:\n%s", wantCG, out)
	}
	if lines[len(lines)-1] != wantNS {
		t.Errorf("process in %s, want %s", lines[len(lines)-1], wantNS)
	}

	// Without a cgroup: the caller's cgroup, still the namespace.
	cmd, release, err = CommandIn(ns, "", "readlink", "/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	release()
	if out, err := cmd.Output(); err != nil || strings.TrimSpace(string(out)) != wantNS {
		t.Errorf("no-cgroup command: %q, %v", out, err)
	}

	// A long-running process shows up in cgroup.procs.
	cmd, release, err = CommandIn(ns, cg, "sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	release()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pids, err := CgroupProcs(cg)
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) != 1 || pids[0] != cmd.Process.Pid {
		t.Errorf("cgroup.procs = %v, want [%d]", pids, cmd.Process.Pid)
	}

	if _, _, err := CommandIn(ns, filepath.Join(os.TempDir(), "no-such-cgroup"), "true"); err == nil {
		t.Error("CommandIn with a missing cgroup succeeded")
	}
}
