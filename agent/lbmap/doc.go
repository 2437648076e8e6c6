// Package lbmap is the one owner of the load-balancing BPF maps (services,
// backends, reverse NAT). It turns the desired []lb.Service into map entries
// with idempotent upserts, deletes and prunes, and keeps backend and
// reverse-NAT IDs stable across agent restarts by adopting the IDs it finds in
// the pinned maps: conntrack entries refer to those IDs, so established flows
// survive a restart and a backend removal never disturbs flows to the others.
package lbmap
