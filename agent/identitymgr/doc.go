// Package identitymgr is the agent's identity manager: it gives every local
// endpoint a security identity from its pod's labels and its namespace's
// labels (identity.PodLabels), writes it into the endpoint map, and keeps the
// IP cache (local endpoints, remote pods with status.podIP, the node's own
// addresses as reserved:host, CIDR identities for policy prefixes). One
// owner loop (agent/reconcile) syncs identities and mirrors the IP cache
// into the datapath's LPM map, with diffs, periodic full resync and backoff,
// and collects unused identities.
package identitymgr
