package server_test

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/agent/server"
)

// inotifyEvents drains fd (non-blocking) and returns the events' masks by
// name.
func inotifyEvents(t *testing.T, fd int) map[string][]uint32 {
	t.Helper()
	out := map[string][]uint32{}
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EAGAIN) {
			return out
		}
		require.NoError(t, err)
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			name = bytes.TrimRight(name, "\x00")
			out[string(name)] = append(out[string(name)], ev.Mask)
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

// TestListenSocketNeverLoose binds the socket many times under umask 0 (so a
// socket bound in place would be world-connectable until chmod) and checks
// that the socket only ever appears at its path by rename, already 0600: no
// create or attribute change at the path (inotify), and no other mode seen
// by a concurrent observer.
func TestListenSocketNeverLoose(t *testing.T) {
	old := unix.Umask(0)
	t.Cleanup(func() { unix.Umask(old) })
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.sock")

	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fd) })
	_, err = unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_ATTRIB|unix.IN_MOVED_TO)
	require.NoError(t, err)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var loose []os.FileMode
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if fi, err := os.Lstat(path); err == nil && fi.Mode() != os.ModeSocket|0o600 {
				loose = append(loose, fi.Mode())
			}
		}
	}()

	const rounds = 300
	moved := 0
	for i := 0; i < rounds; i++ {
		ln, err := server.Listen(path)
		require.NoError(t, err)
		fi, err := os.Lstat(path)
		require.NoError(t, err)
		require.Equal(t, os.ModeSocket|0o600, fi.Mode())
		require.Equal(t, uint32(os.Geteuid()), fi.Sys().(*syscall.Stat_t).Uid)
		require.NoError(t, ln.Close())
		require.NoFileExists(t, path, "Close removes the socket")
		for _, mask := range inotifyEvents(t, fd)["agent.sock"] {
			require.Equal(t, uint32(unix.IN_MOVED_TO), mask, "the socket appears at its path only by rename, never bound or chmod'ed there")
			moved++
		}
	}
	close(stop)
	wg.Wait()
	assert.Equal(t, rounds, moved)
	assert.Empty(t, loose, "socket seen at its path with other modes")
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, left, "private bind directories removed")
}

func TestListenServesAfterRename(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "agent.sock")
	ln, err := server.Listen(path)
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("ok"))
			c.Close()
		}
	}()
	c, err := net.Dial("unix", path)
	require.NoError(t, err)
	defer c.Close()
	b := make([]byte, 2)
	_, err = c.Read(b)
	require.NoError(t, err)
	assert.Equal(t, "ok", string(b))
}

// TestListenPathTooLong: a path that fits sun_path but whose private bind
// name would not is refused with a clear error, leaving nothing behind.
func TestListenPathTooLong(t *testing.T) {
	dir := t.TempDir()
	deep := filepath.Join(dir, strings.Repeat("d", 100-len(dir)-1))
	require.NoError(t, os.Mkdir(deep, 0o700))
	path := filepath.Join(deep, "s.sock")
	require.Len(t, path, 107)
	_, err := server.Listen(path)
	require.ErrorContains(t, err, "path too long")
	left, err := os.ReadDir(deep)
	require.NoError(t, err)
	assert.Empty(t, left, "private bind directory removed")
}
