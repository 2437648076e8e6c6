// Package endpointmgr is the agent's endpoint manager: the one owner of the
// sluice_endpoints_v1 map. It holds the desired set of pod endpoints (restored
// from state files at start, changed through the local API), allocates
// endpoint IDs, persists each endpoint before writing its BPF entry, and
// reconciles the map to exactly the desired set.
package endpointmgr
