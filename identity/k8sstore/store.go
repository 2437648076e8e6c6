package k8sstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/sluicenet/sluice/identity"
)

// resyncPeriod of the informer (0: none; watch events keep the cache).
const resyncPeriod = 0

// Store is an identity.Store over SluiceIdentity objects.
type Store struct {
	res      dynamic.ResourceInterface
	informer cache.SharedIndexInformer

	startOnce sync.Once
}

var _ identity.Store = (*Store)(nil)

// New returns a store using the dynamic client. Call Start to run the
// informer behind List; until it has synced, List asks the API server.
func New(dyn dynamic.Interface) *Store {
	f := dynamicinformer.NewDynamicSharedInformerFactory(dyn, resyncPeriod)
	return &Store{res: dyn.Resource(GVR), informer: f.ForResource(GVR).Informer()}
}

// Start runs the informer until ctx ends (once; later calls do nothing).
func (s *Store) Start(ctx context.Context) {
	s.startOnce.Do(func() { go s.informer.RunWithContext(ctx) })
}

// WaitSynced waits until the informer's cache is filled or ctx ends.
func (s *Store) WaitSynced(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), s.informer.HasSynced) {
		return fmt.Errorf("sync identity cache: %w", ctx.Err())
	}
	return nil
}

// Name returns the object name of a number.
func Name(id identity.NumericIdentity) string { return strconv.FormatUint(uint64(id), 10) }

// object returns the SluiceIdentity of id.
func object(id identity.NumericIdentity, labels identity.Labels) *unstructured.Unstructured {
	ls := make([]any, 0, len(labels))
	for _, l := range labels {
		ls = append(ls, l.String())
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": APIVersion,
		"kind":       Kind,
		"metadata":   map[string]any{"name": Name(id)},
		"spec":       map[string]any{"labels": ls},
	}}
}

// parse returns the number and labels of a SluiceIdentity object.
func parse(u *unstructured.Unstructured) (identity.NumericIdentity, identity.Labels, error) {
	n, err := strconv.ParseUint(u.GetName(), 10, 32)
	if err != nil {
		return 0, nil, fmt.Errorf("identity object %q: name is not a number", u.GetName())
	}
	ss, _, err := unstructured.NestedStringSlice(u.Object, "spec", "labels")
	if err != nil || len(ss) == 0 {
		return 0, nil, fmt.Errorf("identity object %q: no spec.labels", u.GetName())
	}
	return identity.NumericIdentity(n), identity.ParseLabels(ss...), nil
}

// Create implements identity.Store: it creates the object named by the
// number; AlreadyExists is identity.ErrExists.
func (s *Store) Create(ctx context.Context, id identity.NumericIdentity, labels identity.Labels) error {
	_, err := s.res.Create(ctx, object(id, labels), metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("create identity %d: %w", id, identity.ErrExists)
	case err != nil:
		return fmt.Errorf("create identity %d: %w", id, err)
	}
	return nil
}

// Get implements identity.Store, reading from the API server (the
// allocator calls it right after losing a Create race, when a cache may lag).
func (s *Store) Get(ctx context.Context, id identity.NumericIdentity) (identity.Labels, error) {
	u, err := s.res.Get(ctx, Name(id), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("get identity %d: %w", id, identity.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("get identity %d: %w", id, err)
	}
	_, ls, err := parse(u)
	return ls, err
}

// List implements identity.Store from the informer cache once it has
// synced, from the API server before. Malformed objects are skipped.
func (s *Store) List(ctx context.Context) (map[identity.NumericIdentity]identity.Labels, error) {
	out := make(map[identity.NumericIdentity]identity.Labels)
	add := func(u *unstructured.Unstructured) {
		if id, ls, err := parse(u); err == nil {
			out[id] = ls
		}
	}
	if s.informer.HasSynced() {
		for _, o := range s.informer.GetStore().List() {
			if u, ok := o.(*unstructured.Unstructured); ok {
				add(u)
			}
		}
		return out, nil
	}
	l, err := s.res.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list identities: %w", err)
	}
	for i := range l.Items {
		add(&l.Items[i])
	}
	return out, nil
}

// Delete implements identity.Store; a missing object is not an error.
func (s *Store) Delete(ctx context.Context, id identity.NumericIdentity) error {
	err := s.res.Delete(ctx, Name(id), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete identity %d: %w", id, err)
	}
	return nil
}

// objects returns the cached objects with their creation time and UID (for
// GC), or an error while the cache has not synced.
func (s *Store) objects() ([]stored, error) {
	if !s.informer.HasSynced() {
		return nil, errors.New("identity cache not synced")
	}
	var out []stored
	for _, o := range s.informer.GetStore().List() {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		id, ls, err := parse(u)
		if err != nil {
			continue
		}
		out = append(out, stored{id: id, labels: ls, uid: string(u.GetUID()), rv: u.GetResourceVersion(),
			created: u.GetCreationTimestamp().Time})
	}
	return out, nil
}

type stored struct {
	id      identity.NumericIdentity
	labels  identity.Labels
	uid, rv string
	created time.Time
}
