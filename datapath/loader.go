package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/sluicenet/sluice/datapath/pin"
)

// Datapath holds the loaded pod programs and their maps.
type Datapath struct {
	root string // bpffs root, "" when not pinned
	objs lxcObjects
}

// Load loads the pod programs and maps, reusing maps pinned under root (their
// entries survive agent restarts), pins the programs under root/progs
// atomically (pin to a temporary name, then rename over the old pin), and
// swaps every pinned pod link to the new programs in place with link.Update, so
// attached interfaces never see a gap. On error nothing new stays pinned.
func Load(root string) (*Datapath, error) {
	if err := pin.EnsureRoot(root, false); err != nil {
		return nil, err
	}
	d := &Datapath{root: root}
	if err := load(&d.objs, pin.MapsDir(root)); err != nil {
		return nil, err
	}
	if err := d.pinPrograms(); err != nil {
		d.objs.Close()
		return nil, err
	}
	if _, err := d.AdoptLinks(); err != nil {
		d.objs.Close()
		return nil, err
	}
	return d, nil
}

// LoadUnpinned loads the programs and fresh maps without pinning anything, for
// BPF_PROG_TEST_RUN tests and benchmarks.
func LoadUnpinned() (*Datapath, error) {
	d := &Datapath{}
	if err := load(&d.objs, ""); err != nil {
		return nil, err
	}
	return d, nil
}

func load(objs *lxcObjects, pinPath string) error {
	spec, err := loadLxc()
	if err != nil {
		return err
	}
	if pinPath == "" {
		for _, m := range spec.Maps {
			m.Pinning = ebpf.PinNone
		}
	}
	err = spec.LoadAndAssign(objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: pinPath}})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("load pod programs: %+v", ve)
		}
		return fmt.Errorf("load pod programs: %w", err)
	}
	return nil
}

func (d *Datapath) programs() map[string]*ebpf.Program {
	return map[string]*ebpf.Program{
		pin.ProgFromContainer: d.objs.FromContainer,
		pin.ProgToContainer:   d.objs.ToContainer,
	}
}

func (d *Datapath) pinPrograms() error {
	// Pin everything under temporary names first so that a failure leaves
	// the old pins in place, then rename each over its old pin.
	progs := d.programs()
	tmp := make(map[string]string, len(progs))
	defer func() {
		for _, p := range tmp {
			os.Remove(p)
		}
	}()
	for name, prog := range progs {
		// bpffs refuses names with a dot.
		p := pin.ProgPath(d.root, "tmp_"+name)
		os.Remove(p)
		if err := prog.Pin(p); err != nil {
			return fmt.Errorf("pin program %s: %w", name, err)
		}
		tmp[name] = p
	}
	for name, p := range tmp {
		if err := os.Rename(p, pin.ProgPath(d.root, name)); err != nil {
			return fmt.Errorf("replace pinned program %s: %w", name, err)
		}
		delete(tmp, name)
	}
	return nil
}

// AdoptLinks points every pinned pod link at this Datapath's programs with
// link.Update (in place, never detaching). Links whose interface is gone are
// unpinned. It returns how many links run the current programs.
func (d *Datapath) AdoptLinks() (int, error) {
	ifaces, err := os.ReadDir(pin.LinksDir(d.root))
	if err != nil {
		return 0, fmt.Errorf("read pinned links: %w", err)
	}
	progs := d.programs()
	n := 0
	var errs []error
	for _, iface := range ifaces {
		for _, h := range pin.PodHooks {
			p := pin.LinkPath(d.root, iface.Name(), h.Hook)
			ok, err := adoptLink(p, progs[h.Prog])
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				n++
			}
		}
		// An interface whose links were all defunct is gone: drop its dir.
		os.Remove(pin.LinkDir(d.root, iface.Name()))
	}
	return n, errors.Join(errs...)
}

func adoptLink(path string, prog *ebpf.Program) (bool, error) {
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
	if tcx := info.TCX(); tcx != nil && tcx.Ifindex == 0 {
		// The interface was deleted: the link is defunct.
		return false, l.Unpin()
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

// Root returns the bpffs root the Datapath pinned under ("" if unpinned).
func (d *Datapath) Root() string { return d.root }

// FromContainer and ToContainer return the pod programs (for tests).
func (d *Datapath) FromContainer() *ebpf.Program { return d.objs.FromContainer }

// ToContainer returns the program run for packets entering a pod.
func (d *Datapath) ToContainer() *ebpf.Program { return d.objs.ToContainer }

// Close releases this process's handles. Pinned objects stay in the kernel.
func (d *Datapath) Close() error { return d.objs.Close() }

// Unpin removes every pin under root (programs, maps and pod links): the
// programs detach from all pods. Used by tests and `sluice-agent --cleanup`.
func Unpin(root string) error {
	if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return os.RemoveAll(filepath.Clean(root))
}
