package identity

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Store errors.
var (
	// ErrExists is returned by Store.Create when the number is taken.
	ErrExists = errors.New("identity number already exists")
	// ErrNotFound is returned for a number the store or allocator does not hold.
	ErrNotFound = errors.New("identity not found")
)

// Store holds the cluster's identities, one object per number, named by the
// number. Create must be atomic: exactly one of several concurrent Creates of
// the same number succeeds, the others get ErrExists. List is called on every
// allocation of a new label set and should be served from a cache (an
// informer, for the Kubernetes store).
type Store interface {
	// Create stores the number with its labels, or returns ErrExists.
	Create(ctx context.Context, id NumericIdentity, labels Labels) error
	// Get returns the number's labels, or ErrNotFound.
	Get(ctx context.Context, id NumericIdentity) (Labels, error)
	// List returns every stored identity.
	List(ctx context.Context) (map[NumericIdentity]Labels, error)
	// Delete removes the number; a missing number is not an error.
	Delete(ctx context.Context, id NumericIdentity) error
}

// MemoryStore is an in-memory Store, safe for concurrent use. It backs the
// standalone allocator and tests of the cluster algorithm.
type MemoryStore struct {
	mu   sync.Mutex
	objs map[NumericIdentity]Labels
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{objs: make(map[NumericIdentity]Labels)}
}

// Create implements Store.
func (s *MemoryStore) Create(ctx context.Context, id NumericIdentity, labels Labels) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("create identity %d: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objs[id]; ok {
		return fmt.Errorf("create identity %d: %w", id, ErrExists)
	}
	s.objs[id] = labels
	return nil
}

// Get implements Store.
func (s *MemoryStore) Get(ctx context.Context, id NumericIdentity) (Labels, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get identity %d: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ls, ok := s.objs[id]
	if !ok {
		return nil, fmt.Errorf("get identity %d: %w", id, ErrNotFound)
	}
	return ls, nil
}

// List implements Store.
func (s *MemoryStore) List(ctx context.Context) (map[NumericIdentity]Labels, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list identities: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[NumericIdentity]Labels, len(s.objs))
	for id, ls := range s.objs {
		out[id] = ls
	}
	return out, nil
}

// Delete implements Store.
func (s *MemoryStore) Delete(ctx context.Context, id NumericIdentity) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete identity %d: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objs, id)
	return nil
}

// Len returns the number of stored identities.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.objs)
}
