/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The one load-balancing path with conntrack, as cilium's lb4_local(): every
 * program that load-balances packets (the pod programs, lb_skb.h; the host
 * devices, nodeport.h; an XDP program) asks lb4_local for a flow's backend
 * and then rewrites the packet its own way. It takes the parsed flow, the
 * frontend and its service, never the packet, so it runs in any program type.
 *
 * The flow's reverse-NAT id is always the current service's. A service entry
 * carrying another one was made for an earlier service on the same frontend
 * (the service was deleted and created again, and the agent gave the new one
 * a new id): its backend belongs to that service, so the packet is a new
 * flow, as in cilium's lb4_local(). */
#ifndef SLUICE_LB_CT_H
#define SLUICE_LB_CT_H

#include "common.h"
#include "lb.h"
#include "conntrack.h"
#include "nat.h"
#include "jhash.h"

/* Who translates the replies of a flow lb4_local load-balanced. */
enum lb4_rev_nat_by {
	/* The pod programs (lb4_rev_nat): the backend entry carries the
	 * reverse-NAT id. */
	LB4_REV_NAT_BY_CT	= 0,
	/* The host device, from the NAT map: the backend entry carries no
	 * reverse-NAT id, so the pod programs leave the replies alone. */
	LB4_REV_NAT_BY_NAT_MAP	= 1,
};

/* What lb4_local decided for a packet. */
struct lb4_state {
	__be32 baddr;		/* the backend */
	__be16 bport;
	__u16  ct_flags;	/* CT_E_* of the flow's backend entry */
	__be32 saddr;		/* the flow's source towards the backend: the client, or the hairpin address */
	__u32  lifetime;	/* the flow's expiry */
};

/* The hash of f that picks its entry of a Maglev table: lookup3 of the
 * 5-tuple as Cilium's hash_from_tuple_v4, so a client's connections spread
 * over the backends and every node computes the same hash for the same
 * packet. With session affinity the source port is left out (as Cilium
 * does), so a client's new connections land on the same backend even on a
 * node that has no affinity entry for it. Addresses and ports are taken as
 * the bytes are in the packet (loaded little-endian); agent/lb/maglev.FlowHash
 * is the same function. */
static __always_inline __u32 lb4_flow_hash(const struct ipv4_flow *f, const struct lb4_service *svc)
{
	__u32 ports = ((__u32)f->dport << 16) | f->sport;

	if (svc->flags & LB_FLAG_AFFINITY)
		ports = (__u32)f->dport << 16;
	return jhash_3words(f->saddr, f->daddr, ports, f->proto);
}

/* The service entry follows the backend entry, which sees both directions of
 * the flow and so knows its state. */
static __always_inline void lb4_ct_follow(struct ct4_entry *se, const struct ct4_entry *be_e)
{
	if (se->lifetime != be_e->lifetime) {
		se->lifetime = be_e->lifetime;
		se->flags = be_e->flags;
	}
}

/* Load-balances the packet f of a flow to the frontend fe (master entry svc):
 * the backend the flow's service entry names while that backend exists and
 * the entry is the current service's and no new TCP connection reuses a
 * closing tuple, else a newly selected one. Creates or refreshes the flow's
 * service entry (client -> frontend) and backend entry (st->saddr -> backend;
 * st->saddr is hairpin when the client is its own backend and hairpin is not
 * 0). rev_nat_by: enum lb4_rev_nat_by. Fills st; returns 0 or a negative
 * DROP_* reason. */
static __always_inline int lb4_local(const struct ipv4_flow *f, const struct lb4_key *fe,
				     const struct lb4_service *svc, __be32 hairpin, int rev_nat_by,
				     struct lb4_state *st, __u64 now)
{
	struct ct4_tuple t = {
		.saddr = f->saddr, .daddr = f->daddr, .sport = f->sport, .dport = f->dport,
		.proto = f->proto, .flags = CT_F_SERVICE,
	};
	__u16 be_rev_nat = rev_nat_by == LB4_REV_NAT_BY_CT ? svc->rev_nat_id : 0;
	struct ct4_entry *se, *be_e;
	struct lb4_backend *be = NULL;
	__u32 backend_id = 0;
	int ret;

	se = ct4_lookup(&t);
	if (se && (se->rev_nat_id != svc->rev_nat_id ||
		   ((se->flags & CT_E_CLOSING) && ct_is_new_syn(f->proto, f->tcp_flags))))
		se = NULL; /* an earlier service's flow, or a new connection */
	if (se) {
		backend_id = se->backend_id;
		be = lb4_lookup_backend(backend_id);
	}
	if (!be) {
		se = NULL;
		if (lb4_svc_maglev(svc))
			ret = lb4_select_backend_maglev(fe, svc, f->saddr, lb4_flow_hash(f, svc), &be, &backend_id);
		else
			ret = lb4_select_backend(fe, svc, f->saddr, 0, &be, &backend_id);
		if (ret < 0)
			return ret;
	}
	st->baddr = be->address;
	st->bport = be->port;
	st->saddr = hairpin && f->saddr == st->baddr ? hairpin : f->saddr;

	/* The backend entry, in the client's orientation as the backend sees it. */
	t.saddr = st->saddr;
	t.daddr = st->baddr;
	t.dport = st->bport;
	t.flags = 0;
	be_e = ct4_lookup(&t);
	if (!se || !be_e || be_e->rev_nat_id != be_rev_nat) {
		ret = ct4_create(&t, backend_id, be_rev_nat, 0, now);
		if (ret < 0)
			return ret;
		be_e = ct4_lookup(&t);
	} else {
		ct4_update(be_e, f->proto, f->tcp_flags, 0, now);
	}
	st->lifetime = be_e ? be_e->lifetime : now + ct_lifetime(f->proto, 0);
	st->ct_flags = be_e ? be_e->flags : 0;

	if (!se) {
		t.saddr = f->saddr;
		t.daddr = f->daddr;
		t.dport = f->dport;
		t.flags = CT_F_SERVICE;
		return ct4_create(&t, backend_id, svc->rev_nat_id, 0, now);
	}
	se->tx_packets++;
	if (be_e)
		lb4_ct_follow(se, be_e);
	return 0;
}

/* Accounts a reply (backend -> client) of a load-balanced flow to its backend
 * entry e and to its service entry, client caddr:cport -> frontend
 * fe_addr:fe_port. Returns the flow's lifetime. */
static __always_inline __u32 lb4_ct_reply(struct ct4_entry *e, __be32 caddr, __be16 cport, __be32 fe_addr,
					  __be16 fe_port, __u8 proto, __u8 tcp_flags, __u64 now)
{
	struct ct4_tuple t = {
		.saddr = caddr, .daddr = fe_addr, .sport = cport, .dport = fe_port,
		.proto = proto, .flags = CT_F_SERVICE,
	};
	struct ct4_entry *se;

	ct4_update(e, proto, tcp_flags, 1, now);
	se = ct4_lookup(&t);
	if (se) {
		lb4_ct_follow(se, e);
		se->rx_packets++;
	}
	return e->lifetime;
}

#endif /* SLUICE_LB_CT_H */
