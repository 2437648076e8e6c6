/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-CPU forward and drop counters keyed by interface, reason and direction. */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include "maps.h"

static __always_inline void update_metrics(__u32 ifindex, __u8 reason, __u8 dir, __u32 len)
{
	struct metrics_key key = { .ifindex = ifindex, .reason = reason, .dir = dir };
	struct metrics_value *val, init = {};

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
