package integration

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/test/harness"
)

// streamer keeps a TCP connection busy: it writes a chunk and reads the echo
// back in a loop, counting echoed bytes.
type streamer struct {
	echoed atomic.Int64
	failed atomic.Value // error
	done   chan struct{}
}

func startStream(t *testing.T, from *harness.Pod, addr string) *streamer {
	t.Helper()
	c, err := harness.Dial(from.NS, "tcp4", "", addr, timeout)
	require.NoError(t, err)
	s, _ := startStreamOn(t, c)
	return s
}

// startStreamOn reads the server's announced name from c and keeps c busy.
func startStreamOn(t *testing.T, c net.Conn) (*streamer, string) {
	t.Helper()
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(timeout))
	name, err := r.ReadString('\n')
	require.NoError(t, err)
	s := &streamer{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		chunk := make([]byte, 512)
		buf := make([]byte, len(chunk))
		for {
			c.SetDeadline(time.Now().Add(3 * time.Second))
			if _, err := c.Write(chunk); err != nil {
				s.failed.Store(err)
				return
			}
			if _, err := io.ReadFull(r, buf); err != nil {
				s.failed.Store(err)
				return
			}
			s.echoed.Add(int64(len(buf)))
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return s, strings.TrimSuffix(name, "\n")
}

// requireFlowing waits d and requires the stream to have moved bytes meanwhile.
func (s *streamer) requireFlowing(t *testing.T, d time.Duration, what string) {
	t.Helper()
	before := s.echoed.Load()
	time.Sleep(d)
	if err, _ := s.failed.Load().(error); err != nil {
		t.Fatalf("%s: stream broke: %v", what, err)
	}
	require.Greater(t, s.echoed.Load(), before, "%s: bytes keep flowing", what)
}

// Killing the agent (SIGKILL) and starting it again keeps the programs
// attached and a long-lived pod-to-pod connection flowing; the new agent
// adopts the pinned links and the endpoints.
func TestPrivilegedAgentRestart(t *testing.T) {
	node := harness.NewNode(t, harness.NodeOptions{})
	agent := node.StartAgent(t)
	a, b := node.AddPod(t, "a"), node.AddPod(t, "b")
	servePods(t, a, b)

	s := startStream(t, a, b.Addr(podPort))
	s.requireFlowing(t, 300*time.Millisecond, "before the restart")

	agent.Kill(t)
	s.requireFlowing(t, time.Second, "while the agent is down")
	requireReply(t, b.NS, a.Addr(podPort), "a") // new connections too

	node.StartAgent(t)
	s.requireFlowing(t, time.Second, "after the restart")

	eps, err := node.Client().ListEndpoints(context.Background())
	require.NoError(t, err)
	assert.Len(t, eps, 2, "the restarted agent restored its endpoints")
	assert.NotZero(t, count(t, a, "egress", "forward-local"), "counters survive the restart")
	// CHECK verifies the links run the newly pinned programs (link.Update).
	require.NoError(t, a.Check())
	require.NoError(t, b.Check())

	c := node.AddPod(t, "c")
	requireReply(t, c.NS, a.Addr(podPort), "a")
	s.requireFlowing(t, 200*time.Millisecond, "at the end")
}
