package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/daemon"
	"github.com/sluicenet/sluice/agent/deletequeue"
	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/pin"
	"github.com/sluicenet/sluice/test/harness"
)

// testNode is a simulated node: its own netns (where host veths go and the
// plugin and agent run), a private bpffs, a run dir and host-local's data dir.
type testNode struct {
	ns      ns.NetNS
	dir     string
	bpfRoot string
	runDir  string
	ipamDir string
	binDir  string
	conf    []byte
}

func newTestNode(t *testing.T) *testNode {
	t.Helper()
	n := &testNode{dir: t.TempDir()}
	n.binDir = filepath.Join(n.dir, "bin")
	out, err := exec.Command("go", "build", "-o", filepath.Join(n.binDir, "host-local"),
		"github.com/containernetworking/plugins/plugins/ipam/host-local").CombinedOutput()
	require.NoError(t, err, "build host-local: %s", out)

	n.ns, err = testutils.NewNS()
	require.NoError(t, err)
	t.Cleanup(func() {
		n.ns.Close()
		assert.NoError(t, testutils.UnmountNS(n.ns))
	})

	bpffs := filepath.Join(n.dir, "bpffs")
	require.NoError(t, os.Mkdir(bpffs, 0o700))
	require.NoError(t, unix.Mount("bpffs", bpffs, "bpf", 0, "mode=0700"))
	t.Cleanup(func() { assert.NoError(t, unix.Unmount(bpffs, unix.MNT_DETACH)) })
	n.bpfRoot = filepath.Join(bpffs, "sluice")
	n.runDir = filepath.Join(n.dir, "run")
	n.ipamDir = filepath.Join(n.dir, "ipam")

	n.conf, err = json.Marshal(map[string]any{
		"cniVersion": "1.1.0",
		"name":       "sluice",
		"type":       "sluice-cni",
		"runDir":     n.runDir,
		"bpfRoot":    n.bpfRoot,
		"logFile":    filepath.Join(n.dir, "cni.log"),
		"ipam": map[string]any{
			"type":    "host-local",
			"ranges":  [][]map[string]string{{{"subnet": "10.244.1.0/24"}}},
			"dataDir": n.ipamDir,
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(n.dir, "cni.log")); err == nil {
				t.Logf("sluice-cni log:\n%s", b)
			}
		}
	})
	return n
}

// testPod is a pod netns with a container ID.
type testPod struct {
	id string
	ns ns.NetNS
}

func (n *testNode) newPod(t *testing.T, id string) *testPod {
	t.Helper()
	pns, err := testutils.NewNS()
	require.NoError(t, err)
	t.Cleanup(func() {
		pns.Close()
		assert.NoError(t, testutils.UnmountNS(pns))
	})
	return &testPod{id: id, ns: pns}
}

// args sets the CNI environment (IPAM delegation reads it) and returns the
// skel arguments for cmd.
func (n *testNode) args(t *testing.T, cmd string, p *testPod, stdin []byte) *skel.CmdArgs {
	t.Helper()
	a := &skel.CmdArgs{
		ContainerID: p.id,
		Netns:       p.ns.Path(),
		IfName:      "eth0",
		Args:        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + p.id,
		Path:        n.binDir,
		StdinData:   stdin,
	}
	if stdin == nil {
		a.StdinData = n.conf
	}
	for k, v := range map[string]string{
		"CNI_COMMAND": cmd, "CNI_CONTAINERID": a.ContainerID, "CNI_NETNS": a.Netns,
		"CNI_IFNAME": a.IfName, "CNI_ARGS": a.Args, "CNI_PATH": a.Path,
	} {
		t.Setenv(k, v)
	}
	return a
}

// in runs fn with the calling thread in the node's netns, as a container
// runtime on that node would run the plugin.
func (n *testNode) in(t *testing.T, fn func() error) error {
	t.Helper()
	return n.ns.Do(func(ns.NetNS) error { return fn() })
}

func (n *testNode) add(t *testing.T, p *testPod) (*current.Result, error) {
	return n.addWith(t, p, nil)
}

// addWith is add with another network config on stdin (nil: the node's).
func (n *testNode) addWith(t *testing.T, p *testPod, stdin []byte) (*current.Result, error) {
	var res types.Result
	err := n.in(t, func() error {
		var err error
		res, err = Add(n.args(t, "ADD", p, stdin))
		return err
	})
	if err != nil {
		return nil, err
	}
	r, err := current.NewResultFromResult(res)
	require.NoError(t, err)
	return r, nil
}

func (n *testNode) del(t *testing.T, p *testPod) error {
	return n.in(t, func() error { return CmdDel(n.args(t, "DEL", p, nil)) })
}

func (n *testNode) check(t *testing.T, p *testPod, prev *current.Result) error {
	var conf map[string]any
	require.NoError(t, json.Unmarshal(n.conf, &conf))
	raw, err := json.Marshal(prev)
	require.NoError(t, err)
	var prevMap map[string]any
	require.NoError(t, json.Unmarshal(raw, &prevMap))
	conf["prevResult"] = prevMap
	stdin, err := json.Marshal(conf)
	require.NoError(t, err)
	return n.in(t, func() error { return CmdCheck(n.args(t, "CHECK", p, stdin)) })
}

func (n *testNode) gc(t *testing.T, valid ...*testPod) error {
	var conf map[string]any
	require.NoError(t, json.Unmarshal(n.conf, &conf))
	atts := []map[string]string{}
	for _, p := range valid {
		atts = append(atts, map[string]string{"containerID": p.id, "ifname": "eth0"})
	}
	conf["cni.dev/valid-attachments"] = atts
	stdin, err := json.Marshal(conf)
	require.NoError(t, err)
	a := &skel.CmdArgs{Path: n.binDir, StdinData: stdin}
	t.Setenv("CNI_PATH", n.binDir)
	return n.in(t, func() error { return CmdGC(a) })
}

// hostLink returns the pod's host veth in the node netns, or nil.
func (n *testNode) hostLink(t *testing.T, p *testPod) netlink.Link {
	var l netlink.Link
	require.NoError(t, n.in(t, func() error {
		var err error
		l, err = netlinksafe.LinkByName(HostVethName(p.id, "eth0"))
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			l = nil
			return nil
		}
		return err
	}))
	return l
}

// assertGone checks that nothing of p is left on the node.
func (n *testNode) assertGone(t *testing.T, p *testPod) {
	t.Helper()
	assert.Nil(t, n.hostLink(t, p), "host veth of %s left behind", p.id)
	_, err := os.Stat(pin.LinkDir(n.bpfRoot, HostVethName(p.id, "eth0")))
	assert.ErrorIs(t, err, os.ErrNotExist, "link pins of %s left behind", p.id)
	allocs, err := ReadHostLocalAllocations(n.ipamDir, "sluice")
	require.NoError(t, err)
	for _, a := range allocs {
		assert.NotEqual(t, p.id, a.ContainerID, "IPAM allocation %s of %s left behind", a.IP, p.id)
	}
	require.NoError(t, p.ns.Do(func(ns.NetNS) error {
		_, err := netlinksafe.LinkByName("eth0")
		assert.Error(t, err, "eth0 left in pod %s", p.id)
		return nil
	}))
}

// startAgent runs the real agent in the node's netns until the test ends;
// opts adjust its configuration.
func (n *testNode) startAgent(t *testing.T, opts ...func(*daemon.Config)) *api.Client {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	cfg := daemon.Config{BPFRoot: n.bpfRoot, RunDir: n.runDir, ResyncInterval: time.Hour, Log: log}
	for _, o := range opts {
		o(&cfg)
	}
	var d *daemon.Daemon
	require.NoError(t, n.in(t, func() error {
		var err error
		d, err = daemon.New(cfg)
		return err
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return api.NewClient(filepath.Join(n.runDir, "agent.sock"))
}

func TestPrivilegedAddDel(t *testing.T) {
	harness.RequirePrivileged(t)
	n := newTestNode(t)
	sock := filepath.Join(n.runDir, "agent.sock")
	pod1 := n.newPod(t, "pod1-"+fmt.Sprint(time.Now().UnixNano()))

	t.Run("programs not pinned", func(t *testing.T) {
		_, err := n.add(t, pod1)
		te := cniErr(t, err)
		assert.Equal(t, types.ErrTryAgainLater, te.Code)
		assert.Contains(t, te.Msg, "sluice pod programs are not pinned under "+n.bpfRoot)
		n.assertGone(t, pod1)
	})

	dp, err := datapath.Load(n.bpfRoot, datapath.Options{})
	if err != nil {
		out, _ := exec.Command("sh", "-c", "ls -la "+n.bpfRoot+" "+n.bpfRoot+"/progs; grep bpf /proc/self/mountinfo").CombinedOutput()
		t.Logf("%s", out)
	}
	require.NoError(t, err)
	require.NoError(t, dp.Close())

	t.Run("agent unreachable", func(t *testing.T) {
		_, err := n.add(t, pod1)
		te := cniErr(t, err)
		assert.Equal(t, types.ErrTryAgainLater, te.Code)
		assert.Contains(t, te.Msg, "sluice-agent is not reachable at "+sock)
		n.assertGone(t, pod1)
	})

	t.Run("DEL of nothing with the agent down is queued", func(t *testing.T) {
		require.NoError(t, n.del(t, pod1))
		require.NoError(t, n.del(t, pod1), "DEL twice")
		items, err := deletequeue.List(filepath.Join(n.runDir, "delete-queue"))
		require.NoError(t, err)
		require.Len(t, items, 1, "one queued deletion")
		require.NoError(t, items[0].Err)
		assert.Equal(t, deletequeue.Entry{ContainerID: pod1.id, IfName: "eth0"}, items[0].Entry)
	})

	client := n.startAgent(t)
	ctx := context.Background()
	entries, err := os.ReadDir(filepath.Join(n.runDir, "delete-queue"))
	require.NoError(t, err)
	assert.Empty(t, entries, "the agent consumed the delete queue")

	var res1 *current.Result
	t.Run("ADD", func(t *testing.T) {
		res1, err = n.add(t, pod1)
		require.NoError(t, err)
		hostName := HostVethName(pod1.id, "eth0")
		require.Len(t, res1.Interfaces, 2)
		assert.Equal(t, hostName, res1.Interfaces[0].Name)
		assert.Empty(t, res1.Interfaces[0].Sandbox)
		assert.Equal(t, "eth0", res1.Interfaces[1].Name)
		assert.Equal(t, pod1.ns.Path(), res1.Interfaces[1].Sandbox)
		require.Len(t, res1.IPs, 1)
		assert.Equal(t, "10.244.1.2/32", res1.IPs[0].Address.String())
		assert.Equal(t, "10.244.1.1", res1.IPs[0].Gateway.String())
		assert.Equal(t, 1, *res1.IPs[0].Interface)
		require.Len(t, res1.Routes, 1)
		assert.Equal(t, "0.0.0.0/0", res1.Routes[0].Dst.String())

		// Pod side: address, routes, MAC, IPv6 off.
		require.NoError(t, pod1.ns.Do(func(ns.NetNS) error {
			l, err := netlinksafe.LinkByName("eth0")
			require.NoError(t, err)
			assert.Equal(t, res1.Interfaces[1].Mac, l.Attrs().HardwareAddr.String())
			assert.Equal(t, 1500, l.Attrs().MTU)
			addrs, err := netlinksafe.AddrList(l, netlink.FAMILY_V4)
			require.NoError(t, err)
			require.Len(t, addrs, 1)
			assert.Equal(t, "10.244.1.2/32", addrs[0].IPNet.String())
			routes, err := netlinksafe.RouteList(l, netlink.FAMILY_V4)
			require.NoError(t, err)
			var dsts []string
			for _, r := range routes {
				dsts = append(dsts, fmt.Sprintf("%v via %v scope %v", r.Dst, r.Gw, r.Scope))
			}
			assert.Contains(t, strings.Join(dsts, "\n"), "10.244.1.1/32 via <nil> scope link")
			assert.Contains(t, strings.Join(dsts, "\n"), "via 10.244.1.1 scope universe")
			if v, err := os.ReadFile("/proc/sys/net/ipv6/conf/eth0/disable_ipv6"); err == nil {
				assert.Equal(t, "1\n", string(v))
			}
			return nil
		}))

		// Node side: veth up with the gateway /32 and a route to the pod.
		l := n.hostLink(t, pod1)
		require.NotNil(t, l)
		assert.NotZero(t, l.Attrs().Flags&net.FlagUp)
		assert.Equal(t, res1.Interfaces[0].Mac, l.Attrs().HardwareAddr.String())
		require.NoError(t, n.in(t, func() error {
			addrs, err := netlinksafe.AddrList(l, netlink.FAMILY_V4)
			require.NoError(t, err)
			require.Len(t, addrs, 1)
			assert.Equal(t, "10.244.1.1/32", addrs[0].IPNet.String())
			routes, err := netlinksafe.RouteList(l, netlink.FAMILY_V4)
			require.NoError(t, err)
			found := false
			for _, r := range routes {
				found = found || (r.Dst != nil && r.Dst.String() == "10.244.1.2/32" && r.Scope == netlink.SCOPE_LINK)
			}
			assert.True(t, found, "host route to the pod: %v", routes)
			return nil
		}))
		for _, h := range pin.PodHooks {
			_, err := os.Stat(pin.LinkPath(n.bpfRoot, hostName, h.Hook))
			assert.NoError(t, err, "link pin %s", h.Hook)
		}

		ep, err := client.GetEndpoint(ctx, pod1.id, "eth0")
		require.NoError(t, err)
		assert.Equal(t, "10.244.1.2", ep.IPv4)
		assert.Equal(t, hostName, ep.HostIfName)
		assert.Equal(t, l.Attrs().Index, ep.HostIfIndex)
		assert.Equal(t, res1.Interfaces[1].Mac, ep.MAC)
		assert.Equal(t, res1.Interfaces[0].Mac, ep.HostMAC)
		assert.Equal(t, "default", ep.PodNamespace)
		assert.Equal(t, pod1.id, ep.PodName)
		assert.Equal(t, pod1.ns.Path(), ep.NetNS)
	})
	require.NotNil(t, res1)

	t.Run("CHECK and STATUS", func(t *testing.T) {
		require.NoError(t, n.check(t, pod1, res1))
		require.NoError(t, n.in(t, func() error {
			return CmdStatus(&skel.CmdArgs{StdinData: n.conf})
		}))

		bad := *res1
		bad.IPs = []*current.IPConfig{{Interface: current.Int(1), Address: net.IPNet{IP: net.IPv4(10, 244, 1, 99), Mask: net.CIDRMask(32, 32)}, Gateway: net.IPv4(10, 244, 1, 1)}}
		err := n.check(t, pod1, &bad)
		assert.ErrorContains(t, err, "does not have address 10.244.1.99")

		ep, err := client.GetEndpoint(ctx, pod1.id, "eth0")
		require.NoError(t, err)
		require.NoError(t, client.DeleteEndpoint(ctx, pod1.id, "eth0"))
		err = n.check(t, pod1, res1)
		assert.ErrorContains(t, err, "sluice-agent does not know endpoint "+pod1.id+"/eth0")
		_, err = client.PutEndpoint(ctx, ep)
		require.NoError(t, err)
		require.NoError(t, n.check(t, pod1, res1))
	})

	pod2 := n.newPod(t, "pod2-"+fmt.Sprint(time.Now().UnixNano()))
	t.Run("agent refuses the endpoint: nothing left", func(t *testing.T) {
		// Another endpoint holds the address host-local hands out next.
		_, err := client.PutEndpoint(ctx, api.Endpoint{ContainerID: "squatter", IfName: "eth0", IPv4: "10.244.1.3",
			MAC: "02:00:00:00:00:01", HostIfName: "lo", HostIfIndex: 1, HostMAC: "02:00:00:00:00:02"})
		require.NoError(t, err)
		_, err = n.add(t, pod2)
		te := cniErr(t, err)
		assert.Equal(t, types.ErrInternal, te.Code)
		assert.Contains(t, te.Msg, "sluice-agent: register endpoint "+pod2.id+"/eth0")
		assert.Contains(t, te.Msg, "already used")
		n.assertGone(t, pod2)
		require.NoError(t, client.DeleteEndpoint(ctx, "squatter", "eth0"))
	})

	t.Run("GC keeps valid attachments and removes the rest", func(t *testing.T) {
		res2, err := n.add(t, pod2)
		require.NoError(t, err)
		require.NoError(t, n.gc(t, pod1))
		n.assertGone(t, pod2)
		_, err = client.GetEndpoint(ctx, pod2.id, "eth0")
		assert.ErrorIs(t, err, api.ErrNotFound)
		require.NoError(t, n.check(t, pod1, res1), "GC left pod1 alone")
		assert.Error(t, n.check(t, pod2, res2))
		require.NoError(t, n.del(t, pod2), "DEL after GC")
	})

	t.Run("DEL", func(t *testing.T) {
		require.NoError(t, n.del(t, pod1))
		n.assertGone(t, pod1)
		_, err := client.GetEndpoint(ctx, pod1.id, "eth0")
		assert.ErrorIs(t, err, api.ErrNotFound)
		require.NoError(t, n.del(t, pod1), "DEL twice")
		eps, err := client.ListEndpoints(ctx)
		require.NoError(t, err)
		assert.Empty(t, eps)
	})
}
