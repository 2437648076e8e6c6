package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
)

// maxSocketPath is the longest path a unix socket can be bound to
// (sizeof(sockaddr_un.sun_path) on Linux).
const maxSocketPath = 108

// Listen removes a stale socket file at path (refusing if a live agent still
// answers on it), listens on it and makes the socket accessible to root only
// (0600). A missing directory is created 0700; an existing one keeps its mode
// (it may be shared, e.g. /var/run).
//
// The socket is never reachable with other permissions: it is bound in a
// private 0700 directory next to path, chmod'ed there and only then renamed
// into place, so no other user can connect between bind and chmod. Closing
// the listener removes the socket at path.
func Listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create socket dir %s: %w", dir, err)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("listen on %s: another agent is serving it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	private, err := os.MkdirTemp(dir, ".s")
	if err != nil {
		return nil, fmt.Errorf("create private dir for socket %s: %w", path, err)
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "s")
	if len(tmp) >= maxSocketPath {
		return nil, fmt.Errorf("listen on %s: path too long (%d bytes, at most %d)",
			path, len(path), maxSocketPath-1-(len(tmp)-len(path)))
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// The listener would unlink tmp on Close; it unlinks path instead.
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod socket %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		return nil, fmt.Errorf("move socket into place at %s: %w", path, err)
	}
	return &unixListener{UnixListener: l, path: path}, nil
}

// unixListener is a listener whose socket was renamed to path after bind:
// Close unlinks path once, as net.UnixListener does for the bound name.
type unixListener struct {
	*net.UnixListener
	path   string
	unlink sync.Once
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.unlink.Do(func() { os.Remove(l.path) })
	return err
}
