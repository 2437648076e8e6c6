package process

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/procsensor"
)

// endpointList is an EndpointLister over a slice, counting List calls.
type endpointList struct {
	mu    sync.Mutex
	eps   []api.Endpoint
	lists int
}

func (l *endpointList) List() ([]api.Endpoint, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lists++
	return append([]api.Endpoint(nil), l.eps...), nil
}

func (l *endpointList) set(eps ...api.Endpoint) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.eps = eps
}

// fileInode creates a file and returns its path and inode (a stand-in for
// a namespace file: the association only stats it).
func fileInode(t testing.TB, name string) (string, uint32) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	ino, err := NSInode(path)
	require.NoError(t, err)
	return path, ino
}

func TestAssociationByNetNS(t *testing.T) {
	pathA, inoA := fileInode(t, "a")
	pathB, inoB := fileInode(t, "b")
	eps := &endpointList{}
	eps.set(api.Endpoint{ContainerID: "c1", NetNS: pathA, PodNamespace: "default", PodName: "web-1"})
	a := NewAssociation(AssociationConfig{Endpoints: eps, HostNetNS: 1})
	pod := testPod("default", "web-1", map[string]string{"app": "web"}, nil)
	a.SetPods([]*corev1.Pod{pod})

	got := a.PodFor(0, 0, inoA)
	require.NotNil(t, got)
	assert.Equal(t, &api.Pod{Namespace: "default", Name: "web-1", Labels: pod.Labels, Workload: "web-1", WorkloadKind: "Pod"}, got)
	assert.Nil(t, a.PodFor(0, 0, 1), "host")
	assert.Nil(t, a.PodFor(0, 0, 0))
	assert.Equal(t, 1, eps.lists)

	// A new endpoint: found after EndpointsChanged, or by the re-list an
	// unknown namespace triggers (at most once a second).
	eps.set(api.Endpoint{NetNS: pathA, PodNamespace: "default", PodName: "web-1"},
		api.Endpoint{NetNS: pathB, PodNamespace: "other", PodName: "nopod"})
	a.EndpointsChanged()
	assert.Equal(t, &api.Pod{Namespace: "other", Name: "nopod"}, a.PodFor(0, 0, inoB), "no Pod object: names only")
	assert.Equal(t, 2, eps.lists)
	assert.Nil(t, a.PodFor(0, 0, inoB+1000))
	assert.Equal(t, 2, eps.lists, "an unknown namespace does not re-list within a second")
}

func TestAssociationByCgroup(t *testing.T) {
	root := t.TempDir()
	writeProcCgroup(t, root, "100", "0::/kubepods/besteffort/pod"+testUID+"/"+testCID+"\n")
	writeProcCgroup(t, root, "101", "0::/system.slice/sshd.service\n")
	pathA, inoA := fileInode(t, "a")
	eps := &endpointList{}
	eps.set(api.Endpoint{NetNS: pathA, PodNamespace: "default", PodName: "web-1"})
	a := NewAssociation(AssociationConfig{ProcRoot: root, Kubernetes: true, Endpoints: eps, HostNetNS: 1})
	a.SetPods([]*corev1.Pod{testPod("default", "web-1", map[string]string{"app": "web"}, nil)})

	got := a.PodFor(100, 55, inoA)
	require.NotNil(t, got)
	require.NotNil(t, got.Container)
	assert.Equal(t, "app", got.Container.Name)

	// Cached by cgroup id: the process may be gone for the next one.
	require.NoError(t, os.RemoveAll(filepath.Join(root, "100")))
	got = a.PodFor(200, 55, 1)
	require.NotNil(t, got, "pid 200 is in cgroup 55, the host netns does not matter")
	assert.Equal(t, testCID, got.Container.ID)

	// A host process (host cgroup) that entered the pod's netns (nsenter).
	got = a.PodFor(101, 56, inoA)
	require.NotNil(t, got)
	assert.Equal(t, "web-1", got.Name)
	assert.Nil(t, got.Container)
	assert.Nil(t, a.PodFor(101, 56, 1), "a host process in the host netns")
}

// The manager names the pod at exec; forks inherit it; a host process that
// connects from a pod's namespace is attributed to that pod.
func TestManagerPods(t *testing.T) {
	pathA, inoA := fileInode(t, "a")
	eps := &endpointList{}
	eps.set(api.Endpoint{NetNS: pathA, PodNamespace: "default", PodName: "web-1"})
	a := NewAssociation(AssociationConfig{Endpoints: eps, HostNetNS: 3})
	f := newFixture(t, Config{Pods: a, HostNS: procsensor.Namespaces{Net: 3}})
	f.seedChain(t, 1) // netns 3: host
	e := execOf(2, 1, "/bin/sh")
	e.NS.Net = inoA
	f.m.Handle(procsensor.Event{Exec: e})
	ev := f.rec.last(t).ProcessExec
	require.NotNil(t, ev.Process.Pod)
	assert.Equal(t, "web-1", ev.Process.Pod.Name)
	assert.Nil(t, ev.Parent.Pod, "init is on the host")
	f.fork(3, 2)
	p, _, _ := f.m.Get(ExecID(testNode, key(3)))
	assert.Equal(t, "web-1", p.Pod.Name)

	f.m.Handle(procsensor.Event{Connect: &procsensor.Connect{Key: key(1), Proto: 6, NetNS: inoA}})
	c := f.rec.last(t).ProcessConnect
	require.NotNil(t, c.Process.Pod)
	assert.Equal(t, "web-1", c.Process.Pod.Name)
	p, _, _ = f.m.Get(ExecID(testNode, key(1)))
	assert.Nil(t, p.Pod, "the cached process is not changed")
}

func TestHostNamespaces(t *testing.T) {
	root := t.TempDir()
	want := map[string]uint32{}
	for _, dir := range []string{"1", "self"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, dir, "ns"), 0o755))
	}
	for _, n := range []string{"pid", "mnt", "net"} {
		dir := "1"
		if n == "mnt" {
			dir = "self" // pid 1's unreadable: the agent's own
		}
		path := filepath.Join(root, dir, "ns", n)
		require.NoError(t, os.WriteFile(path, nil, 0o600))
		ino, err := NSInode(path)
		require.NoError(t, err)
		want[n] = ino
	}
	ns, err := HostNamespaces(root)
	require.NoError(t, err)
	assert.Equal(t, procsensor.Namespaces{PID: want["pid"], Mnt: want["mnt"], Net: want["net"]}, ns)
	_, err = HostNamespaces(t.TempDir())
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// A netns path the agent's mount namespace lacks is found under the host's
// root (pid 1's, in a DaemonSet with hostPID).
func TestNSInodeFallsBackToHostRoot(t *testing.T) {
	root := t.TempDir()
	// A name no real netns has: the path is missing in the test's own root.
	missing := filepath.Join("/var/run/netns", filepath.Base(root))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "var/run/netns"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, missing), nil, 0o600))
	fi, err := os.Stat(filepath.Join(root, missing))
	require.NoError(t, err)
	old := hostRoot
	hostRoot = root
	t.Cleanup(func() { hostRoot = old })
	ino, err := NSInode(missing)
	require.NoError(t, err)
	assert.Equal(t, uint32(fi.Sys().(*syscall.Stat_t).Ino), ino)
	_, err = NSInode("/var/run/netns/absent-too")
	assert.Error(t, err)
}

// The endpoint manager calls EndpointsChanged with its lock held (Put and
// Delete, through OnChange), while a lookup that refreshes holds the
// association's lock and lists the endpoints (that lock). EndpointsChanged
// must not wait for the association's lock: the two deadlocked the agent
// (its API, service and policy syncs all wait for the endpoint manager) on
// the real two-node cluster under load, until the liveness probe killed it.
func TestAssociationEndpointsChangedDuringRefresh(t *testing.T) {
	l := &endpointList{}
	a := NewAssociation(AssociationConfig{Endpoints: l, HostNetNS: 1})
	l.mu.Lock() // the endpoint manager in Put, about to call OnChange
	looked := make(chan struct{})
	go func() { a.PodFor(0, 0, 4242); close(looked) }() // refresh: a.mu held, List waits for l.mu
	require.Eventually(t, func() bool {
		if a.mu.TryLock() {
			a.mu.Unlock()
			return false
		}
		return true
	}, 5*time.Second, time.Millisecond, "the lookup holds the association's lock")
	changed := make(chan struct{})
	go func() { a.EndpointsChanged(); close(changed) }()
	select {
	case <-changed:
	case <-time.After(3 * time.Second):
		l.mu.Unlock()
		<-looked
		t.Fatal("EndpointsChanged waited for the association's lock while the endpoint manager's was held: deadlock")
	}
	l.mu.Unlock()
	<-looked
	// The change came during the refresh: the next lookup lists again.
	a.PodFor(0, 0, 4242)
	l.mu.Lock()
	defer l.mu.Unlock()
	assert.Equal(t, 2, l.lists)
}
