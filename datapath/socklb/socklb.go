// Package socklb attaches the socket-LB programs (connect4, sendmsg4,
// recvmsg4, getpeername4) to a cgroup v2 directory and keeps their links
// pinned under <root>/links/cgroup/<hook>, so they survive agent restarts and
// are adopted by the next agent.
package socklb

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath/attach"
	"github.com/sluicenet/sluice/datapath/pin"
)

var cgroupAttachTypes = map[string]ebpf.AttachType{
	"connect4":     ebpf.AttachCGroupInet4Connect,
	"sendmsg4":     ebpf.AttachCGroupUDP4Sendmsg,
	"recvmsg4":     ebpf.AttachCGroupUDP4Recvmsg,
	"getpeername4": ebpf.AttachCgroupInet4GetPeername,
}

// Links attaches the socket-LB programs of a loaded datapath.
type Links struct {
	root  string
	progs map[string]*ebpf.Program // by pinned program name
}

// New returns the socket-LB links under the bpffs root, running progs (by
// pinned program name: pin.ProgSockConnect4, ...).
func New(root string, progs map[string]*ebpf.Program) *Links {
	return &Links{root: root, progs: progs}
}

// Attach attaches the socket-LB programs to the cgroup v2 directory
// cgroupPath and pins the links. Links already pinned for the same cgroup
// are updated in place (no moment without socket LB), links of another
// cgroup are replaced. On error the hooks this call attached are detached
// again.
func (l *Links) Attach(cgroupPath string) (err error) {
	cgID, err := cgroupID(cgroupPath)
	if err != nil {
		return err
	}
	var attached []string
	defer func() {
		if err != nil {
			for _, h := range attached {
				l.detachHook(h)
			}
		}
	}()
	if err := os.MkdirAll(pin.LinkDir(l.root, pin.CgroupLinksName), 0o700); err != nil {
		return fmt.Errorf("create socket-LB link dir: %w", err)
	}
	for _, h := range pin.CgroupHooks {
		prog := l.progs[h.Prog]
		p := pin.CgroupLinkPath(l.root, h.Hook)
		done, err := attach.UpdatePinned(p, prog, func(i link.Info) bool {
			cg := i.Cgroup()
			return cg != nil && cg.CgroupId == cgID
		})
		if err != nil {
			return err
		}
		if done {
			continue
		}
		lk, err := link.AttachCgroup(link.CgroupOptions{Path: cgroupPath, Attach: cgroupAttachTypes[h.Hook], Program: prog})
		if err != nil {
			return fmt.Errorf("attach %s to %s: %w", h.Hook, cgroupPath, err)
		}
		attached = append(attached, h.Hook)
		err = lk.Pin(p)
		lk.Close()
		if err != nil {
			return fmt.Errorf("pin %s link: %w", h.Hook, err)
		}
	}
	return nil
}

// Adopt points pinned socket-LB links at the current programs (whatever
// cgroup they are attached to: Attach decides that).
func (l *Links) Adopt() error {
	var errs []error
	for _, h := range pin.CgroupHooks {
		_, err := attach.UpdatePinned(pin.CgroupLinkPath(l.root, h.Hook), l.progs[h.Prog], func(link.Info) bool { return true })
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (l *Links) detachHook(hook string) error {
	p := pin.CgroupLinkPath(l.root, hook)
	lk, err := link.LoadPinnedLink(p, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open pinned link %s: %w", p, err)
	}
	defer lk.Close()
	if err := lk.Unpin(); err != nil {
		return fmt.Errorf("unpin %s: %w", p, err)
	}
	return nil
}

// Detach detaches the socket-LB programs (unpinning their links). Nothing
// attached is not an error.
func (l *Links) Detach() error {
	var errs []error
	for _, h := range pin.CgroupHooks {
		errs = append(errs, l.detachHook(h.Hook))
	}
	os.Remove(pin.LinkDir(l.root, pin.CgroupLinksName))
	return errors.Join(errs...)
}

// cgroupID returns the id of a cgroup v2 directory (its inode number).
func cgroupID(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat cgroup %s: %w", path, err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return 0, fmt.Errorf("statfs cgroup %s: %w", path, err)
	}
	if fs.Type != unix.CGROUP2_SUPER_MAGIC {
		return 0, fmt.Errorf("%s is not a cgroup v2 directory", path)
	}
	return st.Ino, nil
}
