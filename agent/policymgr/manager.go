package policymgr

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/identitymgr"
	"github.com/sluicenet/sluice/agent/reconcile"
	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/datapath/policymap"
	"github.com/sluicenet/sluice/identity"
	"github.com/sluicenet/sluice/policy"
)

// Datapath is the per-endpoint policy map and config (implemented by
// *policymap.Map).
type Datapath interface {
	SetConfig(epID uint16, c policymap.Config) error
	Upsert(epID uint16, k policymap.Key, e policymap.Entry) error
	Delete(epID uint16, k policymap.Key) error
	Entries(epID uint16) (map[policymap.Key]policymap.Entry, error)
	// UpsertAddr, DeleteAddr and Addrs write, delete and list the nodes of
	// an endpoint's address trie (value: address-set identity).
	UpsertAddr(epID uint16, k policymap.AddrKey, set uint32) error
	DeleteAddr(epID uint16, k policymap.AddrKey) error
	Addrs(epID uint16) (map[policymap.AddrKey]uint32, error)
	// DeleteEndpoint removes the endpoint's entries, address nodes and
	// config; Endpoints lists the endpoints with any of them.
	DeleteEndpoint(epID uint16) error
	Endpoints() (map[uint16]bool, error)
}

// Identities is what the manager needs of the identity manager.
type Identities interface {
	Endpoints() map[uint16]identitymgr.EndpointIdentity
	// Unresolved lists the endpoints that exist but have no identity
	// because its allocation failed.
	Unresolved() map[uint16]bool
	SetPolicyPrefixes([]netip.Prefix)
}

// Config tunes the manager.
type Config struct {
	Mode           policy.EnforcementMode
	Audit          bool
	ResyncInterval time.Duration // full resync against the kernel (default 30s)
	// Rejected says what a rejected policy enforces (default RejectedDeny).
	Rejected RejectedMode
}

// Manager owns the resolver and the per-endpoint policy maps.
type Manager struct {
	cfg   Config
	loop  reconcile.Status // the owner loop's outcomes (LoopStatus)
	log   logrus.FieldLogger
	dp    Datapath
	ids   Identities
	rules *RuleTable

	mu       sync.Mutex
	res      *policy.Resolver
	raws     []source.Raw
	applied  map[policy.Ref][]byte // JSON of the applied version
	status   map[policy.Ref]api.PolicyStatus
	events   []identity.Event
	eps      map[uint16]identitymgr.EndpointIdentity
	written  map[uint16]written
	prefixes []netip.Prefix
	lastErr  error
	errCount uint64
	// rejectedRaw holds the JSON of rejected objects (not re-logged).
	rejectedRaw map[policy.Ref][]byte

	trigger chan struct{}
}

// written is what the manager last wrote (or found) for an endpoint.
type written struct {
	cfg      policymap.Config
	cfgKnown bool // cfg is what the kernel holds
	entries  map[policymap.Key]policymap.Entry
	addrs    map[policymap.AddrKey]uint32
}

// New returns a manager; call Run.
func New(cfg Config, dp Datapath, ids Identities, log logrus.FieldLogger) *Manager {
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = 30 * time.Second
	}
	return &Manager{
		cfg: cfg, log: log, dp: dp, ids: ids, rules: NewRuleTable(),
		res:     policy.NewResolver(policy.Options{Mode: cfg.Mode, Audit: cfg.Audit}),
		applied: map[policy.Ref][]byte{},
		status:  map[policy.Ref]api.PolicyStatus{},
		eps:     map[uint16]identitymgr.EndpointIdentity{},
		written: map[uint16]written{},
		trigger: make(chan struct{}, 1),
	}
}

// Rules returns the rule ID table.
func (m *Manager) Rules() *RuleTable { return m.rules }

// SetObjects takes the state source's raw objects (non-policy kinds are
// ignored) and schedules a sync.
func (m *Manager) SetObjects(raws []source.Raw) {
	var ps []source.Raw
	for _, r := range raws {
		if isPolicy(r) {
			ps = append(ps, r)
		}
	}
	m.mu.Lock()
	m.raws = ps
	m.mu.Unlock()
	m.Changed()
}

// IdentityEvent queues an identity change for the resolver (the identity
// allocator's OnChange).
func (m *Manager) IdentityEvent(ev identity.Event) {
	m.mu.Lock()
	m.events = append(m.events, ev)
	m.mu.Unlock()
	m.Changed()
}

// Changed schedules a sync.
func (m *Manager) Changed() {
	select {
	case m.trigger <- struct{}{}:
	default:
	}
}

// update feeds the resolver with the current identities, policies and
// endpoints. Called with mu held.
func (m *Manager) update() {
	for _, ev := range m.events {
		switch ev.Kind {
		case identity.Added:
			m.res.UpsertIdentity(ev.ID, ev.Labels)
		case identity.Deleted:
			m.res.DeleteIdentity(ev.ID)
		}
	}
	m.events = nil

	seen := map[policy.Ref]bool{}
	for _, r := range m.raws {
		key := rawKey(r)
		seen[key] = true
		if old, ok := m.applied[key]; ok && bytes.Equal(old, r.JSON) {
			continue
		}
		if st, ok := m.status[key]; ok && !st.Accepted && st.File == r.File && bytes.Equal(m.rejectedJSON(key), r.JSON) {
			continue
		}
		st := api.PolicyStatus{Kind: key.Kind, Namespace: key.Namespace, Name: key.Name, File: r.File}
		p, err := compile(r)
		if err != nil {
			m.reject(key, r, st, err)
			continue
		}
		st.Accepted, st.Warnings, st.Message = true, p.Warnings, "accepted"
		m.res.UpsertPolicy(p)
		m.applied[key] = r.JSON
		m.status[key] = st
		m.log.WithField("policy", key.String()).Info("Policy applied")
	}
	for key := range m.status {
		if seen[key] {
			continue
		}
		if _, ok := m.applied[key]; ok {
			m.res.DeletePolicy(key)
			delete(m.applied, key)
			m.log.WithField("policy", key.String()).Info("Policy removed")
		}
		delete(m.status, key)
		delete(m.rejectedRaw, key)
	}

	cur := m.ids.Endpoints()
	for id := range m.eps {
		if _, ok := cur[id]; !ok {
			m.res.DeleteEndpoint(policy.EndpointID(id))
		}
	}
	for id, ei := range cur {
		if old, ok := m.eps[id]; ok && old.Identity == ei.Identity && old.Labels.Equal(ei.Labels) && samePorts(old.NamedPorts, ei.NamedPorts) &&
			old.Endpoint.IPv4 == ei.Endpoint.IPv4 {
			continue
		}
		ip, _ := netip.ParseAddr(ei.Endpoint.IPv4)
		ep := policy.Endpoint{ID: policy.EndpointID(id), Identity: ei.Identity, Labels: ei.Labels, NamedPorts: map[string]policy.NamedPort{}, IPv4: ip}
		for n, p := range ei.NamedPorts {
			ep.NamedPorts[n] = policy.NamedPort{Port: p.Port, Proto: p.Proto}
		}
		m.res.UpsertEndpoint(ep)
	}
	m.eps = cur

	if ps := m.res.Prefixes(); !slices.Equal(ps, m.prefixes) {
		m.prefixes = ps
		m.ids.SetPolicyPrefixes(ps)
	}
}

func samePorts(a, b map[string]identitymgr.NamedPort) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// reject records a rejected policy object. Nothing of it applies; what the
// old version enforced goes. With RejectedDeny (the default) the endpoints
// it selects get default deny in the directions it covers instead
// (policy.RejectedFallback): fail closed, as whoever wrote a restrictive
// rule expects. Called with mu held.
func (m *Manager) reject(key policy.Ref, r source.Raw, st api.PolicyStatus, err error) {
	st.Reason = err.Error()
	var fb *policy.Policy
	var dirs []policy.Direction
	failClosed := m.cfg.Rejected != RejectedIgnore
	if failClosed {
		fb, dirs = policy.RejectedFallback(key, r.JSON)
	}
	for _, d := range dirs {
		st.DefaultDeny = append(st.DefaultDeny, d.String())
	}
	st.Message = policy.RejectedMessage(st.Reason, dirs, failClosed)
	log := m.log.WithFields(logrus.Fields{"policy": key.String(), "file": r.File}).WithError(err)
	if fb != nil {
		m.res.UpsertPolicy(fb)
		m.applied[key] = r.JSON
		log.WithField("defaultDeny", st.DefaultDeny).Warn("Policy rejected; its endpoints get default deny in its directions")
	} else {
		log.Warn("Policy rejected; nothing of it applies")
		if _, ok := m.applied[key]; ok {
			m.res.DeletePolicy(key)
			delete(m.applied, key)
		}
	}
	m.status[key] = st
	if m.rejectedRaw == nil {
		m.rejectedRaw = map[policy.Ref][]byte{}
	}
	m.rejectedRaw[key] = r.JSON
}

func (m *Manager) rejectedJSON(key policy.Ref) []byte { return m.rejectedRaw[key] }

// SyncStats says what one sync wrote.
type SyncStats struct {
	Endpoints, Upserted, Deleted, Configs int
}

// Sync updates the resolver and writes every endpoint's policy whose desired
// state differs from what was written. With full, what was written is read
// back from the kernel first, so drift is repaired.
func (m *Manager) Sync(full bool) (SyncStats, error) {
	var st SyncStats
	m.mu.Lock()
	defer m.mu.Unlock()
	m.update()
	var errs []error
	ids := m.res.Endpoints()
	st.Endpoints = len(ids)
	live := map[uint16]bool{}
	for _, pid := range ids {
		id := uint16(pid)
		live[id] = true
		ep, _ := m.res.MapState(pid)
		cfg, entries := MapState(ep, m.rules.ID)
		want := written{cfg: cfg, cfgKnown: true, entries: entries, addrs: AddrState(ep)}
		have, ok := m.written[id]
		if full || !ok {
			entries, err := m.dp.Entries(id)
			if err != nil {
				errs = append(errs, fmt.Errorf("read policy map of endpoint %d: %w", id, err))
				continue
			}
			addrs, err := m.dp.Addrs(id)
			if err != nil {
				errs = append(errs, fmt.Errorf("read address policy of endpoint %d: %w", id, err))
				continue
			}
			// The config is not read back: rewrite it.
			have.entries, have.addrs, have.cfgKnown = entries, addrs, false
		}
		if err := m.write(id, have, want, &st); err != nil {
			errs = append(errs, err)
			delete(m.written, id)
			continue
		}
		m.written[id] = want
	}
	stale := map[uint16]bool{}
	for id := range m.written {
		stale[id] = true
	}
	if full {
		// Endpoints deleted while the agent was down still have entries
		// that no one remembers writing.
		inKernel, err := m.dp.Endpoints()
		if err != nil {
			errs = append(errs, fmt.Errorf("list endpoints with policy: %w", err))
		}
		for id := range inKernel {
			stale[id] = true
		}
	}
	// An endpoint that exists but has no identity yet (its allocation
	// failed, e.g. right after a restart) keeps what is written for it:
	// deleting its config would stop enforcing its policy.
	unresolved := m.ids.Unresolved()
	for id := range stale {
		if live[id] || unresolved[id] {
			continue
		}
		if err := m.dp.DeleteEndpoint(id); err != nil {
			errs = append(errs, fmt.Errorf("delete policy of endpoint %d: %w", id, err))
			continue
		}
		delete(m.written, id)
	}
	err := errors.Join(errs...)
	m.lastErr = err
	if err != nil {
		m.errCount++
	}
	return st, err
}

// write turns have into want for one endpoint, in an order under which a
// packet's address stage is always judged on the whole old or the whole new
// state, never on a mix (the identity stage is written entry by entry, as it
// always was; the two stages can briefly come from different states):
//
//  1. new and changed policy entries, address-set entries included. A set
//     whose rules or entries change gets a number the old state did not use
//     (the resolver's numbering), so writing it alters nothing an old trie
//     node reaches;
//  2. new and changed trie nodes, longest prefix first. Then an address
//     whose longest node is already new has no longer new node still to
//     come: it gets its whole new verdict; one whose longest node is still
//     old has no longer old node (each was rewritten or is still there):
//     its whole old verdict;
//  3. the config (enforcement, address stages): turned on once entries and
//     nodes are in, so it never drops what the new state allows; an address
//     stage turned off before its nodes go;
//  4. stale trie nodes, shortest prefix first (the mirror image of 2: an
//     address whose longest node is stale still has every longer old node);
//  5. stale policy entries, which no node reaches any more.
func (m *Manager) write(id uint16, have, want written, st *SyncStats) error {
	for k, v := range want.entries {
		if old, ok := have.entries[k]; ok && old == v {
			continue
		}
		if err := m.dp.Upsert(id, k, v); err != nil {
			return fmt.Errorf("write policy entry of endpoint %d: %w", id, err)
		}
		st.Upserted++
	}
	var up, del []policymap.AddrKey
	for k, v := range want.addrs {
		if old, ok := have.addrs[k]; !ok || old != v {
			up = append(up, k)
		}
	}
	for k := range have.addrs {
		if _, ok := want.addrs[k]; !ok {
			del = append(del, k)
		}
	}
	byBits := func(a, b policymap.AddrKey) int { return cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()) }
	slices.SortFunc(up, func(a, b policymap.AddrKey) int { return byBits(b, a) })
	slices.SortFunc(del, byBits)
	for _, k := range up {
		if err := m.dp.UpsertAddr(id, k, want.addrs[k]); err != nil {
			return fmt.Errorf("write address policy node of endpoint %d: %w", id, err)
		}
		st.Upserted++
	}
	if !have.cfgKnown || have.cfg != want.cfg {
		if err := m.dp.SetConfig(id, want.cfg); err != nil {
			return fmt.Errorf("write policy config of endpoint %d: %w", id, err)
		}
		st.Configs++
	}
	for _, k := range del {
		if err := m.dp.DeleteAddr(id, k); err != nil {
			return fmt.Errorf("delete address policy node of endpoint %d: %w", id, err)
		}
		st.Deleted++
	}
	for k := range have.entries {
		if _, ok := want.entries[k]; ok {
			continue
		}
		if err := m.dp.Delete(id, k); err != nil {
			return fmt.Errorf("delete policy entry of endpoint %d: %w", id, err)
		}
		st.Deleted++
	}
	return nil
}

// Run syncs on every change, fully on a timer, and retries failures with
// exponential backoff, until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	reconcile.Loop(ctx, reconcile.Config{Trigger: m.trigger, Resync: m.cfg.ResyncInterval, Status: &m.loop}, func(full bool) error {
		start := time.Now()
		st, err := m.Sync(full)
		log := m.log.WithFields(logrus.Fields{
			"endpoints": st.Endpoints, "upserted": st.Upserted, "deleted": st.Deleted,
			"configs": st.Configs, "duration": time.Since(start).Round(time.Microsecond),
		})
		if err != nil {
			log.WithError(err).Warn("Policy maps partly written; retrying")
			return err
		}
		if st.Upserted+st.Deleted+st.Configs > 0 {
			log.Info("Policy maps written")
		}
		return nil
	})
}

// LoopStatus returns the outcomes of the owner loop's syncs.
func (m *Manager) LoopStatus() reconcile.LoopStatus { return m.loop.Get() }

// Errors returns the number of failed syncs and the last sync's error.
func (m *Manager) Errors() (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.errCount, m.lastErr
}

// Status returns every policy object's status, sorted by kind, namespace
// and name.
func (m *Manager) Status() []api.PolicyStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	counts := map[policy.Ref]int{}
	for _, id := range m.res.Endpoints() {
		seen := map[policy.Ref]bool{}
		for _, r := range m.res.RulesSelecting(id) {
			k := policy.Ref{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
			if !seen[k] {
				seen[k] = true
				counts[k]++
			}
		}
	}
	out := make([]api.PolicyStatus, 0, len(m.status))
	for k, st := range m.status {
		st.Endpoints = counts[k]
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return out
}
