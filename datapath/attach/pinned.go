package attach

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
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

// TCXAttachType returns the TCX attach type of a pinned hook name ("ingress"
// or "egress").
func TCXAttachType(hook string) ebpf.AttachType {
	if hook == "egress" {
		return ebpf.AttachTCXEgress
	}
	return ebpf.AttachTCXIngress
}
