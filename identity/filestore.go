package identity

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

	"github.com/sluicenet/sluice/internal/atomicfile"
)

// FileStore is a Store kept in a JSON file, so that a standalone agent gives
// every label set the same number after a restart as before: the numbers in
// pinned endpoint and policy maps stay valid while the agent starts up.
type FileStore struct {
	path string
	mem  *MemoryStore
	mu   sync.Mutex // serializes file writes
}

// OpenFileStore loads the store at path; a missing file is an empty store.
func OpenFileStore(path string) (*FileStore, error) {
	s := &FileStore{path: path, mem: NewMemoryStore()}
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
		s.mem.objs[NumericIdentity(n)] = ParseLabels(strs...)
	}
	return s, nil
}

// Create implements Store.
func (s *FileStore) Create(ctx context.Context, id NumericIdentity, labels Labels) error {
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

// Get implements Store.
func (s *FileStore) Get(ctx context.Context, id NumericIdentity) (Labels, error) {
	return s.mem.Get(ctx, id)
}

// List implements Store.
func (s *FileStore) List(ctx context.Context) (map[NumericIdentity]Labels, error) {
	return s.mem.List(ctx)
}

// Delete implements Store.
func (s *FileStore) Delete(ctx context.Context, id NumericIdentity) error {
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

// NewStandaloneAllocatorWithStore is NewStandaloneAllocator over a given
// store (a FileStore keeps numbers across restarts).
func NewStandaloneAllocatorWithStore(store Store, opts Options) *StoreAllocator {
	a := newStoreAllocator(store, opts)
	a.ownsStore = true
	return a
}
