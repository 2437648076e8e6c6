package procsensor_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/test/harness"
)

// The tests run copies of the test binary (and of /bin/true) from their own
// directory; the copy reads its job from childEnv:
//
//	exit:N        exit with status N
//	sleep         block until killed
//	threads:N     start N threads that end one by one, then exit 3
//	tcp:ADDR      connect to a harness.ServeTCP server and read its name
//	udp:ADDR      connect a UDP socket to a harness.ServeUDP server, send, read
//	udpto:ADDR    the same with an unconnected socket (sendto)
//
//	waitopen:PATH read a line from stdin, then open PATH (and exit 0)
//	strs:LIST     openat each path of LIST (childOpenStrs)
//
// tcp and udp print the socket's local address.
const childEnv = "SLUICE_PROCSENSOR_CHILD"

func TestMain(m *testing.M) {
	if job := os.Getenv(childEnv); job != "" {
		os.Exit(childMain(job))
	}
	os.Exit(m.Run())
}

func childMain(job string) int {
	mode, arg, _ := strings.Cut(job, ":")
	switch mode {
	case "exit":
		n, _ := strconv.Atoi(arg)
		return n
	case "sleep":
		select {}
	case "threads":
		n, _ := strconv.Atoi(arg)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
				time.Sleep(time.Duration(i) * 10 * time.Millisecond)
			}()
		}
		wg.Wait()
		time.Sleep(50 * time.Millisecond)
		return 3
	case "udpto":
		return childSendTo(arg)
	case "waitopen":
		return childWaitOpen(arg)
	case "dirtyfd":
		return childDirtyFD(arg)
	case "strs":
		return childOpenStrs(arg)
	case "tcp", "udp":
		c, err := net.DialTimeout(mode+"4", arg, 5*time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if mode == "udp" {
			if _, err := c.Write([]byte("hi")); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("%s %s", c.LocalAddr(), buf[:n])
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown job", job)
	return 2
}

func childWaitOpen(path string) int {
	var line string
	fmt.Scanln(&line)
	f, err := os.Open(path)
	if err != nil {
		return 1
	}
	f.Close()
	return 0
}

func childSendTo(addr string) int {
	c, err := net.ListenUDP("udp4", nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	to, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	if _, err := c.WriteToUDP([]byte("hi"), to); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	n, _, err := c.ReadFromUDP(buf)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("%s %s", c.LocalAddr(), buf[:n])
	return 0
}

// sensorEnv is a loaded sensor with a collector of the events of the test's
// own processes: children of this test process, and their descendants.
type sensorEnv struct {
	s   *procsensor.Sensor
	dir string // world-readable directory holding the copied binaries

	mu     sync.Mutex
	cond   *sync.Cond
	events []procsensor.Event
	ours   map[uint32]bool // tgids started by the test (and descendants)
	errs   []error
}

func newSensorEnv(t *testing.T) *sensorEnv {
	t.Helper()
	harness.RequirePrivileged(t)
	return newSensorEnvIn(t, harness.BPFFS(t))
}

// newSensorEnvIn loads the sensor under bpffs/sluice (where a datapath the
// test loaded first keeps its maps).
func newSensorEnvIn(t *testing.T, bpffs string) *sensorEnv {
	t.Helper()
	root := filepath.Join(bpffs, "sluice")
	s, err := procsensor.Load(root, procsensor.Options{Stats: true})
	if err != nil {
		t.Fatalf("load sensor: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close sensor: %v", err)
		}
		// The links are pinned: unpin them so nothing keeps tracing.
		if err := procsensor.Unpin(root); err != nil {
			t.Errorf("unpin sensor: %v", err)
		}
	})
	e := &sensorEnv{s: s, ours: map[uint32]bool{uint32(os.Getpid()): true}}
	e.cond = sync.NewCond(&e.mu)
	e.dir, err = os.MkdirTemp("", "sluice-procsensor-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(e.dir) })
	if err := os.Chmod(e.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rd, err := s.Reader()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go e.collect(rd, done)
	t.Cleanup(func() {
		rd.Close()
		<-done
		e.mu.Lock()
		defer e.mu.Unlock()
		if len(e.errs) > 0 {
			t.Errorf("reader errors: %v", errors.Join(e.errs...))
		}
	})
	return e
}

// collect keeps the events of the test's processes; the others are dropped
// unread (the sensor sees the whole machine).
func (e *sensorEnv) collect(rd *procsensor.Reader, done chan struct{}) {
	defer close(done)
	for {
		ev, err := rd.Read()
		if errors.Is(err, os.ErrClosed) {
			return
		}
		e.mu.Lock()
		if err != nil {
			e.errs = append(e.errs, err)
		} else if e.keep(ev) {
			e.events = append(e.events, ev)
			e.cond.Broadcast()
		}
		e.mu.Unlock()
	}
}

func (e *sensorEnv) keep(ev procsensor.Event) bool {
	switch {
	case ev.Exec != nil:
		if e.ours[ev.Exec.Parent.TGID] {
			e.ours[ev.Exec.Key.TGID] = true
		}
		return e.ours[ev.Exec.Key.TGID] && ev.Exec.Key.TGID != uint32(os.Getpid())
	case ev.Fork != nil:
		if e.ours[ev.Fork.Parent.TGID] {
			e.ours[ev.Fork.Key.TGID] = true
			return true
		}
	case ev.Exit != nil:
		return e.ours[ev.Exit.Key.TGID]
	case ev.Connect != nil:
		return e.ours[ev.Connect.Key.TGID] && ev.Connect.Key.TGID != uint32(os.Getpid())
	case ev.Enforcement != nil:
		return e.ours[ev.Enforcement.Key.TGID]
	case ev.Syscall != nil:
		return e.ours[ev.Syscall.Key.TGID]
	}
	return false
}

// wait returns the collected events once match has accepted n of them, or
// fails after timeout.
func (e *sensorEnv) wait(t *testing.T, n int, timeout time.Duration, match func(procsensor.Event) bool) []procsensor.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() { e.mu.Lock(); e.cond.Broadcast(); e.mu.Unlock() })
	defer timer.Stop()
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		var got []procsensor.Event
		for _, ev := range e.events {
			if match(ev) {
				got = append(got, ev)
			}
		}
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) < n {
				t.Fatalf("%d of %d events after %v", len(got), n, timeout)
			}
			return got
		}
		e.cond.Wait()
	}
}

// events returns the collected events that match.
func (e *sensorEnv) matching(match func(procsensor.Event) bool) []procsensor.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var got []procsensor.Event
	for _, ev := range e.events {
		if match(ev) {
			got = append(got, ev)
		}
	}
	return got
}

// copyBin copies src into the test's directory as name (mode 0755).
func (e *sensorEnv) copyBin(t *testing.T, src, name string) string {
	t.Helper()
	dst := filepath.Join(e.dir, name)
	if err := harness.CopyExecutable(src, dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

// selfBin copies the test binary (the child jobs above) into the test's
// directory.
func (e *sensorEnv) selfBin(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return e.copyBin(t, self, "sensor-child")
}

// selfStartTicks returns this process's start time in clock ticks
// (/proc/self/stat field 22).
func selfStartTicks(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	v, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
