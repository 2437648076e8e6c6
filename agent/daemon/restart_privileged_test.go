package daemon_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/daemon"
	"github.com/sluicenet/sluice/test/harness"
)

// An agent restarted in Kubernetes mode while the API server cannot be
// reached gets no snapshot: until it does, the policy (config and entries)
// and the IP cache its predecessor programmed stay as they are, through
// many resync periods.
func TestPrivilegedRestartKeepsPolicyUntilFirstSnapshot(t *testing.T) {
	harness.RequirePrivileged(t)
	ns := harness.NewNetNS(t, "sl-agent-")
	dir := t.TempDir()
	cfg := daemon.Config{
		BPFRoot: filepath.Join(harness.BPFFS(t), "sluice"), RunDir: filepath.Join(dir, "run"), NodeName: "node-1",
		ResyncInterval: 50 * time.Millisecond, Log: testLogger(t),
	}
	var (
		d   *daemon.Daemon
		err error
	)
	ns.Do(t, func() { d, err = daemon.New(cfg) })
	require.NoError(t, err)
	ep := putLocked(t, d, addVeth(t, ns, "lxctest0"))
	policy := d.Datapath().Policy()
	pc, err := policy.Config(ep.ID)
	require.NoError(t, err)
	require.True(t, pc.IngressEnforced, "deny-all ingress enforced")
	entries, err := policy.Entries(ep.ID)
	require.NoError(t, err)
	ipc, err := d.Datapath().IPCache().List()
	require.NoError(t, err)
	require.NotEmpty(t, ipc)
	require.NoError(t, d.Close())

	cfg.K8s, cfg.Kubeconfig, cfg.CNIConflist = true, unreachableAPIServer(t, dir), filepath.Join(dir, "05-sluice.conflist")
	a := startAgent(t, ns, cfg)
	for range 40 { // 2s: 40 resync periods
		time.Sleep(cfg.ResyncInterval)
		got, err := a.d.Datapath().Policy().Config(ep.ID)
		require.NoError(t, err)
		require.Equal(t, pc, got, "policy config of the restored endpoint")
		gotEntries, err := a.d.Datapath().Policy().Entries(ep.ID)
		require.NoError(t, err)
		require.Equal(t, entries, gotEntries, "policy entries of the restored endpoint")
		gotIPC, err := a.d.Datapath().IPCache().List()
		require.NoError(t, err)
		require.Equal(t, ipc, gotIPC, "IP cache")
	}
}

// unreachableAPIServer writes a kubeconfig into dir whose API server is a
// loopback port nothing listens on, and returns its path.
func unreachableAPIServer(t *testing.T, dir string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	path := filepath.Join(dir, "kubeconfig")
	require.NoError(t, os.WriteFile(path, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://%s", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: none}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, addr), 0o600))
	return path
}
