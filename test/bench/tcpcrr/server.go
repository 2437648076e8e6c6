// Package tcpcrr implements netperf's TCP_CRR transaction (connect, 1-byte
// request, 1-byte response, close) and UDP_RR transaction (a 1-byte
// datagram and its answer) as servers, a bounded load generator and a name
// query, for the crr command and the benchmark drivers.
package tcpcrr

import (
	"io"
	"net"
	"time"

	"github.com/sluicenet/sluice/test/echoserver"
)

// QueryByte is the request that is answered with the server's name.
const QueryByte = '?'

// connTimeout bounds every server-side connection.
const connTimeout = 10 * time.Second

// Serve accepts on ln until it is closed. Every connection gets 1 byte back
// for its 1-byte request, except QueryByte, answered with "<name>\n"; with
// announce, "<name>\n" is written first. Like netserver, it then waits for
// the client to close before closing, so TIME_WAIT stays on the client.
func Serve(ln net.Listener, name string, announce bool) error {
	return echoserver.Serve(ln, func(c net.Conn) { handle(c, name, announce) })
}

func handle(c net.Conn, name string, announce bool) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(connTimeout))
	if announce {
		if _, err := io.WriteString(c, name+"\n"); err != nil {
			return
		}
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return
	}
	resp := b[:]
	if b[0] == QueryByte {
		resp = []byte(name + "\n")
	}
	if _, err := c.Write(resp); err != nil {
		return
	}
	io.Copy(io.Discard, c)
}
