package endpointmgr

import "fmt"

// SetIdentity sets the security identity of an endpoint and rewrites its
// sluice_endpoints_v1 entry (sec_identity). It returns ErrNotFound if the
// endpoint is unknown. Setting the identity it already has is a no-op.
func (m *Manager) SetIdentity(containerID, ifName string, id uint32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.byKey[containerID+"/"+ifName]
	if e == nil {
		return fmt.Errorf("%w: %s/%s", ErrNotFound, containerID, ifName)
	}
	if e.identity == id {
		return nil
	}
	old := e.identity
	e.identity = id
	if err := m.dp.Upsert(e.datapath()); err != nil {
		e.identity = old
		return fmt.Errorf("write identity %d of endpoint %s: %w", id, e.ep.Key(), err)
	}
	return nil
}

// Identity returns the security identity of an endpoint (0 when not set yet)
// and whether the endpoint is known.
func (m *Manager) Identity(containerID, ifName string) (uint32, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.byKey[containerID+"/"+ifName]
	if e == nil {
		return 0, false
	}
	return e.identity, true
}
