package identitymgr_test

import (
	"context"
	"net/netip"
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

func pod(ns, name, ip string, labels map[string]string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}}
	p.Status.PodIP = ip
	p.Spec.Containers = []corev1.Container{{Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP}}}}
	return p
}

// Sync gives local endpoints and remote pods identities from their labels,
// writes endpoint identities, and fills the IP cache with endpoints, remote
// pods, policy CIDRs and the host's addresses; a later Sync releases what is
// gone.
func TestSync(t *testing.T) {
	store, err := state.New(filepath.Join(t.TempDir(), "endpoints"))
	require.NoError(t, err)
	log, _ := logtest.NewNullLogger()
	epDP := endpointtest.New()
	eps := endpointmgr.New(epDP, epDP, store, log)
	_, err = eps.Put(api.Endpoint{ContainerID: "c1", IfName: "eth0", IPv4: "10.244.0.5", MAC: "02:00:00:00:00:05",
		PodNamespace: "shop", PodName: "web", HostIfName: "lxc1", HostIfIndex: 9, HostMAC: "02:00:00:00:01:07"})
	require.NoError(t, err)
	host := netip.MustParseAddr("192.0.2.10")
	m := identitymgr.New(identitymgr.Config{HostAddrs: func() ([]netip.Addr, error) { return []netip.Addr{host}, nil }},
		eps, nil, nil, log)
	web := pod("shop", "web", "10.244.0.5", map[string]string{"app": "web"})
	db := pod("shop", "db", "10.244.1.7", map[string]string{"app": "db"})
	hostNet := pod("shop", "agent", "192.0.2.10", nil)
	hostNet.Spec.HostNetwork = true
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "a"}}}
	m.SetObjects(identitymgr.Objects{Pods: []*corev1.Pod{web, db, hostNet}, Namespaces: []*corev1.Namespace{ns}})
	m.SetPolicyPrefixes([]netip.Prefix{netip.MustParsePrefix("203.0.113.9/24")})
	ctx := context.Background()
	require.NoError(t, m.Sync(ctx))

	ids := m.Endpoints()
	require.Len(t, ids, 1)
	var ei identitymgr.EndpointIdentity
	for _, v := range ids {
		ei = v
	}
	assert.True(t, ei.PodKnown)
	assert.Equal(t, "shop", ei.PodNamespace)
	assert.Equal(t, identity.PodLabels("shop", web.Labels, ns.Labels), ei.Labels)
	assert.Equal(t, map[string]identitymgr.NamedPort{"http": {Port: 8080, Proto: 6}, "dns": {Port: 53, Proto: 17}}, ei.NamedPorts)
	ep, err := eps.Get("c1", "eth0")
	require.NoError(t, err)
	entry, ok := epDP.Entry("10.244.0.5")
	require.True(t, ok)
	assert.Equal(t, uint32(ei.Identity), entry.Identity, "identity written into the endpoint map of %s", ep.Key())

	ipc := m.IPCache().Snapshot()
	webRef, ok := m.PodByIP(netip.MustParseAddr("10.244.0.5"))
	require.True(t, ok)
	assert.Equal(t, identitymgr.PodRef{Namespace: "shop", Name: "web", Identity: ei.Identity, Local: true}, webRef)
	dbRef, ok := m.PodByIP(netip.MustParseAddr("10.244.1.7"))
	require.True(t, ok)
	assert.False(t, dbRef.Local)
	assert.NotEqual(t, ei.Identity, dbRef.Identity, "other labels, other identity")
	_, ok = m.PodByIP(netip.MustParseAddr("192.0.2.10"))
	assert.False(t, ok, "host-network pods get no identity")
	assert.Equal(t, identity.Entry{ID: ei.Identity, Source: identity.SourceLocal}, ipc[netip.MustParsePrefix("10.244.0.5/32")])
	assert.Equal(t, identity.Entry{ID: dbRef.Identity, Source: identity.SourceKubernetes}, ipc[netip.MustParsePrefix("10.244.1.7/32")])
	assert.Equal(t, identity.Entry{ID: identity.ReservedHost, Source: identity.SourceAgent}, ipc[netip.MustParsePrefix("192.0.2.10/32")])
	cidr, ok := ipc[netip.MustParsePrefix("203.0.113.0/24")]
	require.True(t, ok, "policy prefixes are masked")
	assert.Equal(t, identity.SourceGenerated, cidr.Source)
	assert.Len(t, ipc, 4)

	// The remote pod and the prefix go away: their entries and references
	// with them.
	m.SetObjects(identitymgr.Objects{Pods: []*corev1.Pod{web}, Namespaces: []*corev1.Namespace{ns}})
	m.SetPolicyPrefixes(nil)
	require.NoError(t, m.Sync(ctx))
	ipc = m.IPCache().Snapshot()
	assert.Len(t, ipc, 2)
	assert.NotContains(t, ipc, netip.MustParsePrefix("10.244.1.7/32"))
	refs := map[uint32]int{}
	for _, i := range m.Identities() {
		refs[i.ID] = i.Refs
	}
	assert.Equal(t, 1, refs[uint32(ei.Identity)], "the endpoint's identity is still held")
	assert.Contains(t, refs, uint32(dbRef.Identity), "kept for the grace period")
	assert.Zero(t, refs[uint32(dbRef.Identity)], "the remote pod's identity is released")
}
