package identitymgr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/identity"
)

// endpoints is an in-memory endpoint list: the real endpoint manager writes
// BPF maps, which a unit test cannot load.
type endpoints struct {
	list    []api.Endpoint
	ids     map[string]uint32 // key -> identity written
	failFor string            // key whose SetIdentity fails
	goneFor string            // key deleted between List and SetIdentity
}

func (e *endpoints) List() ([]api.Endpoint, error) { return e.list, nil }

func (e *endpoints) SetIdentity(containerID, ifName string, id uint32) error {
	key := containerID + "/" + ifName
	if key == e.failFor {
		return fmt.Errorf("set identity of %s: injected", key)
	}
	if key == e.goneFor {
		return fmt.Errorf("%w: %s", api.ErrNotFound, key)
	}
	if e.ids == nil {
		e.ids = map[string]uint32{}
	}
	e.ids[key] = id
	return nil
}

// ipcacheMap is an in-memory IP cache map.
type ipcacheMap struct {
	m         map[netip.Prefix]uint32
	failWrite netip.Prefix
}

func (d *ipcacheMap) Upsert(p netip.Prefix, id uint32) error {
	if p == d.failWrite {
		return errors.New("injected")
	}
	d.m[p] = id
	return nil
}

func (d *ipcacheMap) Delete(p netip.Prefix) error { delete(d.m, p); return nil }

func (d *ipcacheMap) List() (map[netip.Prefix]uint32, error) {
	out := make(map[netip.Prefix]uint32, len(d.m))
	for k, v := range d.m {
		out[k] = v
	}
	return out, nil
}

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func newManager(t *testing.T, eps *endpoints, cfg Config) (*Manager, *ipcacheMap) {
	t.Helper()
	dp := &ipcacheMap{m: map[netip.Prefix]uint32{}}
	return New(cfg, eps, dp, nil, quietLog()), dp
}

func ep(id uint16, cid, ns, pod, ip string) api.Endpoint {
	return api.Endpoint{ID: id, ContainerID: cid, IfName: "eth0", PodNamespace: ns, PodName: pod, IPv4: ip}
}

func pod(ns, name, ip string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Status:     corev1.PodStatus{PodIP: ip},
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestSyncEndpointIdentities(t *testing.T) {
	web := pod("default", "web", "10.0.0.1", map[string]string{"app": "web"})
	web.Spec.Containers = []corev1.Container{{Ports: []corev1.ContainerPort{
		{Name: "http", ContainerPort: 8080},
		{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
		{Name: "assoc", ContainerPort: 9, Protocol: corev1.ProtocolSCTP},
		{ContainerPort: 9090},               // unnamed: not a named port
		{Name: "bad", ContainerPort: 70000}, // out of range
		{Name: "zero", ContainerPort: 0},    // unset
	}}}
	tests := []struct {
		name       string
		ep         api.Endpoint
		pods       []*corev1.Pod
		nss        []*corev1.Namespace
		wantLabels identity.Labels
		wantKnown  bool
		wantNS     string
		wantPorts  map[string]NamedPort
	}{{
		name:       "pod known",
		ep:         ep(1, "c1", "default", "web", "10.0.0.1"),
		pods:       []*corev1.Pod{web},
		wantLabels: identity.PodLabels("default", map[string]string{"app": "web"}, nil),
		wantKnown:  true,
		wantNS:     "default",
		wantPorts: map[string]NamedPort{
			"http": {Port: 8080, Proto: 6}, "dns": {Port: 53, Proto: 17}, "assoc": {Port: 9, Proto: 132},
		},
	}, {
		name:       "pod unknown gets namespace labels only",
		ep:         ep(2, "c2", "prod", "ghost", "10.0.0.2"),
		nss:        []*corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "prod", Labels: map[string]string{"env": "prod"}}}},
		wantLabels: identity.PodLabels("prod", nil, map[string]string{"env": "prod"}),
		wantNS:     "prod",
	}, {
		name:       "empty namespace means default",
		ep:         ep(3, "c3", "", "web", "10.0.0.3"),
		pods:       []*corev1.Pod{web},
		wantLabels: identity.PodLabels("default", map[string]string{"app": "web"}, nil),
		wantKnown:  true,
		wantNS:     "default",
		wantPorts: map[string]NamedPort{
			"http": {Port: 8080, Proto: 6}, "dns": {Port: 53, Proto: 17}, "assoc": {Port: 9, Proto: 132},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eps := &endpoints{list: []api.Endpoint{tc.ep}}
			m, _ := newManager(t, eps, Config{})
			m.SetObjects(Objects{Pods: tc.pods, Namespaces: tc.nss})
			require.NoError(t, m.Sync(context.Background()))

			got, ok := m.Endpoints()[tc.ep.ID]
			require.True(t, ok, "endpoint %d has no identity", tc.ep.ID)
			assert.True(t, got.Labels.Equal(tc.wantLabels), "labels %s, want %s", got.Labels, tc.wantLabels)
			assert.Equal(t, tc.wantKnown, got.PodKnown)
			assert.Equal(t, tc.wantNS, got.PodNamespace)
			if tc.wantPorts == nil {
				assert.Empty(t, got.NamedPorts)
			} else {
				assert.Equal(t, tc.wantPorts, got.NamedPorts)
			}
			assert.GreaterOrEqual(t, got.Identity, identity.MinAllocated)
			assert.Equal(t, uint32(got.Identity), eps.ids[tc.ep.Key()], "identity written to the endpoint")
			ls, ok := m.Allocator().Lookup(got.Identity)
			require.True(t, ok)
			assert.True(t, ls.Equal(tc.wantLabels))

			ref, ok := m.PodByIP(netip.MustParseAddr(tc.ep.IPv4))
			require.True(t, ok)
			assert.Equal(t, PodRef{Namespace: tc.wantNS, Name: tc.ep.PodName, Identity: got.Identity, Local: true}, ref)
		})
	}
}

func TestSyncSharesIdentityByLabels(t *testing.T) {
	lbl := map[string]string{"app": "web"}
	eps := &endpoints{list: []api.Endpoint{
		ep(1, "a", "default", "web-1", "10.0.0.1"),
		ep(2, "b", "default", "web-2", "10.0.0.2"),
		ep(3, "c", "default", "db", "10.0.0.3"),
	}}
	m, _ := newManager(t, eps, Config{})
	m.SetObjects(Objects{Pods: []*corev1.Pod{
		pod("default", "web-1", "10.0.0.1", lbl),
		pod("default", "web-2", "10.0.0.2", lbl),
		pod("default", "db", "10.0.0.3", map[string]string{"app": "db"}),
	}})
	require.NoError(t, m.Sync(context.Background()))
	got := m.Endpoints()
	assert.Equal(t, got[1].Identity, got[2].Identity, "same labels, same identity")
	assert.NotEqual(t, got[1].Identity, got[3].Identity, "different labels, different identity")
	assert.Equal(t, 2, m.Allocator().Refs(got[1].Identity))
}

func TestSyncIPCache(t *testing.T) {
	hostNet := pod("default", "hostnet", "192.168.1.1", nil)
	hostNet.Spec.HostNetwork = true
	deleting := pod("default", "going", "10.1.0.9", nil)
	deleting.DeletionTimestamp = &metav1.Time{}
	eps := &endpoints{list: []api.Endpoint{ep(1, "c1", "default", "local", "10.0.0.1")}}
	m, _ := newManager(t, eps, Config{HostAddrs: func() ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("192.168.1.1")}, nil
	}})
	m.SetObjects(Objects{Pods: []*corev1.Pod{
		pod("default", "local", "10.0.0.1", map[string]string{"app": "l"}), // the local endpoint's pod
		pod("default", "remote", "10.1.0.1", map[string]string{"app": "r"}),
		pod("default", "pending", "", nil),
		hostNet,
		deleting,
	}})
	m.SetPolicyPrefixes([]netip.Prefix{pfx("203.0.113.7/24")})
	require.NoError(t, m.Sync(context.Background()))

	local := m.Endpoints()[1].Identity
	remote, ok := m.PodByIP(netip.MustParseAddr("10.1.0.1"))
	require.True(t, ok)
	assert.False(t, remote.Local)
	cidr, ok := m.Allocator().LookupByLabels(identity.CIDRLabels(pfx("203.0.113.0/24")))
	require.True(t, ok, "CIDR identity allocated for the masked prefix")
	assert.True(t, cidr.IsLocal(), "CIDR identities are node-local")

	want := map[netip.Prefix]identity.Entry{
		pfx("10.0.0.1/32"):    {ID: local, Source: identity.SourceLocal},
		pfx("10.1.0.1/32"):    {ID: remote.Identity, Source: identity.SourceKubernetes},
		pfx("203.0.113.0/24"): {ID: cidr, Source: identity.SourceGenerated},
		pfx("192.168.1.1/32"): {ID: identity.ReservedHost, Source: identity.SourceAgent},
	}
	assert.Equal(t, want, m.IPCache().Snapshot())
	_, ok = m.PodByIP(netip.MustParseAddr("10.1.0.9"))
	assert.False(t, ok, "a deleting pod is not in the IP cache")

	// The remote pod goes away and the prefix is dropped: their entries leave
	// the cache and their identities are released.
	m.SetObjects(Objects{Pods: []*corev1.Pod{pod("default", "local", "10.0.0.1", map[string]string{"app": "l"})}})
	m.SetPolicyPrefixes(nil)
	require.NoError(t, m.Sync(context.Background()))
	assert.Equal(t, map[netip.Prefix]identity.Entry{
		pfx("10.0.0.1/32"):    {ID: local, Source: identity.SourceLocal},
		pfx("192.168.1.1/32"): {ID: identity.ReservedHost, Source: identity.SourceAgent},
	}, m.IPCache().Snapshot())
	assert.Zero(t, m.Allocator().Refs(remote.Identity))
	assert.Zero(t, m.Allocator().Refs(cidr))
	assert.Equal(t, 1, m.Allocator().Refs(local))
}

func TestSyncContinuesPastFailures(t *testing.T) {
	eps := &endpoints{
		list:    []api.Endpoint{ep(1, "bad", "default", "a", "10.0.0.1"), ep(2, "good", "default", "b", "10.0.0.2")},
		failFor: "bad/eth0",
	}
	m, _ := newManager(t, eps, Config{HostAddrs: func() ([]netip.Addr, error) { return nil, errors.New("no addrs") }})
	err := m.Sync(context.Background())
	require.Error(t, err)
	assert.ErrorContains(t, err, "set identity of bad/eth0")
	assert.ErrorContains(t, err, "list host addresses")
	assert.Contains(t, eps.ids, "good/eth0", "the other endpoint still gets its identity")
	assert.Len(t, m.Endpoints(), 2)
}

// An endpoint deleted between the pass's List and its SetIdentity (a CNI
// DEL racing an ADD's synchronous sync) is no error of the pass: the ADD
// waiting on it must not fail for another pod's DEL (found by the soak
// campaign, hack/soak.sh). It is left out of the pass.
func TestSyncSkipsEndpointDeletedMeanwhile(t *testing.T) {
	eps := &endpoints{
		list:    []api.Endpoint{ep(1, "gone", "default", "a", "10.0.0.1"), ep(2, "new", "default", "b", "10.0.0.2")},
		goneFor: "gone/eth0",
	}
	m, _ := newManager(t, eps, Config{})
	require.NoError(t, m.Sync(context.Background()))
	assert.Contains(t, eps.ids, "new/eth0")
	assert.Len(t, m.Endpoints(), 1)
	_, ok := m.PodByIP(netip.MustParseAddr("10.0.0.1"))
	assert.False(t, ok, "the gone endpoint's address is not a local pod")
	_, ok = m.PodByIP(netip.MustParseAddr("10.0.0.2"))
	assert.True(t, ok)
}

func TestMirror(t *testing.T) {
	tests := []struct {
		name      string
		have      map[netip.Prefix]uint32
		failWrite netip.Prefix
		want      MirrorStats
		wantErr   bool
	}{
		{name: "empty map", have: map[netip.Prefix]uint32{}, want: MirrorStats{Upserted: 2}},
		{name: "in sync", have: map[netip.Prefix]uint32{pfx("10.0.0.1/32"): 300, pfx("10.0.0.2/32"): 301}},
		{
			name: "stray and stale",
			have: map[netip.Prefix]uint32{pfx("10.0.0.1/32"): 999, pfx("10.0.0.2/32"): 301, pfx("10.9.9.9/32"): 5},
			want: MirrorStats{Upserted: 1, Deleted: 1},
		},
		{
			name:      "write fails",
			have:      map[netip.Prefix]uint32{pfx("10.9.9.9/32"): 5},
			failWrite: pfx("10.0.0.1/32"),
			want:      MirrorStats{Upserted: 1, Deleted: 1},
			wantErr:   true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, dp := newManager(t, &endpoints{}, Config{})
			for p, id := range map[netip.Prefix]identity.NumericIdentity{pfx("10.0.0.1/32"): 300, pfx("10.0.0.2/32"): 301} {
				_, err := m.IPCache().Upsert(p, id, identity.SourceLocal)
				require.NoError(t, err)
			}
			dp.m, dp.failWrite = tc.have, tc.failWrite
			st, err := m.Mirror()
			assert.Equal(t, tc.want, st)
			if tc.wantErr {
				require.ErrorContains(t, err, "write ip cache entry 10.0.0.1/32")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, map[netip.Prefix]uint32{pfx("10.0.0.1/32"): 300, pfx("10.0.0.2/32"): 301}, dp.m)
		})
	}
}
