package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/endpointmgr"
	"github.com/sluicenet/sluice/agent/endpointmgr/endpointtest"
	"github.com/sluicenet/sluice/agent/server"
	"github.com/sluicenet/sluice/agent/state"
)

var statusNow = time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC)

func sampleStatus() api.Status {
	return api.Status{
		Version: "v0.9.0 (0123456789ab)", Node: "node-1", Started: statusNow.Add(-2 * time.Hour), Healthy: true,
		Problems: []string{}, Warnings: []string{"BPF map sluice_ct4_v1 is 95% full (950 of 1000)"},
		Source: api.SourceStatus{Mode: "kubernetes", APIServer: "ok", CachesSynced: true, LastSnapshot: statusNow.Add(-3 * time.Second)},
		KubeProxy: api.KubeProxyStatus{SocketLB: true, SocketLBCgroup: "/sys/fs/cgroup/unified", PerPacketLB: true,
			NodePortDevices: []string{"eth0"}, NodePortAttach: "tc (tcx)", NodeIP: "192.168.1.10", Algorithm: "random"},
		Routing:    api.RoutingStatus{Mode: "vxlan", Tunnel: "sluice_vxlan", PodMTU: 1450, UnderlayMTU: 1500, Peers: 2},
		IPAM:       api.IPAMStatus{PodCIDR: "10.244.1.0/24", Used: 3, Free: 250},
		Endpoints:  3,
		Identities: 12,
		Policies: api.PolicySummary{Enforcement: "default", Accepted: 4, Enforced: 2,
			Rejected: []api.RejectedPolicy{{Name: "SluiceNetworkPolicy x/l7", Reason: "rejected: spec.ingress[0].toPorts[0].rules: L7 rules are not supported"}}},
		Services: api.ServiceSummary{Desired: 5, Programmed: 5, Failed: []string{}},
		Maps: []api.MapStatus{
			{Name: "sluice_ct4_v1", Type: "LRUHash", Entries: 950, Capacity: 1000, Percent: 95, Warning: true},
			{Name: "sluice_endpoints_v1", Type: "Hash", Entries: 3, Capacity: 65536, Percent: 100 * 3.0 / 65536},
		},
		Loops: []api.LoopStatus{
			{Name: "services", Syncs: 40, Failures: 1, LastSuccess: statusNow.Add(-10 * time.Second), LastFailure: statusNow.Add(-time.Minute), LastError: "update sluice_lb4_services_v1: bpf map is full"},
			{Name: "policy", Syncs: 12, LastSuccess: statusNow.Add(-2 * time.Second)},
		},
		Flows:   api.EventStats{Total: 1234, Rate: 2.5, Lost: 0},
		Process: &api.ProcessStatus{Hooks: []string{"tp_btf/sched_process_exec", "tp_btf/sched_process_exit"}, Events: api.EventStats{Total: 99, Rate: 0.5, Lost: 3, RateLimited: 7}},
	}
}

func TestWriteStatus(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteStatus(&b, sampleStatus(), false, statusNow))
	assert.Equal(t, `Health:                OK
  Warning:             BPF map sluice_ct4_v1 is 95% full (950 of 1000)
Version:               v0.9.0 (0123456789ab)
Node:                  node-1, up 2h0m0s
Mode:                  kubernetes (API server ok, caches synced, last snapshot 3s ago)
KubeProxyReplacement:  socket LB (cgroup /sys/fs/cgroup/unified), per-packet LB (pod tc), NodePort on eth0 (tc (tcx)), SNAT to 192.168.1.10, algorithm random
Routing:               vxlan (tunnel sluice_vxlan), pod MTU 1450 (underlay 1500), 2 peer nodes
IPAM:                  10.244.1.0/24: 3 used, 250 free
Endpoints:             3
Identities:            12
Policies:              4 accepted, 1 rejected; 2 endpoints enforced, 0 in audit (enforcement default)
Services:              5/5 frontends programmed
BPF maps:              2 maps, 1 above 90%; fullest sluice_ct4_v1 95.0% (950/1000)
Owner loops:           2, all synced
Flows:                 2.5/s (last minute), 1234 total, 0 lost
Process events:        0.5/s (last minute), 99 total, 3 lost, 7 rate-limited
Tracing hooks:         tp_btf/sched_process_exec, tp_btf/sched_process_exit
`, b.String())

	b.Reset()
	require.NoError(t, WriteStatus(&b, sampleStatus(), true, statusNow))
	out := b.String()
	assert.Contains(t, out, "\nRejected policies:\n  SluiceNetworkPolicy x/l7: rejected: spec.ingress[0].toPorts[0].rules: L7 rules are not supported\n")
	assert.Contains(t, out, `
BPF maps:
  NAME                 TYPE     ENTRIES  CAPACITY  USE    WARNING    FULL WRITES
  sluice_ct4_v1        LRUHash  950      1000      95.0%  above 90%  0
  sluice_endpoints_v1  Hash     3        65536     0.0%   -          0
`)
	assert.Contains(t, out, `
Owner loops:
  NAME      SYNCS  FAILURES  RETRIES  LAST SUCCESS  LAST ERROR
  services  40     1         0        10s ago       1m0s ago: update sluice_lb4_services_v1: bpf map is full
  policy    12     0         0        2s ago        -
`)

	st := sampleStatus()
	st.Healthy, st.Problems, st.Process = false, []string{"loop services failing (3 retries): boom"}, nil
	st.Loops[0].Retries = 3
	st.Source = api.SourceStatus{Mode: "standalone", ManifestsDir: "/etc/sluice/manifests"}
	b.Reset()
	require.NoError(t, WriteStatus(&b, st, false, statusNow))
	out = b.String()
	assert.Contains(t, out, "Health:                UNHEALTHY\n  Problem:             loop services failing (3 retries): boom\n")
	assert.Contains(t, out, "Mode:                  standalone (manifests /etc/sluice/manifests, no snapshot yet)\n")
	assert.Contains(t, out, "Owner loops:           2, 1 failing (services)\n")
	assert.Contains(t, out, "Process events:        off (no process sensor)\n")
}

// statusRun serves status from a unix socket like the agent and returns a
// function running `sluice status args...`.
func statusRun(t *testing.T, status func() api.Status) func(args ...string) (string, error) {
	t.Helper()
	store, err := state.New(filepath.Join(t.TempDir(), "endpoints"))
	require.NoError(t, err)
	log, _ := logtest.NewNullLogger()
	dp := endpointtest.New()
	return serveConfig(t, server.Config{Endpoints: endpointmgr.New(dp, dp, store, log), BPFRoot: "/bpf", Status: status, Log: log})
}

func TestStatusCommandExitCode(t *testing.T) {
	st := sampleStatus()
	run := statusRun(t, func() api.Status { return st })
	out, err := run("status")
	require.NoError(t, err, "healthy with warnings: success")
	assert.Contains(t, out, "Health:                OK\n")
	out, err = run("status", "-o", "json")
	require.NoError(t, err)
	var got api.Status
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	assert.Equal(t, st.Maps, got.Maps)
	assert.True(t, got.Healthy)

	st.Healthy, st.Problems = false, []string{"not ready: identities not synced yet", "loop policy failing (1 retries): boom"}
	out, err = run("status", "-o", "json")
	require.True(t, errors.Is(err, ErrUnhealthy), "%v", err)
	assert.EqualError(t, err, "agent unhealthy: not ready: identities not synced yet; loop policy failing (1 retries): boom")
	require.NoError(t, json.Unmarshal([]byte(out), &got), "the status is printed before the error")
	assert.False(t, got.Healthy)
	_, err = run("status", "--verbose")
	assert.ErrorIs(t, err, ErrUnhealthy)
}

func TestStatusCommandOlderAgent(t *testing.T) {
	run := statusRun(t, nil) // no /v1/status: the health answer
	out, err := run("status")
	require.NoError(t, err)
	assert.Contains(t, out, "Status:          ok\nBPF root:        /bpf\nEndpoints:       0\n")
}

func TestStatusCommandUnreachable(t *testing.T) {
	cmd := NewCommand()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetArgs([]string{"--socket", filepath.Join(t.TempDir(), "none.sock"), "status"})
	err := cmd.Execute()
	assert.ErrorIs(t, err, api.ErrUnreachable)
}

func TestWriteStatusLBAcceleration(t *testing.T) {
	st := sampleStatus()
	st.KubeProxy.NodePortDevices = []string{"eth0", "eth1"}
	st.KubeProxy.LBAcceleration = "native"
	st.KubeProxy.NodePortXDP = map[string]string{"eth0": "xdp native", "eth1": "tc (no native XDP)"}
	var b bytes.Buffer
	require.NoError(t, WriteStatus(&b, st, false, statusNow))
	assert.Contains(t, b.String(), "KubeProxyReplacement:  socket LB (cgroup /sys/fs/cgroup/unified), per-packet LB (pod tc), "+
		"NodePort on eth0, eth1 (tc (tcx)), acceleration native: eth0 xdp native, eth1 tc (no native XDP), SNAT to 192.168.1.10, algorithm random\n")
}

func TestWriteStatusLBMode(t *testing.T) {
	st := sampleStatus()
	st.KubeProxy.NodePortDevices = []string{"eth0"}
	st.KubeProxy.LBMode = "dsr"
	var b bytes.Buffer
	require.NoError(t, WriteStatus(&b, st, false, statusNow))
	assert.Contains(t, b.String(), "NodePort on eth0 (tc (tcx)), mode dsr, SNAT to 192.168.1.10")
	st.KubeProxy.LBMode = "snat"
	b.Reset()
	require.NoError(t, WriteStatus(&b, st, false, statusNow))
	assert.NotContains(t, b.String(), "mode snat")
}
