package daemon_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/daemon"
	"github.com/sluicenet/sluice/agent/deletequeue"
	"github.com/sluicenet/sluice/datapath/endpointmap"
	"github.com/sluicenet/sluice/datapath/pin"
	"github.com/sluicenet/sluice/test/harness"
)

// agent is a daemon running in-process, started inside a test netns.
type agent struct {
	d      *daemon.Daemon
	client *api.Client
	cancel context.CancelFunc
	done   chan error
}

func startAgent(t *testing.T, ns *harness.NetNS, cfg daemon.Config) *agent {
	t.Helper()
	var (
		d   *daemon.Daemon
		err error
	)
	// New runs inside the netns: the ip_forward sysctl and the interface
	// checks of restored endpoints apply there.
	ns.Do(t, func() { d, err = daemon.New(cfg) })
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	a := &agent{d: d, client: api.NewClient(d.SocketPath()), cancel: cancel, done: make(chan error, 1)}
	go func() { a.done <- d.Run(ctx) }()
	t.Cleanup(a.stop)
	return a
}

func (a *agent) stop() {
	a.cancel()
	if err := <-a.done; err != nil {
		a.done <- err
		return
	}
	a.done <- nil
}

// hostIf is a host-side interface (one end of a veth pair) in the test netns.
type hostIf struct {
	name  string
	index int
	mac   net.HardwareAddr
}

func addVeth(t *testing.T, ns *harness.NetNS, name string) hostIf {
	t.Helper()
	var (
		l   netlink.Link
		err error
	)
	ns.Do(t, func() {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}
		if err = netlink.LinkAdd(veth); err == nil {
			l, err = netlink.LinkByName(name)
		}
	})
	require.NoError(t, err)
	return hostIf{name: name, index: l.Attrs().Index, mac: l.Attrs().HardwareAddr}
}

func (d hostIf) endpoint(cid, ip string) api.Endpoint {
	return api.Endpoint{
		ContainerID: cid, IfName: "eth0", NetNS: "/var/run/netns/pod-" + cid, PodNamespace: "default", PodName: cid,
		IPv4: ip, MAC: "02:00:00:00:00:01", HostIfName: d.name, HostIfIndex: d.index, HostMAC: d.mac.String(),
	}
}

func mapEntries(t *testing.T, d *daemon.Daemon) map[string]endpointmap.Endpoint {
	t.Helper()
	eps, err := d.Datapath().Endpoints().List()
	require.NoError(t, err)
	out := make(map[string]endpointmap.Endpoint, len(eps))
	for _, e := range eps {
		out[e.IP.String()] = e
	}
	return out
}

func testLogger(t *testing.T) logrus.FieldLogger {
	log := logrus.New()
	log.SetOutput(testWriter{t})
	log.SetLevel(logrus.DebugLevel)
	return log
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// The agent serves endpoints into the BPF map, and a restarted agent restores
// them, drops those whose host interface is gone, applies the CNI delete
// queue and reconciles the map (removing strays). Stopping it keeps the pins.
func TestPrivilegedDaemonRestartRestoresAndReconciles(t *testing.T) {
	harness.RequirePrivileged(t)
	ns := harness.NewNetNS(t, "sluice-agent-")
	bpffs := harness.BPFFS(t)
	cfg := daemon.Config{
		BPFRoot:        filepath.Join(bpffs, "sluice"),
		RunDir:         filepath.Join(t.TempDir(), "run"),
		ResyncInterval: time.Hour,
		IPForward:      true,
		Log:            testLogger(t),
	}
	keep, gone := addVeth(t, ns, "sl-keep"), addVeth(t, ns, "sl-gone")
	lo := hostIf{name: "lo", index: 1, mac: net.HardwareAddr{0, 0, 0, 0, 0, 0}}
	ctx := context.Background()

	a := startAgent(t, ns, cfg)
	h, err := a.client.Healthz(ctx)
	require.NoError(t, err)
	assert.Equal(t, api.Health{Status: "ok", BPFRoot: cfg.BPFRoot}, h)
	fi, err := os.Stat(cfg.SocketPath())
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	var fwd []byte
	ns.Do(t, func() { fwd, err = os.ReadFile("/proc/sys/net/ipv4/ip_forward") })
	require.NoError(t, err)
	assert.Equal(t, "1", strings.TrimSpace(string(fwd)), "ip_forward set in the agent's netns")

	kept, err := a.client.PutEndpoint(ctx, keep.endpoint("keep", "10.244.0.10"))
	require.NoError(t, err)
	_, err = a.client.PutEndpoint(ctx, gone.endpoint("gone", "10.244.0.11"))
	require.NoError(t, err)
	_, err = a.client.PutEndpoint(ctx, lo.endpoint("queued", "10.244.0.12"))
	require.NoError(t, err)
	_, err = a.client.PutEndpoint(ctx, keep.endpoint("other", "10.244.0.10"))
	require.ErrorContains(t, err, "already used")

	entries := mapEntries(t, a.d)
	require.Len(t, entries, 3)
	e := entries["10.244.0.10"]
	assert.Equal(t, kept.ID, e.ID)
	assert.Equal(t, uint32(keep.index), e.Ifindex)
	assert.Equal(t, "02:00:00:00:00:01", e.MAC.String())
	assert.Equal(t, keep.mac.String(), e.NodeMAC.String())

	// Drift while the agent is down: a stray map entry, a deleted host
	// interface, and a DEL queued by the CNI plugin.
	require.NoError(t, a.d.Datapath().Endpoints().Upsert(endpointmap.Endpoint{
		IP: netip.MustParseAddr("10.244.9.9"), Ifindex: 99, ID: 999,
		MAC: net.HardwareAddr{2, 0, 0, 0, 0, 9}, NodeMAC: net.HardwareAddr{2, 0, 0, 0, 0, 9},
	}))
	a.stop()
	for _, h := range pin.PodHooks {
		assert.FileExists(t, pin.ProgPath(cfg.BPFRoot, h.Prog), "programs stay pinned after stop")
	}
	assert.NoFileExists(t, cfg.SocketPath())
	ns.Do(t, func() { err = netlink.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: gone.name}}) })
	require.NoError(t, err)
	require.NoError(t, deletequeue.Enqueue(cfg.DeleteQueueDir(), deletequeue.Entry{ContainerID: "queued", IfName: "eth0"}))

	a = startAgent(t, ns, cfg)
	eps, err := a.client.ListEndpoints(ctx)
	require.NoError(t, err)
	require.Len(t, eps, 1)
	assert.Equal(t, kept.ID, eps[0].ID)
	assert.Equal(t, "keep", eps[0].ContainerID)
	assert.Equal(t, kept.Created.Unix(), eps[0].Created.Unix())
	entries = mapEntries(t, a.d)
	assert.Len(t, entries, 1, "stray, gone and queued entries removed")
	assert.Contains(t, entries, "10.244.0.10")
	left, err := os.ReadDir(cfg.DeleteQueueDir())
	require.NoError(t, err)
	assert.Empty(t, left)

	// Periodic resync repairs drift too.
	require.NoError(t, a.d.Datapath().Endpoints().Delete(netip.MustParseAddr("10.244.0.10")))
	require.NoError(t, a.d.Resync())
	assert.Contains(t, mapEntries(t, a.d), "10.244.0.10")

	require.NoError(t, a.client.DeleteEndpoint(ctx, "keep", "eth0"))
	assert.Empty(t, mapEntries(t, a.d))
	states, err := os.ReadDir(cfg.EndpointsDir())
	require.NoError(t, err)
	assert.Empty(t, states)
	require.ErrorIs(t, a.client.DeleteEndpoint(ctx, "keep", "eth0"), api.ErrNotFound)
}

// A BPF root whose parent is not a bpffs is refused (only /sys/fs/bpf/<x> gets
// a bpffs mounted on demand).
func TestPrivilegedDaemonRequiresBPFFS(t *testing.T) {
	harness.RequirePrivileged(t)
	dir := t.TempDir()
	_, err := daemon.New(daemon.Config{BPFRoot: filepath.Join(dir, "sluice"), RunDir: filepath.Join(dir, "run"), Log: testLogger(t)})
	require.ErrorContains(t, err, "not on a bpf filesystem")
}

// A configuration New rejects (here two state sources) is rejected before
// anything is touched: no bpffs root or pin, no run dir, no program on the
// configured device, no sysctl written.
func TestPrivilegedDaemonBadConfigTouchesNothing(t *testing.T) {
	harness.RequirePrivileged(t)
	ns := harness.NewNetNS(t, "sluice-agent-")
	dev := addVeth(t, ns, "sl-dev0")
	dir := t.TempDir()
	cfg := daemon.Config{
		BPFRoot:      filepath.Join(harness.BPFFS(t), "sluice"),
		RunDir:       filepath.Join(dir, "run"),
		IPForward:    true,
		Devices:      []string{dev.name},
		NodeIP:       netip.MustParseAddr("192.0.2.1"),
		K8s:          true,
		ManifestsDir: filepath.Join(dir, "manifests"),
		Log:          testLogger(t),
	}
	var (
		fwdBefore, fwdAfter []byte
		err, rerr           error
	)
	ns.Do(t, func() {
		fwdBefore, rerr = os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		_, err = daemon.New(cfg)
	})
	require.NoError(t, rerr)
	require.EqualError(t, err, "choose one state source: Kubernetes or a manifests directory")

	assert.NoDirExists(t, cfg.BPFRoot, "nothing pinned")
	assert.NoDirExists(t, cfg.RunDir, "no run dir, socket or state file")
	ns.Do(t, func() {
		fwdAfter, rerr = os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		require.NoError(t, rerr)
		for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
			res, qerr := link.QueryPrograms(link.QueryOptions{Target: dev.index, Attach: at})
			require.NoError(t, qerr)
			assert.Empty(t, res.Programs, "no program attached to %s (%s)", dev.name, at)
		}
	})
	assert.Equal(t, string(fwdBefore), string(fwdAfter), "ip_forward untouched")
}
