package tracingmgr

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/reconcile"
	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/datapath/procsensor"
	"github.com/sluicenet/sluice/policy"
	"github.com/sluicenet/sluice/policy/tracing"
)

// Rules is the process sensor's exec rule table (*procsensor.Sensor).
type Rules interface {
	// SetExecRules replaces every rule.
	SetExecRules([]procsensor.ExecRule) error
	// SetExecScope makes the non-global rules of slots apply to the
	// processes in network namespace netns.
	SetExecScope(netns uint32, slots uint64) error
	DeleteExecScope(netns uint32) error
}

// CompileFunc validates and compiles a tracing policy object
// (tracing.Compile); an error names the field and says why.
type CompileFunc func(*unstructured.Unstructured) (*tracing.Compiled, error)

// EndpointLister lists the endpoints the CNI wired (*endpointmgr.Manager).
type EndpointLister interface {
	List() ([]api.Endpoint, error)
}

// Config configures a Manager.
type Config struct {
	Rules     Rules
	Compile   CompileFunc
	Endpoints EndpointLister
	// ResyncInterval is the period of the full resync (30s when zero).
	ResyncInterval time.Duration
	Log            logrus.FieldLogger
}

// Manager holds the tracing policies and owns the sensor's exec rules and
// scopes. Its methods are safe for concurrent use.
type Manager struct {
	cfg     Config
	trigger chan struct{}
	events  *prometheus.CounterVec

	mu      sync.Mutex
	entries map[tracing.Ref]*entry
	byID    map[uint32]*entry
	nextID  uint32
	pods    map[types.NamespacedName]labels.Set
	// What the sensor holds (after the last successful calls).
	rules      []procsensor.ExecRule
	rulesKnown bool
	scopes     map[uint32]uint64
}

// entry is one tracing policy object.
type entry struct {
	ref      tracing.Ref
	id       uint32 // ExecRule.PolicyID, never reused
	json     []byte // the object last compiled
	compiled *tracing.Compiled
	selector labels.Selector // of compiled.PodSelector (nil: every pod)
	rules    []execRule
	reason   string // why compiling failed
	refused  string // why the policy got no rule slots
	objMode  tracing.Mode
	override tracing.Mode // SetMode's, "" none
	slots    uint64

	posted, enforced, monitored uint64
}

func (e *entry) mode() tracing.Mode {
	if e.override != "" {
		return e.override
	}
	return e.objMode
}

// global reports whether the policy's rules apply everywhere.
func (e *entry) global() bool {
	return e.ref.Kind == tracing.KindTracingPolicy && e.compiled.PodSelector == nil
}

// New returns a manager with no policies; call Run.
func New(cfg Config, reg prometheus.Registerer) *Manager {
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	m := &Manager{
		cfg: cfg, trigger: make(chan struct{}, 1),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_tracingpolicy_events_total",
			Help: "Events of tracing policies by action (post, sigkill, signal; would_sigkill, would_signal in monitor mode).",
		}, []string{"policy", "action"}),
		entries: map[tracing.Ref]*entry{}, byID: map[uint32]*entry{},
		pods: map[types.NamespacedName]labels.Set{}, scopes: map[uint32]uint64{},
	}
	if reg != nil {
		reg.MustRegister(m.events)
	}
	return m
}

// isTracing reports whether a raw object is a tracing policy.
func isTracing(r source.Raw) bool {
	group, _, _ := strings.Cut(r.APIVersion, "/")
	return group == policy.Group && (r.Kind == tracing.KindTracingPolicy || r.Kind == tracing.KindTracingPolicyNamespaced)
}

func rawRef(r source.Raw) tracing.Ref {
	ref := tracing.Ref{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
	if r.Kind == tracing.KindTracingPolicy {
		ref.Namespace = ""
	}
	return ref
}

// SetObjects takes the state source's raw objects (other kinds are
// ignored), compiles the tracing policies that changed and schedules a
// sync. A policy keeps its counters while it exists and its SetMode
// override until the object's own mode changes.
func (m *Manager) SetObjects(raws []source.Raw) {
	m.mu.Lock()
	seen := map[tracing.Ref]bool{}
	for _, r := range raws {
		if !isTracing(r) {
			continue
		}
		ref := rawRef(r)
		seen[ref] = true
		e := m.entries[ref]
		if e == nil {
			m.nextID++
			e = &entry{ref: ref, id: m.nextID}
			m.entries[ref], m.byID[e.id] = e, e
		}
		if e.json != nil && bytes.Equal(e.json, r.JSON) {
			continue
		}
		e.json = bytes.Clone(r.JSON)
		m.load(e, r)
	}
	for ref, e := range m.entries {
		if !seen[ref] {
			delete(m.entries, ref)
			delete(m.byID, e.id)
			m.events.DeletePartialMatch(prometheus.Labels{"policy": policyName(ref)})
		}
	}
	m.mu.Unlock()
	m.Changed()
}

// load compiles a changed object into e. Called with mu held.
func (m *Manager) load(e *entry, r source.Raw) {
	c, rules, sel, err := m.compile(r)
	log := m.cfg.Log.WithFields(logrus.Fields{"kind": e.ref.Kind, "namespace": e.ref.Namespace, "name": e.ref.Name})
	if err != nil {
		e.compiled, e.rules, e.selector, e.reason = nil, nil, nil, err.Error()
		log.WithError(err).Warn("Tracing policy rejected")
		return
	}
	mode := c.Mode
	if mode == "" {
		mode = tracing.ModeEnforce
	}
	if e.objMode != "" && mode != e.objMode {
		e.override = ""
	}
	e.compiled, e.rules, e.selector, e.reason, e.objMode = c, rules, sel, "", mode
	log.WithField("mode", e.mode()).Info("Tracing policy loaded")
}

func (m *Manager) compile(r source.Raw) (*tracing.Compiled, []execRule, labels.Selector, error) {
	var obj map[string]any
	if err := json.Unmarshal(r.JSON, &obj); err != nil {
		return nil, nil, nil, fmt.Errorf("decode: %w", err)
	}
	u := &unstructured.Unstructured{Object: obj}
	if r.Kind == tracing.KindTracingPolicyNamespaced && u.GetNamespace() == "" {
		u.SetNamespace(r.Namespace)
	}
	c, err := m.cfg.Compile(u)
	if err != nil {
		return nil, nil, nil, err
	}
	rules, err := buildRules(c)
	if err != nil {
		return nil, nil, nil, err
	}
	var sel labels.Selector
	if c.PodSelector != nil {
		if sel, err = metav1.LabelSelectorAsSelector(c.PodSelector); err != nil {
			return nil, nil, nil, fmt.Errorf("spec.podSelector: %w", err)
		}
	}
	return c, rules, sel, nil
}

// SetPods replaces the Pod objects whose labels pod selectors match, and
// schedules a sync.
func (m *Manager) SetPods(pods []*corev1.Pod) {
	byName := make(map[types.NamespacedName]labels.Set, len(pods))
	for _, p := range pods {
		byName[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = labels.Set(p.Labels)
	}
	m.mu.Lock()
	m.pods = byName
	m.mu.Unlock()
	m.Changed()
}

// Changed schedules a sync (endpoints changed; never blocks).
func (m *Manager) Changed() {
	select {
	case m.trigger <- struct{}{}:
	default:
	}
}

// Run syncs on every change, fully on a timer, and retries failures with
// exponential backoff, until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	reconcile.Loop(ctx, reconcile.Config{Trigger: m.trigger, Resync: m.cfg.ResyncInterval}, func(full bool) error {
		if err := m.Sync(full); err != nil {
			m.cfg.Log.WithError(err).Warn("Exec rules partly written; retrying")
			return err
		}
		return nil
	})
}
