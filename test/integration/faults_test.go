package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/cni"
	"github.com/sluicenet/sluice/test/harness"
)

// The process faults of the faults campaign (hack/faults.sh), each with
// one RESULT line.

func faultResult(t *testing.T, scenario string, fields ...string) {
	t.Helper()
	line := "RESULT faults scenario=" + scenario + " " + strings.Join(fields, " ")
	t.Log(line)
	fmt.Println(line)
}

// leftovers lists what is left on node of pod p's failed ADD: its IP, its
// host veth, its link pins and an endpoint map entry.
func leftovers(t *testing.T, node *harness.Node, p *harness.Pod, hostIfName string) []string {
	t.Helper()
	var out []string
	for _, ip := range ipamAllocations(t, node) {
		if p.IP.IsValid() && ip == p.IP.String() {
			out = append(out, "ip "+ip)
		}
	}
	if strings.Contains(hostLinks(t, node), hostIfName+"@") {
		out = append(out, "veth "+hostIfName)
	}
	for _, l := range linkPins(t, node) {
		if l == hostIfName {
			out = append(out, "link pin "+l)
		}
	}
	return out
}

// An ADD while the agent cannot write its endpoint state fails with an
// error naming the cause and leaves nothing behind (no state file, no
// endpoint, no map entry, no IP, veth or link); once the directory is
// writable again an ADD succeeds.
func TestPrivilegedFaultStateDirUnwritable(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgent(t)
	a := node.AddPod(t, "a")
	dir := filepath.Join(node.RunDir, "endpoints")
	before, err := os.ReadDir(dir)
	require.NoError(t, err)

	mountReadOnly(t, dir)
	ips := ipamAllocations(t, node)
	b, err := node.TryAddPod(t, "b")
	require.Error(t, err)
	clear := strings.Contains(err.Error(), "read-only file system") && strings.Contains(err.Error(), "persist endpoint")
	assert.True(t, clear, "the error names the cause: %v", err)
	assert.Equal(t, ips, ipamAllocations(t, node), "the failed ADD released its IP")
	hostIf := cni.HostVethName(b.ContainerID, "eth0")
	left := leftovers(t, node, b, hostIf)
	assert.Empty(t, left)
	eps, err := node.Client().ListEndpoints(context.Background())
	require.NoError(t, err)
	assert.Len(t, eps, 1, "only a's endpoint")
	assert.Equal(t, []string{a.IP.String()}, ipStrings(endpointMapIPs(t, node)), "only a's endpoint map entry")

	unmount(t, dir)
	after, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Equal(t, names(before), names(after), "no state file written, no temporary file left")
	_, err = node.TryAddPod(t, "b")
	retry := err == nil
	assert.NoError(t, err, "ADD once the state directory is writable")
	faultResult(t, "state_dir_unwritable", fmt.Sprintf("add_failed=yes error_clear=%s leaked=%d retry=%s",
		yesNo(clear), len(left)+len(after)-len(before), okFailed(retry)))
}

// The agent is killed while a CNI ADD waits for its answer (the agent
// holds the request: its state source has not delivered a first snapshot):
// the ADD fails, undoes its IP, veth and links, the restarted agent knows
// no such endpoint, and a retry succeeds.
func TestPrivilegedFaultAgentKilledInAdd(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	kubeconfig := filepath.Join(node.Dir, "kubeconfig")
	// An API server that is not there (loopback of the node's netns): the
	// agent serves, but holds endpoint requests until a first snapshot.
	require.NoError(t, os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600))
	agent := node.StartAgentWith(t, harness.AgentOptions{Args: []string{"--manifests-dir=", "--k8s", "--kubeconfig", kubeconfig,
		"--cni-conflist", filepath.Join(node.Dir, "k8s.conflist")}})

	type addResult struct {
		p   *harness.Pod
		err error
	}
	done := make(chan addResult, 1)
	go func() {
		p, err := node.TryAddPod(t, "b")
		done <- addResult{p, err}
	}()
	// Wait until the ADD has wired the pod and waits for the agent.
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(node.Dir, "cni.log"))
		return strings.Contains(string(b), "pod programs attached")
	}, 10*time.Second, 5*time.Millisecond, "the ADD reached the agent call")
	log, err := os.ReadFile(filepath.Join(node.Dir, "cni.log"))
	require.NoError(t, err)
	m := regexp.MustCompile(`pod programs attached.* hostIfName=(\S+)`).FindSubmatch(log)
	require.NotNil(t, m, "the CNI log names the host veth")
	hostIf := string(m[1])
	require.Contains(t, hostLinks(t, node), hostIf, "the ADD is in the middle: the veth exists")
	agent.Kill(t)
	res := <-done
	require.Error(t, res.err, "ADD fails when the agent dies under it")
	t.Logf("ADD error: %v", res.err)
	left := leftovers(t, node, res.p, hostIf)
	assert.Empty(t, left)
	assert.Empty(t, ipamAllocations(t, node), "the failed ADD released its IP")

	node.StartAgent(t)
	eps, err := node.Client().ListEndpoints(context.Background())
	require.NoError(t, err)
	assert.Empty(t, eps, "the restarted agent knows no endpoint of the failed ADD")
	p, err := node.TryAddPod(t, "b")
	retry := err == nil
	require.NoError(t, err, "retry")
	servePods(t, p)
	requireReply(t, node.NS, p.Addr(podPort), "b")
	faultResult(t, "agent_killed_in_add", fmt.Sprintf("add_failed=yes leaked=%d retry=%s", len(left)+len(eps), okFailed(retry)))
}

// mountReadOnly mounts an empty read-only tmpfs over dir until unmount or
// the end of the test.
func mountReadOnly(t *testing.T, dir string) {
	t.Helper()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=64k", "sluice-test-ro", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
}

func unmount(t *testing.T, dir string) {
	t.Helper()
	out, err := exec.Command("umount", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func okFailed(b bool) string {
	if b {
		return "ok"
	}
	return "failed"
}

func ipStrings(ips []netip.Addr) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

func names(es []os.DirEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}
