package datapath_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/pin"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/test/harness"
)

// Socket-LB topology: one netns whose loopback carries two backend addresses
// with a TCP and a UDP server each. The frontend is a ClusterIP the netns has
// no route for: without translation connect/sendto fail with ENETUNREACH.
var (
	sockVIP   = netip.MustParseAddr("10.96.0.10")
	sockBack1 = netip.MustParseAddr("10.244.250.1")
	sockBack2 = netip.MustParseAddr("10.244.250.2")
)

const (
	protoTCP = 6
	protoUDP = 17
)

type sockLB struct {
	d  *datapath.Datapath
	ns *harness.NetNS
	cg string
}

func newSockLB(t *testing.T) *sockLB {
	t.Helper()
	harness.RequirePrivileged(t)
	harness.Blackhole(t)
	s := &sockLB{ns: harness.NewNetNS(t, "sl-sock-"), cg: harness.Cgroup(t)}
	for i, a := range []netip.Addr{sockBack1, sockBack2} {
		s.ns.Run(t, "ip", "addr", "add", a.String()+"/32", "dev", "lo")
		name := []string{"backend-1", "backend-2"}[i]
		harness.ServeTCP(t, s.ns, netip.AddrPortFrom(a, 8080).String(), name)
		harness.ServeUDP(t, s.ns, netip.AddrPortFrom(a, 5353).String(), name)
	}
	return s
}

// service programs fe with backends 1 (sockBack1) and 2 (sockBack2) on port.
func programService(t *testing.T, d *datapath.Datapath, fe lbmap.Frontend, port uint16, flags lbmap.Flags, ids ...uint32) {
	t.Helper()
	addrs := map[uint32]netip.Addr{1: sockBack1, 2: sockBack2}
	for _, id := range ids {
		require.NoError(t, d.LB().UpsertBackend(id, lbmap.Backend{Addr: addrs[id], Port: port, Proto: fe.Proto}))
	}
	require.NoError(t, d.LB().UpsertRevNAT(7, fe))
	require.NoError(t, d.LB().UpsertService(fe, lbmap.Service{RevNATID: 7, Flags: flags, AffinityTimeout: time.Hour, Backends: ids}))
}

func (s *sockLB) loadUnpinned(t *testing.T) {
	t.Helper()
	d := progtest.Load(t, harness.BPFFS(t), datapath.Options{})
	require.NoError(t, d.SocketLB().Attach(s.cg))
	t.Cleanup(func() { assert.NoError(t, d.SocketLB().Detach()) })
	s.d = d
}

func TestPrivilegedSocketLBTCP(t *testing.T) {
	s := newSockLB(t)
	s.loadUnpinned(t)
	fe := lbmap.Frontend{Addr: sockVIP, Port: 80, Proto: protoTCP}
	programService(t, s.d, fe, 8080, 0, 1, 2)

	const n = 30
	seen := map[string]int{}
	for _, r := range runSockClient(t, s.ns, s.cg, "tcp", "10.96.0.10:80", n) {
		require.Empty(t, r.Call, "attempt failed in %s: %v", r.Call, syscall.Errno(r.Errno))
		assert.Equal(t, "10.96.0.10:80", r.Peer, "getpeername shows the frontend")
		seen[r.Reply]++
	}
	t.Logf("replies: %v", seen)
	assert.Len(t, seen, 2, "both backends answered: %v", seen)
	assert.Equal(t, n, seen["backend-1"]+seen["backend-2"])

	c, err := s.d.SockMetrics().Counters()
	require.NoError(t, err)
	assert.Equal(t, uint64(n), c[metricsmap.SockConnectTranslated])
	assert.GreaterOrEqual(t, c[metricsmap.SockRevTranslated], uint64(n))
	assert.Zero(t, c[metricsmap.SockNoBackend])
}

func TestPrivilegedSocketLBUDP(t *testing.T) {
	s := newSockLB(t)
	s.loadUnpinned(t)
	fe := lbmap.Frontend{Addr: sockVIP, Port: 53, Proto: protoUDP}
	programService(t, s.d, fe, 5353, 0, 1, 2)

	const n = 30
	seen := map[string]int{}
	for _, r := range runSockClient(t, s.ns, s.cg, "udp", "10.96.0.10:53", n) {
		require.Empty(t, r.Call, "attempt failed in %s: %v", r.Call, syscall.Errno(r.Errno))
		assert.Equal(t, "10.96.0.10:53", r.Peer, "recvfrom shows the frontend as source")
		seen[r.Reply]++
	}
	t.Logf("replies: %v", seen)
	assert.Len(t, seen, 2, "both backends answered: %v", seen)

	c, err := s.d.SockMetrics().Counters()
	require.NoError(t, err)
	assert.Equal(t, uint64(n), c[metricsmap.SockSendmsgTranslated])
}

func TestPrivilegedSocketLBNoBackend(t *testing.T) {
	s := newSockLB(t)
	s.loadUnpinned(t)
	programService(t, s.d, lbmap.Frontend{Addr: sockVIP, Port: 80, Proto: protoTCP}, 8080, 0)
	programService(t, s.d, lbmap.Frontend{Addr: sockVIP, Port: 53, Proto: protoUDP}, 5353, 0)

	tcp := runSockClient(t, s.ns, s.cg, "tcp", "10.96.0.10:80", 1)[0]
	assert.Equal(t, "connect", tcp.Call)
	assert.Equal(t, syscall.ECONNREFUSED, syscall.Errno(tcp.Errno), "got %v", syscall.Errno(tcp.Errno))
	udp := runSockClient(t, s.ns, s.cg, "udp", "10.96.0.10:53", 1)[0]
	assert.Equal(t, "sendto", udp.Call)
	assert.Equal(t, syscall.ECONNREFUSED, syscall.Errno(udp.Errno), "got %v", syscall.Errno(udp.Errno))
	t.Logf("refused after %v (TCP), %v (UDP), socket() included", time.Duration(tcp.Duration), time.Duration(udp.Duration))

	c, err := s.d.SockMetrics().Counters()
	require.NoError(t, err)
	assert.Equal(t, uint64(2), c[metricsmap.SockNoBackend])

	// Local-only with no local backend is refused the same way.
	require.NoError(t, s.d.LB().UpsertService(lbmap.Frontend{Addr: sockVIP, Port: 80, Proto: protoTCP},
		lbmap.Service{RevNATID: 7, Flags: lbmap.FlagLocalOnly}))
	tcp = runSockClient(t, s.ns, s.cg, "tcp", "10.96.0.10:80", 1)[0]
	assert.Equal(t, syscall.ECONNREFUSED, syscall.Errno(tcp.Errno), "got %v", syscall.Errno(tcp.Errno))
}

func TestPrivilegedSocketLBAffinity(t *testing.T) {
	s := newSockLB(t)
	s.loadUnpinned(t)
	fe := lbmap.Frontend{Addr: sockVIP, Port: 80, Proto: protoTCP}
	programService(t, s.d, fe, 8080, lbmap.FlagAffinity, 1, 2)

	// The socket hooks key affinity by network namespace (the pod).
	seen := map[string]int{}
	for _, r := range runSockClient(t, s.ns, s.cg, "tcp", "10.96.0.10:80", 10) {
		require.Empty(t, r.Call, "attempt failed in %s: %v", r.Call, syscall.Errno(r.Errno))
		seen[r.Reply]++
	}
	assert.Len(t, seen, 1, "every connection of one client went to one backend: %v", seen)
}

// A NodePort (wildcard frontend) is translated by the socket hooks when the
// socket addresses an address of the node, loopback included: a host
// process on the node reaches it at its own address, and getpeername shows
// that address. Other addresses on that port are left alone, and so is an
// exact-address frontend flagged NodePort (the agent writes none).
func TestPrivilegedSocketLBNodePort(t *testing.T) {
	s := newSockLB(t)
	s.loadUnpinned(t)
	nodeIP := netip.MustParseAddr("10.244.250.9")
	s.ns.Run(t, "ip", "addr", "add", nodeIP.String()+"/32", "dev", "lo")
	require.NoError(t, s.d.LB().SetNodeAddrs([]netip.Addr{nodeIP, netip.MustParseAddr("127.0.0.1")}))

	// Backend ids 1 and 2 carry one port and protocol at a time: UDP last.
	for _, c := range []struct{ network, addr string }{
		{"tcp", "10.244.250.9:30080"}, {"tcp", "127.0.0.1:30080"}, {"udp", "10.244.250.9:30053"},
	} {
		fe := lbmap.Frontend{Addr: netip.IPv4Unspecified(), Port: 30080, Proto: protoTCP}
		port := uint16(8080)
		if c.network == "udp" {
			fe, port = lbmap.Frontend{Addr: netip.IPv4Unspecified(), Port: 30053, Proto: protoUDP}, 5353
		}
		programService(t, s.d, fe, port, lbmap.FlagNodePort, 1, 2)
		seen := map[string]int{}
		for _, r := range runSockClient(t, s.ns, s.cg, c.network, c.addr, 20) {
			require.Empty(t, r.Call, "%s %s: attempt failed in %s: %v", c.network, c.addr, r.Call, syscall.Errno(r.Errno))
			assert.Equal(t, c.addr, r.Peer, "the peer shows the node address the client used")
			seen[r.Reply]++
		}
		t.Logf("%s %s: %v", c.network, c.addr, seen)
		assert.Len(t, seen, 2, "%s %s: both backends answered: %v", c.network, c.addr, seen)
	}

	// Not an address of the node: untranslated (no route in the netns).
	programService(t, s.d, lbmap.Frontend{Addr: netip.IPv4Unspecified(), Port: 30080, Proto: protoTCP}, 8080, lbmap.FlagNodePort, 1, 2)
	r := runSockClient(t, s.ns, s.cg, "tcp", "10.96.0.10:30080", 1)[0]
	assert.Equal(t, syscall.ENETUNREACH, syscall.Errno(r.Errno), "connect untranslated: got %v", syscall.Errno(r.Errno))
	// An exact-address entry flagged NodePort is not a frontend.
	programService(t, s.d, lbmap.Frontend{Addr: sockVIP, Port: 80, Proto: protoTCP}, 8080, lbmap.FlagNodePort, 1)
	r = runSockClient(t, s.ns, s.cg, "tcp", "10.96.0.10:80", 1)[0]
	assert.Equal(t, syscall.ENETUNREACH, syscall.Errno(r.Errno), "connect untranslated: got %v", syscall.Errno(r.Errno))
	// The node address stops being one: the NodePort no longer answers there.
	require.NoError(t, s.d.LB().SetNodeAddrs([]netip.Addr{netip.MustParseAddr("127.0.0.1")}))
	r = runSockClient(t, s.ns, s.cg, "tcp", "10.244.250.9:30080", 1)[0]
	assert.Equal(t, syscall.ECONNREFUSED, syscall.Errno(r.Errno), "nothing listens on the node address itself: got %v", syscall.Errno(r.Errno))
}

// A pinned Datapath pins the socket-LB links; a new agent (Load again)
// updates them in place, AttachSocketLB again is idempotent, and
// DetachSocketLB really detaches.
func TestPrivilegedSocketLBPinnedRestart(t *testing.T) {
	s := newSockLB(t)
	root := filepath.Join(harness.BPFFS(t), "sluice")
	d1, err := datapath.Load(root, datapath.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { d1.Close() })
	require.NoError(t, d1.SocketLB().Attach(s.cg))
	t.Cleanup(func() { datapath.Unpin(root) })
	fe := lbmap.Frontend{Addr: sockVIP, Port: 80, Proto: protoTCP}
	programService(t, d1, fe, 8080, 0, 1)
	require.NoError(t, d1.Close())

	ask := func() sockResult {
		t.Helper()
		return runSockClient(t, s.ns, s.cg, "tcp", "10.96.0.10:80", 1)[0]
	}
	r := ask()
	assert.Equal(t, "backend-1", r.Reply, "links outlive the loader: %+v", r)

	d2, err := datapath.Load(root, datapath.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { d2.Close() })
	for _, h := range pin.CgroupHooks {
		l, err := link.LoadPinnedLink(pin.CgroupLinkPath(root, h.Hook), nil)
		require.NoError(t, err, h.Hook)
		info, err := l.Info()
		l.Close()
		require.NoError(t, err)
		pinned, err := loadPinnedProgID(pin.ProgPath(root, h.Prog))
		require.NoError(t, err)
		assert.Equal(t, pinned, info.Program, "%s link runs the new program", h.Hook)
	}
	r = ask()
	assert.Equal(t, "backend-1", r.Reply, "maps survived the restart: %+v", r)

	require.NoError(t, d2.SocketLB().Attach(s.cg), "attach again updates in place")
	assert.Equal(t, "backend-1", ask().Reply)

	require.NoError(t, d2.SocketLB().Detach())
	_, err = os.Stat(pin.CgroupLinkPath(root, "connect4"))
	assert.ErrorIs(t, err, os.ErrNotExist)
	r = ask()
	assert.Equal(t, syscall.ENETUNREACH, syscall.Errno(r.Errno), "detached: connect is not translated: %+v", r)
}

func loadPinnedProgID(path string) (ebpf.ProgramID, error) {
	p, err := ebpf.LoadPinnedProgram(path, nil)
	if err != nil {
		return 0, err
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return 0, err
	}
	id, _ := info.ID()
	return id, nil
}
