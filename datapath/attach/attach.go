// Package attach attaches the pinned pod programs to a pod's host-side
// interface with TCX and pins the links, so that they outlive the process
// that attached them. The CNI plugin uses it; it never loads programs. It
// also adopts pinned links (pod, host device, cgroup) for the loader.
package attach

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/sluicenet/sluice/datapath/pin"
)

// ErrNotPinned means the agent has not pinned the pod programs under the root.
var ErrNotPinned = errors.New("pod programs are not pinned (is sluice-agent running?)")

// Pod attaches every pod hook's pinned program to host interface ifname
// (ifindex) and pins the links under root/links/<ifname>/. Stale pins of an
// earlier interface with the same name are replaced. On error nothing stays
// attached or pinned.
func Pod(root, ifname string, ifindex int) (err error) {
	progs := make(map[string]*ebpf.Program, len(pin.PodHooks))
	defer func() {
		for _, p := range progs {
			p.Close()
		}
	}()
	for _, h := range pin.PodHooks {
		p, err := ebpf.LoadPinnedProgram(pin.ProgPath(root, h.Prog), nil)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s missing", ErrNotPinned, pin.ProgPath(root, h.Prog))
		}
		if err != nil {
			return fmt.Errorf("open pinned program %s: %w", h.Prog, err)
		}
		progs[h.Hook] = p
	}

	if err := os.RemoveAll(pin.LinkDir(root, ifname)); err != nil {
		return fmt.Errorf("remove stale links of %s: %w", ifname, err)
	}
	if err := os.MkdirAll(pin.LinkDir(root, ifname), 0o700); err != nil {
		return fmt.Errorf("create link dir of %s: %w", ifname, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(pin.LinkDir(root, ifname))
		}
	}()
	for _, h := range pin.PodHooks {
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: progs[h.Hook], Attach: TCXAttachType(h.Hook)})
		if err != nil {
			return fmt.Errorf("attach tcx %s to %s: %w", h.Hook, ifname, err)
		}
		err = l.Pin(pin.LinkPath(root, ifname, h.Hook))
		l.Close()
		if err != nil {
			return fmt.Errorf("pin %s link of %s: %w", h.Hook, ifname, err)
		}
	}
	return nil
}

// Detach unpins the links of ifname, detaching the programs if the interface
// still exists. A missing pin is not an error.
func Detach(root, ifname string) error {
	if err := os.RemoveAll(pin.LinkDir(root, ifname)); err != nil {
		return fmt.Errorf("unpin links of %s: %w", ifname, err)
	}
	return nil
}

// Check verifies that every pod hook of ifname has a pinned link attached to
// ifindex that runs the currently pinned program.
func Check(root, ifname string, ifindex int) error {
	for _, h := range pin.PodHooks {
		l, err := link.LoadPinnedLink(pin.LinkPath(root, ifname, h.Hook), nil)
		if err != nil {
			return fmt.Errorf("%s link of %s: %w", h.Hook, ifname, err)
		}
		info, err := l.Info()
		l.Close()
		if err != nil {
			return fmt.Errorf("%s link of %s: %w", h.Hook, ifname, err)
		}
		if tcx := info.TCX(); tcx == nil || int(tcx.Ifindex) != ifindex {
			return fmt.Errorf("%s link of %s is not attached to ifindex %d", h.Hook, ifname, ifindex)
		}
		p, err := ebpf.LoadPinnedProgram(pin.ProgPath(root, h.Prog), nil)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrNotPinned, err)
		}
		pi, err := p.Info()
		p.Close()
		if err != nil {
			return fmt.Errorf("program info of %s: %w", h.Prog, err)
		}
		if id, _ := pi.ID(); id != info.Program {
			return fmt.Errorf("%s link of %s runs program %d, pinned program is %d", h.Hook, ifname, info.Program, id)
		}
	}
	return nil
}
