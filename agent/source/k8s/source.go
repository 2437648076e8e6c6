package k8s

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/sluicenet/sluice/agent/source"
)

// DefaultDebounce is how long the source waits after a change for more
// changes before it computes a snapshot.
const DefaultDebounce = 100 * time.Millisecond

// Config configures a Source.
type Config struct {
	// Client talks to the API server (NewClientset).
	Client kubernetes.Interface
	// Dynamic (NewDynamicClient), when set, also watches NetworkPolicies
	// and the Sluice policy CRDs into Snapshot.Others. A CRD the API server
	// does not serve (yet) is watched from when it does (crds.go).
	Dynamic dynamic.Interface
	// CRDPoll is how often a CRD that is not served is looked for again; 0
	// uses DefaultCRDPoll.
	CRDPoll time.Duration
	// NodeName is this node's Node object (the kubelet's --hostname-override
	// or hostname; in a DaemonSet the downward API's spec.nodeName).
	NodeName string
	// Resync is the informers' periodic resync; 0 disables it (the agent
	// resyncs its maps on its own timer).
	Resync time.Duration
	// Debounce coalesces bursts of events; 0 uses DefaultDebounce.
	Debounce time.Duration
	// Log is the source's logger; nil uses logrus's standard logger.
	Log logrus.FieldLogger
}

// Source watches the API server through shared informers.
type Source struct {
	cfg Config
	log logrus.FieldLogger

	factory    informers.SharedInformerFactory
	nodes      corelisters.NodeLister
	namespaces corelisters.NamespaceLister
	pods       corelisters.PodLister
	services   corelisters.ServiceLister
	slices     discoverylisters.EndpointSliceLister
	synced     []cache.InformerSynced

	dynFactory    dynamicinformer.DynamicSharedInformerFactory
	policyRes     []*policyResource // in policyGVRs order; lister under mu
	policyHandler cache.ResourceEventHandler

	trigger chan struct{}

	copyMu sync.Mutex     // serializes Snapshot's use of copies
	copies snapshotCopies // the objects the last snapshot handed out

	mu        sync.Mutex
	changes   source.ChangeSet // Services, EndpointSlices, Pods changed since the last snapshot
	lost      bool             // a snapshot failed: the next one's changes are unknown
	node      NodeInfo
	nodeSeen  chan struct{} // closed and replaced on every change of node
	isSynced  bool
	sentFirst bool // a snapshot went out (the first has no Changes)
}

// New sets the informers up; nothing talks to the API server before Run.
func New(cfg Config) (*Source, error) {
	if cfg.Client == nil {
		return nil, errors.New("k8s source: no client")
	}
	if cfg.NodeName == "" {
		return nil, errors.New("k8s source: no node name")
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.CRDPoll <= 0 {
		cfg.CRDPoll = DefaultCRDPoll
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	s := &Source{
		cfg:      cfg,
		log:      cfg.Log,
		trigger:  make(chan struct{}, 1),
		nodeSeen: make(chan struct{}),
		node:     NodeInfo{Name: cfg.NodeName},
	}
	s.factory = informers.NewSharedInformerFactoryWithOptions(cfg.Client, cfg.Resync,
		informers.WithTransform(stripManagedFields))

	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.poke() },
		UpdateFunc: func(_, _ any) { s.poke() },
		DeleteFunc: func(any) { s.poke() },
	}
	nodeHandler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.nodeChanged(o, false) },
		UpdateFunc: func(_, o any) { s.nodeChanged(o, false) },
		DeleteFunc: func(o any) { s.nodeChanged(o, true) },
	}
	type informer interface {
		Informer() cache.SharedIndexInformer
	}
	core, disc := s.factory.Core().V1(), s.factory.Discovery().V1()
	s.nodes, s.namespaces, s.pods, s.services = core.Nodes().Lister(), core.Namespaces().Lister(), core.Pods().Lister(), core.Services().Lister()
	s.slices = disc.EndpointSlices().Lister()
	for _, x := range []struct {
		i informer
		h cache.ResourceEventHandler
	}{
		{core.Nodes(), nodeHandler},
		{core.Namespaces(), handler},
		{core.Pods(), s.recordingHandler(source.KindPod)},
		{core.Services(), s.recordingHandler(source.KindService)},
		{disc.EndpointSlices(), s.recordingHandler(source.KindEndpointSlice)},
	} {
		if err := s.track(x.i.Informer(), x.h); err != nil {
			return nil, err
		}
	}
	if cfg.Dynamic != nil {
		if err := s.addPolicyInformers(handler); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// handle sets inf's watch error handler and adds h.
func (s *Source) handle(inf cache.SharedIndexInformer, h cache.ResourceEventHandler) error {
	if err := inf.SetWatchErrorHandlerWithContext(s.watchError); err != nil {
		return fmt.Errorf("k8s source: watch error handler: %w", err)
	}
	if _, err := inf.AddEventHandler(h); err != nil {
		return fmt.Errorf("k8s source: event handler: %w", err)
	}
	return nil
}

// track is handle for an informer registered before Run waits for the
// caches: Run waits for inf's first sync too.
func (s *Source) track(inf cache.SharedIndexInformer, h cache.ResourceEventHandler) error {
	if err := s.handle(inf, h); err != nil {
		return err
	}
	s.synced = append(s.synced, inf.HasSynced)
	return nil
}

// Run starts the informers, waits for their caches, then calls onChange with
// a full snapshot after the initial sync and after every (debounced) change,
// until ctx is cancelled. onChange runs on Run's goroutine, one call at a time.
func (s *Source) Run(ctx context.Context, onChange func(source.Snapshot)) error {
	s.factory.Start(ctx.Done())
	defer s.factory.Shutdown()
	if s.dynFactory != nil {
		s.dynFactory.Start(ctx.Done())
		defer s.dynFactory.Shutdown()
	}
	if s.dynFactory != nil {
		if err := s.startServedCRDs(ctx); err != nil {
			return err
		}
	}
	if !cache.WaitForCacheSync(ctx.Done(), s.synced...) {
		return fmt.Errorf("k8s source: caches not synced: %w", context.Cause(ctx))
	}
	s.markCRDsSynced()
	if s.dynFactory != nil && len(s.MissingCRDs()) > 0 {
		go s.watchMissingCRDs(ctx)
	}
	s.mu.Lock()
	s.isSynced = true
	s.mu.Unlock()
	s.log.WithField("node", s.cfg.NodeName).Info("Kubernetes caches synced")
	s.poke()
	timer := time.NewTimer(0)
	<-timer.C
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.trigger:
			timer.Reset(s.cfg.Debounce)
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil
			case <-timer.C:
			}
			select { // changes during the debounce are in this snapshot
			case <-s.trigger:
			default:
			}
			changes := s.takeChanges() // taken first: a later event is in the next snapshot's
			snap, err := s.Snapshot()
			if err != nil {
				s.mu.Lock()
				s.lost = true
				s.mu.Unlock()
				s.log.WithError(err).Warn("Snapshot from the informer caches failed")
				continue
			}
			snap.Changes = changes
			onChange(snap)
		}
	}
}

// Synced reports whether the informer caches completed their first list.
func (s *Source) Synced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.isSynced
}

// Node returns what is known of this node (invalid fields until its Node
// object is seen with them).
func (s *Source) Node() NodeInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.node
}

// WaitNode blocks until this node has a PodCIDR and an InternalIP (Run must
// be running) or ctx ends.
func (s *Source) WaitNode(ctx context.Context) (NodeInfo, error) {
	for {
		s.mu.Lock()
		n, ch := s.node, s.nodeSeen
		s.mu.Unlock()
		if n.Ready() {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return n, fmt.Errorf("wait for node %s PodCIDR and InternalIP: %w", s.cfg.NodeName, context.Cause(ctx))
		case <-ch:
		}
	}
}

// recordingHandler notes the name of every changed object of kind for the
// next snapshot's Changes and pokes the snapshot loop.
func (s *Source) recordingHandler(kind string) cache.ResourceEventHandler {
	record := func(o any) {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		if m, ok := o.(metav1.Object); ok {
			s.mu.Lock()
			s.changes.Add(kind, m.GetNamespace(), m.GetName())
			s.mu.Unlock()
		} else {
			s.mu.Lock()
			s.lost = true
			s.mu.Unlock()
		}
		s.poke()
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    record,
		UpdateFunc: func(_, o any) { record(o) },
		DeleteFunc: record,
	}
}

// takeChanges returns the changes recorded since the last call, nil for the
// first snapshot and after a failed one (changes unknown).
func (s *Source) takeChanges() *source.Changes {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.changes.Take()
	if !s.sentFirst || s.lost {
		s.sentFirst, s.lost = true, false
		return nil
	}
	return c
}

func (s *Source) poke() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

func (s *Source) nodeChanged(o any, deleted bool) {
	s.poke()
	n, ok := o.(*corev1.Node)
	if !ok {
		if t, isTomb := o.(cache.DeletedFinalStateUnknown); isTomb {
			n, ok = t.Obj.(*corev1.Node)
		}
	}
	if !ok || n.Name != s.cfg.NodeName {
		return
	}
	info := NodeInfo{Name: n.Name}
	if !deleted {
		var err error
		if info, err = NodeInfoFrom(n); err != nil {
			s.log.WithError(err).Warn("Own Node object has malformed fields")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if info != s.node {
		s.log.WithFields(logrus.Fields{"podCIDR": info.PodCIDR, "internalIP": info.InternalIP, "deleted": deleted}).Info("Own node changed")
		s.node = info
		close(s.nodeSeen)
		s.nodeSeen = make(chan struct{})
	}
}

func (s *Source) watchError(ctx context.Context, r *cache.Reflector, err error) {
	// The reflector relists and rewatches on its own (watch expiry, API
	// server restart); the caches keep serving the last state meanwhile.
	cache.DefaultWatchErrorHandler(ctx, r, err)
	s.log.WithError(err).Debug("Watch interrupted; relisting")
}

// listAll lists every cached object of each kind the snapshot carries.
func (s *Source) listAll() (nss []*corev1.Namespace, pods []*corev1.Pod,
	svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice, err error) {
	all := labels.Everything()
	if nss, err = s.namespaces.List(all); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("list namespaces: %w", err)
	}
	if pods, err = s.pods.List(all); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("list pods: %w", err)
	}
	if svcs, err = s.services.List(all); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("list services: %w", err)
	}
	if slices, err = s.slices.List(all); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("list endpoint slices: %w", err)
	}
	return nss, pods, svcs, slices, nil
}

// stripManagedFields drops metadata.managedFields from cached objects: the
// agent never reads them and they are often the largest part of an object.
func stripManagedFields(o any) (any, error) {
	if m, ok := o.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return o, nil
}
