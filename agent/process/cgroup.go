package process

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// podCgroup is what a Kubernetes cgroup path names: the pod UID and the
// container id (empty for the pod's own cgroup).
type podCgroup struct {
	podUID      string
	containerID string
}

// parseCgroupPath finds the pod UID and container id in a cgroup path of the
// kubelet's layouts:
//
//	cgroupfs: /kubepods/besteffort/pod<uid>/<cid>
//	systemd:  /kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid_with_underscores>.slice/cri-containerd-<cid>.scope
//
// Anything may precede the kubepods part (a nested node's cgroup). ok is
// false when the path is not a pod's.
func parseCgroupPath(path string) (podCgroup, bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i, part := range parts {
		uid, ok := podUID(part)
		if !ok {
			continue
		}
		pc := podCgroup{podUID: uid}
		if i+1 < len(parts) {
			pc.containerID = containerID(parts[i+1])
		}
		return pc, true
	}
	return podCgroup{}, false
}

// podUID returns the pod UID a pod cgroup directory names.
func podUID(dir string) (string, bool) {
	if s, ok := strings.CutSuffix(dir, ".slice"); ok {
		_, u, found := strings.Cut(s, "-pod")
		if !found || !strings.Contains(s, "kubepods") {
			return "", false
		}
		dir = "pod" + strings.ReplaceAll(u, "_", "-")
	}
	u, ok := strings.CutPrefix(dir, "pod")
	if !ok || !isUID(u) {
		return "", false
	}
	return u, true
}

// isUID reports whether s looks like a UID (8-4-4-4-12 hex digits).
func isUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !isHex(c) {
			return false
		}
	}
	return true
}

func isHex(c rune) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

// containerID returns the container id a container cgroup directory names:
// "<cid>" (cgroupfs) or "<runtime>-<cid>.scope" (systemd: cri-containerd-,
// crio-, docker-).
func containerID(dir string) string {
	if s, ok := strings.CutSuffix(dir, ".scope"); ok {
		dir = s[strings.LastIndexByte(s, '-')+1:]
	}
	if len(dir) < 12 || strings.IndexFunc(dir, func(c rune) bool { return !isHex(c) }) >= 0 {
		return ""
	}
	return dir
}

// readPodCgroup returns the pod cgroup of a process: the first path in
// /proc/<pid>/cgroup (the cgroup v2 line, or a v1 controller's) that names a
// pod. ok is false when none does.
func readPodCgroup(procRoot string, pid uint32) (pc podCgroup, ok bool, err error) {
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10), "cgroup"))
	if err != nil {
		return podCgroup{}, false, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), ":", 3)
		if len(fields) != 3 {
			continue
		}
		if pc, ok := parseCgroupPath(fields[2]); ok {
			return pc, true, nil
		}
	}
	return podCgroup{}, false, nil
}
