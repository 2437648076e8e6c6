package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// CommandIn returns a command that runs name inside ns's network namespace
// (nsenter --net, so mounts stay the host's) and, when cgroupDir is not "",
// is cloned straight into that cgroup v2 directory (clone3 with
// CLONE_INTO_CGROUP): cgroup socket hooks such as connect4 apply from its
// first instruction, with no window in the parent's cgroup. Call release
// once the command has started (or will not be started); it closes the
// cgroup directory descriptor and is idempotent.
func CommandIn(ns *NetNS, cgroupDir string, name string, args ...string) (cmd *exec.Cmd, release func(), err error) {
	cmd = ns.Command(name, args...)
	if cgroupDir == "" {
		return cmd, func() {}, nil
	}
	fd, err := unix.Open(cgroupDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open cgroup %s: %w", cgroupDir, err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	var once sync.Once
	return cmd, func() { once.Do(func() { unix.Close(fd) }) }, nil
}

// CommandInCgroup returns a command that runs in the pod's network namespace
// and in its node's cgroup (where the node's socket-LB programs attach). The
// cgroup descriptor is closed in tb's cleanup.
func (p *Pod) CommandInCgroup(tb T, name string, args ...string) *exec.Cmd {
	tb.Helper()
	cmd, release, err := CommandIn(p.NS, p.Node.Cgroup, name, args...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(release)
	return cmd
}

// CgroupProcs returns the PIDs in a cgroup v2 directory (cgroup.procs).
func CgroupProcs(cgroupDir string) ([]int, error) {
	return readPIDs(cgroupDir + "/cgroup.procs")
}

func readPIDs(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", path, err)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}
