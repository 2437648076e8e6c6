/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-packet service load balancing for the pod programs: frontend ->
 * backend translation with conntrack (lb4_xlate_fwd, and lb4_xlate_nodeport
 * for a NodePort on an address of the node) and reverse NAT of replies
 * (lb4_rev_nat). Backends come from lb4_local (lb_ct.h), as for the host
 * device program (nodeport.h). */
#ifndef SLUICE_LB_SKB_H
#define SLUICE_LB_SKB_H

#include "common.h"
#include "lb.h"
#include "conntrack.h"
#include "nat.h"
#include "snat.h"
#include "node_addrs.h"
#include "lb_ct.h"
#include "addr_filter.h"

/* Hairpin: a pod whose flow to a service is given itself as the backend
 * would see a packet from its own address to its own address and drop it
 * as martian. Such a flow is SNATed to this link-local address (network
 * order; set by the agent before load, 0 disables), as Cilium does with
 * 169.254.42.1: the pod answers it through its default route, i.e. back out
 * of eth0 to from_container, whose reverse NAT translates both addresses
 * back (frontend -> pod). The backend conntrack entry of a hairpin flow is
 * keyed by this address as its source. */
volatile const __be32 lb_hairpin_ipv4 = bpf_htonl(0xa9fe2a01); /* 169.254.42.1 */

/* A packet that no service translated, reusing the tuple of a load-balanced
 * flow that is over, starts a direct flow to the backend: the old flow's
 * backend entry would have its replies reverse-NATed to the old frontend.
 * Over: for a new TCP connection (SYN), closing or expired (not yet
 * collected by the agent's GC); for UDP, which has no connection to start,
 * expired (only to an address the backend filter may hold: other UDP pays
 * no lookup). The entry loses its backend and reverse-NAT ids. */
static __always_inline void lb4_ct_reopen_direct(const struct ipv4_flow *f)
{
	struct ct4_tuple t = {
		.saddr = f->saddr, .daddr = f->daddr, .sport = f->sport, .dport = f->dport,
		.proto = f->proto,
	};
	int syn = ct_is_new_syn(f->proto, f->tcp_flags);
	struct ct4_entry *e;

	if (!syn && !(f->proto == IPPROTO_UDP && addr_filter_maybe(&sluice_lb4_backend_filter_v1, f->daddr)))
		return;
	e = ct4_lookup(&t);
	if (e && ct4_is_backend_entry(e) && ((syn && (e->flags & CT_E_CLOSING)) || e->lifetime < ct_now_sec())) {
		/* Made a plain entry in place: its flags still say what the
		 * tuple's last flow did, so conntrack and policy treat the
		 * packet as they treat any packet on that tuple. */
		e->backend_id = 0;
		e->rev_nat_id = 0;
	}
}

/* Translates the flow f of skb, whose destination is the frontend fe with
 * master entry svc, to the backend lb4_local gives it: DNAT, and SNAT of a
 * hairpin flow. Sets *lifetime to the flow's. Returns REASON_LB_TRANSLATED
 * or a negative DROP_* reason. */
static __always_inline int lb4_xlate_svc(struct __sk_buff *skb, struct ipv4_flow *f,
					 const struct lb4_key *fe, const struct lb4_service *svc,
					 __u32 *lifetime)
{
	struct lb4_state st = {};
	int ret;

	ret = lb4_local(f, fe, svc, lb_hairpin_ipv4, LB4_REV_NAT_BY_CT, &st, now_sec());
	if (ret < 0)
		return ret;
	*lifetime = st.lifetime;
	ret = ipv4_nat(skb, f, 0, st.baddr, st.bport);
	if (ret < 0)
		return ret;
	if (st.saddr != f->saddr) {
		ret = ipv4_nat(skb, f, 1, st.saddr, f->sport);
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
	__u32 lifetime;

	svc = lb4_lookup_service(&fe);
	if (!svc)
		return 0;
	return lb4_xlate_svc(skb, f, &fe, svc, &lifetime);
}

/* Service translation for a packet a pod sends to a NodePort on an address
 * of the node (wildcard frontend 0.0.0.0:port). Called only for packets
 * that are neither to a frontend nor a reply of a translated flow. The
 * NodePort's reverse-NAT address is the wildcard, so the address the client
 * used is recorded for the flow (snat4_record_rev_dnat, as for a local
 * backend of host.c) and lb4_rev_nat takes it from there. Returns 0 when f
 * is no such packet, REASON_LB_TRANSLATED, or a negative DROP_* reason. */
static __always_inline int lb4_xlate_nodeport(struct __sk_buff *skb, struct ipv4_flow *f)
{
	struct lb4_key fe = { .dport = f->dport, .proto = f->proto };
	__be32 fe_addr = f->daddr;
	__be16 fe_port = f->dport;
	struct lb4_service *svc;
	__u32 lifetime = 0;
	int ret;

	svc = lb4_lookup_nodeport(fe_addr, &fe);
	if (!svc)
		return 0;
	ret = lb4_xlate_svc(skb, f, &fe, svc, &lifetime);
	if (ret < 0)
		return ret;
	ret = snat4_record_rev_dnat(f, fe_addr, fe_port, lifetime);
	if (ret < 0)
		return ret;
	return REASON_LB_TRANSLATED;
}

/* Reverse NAT of a reply (backend -> client) of a translated flow: SNATs the
 * source back to the frontend, and for a hairpin flow (the reply goes to the
 * hairpin address) DNATs the destination back to the pod, which is the
 * reply's source. The frontend of a NodePort (reverse-NAT address 0.0.0.0)
 * is the node address lb4_xlate_nodeport recorded for the flow. Returns 0
 * when f is no such reply, REASON_LB_REV_NAT, or a negative DROP_* reason.
 * When it looked the conntrack entry of f reversed up, for policy, it sets
 * *rev to it (NULL: none) and *rev_known. */
static __always_inline int lb4_rev_nat(struct __sk_buff *skb, struct ipv4_flow *f, struct ct4_entry **rev,
				       __u8 *rev_known)
{
	struct ct4_tuple t = {
		.saddr = f->daddr, .daddr = f->saddr, .sport = f->dport, .dport = f->sport,
		.proto = f->proto,
	};
	struct lb4_reverse_nat *rn;
	struct snat4_entry *ne = NULL;
	struct ct4_entry *e;
	__be32 vaddr, caddr;
	__be16 vport;
	__u32 lifetime;
	int ret;

	/* Only a backend's packet can be a reply to translate. */
	if (!addr_filter_maybe(&sluice_lb4_backend_filter_v1, f->saddr))
		return 0;
	e = ct4_lookup(&t);
	*rev = e;
	*rev_known = 1;
	if (!e || !e->rev_nat_id)
		return 0;
	rn = lb4_lookup_rev_nat(e->rev_nat_id);
	if (!rn)
		return 0;
	vaddr = rn->address;
	vport = rn->port;
	if (!vaddr) {
		struct snat4_tuple nt = {
			.saddr = f->saddr, .daddr = f->daddr, .sport = f->sport, .dport = f->dport,
			.proto = f->proto, .flags = SNAT_F_REV_DNAT,
		};

		ne = snat4_lookup(&nt);
		if (!ne)
			return 0;
		vaddr = ne->fe_addr;
		vport = ne->fe_port;
	}
	/* The service entry of a hairpin flow has the pod as its client. */
	caddr = f->daddr;
	if (lb_hairpin_ipv4 && caddr == lb_hairpin_ipv4)
		caddr = f->saddr;
	lifetime = lb4_ct_reply(e, caddr, f->dport, vaddr, vport, f->proto, f->tcp_flags, now_sec());
	if (ne)
		snat4_touch(ne, lifetime);

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
