// Package state persists the agent's endpoints as one JSON file per endpoint
// (<dir>/<id>.json), so that a restarted agent restores what it had. Files are
// written atomically: a temporary file in the same directory, fsynced, then
// renamed over the old one.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/atomicfile"
)

// Store reads and writes endpoint state files in one directory.
type Store struct {
	dir string
}

// New returns a store over dir, creating it (mode 0700) if needed.
func New(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir %s: %w", dir, err)
	}
	return &Store{dir: dir}, nil
}

// Dir returns the directory of the state files.
func (s *Store) Dir() string { return s.dir }

// Path returns the state file of endpoint id.
func (s *Store) Path(id uint16) string {
	return filepath.Join(s.dir, strconv.Itoa(int(id))+".json")
}

// Save writes ep to its state file atomically. Counters are not persisted.
func (s *Store) Save(ep api.Endpoint) error {
	ep.Counters = nil
	data, err := json.MarshalIndent(ep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode endpoint %s: %w", ep.Key(), err)
	}
	return atomicfile.WriteFile(s.Path(ep.ID), append(data, '\n'), 0o600)
}

// Remove deletes the state file of endpoint id; a missing file is not an error.
func (s *Store) Remove(id uint16) error {
	if err := os.Remove(s.Path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove state of endpoint %d: %w", id, err)
	}
	return nil
}

// Bad is a state file that could not be used, with the reason.
type Bad struct {
	Path string
	Err  error
}

// LoadAll reads every state file. Files that cannot be parsed, or whose name
// does not match the ID inside, are returned as bad (the caller decides what
// to do with them) rather than failing the whole load.
func (s *Store) LoadAll() ([]api.Endpoint, []Bad, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read state dir %s: %w", s.dir, err)
	}
	var (
		eps []api.Endpoint
		bad []Bad
	)
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		path := filepath.Join(s.dir, name)
		ep, err := readEndpoint(path)
		if err != nil {
			bad = append(bad, Bad{Path: path, Err: err})
			continue
		}
		eps = append(eps, ep)
	}
	return eps, bad, nil
}

func readEndpoint(path string) (api.Endpoint, error) {
	var ep api.Endpoint
	data, err := os.ReadFile(path)
	if err != nil {
		return ep, err
	}
	if err := json.Unmarshal(data, &ep); err != nil {
		return ep, fmt.Errorf("decode: %w", err)
	}
	if err := ep.Validate(); err != nil {
		return ep, err
	}
	want := strconv.Itoa(int(ep.ID)) + ".json"
	if ep.ID == 0 || filepath.Base(path) != want {
		return ep, fmt.Errorf("file name does not match endpoint id %d", ep.ID)
	}
	return ep, nil
}
