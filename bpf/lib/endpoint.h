/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Endpoint lookups, anti-spoofing, policy enforcement and local delivery for
 * the pod programs. */
#ifndef SLUICE_ENDPOINT_H
#define SLUICE_ENDPOINT_H

#include "common.h"
#include "maps.h"
#include "eth.h"
#include "metrics.h"
#include "lb_skb.h"
#include "identity.h"
#include "policy.h"

static __always_inline struct endpoint_info *lookup_endpoint(__be32 ip)
{
	struct endpoint_key key = { .ip = ip };

	return bpf_map_lookup_elem(&sluice_endpoints_v1, &key);
}

/* An endpoint owns a packet when the packet's source IPv4 is registered to the
 * interface it arrived on and its source MAC is the pod's. Sets *ep to it. */
static __always_inline int check_source(struct __sk_buff *skb, __be32 saddr, const __u8 *smac,
					struct endpoint_info **ep)
{
	struct endpoint_info *e = lookup_endpoint(saddr);

	if (!e || e->ifindex != skb->ifindex)
		return -DROP_SPOOF_IP;
	if (!mac_equal(smac, e->mac))
		return -DROP_SPOOF_MAC;
	*ep = e;
	return 0;
}

static __always_inline int handle_arp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct arp_hdr *arp = (void *)(eth + 1);
	struct arp_eth_ipv4 *body = (void *)(arp + 1);
	struct endpoint_info *ep;

	if ((void *)(body + 1) > data_end)
		return -DROP_INVALID;
	if (arp->ar_hrd != bpf_htons(ARPHRD_ETHER) || arp->ar_pro != bpf_htons(ETH_P_IP) ||
	    arp->ar_hln != 6 || arp->ar_pln != 4)
		return -DROP_INVALID;
	if (!mac_equal(eth->h_source, body->sha))
		return -DROP_ARP_SPOOF;
	/* A sender address of 0.0.0.0 is an address probe (RFC 5227). */
	if (body->spa == 0) {
		ep = NULL;
	} else {
		ep = lookup_endpoint(body->spa);
		if (!ep || ep->ifindex != skb->ifindex || !mac_equal(body->sha, ep->mac))
			return -DROP_ARP_SPOOF;
	}
	return REASON_FWD_STACK;
}

/* Parses the IPv4 packet of skb (header ip) for service translation (f)
 * and policy (p). Returns 1 (TCP or UDP: f filled in), 0 (another protocol
 * or a fragment: p only) or a negative DROP_* reason. */
static __always_inline int ipv4_parse(struct __sk_buff *skb, const struct iphdr *ip, struct ipv4_flow *f,
				      struct policy_pkt *p)
{
	int parsed, ret;

	parsed = ipv4_parse_flow(skb, ETH_HLEN, f);
	if (parsed < 0)
		return parsed;
	ret = policy_pkt_init(skb, ip, f, parsed, p);
	if (ret < 0)
		return ret;
	return parsed;
}

/* Translates a packet a pod sends to a service frontend (or to a NodePort
 * on an address of the node), or reverse-NATs a backend pod's reply to a
 * translated flow. Counts the translation. Returns 0
 * (untouched), a REASON_LB_* (rewritten) or a negative DROP_* reason.
 * *rev and *rev_known: as lb4_rev_nat's. */
static __always_inline int lb4_from_container(struct __sk_buff *skb, __u32 ifindex, struct ipv4_flow *f,
					      struct ct4_entry **rev, __u8 *rev_known)
{
	int ret = 0;

	/* Most pod traffic goes to no frontend and to no NodePort's port: the
	 * filters say so without the hash lookups. */
	if (addr_filter_maybe(&sluice_lb4_fe_filter_v1, f->daddr))
		ret = lb4_xlate_fwd(skb, f);
	if (ret == 0)
		ret = lb4_rev_nat(skb, f, rev, rev_known);
	/* Neither: a NodePort on a node address. */
	if (ret == 0 && port_filter_has(&sluice_lb4_nodeport_filter_v1, f->dport))
		ret = lb4_xlate_nodeport(skb, f);
	if (ret == 0)
		lb4_ct_reopen_direct(f);
	if (ret > 0)
		update_metrics(ifindex, ret, DIR_EGRESS, skb->len);
	return ret;
}

/* Handles an IPv4 packet leaving a pod: anti-spoofing, service translation,
 * the sender's egress policy and, for a local destination, the receiver's
 * ingress policy. On local delivery it rewrites the MACs, decrements the TTL
 * and sets *redirect to the destination's host-side ifindex. A policy drop
 * sets *drop_dir to the direction whose policy dropped. */
static __always_inline int handle_ipv4_from_container(struct __sk_buff *skb, __u32 ifindex, __u32 *redirect,
						      __u8 *drop_dir)
{
	struct ethhdr *eth = NULL;
	struct iphdr *ip = ipv4_hdr(skb, &eth);
	struct endpoint_info *src = NULL, *dst;
	struct policy_pkt p = {};
	struct ipv4_flow f = {};
	__u8 dmac[6], smac[6];
	int ret, parsed, local, lb_ret = 0;

	if (!ip || ip->version != 4 || ip->ihl < 5)
		return -DROP_INVALID;

	ret = check_source(skb, ip->saddr, eth->h_source, &src);
	if (ret < 0)
		return ret;

	parsed = ipv4_parse(skb, ip, &f, &p);
	if (parsed < 0)
		return parsed;

	/* Service translation (or reverse NAT of a backend's reply) first, so
	 * that policy and delivery below see the packet's final addresses. */
	if (parsed) {
		ret = lb4_from_container(skb, ifindex, &f, &p.ct_rev, &p.ct_rev_known);
		if (ret < 0)
			return ret;
		lb_ret = ret;
		if (ret > 0) {
			p.ct_rev_known = 0; /* the tuple changed */
			policy_pkt_translated(&p, &f, ret);
			/* A hairpin flow's conntrack entries have the hairpin
			 * address as their source (lb4_local). */
			if (ret == REASON_LB_TRANSLATED)
				p.ct.saddr = f.saddr;
			ip = ipv4_hdr(skb, NULL);
			if (!ip)
				return -DROP_INVALID;
		}
	}

	dst = addr_filter_maybe(&sluice_endpoints_filter_v1, ip->daddr) ? lookup_endpoint(ip->daddr) : NULL;
	/* TTL 1 would expire here: let the stack answer with ICMP time exceeded. */
	local = dst && ip->ttl > 1;

	if (!policy_established(&p)) {
		ret = policy_enforce(&p, src, dst, peer_identity(ip->saddr, src), peer_identity(ip->daddr, dst),
				     ifindex, local ? REASON_FWD_LOCAL : REASON_FWD_STACK, drop_dir);
		if (ret < 0) {
			if (lb_ret == REASON_LB_TRANSLATED)
				policy_forget_denied(&p);
			return ret;
		}
	}
	if (!local)
		return REASON_FWD_STACK;

	__builtin_memcpy(dmac, dst->mac, 6);
	__builtin_memcpy(smac, dst->node_mac, 6);
	*redirect = dst->ifindex;

	ret = ipv4_dec_ttl(skb, ETH_HLEN, ip);
	if (ret < 0)
		return ret;
	ret = eth_store_macs(skb, dmac, smac);
	if (ret < 0)
		return ret;
	return REASON_FWD_LOCAL;
}

/* Handles a packet the node's stack sends into a pod: reverse NAT of replies
 * from backends reached through the stack (host network, other nodes), then
 * the pod's ingress policy with the source's identity from the IP cache.
 * Returns REASON_FWD_TO_EP or a negative DROP_* reason. */
static __always_inline int handle_to_container(struct __sk_buff *skb, __u32 ifindex)
{
	struct ethhdr *eth = eth_hdr(skb);
	struct policy_pkt p = {};
	struct ipv4_flow f = {};
	struct iphdr *ip;
	int ret, parsed;

	if (!eth || eth->h_proto != bpf_htons(ETH_P_IP))
		return REASON_FWD_TO_EP;
	ip = ipv4_hdr(skb, NULL);
	if (!ip || ip->ihl < 5)
		return -DROP_INVALID;
	parsed = ipv4_parse(skb, ip, &f, &p);
	if (parsed < 0)
		return parsed;
	if (parsed) {
		ret = lb4_rev_nat(skb, &f, &p.ct_rev, &p.ct_rev_known);
		if (ret < 0)
			return ret;
		if (ret > 0) {
			p.ct_rev_known = 0; /* the tuple changed */
			update_metrics(ifindex, ret, DIR_INGRESS, skb->len);
			policy_pkt_translated(&p, &f, ret);
			ip = ipv4_hdr(skb, NULL);
			if (!ip)
				return -DROP_INVALID;
		}
	}

	ret = policy_ingress(&p, lookup_endpoint(ip->daddr), ifindex, REASON_FWD_TO_EP);
	if (ret < 0)
		return ret;
	return REASON_FWD_TO_EP;
}

static __always_inline int handle_from_container(struct __sk_buff *skb, __u32 ifindex, __u32 *redirect,
						 __u8 *drop_dir)
{
	struct ethhdr *eth = eth_hdr(skb);

	if (!eth)
		return -DROP_INVALID;

	switch (eth->h_proto) {
	case bpf_htons(ETH_P_IP):
		return handle_ipv4_from_container(skb, ifindex, redirect, drop_dir);
	case bpf_htons(ETH_P_ARP):
		return handle_arp(skb);
	default:
		return -DROP_UNSUPPORTED_L3;
	}
}

#endif /* SLUICE_ENDPOINT_H */
