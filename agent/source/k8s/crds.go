package k8s

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
)

// DefaultCRDPoll is how often a Sluice CRD the API server does not serve is
// looked for again.
const DefaultCRDPoll = 5 * time.Second

// policyResource is one watched policy resource. The Sluice CRDs are
// optional: a cluster whose CRDs were installed by an earlier release (Helm
// installs a chart's crds/ on install, never on upgrade) lacks the newer
// ones, and an informer on a resource the API server does not serve never
// syncs, which would keep the agent from ever programming anything. A CRD
// that is not served has no objects, so leaving it out loosens nothing; it
// is watched from the moment it is served.
type policyResource struct {
	gvr     schema.GroupVersionResource
	builtin bool                // NetworkPolicy: always served
	pending cache.GenericLister // registered at start, until the first sync
	lister  cache.GenericLister // under Source.mu; nil while not served
	missing bool                // under Source.mu
}

func (s *Source) listerOf(r *policyResource) cache.GenericLister {
	s.mu.Lock()
	defer s.mu.Unlock()
	return r.lister
}

// MissingCRDs names the Sluice policy resources the API server did not
// serve when last looked at (their objects cannot exist).
func (s *Source) MissingCRDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.policyRes {
		if r.missing {
			out = append(out, r.gvr.Resource)
		}
	}
	return out
}

// served reports whether the API server serves gvr. Only a definite answer
// counts: NotFound (the group version is not served at all) or a resource
// list without it is false; any other error is returned, never taken for
// absent (a policy believed not to exist would go unenforced).
func (s *Source) served(gvr schema.GroupVersionResource) (bool, error) {
	list, err := s.cfg.Client.Discovery().ServerResourcesForGroupVersion(gvr.GroupVersion().String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discover %s: %w", gvr.GroupVersion(), err)
	}
	for _, r := range list.APIResources {
		if r.Name == gvr.Resource {
			return true, nil
		}
	}
	return false, nil
}

// servedRetrying is served, retried with backoff until it answers or ctx
// ends.
func (s *Source) servedRetrying(ctx context.Context, gvr schema.GroupVersionResource) (bool, error) {
	delay := 200 * time.Millisecond
	for {
		ok, err := s.served(gvr)
		if err == nil {
			return ok, nil
		}
		s.log.WithError(err).Warn("Cannot tell whether a Sluice CRD is served; retrying")
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("k8s source: %w", context.Cause(ctx))
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// startServedCRDs registers and starts the informers of the Sluice CRDs the
// API server serves (their first sync is waited for with the others) and
// marks the rest missing.
func (s *Source) startServedCRDs(ctx context.Context) error {
	for _, r := range s.policyRes {
		if r.builtin {
			continue
		}
		ok, err := s.servedRetrying(ctx, r.gvr)
		if err != nil {
			return err
		}
		if !ok {
			s.mu.Lock()
			r.missing = true
			s.mu.Unlock()
			s.log.WithField("resource", r.gvr.Resource).Warn("CRD not installed: no such policies can exist; " +
				"watching for it (install the chart's CRDs: Helm does not upgrade crds/)")
			continue
		}
		inf, err := s.policyInformer(r.gvr)
		if err != nil {
			return err
		}
		if err := s.track(inf.Informer(), s.policyHandler); err != nil {
			return err
		}
		r.pending = inf.Lister()
	}
	s.dynFactory.Start(ctx.Done())
	return nil
}

// markCRDsSynced publishes the listers startServedCRDs registered, once the
// caches have synced.
func (s *Source) markCRDsSynced() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.policyRes {
		if r.pending != nil {
			r.lister, r.pending = r.pending, nil
		}
	}
}

// watchMissingCRDs looks for the missing CRDs every CRDPoll; one that is
// served gets its informer, and once that has synced its objects join the
// next snapshot.
func (s *Source) watchMissingCRDs(ctx context.Context) {
	t := time.NewTicker(s.cfg.CRDPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		left := 0
		for _, r := range s.policyRes {
			s.mu.Lock()
			missing := r.missing
			s.mu.Unlock()
			if !missing {
				continue
			}
			if ok, err := s.served(r.gvr); err != nil || !ok {
				left++
				continue
			}
			if err := s.startLate(ctx, r); err != nil {
				s.log.WithError(err).WithField("resource", r.gvr.Resource).Warn("Cannot watch a CRD that is now served; retrying")
				left++
			}
		}
		if left == 0 {
			return
		}
	}
}

// startLate starts r's informer after the initial sync and publishes its
// lister once it has synced.
func (s *Source) startLate(ctx context.Context, r *policyResource) error {
	inf, err := s.policyInformer(r.gvr)
	if err != nil {
		return err
	}
	if err := s.handle(inf.Informer(), s.policyHandler); err != nil {
		return err
	}
	s.dynFactory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		return fmt.Errorf("cache of %s not synced: %w", r.gvr.Resource, context.Cause(ctx))
	}
	s.mu.Lock()
	r.lister, r.missing = inf.Lister(), false
	s.mu.Unlock()
	s.log.WithField("resource", r.gvr.Resource).Info("CRD now served: watching its policies")
	s.poke()
	return nil
}
