/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Filters of the pod programs: one-hash Bloom filters over a set of IPv4
 * addresses (and an exact bitmap over a set of ports), so that the per-packet
 * path skips hash lookups that cannot match at the cost of one array read,
 * which the verifier inlines. A clear bit proves the value is not in the
 * set; a set bit only means "look" (at 10 000 addresses about 1 % of other
 * addresses share a bit).
 *   sluice_lb4_fe_filter_v1     service frontend addresses: the service
 *                               lookup (endpoint.h);
 *   sluice_lb4_nodeport_filter_v1 ports of NodePort (wildcard) frontends:
 *                               the node address and NodePort lookups
 *                               (endpoint.h);
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

#define PORT_FILTER_WORDS	(65536 / 64)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, PORT_FILTER_WORDS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_lb4_nodeport_filter_v1 SEC(".maps");

/* Bit of addr (network order, as loaded from the packet): the top bits of a
 * multiplicative (Fibonacci) hash; datapath/internal/addrfilter computes the
 * same. */
static __always_inline __u32 addr_filter_bit(__be32 addr)
{
	return ((__u32)addr * 0x9e3779b1U) >> (32 - ADDR_FILTER_BITS_LOG);
}

/* Reports whether bit is set in the bitmap filter (0: it is not). */
static __always_inline int filter_bit_set(void *filter, __u32 bit)
{
	__u32 word = bit / 64;
	__u64 *w = bpf_map_lookup_elem(filter, &word);

	return !w || ((*w >> (bit % 64)) & 1);
}

/* Reports whether addr may be in the set of filter (0: it is not). */
static __always_inline int addr_filter_maybe(void *filter, __be32 addr)
{
	return filter_bit_set(filter, addr_filter_bit(addr));
}

/* Reports whether port (network order) is in the set of filter. */
static __always_inline int port_filter_has(void *filter, __be16 port)
{
	return filter_bit_set(filter, bpf_ntohs(port));
}

#endif /* SLUICE_ADDR_FILTER_H */
