/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Flow events: one record per policy verdict worth reporting (every policy
 * drop, every audit, and the first packet of each new allowed flow unless
 * the agent turned those off), into the ring buffer sluice_flows_v1. */
#ifndef SLUICE_FLOW_H
#define SLUICE_FLOW_H

#include "common.h"

/* What happened to the flow. Mirrored in Go (bpf2go -type flow_verdict). */
enum flow_verdict {
	FLOW_FORWARDED	= 1,
	FLOW_DROPPED	= 2,
	FLOW_AUDIT	= 3,	/* policy would drop; audit mode forwarded it */
};

/* One flow event. Addresses and ports in network byte order, after service
 * translation; orig_daddr/orig_dport hold the service frontend when the
 * packet was translated, else 0. For ICMP, dport is the ICMP type. */
struct flow_event {
	__u64  ktime;		/* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	__be32 saddr;
	__be32 daddr;
	__be32 orig_daddr;
	__be16 sport;
	__be16 dport;
	__be16 orig_dport;
	__u16  ep_id;		/* endpoint whose policy decided */
	__u8   proto;
	__u8   verdict;		/* enum flow_verdict */
	__u8   reason;		/* enum sluice_reason: drop (or would-drop) reason, or forward reason */
	__u8   dir;		/* enum sluice_direction, relative to ep_id */
	__u32  src_identity;
	__u32  dst_identity;
	__u32  ifindex;		/* interface the packet was seen on */
	__u32  rule_id;		/* agent's id of the deciding policy rule, 0 = none */
};
_Static_assert(sizeof(struct flow_event) == 48, "flow_event size");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 2 * 1024 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_flows_v1 SEC(".maps");

/* sluice_flow_config_v1[0].flags */
#define FLOW_CFG_NO_FORWARDED	(1 << 0)	/* no events for allowed flows */

struct flow_config {
	__u32 flags;
};
_Static_assert(sizeof(struct flow_config) == 4, "flow_config size");

/* Runtime switches of the event stream, written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct flow_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_flow_config_v1 SEC(".maps");

/* Events the ring buffer had no room for, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_flows_lost_v1 SEC(".maps");

static __always_inline int flow_forwarded_enabled(void)
{
	__u32 zero = 0;
	struct flow_config *cfg = bpf_map_lookup_elem(&sluice_flow_config_v1, &zero);

	return !cfg || !(cfg->flags & FLOW_CFG_NO_FORWARDED);
}

/* Reserves an event and fills in the time, or counts a lost event. The
 * caller fills the rest and submits. */
static __always_inline struct flow_event *flow_reserve(void)
{
	struct flow_event *ev;
	__u32 zero = 0;
	__u64 *lost;

	ev = bpf_ringbuf_reserve(&sluice_flows_v1, sizeof(*ev), 0);
	if (!ev) {
		lost = bpf_map_lookup_elem(&sluice_flows_lost_v1, &zero);
		if (lost)
			*lost += 1;
		return NULL;
	}
	ev->ktime = bpf_ktime_get_ns();
	return ev;
}

#endif /* SLUICE_FLOW_H */
