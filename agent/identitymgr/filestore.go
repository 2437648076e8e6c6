package identitymgr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"

	"github.com/sluicenet/sluice/agent/atomicfile"
	"github.com/sluicenet/sluice/identity"
)

// FileStore is an identity.Store kept in a JSON file in the agent's run dir, so that a standalone agent gives
// every label set the same number after a restart as before: the numbers in
// pinned endpoint and policy maps stay valid while the agent starts up.
type FileStore struct {
	path string
	mem  *identity.MemoryStore
	mu   sync.Mutex // serializes file writes
}

// OpenFileStore loads the store at path; a missing file is an empty store.
func OpenFileStore(path string) (*FileStore, error) {
	s := &FileStore{path: path, mem: identity.NewMemoryStore()}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read identity store: %w", err)
	}
	var raw map[string][]string
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("decode identity store %s: %w", path, err)
	}
	for k, strs := range raw {
		n, err := strconv.ParseUint(k, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("identity store %s: bad number %q", path, k)
		}
		if err := s.mem.Create(context.Background(), identity.NumericIdentity(n), identity.ParseLabels(strs...)); err != nil {
			return nil, fmt.Errorf("identity store %s: %w", path, err)
		}
	}
	return s, nil
}

// Create implements identity.Store.
func (s *FileStore) Create(ctx context.Context, id identity.NumericIdentity, labels identity.Labels) error {
	if err := s.mem.Create(ctx, id, labels); err != nil {
		return err
	}
	if err := s.save(); err != nil {
		// Not saved, not created: the number must not be handed out (a
		// retry would find it and succeed without a file that holds it).
		if derr := s.mem.Delete(context.WithoutCancel(ctx), id); derr != nil {
			err = errors.Join(err, derr)
		}
		return err
	}
	return nil
}

// Get implements identity.Store.
func (s *FileStore) Get(ctx context.Context, id identity.NumericIdentity) (identity.Labels, error) {
	return s.mem.Get(ctx, id)
}

// List implements identity.Store.
func (s *FileStore) List(ctx context.Context) (map[identity.NumericIdentity]identity.Labels, error) {
	return s.mem.List(ctx)
}

// Delete implements identity.Store.
func (s *FileStore) Delete(ctx context.Context, id identity.NumericIdentity) error {
	if err := s.mem.Delete(ctx, id); err != nil {
		return err
	}
	return s.save()
}

// save writes the whole store atomically (temporary file, then rename).
func (s *FileStore) save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := s.mem.List(context.Background())
	if err != nil {
		return err
	}
	raw := make(map[string][]string, len(all))
	for id, ls := range all {
		strs := make([]string, 0, len(ls))
		for _, l := range ls {
			strs = append(strs, l.String())
		}
		sort.Strings(strs)
		raw[strconv.FormatUint(uint64(id), 10)] = strs
	}
	data, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("save identity store: %w", err)
	}
	if err := atomicfile.WriteFile(s.path, data, 0o600); err != nil {
		return fmt.Errorf("save identity store: %w", err)
	}
	return nil
}
