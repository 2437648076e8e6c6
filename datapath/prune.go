package datapath

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/pin"
)

// pruneMaps removes the pins under root/maps of Sluice maps that none of
// this build's programs has: an earlier agent's map whose layout changed
// and with it its versioned name (bpf/lib/maps.h), say
// sluice_connect_config_v1 once sluice_connect_config_v2 took its place.
// Nothing uses such a map any more (a program still running from the
// earlier agent holds it by reference, not through the pin), but pinned it
// stays in kernel memory until the node reboots. loaded names the maps of
// the objects Load loaded; the process sensor's (it pins some of them from
// Go, and loads later, if at all) are added from its spec. Only names of
// the form sluice_* are touched; the names it removed are returned, sorted.
func pruneMaps(root string, loaded map[string]bool) ([]string, error) {
	sensor, err := bpfgen.LoadProcess()
	if err != nil {
		return nil, err
	}
	current := mapNames(sensor)
	maps.Copy(current, loaded)
	entries, err := os.ReadDir(pin.MapsDir(root))
	if err != nil {
		return nil, fmt.Errorf("read pinned maps: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "sluice_") || current[name] || e.IsDir() {
			continue
		}
		if err := os.Remove(filepath.Join(pin.MapsDir(root), name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove stale pinned map %s: %w", name, err))
			continue
		}
		removed = append(removed, name)
	}
	sort.Strings(removed)
	return removed, errors.Join(errs...)
}

// mapNames returns the names of every map of specs, pinned by name or not.
func mapNames(specs ...*ebpf.CollectionSpec) map[string]bool {
	names := make(map[string]bool)
	for _, spec := range specs {
		for name := range spec.Maps {
			names[name] = true
		}
	}
	return names
}

// PrunedMaps returns the stale map pins Load removed (pruneMaps) and why
// any it found could not be removed.
func (d *Datapath) PrunedMaps() ([]string, error) {
	return append([]string(nil), d.pruned...), d.pruneErr
}
