/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* L3/L4 policy enforcement for the pod programs.
 *
 * sluice_policy_v1 is one LPM trie shared by all endpoints, keyed
 *   {endpoint, direction, peer identity | protocol | port bits}.
 * Endpoint, direction and identity are always matched in full (56 bits); an
 * entry for any protocol stops there (prefix 56), one for a protocol adds its
 * 8 bits and the port prefix (64 + 0..16). So one trie lookup finds, for one
 * peer identity, the entry with the given protocol before any protocol and
 * then the longest port prefix; a second lookup with identity 0 (any peer)
 * finds the best wildcard-peer entry, and the longer prefix of the two wins,
 * the exact peer on a tie. That is policy.LookupMostSpecific's order. Deny
 * wins ties between entries with the same key: the agent merges them (one
 * trie key holds one entry).
 *
 * Enforcement is per endpoint and direction (sluice_policy_config_v1): a
 * packet no entry matches is dropped only in an enforced direction; a deny
 * entry drops always. Audit mode reports would-drop packets and forwards.
 * Allowed flows get a conntrack mark, so later packets and replies skip the
 * lookups.
 *
 * Address rules (NetworkPolicy ipBlock: a peer named by its address, whoever
 * holds it) are a second stage, consulted only for an endpoint whose config
 * has POLICY_CFG_ADDR_* set for the direction. sluice_policy_addr_v1 maps
 * {endpoint, direction, peer prefix} to an address-set identity: the set of
 * rules whose block holds the prefix and none of that block's excepts (every
 * block and except is a trie node, so the longest prefix holding an address
 * names exactly the rules matching it; 0: none, an except hole). The set's
 * entries live in sluice_policy_v1 under the set identity like a peer
 * identity's, and are looked up for that identity only (the identity stage
 * already did the any-peer step). A deny from either stage drops; else an
 * allow from either allows (the identity stage's first). */
#ifndef SLUICE_POLICY_H
#define SLUICE_POLICY_H

#include "common.h"
#include "maps.h"
#include "metrics.h"
#include "conntrack.h"
#include "nat.h"
#include "snat.h"
#include "identity.h"
#include "flow.h"

#define POLICY_PREFIX_ANY_PROTO	56	/* identity + endpoint + direction */
#define POLICY_PREFIX_PROTO	64	/* ... + protocol; + 0..16 port bits */
#define POLICY_PREFIX_FULL	80

/* Key of sluice_policy_v1 (see above). */
struct policy_key {
	__u32  prefixlen;
	__u32  identity;	/* peer identity, 0 = any peer */
	__u16  ep_id;
	__u8   dir;		/* enum sluice_direction */
	__u8   proto;		/* 0 with prefixlen 56: any protocol */
	__be16 dport;		/* port, or ICMP type, network byte order */
	__u16  pad;
};
_Static_assert(sizeof(struct policy_key) == 16, "policy_key size");

/* policy_entry.flags */
#define POLICY_F_DENY	(1 << 0)

struct policy_entry {
	__u32 rule_id;		/* agent's id of the rule behind the entry, 0 = none */
	__u8  flags;		/* POLICY_F_* */
	__u8  prefixlen;	/* the key's prefixlen: a trie lookup does not tell */
	__u16 pad;
};
_Static_assert(sizeof(struct policy_entry) == 8, "policy_entry size");

/* 16384 entries for each of 256 endpoints. Without preallocation the trie
 * takes memory only for what is stored; the agent reports entries/max. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct policy_key);
	__type(value, struct policy_entry);
	__uint(max_entries, 16384 * 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_policy_v1 SEC(".maps");

/* policy_config.flags */
#define POLICY_CFG_INGRESS	(1 << 0)	/* ingress enforced */
#define POLICY_CFG_EGRESS	(1 << 1)	/* egress enforced */
#define POLICY_CFG_AUDIT	(1 << 2)	/* report policy drops, forward */
#define POLICY_CFG_ADDR_INGRESS	(1 << 3)	/* ingress has address rules */
#define POLICY_CFG_ADDR_EGRESS	(1 << 4)	/* egress has address rules */

struct policy_config {
	__u32 flags;
};
_Static_assert(sizeof(struct policy_config) == 4, "policy_config size");

/* Endpoint id -> enforcement. No entry: nothing enforced. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, struct policy_config);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_policy_config_v1 SEC(".maps");

#define POLICY_ADDR_PREFIX_BASE	32	/* endpoint + direction + pad */

/* Key of sluice_policy_addr_v1: endpoint and direction matched in full, then
 * prefixlen - 32 bits of the peer address. */
struct policy_addr_key {
	__u32  prefixlen;
	__u16  ep_id;
	__u8   dir;		/* enum sluice_direction */
	__u8   pad;
	__be32 addr;
};
_Static_assert(sizeof(struct policy_addr_key) == 12, "policy_addr_key size");

/* {endpoint, direction, peer prefix} -> address-set identity (0: no address
 * rule matches there). 4096 prefixes (blocks and excepts of both directions)
 * for each of 256 endpoints, like sluice_policy_v1's per-endpoint budget; a
 * node costs about 64 bytes (plus as much for an inner node) and only while
 * stored. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct policy_addr_key);
	__type(value, __u32);
	__uint(max_entries, 4096 * 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_policy_addr_v1 SEC(".maps");

/* A packet as policy sees it. */
struct policy_pkt {
	struct ct4_tuple ct;	/* conntrack tuple (before reverse NAT for a reply) */
	__be32 saddr;		/* addresses and ports after translation */
	__be32 daddr;
	__be32 orig_daddr;	/* service frontend if translated, else 0 */
	__be16 sport;
	__be16 dport;
	__be16 orig_dport;
	__be16 port;		/* policy port: dport, or ICMP type */
	__u8   proto;
	__u8   tcp_flags;
	__u8   tracked;		/* conntrack applies (TCP, UDP, ICMP echo) */
	__u8   lb;		/* service translation already accounted the packet to conntrack */
	__u8   ct_rev_known;	/* reverse NAT looked ct reversed up: ct_rev (lb4_rev_nat) */
	struct ct4_entry *ct_rev;
};

static __always_inline struct policy_entry *
policy_match(__u16 ep_id, __u8 dir, __u32 peer, __u8 proto, __be16 port)
{
	struct policy_key key = {
		.prefixlen = POLICY_PREFIX_FULL, .identity = peer, .ep_id = ep_id, .dir = dir,
		.proto = proto, .dport = port,
	};
	struct policy_entry *exact, *any;

	exact = bpf_map_lookup_elem(&sluice_policy_v1, &key);
	if (exact && exact->prefixlen >= POLICY_PREFIX_FULL)
		return exact;
	key.identity = 0;
	any = bpf_map_lookup_elem(&sluice_policy_v1, &key);
	if (!any || (exact && exact->prefixlen >= any->prefixlen))
		return exact;
	return any;
}

/* The address stage: the entry of the rules matching the peer address addr
 * (their set identity's entry for the packet's protocol and port), or NULL. */
static __always_inline struct policy_entry *
policy_addr_match(__u16 ep_id, __u8 dir, __be32 addr, __u8 proto, __be16 port)
{
	struct policy_addr_key akey = {
		.prefixlen = POLICY_ADDR_PREFIX_BASE + 32, .ep_id = ep_id, .dir = dir, .addr = addr,
	};
	struct policy_key key = {
		.prefixlen = POLICY_PREFIX_FULL, .ep_id = ep_id, .dir = dir, .proto = proto, .dport = port,
	};
	__u32 *set = bpf_map_lookup_elem(&sluice_policy_addr_v1, &akey);

	if (!set || !*set)
		return NULL;
	key.identity = *set;
	return bpf_map_lookup_elem(&sluice_policy_v1, &key);
}

/* Combines the identity stage's entry e with the address stage's a: a deny
 * from either, else an allow from either (e first). */
static __always_inline struct policy_entry *policy_combine(struct policy_entry *e, struct policy_entry *a)
{
	if (e && (e->flags & POLICY_F_DENY))
		return e;
	if (a && ((a->flags & POLICY_F_DENY) || !e))
		return a;
	return e;
}

/* Decides the packet for endpoint ep_id in direction dir against peer (and,
 * with address rules, the peer's address: egress the destination after
 * service translation, ingress the source). Returns 0 (allowed) or a
 * negative DROP_POLICY*; *rule_id is the deciding entry's rule. In audit
 * mode a drop is returned with *audit set: the caller forwards. */
static __always_inline int policy_decide(__u16 ep_id, __u8 dir, __u32 peer, const struct policy_pkt *p,
					 __u32 *rule_id, int *audit)
{
	struct policy_config *cfg = bpf_map_lookup_elem(&sluice_policy_config_v1, &ep_id);
	__u32 flags = cfg ? cfg->flags : 0;
	struct policy_entry *e;

	e = policy_match(ep_id, dir, peer, p->proto, p->port);
	if (flags & (dir == DIR_INGRESS ? POLICY_CFG_ADDR_INGRESS : POLICY_CFG_ADDR_EGRESS))
		e = policy_combine(e, policy_addr_match(ep_id, dir, dir == DIR_INGRESS ? p->saddr : p->daddr,
							 p->proto, p->port));
	*audit = 0;
	if (e) {
		*rule_id = e->rule_id;
		if (!(e->flags & POLICY_F_DENY))
			return 0;
		*audit = !!(flags & POLICY_CFG_AUDIT);
		return -DROP_POLICY_DENY;
	}
	*rule_id = 0;
	if (!(flags & (dir == DIR_INGRESS ? POLICY_CFG_INGRESS : POLICY_CFG_EGRESS)))
		return 0;
	*audit = !!(flags & POLICY_CFG_AUDIT);
	return -DROP_POLICY;
}

static __always_inline void policy_emit(const struct policy_pkt *p, __u8 verdict, __u8 reason, __u8 dir,
					__u16 ep_id, __u32 src_id, __u32 dst_id, __u32 ifindex, __u32 rule_id)
{
	struct flow_event *ev = flow_reserve();

	if (!ev)
		return;
	ev->saddr = p->saddr;
	ev->daddr = p->daddr;
	ev->orig_daddr = p->orig_daddr;
	ev->sport = p->sport;
	ev->dport = p->dport;
	ev->orig_dport = p->orig_dport;
	ev->ep_id = ep_id;
	ev->proto = p->proto;
	ev->verdict = verdict;
	ev->reason = reason;
	ev->dir = dir;
	ev->src_identity = src_id;
	ev->dst_identity = dst_id;
	ev->ifindex = ifindex;
	ev->rule_id = rule_id;
	bpf_ringbuf_submit(ev, 0);
}

/* Reports whether p belongs to a flow policy allowed before (a later packet
 * or a reply): it then passes without policy lookups. */
static __always_inline int policy_established(const struct policy_pkt *p)
{
	return p->tracked && ct4_policy_lookup(&p->ct, p->tcp_flags, !p->lb, p->ct_rev, p->ct_rev_known) != CT_NEW;
}

/* Enforces the egress policy of src (a local endpoint sending, or NULL) and
 * the ingress policy of dst (a local endpoint receiving, or NULL) on a packet
 * of a new flow (!policy_established) from src_id to dst_id. An allowed flow
 * is marked in conntrack and reported (fwd_reason: how it is delivered).
 * Returns 0 or a negative DROP_* reason with *drop_dir set to the direction
 * whose policy dropped. */
static __always_inline int policy_enforce(const struct policy_pkt *p, const struct endpoint_info *src,
					  const struct endpoint_info *dst, __u32 src_id, __u32 dst_id,
					  __u32 ifindex, __u8 fwd_reason, __u8 *drop_dir)
{
	__u32 erule = 0, irule = 0;
	int eret = 0, iret = 0, eaudit = 0, iaudit = 0, events;

	if (src) {
		eret = policy_decide(src->id, DIR_EGRESS, dst_id, p, &erule, &eaudit);
		if (eret < 0 && !eaudit) {
			*drop_dir = DIR_EGRESS;
			policy_emit(p, FLOW_DROPPED, -eret, DIR_EGRESS, src->id, src_id, dst_id, ifindex, erule);
			return eret;
		}
	}
	if (dst) {
		iret = policy_decide(dst->id, DIR_INGRESS, src_id, p, &irule, &iaudit);
		if (iret < 0 && !iaudit) {
			*drop_dir = DIR_INGRESS;
			policy_emit(p, FLOW_DROPPED, -iret, DIR_INGRESS, dst->id, src_id, dst_id, ifindex, irule);
			return iret;
		}
	}
	if (p->tracked) {
		int ret = ct4_policy_create(&p->ct);

		if (ret < 0) {
			*drop_dir = src ? DIR_EGRESS : DIR_INGRESS;
			return ret;
		}
	}

	/* Allowed (or audited): report each enforcement point once per flow;
	 * an untracked packet only when audited. */
	events = p->tracked && flow_forwarded_enabled();
	if (src) {
		if (eret < 0) {
			update_metrics(ifindex, REASON_POLICY_AUDIT, DIR_EGRESS, 0);
			policy_emit(p, FLOW_AUDIT, -eret, DIR_EGRESS, src->id, src_id, dst_id, ifindex, erule);
		} else if (events) {
			policy_emit(p, FLOW_FORWARDED, fwd_reason, DIR_EGRESS, src->id, src_id, dst_id, ifindex, erule);
		}
	}
	if (dst) {
		if (iret < 0) {
			update_metrics(ifindex, REASON_POLICY_AUDIT, DIR_INGRESS, 0);
			policy_emit(p, FLOW_AUDIT, -iret, DIR_INGRESS, dst->id, src_id, dst_id, ifindex, irule);
		} else if (events) {
			policy_emit(p, FLOW_FORWARDED, fwd_reason, DIR_INGRESS, dst->id, src_id, dst_id, ifindex, irule);
		}
	}
	return 0;
}

/* Enforces the ingress policy of dst, the local endpoint the packet p of a
 * new flow is delivered to, with the source's identity from its endpoint
 * entry or the IP cache (world when no prefix holds it). An allowed flow is
 * marked in conntrack (CT_E_POLICY) and reported. ifindex: where the packet
 * was seen, for events and audit counters. Returns 0 or a negative
 * DROP_POLICY* (the caller counts it as an ingress drop). */
static __always_inline int policy_ingress_new(const struct policy_pkt *p, const struct endpoint_info *dst,
					      __u32 ifindex, __u8 fwd_reason)
{
	struct endpoint_key sk = { .ip = p->saddr };
	__u8 drop_dir = DIR_INGRESS;

	return policy_enforce(p, NULL, dst, peer_identity(p->saddr, bpf_map_lookup_elem(&sluice_endpoints_v1, &sk)),
			      peer_identity(p->daddr, dst), ifindex, fwd_reason, &drop_dir);
}

/* policy_ingress_new for any packet delivered to dst (NULL: not a local
 * endpoint, nothing to enforce): a later packet or reply of an allowed flow
 * passes by conntrack. For to_container, and for deliveries that skip it
 * (bpf_redirect_peer from the host device: nodeport.h, which knows the
 * flow's conntrack state and calls policy_ingress_new directly). */
static __always_inline int policy_ingress(const struct policy_pkt *p, const struct endpoint_info *dst,
					  __u32 ifindex, __u8 fwd_reason)
{
	if (!dst || policy_established(p))
		return 0;
	return policy_ingress_new(p, dst, ifindex, fwd_reason);
}

#define ICMP_ECHOREPLY	0
#define ICMP_ECHO	8

/* Fills p from the parsed TCP/UDP flow f. */
static __always_inline void policy_pkt_flow(const struct ipv4_flow *f, struct policy_pkt *p)
{
	p->saddr = f->saddr;
	p->daddr = f->daddr;
	p->proto = f->proto;
	p->sport = f->sport;
	p->dport = f->dport;
	p->port = f->dport;
	p->tcp_flags = f->tcp_flags;
	p->ct.saddr = f->saddr;
	p->ct.daddr = f->daddr;
	p->ct.sport = f->sport;
	p->ct.dport = f->dport;
	p->ct.proto = f->proto;
	p->tracked = 1;
}

/* Fills p from the IPv4 packet at ETH_HLEN for a protocol ipv4_parse_flow
 * does not parse: ICMP (type in the port slot; echo request/reply tracked by
 * id, the request as sport = id, the reply as dport = id) or another
 * protocol (no ports, untracked). f was parsed: TCP/UDP. */
static __always_inline int policy_pkt_init(struct __sk_buff *skb, const struct iphdr *ip,
					   const struct ipv4_flow *f, int parsed, struct policy_pkt *p)
{
	struct { __u8 type; __u8 code; __u16 csum; __be16 id; __be16 seq; } icmp;

	if (parsed) {
		policy_pkt_flow(f, p);
		return 0;
	}
	p->saddr = ip->saddr;
	p->daddr = ip->daddr;
	p->proto = ip->protocol;
	p->ct.saddr = ip->saddr;
	p->ct.daddr = ip->daddr;
	p->ct.proto = ip->protocol;
	if (ip->protocol != IPPROTO_ICMP || (ip->frag_off & bpf_htons(IPV4_FRAG_MASK)))
		return 0;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + ip->ihl * 4, &icmp, sizeof(icmp)) < 0)
		return -DROP_INVALID;
	p->dport = bpf_htons(icmp.type);
	p->port = p->dport;
	if (icmp.type == ICMP_ECHO) {
		p->ct.sport = icmp.id;
		p->tracked = 1;
	} else if (icmp.type == ICMP_ECHOREPLY) {
		p->ct.dport = icmp.id;
		p->tracked = 1;
	}
	return 0;
}

/* Updates p after service translation: the translated flow f for a new or
 * established service flow (the frontend kept as the original
 * destination); for a reverse-NATed reply conntrack keeps the pre-NAT tuple
 * (the backend entry is found reversed) and the event shows the frontend. */
static __always_inline void policy_pkt_translated(struct policy_pkt *p, const struct ipv4_flow *f, int lb_ret)
{
	if (lb_ret <= 0)
		return;
	p->lb = 1;
	if (lb_ret == REASON_LB_TRANSLATED) {
		p->orig_daddr = p->daddr;
		p->orig_dport = p->dport;
		p->daddr = f->daddr;
		p->dport = f->dport;
		p->port = f->dport;
		p->ct.daddr = f->daddr;
		p->ct.dport = f->dport;
	} else {
		p->saddr = f->saddr;
		p->sport = f->sport;
	}
}

/* A new flow that policy dropped after service translation (p: translated,
 * REASON_LB_TRANSLATED) leaves no state: its service and backend conntrack
 * entries (lb4_local) and a NodePort's recorded frontend
 * (snat4_record_rev_dnat) go, as if the packet never came.
 * Otherwise every denied connection attempt to a service would hold
 * conntrack entries until they expire, and a pod could fill the table with
 * flows its policy forbids. */
static __always_inline void policy_forget_denied(struct policy_pkt *p)
{
	struct ct4_tuple se = {
		.saddr = p->saddr, .daddr = p->orig_daddr, .sport = p->sport, .dport = p->orig_dport,
		.proto = p->proto, .flags = CT_F_SERVICE,
	};
	struct snat4_tuple rd = {
		.saddr = p->ct.daddr, .daddr = p->ct.saddr, .sport = p->ct.dport, .dport = p->ct.sport,
		.proto = p->proto, .flags = SNAT_F_REV_DNAT,
	};

	bpf_map_delete_elem(&sluice_ct4_v1, &se);
	bpf_map_delete_elem(&sluice_ct4_v1, &p->ct);
	bpf_map_delete_elem(&sluice_snat4_v1, &rd);
}

#endif /* SLUICE_POLICY_H */
