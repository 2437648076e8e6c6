package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/sluicenet/sluice/identity"
	"github.com/sluicenet/sluice/identity/k8sstore"
)

// identityStore returns a SluiceIdentity store with its own API connection, as one
// node's agent has, with its informer running.
func (c *cluster) identityStore(t *testing.T) *k8sstore.Store {
	t.Helper()
	dyn, err := dynamic.NewForConfig(c.cfg)
	require.NoError(t, err)
	s := k8sstore.New(dyn)
	s.Start(t.Context())
	require.NoError(t, s.WaitSynced(ctxT(t, 30*time.Second)))
	return s
}

// deleteIdentitiesOnCleanup removes the SluiceIdentity objects of ids.
func (c *cluster) deleteIdentitiesOnCleanup(t *testing.T, s *k8sstore.Store, ids *sync.Map) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ids.Range(func(k, _ any) bool {
			if err := s.Delete(ctx, k.(identity.NumericIdentity)); err != nil {
				t.Errorf("clean up identity %v: %v", k, err)
			}
			return true
		})
	})
}

// Two nodes (two stores, two cluster allocators) racing to allocate the
// same label sets converge on one number per set, and each number is one
// SluiceIdentity object holding those labels.
func TestE2EClusterIdentitiesConverge(t *testing.T) {
	c := connect(t)
	a, b := c.identityStore(t), c.identityStore(t)
	allocA := identity.NewClusterAllocator(a, identity.Options{})
	allocB := identity.NewClusterAllocator(b, identity.Options{})
	var created sync.Map
	c.deleteIdentitiesOnCleanup(t, a, &created)

	run := rand.String(6)
	var sets []identity.Labels
	for i := range 8 {
		sets = append(sets, identity.PodLabels("e2e-race-"+run, map[string]string{"app": fmt.Sprintf("a%d", i)}, nil))
	}
	got := map[string][2]identity.NumericIdentity{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	ctx := ctxT(t, time.Minute)
	for n, alloc := range []*identity.StoreAllocator{allocA, allocB} {
		wg.Go(func() {
			for _, ls := range sets {
				id, err := alloc.Allocate(ctx, ls)
				if !assert.NoError(t, err) {
					return
				}
				created.Store(id, true)
				mu.Lock()
				v := got[ls.String()]
				v[n] = id
				got[ls.String()] = v
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	seen := map[identity.NumericIdentity]bool{}
	for _, ls := range sets {
		v := got[ls.String()]
		require.Equal(t, v[0], v[1], "both nodes agree on %s", ls)
		require.False(t, seen[v[0]], "number %d given to two label sets", v[0])
		seen[v[0]] = true
		stored, err := a.Get(ctx, v[0])
		require.NoError(t, err)
		assert.True(t, stored.Equal(ls), "object %d holds %s, want %s", v[0], stored, ls)
	}
	// A third allocation after the race (a restarted node) reuses the numbers.
	allocC := identity.NewClusterAllocator(b, identity.Options{})
	id, err := allocC.Allocate(ctx, sets[3])
	require.NoError(t, err)
	assert.Equal(t, got[sets[3].String()][0], id)
}

// The collector deletes an identity no Pod uses once it has been unused
// for the grace period, and keeps one a Pod uses.
func TestE2EClusterIdentityGC(t *testing.T) {
	c := connect(t)
	s := c.identityStore(t)
	alloc := identity.NewClusterAllocator(s, identity.Options{})
	var created sync.Map
	c.deleteIdentitiesOnCleanup(t, s, &created)
	run := rand.String(6)
	used := identity.PodLabels("e2e-gc-"+run, map[string]string{"app": "used"}, nil)
	unused := identity.PodLabels("e2e-gc-"+run, map[string]string{"app": "unused"}, nil)
	ctx := ctxT(t, time.Minute)
	usedID, err := alloc.Allocate(ctx, used)
	require.NoError(t, err)
	created.Store(usedID, true)
	unusedID, err := alloc.Allocate(ctx, unused)
	require.NoError(t, err)
	created.Store(unusedID, true)

	// The collector's input is what an agent passes: the labels of every
	// Pod in the cluster (so the real pods' identities stay), plus a label
	// set standing for a pod that uses "used".
	inUse := func(ctx context.Context) ([]identity.Labels, error) {
		nss, err := c.cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		nsLabels := map[string]map[string]string{}
		for _, n := range nss.Items {
			nsLabels[n.Name] = n.Labels
		}
		pods, err := c.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		out := []identity.Labels{used}
		for _, p := range pods.Items {
			out = append(out, identity.PodLabels(p.Namespace, p.Labels, nsLabels[p.Namespace]))
		}
		return out, nil
	}
	const grace = 2 * time.Second
	gc := k8sstore.NewGC(s, grace)
	start := time.Now()
	deleted := map[identity.NumericIdentity]bool{}
	var live []identity.Labels
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		if live, err = inUse(ctx); err != nil {
			return false, err
		}
		d, err := gc.Collect(ctx, live)
		for _, id := range d {
			deleted[id] = true
		}
		return deleted[unusedID], err
	}))
	assert.GreaterOrEqual(t, time.Since(start), grace, "nothing collected before the grace period")
	assert.False(t, deleted[usedID], "an identity a Pod uses stays")
	for id := range deleted {
		created.Delete(id)
	}
	t.Logf("collected %d unused identities", len(deleted))
	_, err = s.Get(ctx, unusedID)
	assert.ErrorIs(t, err, identity.ErrNotFound)
	_, err = s.Get(ctx, usedID)
	assert.NoError(t, err, "an identity a Pod uses stays")
}

// Pods with the same labels get the same identity number from the agent,
// and a SluiceIdentity object named by that number holds their labels.
func TestE2EPodsShareClusterIdentity(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t)
	lbl := map[string]string{"app": "twin"}
	c.echoPod(t, ns, "twin-a", lbl)
	c.echoPod(t, ns, "twin-b", lbl)
	other := c.echoPod(t, ns, "other", map[string]string{"app": "other"})
	require.NotNil(t, other)

	eps := c.endpoints(t)
	idOf := func(pod string) uint32 {
		ep, ok := eps[ns+"/"+pod]
		require.True(t, ok, "endpoint of %s", pod)
		pol, err := c.agent.EndpointPolicy(ctxT(t, 10*time.Second), ep.ContainerID, ep.IfName)
		require.NoError(t, err)
		return pol.Identity
	}
	a, b, o := idOf("twin-a"), idOf("twin-b"), idOf("other")
	require.GreaterOrEqual(t, a, uint32(identity.MinAllocated), "twin-a has a cluster identity")
	assert.Equal(t, a, b, "same labels, same identity")
	assert.NotEqual(t, a, o, "other labels, other identity")

	ids, err := c.agent.Identities(ctxT(t, 10*time.Second))
	require.NoError(t, err)
	var listed []string
	for _, id := range ids {
		if id.ID == a {
			listed = id.Labels
		}
	}
	require.NotEmpty(t, listed, "identity %d in the agent's list", a)

	dyn, err := dynamic.NewForConfig(c.cfg)
	require.NoError(t, err)
	obj, err := dyn.Resource(k8sstore.GVR).Get(ctxT(t, 10*time.Second), strconv.FormatUint(uint64(a), 10), metav1.GetOptions{})
	require.NoError(t, err, "SluiceIdentity %d exists", a)
	spec, _, _ := unstructuredLabels(obj.Object)
	assert.ElementsMatch(t, listed, spec)
	assert.Contains(t, spec, "k8s:app=twin")
	assert.Contains(t, spec, "k8s:io.kubernetes.pod.namespace="+ns)
}

func unstructuredLabels(o map[string]any) ([]string, bool, error) {
	spec, _ := o["spec"].(map[string]any)
	raw, _ := spec["labels"].([]any)
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		s, ok := r.(string)
		if !ok {
			return nil, false, fmt.Errorf("label %v is not a string", r)
		}
		out = append(out, s)
	}
	return out, true, nil
}

// The agent DaemonSet pod is Ready through its httpGet readiness probe,
// and the probes answer on the node: /healthz and /readyz return 200 ok.
func TestE2EAgentProbesReady(t *testing.T) {
	c := connect(t)
	ctx := ctxT(t, 2*time.Minute)
	pods, err := c.cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=agent"})
	require.NoError(t, err)
	require.NotEmpty(t, pods.Items)
	p := pods.Items[0]
	probe := p.Spec.Containers[0].ReadinessProbe
	require.NotNil(t, probe)
	require.NotNil(t, probe.HTTPGet, "readiness is an httpGet probe")
	assert.Equal(t, "/readyz", probe.HTTPGet.Path)
	require.NotNil(t, p.Spec.Containers[0].LivenessProbe)
	assert.Equal(t, "/healthz", p.Spec.Containers[0].LivenessProbe.HTTPGet.Path)
	c.waitReady(t, p.Namespace, p.Name)

	port := probe.HTTPGet.Port.IntValue()
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, b)
		assert.Equal(t, "ok\n", string(b))
	}
	_, err = c.cs.CoreV1().Pods("kube-system").Get(ctx, p.Name, metav1.GetOptions{})
	require.False(t, apierrors.IsNotFound(err))
}
