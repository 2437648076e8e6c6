package tcpcrr

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/test/echoserver"
)

// ServeUDP answers on pc until it is closed, netperf UDP_RR's server: every
// datagram gets one byte back, except QueryByte, answered with "<name>\n"
// (what echoserver.AskUDP and `crr ask --udp` read).
func ServeUDP(pc net.PacketConn, name string) {
	named, one := []byte(name+"\n"), []byte{'x'}
	echoserver.ServeUDP(pc, func(p []byte) []byte {
		if len(p) == 1 && p[0] == QueryByte {
			return named
		}
		return one
	})
}

// udpRR is one worker's UDP_RR state: a connected socket per target, kept
// across transactions (netperf's UDP_RR is one flow per worker), replaced
// after a lost or failed exchange so that a late reply is never counted for
// the next request.
type udpRR struct {
	fds     map[netip.AddrPort]int
	timeout time.Duration
}

func newUDPRR(timeout time.Duration) *udpRR {
	return &udpRR{fds: map[netip.AddrPort]int{}, timeout: timeout}
}

func (u *udpRR) close() {
	for _, fd := range u.fds {
		unix.Close(fd)
	}
}

func (u *udpRR) socket(target netip.AddrPort) (int, error) {
	if fd, ok := u.fds[target]; ok {
		return fd, nil
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	tv := unix.NsecToTimeval(u.timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("SO_RCVTIMEO: %w", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: int(target.Port()), Addr: target.Addr().As4()}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connect %s: %w", target, err)
	}
	if selfConnected(fd, target) {
		unix.Close(fd)
		return -1, fmt.Errorf("connect %s: the socket got the target's own address (no server there)", target)
	}
	u.fds[target] = fd
	return fd, nil
}

// transact sends 1 byte to target and reads the 1-byte answer.
func (u *udpRR) transact(target netip.AddrPort) error {
	fd, err := u.socket(target)
	if err != nil {
		return err
	}
	b := []byte{'x'}
	if _, err = retryEINTR(func() (int, error) { return unix.Write(fd, b) }); err != nil {
		err = fmt.Errorf("send to %s: %w", target, err)
	} else {
		var n int
		n, err = retryEINTR(func() (int, error) { return unix.Read(fd, b) })
		switch {
		case err != nil:
			err = fmt.Errorf("receive from %s: %w", target, err)
		case n != 1:
			err = fmt.Errorf("receive from %s: %d bytes, want 1", target, n)
		}
	}
	if err != nil {
		unix.Close(fd)
		delete(u.fds, target)
	}
	return err
}
