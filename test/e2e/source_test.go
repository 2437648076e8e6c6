package e2e

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/agent/source/k8s"
)

// TestE2EK8sSourceFollowsTheAPIServer runs the agent's Kubernetes source
// against the real API server: it reports this node's PodCIDR and InternalIP
// as the Node object has them, and its snapshots follow a Service, its
// EndpointSlice and its backend pod being created and deleted.
func TestE2EK8sSourceFollowsTheAPIServer(t *testing.T) {
	c := connect(t)
	nodes, err := c.cs.CoreV1().Nodes().List(ctxT(t, 10*time.Second), metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, nodes.Items, 1)
	node := nodes.Items[0]

	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	src, err := k8s.New(k8s.Config{Client: c.cs, NodeName: node.Name, Log: log})
	require.NoError(t, err)
	var (
		mu   sync.Mutex
		last source.Snapshot
		n    int
	)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- src.Run(ctx, func(s source.Snapshot) {
			mu.Lock()
			last, n = s, n+1
			mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	info, err := src.WaitNode(ctxT(t, 30*time.Second))
	require.NoError(t, err)
	require.Equal(t, netip.MustParsePrefix(node.Spec.PodCIDR), info.PodCIDR)
	var internal string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			internal = a.Address
		}
	}
	require.Equal(t, internal, info.InternalIP.String())

	snapshot := func(cond func(source.Snapshot) bool) source.Snapshot {
		t.Helper()
		var s source.Snapshot
		err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			mu.Lock()
			s = last
			mu.Unlock()
			return cond(s), nil
		})
		require.NoError(t, err, "no snapshot matched; last had %d services, %d slices, %d pods", len(s.Services), len(s.EndpointSlices), len(s.Pods))
		return s
	}
	has := func(s source.Snapshot, ns string) (svc, slice, pod, nsObj bool) {
		for _, o := range s.Services {
			svc = svc || (o.Namespace == ns && o.Name == "web")
		}
		for _, o := range s.EndpointSlices {
			if o.Namespace == ns && o.Labels["kubernetes.io/service-name"] == "web" {
				for _, e := range o.Endpoints {
					slice = slice || (e.TargetRef != nil && e.TargetRef.Name == "web-1" && len(e.Addresses) == 1)
				}
			}
		}
		for _, o := range s.Pods {
			pod = pod || (o.Namespace == ns && o.Name == "web-1" && o.Status.PodIP != "")
		}
		for _, o := range s.Namespaces {
			nsObj = nsObj || o.Name == ns
		}
		return
	}
	// The initial snapshot already carries the default kubernetes Service.
	snapshot(func(s source.Snapshot) bool {
		for _, o := range s.Services {
			if o.Namespace == "default" && o.Name == "kubernetes" {
				return true
			}
		}
		return false
	})

	ns := c.namespace(t)
	c.echoPod(t, ns, "web-1", map[string]string{"app": "web"})
	_, err = c.cs.CoreV1().Services(ns).Create(ctxT(t, 10*time.Second), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	s := snapshot(func(s source.Snapshot) bool {
		svc, slice, pod, nsObj := has(s, ns)
		return svc && slice && pod && nsObj
	})
	for i := 1; i < len(s.Pods); i++ { // sorted by namespace/name
		a, b := s.Pods[i-1], s.Pods[i]
		require.True(t, a.Namespace < b.Namespace || (a.Namespace == b.Namespace && a.Name < b.Name), "pods not sorted: %s/%s before %s/%s", a.Namespace, a.Name, b.Namespace, b.Name)
	}

	require.NoError(t, c.cs.CoreV1().Services(ns).Delete(ctxT(t, 10*time.Second), "web", metav1.DeleteOptions{}))
	require.NoError(t, c.cs.CoreV1().Pods(ns).Delete(ctxT(t, 10*time.Second), "web-1", metav1.DeleteOptions{}))
	snapshot(func(s source.Snapshot) bool {
		svc, slice, pod, _ := has(s, ns)
		return !svc && !slice && !pod
	})
	mu.Lock()
	t.Logf("%d snapshots delivered", n)
	mu.Unlock()
}
