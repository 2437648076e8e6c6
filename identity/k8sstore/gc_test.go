package k8sstore

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sluicenet/sluice/identity"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const grace = time.Minute

var (
	webLabels = identity.ParseLabels("k8s:app=web")
	dbLabels  = identity.ParseLabels("k8s:app=db")
)

// storedObject is a SluiceIdentity as the API server returns it.
func storedObject(id identity.NumericIdentity, ls identity.Labels, created time.Time) runtime.Object {
	u := object(id, ls)
	u.SetUID(types.UID("uid-" + Name(id)))
	u.SetResourceVersion("1")
	u.SetCreationTimestamp(metav1.NewTime(created))
	return u
}

// startStore returns a store over objs whose cache has synced, and a way to
// add a reaction to deletes.
func startStore(t *testing.T, objs ...runtime.Object) (*Store, func(k8stesting.ReactionFunc)) {
	t.Helper()
	dyn := newFake(objs...)
	s := New(dyn)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s.Start(ctx)
	tctx, tcancel := context.WithTimeout(ctx, 10*time.Second)
	defer tcancel()
	require.NoError(t, s.WaitSynced(tctx))
	return s, func(fn k8stesting.ReactionFunc) { dyn.PrependReactor("delete", GVR.Resource, fn) }
}

func TestGCRule(t *testing.T) {
	type pass struct {
		at      time.Duration // after t0
		inUse   []identity.Labels
		deleted []identity.NumericIdentity
	}
	tests := []struct {
		name    string
		created time.Time
		passes  []pass
	}{{
		name:    "in use is kept",
		created: t0.Add(-time.Hour),
		passes:  []pass{{at: 0, inUse: []identity.Labels{webLabels}}, {at: 2 * grace, inUse: []identity.Labels{webLabels}}},
	}, {
		name:    "unused for the grace period is deleted",
		created: t0.Add(-time.Hour),
		passes:  []pass{{at: 0}, {at: grace, deleted: []identity.NumericIdentity{300}}},
	}, {
		name:    "unused for less than the grace period is kept",
		created: t0.Add(-time.Hour),
		passes:  []pass{{at: 0}, {at: grace - time.Second}},
	}, {
		name:    "first seen unused is kept however old",
		created: t0.Add(-time.Hour),
		passes:  []pass{{at: grace}},
	}, {
		name:    "created less than the grace period ago is kept",
		created: t0.Add(grace), // the server's clock is ahead of ours
		passes:  []pass{{at: 0}, {at: grace}, {at: 2 * grace, deleted: []identity.NumericIdentity{300}}},
	}, {
		name:    "use in between restarts the grace period",
		created: t0.Add(-time.Hour),
		passes: []pass{
			{at: 0}, {at: grace / 2, inUse: []identity.Labels{webLabels}},
			{at: grace}, {at: 3 * grace / 2}, {at: 2 * grace, deleted: []identity.NumericIdentity{300}},
		},
	}, {
		name:    "other labels in use do not keep it",
		created: t0.Add(-time.Hour),
		passes: []pass{
			{at: 0, inUse: []identity.Labels{dbLabels}},
			{at: grace, inUse: []identity.Labels{dbLabels}, deleted: []identity.NumericIdentity{300}},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := startStore(t, storedObject(300, webLabels, tc.created))
			g := NewGC(s, grace)
			for _, p := range tc.passes {
				g.now = func() time.Time { return t0.Add(p.at) }
				got, err := g.Collect(context.Background(), p.inUse)
				require.NoError(t, err)
				assert.Equal(t, p.deleted, got, "pass at +%s", p.at)
			}
		})
	}
}

func TestGCDeleteRaces(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		wantErr bool
	}{
		{name: "collected by another agent", err: apierrors.NewNotFound(GVR.GroupResource(), "300")},
		{name: "changed meanwhile", err: apierrors.NewConflict(GVR.GroupResource(), "300", nil)},
		{name: "server error", err: apierrors.NewServiceUnavailable("down"), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, onDelete := startStore(t, storedObject(300, webLabels, t0.Add(-time.Hour)))
			var pre *metav1.Preconditions
			onDelete(func(a k8stesting.Action) (bool, runtime.Object, error) {
				pre = a.(k8stesting.DeleteActionImpl).DeleteOptions.Preconditions
				return true, nil, tc.err
			})
			g := NewGC(s, grace)
			g.now = func() time.Time { return t0 }
			_, err := g.Collect(context.Background(), nil)
			require.NoError(t, err)
			g.now = func() time.Time { return t0.Add(grace) }
			got, err := g.Collect(context.Background(), nil)
			if tc.wantErr {
				require.ErrorContains(t, err, "gc identity 300")
			} else {
				require.NoError(t, err)
			}
			assert.Empty(t, got, "nothing reported deleted")
			require.NotNil(t, pre, "delete carries preconditions")
			assert.Equal(t, types.UID("uid-300"), *pre.UID)
			assert.Equal(t, "1", *pre.ResourceVersion)
		})
	}
}

func TestGCNeedsSyncedCache(t *testing.T) {
	g := NewGC(New(newFake()), grace)
	_, err := g.Collect(context.Background(), nil)
	require.ErrorContains(t, err, "not synced")
}
