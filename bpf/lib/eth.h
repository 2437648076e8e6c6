/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Ethernet, ARP and IPv4 access with verifier-friendly bounds checks. */
#ifndef SLUICE_ETH_H
#define SLUICE_ETH_H

#include "common.h"

#define ARPHRD_ETHER 1

/* ARP for Ethernet/IPv4 (RFC 826); linux/if_arp.h drags in libc headers. */
struct arp_hdr {
	__be16 ar_hrd;
	__be16 ar_pro;
	__u8   ar_hln;
	__u8   ar_pln;
	__be16 ar_op;
};

struct arp_eth_ipv4 {
	__u8   sha[6];
	__be32 spa;
	__u8   tha[6];
	__be32 tpa;
} __attribute__((packed));

/* Loads the packet pointers of skb and returns its Ethernet header, or NULL
 * when the frame is shorter than one. */
static __always_inline struct ethhdr *eth_hdr(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return NULL;
	return eth;
}

/* Loads the packet pointers of skb and returns the IPv4 header behind its
 * Ethernet header (and the Ethernet header in *eth, unless eth is NULL), or
 * NULL when they are not within the packet. As cilium's revalidate_data():
 * a helper that may move packet data (stores, checksum updates) invalidates
 * every packet pointer taken before it, so call this again after one. */
static __always_inline struct iphdr *ipv4_hdr(struct __sk_buff *skb, struct ethhdr **eth)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;

	if ((void *)(ip + 1) > data_end)
		return NULL;
	if (eth)
		*eth = data;
	return ip;
}

static __always_inline int mac_equal(const __u8 *a, const __u8 *b)
{
	return *(const __u32 *)a == *(const __u32 *)b &&
	       *(const __u16 *)(a + 4) == *(const __u16 *)(b + 4);
}

/* Rewrites both MACs of the frame at offset 0. */
static __always_inline int eth_store_macs(struct __sk_buff *skb, const __u8 *dst, const __u8 *src)
{
	if (bpf_skb_store_bytes(skb, 0, dst, 6, 0) < 0)
		return -DROP_INVALID;
	if (bpf_skb_store_bytes(skb, 6, src, 6, 0) < 0)
		return -DROP_INVALID;
	return 0;
}

/* Decrements the IPv4 TTL and fixes the header checksum incrementally. */
static __always_inline int ipv4_dec_ttl(struct __sk_buff *skb, __u32 l3_off, struct iphdr *ip)
{
	__u8 ttl = ip->ttl;
	__u8 new_ttl = ttl - 1;

	/* TTL shares a 16-bit checksum word with the protocol byte. */
	if (bpf_l3_csum_replace(skb, l3_off + offsetof(struct iphdr, check),
				bpf_htons((__u16)ttl << 8), bpf_htons((__u16)new_ttl << 8), 2) < 0)
		return -DROP_INVALID;
	if (bpf_skb_store_bytes(skb, l3_off + offsetof(struct iphdr, ttl), &new_ttl, 1, 0) < 0)
		return -DROP_INVALID;
	return 0;
}

#endif /* SLUICE_ETH_H */
