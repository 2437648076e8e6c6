package k8sstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluicenet/sluice/identity"
)

// GC garbage-collects SluiceIdentity objects. Every agent runs one; passes
// are idempotent and need no leader. The rule, for each object:
//
//   - it is in use while the label set of any Pod in the cluster (the
//     caller's synced view of all Pods and Namespaces) equals its labels;
//   - an object is deleted only once this GC has seen it unused on every
//     pass for at least the grace period, and it was created at least the
//     grace period ago (a node may have just created it for a Pod this
//     node's cache does not show yet);
//   - the delete carries the UID and resourceVersion seen as preconditions,
//     so a number deleted and claimed again meanwhile is left alone.
//
// Every agent allocates identities for all Pods of the cluster (their IPs
// go into its IP cache), so a node references a number only while it sees a
// Pod with those labels; once no Pod has had them for the grace period (far
// longer than informer lag), no node still uses the number and it may be
// reused. Agents only forget numbers locally (their allocator's store
// Delete is a no-op); only this collector deletes objects, and an agent
// that still references a number whose object is gone creates it again on
// its next store sync.
type GC struct {
	store *Store
	grace time.Duration
	now   func() time.Time

	mu     sync.Mutex
	unused map[string]time.Time // UID -> first pass that saw it unused
}

// NewGC returns a collector over the store's cache (Start the store first).
func NewGC(s *Store, grace time.Duration) *GC {
	return &GC{store: s, grace: grace, now: time.Now, unused: map[string]time.Time{}}
}

// Collect runs one pass. inUse are the label sets of every Pod in the
// cluster; it must come from a synced view. It returns the numbers deleted.
func (g *GC) Collect(ctx context.Context, inUse []identity.Labels) ([]identity.NumericIdentity, error) {
	objs, err := g.store.objects()
	if err != nil {
		return nil, err
	}
	used := make(map[string]bool, len(inUse))
	for _, ls := range inUse {
		used[ls.String()] = true
	}
	g.mu.Lock()
	now := g.now()
	seen := make(map[string]bool, len(objs))
	var victims []stored
	for _, o := range objs {
		seen[o.uid] = true
		if used[o.labels.String()] {
			delete(g.unused, o.uid)
			continue
		}
		first, ok := g.unused[o.uid]
		if !ok {
			g.unused[o.uid] = now
			continue
		}
		if now.Sub(first) >= g.grace && now.Sub(o.created) >= g.grace {
			victims = append(victims, o)
		}
	}
	for uid := range g.unused {
		if !seen[uid] {
			delete(g.unused, uid)
		}
	}
	g.mu.Unlock()

	var deleted []identity.NumericIdentity
	for _, o := range victims {
		uid := types.UID(o.uid)
		err := g.store.res.Delete(ctx, Name(o.id), metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &o.rv},
		})
		switch {
		case err == nil:
			deleted = append(deleted, o.id)
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
			// another agent collected it, or it changed: nothing to do
		default:
			return deleted, fmt.Errorf("gc identity %d: %w", o.id, err)
		}
	}
	return deleted, nil
}
