/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-packet service load balancing for tc programs: frontend -> backend
 * translation with conntrack (lb4_xlate_fwd) and reverse NAT of replies
 * (lb4_rev_nat). The pod programs use it; the host device program (NodePort)
 * reuses it with its own frontend lookup. */
#ifndef SLUICE_LB_SKB_H
#define SLUICE_LB_SKB_H

#include "common.h"
#include "lb.h"
#include "conntrack.h"
#include "nat.h"

/* Hairpin: a pod whose flow to a service is given itself as the backend
 * would see a packet from its own address to its own address and drop it
 * as martian. Such a flow is SNATed to this link-local address (network
 * order; set by the agent before load, 0 disables), as Cilium does with
 * 169.254.42.1: the pod answers it through its default route, i.e. back out
 * of eth0 to from_container, whose reverse NAT translates both addresses
 * back (frontend -> pod). The backend conntrack entry of a hairpin flow is
 * keyed by this address as its source. */
volatile const __be32 lb_hairpin_ipv4 = bpf_htonl(0xa9fe2a01); /* 169.254.42.1 */

/* The source a flow from caddr to the backend baddr gets: the hairpin
 * address when the client is the backend. */
static __always_inline __be32 lb4_hairpin_saddr(__be32 caddr, __be32 baddr)
{
	__be32 hairpin = lb_hairpin_ipv4;

	return hairpin && caddr == baddr ? hairpin : caddr;
}

/* Translates the flow f of skb, whose destination is the frontend fe with
 * master entry svc, to a backend: the one its conntrack service entry names
 * while that backend exists, else a newly selected one. Creates or refreshes
 * both conntrack entries, then DNATs. Returns REASON_LB_TRANSLATED or a
 * negative DROP_* reason. */
static __always_inline int lb4_xlate_svc(struct __sk_buff *skb, struct ipv4_flow *f,
					 const struct lb4_key *fe, const struct lb4_service *svc)
{
	struct ct4_tuple st = {
		.saddr = f->saddr, .daddr = f->daddr, .sport = f->sport, .dport = f->dport,
		.proto = f->proto, .flags = CT_F_SERVICE,
	};
	struct ct4_tuple bt = {};
	struct ct4_entry *se, *be_e;
	struct lb4_backend *be = NULL;
	__u16 rev_nat_id = svc->rev_nat_id;
	__u32 backend_id = 0;
	__be32 baddr, saddr;
	__be16 bport;
	__u64 now = lb_now_sec();
	int ret = 0;

	se = ct4_lookup(&st);
	if (se && (se->flags & CT_E_CLOSING) && ct_is_new_syn(f->proto, f->tcp_flags))
		se = NULL; /* the tuple is reused by a new connection */
	if (se) {
		backend_id = se->backend_id;
		be = lb4_lookup_backend(backend_id);
		rev_nat_id = se->rev_nat_id;
	}
	if (!be) {
		se = NULL;
		be = lb4_select_backend(fe, svc, f->saddr, 0, &backend_id, &ret);
		if (!be)
			return ret;
	}
	baddr = be->address;
	bport = be->port;
	saddr = lb4_hairpin_saddr(f->saddr, baddr);

	bt.saddr = saddr;
	bt.daddr = baddr;
	bt.sport = f->sport;
	bt.dport = bport;
	bt.proto = f->proto;
	be_e = ct4_lookup(&bt);
	if (!se || !be_e || be_e->rev_nat_id != rev_nat_id) {
		ret = ct4_create(&bt, backend_id, rev_nat_id, 0, now);
		if (ret < 0)
			return ret;
		be_e = ct4_lookup(&bt);
	} else {
		ct4_update(be_e, f->proto, f->tcp_flags, 0, now);
	}
	if (!se) {
		ret = ct4_create(&st, backend_id, rev_nat_id, 0, now);
		if (ret < 0)
			return ret;
	} else {
		se->tx_packets++;
		/* The backend entry sees both directions: it knows the state. */
		if (be_e && se->lifetime != be_e->lifetime) {
			se->lifetime = be_e->lifetime;
			se->flags = be_e->flags;
		}
	}

	ret = ipv4_nat(skb, f, 0, baddr, bport);
	if (ret < 0)
		return ret;
	if (saddr != f->saddr) {
		ret = ipv4_nat(skb, f, 1, saddr, f->sport);
		if (ret < 0)
			return ret;
	}
	return REASON_LB_TRANSLATED;
}

/* Service translation for a packet whose destination may be a frontend
 * (exact address match, ClusterIP/ExternalIP/LoadBalancer). Returns 0 when it
 * is not, REASON_LB_TRANSLATED, or a negative DROP_* reason. */
static __always_inline int lb4_xlate_fwd(struct __sk_buff *skb, struct ipv4_flow *f)
{
	struct lb4_key fe = { .address = f->daddr, .dport = f->dport, .proto = f->proto };
	struct lb4_service *svc;

	svc = bpf_map_lookup_elem(&sluice_lb4_services_v1, &fe);
	if (!svc)
		return 0;
	return lb4_xlate_svc(skb, f, &fe, svc);
}

/* Reverse NAT of a reply (backend -> client) of a translated flow: SNATs the
 * source back to the frontend, and for a hairpin flow (the reply goes to the
 * hairpin address) DNATs the destination back to the pod, which is the
 * reply's source. Returns 0 when f is no such reply, REASON_LB_REV_NAT, or a
 * negative DROP_* reason. */
static __always_inline int lb4_rev_nat(struct __sk_buff *skb, struct ipv4_flow *f)
{
	struct ct4_tuple t = {
		.saddr = f->daddr, .daddr = f->saddr, .sport = f->dport, .dport = f->sport,
		.proto = f->proto,
	};
	struct lb4_reverse_nat *rn;
	struct ct4_entry *e, *se;
	__be32 vaddr, caddr;
	__be16 vport;
	__u64 now;
	int ret;

	e = ct4_lookup(&t);
	if (!e || !e->rev_nat_id)
		return 0;
	rn = lb4_lookup_rev_nat(e->rev_nat_id);
	if (!rn)
		return 0;
	vaddr = rn->address;
	vport = rn->port;
	now = lb_now_sec();
	ct4_update(e, f->proto, f->tcp_flags, 1, now);

	/* Keep the service entry alive as long as the flow is. */
	caddr = f->daddr;
	if (lb_hairpin_ipv4 && caddr == lb_hairpin_ipv4)
		caddr = f->saddr;
	t.saddr = caddr;
	t.daddr = vaddr;
	t.dport = vport;
	t.flags = CT_F_SERVICE;
	se = ct4_lookup(&t);
	if (se && se->lifetime != e->lifetime) {
		se->lifetime = e->lifetime;
		se->flags = e->flags;
	}
	if (se)
		se->rx_packets++;

	ret = ipv4_nat(skb, f, 1, vaddr, vport);
	if (ret < 0)
		return ret;
	if (caddr != f->daddr) {
		ret = ipv4_nat(skb, f, 0, caddr, f->dport);
		if (ret < 0)
			return ret;
	}
	return REASON_LB_REV_NAT;
}

#endif /* SLUICE_LB_SKB_H */
