// Package daemon wires the node agent together: it prepares the bpffs root,
// loads and adopts the datapath, restores and reconciles endpoints, serves the
// local API on a unix socket and runs the periodic resync. Pinned objects are
// never removed on exit, so the datapath keeps working while the agent is
// down (stopped, crashed or being upgraded); the next start adopts them.
package daemon
