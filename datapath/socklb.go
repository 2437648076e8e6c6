package datapath

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath/pin"
)

var cgroupAttachTypes = map[string]ebpf.AttachType{
	"connect4":     ebpf.AttachCGroupInet4Connect,
	"sendmsg4":     ebpf.AttachCGroupUDP4Sendmsg,
	"recvmsg4":     ebpf.AttachCGroupUDP4Recvmsg,
	"getpeername4": ebpf.AttachCgroupInet4GetPeername,
}

// AttachSocketLB attaches the socket-LB programs (connect4, sendmsg4,
// recvmsg4, getpeername4) to the cgroup v2 directory cgroupPath. A pinned
// Datapath pins the links under <root>/links/cgroup/<hook>; links already
// pinned there for the same cgroup are updated in place (no moment without
// socket LB), links of another cgroup are replaced. On error the hooks this
// call attached are detached again.
func (d *Datapath) AttachSocketLB(cgroupPath string) (err error) {
	cgID, err := cgroupID(cgroupPath)
	if err != nil {
		return err
	}
	progs := d.programs()
	var attached []string
	defer func() {
		if err != nil {
			for _, h := range attached {
				d.detachHook(h)
			}
		}
	}()
	if d.root != "" {
		if err := os.MkdirAll(pin.LinkDir(d.root, pin.CgroupLinksName), 0o700); err != nil {
			return fmt.Errorf("create socket-LB link dir: %w", err)
		}
	}
	for _, h := range pin.CgroupHooks {
		prog := progs[h.Prog]
		if d.root != "" {
			done, err := updatePinnedCgroupLink(pin.CgroupLinkPath(d.root, h.Hook), cgID, prog)
			if err != nil {
				return err
			}
			if done {
				continue
			}
		} else if l := d.cgLinks[h.Hook]; l != nil {
			l.Close()
			delete(d.cgLinks, h.Hook)
		}
		l, err := link.AttachCgroup(link.CgroupOptions{Path: cgroupPath, Attach: cgroupAttachTypes[h.Hook], Program: prog})
		if err != nil {
			return fmt.Errorf("attach %s to %s: %w", h.Hook, cgroupPath, err)
		}
		attached = append(attached, h.Hook)
		if d.root == "" {
			if d.cgLinks == nil {
				d.cgLinks = make(map[string]link.Link)
			}
			d.cgLinks[h.Hook] = l
			continue
		}
		err = l.Pin(pin.CgroupLinkPath(d.root, h.Hook))
		l.Close()
		if err != nil {
			return fmt.Errorf("pin %s link: %w", h.Hook, err)
		}
	}
	return nil
}

// updatePinnedCgroupLink points the link pinned at path to prog if it is
// attached to the cgroup cgID and reports whether it did. A link of another
// (or a deleted) cgroup is unpinned, detaching it.
func updatePinnedCgroupLink(path string, cgID uint64, prog *ebpf.Program) (bool, error) {
	return updatePinnedLink(path, prog, func(i link.Info) bool {
		cg := i.Cgroup()
		return cg != nil && cg.CgroupId == cgID
	})
}

// adoptSocketLB points pinned socket-LB links at this Datapath's programs.
func (d *Datapath) adoptSocketLB() error {
	progs := d.programs()
	var errs []error
	for _, h := range pin.CgroupHooks {
		p := pin.CgroupLinkPath(d.root, h.Hook)
		l, err := link.LoadPinnedLink(p, nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("open pinned link %s: %w", p, err))
			continue
		}
		if err := l.Update(progs[h.Prog]); err != nil {
			errs = append(errs, fmt.Errorf("update link %s: %w", p, err))
		}
		l.Close()
	}
	return errors.Join(errs...)
}

func (d *Datapath) detachHook(hook string) error {
	if l := d.cgLinks[hook]; l != nil {
		delete(d.cgLinks, hook)
		return l.Close()
	}
	if d.root == "" {
		return nil
	}
	p := pin.CgroupLinkPath(d.root, hook)
	l, err := link.LoadPinnedLink(p, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open pinned link %s: %w", p, err)
	}
	defer l.Close()
	if err := l.Unpin(); err != nil {
		return fmt.Errorf("unpin %s: %w", p, err)
	}
	return nil
}

// DetachSocketLB detaches the socket-LB programs (unpinning their links).
// Nothing attached is not an error.
func (d *Datapath) DetachSocketLB() error {
	var errs []error
	for _, h := range pin.CgroupHooks {
		errs = append(errs, d.detachHook(h.Hook))
	}
	if d.root != "" {
		os.Remove(pin.LinkDir(d.root, pin.CgroupLinksName))
	}
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

// SockReason says why a socket hook acted (mirrors enum sluice_sock_reason).
type SockReason uint32

// Socket-LB counter reasons.
const (
	SockConnectTranslated = SockReason(sockSluiceSockReasonSOCK_CONNECT_XLATED)
	SockSendmsgTranslated = SockReason(sockSluiceSockReasonSOCK_SENDMSG_XLATED)
	SockRevTranslated     = SockReason(sockSluiceSockReasonSOCK_REV_XLATED)
	SockNoBackend         = SockReason(sockSluiceSockReasonSOCK_NO_BACKEND)
)

var sockReasonNames = map[SockReason]string{
	SockConnectTranslated: "connect-translated",
	SockSendmsgTranslated: "sendmsg-translated",
	SockRevTranslated:     "reverse-translated",
	SockNoBackend:         "refused-no-backend",
}

func (r SockReason) String() string {
	if s, ok := sockReasonNames[r]; ok {
		return s
	}
	return fmt.Sprintf("sock-reason-%d", uint32(r))
}

// SockCounters reads sluice_sock_metrics, summed over CPUs (zero counts
// left out).
func (d *Datapath) SockCounters() (map[SockReason]uint64, error) {
	out := make(map[SockReason]uint64)
	var vals []uint64
	for r := range sockReasonNames {
		key := uint32(r)
		if err := d.sock.SluiceSockMetrics.Lookup(&key, &vals); err != nil {
			return nil, fmt.Errorf("read sluice_sock_metrics: %w", err)
		}
		var sum uint64
		for _, v := range vals {
			sum += v
		}
		if sum != 0 {
			out[r] = sum
		}
	}
	return out, nil
}
