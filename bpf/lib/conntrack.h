/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection tracking for service flows and policy.
 *
 * Two entries per translated flow, both keyed in the client's orientation:
 *   service entry   client -> frontend (CT_F_SERVICE): remembers the backend,
 *                   so every packet of the flow keeps it while the service's
 *                   backend list changes;
 *   backend entry   client -> backend: carries rev_nat_id, so replies
 *                   (backend -> client, looked up reversed) are translated
 *                   back to the frontend.
 * A NodePort flow's backend entry (host.c) carries the backend id but no
 * reverse-NAT id: the host device translates its replies.
 * Policy marks a flow it allowed with CT_E_POLICY: on the backend entry of a
 * translated flow (ClusterIP or NodePort), else on a plain entry client ->
 * server (no backend, rev_nat_id 0) created for the flow. Later packets of
 * the flow (found forward) and its replies (found reversed) pass without a
 * policy lookup.
 * Lifetimes are absolute seconds of CLOCK_BOOTTIME; the agent deletes expired
 * entries (CTGC) and the LRU evicts under pressure. */
#ifndef SLUICE_CONNTRACK_H
#define SLUICE_CONNTRACK_H

#include "common.h"

/* ct4_tuple.flags */
#define CT_F_SERVICE	(1 << 0)	/* service entry (daddr/dport is a frontend) */

/* ct4_entry.flags */
#define CT_E_CLOSING	(1 << 0)	/* RST, or FIN both ways, seen: short lifetime */
#define CT_E_SEEN_REPLY	(1 << 1)	/* a reply went through: established */
#define CT_E_TX_FIN	(1 << 2)	/* client sent FIN */
#define CT_E_RX_FIN	(1 << 3)	/* server sent FIN */
#define CT_E_POLICY	(1 << 4)	/* policy allowed the flow (both ends on this node) */
#define CT_E_SEEN_NON_SYN (1 << 5)	/* the client sent past its SYN: the handshake is over
					 * (a DSR node sees the flow's requests, never a reply) */

/* What conntrack knows of a packet, for policy. */
#define CT_NEW		0	/* no allowed flow: policy decides */
#define CT_ESTABLISHED	1	/* a later packet of an allowed flow */
#define CT_REPLY	2	/* a reply of an allowed flow */

/* Lifetimes in seconds, set by the agent before load. */
volatile const __u32 ct_lifetime_tcp = 21600;		/* established TCP */
volatile const __u32 ct_lifetime_tcp_syn = 60;		/* TCP before the first reply */
volatile const __u32 ct_lifetime_tcp_closing = 10;	/* after FIN/RST */
volatile const __u32 ct_lifetime_nontcp = 60;		/* UDP */

/* Key of sluice_ct4_v1, addresses and ports in network byte order. */
struct ct4_tuple {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8   proto;
	__u8   flags;		/* CT_F_* */
	__u16  pad;
};
_Static_assert(sizeof(struct ct4_tuple) == 16, "ct4_tuple size");

struct ct4_entry {
	__u32 backend_id;
	__u16 rev_nat_id;
	__u16 flags;		/* CT_E_* */
	__u32 lifetime;		/* expiry, seconds of CLOCK_BOOTTIME */
	__u32 pad;
	__u64 tx_packets;	/* client -> server */
	__u64 rx_packets;	/* server -> client */
};
_Static_assert(sizeof(struct ct4_entry) == 32, "ct4_entry size");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct4_tuple);
	__type(value, struct ct4_entry);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_ct4_v1 SEC(".maps");

/* TCP flags as found in byte 13 of the TCP header. */
#define TCP_FLAG_FIN	0x01
#define TCP_FLAG_SYN	0x02
#define TCP_FLAG_RST	0x04
#define TCP_FLAG_ACK	0x10

static __always_inline int ct_is_new_syn(__u8 proto, __u8 tcp_flags)
{
	return proto == IPPROTO_TCP && (tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
}

/* Lifetime an entry gets from a packet, given its entry flags. */
static __always_inline __u32 ct_lifetime(__u8 proto, __u16 flags)
{
	if (proto != IPPROTO_TCP)
		return ct_lifetime_nontcp;
	if (flags & CT_E_CLOSING)
		return ct_lifetime_tcp_closing;
	if (flags & (CT_E_SEEN_REPLY | CT_E_SEEN_NON_SYN))
		return ct_lifetime_tcp;
	return ct_lifetime_tcp_syn;
}

static __always_inline struct ct4_entry *ct4_lookup(const struct ct4_tuple *t)
{
	return bpf_map_lookup_elem(&sluice_ct4_v1, t);
}

/* Creates (or replaces) the entry of t. */
static __always_inline int ct4_create(const struct ct4_tuple *t, __u32 backend_id, __u16 rev_nat_id,
				      __u16 flags, __u64 now)
{
	struct ct4_entry e = {
		.backend_id = backend_id,
		.rev_nat_id = rev_nat_id,
		.flags = flags,
		.tx_packets = 1,
	};

	e.lifetime = now + ct_lifetime(t->proto, flags);
	if (bpf_map_update_elem(&sluice_ct4_v1, t, &e, BPF_ANY) < 0)
		return -DROP_CT_MAP_FULL;
	return 0;
}

/* Accounts a packet to e and refreshes its lifetime. reply: server -> client. */
static __always_inline void ct4_update(struct ct4_entry *e, __u8 proto, __u8 tcp_flags, int reply, __u64 now)
{
	__u16 flags = e->flags;
	__u32 lifetime;

	if (proto == IPPROTO_TCP) {
		if (tcp_flags & TCP_FLAG_RST)
			flags |= CT_E_CLOSING;
		if (tcp_flags & TCP_FLAG_FIN)
			flags |= reply ? CT_E_RX_FIN : CT_E_TX_FIN;
		if ((flags & (CT_E_TX_FIN | CT_E_RX_FIN)) == (CT_E_TX_FIN | CT_E_RX_FIN))
			flags |= CT_E_CLOSING;
		/* As Cilium's seen_non_syn: the client's ACK of the handshake
		 * makes the flow established even where its replies take
		 * another path (DSR), or an idle connection's entry would
		 * expire after the SYN lifetime and its next packet be
		 * balanced anew, to another backend. */
		if (!reply && !(tcp_flags & TCP_FLAG_SYN))
			flags |= CT_E_SEEN_NON_SYN;
	}
	if (reply)
		flags |= CT_E_SEEN_REPLY;
	if (flags != e->flags)
		e->flags = flags;
	lifetime = now + ct_lifetime(proto, flags);
	/* Avoid dirtying the cache line when nothing changed. */
	if (e->lifetime != lifetime)
		e->lifetime = lifetime;
	if (reply)
		__sync_fetch_and_add(&e->rx_packets, 1);
	else
		__sync_fetch_and_add(&e->tx_packets, 1);
}

/* An entry service translation created (backend entry): the LB code owns
 * its accounting and lifetime. */
static __always_inline int ct4_is_backend_entry(const struct ct4_entry *e)
{
	return e->backend_id || e->rev_nat_id;
}

/* The last second ct_now_sec read, with the jiffy it was read in: jiffies in
 * the high 32 bits, the second in the low 32 (0: none yet). One word, so a
 * reader on another CPU sees a consistent pair. */
__u64 ct_clock_cache = 0;

/* now_sec() for the per-packet conntrack refresh, read from the clock at
 * most once per jiffy (bpf_jiffies64 is a load the verifier inlines; reading
 * CLOCK_BOOTTIME costs a helper call and a clock read, about a third of an
 * established packet's time). The second is the clock's as of some time in
 * the current jiffy: when the second changed within it, an expiry set from
 * it is one second early. */
static __always_inline __u64 ct_now_sec(void)
{
	__u64 j = bpf_jiffies64(), c = ct_clock_cache, now;

	if (c && (c >> 32) == (j & 0xffffffff))
		return c & 0xffffffff;
	now = now_sec();
	ct_clock_cache = (j << 32) | (now & 0xffffffff);
	return now;
}

/* Finds the allowed flow t (client orientation as seen) belongs to, forward
 * or reversed. touch: account the packet to the entry (0 when service
 * translation already did; never for a backend entry, which the LB code
 * accounts: a NodePort flow's replies are accounted at the host device). A
 * TCP SYN reusing the tuple of a closing flow is a new flow. rev_known: the
 * caller looked the reversed entry up already (rev, or NULL: none), as
 * reverse NAT does for every untranslated packet, so it is not looked up
 * again. */
static __always_inline int ct4_policy_lookup(const struct ct4_tuple *t, __u8 tcp_flags, int touch,
					     struct ct4_entry *rev, int rev_known)
{
	struct ct4_tuple rt = {
		.saddr = t->daddr, .daddr = t->saddr, .sport = t->dport, .dport = t->sport,
		.proto = t->proto,
	};
	struct ct4_entry *e;

	e = ct4_lookup(t);
	if (e && (e->flags & CT_E_POLICY)) {
		if ((e->flags & CT_E_CLOSING) && ct_is_new_syn(t->proto, tcp_flags))
			return CT_NEW;
		if (touch && !ct4_is_backend_entry(e))
			ct4_update(e, t->proto, tcp_flags, 0, ct_now_sec());
		return CT_ESTABLISHED;
	}
	e = rev_known ? rev : ct4_lookup(&rt);
	if (e && (e->flags & CT_E_POLICY)) {
		if (touch && !ct4_is_backend_entry(e))
			ct4_update(e, t->proto, tcp_flags, 1, ct_now_sec());
		return CT_REPLY;
	}
	return CT_NEW;
}

/* Records that policy allowed the new flow t: marks the backend entry service
 * translation (ClusterIP, or NodePort at the host device) created for it, or
 * creates a plain entry (replacing a stale one). */
static __always_inline int ct4_policy_create(const struct ct4_tuple *t)
{
	struct ct4_entry *e = ct4_lookup(t);

	if (e && ct4_is_backend_entry(e)) {
		e->flags |= CT_E_POLICY;
		return 0;
	}
	return ct4_create(t, 0, 0, CT_E_POLICY, now_sec());
}

#endif /* SLUICE_CONNTRACK_H */
