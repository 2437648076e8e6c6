package datapath_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/test/harness"
)

// The socket-LB tests re-execute the test binary as a client inside a test
// cgroup (socket hooks run only for processes in the cgroup). The child reads
// its job from the environment and prints one JSON sockResult per attempt.
const (
	sockClientEnv   = "SLUICE_SOCKLB_CLIENT" // "tcp", "udp" (sendto), "udpconn" (connect, send) or "connect" (timed connect only)
	sockClientAddr  = "SLUICE_SOCKLB_ADDR"   // ip:port to reach
	sockClientCount = "SLUICE_SOCKLB_COUNT"  // attempts
	sockClientGate  = "SLUICE_SOCKLB_GATE"   // set: read a line from stdin before the first attempt
)

// sockResult is what one client attempt saw.
type sockResult struct {
	Reply    string `json:"reply,omitempty"`    // the name the server announced
	Peer     string `json:"peer,omitempty"`     // getpeername (TCP) or recvfrom source (UDP)
	Errno    int    `json:"errno,omitempty"`    // errno of the failed call
	Call     string `json:"call,omitempty"`     // which call failed
	Duration int64  `json:"duration,omitempty"` // ns from socket to reply or failure ("connect": of connect() alone)
}

func sockClientMain() int {
	ap, err := netip.ParseAddrPort(os.Getenv(sockClientAddr))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	n, _ := strconv.Atoi(os.Getenv(sockClientCount))
	if os.Getenv(sockClientGate) != "" {
		if _, err := fmt.Scanln(); err != nil {
			return 2
		}
	}
	enc := json.NewEncoder(os.Stdout)
	for i := 0; i < max(n, 1); i++ {
		var r sockResult
		start := time.Now()
		switch os.Getenv(sockClientEnv) {
		case "udp":
			r = udpAttempt(ap)
		case "udpconn":
			r = udpConnAttempt(ap)
		case "connect":
			r = connectAttempt(ap) // times connect() alone
		default:
			r = tcpAttempt(ap)
		}
		if r.Duration == 0 {
			r.Duration = int64(time.Since(start))
		}
		if err := enc.Encode(r); err != nil {
			return 2
		}
	}
	return 0
}

func fail(call string, err error) sockResult {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		errno = syscall.EIO
	}
	return sockResult{Call: call, Errno: int(errno)}
}

func sockaddr(sa unix.Sockaddr) string {
	if s4, ok := sa.(*unix.SockaddrInet4); ok {
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), uint16(s4.Port)).String()
	}
	return fmt.Sprintf("%v", sa)
}

func newSocket(typ int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	tv := unix.Timeval{Sec: 3}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// readRetry reads again when a signal interrupted the read: a socket with
// SO_RCVTIMEO is not restarted after the Go runtime's preemption signal.
func readRetry(fd int, buf []byte) (int, error) {
	for {
		n, err := unix.Read(fd, buf)
		if !errors.Is(err, syscall.EINTR) {
			return n, err
		}
	}
}

// tcpAttempt connects, reads getpeername and the server's first line.
func tcpAttempt(ap netip.AddrPort) sockResult {
	fd, err := newSocket(unix.SOCK_STREAM)
	if err != nil {
		return fail("socket", err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}); err != nil {
		return fail("connect", err)
	}
	peer, err := unix.Getpeername(fd)
	if err != nil {
		return fail("getpeername", err)
	}
	var line []byte
	buf := make([]byte, 64)
	for !strings.Contains(string(line), "\n") {
		n, err := readRetry(fd, buf)
		if err != nil {
			return fail("read", err)
		}
		if n == 0 {
			return fail("read", syscall.ECONNRESET)
		}
		line = append(line, buf[:n]...)
	}
	return sockResult{Peer: sockaddr(peer), Reply: strings.TrimSpace(string(line))}
}

// udpAttempt sends one datagram with sendto on an unconnected socket and
// reads the reply with recvfrom.
func udpAttempt(ap netip.AddrPort) sockResult {
	fd, err := newSocket(unix.SOCK_DGRAM)
	if err != nil {
		return fail("socket", err)
	}
	defer unix.Close(fd)
	if err := unix.Sendto(fd, []byte("?"), 0, &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}); err != nil {
		return fail("sendto", err)
	}
	buf := make([]byte, 1500)
	var (
		n    int
		from unix.Sockaddr
	)
	for err = syscall.EINTR; errors.Is(err, syscall.EINTR); {
		n, from, err = unix.Recvfrom(fd, buf, 0)
	}
	if err != nil {
		return fail("recvfrom", err)
	}
	return sockResult{Peer: sockaddr(from), Reply: strings.TrimSpace(string(buf[:n]))}
}

// udpConnAttempt connects a UDP socket, sends one datagram and reads the
// reply (getpeername shows the peer).
func udpConnAttempt(ap netip.AddrPort) sockResult {
	fd, err := newSocket(unix.SOCK_DGRAM)
	if err != nil {
		return fail("socket", err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}); err != nil {
		return fail("connect", err)
	}
	if _, err := unix.Write(fd, []byte("?")); err != nil {
		return fail("write", err)
	}
	peer, err := unix.Getpeername(fd)
	if err != nil {
		return fail("getpeername", err)
	}
	buf := make([]byte, 1500)
	n, err := readRetry(fd, buf)
	if err != nil {
		return fail("read", err)
	}
	return sockResult{Peer: sockaddr(peer), Reply: strings.TrimSpace(string(buf[:n]))}
}

// runSockClient runs count attempts of the client (network "tcp", "udp"
// or "udpconn") to addr inside ns and the cgroup cgroupPath.
func runSockClient(t testing.TB, ns *harness.NetNS, cgroupPath, network, addr string, count int) []sockResult {
	t.Helper()
	res, err := runSockClientGated(t, ns, cgroupPath, network, addr, count, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// runSockClientGated is runSockClient with before, when not nil, called
// with the client's pid before its first attempt. The client's own failure
// (it was killed, say) is returned.
func runSockClientGated(t testing.TB, ns *harness.NetNS, cgroupPath, network, addr string, count int, before func(pid int)) ([]sockResult, error) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The child (nsenter, then the test binary it execs) starts inside the
	// cgroup, so the socket hooks see every socket it opens.
	cmd, release, err := harness.CommandIn(ns, cgroupPath, self)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	cmd.Env = append(os.Environ(), sockClientEnv+"="+network, sockClientAddr+"="+addr, sockClientCount+"="+strconv.Itoa(count))
	var stderr, stdout strings.Builder
	cmd.Stderr, cmd.Stdout = &stderr, &stdout
	var gate io.WriteCloser
	if before != nil {
		cmd.Env = append(cmd.Env, sockClientGate+"=1")
		if gate, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("socket client: %v", err)
	}
	if before != nil {
		before(cmd.Process.Pid)
		fmt.Fprintln(gate)
		gate.Close()
	}
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signaled() {
			return nil, err
		}
		t.Fatalf("socket client: %v: %s", err, stderr.String())
	}
	out := stdout.String()
	var res []sockResult
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var r sockResult
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("decode client output %q: %v", out, err)
		}
		res = append(res, r)
	}
	if len(res) != count {
		t.Fatalf("client made %d attempts, want %d: %s", len(res), count, out)
	}
	return res, nil
}
