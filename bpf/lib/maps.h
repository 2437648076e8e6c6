/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Maps shared by the pod programs. Pinned by name under the agent's bpffs
 * root; every map name carries a layout version (_v1) and a layout change
 * gets a new one (_v2), never a reinterpretation. The agent renames a pin of
 * a map that had no version yet to its _v1 name on upgrade (datapath/pin). */
#ifndef SLUICE_MAPS_H
#define SLUICE_MAPS_H

#include "common.h"

/* Key of sluice_endpoints_v1: the pod's IPv4 address, network byte order. */
struct endpoint_key {
	__u32 ip;
};
_Static_assert(sizeof(struct endpoint_key) == 4, "endpoint_key size");

/* A pod on this node. Written by the agent before it acknowledges an endpoint. */
struct endpoint_info {
	__u32 ifindex;		/* host-side veth, where the pod programs are attached */
	__u32 sec_identity;	/* security identity (0 until policy assigns one) */
	__u16 id;		/* endpoint id, unique on the node */
	__u16 flags;		/* reserved, 0 */
	__u8  mac[6];		/* MAC of the pod's interface */
	__u8  node_mac[6];	/* MAC of the host-side veth */
	__u32 pad;
};
_Static_assert(sizeof(struct endpoint_info) == 28, "endpoint_info size");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_endpoints_v1 SEC(".maps");

/* Key of sluice_metrics_v1: per host-side interface, reason and direction. */
struct metrics_key {
	__u32 ifindex;
	__u8  reason;		/* enum sluice_reason */
	__u8  dir;		/* enum sluice_direction */
	__u16 pad;
};
_Static_assert(sizeof(struct metrics_key) == 8, "metrics_key size");

struct metrics_value {
	__u64 packets;
	__u64 bytes;
};
_Static_assert(sizeof(struct metrics_value) == 16, "metrics_value size");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct metrics_key);
	__type(value, struct metrics_value);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_metrics_v1 SEC(".maps");

/* A per-CPU front of sluice_metrics_v1 for the forwarding reasons, the
 * counters every packet of an established flow bumps: a direct-mapped cache of
 * METRICS_FAST_SLOTS (key, counts) slots per CPU, indexed by a mix of the key.
 * An array lookup is inlined by the verifier where the hash lookup costs a
 * jhash and a bucket walk. A slot belongs to the first key that lands in it on
 * that CPU; other keys landing there use sluice_metrics_v1. A key's count is
 * the sum of its hash entry and of every CPU's slot that holds it. */
#define METRICS_FAST_SLOTS 1024
struct metrics_fast_slot {
	__u32 ifindex;		/* 0: free */
	__u8  reason;
	__u8  dir;
	__u16 pad;
	__u64 packets;
	__u64 bytes;
};
_Static_assert(sizeof(struct metrics_fast_slot) == 24, "metrics_fast_slot size");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct metrics_fast_slot);
	__uint(max_entries, METRICS_FAST_SLOTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_metrics_fast_v1 SEC(".maps");

#endif /* SLUICE_MAPS_H */
