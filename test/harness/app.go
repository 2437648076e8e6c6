package harness

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/sluicenet/sluice/test/echoserver"
)

// ServeTCP listens on addr inside ns. Each connection first receives
// "<name>\n" and then has everything it sends echoed back, so a client can
// tell which backend answered and keep a long-lived stream going.
func ServeTCP(tb T, ns *NetNS, addr, name string) {
	tb.Helper()
	var (
		ln  net.Listener
		err error
	)
	ns.Do(tb, func() { ln, err = net.Listen("tcp4", addr) })
	if err != nil {
		tb.Fatalf("listen %s in %s: %v", addr, ns.Name, err)
	}
	tb.Cleanup(func() { ln.Close() })
	go echoserver.Serve(ln, echoserver.Announce(name))
}

// Echo connects from inside ns to a ServeTCP server at addr, sends size
// pseudo-random bytes while reading the echo, half-closes and reads to the
// end. It returns the server's name and fails unless exactly the bytes sent
// came back (compared by SHA-256) within timeout.
func Echo(ns *NetNS, addr string, size int, timeout time.Duration) (string, error) {
	c, err := Dial(ns, "tcp4", "", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	br := bufio.NewReader(c)
	name, err := br.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read server name: %w", err)
	}
	name = strings.TrimSuffix(name, "\n")
	payload := make([]byte, size)
	if _, err := rand.Read(payload); err != nil {
		return name, err
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	h := sha256.New()
	n, rerr := io.Copy(h, br)
	if err := <-werr; err != nil {
		return name, fmt.Errorf("send %d bytes to %s (%d echoed): %w", size, name, n, err)
	}
	if rerr != nil {
		return name, fmt.Errorf("read echo from %s after %d of %d bytes: %w", name, n, size, rerr)
	}
	if n != int64(size) {
		return name, fmt.Errorf("%s echoed %d bytes, sent %d", name, n, size)
	}
	if want := sha256.Sum256(payload); !bytes.Equal(h.Sum(nil), want[:]) {
		return name, fmt.Errorf("%s echoed %d bytes that differ from those sent", name, n)
	}
	return name, nil
}

// ServeUDP answers every datagram on addr inside ns with "<name>\n".
func ServeUDP(tb T, ns *NetNS, addr, name string) {
	tb.Helper()
	var (
		pc  net.PacketConn
		err error
	)
	ns.Do(tb, func() { pc, err = net.ListenPacket("udp4", addr) })
	if err != nil {
		tb.Fatalf("listen udp %s in %s: %v", addr, ns.Name, err)
	}
	tb.Cleanup(func() { pc.Close() })
	go echoserver.ServeUDP(pc, func([]byte) []byte { return []byte(name + "\n") })
}

// Dial opens a connection from inside ns. laddr may be "" (kernel's choice).
func Dial(ns *NetNS, network, laddr, raddr string, timeout time.Duration) (net.Conn, error) {
	var (
		c   net.Conn
		err error
	)
	d := net.Dialer{Timeout: timeout}
	if laddr != "" {
		switch network {
		case "udp4", "udp":
			d.LocalAddr, err = net.ResolveUDPAddr(network, laddr)
		default:
			d.LocalAddr, err = net.ResolveTCPAddr(network, laddr)
		}
		if err != nil {
			return nil, err
		}
	}
	if derr := ns.do(func() { c, err = d.Dial(network, raddr) }); derr != nil {
		return nil, derr
	}
	return c, err
}

// Ask connects from inside ns to addr over TCP and returns the name the
// server announced: an application reply, never just a completed handshake.
func Ask(ns *NetNS, addr string, timeout time.Duration) (string, error) {
	return AskFrom(ns, "", addr, timeout)
}

// AskFrom is Ask with a local address to bind.
func AskFrom(ns *NetNS, laddr, addr string, timeout time.Duration) (string, error) {
	c, err := Dial(ns, "tcp4", laddr, addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// AskUDP sends one datagram from inside ns and returns the reply.
func AskUDP(ns *NetNS, addr string, timeout time.Duration) (string, error) {
	c, err := Dial(ns, "udp4", "", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return echoserver.AskUDP(c, timeout)
}

// IsTimeout reports whether err is a network timeout.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
