package attach

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/sluicenet/sluice/datapath/pin"
)

// UpdatePinned adopts the link pinned at path: when owned(info) holds it
// points the link at prog in place with link.Update (nothing to do if it
// already runs prog) and returns true. A link that is not owned (attached to
// another target, or to an interface that is gone) is unpinned, which
// detaches it, and false is returned; so is a missing pin. Pod, device and
// cgroup links all go through here on restart.
func UpdatePinned(path string, prog *ebpf.Program, owned func(link.Info) bool) (bool, error) {
	l, err := link.LoadPinnedLink(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open pinned link %s: %w", path, err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return false, fmt.Errorf("info of link %s: %w", path, err)
	}
	if !owned(*info) {
		if err := l.Unpin(); err != nil {
			return false, fmt.Errorf("unpin stale link %s: %w", path, err)
		}
		return false, nil
	}
	want, err := prog.Info()
	if err != nil {
		return false, fmt.Errorf("program info: %w", err)
	}
	if id, _ := want.ID(); id == info.Program {
		return true, nil
	}
	if err := l.Update(prog); err != nil {
		return false, fmt.Errorf("update link %s: %w", path, err)
	}
	return true, nil
}

// AdoptTCX adopts the TCX link pinned at path (a pod or host device link):
// its interface being gone (ifindex 0: the link is defunct) unpins it.
func AdoptTCX(path string, prog *ebpf.Program) (bool, error) {
	return UpdatePinned(path, prog, func(i link.Info) bool {
		tcx := i.TCX()
		return tcx == nil || tcx.Ifindex != 0
	})
}

// AdoptTCXDir adopts the TCX links of one interface, pinned in dir as
// <dir>/<hook> (a pod's host veth, or a host device), pointing each at its
// hook's program in progs (by pinned program name). It returns how many
// links run the current programs. An interface whose links were all defunct
// is gone: its dir is removed (os.Remove keeps a dir that still holds
// links). A dir that held no link is left alone while young: whoever
// attaches (sluice-cni, the device attach) creates it before it pins the
// links into it.
func AdoptTCXDir(dir string, hooks []pin.Hook, progs map[string]*ebpf.Program) (int, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil // detached meanwhile (CNI DEL)
	}
	if err != nil {
		return 0, fmt.Errorf("read pinned links: %w", err)
	}
	n := 0
	var errs []error
	for _, h := range hooks {
		ok, err := AdoptTCX(filepath.Join(dir, h.Hook), progs[h.Prog])
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			n++
		}
	}
	if len(ents) > 0 || olderThan(dir, emptyLinkDirGrace) {
		os.Remove(dir)
	}
	return n, errors.Join(errs...)
}

// emptyLinkDirGrace is how long an interface's link dir may stay empty
// before AdoptTCXDir takes it for the leftover of a failed attach.
const emptyLinkDirGrace = time.Minute

func olderThan(path string, d time.Duration) bool {
	fi, err := os.Stat(path)
	return err == nil && time.Since(fi.ModTime()) > d
}

// TCXAttachType returns the TCX attach type of a pinned hook name ("ingress"
// or "egress").
func TCXAttachType(hook string) ebpf.AttachType {
	if hook == "egress" {
		return ebpf.AttachTCXEgress
	}
	return ebpf.AttachTCXIngress
}
