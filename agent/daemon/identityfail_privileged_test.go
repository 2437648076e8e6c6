package daemon_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/daemon"
	"github.com/sluicenet/sluice/datapath/policymap"
	"github.com/sluicenet/sluice/test/harness"
)

// kernelState is what the kernel holds about one endpoint: its policy
// config and entries, the identity in its endpoint map entry, and the IP
// cache.
type kernelState struct {
	cfg      policymap.Config
	entries  map[policymap.Key]policymap.Entry
	identity uint32
	ipcache  map[netip.Prefix]uint32
}

func readKernel(t *testing.T, d *daemon.Daemon, ep api.Endpoint) kernelState {
	t.Helper()
	pol := d.Datapath().Policy()
	cfg, err := pol.Config(ep.ID)
	require.NoError(t, err)
	entries, err := pol.Entries(ep.ID)
	require.NoError(t, err)
	ipc, err := d.Datapath().IPCache().List()
	require.NoError(t, err)
	return kernelState{cfg: cfg, entries: entries, identity: mapEntries(t, d)[ep.IPv4].Identity, ipcache: ipc}
}

// breakStore makes the standalone identity store at path fail every write
// (a directory where its file is: the rename over it fails) and returns
// the function that repairs it.
func breakStore(t *testing.T, path string) (repair func()) {
	t.Helper()
	require.NoError(t, os.Remove(path))
	require.NoError(t, os.Mkdir(path, 0o700))
	return func() { require.NoError(t, os.Remove(path)) }
}

// lockedDaemon starts an idle standalone daemon (newIdleDaemon) and puts
// the endpoint of putLocked, whose ingress is then enforced.
func lockedDaemon(t *testing.T) (*daemon.Daemon, *harness.NetNS, daemon.Config, api.Endpoint) {
	t.Helper()
	harness.RequirePrivileged(t)
	ns := harness.NewNetNS(t, "sl-agent-")
	cfg := daemon.Config{BPFRoot: filepath.Join(harness.BPFFS(t), "sluice"), RunDir: t.TempDir(), NodeName: "node-1", Log: testLogger(t)}
	d := idleDaemon(t, ns, cfg)
	ep := putLocked(t, d, addVeth(t, ns, "lxctest0"))
	pc, err := d.Datapath().Policy().Config(ep.ID)
	require.NoError(t, err)
	require.True(t, pc.IngressEnforced, "deny-all ingress enforced")
	return d, ns, cfg, ep
}

// syncOnce runs what the identity and policy loops run in one pass and
// returns the identity sync's error.
func syncOnce(t *testing.T, d *daemon.Daemon, full bool) error {
	t.Helper()
	err := d.Identities().Sync(context.Background())
	_, merr := d.Identities().Mirror()
	require.NoError(t, merr)
	_, perr := d.Policies().Sync(full)
	require.NoError(t, perr)
	return err
}

// An identity allocation that fails (here the standalone store cannot be
// written; in Kubernetes mode the API server may fail to create the
// SluiceIdentity) never lets through what a policy denies: while it fails,
// the endpoint whose labels changed keeps its identity, its policy config
// and entries and its IP cache entry through incremental and full syncs,
// and the identity sync reports the failure (the loop retries). Once the
// store works again the endpoint moves to its new identity, still
// enforced. A new endpoint gets no identity meanwhile: its PUT (CNI ADD)
// fails.
func TestPrivilegedIdentityAllocationFailureKeepsPolicy(t *testing.T) {
	d, ns, cfg, ep := lockedDaemon(t)
	before := readKernel(t, d, ep)
	require.Equal(t, before.identity, before.ipcache[netip.MustParsePrefix("10.244.1.5/32")])

	repair := breakStore(t, filepath.Join(cfg.RunDir, "identities.json"))
	setLocked(d, map[string]string{"app": "locked", "rev": "2"}) // a label set the store does not hold
	for i := range 4 {
		require.Error(t, syncOnce(t, d, i%2 == 1), "pass %d: the allocation fails", i)
		require.Equal(t, before, readKernel(t, d, ep), "pass %d: what the kernel holds for the endpoint", i)
	}
	_, err := d.PutEndpoint(addVeth(t, ns, "lxctest1").endpoint("c2", "10.244.1.6"))
	require.Error(t, err, "a new endpoint without identity is not answered OK")
	require.Error(t, syncOnce(t, d, true), "the allocations still fail")
	require.Equal(t, before, readKernel(t, d, ep), "what the kernel holds for the endpoint")

	repair()
	require.NoError(t, syncOnce(t, d, true))
	after := readKernel(t, d, ep)
	assert.NotEqual(t, before.identity, after.identity, "the new label set's identity")
	assert.Equal(t, after.identity, after.ipcache[netip.MustParsePrefix("10.244.1.5/32")])
	assert.Equal(t, before.cfg, after.cfg, "deny-all ingress still enforced")
	assert.Equal(t, before.entries, after.entries)
}

// The same right after a restart, before the new agent has allocated
// anything: a restored endpoint whose allocation fails keeps the policy
// config and entries its predecessor wrote through a full policy sync,
// and gets its identity and policy once the store works again.
func TestPrivilegedRestartKeepsPolicyWhileIdentityAllocationFails(t *testing.T) {
	d, ns, cfg, ep := lockedDaemon(t)
	before := readKernel(t, d, ep)
	require.NoError(t, d.Close())

	d = idleDaemon(t, ns, cfg)
	repair := breakStore(t, filepath.Join(cfg.RunDir, "identities.json"))
	setLocked(d, map[string]string{"app": "locked", "rev": "2"}) // relabelled while the agent was down
	for i := range 2 {
		require.Error(t, syncOnce(t, d, true), "pass %d: the allocation fails", i)
		got := readKernel(t, d, ep)
		require.Equal(t, before.cfg, got.cfg, "pass %d: policy config of the restored endpoint", i)
		require.Equal(t, before.entries, got.entries, "pass %d: policy entries of the restored endpoint", i)
	}

	repair()
	require.NoError(t, syncOnce(t, d, true))
	after := readKernel(t, d, ep)
	assert.NotEqual(t, before.identity, after.identity, "the new label set's identity")
	assert.Equal(t, after.identity, after.ipcache[netip.MustParsePrefix("10.244.1.5/32")])
	assert.Equal(t, before.cfg, after.cfg, "deny-all ingress enforced")
	assert.Equal(t, before.entries, after.entries)
}
