package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/test/harness"
)

// sluiceStatus runs `sluice status args...` and returns its output and
// exit code.
func sluiceStatus(t *testing.T, node *harness.Node, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(harness.Bin(t, "sluice"), append([]string{"--socket", node.Socket(), "status"}, args...)...).Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	}
	require.NoError(t, err)
	return string(out), 0
}

// statusJSON runs `sluice status -o json`.
func statusJSON(t *testing.T, node *harness.Node) (api.Status, int) {
	t.Helper()
	out, code := sluiceStatus(t, node, "-o", "json")
	var st api.Status
	require.NoError(t, json.Unmarshal([]byte(out), &st), "%s", out)
	return st, code
}

func findMap(st api.Status, name string) (api.MapStatus, bool) {
	for _, m := range st.Maps {
		if m.Name == name {
			return m, true
		}
	}
	return api.MapStatus{}, false
}

func findLoop(st api.Status, name string) (api.LoopStatus, bool) {
	for _, l := range st.Loops {
		if l.Name == name {
			return l, true
		}
	}
	return api.LoopStatus{}, false
}

// TestPrivilegedStatus checks `sluice status` against a real agent: its
// fields against what the agent's other routes and the kernel say, the map
// warning of a services map filled above 90 % (a small map), and the exit
// code: 0 while healthy (warnings included), 1 while the services loop
// cannot write (the map is full), 0 again once it can.
func TestPrivilegedStatus(t *testing.T) {
	harness.RequirePrivileged(t)
	node := harness.NewNode(t, harness.NodeOptions{})
	// One service with a TCP and a UDP port and one backend: 2 frontends
	// of 2 entries each fill the 4-entry services map (100 %).
	node.StartAgentWith(t, harness.AgentOptions{SocketLB: true, Args: []string{"--map-max-entries", "sluice_lb4_services_v1=4", "--process-sensor"}})
	client, web := node.AddPod(t, "client"), node.AddPod(t, "web")
	servePods(t, web)
	writeManifest(t, node, "pods.yaml", podYAML(web, "web"))
	writeManifest(t, node, "web.yaml", serviceYAML("web", vip, ""))
	waitBackends(t, node, fmt.Sprintf("%s:%d", vip, svcPort), 1)
	requireReply(t, client.NS, web.Addr(podPort), "web") // a flow

	var st api.Status
	var code int
	require.Eventually(t, func() bool {
		st, code = statusJSON(t, node)
		return st.Healthy && st.Flows.Total > 0 && st.Services.Programmed == 2
	}, 15*time.Second, 200*time.Millisecond, "healthy with flows and both frontends: %+v", st)
	assert.Zero(t, code, "healthy: exit 0 (with warnings %v)", st.Warnings)
	assert.Empty(t, st.Problems)
	assert.NotEmpty(t, st.Version)
	assert.Equal(t, node.Name, st.Node)
	assert.Equal(t, "standalone", st.Source.Mode)
	assert.Equal(t, node.ManifestsDir, st.Source.ManifestsDir)
	assert.False(t, st.Source.LastSnapshot.IsZero())
	assert.True(t, st.KubeProxy.SocketLB)
	assert.NotEmpty(t, st.KubeProxy.SocketLBCgroup)
	assert.Equal(t, "native", st.Routing.Mode)
	assert.Positive(t, st.Routing.PodMTU)

	ctx := context.Background()
	eps, err := node.Client().ListEndpoints(ctx)
	require.NoError(t, err)
	assert.Equal(t, len(eps), st.Endpoints)
	assert.Equal(t, 2, st.IPAM.Used)
	ids, err := node.Client().Identities(ctx)
	require.NoError(t, err)
	assert.Equal(t, len(ids), st.Identities)
	assert.Equal(t, api.ServiceSummary{Desired: 2, Programmed: 2, Failed: []string{}}, st.Services)

	// Maps: what the kernel holds, the full services map warned about.
	lbm, err := node.Client().LBMaps(ctx)
	require.NoError(t, err)
	svcMap, ok := findMap(st, "sluice_lb4_services_v1")
	require.True(t, ok, "maps: %+v", st.Maps)
	entries := 0
	for _, s := range lbm.Services {
		entries += 1 + len(s.BackendIDs) // the master entry and a slot per backend
	}
	assert.Equal(t, api.MapStatus{Name: "sluice_lb4_services_v1", Type: "Hash", Entries: entries, Capacity: 4, Percent: 100, Warning: true}, svcMap)
	epMap, ok := findMap(st, "sluice_endpoints_v1")
	require.True(t, ok)
	assert.Equal(t, 2, epMap.Entries)
	assert.False(t, epMap.Warning)
	assert.Contains(t, st.Warnings, "BPF map sluice_lb4_services_v1 is 100% full (4 of 4)")

	for _, name := range []string{"endpoints-resync", "services", "identities-ipcache", "policy", "node-routes", "tracing-policies"} {
		l, ok := findLoop(st, name)
		if assert.True(t, ok, "loop %s: %+v", name, st.Loops) && name != "endpoints-resync" {
			assert.Positive(t, l.Syncs, name)
			assert.Zero(t, l.Retries, name)
			assert.False(t, l.LastSuccess.IsZero(), name)
		}
	}
	require.NotNil(t, st.Process, "the process sensor is on")
	assert.Contains(t, st.Process.Hooks, "tp_btf/sched_process_exec")

	text, code := sluiceStatus(t, node, "--verbose")
	t.Logf("sluice status --verbose:\n%s", text)
	assert.Zero(t, code)
	assert.Regexp(t, `Health:\s+OK\n`, text)
	assert.Regexp(t, `Warning:\s+BPF map sluice_lb4_services_v1 is 100% full`, text)
	assert.Regexp(t, `Services:\s+2/2 frontends programmed`, text)
	assert.Regexp(t, `sluice_lb4_services_v1\s+Hash\s+4\s+4\s+100.0%\s+above 90%\s+0\n`, text)
	assert.Regexp(t, `\n  services\s+\d+\s+0\s+0\s+`, text)

	// A second service does not fit: the services loop fails and retries,
	// the frontends are not programmed: unhealthy, exit 1.
	writeManifest(t, node, "more.yaml", plainServiceYAML("more", "10.96.0.11", "")+
		sliceYAML("more", [5]string{web.IP.String(), node.Name, "true", "true", "false"}))
	require.Eventually(t, func() bool {
		st, code = statusJSON(t, node)
		return !st.Healthy
	}, 15*time.Second, 200*time.Millisecond, "unhealthy once the services map is full: %+v", st)
	assert.Equal(t, 1, code, "unhealthy: exit 1")
	l, _ := findLoop(st, "services")
	assert.Positive(t, l.Retries)
	assert.Contains(t, l.LastError, "bpf map is full")
	assert.Contains(t, strings.Join(st.Problems, "\n"), "loop services failing")
	assert.Contains(t, strings.Join(st.Problems, "\n"), "service frontends not programmed")
	assert.NotEmpty(t, st.Services.Failed)
	text, code = sluiceStatus(t, node)
	assert.Equal(t, 1, code)
	assert.Regexp(t, `Health:\s+UNHEALTHY\n`, text)

	// Room again: healthy, exit 0.
	writeManifest(t, node, "more.yaml", "")
	require.Eventually(t, func() bool {
		st, code = statusJSON(t, node)
		return st.Healthy && code == 0
	}, 15*time.Second, 200*time.Millisecond, "healthy again: %+v", st)
	l, _ = findLoop(st, "services")
	assert.Zero(t, l.Retries)
	assert.Contains(t, l.LastError, "bpf map is full", "the last error stays for the operator")
}
