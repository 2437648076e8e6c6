package harness

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// BPFFS mounts a private bpf filesystem instance in a temporary directory and
// returns its path. Unmounting it in cleanup drops every pin made in it.
func BPFFS(tb T) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "bpffs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	if err := unix.Mount("bpffs", dir, "bpf", 0, "mode=0700"); err != nil {
		tb.Fatalf("mount bpffs on %s: %v", dir, err)
	}
	tb.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			tb.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// CgroupV2Root is where this machine mounts the cgroup v2 hierarchy.
const CgroupV2Root = "/sys/fs/cgroup/unified"

// Cgroup creates a cgroup v2 directory owned by the test (socket-LB programs
// attach here, never to the machine's root cgroup) and removes it in cleanup.
func Cgroup(tb T) string {
	tb.Helper()
	dir := filepath.Join(CgroupV2Root, RandName("sluice-test-"))
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatalf("create cgroup: %v", err)
	}
	tb.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			tb.Errorf("remove cgroup %s: %v", dir, err)
		}
	})
	return dir
}

// SubCgroup creates the cgroup v2 directory name under parent (a test's
// own cgroup) and removes it in cleanup (before parent, whose cleanup was
// registered first). It returns the directory and its cgroup id (the
// directory's inode: what bpf_get_current_cgroup_id returns for its
// processes).
func SubCgroup(tb T, parent, name string) (dir string, id uint64) {
	tb.Helper()
	dir = filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatalf("create cgroup: %v", err)
	}
	tb.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			tb.Errorf("remove cgroup %s: %v", dir, err)
		}
	})
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		tb.Fatalf("stat cgroup: %v", err)
	}
	return dir, st.Ino
}
