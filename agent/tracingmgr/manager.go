package tracingmgr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
	"github.com/sluicenet/sluice/agent/process"
	"github.com/sluicenet/sluice/agent/reconcile"
	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/datapath"
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
	// SetExecCgroupScope makes the cgroup-scoped rules of slots apply to
	// the processes in cgroup (v2 id).
	SetExecCgroupScope(cgroup, slots uint64) error
	DeleteExecCgroupScope(cgroup uint64) error
}

// SyscallRules is the process sensor's syscall rule table and the binary
// classes its syscall and connect rules test (*procsensor.Sensor).
type SyscallRules interface {
	// SetBinaryClasses replaces every class.
	SetBinaryClasses([]procsensor.BinaryClass) error
	// SetSyscallRules replaces every rule.
	SetSyscallRules([]procsensor.SyscallRule) error
	// SetSyscallScope makes the non-global rules of slots apply to the
	// processes in network namespace netns.
	SetSyscallScope(netns uint32, slots uint64) error
	DeleteSyscallScope(netns uint32) error
	// SetSyscallCgroupScope makes the cgroup-scoped rules of slots apply
	// to the processes in cgroup (v2 id).
	SetSyscallCgroupScope(cgroup, slots uint64) error
	DeleteSyscallCgroupScope(cgroup uint64) error
}

// ConnectRules is the socket load balancer's connect rule table
// (*datapath.Datapath).
type ConnectRules interface {
	// SetConnectRules replaces every rule.
	SetConnectRules([]datapath.ConnectRule) error
	// SetConnectScope makes the non-global rules of slots apply to the
	// processes in network namespace netns.
	SetConnectScope(netns uint32, slots uint64) error
	DeleteConnectScope(netns uint32) error
	// SetConnectCgroupScope makes the cgroup-scoped rules of slots apply
	// to the processes in cgroup (v2 id).
	SetConnectCgroupScope(cgroup, slots uint64) error
	DeleteConnectCgroupScope(cgroup uint64) error
}

// scopeLister is a ConnectRules whose scopes outlive the agent (pinned
// maps: *datapath.Datapath) and can be read back.
type scopeLister interface {
	ConnectScopes() (map[uint32]uint64, error)
	ConnectCgroupScopes() (map[uint64]uint64, error)
}

// execKernel is an ExecRules whose rules and scopes outlive the agent
// (pinned maps: *procsensor.Sensor) and can be read back.
type execKernel interface {
	ExecScopes() (map[uint32]uint64, error)
	ExecCgroupScopes() (map[uint64]uint64, error)
	ExecRulesChanged([]procsensor.ExecRule) (uint64, error)
}

// classKernel is a SyscallRules whose binary classes outlive the agent.
type classKernel interface {
	BinaryClasses() ([]procsensor.BinaryClass, error)
}

// sysKernel is a SyscallRules whose rules and scopes outlive the agent.
type sysKernel interface {
	SyscallScopes() (map[uint32]uint64, error)
	SyscallCgroupScopes() (map[uint64]uint64, error)
	SyscallRulesChanged([]procsensor.SyscallRule) (uint64, error)
}

// CgroupFinder resolves container ids (as Pod status gives them, without
// the runtime:// prefix) to the ids of their cgroup v2 directories
// (*process.CgroupFinder).
type CgroupFinder interface {
	// ContainerCgroups returns the cgroup id of each container of ids it
	// finds; the others (not started yet, or gone) are left out.
	ContainerCgroups(ids []string) map[string]uint64
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
	Rules Rules
	// Syscalls holds spec.tracepoints and the binary classes (nil: policies
	// with tracepoints or connect binary filters are rejected).
	Syscalls SyscallRules
	// Connects holds spec.connects (nil, e.g. without the socket load
	// balancer: policies with connects are rejected).
	Connects  ConnectRules
	Compile   CompileFunc
	Endpoints EndpointLister
	// Cgroups finds the cgroups of the containers a containerSelector
	// selects (nil: policies with a containerSelector are rejected).
	Cgroups CgroupFinder
	// ProcRoot is where the host's namespaces are read for matchNamespaces
	// host_ns (/proc when empty).
	ProcRoot string
	// ResyncInterval is the period of the full resync (30s when zero).
	ResyncInterval time.Duration
	Log            logrus.FieldLogger
}

// Manager holds the tracing policies and owns their kernel state: the
// exec, syscall and connect rules, their scopes and the binary classes. Its
// methods are safe for concurrent use.
type Manager struct {
	cfg     Config
	loop    reconcile.Status // the owner loop's outcomes (LoopStatus)
	trigger chan struct{}
	events  *prometheus.CounterVec

	mu      sync.Mutex
	entries map[tracing.Ref]*entry
	byID    map[uint32]*entry
	nextID  uint32
	pods    map[types.NamespacedName]podInfo
	// What the kernel holds (after the last successful calls); sys and
	// conn are nil without their Config field.
	exec         *table[procsensor.ExecRule]
	sys          *table[procsensor.SyscallRule]
	conn         *table[datapath.ConnectRule]
	classes      []procsensor.BinaryClass
	classesKnown bool
	// classesAdopted: the classes an earlier agent left in the kernel were
	// read (classKernel), so they keep their ids.
	classesAdopted bool
	// classIDs are the class ids of the last plan; hooks (and those of the
	// plan before, for events still in flight) describe the syscall rules.
	classIDs         map[classKey]uint8
	hooks, prevHooks map[slotRef]process.SyscallHook
}

// entry is one tracing policy object.
type entry struct {
	ref      tracing.Ref
	id       uint32 // the PolicyID of its rules, never reused
	json     []byte // the object last compiled
	compiled *tracing.Compiled
	selector labels.Selector // of compiled.PodSelector (nil: every pod)
	rules    []execRule
	sys      []sysRule
	conn     []connRule
	reason   string // why compiling failed
	refused  string // why the policy got no rule slots
	objMode  tracing.Mode
	override tracing.Mode // SetMode's, "" none
	alloc    allocation   // slots and classes (zero when it has none)

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
	return e.ref.Kind == tracing.KindTracingPolicy && e.compiled.PodSelector == nil && e.compiled.ContainerSelector == nil
}

// byCgroup reports whether the policy's rules are scoped by the cgroups of
// the containers its containerSelector selects (not by the pods' network
// namespaces).
func (e *entry) byCgroup() bool {
	return e.compiled.ContainerSelector != nil
}

// New returns a manager with no policies; call Run.
func New(cfg Config, reg prometheus.Registerer) *Manager {
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	m := &Manager{
		cfg: cfg, trigger: make(chan struct{}, 1),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_tracingpolicy_events_total",
			Help: "Events of tracing policies by action (post, sigkill, signal, deny; would_sigkill, would_signal, would_deny in monitor mode).",
		}, []string{"policy", "action"}),
		entries: map[tracing.Ref]*entry{}, byID: map[uint32]*entry{},
		pods: map[types.NamespacedName]podInfo{}, classIDs: map[classKey]uint8{},
	}
	r := cfg.Rules
	m.exec = newTable("exec", r.SetExecRules,
		scopeFuncs{r.SetExecScope, r.DeleteExecScope, r.SetExecCgroupScope, r.DeleteExecCgroupScope},
		func(r procsensor.ExecRule) (uint8, uint64) { return r.Slot, 0 })
	if l, ok := r.(execKernel); ok {
		m.exec.kernelScopes = func() (map[scopeKey]uint64, error) {
			return kernelScopes(l.ExecScopes, l.ExecCgroupScopes)
		}
		m.exec.kernelChanged = l.ExecRulesChanged
	}
	if s := cfg.Syscalls; s != nil {
		m.sys = newTable("syscall", s.SetSyscallRules,
			scopeFuncs{s.SetSyscallScope, s.DeleteSyscallScope, s.SetSyscallCgroupScope, s.DeleteSyscallCgroupScope},
			func(r procsensor.SyscallRule) (uint8, uint64) { return r.Slot, classBits(r.Binary, r.Parent) })
		if l, ok := s.(sysKernel); ok {
			m.sys.kernelScopes = func() (map[scopeKey]uint64, error) {
				return kernelScopes(l.SyscallScopes, l.SyscallCgroupScopes)
			}
			m.sys.kernelChanged = l.SyscallRulesChanged
		}
	}
	if c := cfg.Connects; c != nil {
		m.conn = newTable("connect", c.SetConnectRules,
			scopeFuncs{c.SetConnectScope, c.DeleteConnectScope, c.SetConnectCgroupScope, c.DeleteConnectCgroupScope},
			func(r datapath.ConnectRule) (uint8, uint64) { return r.Slot, classBits(r.Binary, r.Parent) })
		if l, ok := c.(scopeLister); ok {
			m.conn.kernelScopes = func() (map[scopeKey]uint64, error) {
				return kernelScopes(l.ConnectScopes, l.ConnectCgroupScopes)
			}
		}
	}
	if reg != nil {
		reg.MustRegister(m.events)
	}
	return m
}

// kernelScopes reads the scopes of both kinds the kernel holds.
func kernelScopes(netns func() (map[uint32]uint64, error), cgroups func() (map[uint64]uint64, error)) (map[scopeKey]uint64, error) {
	out := map[scopeKey]uint64{}
	ns, err := netns()
	if err != nil {
		return nil, err
	}
	for k, v := range ns {
		out[netnsKey(k)] = v
	}
	cg, err := cgroups()
	if err != nil {
		return nil, err
	}
	for k, v := range cg {
		out[cgroupKey(k)] = v
	}
	return out, nil
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
	c, b, sel, err := m.compile(r)
	log := m.cfg.Log.WithFields(logrus.Fields{"kind": e.ref.Kind, "namespace": e.ref.Namespace, "name": e.ref.Name})
	if err != nil {
		e.compiled, e.rules, e.sys, e.conn, e.selector, e.reason = nil, nil, nil, nil, nil, err.Error()
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
	e.compiled, e.rules, e.sys, e.conn, e.selector, e.reason, e.objMode = c, b.exec, b.sys, b.conn, sel, "", mode
	log.WithField("mode", e.mode()).Info("Tracing policy loaded")
}

// built are the rules of a compiled policy.
type built struct {
	exec []execRule
	sys  []sysRule
	conn []connRule
}

func (m *Manager) compile(r source.Raw) (*tracing.Compiled, built, labels.Selector, error) {
	var b built
	var obj map[string]any
	if err := json.Unmarshal(r.JSON, &obj); err != nil {
		return nil, b, nil, fmt.Errorf("decode: %w", err)
	}
	u := &unstructured.Unstructured{Object: obj}
	if r.Kind == tracing.KindTracingPolicyNamespaced && u.GetNamespace() == "" {
		u.SetNamespace(r.Namespace)
	}
	c, err := m.cfg.Compile(u)
	if err != nil {
		return nil, b, nil, err
	}
	if b, err = m.build(c); err != nil {
		return nil, b, nil, err
	}
	var sel labels.Selector
	if c.PodSelector != nil {
		if sel, err = metav1.LabelSelectorAsSelector(c.PodSelector); err != nil {
			return nil, b, nil, fmt.Errorf("spec.podSelector: %w", err)
		}
	}
	return c, b, sel, nil
}

// build turns a compiled policy into rules of the tables this agent has.
func (m *Manager) build(c *tracing.Compiled) (built, error) {
	var b built
	var err error
	if b.exec, err = buildRules(c); err != nil {
		return b, err
	}
	hostNS := func(file string) (uint32, error) { return hostNamespace(m.cfg.ProcRoot, file) }
	if b.sys, err = buildSyscallRules(c, hostNS); err != nil {
		return b, err
	}
	if b.conn, err = buildConnectRules(c); err != nil {
		return b, err
	}
	switch {
	case c.ContainerSelector != nil && m.cfg.Cgroups == nil:
		return b, errors.New("spec.containerSelector: this agent cannot find containers' cgroups")
	case len(b.sys) > 0 && m.sys == nil:
		return b, errors.New("spec.tracepoints: this agent's process sensor has no syscall hooks")
	case len(b.conn) > 0 && m.conn == nil:
		return b, errors.New("spec.connects: connect rules need the socket load balancer (--socket-lb) and the process sensor, and this agent runs without")
	case m.sys == nil && slices.ContainsFunc(b.conn, func(r connRule) bool { return len(r.binary.keys())+len(r.parent.keys()) > 0 }):
		return b, errors.New("spec.connects: binary filters need the process sensor's binary classes, which this agent does not have")
	}
	return b, nil
}

// podInfo is what the scopes need of a Pod: the labels pod selectors
// match, and its containers (of its status) for container selectors.
type podInfo struct {
	labels     labels.Set
	containers []containerInfo
}

// containerInfo is one container of a pod's status.
type containerInfo struct {
	fields map[string]string // tracing.ContainerLabels: name, repo
	id     string            // without the runtime:// prefix; "" not started or terminated
}

// podContainers returns the init, regular and ephemeral containers of a
// pod's status (as Tetragon's containerSelector sees them).
func podContainers(p *corev1.Pod) []containerInfo {
	var out []containerInfo
	for _, sts := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses, p.Status.EphemeralContainerStatuses} {
		for _, cs := range sts {
			id := cs.ContainerID
			if _, after, ok := strings.Cut(id, "://"); ok {
				id = after
			}
			if cs.State.Terminated != nil {
				id = "" // its cgroup is gone (a completed init container)
			}
			out = append(out, containerInfo{fields: tracing.ContainerLabels(cs.Name, cs.Image), id: id})
		}
	}
	return out
}

// SetPods replaces the Pod objects whose labels pod selectors match and
// whose container statuses container selectors match, and schedules a sync:
// a restarted container (a new container id in the status) gets the scope
// of its predecessor, whose cgroup scope goes.
func (m *Manager) SetPods(pods []*corev1.Pod) {
	byName := make(map[types.NamespacedName]podInfo, len(pods))
	for _, p := range pods {
		byName[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = podInfo{labels: labels.Set(p.Labels), containers: podContainers(p)}
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
	reconcile.Loop(ctx, reconcile.Config{Trigger: m.trigger, Resync: m.cfg.ResyncInterval, Status: &m.loop}, func(full bool) error {
		if err := m.Sync(full); err != nil {
			m.cfg.Log.WithError(err).Warn("Tracing policy rules partly written; retrying")
			return err
		}
		return nil
	})
}

// LoopStatus returns the outcomes of the owner loop's syncs.
func (m *Manager) LoopStatus() reconcile.LoopStatus { return m.loop.Get() }
