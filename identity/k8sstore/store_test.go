package k8sstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sluicenet/sluice/identity"
)

// newFake returns a dynamic client over an in-memory object tracker: the
// API server itself runs only in the e2e tests (test/e2e/identity_test.go).
func newFake(objs ...runtime.Object) *dynfake.FakeDynamicClient {
	return dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{GVR: Kind + "List"}, objs...)
}

func TestNameObjectParse(t *testing.T) {
	// Labels in any order: the object keeps what it is given, parse
	// canonicalises (sorted, deduplicated).
	ls := identity.NewLabels(
		identity.NewLabel("k8s", "app", "web"),
		identity.NewLabel("k8s", identity.PodNamespaceLabel, "default"),
	)
	for _, id := range []identity.NumericIdentity{identity.MinAllocated, identity.MaxAllocated, 1} {
		u := object(id, ls)
		assert.Equal(t, APIVersion, u.GetAPIVersion())
		assert.Equal(t, Kind, u.GetKind())
		gotID, gotLs, err := parse(u)
		require.NoError(t, err)
		assert.Equal(t, id, gotID)
		assert.True(t, ls.Equal(gotLs), "labels %s, want %s", gotLs, ls)
	}
	assert.Equal(t, "256", Name(256))
	assert.Equal(t, "65535", Name(65535))
}

func TestParse(t *testing.T) {
	obj := func(name string, labels any) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": name}}}
		if labels != nil {
			u.Object["spec"] = map[string]any{"labels": labels}
		}
		return u
	}
	tests := []struct {
		name    string
		u       *unstructured.Unstructured
		wantID  identity.NumericIdentity
		want    []string
		wantErr string
	}{
		{name: "ok", u: obj("300", []any{"k8s:b=2", "k8s:a=1"}), wantID: 300, want: []string{"k8s:a=1", "k8s:b=2"}},
		{name: "duplicate labels collapse", u: obj("301", []any{"k8s:a=1", "k8s:a=1"}), wantID: 301, want: []string{"k8s:a=1"}},
		{name: "name not a number", u: obj("web", []any{"k8s:a=1"}), wantErr: "name is not a number"},
		{name: "negative", u: obj("-1", []any{"k8s:a=1"}), wantErr: "name is not a number"},
		{name: "over 32 bits", u: obj("4294967296", []any{"k8s:a=1"}), wantErr: "name is not a number"},
		{name: "no labels", u: obj("302", nil), wantErr: "no spec.labels"},
		{name: "empty labels", u: obj("303", []any{}), wantErr: "no spec.labels"},
		{name: "labels not strings", u: obj("304", []any{1}), wantErr: "no spec.labels"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, ls, err := parse(tc.u)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantID, id)
			assert.True(t, identity.ParseLabels(tc.want...).Equal(ls), "labels %s, want %v", ls, tc.want)
		})
	}
}

func TestStoreCreateGetDelete(t *testing.T) {
	ctx := context.Background()
	s := New(newFake())
	web := identity.ParseLabels("k8s:app=web")

	require.NoError(t, s.Create(ctx, 300, web))
	err := s.Create(ctx, 300, identity.ParseLabels("k8s:app=db"))
	require.ErrorIs(t, err, identity.ErrExists, "a taken number is ErrExists")
	got, err := s.Get(ctx, 300)
	require.NoError(t, err)
	assert.True(t, web.Equal(got), "the first Create wins: %s", got)

	_, err = s.Get(ctx, 301)
	require.ErrorIs(t, err, identity.ErrNotFound)

	require.NoError(t, s.Delete(ctx, 300))
	require.NoError(t, s.Delete(ctx, 300), "deleting a missing number is not an error")
	_, err = s.Get(ctx, 300)
	require.ErrorIs(t, err, identity.ErrNotFound)
}

func TestStoreErrorsAreWrapped(t *testing.T) {
	ctx := context.Background()
	dyn := newFake()
	boom := apierrors.NewServiceUnavailable("down")
	dyn.PrependReactor("*", "*", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, boom })
	s := New(dyn)
	for name, err := range map[string]error{
		"create": s.Create(ctx, 300, identity.ParseLabels("k8s:a=1")),
		"delete": s.Delete(ctx, 300),
	} {
		require.Error(t, err, name)
		assert.True(t, errors.Is(err, boom), "%s: %v wraps the API error", name, err)
		assert.False(t, errors.Is(err, identity.ErrExists) || errors.Is(err, identity.ErrNotFound), name)
	}
	_, err := s.Get(ctx, 300)
	assert.ErrorIs(t, err, boom)
	assert.NotErrorIs(t, err, identity.ErrNotFound)
	_, err = s.List(ctx)
	assert.ErrorIs(t, err, boom)
}

func TestStoreListSkipsMalformed(t *testing.T) {
	bad := object(400, identity.ParseLabels("k8s:a=1"))
	bad.SetName("not-a-number")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := New(newFake(object(300, identity.ParseLabels("k8s:app=web")), bad))
	want := map[identity.NumericIdentity]identity.Labels{300: identity.ParseLabels("k8s:app=web")}

	// Before the informer has synced, List asks the API server.
	got, err := s.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	s.Start(ctx)
	tctx, tcancel := context.WithTimeout(ctx, 10*time.Second)
	defer tcancel()
	require.NoError(t, s.WaitSynced(tctx))
	got, err = s.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, want, got)
}
