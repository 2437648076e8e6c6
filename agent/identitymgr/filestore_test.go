package identitymgr

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/identity"
)

// A standalone allocator over a FileStore gives label sets the numbers they
// had before a restart, and new label sets numbers not used before.
func TestFileStoreKeepsNumbersAcrossRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "identities.json")
	web := identity.NewLabels(identity.NewLabel(identity.SourceK8s, "app", "web"), identity.NewLabel(identity.SourceK8s, "io.kubernetes.pod.namespace", "default"))
	db := identity.NewLabels(identity.NewLabel(identity.SourceK8s, "app", "db"), identity.NewLabel(identity.SourceK8s, "io.kubernetes.pod.namespace", "default"))
	other := identity.NewLabels(identity.NewLabel(identity.SourceK8s, "app", "other"), identity.NewLabel(identity.SourceK8s, "io.kubernetes.pod.namespace", "default"))

	s1, err := OpenFileStore(path)
	require.NoError(t, err)
	a1 := identity.NewStandaloneAllocatorWithStore(s1, identity.Options{})
	webID, err := a1.Allocate(ctx, web)
	require.NoError(t, err)
	dbID, err := a1.Allocate(ctx, db)
	require.NoError(t, err)

	// Restart: a fresh allocator allocates in another order.
	s2, err := OpenFileStore(path)
	require.NoError(t, err)
	a2 := identity.NewStandaloneAllocatorWithStore(s2, identity.Options{})
	otherID, err := a2.Allocate(ctx, other)
	require.NoError(t, err)
	got, err := a2.Allocate(ctx, db)
	require.NoError(t, err)
	assert.Equal(t, dbID, got, "db keeps its number")
	got, err = a2.Allocate(ctx, web)
	require.NoError(t, err)
	assert.Equal(t, webID, got, "web keeps its number")
	assert.NotContains(t, []identity.NumericIdentity{webID, dbID}, otherID, "a new label set gets a new number")

	_, err = OpenFileStore(filepath.Join(t.TempDir(), "missing.json"))
	require.NoError(t, err, "a missing file is an empty store")
}

// A number whose file write fails is not created: every allocation of its
// label set fails until the file can be written, and then the number is
// in the file.
func TestFileStoreCreateFailsWithoutFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "identities.json")
	web := identity.NewLabels(identity.NewLabel(identity.SourceK8s, "app", "web"), identity.NewLabel(identity.SourceK8s, "io.kubernetes.pod.namespace", "default"))
	s, err := OpenFileStore(path)
	require.NoError(t, err)
	a := identity.NewStandaloneAllocatorWithStore(s, identity.Options{})
	require.NoError(t, os.Mkdir(path, 0o700)) // the rename over it fails
	for range 2 {
		_, err := a.Allocate(ctx, web)
		require.Error(t, err)
	}
	_, err = s.Get(ctx, identity.MinAllocated)
	require.ErrorIs(t, err, identity.ErrNotFound, "not created")

	require.NoError(t, os.Remove(path))
	id, err := a.Allocate(ctx, web)
	require.NoError(t, err)
	reopened, err := OpenFileStore(path)
	require.NoError(t, err)
	got, err := reopened.Get(ctx, id)
	require.NoError(t, err)
	assert.True(t, got.Equal(web))
}
