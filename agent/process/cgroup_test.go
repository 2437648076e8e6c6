package process

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testUID = "8f2c1a3e-4b5d-4e6f-9a0b-1c2d3e4f5a6b"
	testCID = "3b1f9a0c2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a"
)

func TestParseCgroupPath(t *testing.T) {
	uidUnderscores := "8f2c1a3e_4b5d_4e6f_9a0b_1c2d3e4f5a6b"
	for _, tc := range []struct {
		name, path string
		want       podCgroup
		ok         bool
	}{
		{"cgroupfs besteffort", "/kubepods/besteffort/pod" + testUID + "/" + testCID, podCgroup{testUID, testCID}, true},
		{"cgroupfs burstable", "/kubepods/burstable/pod" + testUID + "/" + testCID, podCgroup{testUID, testCID}, true},
		{"cgroupfs guaranteed", "/kubepods/pod" + testUID + "/" + testCID, podCgroup{testUID, testCID}, true},
		{"cgroupfs pod cgroup", "/kubepods/besteffort/pod" + testUID, podCgroup{podUID: testUID}, true},
		{"systemd containerd", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidUnderscores +
			".slice/cri-containerd-" + testCID + ".scope", podCgroup{testUID, testCID}, true},
		{"systemd guaranteed crio", "/kubepods.slice/kubepods-pod" + uidUnderscores + ".slice/crio-" + testCID + ".scope",
			podCgroup{testUID, testCID}, true},
		{"systemd docker", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidUnderscores +
			".slice/docker-" + testCID + ".scope", podCgroup{testUID, testCID}, true},
		{"nested node prefix", "/system.slice/kind.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/" +
			"kubelet-kubepods-besteffort-pod" + uidUnderscores + ".slice/cri-containerd-" + testCID + ".scope",
			podCgroup{testUID, testCID}, true},
		{"host service", "/system.slice/sshd.service", podCgroup{}, false},
		{"root", "/", podCgroup{}, false},
		{"user slice", "/user.slice/user-0.slice/session-1.scope", podCgroup{}, false},
		{"not a uid", "/kubepods/besteffort/podnotauid/" + testCID, podCgroup{}, false},
		{"non-kubepods slice", "/foo-pod" + uidUnderscores + ".slice", podCgroup{}, false},
		{"conmon scope", "/kubepods.slice/kubepods-pod" + uidUnderscores + ".slice/crio-conmon-" + testCID + ".scope",
			podCgroup{testUID, testCID}, true},
		{"not a container dir", "/kubepods/pod" + testUID + "/init.scope", podCgroup{podUID: testUID}, true},
	} {
		got, ok := parseCgroupPath(tc.path)
		assert.Equal(t, tc.ok, ok, tc.name)
		assert.Equal(t, tc.want, got, tc.name)
	}
}

// writeProcCgroup writes <root>/<pid>/cgroup.
func writeProcCgroup(t testing.TB, root, pid, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Join(root, pid), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, pid, "cgroup"), []byte(content), 0o644))
}

func TestReadPodCgroup(t *testing.T) {
	root := t.TempDir()
	writeProcCgroup(t, root, "10", "0::/kubepods/besteffort/pod"+testUID+"/"+testCID+"\n")
	writeProcCgroup(t, root, "11", "12:pids:/kubepods/burstable/pod"+testUID+"/"+testCID+
		"\n1:name=systemd:/kubepods/burstable/pod"+testUID+"/"+testCID+"\n0::/\n")
	writeProcCgroup(t, root, "12", "0::/system.slice/containerd.service\n")

	for _, pid := range []uint32{10, 11} {
		pc, ok, err := readPodCgroup(root, pid)
		require.NoError(t, err)
		assert.True(t, ok, pid)
		assert.Equal(t, podCgroup{testUID, testCID}, pc, pid)
	}
	_, ok, err := readPodCgroup(root, 12)
	require.NoError(t, err)
	assert.False(t, ok)
	_, _, err = readPodCgroup(root, 13)
	assert.ErrorIs(t, err, os.ErrNotExist)
}
