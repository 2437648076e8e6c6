package process

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/procsensor"
)

// EndpointLister lists the endpoints the CNI wired (*endpointmgr.Manager).
type EndpointLister interface {
	List() ([]api.Endpoint, error)
}

// AssociationConfig configures an Association.
type AssociationConfig struct {
	ProcRoot string // "/proc" when empty
	// Kubernetes turns on the cgroup path lookup (pods have cgroups of
	// their own only under a kubelet).
	Kubernetes bool
	Endpoints  EndpointLister
	HostNetNS  uint32 // never a pod's
	Log        logrus.FieldLogger
}

// Association names the pod of a process: from its cgroup (Kubernetes mode:
// pod UID and container id in the cgroup path, joined with the Pod objects),
// else from its network namespace (the endpoint the CNI wired there, so a
// process that entered a pod's namespace counts as the pod's). Safe for
// concurrent use.
type Association struct {
	cfg AssociationConfig

	mu     sync.Mutex
	byUID  map[types.UID]*corev1.Pod
	byName map[types.NamespacedName]*corev1.Pod
	netns  map[uint32]types.NamespacedName
	// stale: the endpoints changed since netns was read. Atomic, not under
	// mu: EndpointsChanged is called with the endpoint manager's lock held,
	// and refresh lists the endpoints (that lock) with mu held.
	stale     atomic.Bool
	refreshed time.Time
	cgroups   map[uint64]cgroupResult
}

type cgroupResult struct {
	pc  podCgroup
	pod bool
}

// Bounds of the association's lookups.
const (
	netnsRefreshEvery = time.Second // at most one endpoint re-list per unknown netns burst
	maxCgroups        = 8192
)

// NewAssociation returns an association with no pods.
func NewAssociation(cfg AssociationConfig) *Association {
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	a := &Association{cfg: cfg, cgroups: map[uint64]cgroupResult{}}
	a.stale.Store(true)
	return a
}

// SetPods replaces the Pod objects (labels, containers, owners).
func (a *Association) SetPods(pods []*corev1.Pod) {
	byUID := make(map[types.UID]*corev1.Pod, len(pods))
	byName := make(map[types.NamespacedName]*corev1.Pod, len(pods))
	for _, p := range pods {
		byUID[p.UID] = p
		byName[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = p
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.byUID, a.byName = byUID, byName
}

// EndpointsChanged says an endpoint was added or removed: the namespace
// inodes are read again at the next lookup. It never blocks: the endpoint
// manager calls it with its lock held, which a lookup that lists the
// endpoints waits for while holding the association's (lock order
// association -> endpoints only).
func (a *Association) EndpointsChanged() {
	a.stale.Store(true)
}

// PodFor returns the pod of the process pid whose cgroup is cgroupID and
// network namespace netns (nil on the host). pid and cgroupID may be 0 to
// look up by namespace only.
func (a *Association) PodFor(pid uint32, cgroupID uint64, netns uint32) *api.Pod {
	var pc podCgroup
	var inPod bool
	if a.cfg.Kubernetes && pid != 0 {
		pc, inPod = a.cgroup(pid, cgroupID)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if inPod {
		if pod := a.byUID[types.UID(pc.podUID)]; pod != nil {
			return apiPod(pod, pc.containerID)
		}
	}
	name, ok := a.endpointIn(netns)
	if !ok {
		return nil
	}
	if pod := a.byName[name]; pod != nil {
		return apiPod(pod, "")
	}
	return &api.Pod{Namespace: name.Namespace, Name: name.Name}
}

// endpointIn returns the pod of the endpoint in network namespace netns.
func (a *Association) endpointIn(netns uint32) (types.NamespacedName, bool) {
	if netns == 0 || netns == a.cfg.HostNetNS || a.cfg.Endpoints == nil {
		return types.NamespacedName{}, false
	}
	if a.stale.Load() {
		a.refresh()
	}
	name, ok := a.netns[netns]
	if !ok && time.Since(a.refreshed) >= netnsRefreshEvery {
		a.refresh()
		name, ok = a.netns[netns]
	}
	return name, ok
}

// refresh reads the namespace inode of every endpoint's NetNS path.
func (a *Association) refresh() {
	a.stale.Store(false)
	a.refreshed = time.Now()
	eps, err := a.cfg.Endpoints.List()
	if err != nil {
		a.cfg.Log.WithError(err).Warn("Listing endpoints for process association failed")
		return
	}
	m := make(map[uint32]types.NamespacedName, len(eps))
	for _, ep := range eps {
		if ep.NetNS == "" || ep.PodName == "" {
			continue
		}
		ino, err := EndpointNetNS(ep)
		if err != nil {
			continue // the namespace is gone: the endpoint is being deleted
		}
		m[ino] = types.NamespacedName{Namespace: ep.PodNamespace, Name: ep.PodName}
	}
	a.netns = m
}

// cgroup returns the pod cgroup of a process, cached by cgroup id.
func (a *Association) cgroup(pid uint32, cgroupID uint64) (podCgroup, bool) {
	a.mu.Lock()
	r, ok := a.cgroups[cgroupID]
	a.mu.Unlock()
	if ok && cgroupID != 0 {
		return r.pc, r.pod
	}
	pc, pod, err := readPodCgroup(a.cfg.ProcRoot, pid)
	if err != nil {
		return podCgroup{}, false // the process is gone: try the next one
	}
	if cgroupID != 0 {
		a.mu.Lock()
		if len(a.cgroups) >= maxCgroups {
			clear(a.cgroups)
		}
		a.cgroups[cgroupID] = cgroupResult{pc: pc, pod: pod}
		a.mu.Unlock()
	}
	return pc, pod
}

// NSInode returns the inode of a namespace file (/proc/<pid>/ns/net, a
// bind mount under /var/run/netns).
//
// A path the agent's mount namespace does not have (a DaemonSet agent does
// not see the runtime's /var/run/netns/cni-… bind mounts) is looked up in
// the host's root through pid 1 (the agent runs with hostPID).
func NSInode(path string) (uint32, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) && filepath.IsAbs(path) {
		if hfi, herr := os.Stat(filepath.Join(hostRoot, path)); herr == nil {
			fi, err = hfi, nil
		}
	}
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("stat %s: no inode", path)
	}
	return uint32(st.Ino), nil
}

// EndpointNetNS returns the inode of an endpoint's network namespace: the
// one sluice-cni recorded, else a stat of its path.
func EndpointNetNS(ep api.Endpoint) (uint32, error) {
	if ep.NetNSInode != 0 {
		return ep.NetNSInode, nil
	}
	return NSInode(ep.NetNS)
}

// hostRoot is the host's root directory as seen through pid 1.
var hostRoot = "/proc/1/root"

// HostNamespaces returns the host's namespace inodes: those of pid 1 under
// procRoot (the agent runs with hostPID, and its own mount namespace is its
// container's), or the agent's own where pid 1's cannot be read (no
// CAP_SYS_PTRACE over it).
func HostNamespaces(procRoot string) (procsensor.Namespaces, error) {
	var ns procsensor.Namespaces
	for _, n := range []struct {
		name string
		ino  *uint32
	}{{"pid", &ns.PID}, {"mnt", &ns.Mnt}, {"net", &ns.Net}} {
		ino, err := NSInode(filepath.Join(procRoot, "1", "ns", n.name))
		if err != nil {
			ino, err = NSInode(filepath.Join(procRoot, "self", "ns", n.name))
		}
		if err != nil {
			return ns, fmt.Errorf("host %s namespace: %w", n.name, err)
		}
		*n.ino = ino
	}
	return ns, nil
}
