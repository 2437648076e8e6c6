package datapath_test

import (
	"encoding/json"
	"errors"
	"fmt"
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
	sockClientEnv   = "SLUICE_SOCKLB_CLIENT" // "tcp" or "udp"
	sockClientAddr  = "SLUICE_SOCKLB_ADDR"   // ip:port to reach
	sockClientCount = "SLUICE_SOCKLB_COUNT"  // attempts
)

// sockResult is what one client attempt saw.
type sockResult struct {
	Reply    string `json:"reply,omitempty"`    // the name the server announced
	Peer     string `json:"peer,omitempty"`     // getpeername (TCP) or recvfrom source (UDP)
	Errno    int    `json:"errno,omitempty"`    // errno of the failed call
	Call     string `json:"call,omitempty"`     // which call failed
	Duration int64  `json:"duration,omitempty"` // ns from socket to reply or failure
}

func sockClientMain() int {
	ap, err := netip.ParseAddrPort(os.Getenv(sockClientAddr))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	n, _ := strconv.Atoi(os.Getenv(sockClientCount))
	enc := json.NewEncoder(os.Stdout)
	for i := 0; i < max(n, 1); i++ {
		var r sockResult
		start := time.Now()
		if os.Getenv(sockClientEnv) == "udp" {
			r = udpAttempt(ap)
		} else {
			r = tcpAttempt(ap)
		}
		r.Duration = int64(time.Since(start))
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
		n, err := unix.Read(fd, buf)
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
	n, from, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return fail("recvfrom", err)
	}
	return sockResult{Peer: sockaddr(from), Reply: strings.TrimSpace(string(buf[:n]))}
}

// runSockClient runs count attempts of the client (network "tcp" or "udp")
// to addr inside ns and the cgroup cgroupPath.
func runSockClient(t *testing.T, ns *harness.NetNS, cgroupPath, network, addr string, count int) []sockResult {
	t.Helper()
	cg, err := os.Open(cgroupPath)
	if err != nil {
		t.Fatalf("open cgroup: %v", err)
	}
	defer cg.Close()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := ns.Command(self)
	cmd.Env = append(os.Environ(), sockClientEnv+"="+network, sockClientAddr+"="+addr, sockClientCount+"="+strconv.Itoa(count))
	// The child (nsenter, then the test binary it execs) starts inside the
	// cgroup, so the socket hooks see every socket it opens.
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		errors.As(err, &ee)
		t.Fatalf("socket client: %v: %s", err, stderr.String())
	}
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
	return res
}
