// Package daemon wires the node agent together: it validates the whole
// configuration before touching anything, prepares the bpffs root, loads and
// adopts the datapath, restores and reconciles endpoints, constructs the
// managers (servicemgr, identitymgr, policymgr, nodemgr) and the state
// source, serves the local API (agent/server) on a unix socket and the health
// probes and /metrics on TCP, and runs the periodic endpoint and device
// resync (agent/reconcile). Pinned objects are never removed on exit, so the
// datapath keeps working while the agent is down (stopped, crashed or being
// upgraded); the next start adopts them.
package daemon
