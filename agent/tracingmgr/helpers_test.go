package tracingmgr

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/process"
	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/policy/tracing"
)

// fakeRules records what the manager writes, in order, and holds the table
// the way the sensor would.
type fakeRules struct {
	mu       sync.Mutex
	calls    []string
	rules    []procsensor.ExecRule
	scopes   map[uint32]uint64
	cgScopes map[uint64]uint64
	fail     error
}

func newFakeRules() *fakeRules {
	return &fakeRules{scopes: map[uint32]uint64{}, cgScopes: map[uint64]uint64{}}
}

func (f *fakeRules) SetExecCgroupScope(cg, slots uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("cgscope %d %#x", cg, slots))
	f.cgScopes[cg] = slots
	return nil
}

func (f *fakeRules) DeleteExecCgroupScope(cg uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("cgdelete %d", cg))
	delete(f.cgScopes, cg)
	return nil
}

func (f *fakeRules) SetExecRules(rs []procsensor.ExecRule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("rules %d", len(rs)))
	if f.fail != nil {
		return f.fail
	}
	f.rules = rs
	return nil
}

func (f *fakeRules) SetExecScope(ns uint32, slots uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("scope %d %#x", ns, slots))
	f.scopes[ns] = slots
	return nil
}

func (f *fakeRules) DeleteExecScope(ns uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("delete %d", ns))
	delete(f.scopes, ns)
	return nil
}

func (f *fakeRules) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

type fakeEndpoints struct{ eps []api.Endpoint }

func (f *fakeEndpoints) List() ([]api.Endpoint, error) { return f.eps, nil }

// compiler is a stand-in for tracing.Compile (T1's): each object's
// spec.compiled names a result the test registered, so the test decides what
// a policy compiles to.
type compiler map[string]*tracing.Compiled

func (c compiler) compile(u *unstructured.Unstructured) (*tracing.Compiled, error) {
	key, _, _ := unstructured.NestedString(u.Object, "spec", "compiled")
	if reason, ok, _ := unstructured.NestedString(u.Object, "spec", "reject"); ok {
		return nil, fmt.Errorf("%s", reason)
	}
	out, ok := c[key]
	if !ok {
		return nil, fmt.Errorf("spec.compiled: %q unknown", key)
	}
	cp := *out
	cp.Ref = tracing.Ref{Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
	if cp.Ref.Kind == tracing.KindTracingPolicy {
		cp.Ref.Namespace = ""
	}
	return &cp, nil
}

// raw returns a tracing policy object whose spec is spec.
func raw(t testing.TB, kind, ns, name string, spec map[string]any) source.Raw {
	t.Helper()
	meta := map[string]any{"name": name}
	if kind == tracing.KindTracingPolicyNamespaced {
		meta["namespace"] = ns
	}
	js, err := json.Marshal(map[string]any{"apiVersion": "sluice.io/v1alpha1", "kind": kind, "metadata": meta, "spec": spec})
	require.NoError(t, err)
	if ns == "" {
		ns = "default"
	}
	return source.Raw{APIVersion: "sluice.io/v1alpha1", Kind: kind, Namespace: ns, Name: name, JSON: js}
}

// netnsFile returns a file standing for a pod's network namespace and its
// inode (what the manager stats).
func netnsFile(t testing.TB, name string) (string, uint32) {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, nil, 0o600))
	ino, err := process.NSInode(p)
	require.NoError(t, err)
	return p, ino
}

func pod(ns, name string, lbls map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls}}
}

func endpoint(id uint16, netns, ns, name string) api.Endpoint {
	return api.Endpoint{ID: id, ContainerID: fmt.Sprintf("c%d", id), IfName: "eth0", NetNS: netns, PodNamespace: ns, PodName: name}
}

type harness struct {
	m   *Manager
	dp  *fakeRules
	eps *fakeEndpoints
	reg *prometheus.Registry
	// cgRoot is where the manager's CgroupFinder looks for containers'
	// cgroup directories (containerCgroup makes them).
	cgRoot string
}

func newHarness(t testing.TB, c compiler) *harness {
	t.Helper()
	h := &harness{dp: newFakeRules(), eps: &fakeEndpoints{}, reg: prometheus.NewRegistry(), cgRoot: t.TempDir()}
	log := logrus.New()
	log.SetOutput(testWriter{t})
	h.m = New(Config{Rules: h.dp, Compile: c.compile, Endpoints: h.eps, Cgroups: process.NewCgroupFinder(h.cgRoot), Log: log}, h.reg)
	return h
}

// containerCgroup makes the cgroup directory of container id (in the
// systemd layout) and returns its id (inode).
func (h *harness) containerCgroup(t testing.TB, id string) uint64 {
	t.Helper()
	dir := filepath.Join(h.cgRoot, "kubepods.slice", "cri-containerd-"+id+".scope")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	var st unix.Stat_t
	require.NoError(t, unix.Stat(dir, &st))
	return st.Ino
}

// podWith is a pod with the containers of its status, each a name and a
// container id ("" not started).
func podWith(ns, name string, lbls map[string]string, containers ...[2]string) *corev1.Pod {
	p := pod(ns, name, lbls)
	for _, c := range containers {
		cs := corev1.ContainerStatus{Name: c[0], Image: "docker.io/library/busybox:1.36"}
		if c[1] != "" {
			cs.ContainerID = "containerd://" + c[1]
		}
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, cs)
	}
	return p
}

func (h *harness) sync(t testing.TB, full bool) {
	t.Helper()
	require.NoError(t, h.m.Sync(full))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// sigkill is a selector killing the exec of binaries.
func sigkill(binaries ...string) tracing.ExecSelector {
	return tracing.ExecSelector{
		Binaries: []tracing.BinaryMatch{{Op: tracing.BinaryIn, Values: binaries}},
		Action:   tracing.ActionSigkill, Signal: 9,
	}
}
