/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Address filters of the pod programs: one-hash Bloom filters over a set of
 * IPv4 addresses, so that the per-packet path skips hash lookups that cannot
 * match at the cost of one array read, which the verifier inlines. A clear
 * bit proves the address is not in the set; a set bit only means "look"
 * (at 10 000 addresses about 1 % of other addresses share a bit).
 *   sluice_lb4_fe_filter_v1     service frontend and node addresses: the
 *                               service and NodePort lookups (lb_skb.h);
 *   sluice_endpoints_filter_v1  local endpoints: the destination's endpoint
 *                               lookup (endpoint.h);
 *   sluice_lb4_backend_filter_v1 backend addresses: the reverse-NAT lookup
 *                               of a packet from them (lb_skb.h). Only a
 *                               backend's packet can be the reply of a
 *                               translated flow, and it stays one as long
 *                               as conntrack remembers the flow, so this
 *                               filter keeps the bits of deleted backends
 *                               and is rebuilt only when the agent starts,
 *                               from the backends and the conntrack map.
 * The agent sets an address's bit before the map write that puts the address
 * in the set, and clears bits only by rebuilding a filter from its maps
 * (datapath/internal/addrfilter), so an address in a set always has its bit. */
#ifndef SLUICE_ADDR_FILTER_H
#define SLUICE_ADDR_FILTER_H

#include "common.h"

#define ADDR_FILTER_BITS_LOG	20	/* 2^20 bits, 128 KiB */

/* Word i holds bits 64i..64i+63. */
#define ADDR_FILTER_MAP(name)						\
	struct {							\
		__uint(type, BPF_MAP_TYPE_ARRAY);			\
		__type(key, __u32);					\
		__type(value, __u64);					\
		__uint(max_entries, 1 << (ADDR_FILTER_BITS_LOG - 6));	\
		__uint(pinning, LIBBPF_PIN_BY_NAME);			\
	} name SEC(".maps")

ADDR_FILTER_MAP(sluice_lb4_fe_filter_v1);
ADDR_FILTER_MAP(sluice_endpoints_filter_v1);
ADDR_FILTER_MAP(sluice_lb4_backend_filter_v1);

/* Bit of addr (network order, as loaded from the packet): the top bits of a
 * multiplicative (Fibonacci) hash; datapath/internal/addrfilter computes the
 * same. */
static __always_inline __u32 addr_filter_bit(__be32 addr)
{
	return ((__u32)addr * 0x9e3779b1U) >> (32 - ADDR_FILTER_BITS_LOG);
}

/* Reports whether addr may be in the set of filter (0: it is not). */
static __always_inline int addr_filter_maybe(void *filter, __be32 addr)
{
	__u32 bit = addr_filter_bit(addr), word = bit / 64;
	__u64 *w = bpf_map_lookup_elem(filter, &word);

	return !w || ((*w >> (bit % 64)) & 1);
}

#endif /* SLUICE_ADDR_FILTER_H */
