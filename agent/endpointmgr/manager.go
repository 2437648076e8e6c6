package endpointmgr

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/state"
	"github.com/sluicenet/sluice/datapath/endpointmap"
	"github.com/sluicenet/sluice/datapath/metricsmap"
)

// EndpointMap is the endpoint map the manager owns (*endpointmap.Map).
type EndpointMap interface {
	Upsert(endpointmap.Endpoint) error
	Delete(netip.Addr) error
	List() ([]endpointmap.Endpoint, error)
}

// CounterMap is the packet counters, per pod interface (*metricsmap.Map).
type CounterMap interface {
	Counters() ([]metricsmap.Counter, error)
	DeleteCounters(ifindex uint32) error
}

// Manager owns the desired endpoints and the sluice_endpoints_v1 map. All its
// methods are safe for concurrent use; mutations are serialised.
type Manager struct {
	mu    sync.Mutex
	dp    EndpointMap
	ctrs  CounterMap
	store *state.Store
	log   logrus.FieldLogger
	now   func() time.Time

	byKey map[string]*entry
	byID  map[uint16]*entry
	byIP  map[netip.Addr]*entry

	onChange func() // non-blocking; called with mu held
}

// OnChange registers fn to be called whenever an endpoint is added, replaced
// or removed. fn must not block or call back into the manager.
func (m *Manager) OnChange(fn func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onChange = fn
}

func (m *Manager) changed() {
	if m.onChange != nil {
		m.onChange()
	}
}

// New returns an empty manager writing state files to store, entries to dp
// and dropping the counters of removed endpoints from ctrs.
func New(dp EndpointMap, ctrs CounterMap, store *state.Store, log logrus.FieldLogger) *Manager {
	return &Manager{
		dp:    dp,
		ctrs:  ctrs,
		store: store,
		log:   log,
		now:   time.Now,
		byKey: make(map[string]*entry),
		byID:  make(map[uint16]*entry),
		byIP:  make(map[netip.Addr]*entry),
	}
}

func (m *Manager) add(e *entry) {
	m.byKey[e.ep.Key()] = e
	m.byID[e.ep.ID] = e
	m.byIP[e.ip] = e
	m.changed()
}

func (m *Manager) remove(e *entry) {
	delete(m.byKey, e.ep.Key())
	delete(m.byID, e.ep.ID)
	if m.byIP[e.ip] == e {
		delete(m.byIP, e.ip)
	}
	m.changed()
}

// Len returns the number of endpoints.
func (m *Manager) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byKey)
}

// Put adds or replaces the endpoint named by ep.ContainerID/ep.IfName. An
// existing endpoint keeps its ID and creation time; a new one gets the lowest
// free ID. The state file is written first, then the BPF entry; if the BPF
// write fails the state file is restored and the error returned (wrapping
// datapath.ErrMapFull when the map is full). Errors wrap ErrInvalid,
// ErrConflict or ErrNoFreeID for client mistakes.
func (m *Manager) Put(req api.Endpoint) (api.Endpoint, error) {
	e, err := parse(req)
	if err != nil {
		return api.Endpoint{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()

	old := m.byKey[e.ep.Key()]
	if other := m.byIP[e.ip]; other != nil && other != old {
		return api.Endpoint{}, fmt.Errorf("%w: ipv4 %s is already used by endpoint %s (id %d)",
			ErrConflict, e.ip, other.ep.Key(), other.ep.ID)
	}
	if err := m.hostPortConflict(e, old); err != nil {
		return api.Endpoint{}, err
	}
	if old != nil {
		e.ep.ID, e.ep.Created, e.identity = old.ep.ID, old.ep.Created, old.identity
	} else {
		id, err := allocateID(func(id uint16) bool { return m.byID[id] != nil })
		if err != nil {
			return api.Endpoint{}, err
		}
		e.ep.ID, e.ep.Created = id, m.now().UTC().Truncate(time.Second)
	}
	log := m.log.WithFields(logrus.Fields{"endpoint": e.ep.Key(), "endpointID": e.ep.ID, "ipv4": e.ep.IPv4})

	if err := m.store.Save(e.ep); err != nil {
		return api.Endpoint{}, fmt.Errorf("persist endpoint %s: %w", e.ep.Key(), err)
	}
	if err := m.dp.Upsert(e.datapath()); err != nil {
		m.undoSave(old, e.ep.ID, log)
		return api.Endpoint{}, fmt.Errorf("write datapath entry of endpoint %s: %w", e.ep.Key(), err)
	}
	if old != nil {
		m.remove(old)
		m.cleanupReplaced(old, e, log)
	}
	m.add(e)
	log.WithField("hostIfName", e.ep.HostIfName).Info("Endpoint stored")
	return e.ep, nil
}

// undoSave restores the state file as it was before a failed Put.
func (m *Manager) undoSave(old *entry, id uint16, log logrus.FieldLogger) {
	var err error
	if old != nil {
		err = m.store.Save(old.ep)
	} else {
		err = m.store.Remove(id)
	}
	if err != nil {
		log.WithError(err).Error("Cannot undo endpoint state file after failed datapath write")
	}
}

// cleanupReplaced drops what the replaced endpoint old left behind in the
// datapath that e does not reuse. Failures are logged: resync prunes the map.
func (m *Manager) cleanupReplaced(old, e *entry, log logrus.FieldLogger) {
	if old.ip != e.ip {
		if err := m.dp.Delete(old.ip); err != nil {
			log.WithError(err).Warn("Cannot delete old datapath entry of replaced endpoint")
		}
	}
	if old.ep.HostIfIndex != e.ep.HostIfIndex {
		if err := m.ctrs.DeleteCounters(uint32(old.ep.HostIfIndex)); err != nil {
			log.WithError(err).Warn("Cannot delete counters of replaced endpoint")
		}
	}
}

// Delete removes an endpoint: its BPF entry, its counters and its state
// file. It returns ErrNotFound if the endpoint is unknown.
func (m *Manager) Delete(containerID, ifName string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.byKey[containerID+"/"+ifName]
	if e == nil {
		return fmt.Errorf("%w: %s/%s", ErrNotFound, containerID, ifName)
	}
	return m.delete(e)
}

func (m *Manager) delete(e *entry) error {
	log := m.log.WithFields(logrus.Fields{"endpoint": e.ep.Key(), "endpointID": e.ep.ID, "ipv4": e.ep.IPv4})
	if err := m.dp.Delete(e.ip); err != nil {
		return fmt.Errorf("delete datapath entry of endpoint %s: %w", e.ep.Key(), err)
	}
	if err := m.ctrs.DeleteCounters(uint32(e.ep.HostIfIndex)); err != nil {
		log.WithError(err).Warn("Cannot delete endpoint counters")
	}
	m.remove(e)
	if err := m.store.Remove(e.ep.ID); err != nil {
		return err
	}
	log.Info("Endpoint deleted")
	return nil
}

// Get returns one endpoint with its counters, or ErrNotFound.
func (m *Manager) Get(containerID, ifName string) (api.Endpoint, error) {
	m.mu.Lock()
	e := m.byKey[containerID+"/"+ifName]
	var ep api.Endpoint
	if e != nil {
		ep = e.ep
	}
	m.mu.Unlock()
	if e == nil {
		return api.Endpoint{}, fmt.Errorf("%w: %s/%s", ErrNotFound, containerID, ifName)
	}
	counters, err := m.counters()
	if err != nil {
		return api.Endpoint{}, err
	}
	ep.Counters = counters[uint32(ep.HostIfIndex)]
	return ep, nil
}

// List returns every endpoint with its counters, sorted by ID.
func (m *Manager) List() ([]api.Endpoint, error) {
	m.mu.Lock()
	eps := make([]api.Endpoint, 0, len(m.byID))
	for _, e := range m.byID {
		eps = append(eps, e.ep)
	}
	m.mu.Unlock()
	slices.SortFunc(eps, func(a, b api.Endpoint) int { return cmp.Compare(a.ID, b.ID) })
	counters, err := m.counters()
	if err != nil {
		return nil, err
	}
	for i := range eps {
		eps[i].Counters = counters[uint32(eps[i].HostIfIndex)]
	}
	return eps, nil
}

func (m *Manager) counters() (map[uint32][]api.Counter, error) {
	cs, err := m.ctrs.Counters()
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	return countersByIfindex(cs), nil
}

// IsClientError reports whether err is the caller's fault (ErrInvalid,
// ErrConflict) rather than the agent's.
func IsClientError(err error) bool {
	return errors.Is(err, ErrInvalid) || errors.Is(err, ErrConflict)
}
