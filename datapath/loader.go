package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/attach"
	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/pin"
)

// Load loads the pod, socket-LB and host device programs and their maps under
// the bpffs root: maps pinned there are reused (their entries survive agent
// restarts; pins of an earlier map name are renamed first, pin.RenameMaps),
// the programs are pinned under root/progs atomically (pin to a temporary
// name, then rename over the old pin), and every pinned pod, device and
// socket-LB link is pointed at the new programs in place with link.Update,
// so attached hooks never see a gap. Pins of maps no program of this build
// has (an earlier layout's name) are removed. On error nothing new stays
// pinned.
func Load(root string, opts Options) (*Datapath, error) {
	if root == "" {
		return nil, errors.New("load datapath: no bpffs root")
	}
	if err := pin.EnsureRoot(root, false); err != nil {
		return nil, err
	}
	if err := pin.RenameMaps(root); err != nil {
		return nil, err
	}
	d := &Datapath{root: root, connect: connectState{enabled: opts.ProcessEvents}}
	names, err := d.load(opts)
	if err != nil {
		return nil, err
	}
	d.setHandles()
	// Before any program that reads the frontend filter can run (the CNI
	// attaches the pinned programs, AdoptLinks the running ones).
	if err := d.setFilters(); err != nil {
		d.closeObjects()
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
	if err := d.sockLB.Adopt(); err != nil {
		d.closeObjects()
		return nil, err
	}
	if _, err := d.devices.Adopt(); err != nil {
		d.closeObjects()
		return nil, err
	}
	// Last: a pin is removed only once this build's maps are pinned. A
	// failure leaves a stale pin, no more: it is reported, not fatal.
	d.pruned, d.pruneErr = pruneMaps(root, names)
	return d, nil
}

// setFilters rebuilds the address filters of the pod programs from the
// maps (pinned ones keep their entries across restarts) and keeps them up to
// date from then on (bpf/lib/addr_filter.h).
func (d *Datapath) setFilters() error {
	if err := d.lb.SetFrontendFilter(d.objs.SluiceLb4FeFilterV1, d.objs.SluiceLb4NodeportFilterV1); err != nil {
		return err
	}
	revNAT, err := d.ct.RevNATBackends()
	if err != nil {
		return err
	}
	if err := d.lb.SetBackendFilter(d.objs.SluiceLb4BackendFilterV1, revNAT); err != nil {
		return err
	}
	return d.endpoints.SetFilter(d.objs.SluiceEndpointsFilterV1)
}

// load loads the pod objects, then the socket-LB and host device objects
// with every map they share with the pod objects replaced by the pod
// objects' map, so all three see one set of maps. It returns the names of
// the maps of the four objects.
func (d *Datapath) load(opts Options) (map[string]bool, error) {
	pinPath := pin.MapsDir(d.root)
	spec, err := bpfgen.LoadLxc()
	if err != nil {
		return nil, err
	}
	if err := opts.applyPod(spec); err != nil {
		return nil, err
	}
	podMaps, err := loadSpec(spec, &d.objs, pinPath, nil, "pod")
	if err != nil {
		return nil, err
	}
	sspec, err := bpfgen.LoadSock()
	if err != nil {
		d.objs.Close()
		return nil, err
	}
	if err := opts.applySock(sspec); err != nil {
		d.objs.Close()
		return nil, err
	}
	if err := loadSpecShared(sspec, &d.sock, pinPath, podMaps, "socket-LB"); err != nil {
		d.objs.Close()
		return nil, err
	}
	hspec, err := bpfgen.LoadHost()
	if err == nil {
		err = opts.apply(hspec)
	}
	if err == nil {
		err = opts.Host.apply(hspec)
	}
	if err == nil {
		err = loadSpecShared(hspec, &d.host, pinPath, podMaps, "host device")
	}
	if err != nil {
		d.sock.Close()
		d.objs.Close()
		return nil, err
	}
	// The XDP program shares the host programs' knobs (conntrack
	// lifetimes, SNAT address and ports) and every map.
	xspec, err := bpfgen.LoadXdp()
	if err == nil {
		err = opts.apply(xspec)
	}
	if err == nil {
		err = opts.Host.apply(xspec)
	}
	if err == nil {
		err = loadSpecShared(xspec, &d.xdp, pinPath, podMaps, "XDP")
	}
	if err != nil {
		d.host.Close()
		d.sock.Close()
		d.objs.Close()
		return nil, err
	}
	return mapNames(spec, sspec, hspec, xspec), nil
}

// loadSpecShared loads spec into objs with every Sluice map it has in common
// with podMaps replaced by the pod objects' map (.rodata/.bss stay per
// object).
func loadSpecShared(spec *ebpf.CollectionSpec, objs any, pinPath string, podMaps map[string]*ebpf.Map, what string) error {
	shared := make(map[string]*ebpf.Map)
	for name := range spec.Maps {
		if m, ok := podMaps[name]; ok && strings.HasPrefix(name, "sluice_") {
			shared[name] = m
		}
	}
	_, err := loadSpec(spec, objs, pinPath, shared, what)
	return err
}

// loadSpec loads spec into objs (a bpf2go objects struct) and returns the
// loaded maps by name (owned by objs).
func loadSpec(spec *ebpf.CollectionSpec, objs any, pinPath string, replace map[string]*ebpf.Map, what string) (map[string]*ebpf.Map, error) {
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
		pin.ProgXDPNodePort:      d.xdp.XdpNodeport,
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
		if iface.Name() == pin.CgroupLinksName || iface.Name() == pin.DevicesLinksName || iface.Name() == pin.TracingLinksName {
			continue // socket-LB links: socklb; host devices: device; process sensor: procsensor
		}
		k, err := attach.AdoptTCXDir(pin.LinkDir(d.root, iface.Name()), pin.PodHooks, progs)
		n += k
		if err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// Close releases this process's handles. Pinned objects (maps, programs,
// links) stay in the kernel.
func (d *Datapath) Close() error { return d.closeObjects() }

func (d *Datapath) closeObjects() error {
	return errors.Join(d.xdp.Close(), d.host.Close(), d.sock.Close(), d.objs.Close())
}

// Unpin removes every pin under root (programs, maps and pod links): the
// programs detach from all pods. Used by tests and `sluice-agent --cleanup`.
func Unpin(root string) error {
	if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return os.RemoveAll(filepath.Clean(root))
}
