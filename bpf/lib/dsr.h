/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Direct server return (--lb-mode dsr|hybrid) for NodePort, ExternalIP and
 * LoadBalancer flows to a backend on another node (host.c, nodeport.h).
 *
 * The receiving node does not SNAT: it wraps the client's packet, unchanged
 * (client -> frontend), in an outer IPv4 header (IP-in-IP, protocol 4):
 *   outer source       the node's SNAT address (snat_ipv4)
 *   outer destination  the backend (a pod address: routed to the backend's
 *                      node like any pod traffic)
 *   outer IP ID        the backend port (an atomic datagram's ID carries no
 *                      meaning, RFC 6864; DF is set)
 * and forwards it by FIB lookup. The backend's node (its external device's
 * tc ingress) takes an IP-in-IP packet to one of its pods, checks that the
 * inner destination is a service frontend (ExternalIP/LoadBalancer, or a
 * NodePort on any address), strips the outer header and hands the inner
 * packet to the local-backend path (nodeport_xlate_local: policy, DNAT,
 * conntrack, and the SNAT_F_REV_DNAT entry naming the frontend, marked
 * SNAT_E_DSR). The pod's reply leaves through that node's own routes, and
 * its external device's egress rewrites the source to the frontend the
 * client used (nodeport_to_netdev): the reply never passes the receiving
 * node.
 *
 * MTU: the outer header costs 20 bytes on the client -> backend direction
 * only. The backend's SYN-ACK has its MSS option lowered to the device MTU
 * - 60 (IPv4 + TCP + outer IPv4) where it leaves the backend's node, so
 * the client's full-size segments still fit after encapsulation.
 *
 * The XDP program encapsulates the same way (xdp_dsr_fwd in
 * nodeport_xdp.h); decapsulation is tc's only, and happens whatever the
 * node's own lb_mode: a service's annotation may ask DSR of a receiving node
 * whose default is SNAT, and the backend's node must decapsulate it. */
#ifndef SLUICE_DSR_H
#define SLUICE_DSR_H

#include "common.h"
#include "nat.h"
#include "lb.h"
#include "endpoint.h"

#ifndef IPPROTO_IPIP
#define IPPROTO_IPIP 4
#endif

/* --lb-mode, set by the agent before load: the default of services whose
 * master entry has no LB_FLAG_MODE_SET. */
#define LB_MODE_SNAT	0
#define LB_MODE_DSR	1
#define LB_MODE_HYBRID	2	/* DSR for TCP, SNAT for UDP */
volatile const __u8 lb_mode = LB_MODE_SNAT;

#define DSR_ENCAP_LEN	20	/* outer IPv4 header, no options */
#define IPV4_DF		0x4000

/* Whether a flow of proto to a remote backend of the service svc goes by
 * DSR: the service's own mode (LB_FLAG_MODE_SET, from its annotation), else
 * the node's. */
static __always_inline int lb_dsr(const struct lb4_service *svc, __u8 proto)
{
	if (svc->flags & LB_FLAG_MODE_SET)
		return !!(svc->flags & LB_FLAG_DSR);
	return lb_mode == LB_MODE_DSR || (lb_mode == LB_MODE_HYBRID && proto == IPPROTO_TCP);
}

/* Fills *out (zeroed) with the outer header of DSR's IP-in-IP around an
 * IPv4 packet of inner_len bytes and TOS tos: saddr -> daddr, IP ID id, DF,
 * checksum set. Returns bpf_csum_diff's result (negative on error). Shared
 * by tc (dsr_encap) and XDP (xdp_dsr_fwd), so both send the same header. */
static __always_inline __s64 dsr_outer(struct iphdr *out, __u8 tos, __u16 inner_len, __be32 saddr, __be32 daddr,
				       __be16 id)
{
	__s64 csum;

	out->version = 4;
	out->ihl = 5;
	out->tos = tos;
	out->tot_len = bpf_htons(inner_len + DSR_ENCAP_LEN);
	out->id = id;
	out->frag_off = bpf_htons(IPV4_DF);
	out->ttl = 64;
	out->protocol = IPPROTO_IPIP;
	out->saddr = saddr;
	out->daddr = daddr;
	csum = bpf_csum_diff(NULL, 0, (__be32 *)out, sizeof(*out), 0);
	out->check = csum_fold32(csum);
	return csum;
}

/* Puts the outer header saddr -> daddr (IP ID id) in front of the IPv4
 * packet at ETH_HLEN. Returns 0 or a negative DROP_*. */
static __always_inline int dsr_encap(struct __sk_buff *skb, __be32 saddr, __be32 daddr, __be16 id)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *in = data + ETH_HLEN;
	struct iphdr out = {};

	if ((void *)(in + 1) > data_end)
		return -DROP_INVALID;
	if (dsr_outer(&out, in->tos, bpf_ntohs(in->tot_len), saddr, daddr, id) < 0)
		return -DROP_NAT_FAILED;
	if (bpf_skb_adjust_room(skb, DSR_ENCAP_LEN, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4) < 0)
		return -DROP_NAT_FAILED;
	if (bpf_skb_store_bytes(skb, ETH_HLEN, &out, sizeof(out), 0) < 0)
		return -DROP_NAT_FAILED;
	return 0;
}

/* An IP-in-IP packet at ETH_HLEN: its outer destination, the backend port
 * (outer IP ID), and the inner flow after the outer header is stripped.
 * Returns 1 (decapsulated, *inner parsed at ETH_HLEN), 0 when the outer
 * destination is no pod of this node (not DSR: the stack's), or
 * -DROP_DSR_INVALID for a malformed one (outer options or fragment, inner
 * not an unfragmented TCP/UDP packet, or to no service frontend). */
static __always_inline int dsr_decap(struct __sk_buff *skb, __be32 *baddr, __be16 *bport,
				     struct ipv4_flow *inner, struct lb4_service **svc, struct lb4_key *fe)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *out = data + ETH_HLEN;
	struct endpoint_key ek = {};
	int ret;

	if ((void *)(out + 1) > data_end)
		return 0;
	ek.ip = out->daddr;
	if (!bpf_map_lookup_elem(&sluice_endpoints_v1, &ek))
		return 0;
	if (out->ihl != 5 || (out->frag_off & bpf_htons(IPV4_FRAG_MASK)) ||
	    bpf_ntohs(out->tot_len) < 2 * DSR_ENCAP_LEN)
		return -DROP_DSR_INVALID;
	*baddr = out->daddr;
	*bport = out->id;
	/* The inner header must be whole and name a frontend before the
	 * outer one goes. */
	ret = ipv4_parse_flow(skb, ETH_HLEN + DSR_ENCAP_LEN, inner);
	if (ret <= 0 || *bport == 0)
		return -DROP_DSR_INVALID;
	fe->address = inner->daddr;
	fe->dport = inner->dport;
	fe->proto = inner->proto;
	*svc = lb4_lookup_service(fe);
	if (!*svc || !((*svc)->flags & LB_FLAG_EXTERNAL)) {
		/* A NodePort frontend: the receiving node's address. */
		fe->address = 0;
		*svc = lb4_lookup_service(fe);
		if (!*svc || !((*svc)->flags & LB_FLAG_NODEPORT))
			return -DROP_DSR_INVALID;
	}
	if (bpf_skb_adjust_room(skb, -DSR_ENCAP_LEN, BPF_ADJ_ROOM_MAC, 0) < 0)
		return -DROP_DSR_INVALID;
	ret = ipv4_parse_flow(skb, ETH_HLEN, inner);
	if (ret <= 0)
		return -DROP_DSR_INVALID;
	return 1;
}

#define TCP_FLAG_SYN	0x02
#define TCP_FLAG_ACK	0x10
#define TCPOPT_MSS	2
#define TCPOPT_EOL	0
#define TCPOPT_NOP	1
#define TCP_OPT_MAX	40

/* Lowers the MSS option of the TCP SYN(-ACK) f to max_mss (options within
 * the first TCP_OPT_MAX bytes). Returns 1 when it did, else 0. */
static __always_inline int dsr_clamp_mss(struct __sk_buff *skb, const struct ipv4_flow *f, __u16 max_mss)
{
	__u8 doff_b, opts[64] = {};
	__u32 opt_off = f->l4_off + 20, len, i = 0, n;
	__be16 old_mss, new_mss;

	if (f->proto != IPPROTO_TCP || !(f->tcp_flags & TCP_FLAG_SYN))
		return 0;
	if (bpf_skb_load_bytes(skb, f->l4_off + 12, &doff_b, 1) < 0)
		return 0;
	len = (doff_b >> 4) * 4 - 20;
	/* Keep the compiler from folding the bounds into one check the
	 * verifier cannot follow. */
	asm volatile("" : "+r"(len));
	if (len < 4 || len > TCP_OPT_MAX)
		return 0;
	if (bpf_skb_load_bytes(skb, opt_off, opts, len) < 0)
		return 0;
	for (n = 0; n < TCP_OPT_MAX; n++) {
		__u8 kind, olen;

		if (i + 4 > len)
			break;
		kind = opts[i & 63];
		if (kind == TCPOPT_EOL)
			break;
		if (kind == TCPOPT_NOP) {
			i++;
			continue;
		}
		olen = opts[(i + 1) & 63];
		if (kind == TCPOPT_MSS && olen == 4) {
			old_mss = (__be16)(opts[(i + 2) & 63] | (opts[(i + 3) & 63] << 8));
			if (bpf_ntohs(old_mss) <= max_mss)
				return 0;
			new_mss = bpf_htons(max_mss);
			if (bpf_l4_csum_replace(skb, l4_csum_off(f), old_mss, new_mss, sizeof(new_mss)) < 0)
				return 0;
			if (bpf_skb_store_bytes(skb, opt_off + (i & 63) + 2, &new_mss, sizeof(new_mss), 0) < 0)
				return 0;
			return 1;
		}
		if (olen < 2)
			break;
		i += olen;
	}
	return 0;
}

#endif /* SLUICE_DSR_H */
