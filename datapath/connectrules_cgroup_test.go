package datapath_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/test/harness"
)

// A Cgroup connect rule applies to the processes of the cgroups it is
// scoped to only: of two child cgroups of the hooks' cgroup, in one network
// namespace (two containers of a pod), the client in one is refused and the
// other gets its reply; the netns scope cannot carry the slot.
func TestPrivilegedConnectRuleCgroupScope(t *testing.T) {
	e := newConnEnv(t, datapath.Options{ProcessEvents: true})
	a, aID := harness.SubCgroup(t, e.cg, "a")
	b, bID := harness.SubCgroup(t, e.cg, "b")
	client := func(cg string) sockResult { return runSockClient(t, e.ns, cg, "tcp", back1TCP, 1)[0] }
	r := deny(5, protoTCP, []string{"10.244.250.1/32"})
	r.Global, r.Cgroup = false, true
	e.set(t, r)
	require.NoError(t, e.d.SetConnectScope(e.netns, 1<<5))
	replied(t, client(a), "backend-1", "the netns scope does not carry a Cgroup slot")

	require.NoError(t, e.d.SetConnectCgroupScope(aID, 1<<5))
	require.NoError(t, e.d.SetConnectCgroupScope(bID, 1<<4))
	denied(t, client(a), "connect", "container a")
	replied(t, client(b), "backend-1", "container b, same netns")
	replied(t, client(e.cg), "backend-1", "the parent cgroup")
	scopes, err := e.d.ConnectCgroupScopes()
	require.NoError(t, err)
	assert.Equal(t, map[uint64]uint64{aID: 1 << 5, bID: 1 << 4}, scopes)

	require.NoError(t, e.d.DeleteConnectCgroupScope(aID))
	require.NoError(t, e.d.DeleteConnectCgroupScope(aID), "deleting twice")
	replied(t, client(a), "backend-1", "scope deleted")
	require.NoError(t, e.d.DeleteConnectCgroupScope(bID))
	require.NoError(t, e.d.DeleteConnectScope(e.netns))
	n, err := e.d.ConnectEntries()
	require.NoError(t, err)
	assert.Equal(t, datapath.ConnectEntries{Slots: 1, Dests: 1}, n)
}
