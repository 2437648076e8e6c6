package procsensor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/sluicenet/sluice/datapath/pin"
)

// The sensor's tracepoint links are pinned as links/tracing/<name> and its
// rule maps by name under maps/, so tracing policies stay enforced while
// the agent restarts or after it crashed: Close releases handles only, the
// next Load takes over (make-before-break) and Unpin stops it all.
//
// linkPins are the pin names of the hooks' links. The names carry a
// version: a later layout of the sensor pins under new names.
var linkPins = map[string]string{
	HookExec:     "sched_process_exec_v1",
	HookExit:     "sched_process_exit_v1",
	HookFork:     "sched_process_fork_v1",
	HookConnect:  "inet_sock_set_state_v1",
	HookSysEnter: "sys_enter_v1",
	HookSysExit:  "sys_exit_v1",
}

// ruleMaps are the exec and syscall rule maps (with their scopes and
// inherited slots), pinned by name so the rules keep matching across an
// agent restart.
var ruleMaps = []string{
	execConfigMap, execSlotsMap, execExactMap, execPrefixMap, execScopeMap, execCgMap, execFollowMap,
	sysConfigMap, sysNrMap, sysSlotsMap, sysScopeMap, sysCgMap, sysFollowMap, sysStrMap, sysPostfixMap, sysRateMap,
}

// pinRuleMaps makes spec pin the rule maps by name under mapsDir. A pinned
// rule map whose type, key, value, size or flags differ from spec's (an
// earlier agent's layout under the same name) is unpinned first, so a new
// one is created; their names are returned (the caller says so: its rules
// are gone until the next SetExecRules/SetSyscallRules).
func pinRuleMaps(spec *ebpf.CollectionSpec, mapsDir string) (recreated []string, err error) {
	for _, name := range ruleMaps {
		ms := spec.Maps[name]
		if ms == nil {
			return nil, fmt.Errorf("process sensor spec: no map %s", name)
		}
		ms.Pinning = ebpf.PinByName
		path := filepath.Join(mapsDir, name)
		m, err := ebpf.LoadPinnedMap(path, nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("open pinned %s: %w", name, err)
		}
		cerr := ms.Compatible(m)
		m.Close()
		if cerr == nil {
			continue
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove incompatible pinned %s: %w", name, err)
		}
		recreated = append(recreated, name)
	}
	return recreated, nil
}

// RecreatedMaps returns the pinned rule maps Load found with another
// layout and created anew (empty): the rules they held were not enforced
// from then until the next SetExecRules/SetSyscallRules.
func (s *Sensor) RecreatedMaps() []string { return append([]string(nil), s.recreated...) }

// pinLinks pins the links of this sensor's hooks over those of an earlier
// sensor (each new link was attached before: for a moment both run, which
// is harmless; replacing the pin detaches the old one), and removes the
// pins of hooks this sensor does not run.
func (s *Sensor) pinLinks() error {
	if err := os.MkdirAll(pin.LinkDir(s.root, pin.TracingLinksName), 0o700); err != nil {
		return fmt.Errorf("create tracing links directory: %w", err)
	}
	for hook, name := range linkPins {
		l := s.links[hook]
		if l == nil {
			l = s.sysLinks[hook]
		}
		path := pin.TracingLinkPath(s.root, name)
		if l == nil {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("unpin stale %s link: %w", hook, err)
			}
			continue
		}
		if err := pinLink(l, path); err != nil {
			return fmt.Errorf("pin %s link: %w", hook, err)
		}
	}
	return nil
}

// pinLink pins l at path, replacing in one step what was pinned there (a
// pinned link unpinned with no handle left detaches). A link adopted from
// its pin stays where it is.
func pinLink(l link.Link, path string) error {
	if p, ok := l.(interface{ IsPinned() bool }); ok && p.IsPinned() {
		return nil
	}
	tmp := filepath.Join(filepath.Dir(path), "tmp_"+filepath.Base(path))
	_ = os.Remove(tmp)
	if err := l.Pin(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// adoptSyscallLinks attaches the syscall programs whose hook an earlier
// sensor left pinned (some syscall rule of the pinned maps needs it), so
// the rules stay enforced until SetSyscallRules says otherwise. A program
// this kernel refused leaves the earlier link running (adopted: the next
// SetSyscallRules without rules of its hook detaches it).
func (s *Sensor) adoptSyscallLinks() error {
	for hook := range sysHookProgs {
		path := pin.TracingLinkPath(s.root, linkPins[hook])
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if s.progs[hook] == nil {
			l, err := link.LoadPinnedLink(path, nil)
			if err != nil {
				return fmt.Errorf("adopt pinned %s link: %w", hook, err)
			}
			s.sysLinks[hook] = l
			continue
		}
		l, err := link.AttachTracing(link.TracingOptions{Program: s.progs[hook], AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			return fmt.Errorf("attach %s: %w", hook, err)
		}
		s.sysLinks[hook] = l
	}
	return nil
}

// Unpin stops the process sensor pinned under root: it removes the pins of
// its links (which detach once no process holds them: close the Sensor
// too) and of its rule maps. The uninstall path (datapath.Unpin removes the
// whole root) and tests call it; an agent that stops normally does not.
func Unpin(root string) error {
	var errs []error
	if err := os.RemoveAll(pin.LinkDir(root, pin.TracingLinksName)); err != nil {
		errs = append(errs, fmt.Errorf("unpin process sensor links: %w", err))
	}
	for _, name := range ruleMaps {
		if err := os.Remove(filepath.Join(pin.MapsDir(root), name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("unpin %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
