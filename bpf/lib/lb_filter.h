/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The frontend filter of the pod programs: a Bloom filter (one hash) over
 * the destination addresses they translate, i.e. every service frontend's
 * address and the node's addresses (NodePort). A clear bit proves the
 * address is none of them, so the service and NodePort lookups are skipped
 * for most pod traffic at the cost of one array read, which the verifier
 * inlines. A set bit only means "look": at 10 000 addresses about 1 % of
 * other addresses share a bit with one of them.
 *
 * The agent (datapath/lbmap) sets an address's bit before it writes the
 * frontend or node address, and clears bits only by rebuilding the filter
 * from the services and node address maps, so a frontend the maps hold
 * always has its bit. */
#ifndef SLUICE_LB_FILTER_H
#define SLUICE_LB_FILTER_H

#include "common.h"

#define LB4_FE_FILTER_BITS_LOG	20	/* 2^20 bits, 128 KiB */

/* Word i holds bits 64i..64i+63. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1 << (LB4_FE_FILTER_BITS_LOG - 6));
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_lb4_fe_filter_v1 SEC(".maps");

/* Bit of addr (network order, as loaded from the packet): the top bits of a
 * multiplicative (Fibonacci) hash. datapath/lbmap computes the same. */
static __always_inline __u32 lb4_fe_filter_bit(__be32 addr)
{
	return ((__u32)addr * 0x9e3779b1U) >> (32 - LB4_FE_FILTER_BITS_LOG);
}

/* Reports whether addr may be a frontend or node address (0: it is not). */
static __always_inline int lb4_maybe_frontend(__be32 addr)
{
	__u32 bit = lb4_fe_filter_bit(addr), word = bit / 64;
	__u64 *w = bpf_map_lookup_elem(&sluice_lb4_fe_filter_v1, &word);

	return !w || ((*w >> (bit % 64)) & 1);
}

#endif /* SLUICE_LB_FILTER_H */
