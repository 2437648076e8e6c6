package endpointmgr_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/endpointmgr"
)

func TestSetIdentityWritesMapAndSurvivesReplace(t *testing.T) {
	f := newFixture(t)
	_, err := f.m.Put(ep("a", "10.0.0.1", 10))
	require.NoError(t, err)
	require.NoError(t, f.m.SetIdentity("a", "eth0", 300))
	got, err := f.dp.List()
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, uint32(300), got[0].Identity)
	assert.Equal(t, netip.MustParseAddr("10.0.0.1"), got[0].IP)

	// A replacing Put (CNI ADD again) keeps the identity.
	_, err = f.m.Put(ep("a", "10.0.0.1", 11))
	require.NoError(t, err)
	got, err = f.dp.List()
	require.NoError(t, err)
	assert.Equal(t, uint32(300), got[0].Identity)
	id, ok := f.m.Identity("a", "eth0")
	assert.True(t, ok)
	assert.Equal(t, uint32(300), id)

	err = f.m.SetIdentity("nope", "eth0", 1)
	assert.True(t, errors.Is(err, endpointmgr.ErrNotFound), "%v", err)
}
