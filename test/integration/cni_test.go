package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/deletequeue"
	"github.com/sluicenet/sluice/cni"
	"github.com/sluicenet/sluice/datapath/endpointmap"
	"github.com/sluicenet/sluice/datapath/pin"
	"github.com/sluicenet/sluice/test/harness"
)

// hostLinks lists the veth names in the node's netns.
func hostLinks(t *testing.T, node *harness.Node) string {
	t.Helper()
	return node.NS.Run(t, "ip", "-o", "link", "show", "type", "veth")
}

// ipamAllocations lists host-local's reserved addresses on the node.
func ipamAllocations(t *testing.T, node *harness.Node) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(node.Dir, "ipam", "sluice"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var ips []string
	for _, e := range entries {
		if strings.Count(e.Name(), ".") == 3 {
			ips = append(ips, e.Name())
		}
	}
	return ips
}

func linkPins(t *testing.T, node *harness.Node) []string {
	t.Helper()
	entries, err := os.ReadDir(pin.LinksDir(node.BPFRoot))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// requireNothingLeft checks that no pod's veth, IP, link pin or endpoint is left.
func requireNothingLeft(t *testing.T, node *harness.Node, agentUp bool) {
	t.Helper()
	assert.Empty(t, strings.TrimSpace(hostLinks(t, node)), "no veth left on the node")
	assert.Empty(t, ipamAllocations(t, node), "no IP left allocated")
	assert.Empty(t, linkPins(t, node), "no TCX link left pinned")
	if agentUp {
		eps, err := node.Client().ListEndpoints(context.Background())
		require.NoError(t, err)
		assert.Empty(t, eps, "no endpoint left in the agent")
	}
}

func TestPrivilegedCNIAddCheckDel(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgent(t)
	a := node.AddPod(t, "a")

	require.NoError(t, a.Check(), "CHECK after ADD")
	assert.Contains(t, hostLinks(t, node), a.HostIfName)
	assert.Equal(t, []string{a.IP.String()}, ipamAllocations(t, node))
	assert.Equal(t, []string{a.HostIfName}, linkPins(t, node))

	// The CLI lists the endpoint, as a table and as JSON.
	out, err := node.NS.Command(harness.Bin(t, "sluice"), "--socket", node.Socket(), "endpoint", "list", "-o", "json").Output()
	require.NoError(t, err)
	var eps []api.Endpoint
	require.NoError(t, json.Unmarshal(out, &eps))
	require.Len(t, eps, 1)
	assert.Equal(t, a.IP.String(), eps[0].IPv4)
	out, err = node.NS.Command(harness.Bin(t, "sluice"), "--socket", node.Socket(), "endpoint", "list").Output()
	require.NoError(t, err)
	assert.Contains(t, string(out), a.IP.String())
	assert.Contains(t, string(out), "default/a")

	// CHECK notices a pod whose default route is gone.
	a.NS.Run(t, "ip", "route", "del", "default")
	require.Error(t, a.Check(), "CHECK without the default route")
	a.NS.Run(t, "ip", "route", "add", "default", "via", node.Gateway.String(), "dev", "eth0")
	require.NoError(t, a.Check())

	// DEL removes everything; a second DEL succeeds.
	require.NoError(t, a.Del())
	requireNothingLeft(t, node, true)
	require.NoError(t, a.Del(), "DEL twice")
}

func TestPrivilegedCNIDelWithNetnsGone(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgent(t)
	a := node.AddPod(t, "a")
	// The runtime removed the netns before calling DEL (its veth went with it).
	a.NS.Delete(t)
	require.NoError(t, a.Del(), "DEL with the netns gone")
	requireNothingLeft(t, node, true)
}

// With the agent down, ADD fails closed and leaves nothing; DEL still
// succeeds and the agent catches up when it comes back.
func TestPrivilegedCNIAgentDown(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})

	// Never started: the programs are not even pinned.
	_, err := node.TryAddPod(t, "early")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not pinned")
	requireNothingLeft(t, node, false)

	agent := node.StartAgent(t)
	a := node.AddPod(t, "a")
	servePods(t, a)
	hostIfIndex := endpointOf(t, a).HostIfIndex
	agent.Stop(t)

	// Programs pinned, agent gone.
	_, err = node.TryAddPod(t, "b")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "sluice-agent")
	assert.Equal(t, []string{a.IP.String()}, ipamAllocations(t, node), "the failed ADD released its IP")
	assert.Equal(t, []string{a.HostIfName}, linkPins(t, node), "the failed ADD left no link")

	// STATUS reports the plugin unavailable.
	var cniErr *types.Error
	require.ErrorAs(t, node.Status(), &cniErr)
	assert.Equal(t, uint(types.ErrPluginNotAvailable), cniErr.Code)

	// DEL with the agent down succeeds and is queued for the agent.
	require.NoError(t, a.Del())
	queue := cni.DeleteQueueDir(node.RunDir)
	items, err := deletequeue.List(queue)
	require.NoError(t, err)
	require.Len(t, items, 1, "one deletion queued")
	require.NoError(t, items[0].Err)
	assert.Equal(t, deletequeue.Entry{ContainerID: a.ContainerID, IfName: "eth0"}, items[0].Entry)

	// An interface with the gone veth's name and index makes the restored
	// endpoint look alive to the agent's start-up check: only the queued
	// deletion can remove it from the agent and the endpoint map now.
	node.NS.Run(t, "ip", "link", "add", "name", a.HostIfName, "index", strconv.Itoa(hostIfIndex), "type", "veth", "peer", "name", "sl-standin")
	node.StartAgent(t)
	node.NS.Run(t, "ip", "link", "del", a.HostIfName)
	require.NoError(t, node.Status())
	items, err = deletequeue.List(queue)
	require.NoError(t, err)
	assert.Empty(t, items, "the agent consumed the queue")
	assert.NotContains(t, endpointMapIPs(t, node), a.IP, "the queued deletion removed the endpoint map entry")
	requireNothingLeft(t, node, true)
}

// endpointMapIPs lists the addresses in the node's pinned endpoint map.
func endpointMapIPs(t *testing.T, node *harness.Node) []netip.Addr {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(filepath.Join(pin.MapsDir(node.BPFRoot), "sluice_endpoints_v1"), &ebpf.LoadPinOptions{ReadOnly: true})
	require.NoError(t, err)
	defer m.Close()
	eps, err := endpointmap.New(m).List()
	require.NoError(t, err)
	var ips []netip.Addr
	for _, ep := range eps {
		ips = append(ips, ep.IP)
	}
	return ips
}

func TestPrivilegedCNIGC(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgent(t)
	a, b := node.AddPod(t, "a"), node.AddPod(t, "b")
	servePods(t, a)

	require.NoError(t, node.GC(a), "GC with only a valid")
	assert.Equal(t, []string{a.IP.String()}, ipamAllocations(t, node))
	assert.Equal(t, []string{a.HostIfName}, linkPins(t, node))
	_, err := node.Client().GetEndpoint(context.Background(), b.ContainerID, "eth0")
	assert.ErrorIs(t, err, api.ErrNotFound)
	assert.NotContains(t, hostLinks(t, node), b.HostIfName)

	require.NoError(t, a.Check(), "the valid pod is untouched")
	requireReply(t, node.NS, a.Addr(podPort), "a")
}

// runCNI executes sluice-cni directly with the given environment and stdin, as
// a runtime does, and returns its stdout and exit error.
func runCNI(t *testing.T, node *harness.Node, env map[string]string, stdin string) ([]byte, error) {
	t.Helper()
	cmd := node.NS.Command(harness.Bin(t, "sluice-cni"))
	cmd.Env = []string{"CNI_PATH=" + harness.BinDir(t)}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("stdout: %s stderr: %s", out, stderr.String())
	return out, err
}

func TestPrivilegedCNIBadInput(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgent(t)
	pod := harness.NewNetNS(t, "sl-pod-")
	addEnv := map[string]string{
		"CNI_COMMAND": "ADD", "CNI_CONTAINERID": harness.NewContainerID(),
		"CNI_NETNS": pod.Path(), "CNI_IFNAME": "eth0",
	}
	good := `{"cniVersion":"1.1.0","name":"sluice","type":"sluice-cni","runDir":"` + node.RunDir +
		`","bpfRoot":"` + node.BPFRoot + `","ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.1.0/24"}]],"dataDir":"` +
		filepath.Join(node.Dir, "ipam") + `"}}`

	cases := []struct {
		name  string
		env   map[string]string
		stdin string
		code  uint
	}{
		{"not JSON", addEnv, `{"cniVersion":`, types.ErrDecodingFailure},
		{"no ipam", addEnv, `{"cniVersion":"1.1.0","name":"sluice","type":"sluice-cni","runDir":"` + node.RunDir + `","bpfRoot":"` + node.BPFRoot + `"}`, types.ErrInvalidNetworkConfig},
		{"negative mtu", addEnv, strings.Replace(good, `"runDir"`, `"mtu":-1,"runDir"`, 1), types.ErrInvalidNetworkConfig},
		{"no container ID", map[string]string{"CNI_COMMAND": "ADD", "CNI_NETNS": pod.Path(), "CNI_IFNAME": "eth0"}, good, types.ErrInvalidEnvironmentVariables},
		{"unsupported version", addEnv, strings.Replace(good, `"1.1.0"`, `"9.9.9"`, 1), types.ErrIncompatibleCNIVersion},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCNI(t, node, tc.env, tc.stdin)
			require.Error(t, err, "the plugin exits non-zero")
			var cniErr types.Error
			require.NoError(t, json.Unmarshal(out, &cniErr), "stdout is a CNI error object")
			assert.Equal(t, tc.code, cniErr.Code, "error code; message %q", cniErr.Msg)
			assert.NotEmpty(t, cniErr.Msg)
			requireNothingLeft(t, node, true)
		})
	}

	out, err := runCNI(t, node, map[string]string{"CNI_COMMAND": "VERSION"}, `{"cniVersion":"1.1.0"}`)
	require.NoError(t, err)
	var ver struct {
		Supported []string `json:"supportedVersions"`
	}
	require.NoError(t, json.Unmarshal(out, &ver))
	assert.Subset(t, ver.Supported, []string{"0.4.0", "1.0.0", "1.1.0"})
}
