package echoserver_test

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/test/echoserver"
)

// serve runs handle on a loopback listener and returns its address.
func serve(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- echoserver.Serve(ln, handle) }()
	t.Cleanup(func() {
		ln.Close()
		select {
		case err := <-done:
			assert.NoError(t, err, "Serve returns nil once the listener is closed")
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after the listener closed")
		}
	})
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	return c
}

func TestAnnounce(t *testing.T) {
	c := dial(t, serve(t, echoserver.Announce("backend-1")))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "backend-1\n", line, "the name comes first, unasked")
	_, err = io.WriteString(c, "hello\x00world")
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	rest, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.Equal(t, "hello\x00world", string(rest), "bytes echoed as sent, then closed")
}

func TestLines(t *testing.T) {
	c := dial(t, serve(t, echoserver.Lines("pod-a")))
	br := bufio.NewReader(c)
	for _, msg := range []string{"ping", "two words", ""} {
		_, err := io.WriteString(c, msg+"\n")
		require.NoError(t, err)
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, "pod-a "+msg+"\n", line)
	}
}

func TestServeUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		echoserver.ServeUDP(pc, func(p []byte) []byte { return append([]byte("me "), p...) })
		close(done)
	}()
	c, err := net.Dial("udp4", pc.LocalAddr().String())
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Write([]byte("hi"))
	require.NoError(t, err)
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "me hi", string(buf[:n]))
	pc.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ServeUDP did not return after close")
	}
}
