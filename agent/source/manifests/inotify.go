package manifests

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// dirNotifier wakes the watcher when anything in a directory changes. It
// does not decode events: any event means "rescan".
type dirNotifier struct {
	f *os.File
}

// watchDir starts an inotify watch on dir; every event (or overflow) causes
// a non-blocking send on kick. Close stops it.
func watchDir(dir string, kick chan<- struct{}) (*dirNotifier, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify init: %w", err)
	}
	const mask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MODIFY | unix.IN_CLOSE_WRITE |
		unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inotify watch %s: %w", dir, err)
	}
	// A non-blocking fd makes the File pollable: Close unblocks Read.
	n := &dirNotifier{f: os.NewFile(uintptr(fd), "inotify:"+dir)}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := n.f.Read(buf); err != nil {
				return
			}
			select {
			case kick <- struct{}{}:
			default:
			}
		}
	}()
	return n, nil
}

// Close stops the watch.
func (n *dirNotifier) Close() error { return n.f.Close() }
