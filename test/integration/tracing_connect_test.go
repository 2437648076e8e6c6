package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/test/harness"
)

// connectPolicyYAML denies connects of bin in pods labelled app=locked to
// dst on port (spec.connects, the Sluice extension: Tetragon's selector
// language, matchArgs index 0 being the destination, Override with
// argError -1 being EPERM).
func connectPolicyYAML(name, bin, dst string, port int) string {
	return fmt.Sprintf(`apiVersion: sluice.io/v1alpha1
kind: SluiceTracingPolicy
metadata: {name: %s}
spec:
  podSelector: {matchLabels: {app: locked}}
  connects:
  - selectors:
    - matchBinaries: [{operator: In, values: [%q]}]
      matchArgs:
      - {index: 0, operator: DAddr, values: ["%s/32"]}
      - {index: 0, operator: DPort, values: ["%d"]}
      matchActions: [{action: Override, argError: -1}]
`, name, bin, dst, port)
}

// askWith connects with bin (a copy of bash) from pod p, in the node's
// cgroup where the socket hooks run, to addr and returns the first line the
// server sends, or the shell's error output.
func askWith(t *testing.T, p *harness.Pod, bin, addr string) (reply string, ok bool) {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	script := fmt.Sprintf("exec 3<>/dev/tcp/%s/%s || exit 3; read -r line <&3; echo \"$line\"", host, port)
	out, err := p.CommandInCgroup(t, bin, "-c", script).CombinedOutput()
	return strings.TrimSpace(string(out)), err == nil
}

// A connect-denial policy: the selected binary in a selected pod gets EPERM
// connecting to the denied destination (checked in the cgroup connect hook
// on the kernel's copy of the address) and reaches other destinations;
// another binary, or the same in another pod, reaches the denied one (an
// application reply names the server); monitor mode reports and allows;
// removing the policy lifts the denial.
func TestPrivilegedTracingPolicyConnectDenial(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgentWith(t, harness.AgentOptions{SocketLB: true, Args: []string{"--process-sensor"}})
	locked, free := node.AddPod(t, "locked"), node.AddPod(t, "free")
	a, b := node.AddPod(t, "a"), node.AddPod(t, "b")
	writeManifest(t, node, "pods.yaml", podYAML(locked, "locked")+podYAML(free, "free")+podYAML(a, "a")+podYAML(b, "b"))
	servePods(t, a, b)
	client, other := copyBinary(t, "/bin/bash", "client"), copyBinary(t, "/bin/bash", "other")
	denied, allowed := b.Addr(podPort), a.Addr(podPort)
	reply, ok := askWith(t, locked, client, denied)
	require.True(t, ok && reply == "b", "no policy: b answers (%q)", reply)

	writeManifest(t, node, "deny.yaml", connectPolicyYAML("deny-b", client, b.IP.String(), podPort))
	require.Eventually(t, func() bool { _, ok := askWith(t, locked, client, denied); return !ok }, 10*time.Second,
		200*time.Millisecond, "the policy denies the connect")
	reply, ok = askWith(t, locked, client, denied)
	assert.False(t, ok)
	assert.Contains(t, reply, "Operation not permitted", "EPERM from connect()")
	requireRuleEntries(t, node, "connect.slots", "connect.dests", "connect.ports", "connect.scope", "class.exact", "class.procs")
	reply, ok = askWith(t, locked, client, allowed)
	assert.True(t, ok && reply == "a", "another destination answers (%q)", reply)
	reply, ok = askWith(t, locked, other, denied)
	assert.True(t, ok && reply == "b", "another binary reaches b (%q)", reply)
	reply, ok = askWith(t, free, client, denied)
	assert.True(t, ok && reply == "b", "the binary in another pod reaches b (%q)", reply)

	var ev *api.ProcessTracepoint
	require.Eventually(t, func() bool {
		for _, e := range processEvents(t, node, api.EventFilter{Types: []string{api.EventProcessTracepoint}, Policy: "deny-b"}) {
			if tp := e.ProcessTracepoint; tp.Enforced && tp.Process.Binary == client {
				ev = tp
				return true
			}
		}
		return false
	}, 5*time.Second, 100*time.Millisecond, "an enforced event for the denied connect")
	assert.Equal(t, "KPROBE_ACTION_OVERRIDE", ev.Action)
	require.NotNil(t, ev.Process.Pod)
	assert.Equal(t, "locked", ev.Process.Pod.Name)
	require.NotEmpty(t, ev.Args)
	if sa := ev.Args[0].SockaddrArg; assert.NotNil(t, sa) {
		assert.Equal(t, b.IP.String(), sa.Addr)
		assert.Equal(t, uint16(podPort), sa.Port)
		assert.Equal(t, "TCP", sa.Protocol)
	}

	// Monitor mode: reported, allowed.
	ctx := context.Background()
	_, err := node.Client().SetTracingPolicyMode(ctx, "", "deny-b", "monitor")
	require.NoError(t, err)
	require.Eventually(t, func() bool { r, ok := askWith(t, locked, client, denied); return ok && r == "b" }, 10*time.Second,
		200*time.Millisecond, "monitor mode allows")
	require.Eventually(t, func() bool {
		for _, e := range processEvents(t, node, api.EventFilter{Types: []string{api.EventProcessTracepoint}, Policy: "deny-b"}) {
			if !e.ProcessTracepoint.Enforced {
				return true
			}
		}
		return false
	}, 5*time.Second, 100*time.Millisecond, "monitor mode reports")
	p, err := node.Client().TracingPolicy(ctx, "", "deny-b")
	require.NoError(t, err)
	assert.Positive(t, p.ActionsEnforced)
	assert.Positive(t, p.ActionsMonitored)
	_, err = node.Client().SetTracingPolicyMode(ctx, "", "deny-b", "enforce")
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, ok := askWith(t, locked, client, denied); return !ok }, 10*time.Second,
		200*time.Millisecond, "enforce again")

	require.NoError(t, os.Remove(filepath.Join(node.ManifestsDir, "deny.yaml")))
	require.Eventually(t, func() bool { r, ok := askWith(t, locked, client, denied); return ok && r == "b" }, 10*time.Second,
		200*time.Millisecond, "no policy, no denial")
	requireRuleEntries(t, node) // removing the policy removed every entry it added
}

// requireRuleEntries waits until the agent's tracing rule maps hold entries
// (some: at least one in each of maps) or none at all (some empty).
func requireRuleEntries(t *testing.T, node *harness.Node, some ...string) {
	t.Helper()
	var last api.TracingRuleEntries
	require.Eventually(t, func() bool {
		es, err := node.Client().TracingRuleEntries(context.Background())
		if err != nil {
			return false
		}
		last = es
		if len(some) > 0 {
			for _, k := range some {
				if es[k] == 0 {
					return false
				}
			}
			return true
		}
		for _, n := range es {
			if n != 0 {
				return false
			}
		}
		return len(es) > 0
	}, 10*time.Second, 100*time.Millisecond, "tracing rule map entries: %v", last)
}
