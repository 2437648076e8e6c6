package process

import (
	"errors"
	"io/fs"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// CgroupFinder finds the cgroup v2 directories of containers under a root
// (the kubelet's pods cgroup, or any cgroup holding them): a directory is
// a container's when its name is the container id, or <runtime>-<id>.scope
// (the layouts parseCgroupPath reads). A container's cgroup id is its
// directory's inode, what bpf_get_current_cgroup_id returns for its
// processes (processes in a cgroup the container nests below its own are
// not found: its own directory is the scope). Found directories are
// remembered and checked with one stat per lookup; a missing id walks the
// tree once per call. Safe for concurrent use.
type CgroupFinder struct {
	root string

	mu    sync.Mutex
	known map[string]cgroupDir // container id -> its directory
}

type cgroupDir struct {
	path string
	ino  uint64
}

// NewCgroupFinder returns a finder for the containers under root.
func NewCgroupFinder(root string) *CgroupFinder {
	return &CgroupFinder{root: root, known: map[string]cgroupDir{}}
}

// ContainerCgroups returns the cgroup id of each container of ids whose
// directory exists under the root; the others (not started yet, gone, or
// on another node) are left out. Remembered directories of containers not
// in ids are forgotten.
func (f *CgroupFinder) ContainerCgroups(ids []string) map[string]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]uint64, len(ids))
	want := map[string]bool{}
	for _, id := range ids {
		if d, ok := f.known[id]; ok && sameDir(d) {
			out[id] = d.ino
			continue
		}
		delete(f.known, id)
		if id != "" {
			want[id] = true
		}
	}
	for id := range f.known {
		if _, ok := out[id]; !ok {
			delete(f.known, id)
		}
	}
	if len(want) == 0 {
		return out
	}
	_ = filepath.WalkDir(f.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == f.root {
				return err
			}
			return nil // a cgroup removed under the walk
		}
		if !d.IsDir() {
			return nil
		}
		id := containerID(d.Name())
		if id == "" || !want[id] {
			return nil
		}
		var st unix.Stat_t
		if unix.Stat(path, &st) == nil {
			f.known[id] = cgroupDir{path: path, ino: st.Ino}
			out[id] = st.Ino
			delete(want, id)
		}
		if len(want) == 0 {
			return errAllFound
		}
		return filepath.SkipDir
	})
	return out
}

var errAllFound = errors.New("all found")

// sameDir reports whether d still is the directory it was.
func sameDir(d cgroupDir) bool {
	var st unix.Stat_t
	return unix.Stat(d.path, &st) == nil && st.Ino == d.ino
}
