package identitymgr

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/identity"
)

// downStore is an identity store whose backend can be down (an API server
// that cannot be reached): every call then fails.
type downStore struct {
	*identity.MemoryStore
	down bool
}

var errDown = errors.New("connection refused")

func (s *downStore) Create(ctx context.Context, id identity.NumericIdentity, ls identity.Labels) error {
	if s.down {
		return errDown
	}
	return s.MemoryStore.Create(ctx, id, ls)
}

func (s *downStore) List(ctx context.Context) (map[identity.NumericIdentity]identity.Labels, error) {
	if s.down {
		return nil, errDown
	}
	return s.MemoryStore.List(ctx)
}

// While allocations fail, a local endpoint and a remote pod whose labels
// changed keep the identity they had (its reference carries over, its IP
// cache entry stays) and the sync reports the failure; a new endpoint is
// left without identity and listed as unresolved. When the store is back,
// every one gets the identity of its labels and the old ones are released.
func TestSyncKeepsIdentityWhileAllocationFails(t *testing.T) {
	ctx := context.Background()
	store := &downStore{MemoryStore: identity.NewMemoryStore()}
	eps := &endpoints{list: []api.Endpoint{ep(1, "c1", "default", "web", "10.0.0.1")}}
	m, dp := newManager(t, eps, Config{Store: store, Cluster: true})
	objs := func(rev string) Objects {
		return Objects{Pods: []*corev1.Pod{
			pod("default", "web", "10.0.0.1", map[string]string{"app": "web", "rev": rev}),
			pod("default", "db", "10.1.0.1", map[string]string{"app": "db", "rev": rev}),
		}}
	}
	m.SetObjects(objs("1"))
	require.NoError(t, m.Sync(ctx))
	_, err := m.Mirror()
	require.NoError(t, err)
	web := m.Endpoints()[1]
	db, ok := m.PodByIP(netip.MustParseAddr("10.1.0.1"))
	require.True(t, ok)
	ipcache, err := dp.List()
	require.NoError(t, err)

	store.down = true
	m.SetObjects(objs("2"))
	eps.list = append(eps.list, ep(2, "c2", "default", "new", "10.0.0.2"))
	for range 2 {
		require.ErrorIs(t, m.Sync(ctx), errDown)
		_, err := m.Mirror()
		require.NoError(t, err)
		got := m.Endpoints()
		assert.Equal(t, map[uint16]EndpointIdentity{1: web}, got, "the endpoint keeps identity and labels; the new one has none")
		assert.Equal(t, map[uint16]bool{2: true}, m.Unresolved())
		assert.Equal(t, uint32(web.Identity), eps.ids["c1/eth0"])
		gotDB, _ := m.PodByIP(netip.MustParseAddr("10.1.0.1"))
		assert.Equal(t, db, gotDB)
		assert.Equal(t, ipcache, dp.m, "IP cache map unchanged")
		assert.Equal(t, 1, m.Allocator().Refs(web.Identity), "the reference carries over")
		assert.Equal(t, 1, m.Allocator().Refs(db.Identity))
	}

	store.down = false
	require.NoError(t, m.Sync(ctx))
	got := m.Endpoints()
	require.Len(t, got, 2)
	assert.Empty(t, m.Unresolved())
	assert.NotEqual(t, web.Identity, got[1].Identity)
	assert.True(t, got[1].Labels.Equal(identity.PodLabels("default", map[string]string{"app": "web", "rev": "2"}, nil)))
	assert.Zero(t, m.Allocator().Refs(web.Identity), "the old identity is released")
	assert.Zero(t, m.Allocator().Refs(db.Identity))
	gotDB, _ := m.PodByIP(netip.MustParseAddr("10.1.0.1"))
	assert.NotEqual(t, db.Identity, gotDB.Identity)
}
