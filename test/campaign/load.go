package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netns"

	"github.com/sluicenet/sluice/test/bench/tcpcrr"
	"github.com/sluicenet/sluice/test/harness"
)

// failure is one failed transaction or stream, with when it happened.
type failure struct {
	at  time.Time
	err error
}

// crrLoad is TCP_CRR through a frontend: workers that each connect, ask
// the server's name (tcpcrr.Ask), check it is one of the backends and
// close, back to back, until stop.
type crrLoad struct {
	target   string
	names    map[string]bool
	stopped  atomic.Bool
	wg       sync.WaitGroup
	attempts atomic.Int64
	mu       sync.Mutex
	failures []failure
}

// startCRR starts workers in the clients' netns, spread over them (no
// clients: in the process's netns).
func startCRR(clients []*harness.Pod, workers int, target string, names map[string]bool) *crrLoad {
	l := &crrLoad{target: target, names: names}
	for w := range workers {
		var ns *harness.NetNS
		if len(clients) > 0 {
			ns = clients[w%len(clients)].NS
		}
		l.wg.Add(1)
		go l.worker(ns)
	}
	return l
}

// worker runs transactions in ns (nil: the process's own netns).
func (l *crrLoad) worker(ns *harness.NetNS) {
	defer l.wg.Done()
	if ns != nil {
		// The thread stays in the pod's netns and is never unlocked: Go
		// ends it with the goroutine instead of reusing it.
		runtime.LockOSThread()
		h, err := netns.GetFromPath(ns.Path())
		if err == nil {
			err = netns.Set(h)
			h.Close()
		}
		if err != nil {
			l.fail(fmt.Errorf("enter netns %s: %w", ns.Name, err))
			return
		}
	}
	for !l.stopped.Load() {
		l.attempts.Add(1)
		name, err := tcpcrr.Ask(l.target, 2*time.Second)
		if err == nil && !l.names[name] {
			err = fmt.Errorf("%s answered %q, not a backend's name", l.target, name)
		}
		if err != nil {
			l.fail(err)
		}
	}
}

func (l *crrLoad) fail(err error) {
	l.mu.Lock()
	l.failures = append(l.failures, failure{time.Now(), err})
	l.mu.Unlock()
}

// stop ends the load and returns the attempts and failures.
func (l *crrLoad) stop() (int64, []failure) {
	l.stopped.Store(true)
	l.wg.Wait()
	return l.attempts.Load(), l.failures
}

// stream is a long-lived connection to a frontend whose echo server gets
// random chunks and must return exactly them, in order, until stop.
type stream struct {
	c       net.Conn
	r       *bufio.Reader
	backend string
	bytes   atomic.Int64
	stopped atomic.Bool
	done    chan struct{}
	broken  *failure
}

// startStream connects from ns to target, reads the backend's announced
// name (one of names) and keeps the connection busy.
func startStream(ns *harness.NetNS, target string, names map[string]bool) (*stream, error) {
	c, err := harness.Dial(ns, "tcp4", "", target, 2*time.Second)
	if err != nil {
		return nil, err
	}
	s := &stream{c: c, r: bufio.NewReader(c), done: make(chan struct{})}
	c.SetDeadline(time.Now().Add(2 * time.Second))
	name, err := s.r.ReadString('\n')
	if err != nil || !names[strings.TrimSuffix(name, "\n")] {
		c.Close()
		return nil, fmt.Errorf("stream to %s: announced %q, %v", target, name, err)
	}
	s.backend = strings.TrimSuffix(name, "\n")
	go s.run()
	return s, nil
}

func (s *stream) run() {
	defer close(s.done)
	chunk := make([]byte, 1024)
	echo := make([]byte, len(chunk))
	for !s.stopped.Load() {
		for i := range chunk {
			chunk[i] = byte(rand.Uint32())
		}
		s.c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := s.c.Write(chunk); err != nil {
			s.broken = &failure{time.Now(), fmt.Errorf("write to %s after %d bytes: %w", s.backend, s.bytes.Load(), err)}
			return
		}
		if _, err := io.ReadFull(s.r, echo); err != nil {
			s.broken = &failure{time.Now(), fmt.Errorf("read echo of %s after %d bytes: %w", s.backend, s.bytes.Load(), err)}
			return
		}
		if !bytes.Equal(chunk, echo) {
			s.broken = &failure{time.Now(), fmt.Errorf("%s echoed other bytes after %d bytes", s.backend, s.bytes.Load())}
			return
		}
		s.bytes.Add(int64(len(chunk)))
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the stream and returns how it broke (nil if it did not). A
// stream must also have moved bytes.
func (s *stream) stop() *failure {
	s.stopped.Store(true)
	<-s.done
	s.c.Close()
	if s.broken == nil && s.bytes.Load() == 0 {
		return &failure{time.Now(), errors.New("stream to " + s.backend + " moved no bytes")}
	}
	return s.broken
}
