package datapath_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/test/harness"
)

// connectAttempt times connect() alone to ap (loopback in the client's
// namespace: the handshake completes inside the call) and closes the socket
// with a reset, so that no TIME_WAIT piles up over thousands of attempts.
func connectAttempt(ap netip.AddrPort) sockResult {
	fd, err := newSocket(unix.SOCK_STREAM)
	if err != nil {
		return fail("socket", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1}); err != nil {
		return fail("setsockopt", err)
	}
	start := time.Now()
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}); err != nil {
		return fail("connect", err)
	}
	return sockResult{Duration: max(int64(time.Since(start)), 1)}
}

// BenchmarkSocketLBConnect separates what the socket-LB hooks add to a
// connect(): b.N connects per case from a client process in a test cgroup
// (the handshake over loopback happens inside the call), reporting the
// median and p90 of connect() alone. Cases: no programs attached; programs
// attached and the pod IP dialled (the hooks' miss path: one service lookup,
// one NodePort bitmap check); programs attached and the ClusterIP dialled
// (lookup, backend pick, reverse-NAT entry for recvmsg/getpeername); both
// again with the client four cgroups below the one the programs are
// attached to, as a pod's container is below kubepods on a real node.
//
//	go test -run '^$' -bench BenchmarkSocketLBConnect -benchtime 20000x ./datapath/
func BenchmarkSocketLBConnect(b *testing.B) {
	harness.RequirePrivileged(b)
	harness.Blackhole(b)
	ns := harness.NewNetNS(b, "sl-conn-")
	for i, a := range []netip.Addr{sockBack1, sockBack2} {
		ns.Run(b, "ip", "addr", "add", a.String()+"/32", "dev", "lo")
		harness.ServeTCP(b, ns, netip.AddrPortFrom(a, 8080).String(), []string{"backend-1", "backend-2"}[i])
	}
	ns.Run(b, "sysctl", "-qw", "net.core.somaxconn=8192")
	bare, attached := harness.Cgroup(b), harness.Cgroup(b)
	nested := attached
	for _, c := range []string{"kubepods", "burstable", "pod", "container"} {
		dir := filepath.Join(nested, c)
		require.NoError(b, os.Mkdir(dir, 0o755))
		b.Cleanup(func() { os.Remove(dir) })
		nested = dir
	}
	d := progtest.Load(b, harness.BPFFS(b), datapath.Options{})
	require.NoError(b, d.SocketLB().Attach(attached))
	b.Cleanup(func() { d.SocketLB().Detach() })
	fe := lbmap.Frontend{Addr: sockVIP, Port: 80, Proto: protoTCP}
	for id, a := range map[uint32]netip.Addr{1: sockBack1, 2: sockBack2} {
		require.NoError(b, d.LB().UpsertBackend(id, lbmap.Backend{Addr: a, Port: 8080, Proto: protoTCP}))
	}
	require.NoError(b, d.LB().UpsertRevNAT(7, fe))
	require.NoError(b, d.LB().UpsertService(fe, lbmap.Service{RevNATID: 7, Backends: []uint32{1, 2}}))

	pod, svc := netip.AddrPortFrom(sockBack1, 8080).String(), netip.AddrPortFrom(sockVIP, 80).String()
	for _, c := range []struct{ name, cgroup, addr string }{
		{"pod-ip/no-programs", bare, pod},
		{"pod-ip/programs", attached, pod},
		{"service/programs", attached, svc},
		{"pod-ip/programs-nested4", nested, pod},
		{"service/programs-nested4", nested, svc},
	} {
		b.Run(c.name, func(b *testing.B) {
			res := runSockClient(b, ns, c.cgroup, "connect", c.addr, b.N)
			ds := make([]int64, 0, len(res))
			for _, r := range res {
				if r.Errno != 0 {
					b.Fatalf("%s failed: errno %d", r.Call, r.Errno)
				}
				ds = append(ds, r.Duration)
			}
			slices.Sort(ds)
			b.ReportMetric(float64(ds[len(ds)/2]), "connect-ns-p50")
			b.ReportMetric(float64(ds[len(ds)*9/10]), "connect-ns-p90")
		})
	}
}
