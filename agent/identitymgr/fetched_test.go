package identitymgr_test

import (
	"context"
	"path/filepath"
	"testing"

	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/endpointmgr"
	"github.com/sluicenet/sluice/agent/endpointmgr/endpointtest"
	"github.com/sluicenet/sluice/agent/identitymgr"
	"github.com/sluicenet/sluice/agent/state"
	"github.com/sluicenet/sluice/identity"
)

// A pod the state source does not have yet is unknown (namespace labels
// only, PodKnown false) until AddPod gives it: then its endpoint gets its
// labels and its namespace's. Once the source holds the pod, the source's
// version wins; the looked-up one is gone when its endpoint goes.
func TestAddPod(t *testing.T) {
	store, err := state.New(filepath.Join(t.TempDir(), "endpoints"))
	require.NoError(t, err)
	log, _ := logtest.NewNullLogger()
	epDP := endpointtest.New()
	eps := endpointmgr.New(epDP, epDP, store, log)
	ep, err := eps.Put(api.Endpoint{ContainerID: "c1", IfName: "eth0", IPv4: "10.244.0.5", MAC: "02:00:00:00:00:05",
		PodNamespace: "shop", PodName: "web", HostIfName: "lxc1", HostIfIndex: 9, HostMAC: "02:00:00:00:01:07"})
	require.NoError(t, err)
	m := identitymgr.New(identitymgr.Config{}, eps, nil, nil, log)
	ctx := context.Background()
	require.NoError(t, m.Sync(ctx))
	ei := m.Endpoints()[ep.ID]
	assert.False(t, ei.PodKnown, "no Pod object yet")
	assert.Equal(t, identity.PodLabels("shop", nil, nil), ei.Labels)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "a"}}}
	m.AddPod(pod("shop", "web", "", map[string]string{"app": "web"}), ns)
	require.NoError(t, m.Sync(ctx))
	ei = m.Endpoints()[ep.ID]
	assert.True(t, ei.PodKnown)
	assert.Equal(t, identity.PodLabels("shop", map[string]string{"app": "web"}, ns.Labels), ei.Labels)
	require.NoError(t, m.Sync(ctx))
	assert.True(t, m.Endpoints()[ep.ID].PodKnown, "kept while the endpoint is there")

	// The source catches up with newer labels: they win.
	m.SetObjects(identitymgr.Objects{Pods: []*corev1.Pod{pod("shop", "web", "10.244.0.5", map[string]string{"app": "web", "v": "2"})},
		Namespaces: []*corev1.Namespace{ns}})
	require.NoError(t, m.Sync(ctx))
	assert.Equal(t, identity.PodLabels("shop", map[string]string{"app": "web", "v": "2"}, ns.Labels), m.Endpoints()[ep.ID].Labels)
	// ... and the looked-up pod is gone: without the source's pod it is unknown again.
	m.SetObjects(identitymgr.Objects{Namespaces: []*corev1.Namespace{ns}})
	require.NoError(t, m.Sync(ctx))
	assert.False(t, m.Endpoints()[ep.ID].PodKnown)

	// A looked-up pod whose endpoint went is dropped.
	m.AddPod(pod("shop", "web", "", map[string]string{"app": "web"}), nil)
	require.NoError(t, eps.Delete("c1", "eth0"))
	require.NoError(t, m.Sync(ctx))
	ep, err = eps.Put(api.Endpoint{ContainerID: "c2", IfName: "eth0", IPv4: "10.244.0.6", MAC: "02:00:00:00:00:06",
		PodNamespace: "shop", PodName: "web", HostIfName: "lxc2", HostIfIndex: 10, HostMAC: "02:00:00:00:01:08"})
	require.NoError(t, err)
	require.NoError(t, m.Sync(ctx))
	assert.False(t, m.Endpoints()[ep.ID].PodKnown, "the pod looked up for the deleted endpoint was dropped with it")
}
