/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* NodePort, ExternalIP and LoadBalancer at XDP (xdp.c): the remote-backend
 * half of nodeport.h on the raw frame, before an skb exists.
 *
 * For TCP/UDP to a frontend whose flow lb4_local gives a REMOTE backend, the
 * request is DNATed + SNATed exactly as nodeport_xlate does (the same
 * conntrack entries from lb4_local, the same NAT entries from snat4_alloc),
 * and a remote backend's reply (SNAT_F_IN entry) is translated back as
 * nodeport_rev_snat does; both leave by FIB lookup with XDP_TX (same device)
 * or XDP_REDIRECT (another device in sluice_xdp_devs_v1). So a flow started
 * at tc continues here and the other way round, and switching XDP on or off
 * needs no map changes.
 *
 * Everything else is handed to the tc program (XDP_PASS) untouched: no
 * frontend, a local or host-network backend, fragments, IP options, TTL <= 1,
 * truncated headers, non-TCP/UDP, no resolved neighbour, an egress device
 * XDP cannot transmit on. When lb4_local already accounted the packet to the
 * flow's conntrack entries and the packet is then passed, the accounting is
 * undone (xdp_ct_unaccount): tc's lb4_local finds the entries XDP made and
 * accounts the packet itself, so the entries end up as tc alone makes them.
 *
 * Checksums: XDP has no l3/l4_csum_replace. Addresses and ports are rewritten
 * in place and both checksums updated with one bpf_csum_diff each over the
 * changed words (the L4 one over the pseudo-header addresses and the port
 * word), folded; a UDP checksum of 0 (none) stays 0, a computed 0 becomes
 * 0xffff (RFC 768). */
#ifndef SLUICE_NODEPORT_XDP_H
#define SLUICE_NODEPORT_XDP_H

#include "common.h"
#include "nodeport.h"
#include "metrics.h"

/* Devices XDP_REDIRECT may transmit on (key and value: ifindex), written by
 * the agent with the devices it attached the XDP program to. A packet
 * routed to a device not in here goes to tc. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_xdp_devs_v1 SEC(".maps");

/* The headers of a TCP/UDP packet XDP may translate. */
struct xdp_pkt {
	struct ethhdr *eth;
	struct iphdr *ip;
	__be16 *ports;		/* source and destination port */
	__sum16 *csum;		/* L4 checksum field */
};

/* Parses ctx into p and f. Returns 1 for an unfragmented IPv4 TCP/UDP
 * packet without options whose L4 header is within the frame and whose TTL
 * lets it be forwarded, 0 for anything else (tc's to judge). */
static __always_inline int xdp_parse(struct xdp_md *ctx, struct xdp_pkt *p, struct ipv4_flow *f)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;
	__u8 *l4 = (void *)(ip + 1);

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	if (ip->version != 4 || ip->ihl != 5 || ip->ttl <= 1 || (ip->frag_off & bpf_htons(IPV4_FRAG_MASK)))
		return 0;
	if (ip->protocol == IPPROTO_TCP) {
		if ((void *)(l4 + 20) > data_end)
			return 0;
		p->csum = (__sum16 *)(l4 + 16);
		f->tcp_flags = l4[13];
	} else if (ip->protocol == IPPROTO_UDP) {
		if ((void *)(l4 + 8) > data_end)
			return 0;
		p->csum = (__sum16 *)(l4 + 6);
		f->tcp_flags = 0;
	} else {
		return 0;
	}
	p->eth = eth;
	p->ip = ip;
	p->ports = (__be16 *)l4;
	f->l3_off = ETH_HLEN;
	f->l4_off = ETH_HLEN + sizeof(*ip);
	f->saddr = ip->saddr;
	f->daddr = ip->daddr;
	f->sport = p->ports[0];
	f->dport = p->ports[1];
	f->proto = ip->protocol;
	return 1;
}

/* Rewrites p's addresses and ports to saddr:sport -> daddr:dport, decrements
 * the TTL and fixes both checksums; updates f. */
static __always_inline void xdp_nat4(struct xdp_pkt *p, struct ipv4_flow *f, __be32 saddr, __be16 sport,
				     __be32 daddr, __be16 dport)
{
	__be32 from[3] = { f->saddr, f->daddr, 0 }, to[3] = { saddr, daddr, 0 };
	struct iphdr *ip = p->ip;
	__u32 c;

	__builtin_memcpy(&from[2], p->ports, 4);
	p->ports[0] = sport;
	p->ports[1] = dport;
	__builtin_memcpy(&to[2], p->ports, 4);
	if (f->proto == IPPROTO_TCP || *p->csum) {
		c = bpf_csum_diff(from, sizeof(from), to, sizeof(to), (__u16)~*p->csum);
		*p->csum = csum_fold32(c);
		if (f->proto == IPPROTO_UDP && !*p->csum)
			*p->csum = (__sum16)0xffff;
	}
	/* The IPv4 header: the addresses, and the TTL (ip_decrease_ttl). */
	c = bpf_csum_diff(from, 8, to, 8, (__u16)~ip->check);
	ip->check = csum_fold32(c);
	ip->saddr = saddr;
	ip->daddr = daddr;
	c = (__u32)ip->check + (__u32)bpf_htons(0x0100);
	ip->check = (__sum16)(c + (c >= 0xffff));
	ip->ttl--;
	f->saddr = saddr;
	f->daddr = daddr;
	f->sport = sport;
	f->dport = dport;
}

/* Where a packet for saddr:sport -> daddr:dport leaves: FIB lookup with the
 * neighbour resolved, on the receiving device (XDP_TX) or on one XDP may
 * redirect to. Fills dmac/smac and *ifindex; returns 0, or -1 when XDP
 * cannot send it (tc does: no neighbour yet, tunnel route, MTU, another
 * kind of device). */
static __always_inline int xdp_fib(struct xdp_md *ctx, const struct ipv4_flow *f, __be32 saddr, __be16 sport,
				   __be32 daddr, __be16 dport, __u16 tot_len, struct bpf_fib_lookup *p)
{
	long ret;

	p->family = AF_INET;
	p->l4_protocol = f->proto;
	p->sport = sport;
	p->dport = dport;
	p->tot_len = tot_len;
	p->ipv4_src = saddr;
	p->ipv4_dst = daddr;
	p->ifindex = ctx->ingress_ifindex;
	ret = bpf_fib_lookup(ctx, p, sizeof(*p), 0);
	if (ret != BPF_FIB_LKUP_RET_SUCCESS)
		return -1;
	if (p->ifindex != ctx->ingress_ifindex && !bpf_map_lookup_elem(&sluice_xdp_devs_v1, &p->ifindex))
		return -1;
	return 0;
}

/* Sends the translated frame p by the FIB result fib. */
static __always_inline int xdp_send(struct xdp_md *ctx, struct xdp_pkt *p, const struct bpf_fib_lookup *fib)
{
	__builtin_memcpy(p->eth->h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(p->eth->h_source, fib->smac, ETH_ALEN);
	if (fib->ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect_map(&sluice_xdp_devs_v1, fib->ifindex, 0);
}

/* Undoes lb4_local's accounting of the packet f (frontend fe_addr:fe_port,
 * state st) that is passed to tc, whose lb4_local accounts it again. */
static __always_inline void xdp_ct_unaccount(const struct ipv4_flow *f, __be32 fe_addr, __be16 fe_port,
					     const struct lb4_state *st)
{
	struct ct4_tuple t = {
		.saddr = f->saddr, .daddr = fe_addr, .sport = f->sport, .dport = fe_port,
		.proto = f->proto, .flags = CT_F_SERVICE,
	};
	struct ct4_entry *e;

	e = ct4_lookup(&t);
	if (e && e->tx_packets)
		e->tx_packets--;
	t.saddr = st->saddr;
	t.daddr = st->baddr;
	t.dport = st->bport;
	t.flags = 0;
	e = ct4_lookup(&t);
	if (e && e->tx_packets)
		__sync_fetch_and_add(&e->tx_packets, -1);
}

/* A remote backend's reply (f to the SNAT address): back to the client,
 * from the frontend, as nodeport_rev_snat. Returns an XDP action, or -1 when
 * f is no such reply or XDP cannot send it (nothing changed). */
static __always_inline int xdp_rev_snat(struct xdp_md *ctx, struct xdp_pkt *p, struct ipv4_flow *f)
{
	struct snat4_tuple t = {
		.saddr = f->saddr, .daddr = f->daddr, .sport = f->sport, .dport = f->dport,
		.proto = f->proto, .flags = SNAT_F_IN,
	};
	struct bpf_fib_lookup fib = {};
	struct snat4_entry *e;
	__be32 caddr, fe_addr;
	__be16 cport, fe_port;

	if (!snat_ipv4 || f->daddr != snat_ipv4)
		return -1;
	e = snat4_lookup(&t);
	if (!e)
		return -1;
	caddr = e->addr;
	cport = e->port;
	fe_addr = e->fe_addr;
	fe_port = e->fe_port;
	if (xdp_fib(ctx, f, fe_addr, fe_port, caddr, cport, bpf_ntohs(p->ip->tot_len), &fib) < 0)
		return -1;
	snat4_touch(e, nodeport_ct_reply(f->saddr, f->sport, caddr, cport, f->proto, f->tcp_flags,
					 fe_addr, fe_port, now_sec()));
	xdp_nat4(p, f, fe_addr, fe_port, caddr, cport);
	return xdp_send(ctx, p, &fib);
}

/* DSR at XDP (--lb-mode dsr|hybrid): the frame p, TTL decremented, goes
 * IP-in-IP to the backend st as nodeport_dsr_fwd sends it. Returns an XDP
 * action, or -1 (nothing changed) when XDP cannot send it: tc does. */
static __always_inline int xdp_dsr_fwd(struct xdp_md *ctx, struct xdp_pkt *p, const struct lb4_state *st)
{
	struct ipv4_flow o = { .proto = IPPROTO_IPIP };
	struct bpf_fib_lookup fib = {};
	struct iphdr out = {};
	struct ethhdr *eth;
	struct iphdr *ip;
	void *data, *data_end;
	__u16 tot_len = bpf_ntohs(p->ip->tot_len);
	__u32 c;

	if (!snat_ipv4 || tot_len > 0xffff - DSR_ENCAP_LEN)
		return -1;
	if (xdp_fib(ctx, &o, snat_ipv4, 0, st->baddr, 0, tot_len + DSR_ENCAP_LEN, &fib) < 0)
		return -1;
	dsr_outer(&out, p->ip->tos, tot_len, snat_ipv4, st->baddr, st->bport);
	/* The inner TTL (ip_decrease_ttl), before the pointers move. */
	ip = p->ip;
	c = (__u32)ip->check + (__u32)bpf_htons(0x0100);
	ip->check = (__sum16)(c + (c >= 0xffff));
	ip->ttl--;
	if (bpf_xdp_adjust_head(ctx, -DSR_ENCAP_LEN) < 0) {
		/* Nothing moved, but the pointers are stale: undo the TTL
		 * for tc. */
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		ip = data + ETH_HLEN;
		if ((void *)(ip + 1) > data_end)
			return XDP_ABORTED;
		ip->ttl++;
		c = (__u32)ip->check + (__u32)(__u16)~bpf_htons(0x0100);
		ip->check = (__sum16)(c + (c >> 16));
		return -1;
	}
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if (data + ETH_HLEN + DSR_ENCAP_LEN > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);
	__builtin_memcpy(data + ETH_HLEN, &out, sizeof(out));
	if (fib.ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect_map(&sluice_xdp_devs_v1, fib.ifindex, 0);
}

/* A packet to the frontend fe (master entry svc): translated and sent when
 * lb4_local gives its flow a remote backend, as nodeport_xlate (SNAT, or
 * IP-in-IP in DSR mode). Returns an XDP action with *reason set to the
 * counter it goes to, or -1 to hand the packet to tc unchanged. */
static __always_inline int xdp_xlate(struct xdp_md *ctx, struct xdp_pkt *p, struct ipv4_flow *f,
				     const struct lb4_key *fe, const struct lb4_service *svc, __u32 *reason)
{
	__be32 fe_addr = f->daddr;
	__be16 fe_port = f->dport, nat_port = 0;
	struct bpf_fib_lookup fib = {};
	struct endpoint_key ek = {};
	struct lb4_state st = {};
	struct ipv4_flow t;
	__u64 now = now_sec();
	int ret;

	ret = lb4_local(f, fe, svc, 0, LB4_REV_NAT_BY_NAT_MAP, &st, now);
	if (ret < 0)
		return -1; /* tc drops it and counts why (or rejects it) */
	ek.ip = st.baddr;
	if (bpf_map_lookup_elem(&sluice_endpoints_v1, &ek) || is_node_addr(st.baddr))
		goto to_tc; /* a local backend: tc redirects into the pod */
	if (lb_dsr(svc, f->proto)) {
		/* IP-in-IP to the backend, as nodeport_dsr_fwd. */
		ret = xdp_dsr_fwd(ctx, p, &st);
		if (ret < 0)
			goto to_tc;
		*reason = REASON_XDP_LB_DSR;
		return ret;
	}
	/* snat4_alloc takes the flow after DNAT; its entries are what tc's
	 * would find or make. */
	t = *f;
	t.daddr = st.baddr;
	t.dport = st.bport;
	if (snat4_alloc(&t, fe_addr, fe_port, st.lifetime, now, &nat_port) < 0)
		goto to_tc;
	if (xdp_fib(ctx, f, snat_ipv4, nat_port, st.baddr, st.bport, bpf_ntohs(p->ip->tot_len), &fib) < 0)
		goto to_tc;
	xdp_nat4(p, f, snat_ipv4, nat_port, st.baddr, st.bport);
	*reason = REASON_XDP_LB_SNAT;
	return xdp_send(ctx, p, &fib);
to_tc:
	xdp_ct_unaccount(f, fe_addr, fe_port, &st);
	return -1;
}

#endif /* SLUICE_NODEPORT_XDP_H */
