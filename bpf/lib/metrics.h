/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-CPU forward and drop counters keyed by interface, reason and direction. */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include "maps.h"

/* update_metrics_fast counts a forwarding reason in this CPU's slot of
 * sluice_metrics_fast_v1; 0 when the slot holds another key. */
static __always_inline int update_metrics_fast(__u32 ifindex, __u8 reason, __u8 dir, __u32 len)
{
	__u32 idx = (ifindex * 8 + reason * 2 + dir) & (METRICS_FAST_SLOTS - 1);
	struct metrics_fast_slot *s = bpf_map_lookup_elem(&sluice_metrics_fast_v1, &idx);

	if (!s || ifindex == 0)
		return 0;
	if (s->ifindex != ifindex || s->reason != reason || s->dir != dir) {
		if (s->ifindex != 0)
			return 0;
		/* Per CPU, and a tc program is not preempted by another on this
		 * CPU's same slot before it returns: no one races the claim. */
		s->ifindex = ifindex;
		s->reason = reason;
		s->dir = dir;
	}
	s->packets++;
	s->bytes += len;
	return 1;
}

static __always_inline void update_metrics(__u32 ifindex, __u8 reason, __u8 dir, __u32 len)
{
	struct metrics_key key = { .ifindex = ifindex, .reason = reason, .dir = dir };
	struct metrics_value *val, init = {};

	if (reason < 128 && update_metrics_fast(ifindex, reason, dir, len))
		return;

	val = bpf_map_lookup_elem(&sluice_metrics_v1, &key);
	if (!val) {
		/* Racing CPUs may both insert; NOEXIST keeps the first one. A full
		 * map loses the count, which the agent reports as map pressure. */
		bpf_map_update_elem(&sluice_metrics_v1, &key, &init, BPF_NOEXIST);
		val = bpf_map_lookup_elem(&sluice_metrics_v1, &key);
		if (!val)
			return;
	}
	val->packets++;
	val->bytes += len;
}

#endif /* SLUICE_METRICS_H */
