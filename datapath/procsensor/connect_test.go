package procsensor_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/test/harness"
)

var (
	connVIP     = netip.MustParseAddr("10.96.0.10")
	connBackend = netip.MustParseAddr("10.244.250.1")
)

// Connections a process opens, from a test netns and a test cgroup with the
// socket LB attached: TCP (from the TCP state tracepoint) direct, through a
// service (OrigDst from the socket LB's reverse translation) and refused;
// UDP (from the socket-LB hooks) connected through a service and sendto
// direct.
func TestPrivilegedSensorConnect(t *testing.T) {
	harness.RequirePrivileged(t)
	harness.Blackhole(t)
	bpffs := harness.BPFFS(t)
	// The datapath first: the sensor then finds its rev-NAT map pinned.
	d := progtest.Load(t, bpffs, datapath.Options{ProcessEvents: true})
	e := newSensorEnvIn(t, bpffs)
	ns := harness.NewNetNS(t, "sl-psen-")
	cg := harness.Cgroup(t)
	require.NoError(t, d.SocketLB().Attach(cg))
	t.Cleanup(func() { assert.NoError(t, d.SocketLB().Detach()) })
	ns.Run(t, "ip", "addr", "add", connBackend.String()+"/32", "dev", "lo")
	harness.ServeTCP(t, ns, netip.AddrPortFrom(connBackend, 8080).String(), "backend-1")
	harness.ServeUDP(t, ns, netip.AddrPortFrom(connBackend, 5353).String(), "backend-1")
	service := func(id uint32, fe lbmap.Frontend, port uint16) {
		require.NoError(t, d.LB().UpsertBackend(id, lbmap.Backend{Addr: connBackend, Port: port, Proto: fe.Proto}))
		require.NoError(t, d.LB().UpsertRevNAT(uint16(id), fe))
		require.NoError(t, d.LB().UpsertService(fe, lbmap.Service{RevNATID: uint16(id), Backends: []uint32{id}}))
	}
	service(1, lbmap.Frontend{Addr: connVIP, Port: 80, Proto: unix.IPPROTO_TCP}, 8080)
	service(2, lbmap.Frontend{Addr: connVIP, Port: 53, Proto: unix.IPPROTO_UDP}, 5353)
	var nsSt unix.Stat_t
	require.NoError(t, unix.Stat(ns.Path(), &nsSt))
	bin := e.selfBin(t)

	// run runs the child job in the netns and cgroup and returns its pid
	// and the local address it printed.
	run := func(job string, ok bool) (int, netip.AddrPort) {
		cmd, release, err := harness.CommandIn(ns, cg, bin, "-test.run=^$")
		require.NoError(t, err)
		defer release()
		cmd.Env = []string{childEnv + "=" + job}
		out, err := cmd.Output()
		if !ok {
			require.Error(t, err, job)
			return cmd.Process.Pid, netip.AddrPort{}
		}
		require.NoError(t, err, job)
		local, reply, _ := strings.Cut(string(out), " ")
		assert.Equal(t, "backend-1", strings.TrimSpace(reply), job)
		return cmd.Process.Pid, netip.MustParseAddrPort(local)
	}
	connectOf := func(pid int) *procsensor.Connect {
		evs := e.wait(t, 1, 10*time.Second, func(ev procsensor.Event) bool {
			return ev.Connect != nil && ev.Connect.Key.TGID == uint32(pid)
		})
		assert.Len(t, evs, 1)
		c := evs[0].Connect
		assert.NotZero(t, c.Cookie)
		assert.Equal(t, uint32(nsSt.Ino), c.NetNS)
		x := e.wait(t, 1, 10*time.Second, execOf(pid))
		assert.Equal(t, x[len(x)-1].Exec.Key, c.Key, "connect and exec name one process")
		return c
	}
	backendTCP := netip.AddrPortFrom(connBackend, 8080)
	backendUDP := netip.AddrPortFrom(connBackend, 5353)

	pid, local := run("tcp:"+backendTCP.String(), true)
	c := connectOf(pid)
	assert.Equal(t, procsensor.Connect{Time: c.Time, Key: c.Key, Proto: unix.IPPROTO_TCP, Src: local,
		Dst: backendTCP, NetNS: c.NetNS, Cookie: c.Cookie}, *c, "direct")

	pid, local = run("tcp:10.96.0.10:80", true)
	c = connectOf(pid)
	assert.Equal(t, procsensor.Connect{Time: c.Time, Key: c.Key, Proto: unix.IPPROTO_TCP, Src: local,
		Dst: backendTCP, OrigDst: netip.MustParseAddrPort("10.96.0.10:80"), NetNS: c.NetNS, Cookie: c.Cookie}, *c, "service")

	pid, _ = run("tcp:10.244.250.1:9", false)
	c = connectOf(pid)
	assert.True(t, c.Failed, "refused")
	assert.Equal(t, netip.MustParseAddrPort("10.244.250.1:9"), c.Dst)

	pid, _ = run("udp:10.96.0.10:53", true)
	c = connectOf(pid)
	assert.Equal(t, uint8(unix.IPPROTO_UDP), c.Proto)
	assert.Equal(t, backendUDP, c.Dst)
	assert.Equal(t, netip.MustParseAddrPort("10.96.0.10:53"), c.OrigDst)

	pid, _ = run("udpto:"+backendUDP.String(), true)
	c = connectOf(pid)
	assert.Equal(t, uint8(unix.IPPROTO_UDP), c.Proto)
	assert.Equal(t, backendUDP, c.Dst)
	assert.False(t, c.OrigDst.IsValid(), "not a service")
	t.Logf("UDP source at sendmsg: %v", c.Src)

	st, err := e.s.ProgramStats()
	require.NoError(t, err)
	t.Logf("%s: %d runs, %v/run", procsensor.HookConnect, st[procsensor.HookConnect].RunCount, st[procsensor.HookConnect].PerRun())
}
