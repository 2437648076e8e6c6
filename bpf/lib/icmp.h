/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ICMP port unreachable in reply to a packet for a service without backends
 * (kube-proxy REJECTs such traffic), so clients fail fast. */
#ifndef SLUICE_ICMP_H
#define SLUICE_ICMP_H

#include "common.h"
#include "conntrack.h"

#define ICMP_DEST_UNREACH	3
#define ICMP_PORT_UNREACH	3
#define ICMP4_ORIG_LEN		28	/* original IPv4 header (no options) + 8 bytes */

/* IPv4 header, ICMP header and the quoted original packet. */
struct icmp4_unreach {
	struct iphdr ip;
	__u8   type;
	__u8   code;
	__u16  check;
	__u32  unused;
	__u8   orig[ICMP4_ORIG_LEN];
};
_Static_assert(sizeof(struct icmp4_unreach) == 56, "icmp4_unreach size");

/* Turns skb (Ethernet/IPv4 at offset 0, a TCP SYN or a UDP datagram without
 * IP options) into an ICMP port unreachable from its destination back to its
 * source, to be sent back out of the interface it came in on. Returns 0 or a
 * negative DROP_* reason (the packet is not eligible or could not be built;
 * it must then be dropped). */
static __always_inline int icmp4_port_unreachable(struct __sk_buff *skb)
{
	struct icmp4_unreach r = {};
	__u8 macs[12], swapped[12];
	struct iphdr *orig = (void *)r.orig;
	__u8 tcp_flags;

	if (bpf_skb_load_bytes(skb, 0, macs, sizeof(macs)) < 0 ||
	    bpf_skb_load_bytes(skb, ETH_HLEN, r.orig, sizeof(r.orig)) < 0)
		return -DROP_INVALID;
	if (orig->ihl != 5 || (orig->frag_off & bpf_htons(0x1fff)))
		return -DROP_INVALID;
	if (orig->protocol == IPPROTO_TCP) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN + 20 + 13, &tcp_flags, 1) < 0)
			return -DROP_INVALID;
		if ((tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN)
			return -DROP_INVALID;
	} else if (orig->protocol != IPPROTO_UDP) {
		return -DROP_INVALID;
	}

	r.ip.version = 4;
	r.ip.ihl = 5;
	r.ip.tot_len = bpf_htons(sizeof(r));
	r.ip.ttl = 64;
	r.ip.protocol = IPPROTO_ICMP;
	r.ip.saddr = orig->daddr;
	r.ip.daddr = orig->saddr;
	r.ip.check = csum_fold32(bpf_csum_diff(NULL, 0, (__be32 *)&r.ip, sizeof(r.ip), 0));
	r.type = ICMP_DEST_UNREACH;
	r.code = ICMP_PORT_UNREACH;
	r.check = csum_fold32(bpf_csum_diff(NULL, 0, (__be32 *)&r.type, sizeof(r) - sizeof(r.ip), 0));

	__builtin_memcpy(swapped, macs + 6, 6);
	__builtin_memcpy(swapped + 6, macs, 6);
	if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(r), 0) < 0)
		return -DROP_INVALID;
	if (bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &r, sizeof(r), 0) < 0)
		return -DROP_INVALID;
	return 0;
}

#endif /* SLUICE_ICMP_H */
