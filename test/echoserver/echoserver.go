// Package echoserver is the one server every test workload runs: a TCP
// accept loop with a per-connection protocol and a UDP responder. The
// in-process pods of the harness (harness.ServeTCP/ServeUDP), the e2e echo
// image (test/e2e/echo) and the TCP_CRR tool (test/bench/tcpcrr) all use it,
// each with the protocol its tests rely on: Announce, Lines, or tcpcrr's
// one-byte transaction.
package echoserver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Serve accepts connections on ln and runs handle on each in its own
// goroutine, closing the connection when handle returns. It returns nil once
// ln is closed; other accept errors (EMFILE and the like) back off instead of
// spinning.
func Serve(ln net.Listener, handle func(net.Conn)) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}

// Announce first writes "<name>\n", then echoes everything the client sends
// until it half-closes: a client learns which backend answered and can keep
// a long-lived stream going.
func Announce(name string) func(net.Conn) {
	return func(c net.Conn) {
		if _, err := io.WriteString(c, name+"\n"); err != nil {
			return
		}
		io.Copy(c, c)
	}
}

// Lines answers every line the client sends with "<name> <line>\n".
func Lines(name string) func(net.Conn) {
	return func(c net.Conn) {
		s := bufio.NewScanner(c)
		for s.Scan() {
			if _, err := fmt.Fprintf(c, "%s %s\n", name, s.Text()); err != nil {
				return
			}
		}
	}
}

// ServeUDP answers every datagram on pc with reply(payload) until pc is
// closed.
func ServeUDP(pc net.PacketConn, reply func(payload []byte) []byte) {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(reply(buf[:n]), from)
	}
}

// AskUDP is the client of a ServeUDP that names itself: it sends "?" on c
// (a connected UDP socket) and returns the reply without its newline,
// within timeout.
func AskUDP(c net.Conn, timeout time.Duration) (string, error) {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("?")); err != nil {
		return "", err
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(buf[:n]), "\n"), nil
}
