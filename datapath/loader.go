package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/sluicenet/sluice/datapath/pin"
)

// Datapath holds the loaded pod and socket-LB programs and their maps.
type Datapath struct {
	root string // bpffs root, "" when not pinned
	objs lxcObjects
	sock sockObjects
	host hostObjects // host device programs (NodePort): host.go

	// Host device links of an unpinned Datapath, by interface name.
	devLinks map[string][]link.Link

	// Socket-LB links of an unpinned Datapath (a pinned one keeps them in
	// bpffs), by hook.
	cgLinks map[string]link.Link
}

// Load loads the pod programs and maps, reusing maps pinned under root (their
// entries survive agent restarts), pins the programs under root/progs
// atomically (pin to a temporary name, then rename over the old pin), and
// swaps every pinned pod link to the new programs in place with link.Update, so
// attached interfaces never see a gap. On error nothing new stays pinned.
func Load(root string) (*Datapath, error) { return LoadWithOptions(root, Options{}) }

// LoadWithOptions is Load with load-time knobs.
func LoadWithOptions(root string, opts Options) (*Datapath, error) {
	return LoadWithHostOptions(root, opts, HostOptions{})
}

// LoadWithHostOptions is LoadWithOptions with the host device programs'
// knobs. Pinned host device links are adopted like pod links.
func LoadWithHostOptions(root string, opts Options, host HostOptions) (*Datapath, error) {
	if err := pin.EnsureRoot(root, false); err != nil {
		return nil, err
	}
	d := &Datapath{root: root}
	if err := d.load(pin.MapsDir(root), opts, host); err != nil {
		return nil, err
	}
	if err := d.pinPrograms(); err != nil {
		d.closeObjects()
		return nil, err
	}
	if _, err := d.AdoptLinks(); err != nil {
		d.closeObjects()
		return nil, err
	}
	if err := d.adoptSocketLB(); err != nil {
		d.closeObjects()
		return nil, err
	}
	if _, err := d.adoptDeviceLinks(); err != nil {
		d.closeObjects()
		return nil, err
	}
	return d, nil
}

// LoadUnpinned loads the programs and fresh maps without pinning anything, for
// BPF_PROG_TEST_RUN tests and benchmarks. The pod and socket-LB programs share
// their LB maps as they do when pinned.
func LoadUnpinned() (*Datapath, error) { return LoadUnpinnedWithOptions(Options{}) }

// LoadUnpinnedWithOptions is LoadUnpinned with load-time knobs.
func LoadUnpinnedWithOptions(opts Options) (*Datapath, error) {
	return LoadUnpinnedWithHostOptions(opts, HostOptions{})
}

// LoadUnpinnedWithHostOptions is LoadUnpinnedWithOptions with the host device
// programs' knobs.
func LoadUnpinnedWithHostOptions(opts Options, host HostOptions) (*Datapath, error) {
	d := &Datapath{}
	if err := d.load("", opts, host); err != nil {
		return nil, err
	}
	return d, nil
}

// load loads the pod objects, then the socket-LB objects with every map they
// share with the pod objects replaced by the pod objects' map, so both see
// one set of maps whether pinned or not.
func (d *Datapath) load(pinPath string, opts Options, host HostOptions) error {
	spec, err := loadLxc()
	if err != nil {
		return err
	}
	if err := opts.applyPod(spec); err != nil {
		return err
	}
	podMaps, err := loadSpec(spec, &d.objs, pinPath, nil, "pod")
	if err != nil {
		return err
	}
	sspec, err := loadSock()
	if err != nil {
		d.objs.Close()
		return err
	}
	opts.applyMaps(sspec)
	shared := make(map[string]*ebpf.Map)
	for name := range sspec.Maps {
		// Only Sluice's maps: .rodata/.bss are per object.
		if m, ok := podMaps[name]; ok && strings.HasPrefix(name, "sluice_") {
			shared[name] = m
		}
	}
	if _, err := loadSpec(sspec, &d.sock, pinPath, shared, "socket-LB"); err != nil {
		d.objs.Close()
		return err
	}
	if err := d.loadHost(pinPath, opts, host, podMaps); err != nil {
		d.sock.Close()
		d.objs.Close()
		return err
	}
	return nil
}

// loadSpec loads spec into objs (a bpf2go objects struct) and returns the
// loaded maps by name (owned by objs).
func loadSpec(spec *ebpf.CollectionSpec, objs any, pinPath string, replace map[string]*ebpf.Map, what string) (map[string]*ebpf.Map, error) {
	if pinPath == "" {
		for _, m := range spec.Maps {
			m.Pinning = ebpf.PinNone
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		Maps:            ebpf.MapOptions{PinPath: pinPath},
		MapReplacements: replace,
	})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load %s programs: %+v", what, ve)
		}
		return nil, fmt.Errorf("load %s programs: %w", what, err)
	}
	maps := make(map[string]*ebpf.Map, len(coll.Maps))
	for name, m := range coll.Maps {
		maps[name] = m
	}
	if err := coll.Assign(objs); err != nil {
		coll.Close()
		return nil, fmt.Errorf("assign %s objects: %w", what, err)
	}
	coll.Close() // closes only what objs did not take
	return maps, nil
}

func (d *Datapath) programs() map[string]*ebpf.Program {
	return map[string]*ebpf.Program{
		pin.ProgFromContainer:    d.objs.FromContainer,
		pin.ProgToContainer:      d.objs.ToContainer,
		pin.ProgSockConnect4:     d.sock.SockConnect4,
		pin.ProgSockSendmsg4:     d.sock.SockSendmsg4,
		pin.ProgSockRecvmsg4:     d.sock.SockRecvmsg4,
		pin.ProgSockGetpeername4: d.sock.SockGetpeername4,
		pin.ProgFromNetdev:       d.host.FromNetdev,
		pin.ProgToNetdev:         d.host.ToNetdev,
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
		if iface.Name() == pin.CgroupLinksName || iface.Name() == pin.DevicesLinksName {
			continue // socket-LB links: adoptSocketLB; host devices: adoptDeviceLinks
		}
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

// adoptLink adopts a pinned pod link; its interface being gone (TCX
// ifindex 0: the link is defunct) unpins it.
func adoptLink(path string, prog *ebpf.Program) (bool, error) {
	return updatePinnedLink(path, prog, func(i link.Info) bool {
		tcx := i.TCX()
		return tcx == nil || tcx.Ifindex != 0
	})
}

// Root returns the bpffs root the Datapath pinned under ("" if unpinned).
func (d *Datapath) Root() string { return d.root }

// FromContainer and ToContainer return the pod programs (for tests).
func (d *Datapath) FromContainer() *ebpf.Program { return d.objs.FromContainer }

// ToContainer returns the program run for packets entering a pod.
func (d *Datapath) ToContainer() *ebpf.Program { return d.objs.ToContainer }

// Close releases this process's handles. Pinned objects stay in the kernel;
// socket-LB links of an unpinned Datapath are detached.
func (d *Datapath) Close() error {
	var errs []error
	for h, l := range d.cgLinks {
		errs = append(errs, l.Close())
		delete(d.cgLinks, h)
	}
	errs = append(errs, d.closeDeviceLinks())
	errs = append(errs, d.closeObjects())
	return errors.Join(errs...)
}

func (d *Datapath) closeObjects() error {
	return errors.Join(d.host.Close(), d.sock.Close(), d.objs.Close())
}

// Unpin removes every pin under root (programs, maps and pod links): the
// programs detach from all pods. Used by tests and `sluice-agent --cleanup`.
func Unpin(root string) error {
	if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return os.RemoveAll(filepath.Clean(root))
}
