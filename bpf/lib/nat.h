/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* IPv4 flow parsing and address/port rewriting (DNAT, SNAT) on an skb with
 * incremental IPv4 and L4 checksum updates. Used by every tc program. */
#ifndef SLUICE_NAT_H
#define SLUICE_NAT_H

#include "common.h"

/* The 5-tuple of an IPv4 TCP/UDP packet and where its headers are. */
struct ipv4_flow {
	__u32  l3_off;
	__u32  l4_off;
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8   proto;
	__u8   tcp_flags;	/* byte 13 of the TCP header, 0 for UDP */
	__u16  pad;
};

#define IPV4_FRAG_MASK	0x3fff	/* MF and fragment offset */

/* Parses the IPv4 packet at l3_off (a constant where inlined). Returns 1 for
 * an unfragmented TCP or UDP packet (f filled in), 0 for anything else (other
 * protocols, fragments), or a negative DROP_* reason for a truncated packet:
 * one whose L4 header ends before its checksum field, which a translation
 * could not rewrite (and would drop only after load balancing had made the
 * flow's conntrack entries).
 * Uses direct packet access: the caller revalidates its packet pointers only
 * after a rewrite. */
static __always_inline int ipv4_parse_flow(struct __sk_buff *skb, __u32 l3_off, struct ipv4_flow *f)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + l3_off;
	__u8 *l4, buf[18];
	__u32 l4_len;

	if ((void *)(ip + 1) > data_end)
		return -DROP_INVALID;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return 0;
	if (ip->frag_off & bpf_htons(IPV4_FRAG_MASK))
		return 0;
	f->l3_off = l3_off;
	f->l4_off = l3_off + ip->ihl * 4;
	f->saddr = ip->saddr;
	f->daddr = ip->daddr;
	f->proto = ip->protocol;
	l4_len = ip->protocol == IPPROTO_TCP ? 18 : 8; /* through the checksum */
	l4 = (void *)(ip + 1);
	if (ip->ihl != 5 || (void *)(l4 + 18) > data_end) {
		/* IP options or a short packet: copy what is needed. */
		if (bpf_skb_load_bytes(skb, f->l4_off, buf, l4_len) < 0)
			return -DROP_INVALID;
		l4 = buf;
		if (l4_len < 14)
			buf[13] = 0;
	}
	f->tcp_flags = f->proto == IPPROTO_TCP ? l4[13] : 0;
	f->sport = *(__be16 *)&l4[0];
	f->dport = *(__be16 *)&l4[2];
	return 1;
}

static __always_inline __u32 l4_csum_off(const struct ipv4_flow *f)
{
	return f->l4_off + (f->proto == IPPROTO_TCP ? 16 : 6);
}

/* Rewrites the source (src != 0) or destination address and port of f's
 * packet, fixing the IPv4 header checksum and the L4 checksum (pseudo header
 * included). A UDP checksum of 0 (none) stays 0. Updates f. */
static __always_inline int ipv4_nat(struct __sk_buff *skb, struct ipv4_flow *f, int src,
				    __be32 new_addr, __be16 new_port)
{
	__u32 addr_off = f->l3_off + (src ? offsetof(struct iphdr, saddr) : offsetof(struct iphdr, daddr));
	__u32 port_off = f->l4_off + (src ? 0 : 2);
	__u32 csum_off = l4_csum_off(f);
	__u64 mangled = f->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__be32 old_addr = src ? f->saddr : f->daddr;
	__be16 old_port = src ? f->sport : f->dport;

	if (old_addr != new_addr) {
		if (bpf_l4_csum_replace(skb, csum_off, old_addr, new_addr,
					BPF_F_PSEUDO_HDR | mangled | sizeof(new_addr)) < 0)
			return -DROP_NAT_FAILED;
		if (bpf_l3_csum_replace(skb, f->l3_off + offsetof(struct iphdr, check),
					old_addr, new_addr, sizeof(new_addr)) < 0)
			return -DROP_NAT_FAILED;
		if (bpf_skb_store_bytes(skb, addr_off, &new_addr, sizeof(new_addr), 0) < 0)
			return -DROP_NAT_FAILED;
	}
	if (old_port != new_port) {
		if (bpf_l4_csum_replace(skb, csum_off, old_port, new_port, mangled | sizeof(new_port)) < 0)
			return -DROP_NAT_FAILED;
		if (bpf_skb_store_bytes(skb, port_off, &new_port, sizeof(new_port), 0) < 0)
			return -DROP_NAT_FAILED;
	}
	if (src) {
		f->saddr = new_addr;
		f->sport = new_port;
	} else {
		f->daddr = new_addr;
		f->dport = new_port;
	}
	return 0;
}

#endif /* SLUICE_NAT_H */
