package tcpcrr

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/test/echoserver"
)

// Loopback only: a server and the load generator in this process.
func startServer(t *testing.T, name string, announce bool) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Serve(ln, name, announce) }()
	t.Cleanup(func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

func TestAsk(t *testing.T) {
	for _, announce := range []bool{false, true} {
		addr := startServer(t, "backend-a", announce)
		got, err := Ask(addr.String(), 2*time.Second)
		if err != nil || got != "backend-a" {
			t.Errorf("announce=%v: Ask = %q, %v; want backend-a", announce, got, err)
		}
	}
}

func TestAskRefused(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if got, err := Ask(addr, time.Second); err == nil {
		t.Errorf("Ask to a closed port answered %q", got)
	}
}

func TestRun(t *testing.T) {
	a, b := startServer(t, "a", false), startServer(t, "b", false)
	res, err := Run(Options{Targets: []netip.AddrPort{a, b}, Workers: 2, Warmup: 50 * time.Millisecond, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Transactions == 0 || res.TPS <= 0 || res.Errors != 0 {
		t.Fatalf("no clean transactions: %+v", res)
	}
	if res.P50Micros <= 0 || res.P99Micros < res.P50Micros {
		t.Errorf("latency percentiles p50=%v p99=%v", res.P50Micros, res.P99Micros)
	}
	if len(res.Targets) != 2 || res.Workers != 2 || res.DurationSec != 0.3 {
		t.Errorf("result echoes the options wrong: %+v", res)
	}
}

func TestRunCountsErrors(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	res, err := Run(Options{Targets: []netip.AddrPort{addr}, Workers: 1, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Transactions != 0 || res.Errors == 0 || !strings.Contains(res.FirstError, "connection refused") {
		t.Errorf("refused target: %+v", res)
	}
}

func TestRunOptions(t *testing.T) {
	if _, err := Run(Options{}); err == nil {
		t.Error("Run without targets succeeded")
	}
}

// With one worker, PickWorker uses only the first target; PickRandom draws
// every transaction's target, so a closed second target shows up as errors.
func TestRunPick(t *testing.T) {
	a := startServer(t, "a", false)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	targets := []netip.AddrPort{a, closed}
	res, err := Run(Options{Targets: targets, Pick: PickWorker, Workers: 1, Duration: 200 * time.Millisecond})
	if err != nil || res.Errors != 0 || res.Transactions == 0 {
		t.Fatalf("worker pick: %+v, %v; want only the live first target", res, err)
	}
	res, err = Run(Options{Targets: targets, Pick: PickRandom, Workers: 1, Duration: 200 * time.Millisecond})
	if err != nil || res.Errors == 0 || res.Transactions == 0 {
		t.Fatalf("random pick: %+v, %v; want both targets used", res, err)
	}
}

// UDP_RR against two ServeUDP servers on loopback; a closed target shows up
// as errors, not transactions.
func TestRunUDP(t *testing.T) {
	var addrs []netip.AddrPort
	for _, name := range []string{"a", "b"} {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		go ServeUDP(pc, name)
		addrs = append(addrs, netip.MustParseAddrPort(pc.LocalAddr().String()))
	}
	res, err := Run(Options{Proto: UDPRR, Targets: addrs, Workers: 2, Duration: 200 * time.Millisecond})
	if err != nil || res.Transactions == 0 || res.Errors != 0 || res.Proto != UDPRR {
		t.Fatalf("UDP_RR: %+v, %v", res, err)
	}
	c, err := net.Dial("udp4", addrs[1].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if name, err := echoserver.AskUDP(c, time.Second); err != nil || name != "b" {
		t.Errorf("AskUDP = %q, %v; want b", name, err)
	}

	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := netip.MustParseAddrPort(pc.LocalAddr().String())
	pc.Close()
	res, err = Run(Options{Proto: UDPRR, Targets: []netip.AddrPort{closed}, Workers: 1, Duration: 100 * time.Millisecond, Timeout: 50 * time.Millisecond})
	if err != nil || res.Transactions != 0 || res.Errors == 0 {
		t.Errorf("UDP_RR to a closed port: %+v, %v", res, err)
	}
}

// A TCP socket bound to the address it connects to is connected to itself
// (simultaneous open): selfConnected says so, and not of a socket
// connected to a server.
func TestSelfConnected(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	self := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*unix.SockaddrInet4).Port))
	if err := connect(fd, &unix.SockaddrInet4{Port: int(self.Port()), Addr: self.Addr().As4()}, time.Second); err != nil {
		t.Fatalf("self-connect: %v", err)
	}
	if !selfConnected(fd, self) {
		t.Error("a socket connected to itself is not reported")
	}

	srv := startServer(t, "srv", false)
	c, err := net.Dial("tcp4", srv.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got bool
	if err := raw.Control(func(cfd uintptr) { got = selfConnected(int(cfd), srv) }); err != nil {
		t.Fatal(err)
	}
	if got {
		t.Error("a socket connected to a server is reported as connected to itself")
	}
}
