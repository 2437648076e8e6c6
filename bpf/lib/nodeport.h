/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* NodePort, ExternalIP and LoadBalancer traffic on the node's external
 * devices (host.c).
 *
 * Ingress: a packet to an ExternalIP/LoadBalancer frontend (exact address),
 * or to any address of the node on a NodePort (wildcard frontend), gets a
 * backend from lb4_local (lb_ct.h: selection, affinity, conntrack), then
 *   local backend (a pod here)   DNAT, redirect into the pod (client IP kept);
 *                                its reply leaves through the stack and is
 *                                reverse-DNATed at the device's egress;
 *   host-network backend         DNAT, handed to the stack, same reply path;
 *   remote backend               DNAT + SNAT to the node IP and a NAT port,
 *                                forwarded by FIB lookup; the reply, arriving
 *                                for node IP:port, is translated back to the
 *                                client and forwarded by FIB lookup;
 *   remote backend, --lb-mode    no SNAT: IP-in-IP to the backend
 *   dsr (hybrid: TCP), or the    (nodeport_dsr_fwd, dsr.h); the backend's
 *   service's LB_FLAG_DSR        node decapsulates (nodeport_dsr_rx, in
 *                                every mode) and its reply leaves from there.
 * The conntrack backend entry of a NodePort flow carries no reverse-NAT id:
 * the pod programs leave its replies alone (a NodePort's reverse-NAT address
 * is the wildcard) and the NAT map knows the frontend instead.
 *
 * bpf_redirect_peer skips a local backend's to_container, so its ingress
 * policy is enforced here, after DNAT (the backend's port), against the
 * client's identity from the IP cache (world for outside clients). An
 * allowed flow's backend entry is marked CT_E_POLICY: later packets and the
 * backend's replies (also under an enforced egress policy) pass by
 * conntrack. A policy drop is counted on the device (ingress) like every
 * drop here, and reported as a flow event of the backend endpoint. */
#ifndef SLUICE_NODEPORT_H
#define SLUICE_NODEPORT_H

#include "common.h"
#include "maps.h"
#include "eth.h"
#include "lb.h"
#include "lb_ct.h"
#include "conntrack.h"
#include "nat.h"
#include "snat.h"
#include "policy.h"
#include "node_addrs.h"
#include "dsr.h"


#ifndef AF_INET
#define AF_INET 2
#endif

/* How a translated packet leaves the program. */
enum nodeport_fwd_mode {
	NP_FWD_PASS	= 0,	/* to the node's stack */
	NP_FWD_PEER	= 1,	/* bpf_redirect_peer into a pod */
	NP_FWD_REDIRECT	= 2,	/* bpf_redirect, MACs rewritten */
	NP_FWD_NEIGH	= 3,	/* bpf_redirect_neigh (neighbour not resolved yet) */
};

/* The tunnel device (sluice_vxlan) in VXLAN routing mode: slot 0 holds its
 * ifindex, 0 when there is none. Written by the agent's node manager on every
 * sync (the device may be recreated; pinned programs outlive it). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_tunnel_v1 SEC(".maps");

struct nodeport_fwd {
	__u32 ifindex;
	__u32 mode;		/* enum nodeport_fwd_mode */
};

/* Finds the frontend of f: an exact ExternalIP/LoadBalancer one, else a
 * NodePort one when f goes to an address of the node. Fills fe. */
static __always_inline struct lb4_service *nodeport_lookup(const struct ipv4_flow *f, struct lb4_key *fe)
{
	struct lb4_service *svc;

	fe->address = f->daddr;
	fe->dport = f->dport;
	fe->proto = f->proto;
	svc = lb4_lookup_service(fe);
	if (svc && (svc->flags & LB_FLAG_EXTERNAL))
		return svc;
	return lb4_lookup_nodeport(f->daddr, fe);
}

/* Accounts a reply backend -> client of a flow to frontend fe_addr:fe_port to
 * its conntrack entries and returns the flow's lifetime. */
static __always_inline __u32 nodeport_ct_reply(__be32 baddr, __be16 bport, __be32 caddr, __be16 cport,
					       __u8 proto, __u8 tcp_flags, __be32 fe_addr, __be16 fe_port,
					       __u64 now)
{
	struct ct4_tuple t = {
		.saddr = caddr, .daddr = baddr, .sport = cport, .dport = bport, .proto = proto,
	};
	struct ct4_entry *e;

	e = ct4_lookup(&t);
	if (!e)
		return now + ct_lifetime(proto, CT_E_SEEN_REPLY);
	return lb4_ct_reply(e, caddr, cport, fe_addr, fe_port, proto, tcp_flags, now);
}

/* Decrements the TTL of the packet at ETH_HLEN (revalidating the pointers). */
static __always_inline int nodeport_dec_ttl(struct __sk_buff *skb)
{
	struct iphdr *ip = ipv4_hdr(skb, NULL);

	if (!ip)
		return -DROP_INVALID;
	return ipv4_dec_ttl(skb, ETH_HLEN, ip);
}

/* Routes the (translated) packet f by FIB lookup: MACs rewritten for a
 * resolved neighbour, else left to bpf_redirect_neigh. A route with a
 * lightweight-tunnel encap (VXLAN mode: a remote PodCIDR's "encap ip ... dev
 * sluice_vxlan") is one the FIB helper does not resolve (UNSUPP_LWT, no
 * ifindex): bpf_redirect_neigh without a next hop to the tunnel device makes
 * the kernel look the route up itself and transmit with its dst, whose
 * lwtstate carries the tunnel key the collect-metadata device encapsulates
 * with. */
static __always_inline int nodeport_fib(struct __sk_buff *skb, const struct ipv4_flow *f,
					struct nodeport_fwd *fwd)
{
	struct bpf_fib_lookup p = {};
	long ret;

	p.family = AF_INET;
	p.l4_protocol = f->proto;
	p.sport = f->sport;
	p.dport = f->dport;
	p.ipv4_src = f->saddr;
	p.ipv4_dst = f->daddr;
	p.ifindex = skb->ifindex;
	ret = bpf_fib_lookup(skb, &p, sizeof(p), 0);
	if (ret == BPF_FIB_LKUP_RET_SUCCESS) {
		if (eth_store_macs(skb, p.dmac, p.smac) < 0)
			return -DROP_INVALID;
		fwd->mode = NP_FWD_REDIRECT;
		fwd->ifindex = p.ifindex;
		return 0;
	}
	if (ret == BPF_FIB_LKUP_RET_NO_NEIGH) {
		fwd->mode = NP_FWD_NEIGH;
		fwd->ifindex = p.ifindex;
		return 0;
	}
	if (ret == BPF_FIB_LKUP_RET_UNSUPP_LWT) {
		__u32 zero = 0, *tun = bpf_map_lookup_elem(&sluice_tunnel_v1, &zero);

		if (tun && *tun) {
			fwd->mode = NP_FWD_NEIGH;
			fwd->ifindex = *tun;
			return 0;
		}
	}
	return -DROP_NO_ROUTE;
}

/* Rewrites the source of f's packet (already DNATed) to saddr:sport and
 * routes it by FIB lookup, as a router: TTL decremented. Returns 0 or a
 * negative DROP_* reason. */
static __always_inline int nodeport_snat_fwd(struct __sk_buff *skb, struct ipv4_flow *f, __be32 saddr,
					     __be16 sport, struct nodeport_fwd *fwd)
{
	int ret;

	ret = ipv4_nat(skb, f, 1, saddr, sport);
	if (ret < 0)
		return ret;
	ret = nodeport_dec_ttl(skb);
	if (ret < 0)
		return ret;
	return nodeport_fib(skb, f, fwd);
}

/* Reply of a remote backend to an SNATed flow: back to the client, from the
 * frontend. Returns 0 when f is none, REASON_LB_REV_SNAT or a DROP_*. */
static __always_inline int nodeport_rev_snat(struct __sk_buff *skb, struct ipv4_flow *f,
					     struct nodeport_fwd *fwd)
{
	struct snat4_tuple t = {
		.saddr = f->saddr, .daddr = f->daddr, .sport = f->sport, .dport = f->dport,
		.proto = f->proto, .flags = SNAT_F_IN,
	};
	struct snat4_entry *e;
	__be32 caddr, fe_addr;
	__be16 cport, fe_port;
	int ret;

	if (!snat_ipv4 || f->daddr != snat_ipv4)
		return 0;
	e = snat4_lookup(&t);
	if (!e)
		return 0;
	caddr = e->addr;
	cport = e->port;
	fe_addr = e->fe_addr;
	fe_port = e->fe_port;
	snat4_touch(e, nodeport_ct_reply(f->saddr, f->sport, caddr, cport, f->proto, f->tcp_flags,
					 fe_addr, fe_port, now_sec()));

	ret = ipv4_nat(skb, f, 0, caddr, cport);
	if (ret < 0)
		return ret;
	ret = nodeport_snat_fwd(skb, f, fe_addr, fe_port, fwd);
	if (ret < 0)
		return ret;
	return REASON_LB_REV_SNAT;
}

/* Enforces the ingress policy of ep, the local backend baddr:bport the flow
 * f (not yet DNATed) was given, and marks the allowed flow's backend
 * conntrack entry. For a packet of a flow policy has not allowed yet (its
 * backend entry is unmarked; f goes to a frontend, so it is no reply).
 * A dropped flow's conntrack entries are removed (policy_forget_denied).
 * Returns 0 or a negative DROP_POLICY*. */
static __always_inline int nodeport_policy(const struct ipv4_flow *f, __be32 baddr, __be16 bport,
					   const struct endpoint_info *ep, __u32 ifindex)
{
	struct ipv4_flow t = *f;
	struct policy_pkt p = {};
	int ret;

	policy_pkt_flow(f, &p);
	t.daddr = baddr;
	t.dport = bport;
	policy_pkt_translated(&p, &t, REASON_LB_TRANSLATED);
	ret = policy_ingress_new(&p, ep, ifindex, REASON_FWD_LOCAL);
	if (ret < 0)
		policy_forget_denied(&p);
	return ret;
}

/* Delivers f, load-balanced (st) to a backend on this node (ep: a pod;
 * NULL: the host network), after the pod's ingress policy for a flow policy
 * has not allowed yet, and records the frontend fe_addr:fe_port the replies
 * leave from. Returns REASON_LB_TRANSLATED or a negative DROP_*. */
static __always_inline int nodeport_xlate_local(struct __sk_buff *skb, struct ipv4_flow *f,
						const struct lb4_state *st, const struct endpoint_info *ep,
						__be32 fe_addr, __be16 fe_port, struct nodeport_fwd *fwd)
{
	__u8 dmac[6], smac[6];
	__u32 ifindex = 0;
	int ret;

	if (ep) {
		/* A later packet of a flow policy allowed passes without
		 * lookups (as in policy_established). */
		if (!(st->ct_flags & CT_E_POLICY) ||
		    ((st->ct_flags & CT_E_CLOSING) && ct_is_new_syn(f->proto, f->tcp_flags))) {
			ret = nodeport_policy(f, st->baddr, st->bport, ep, skb->ifindex);
			if (ret < 0)
				return ret;
		}
		__builtin_memcpy(dmac, ep->mac, 6);
		__builtin_memcpy(smac, ep->node_mac, 6);
		ifindex = ep->ifindex;
	}
	ret = ipv4_nat(skb, f, 0, st->baddr, st->bport);
	if (ret < 0)
		return ret;
	ret = snat4_record_rev_dnat(f, fe_addr, fe_port, st->lifetime);
	if (ret < 0)
		return ret;
	if (!ep)
		return REASON_LB_TRANSLATED; /* host network: the stack delivers */
	ret = nodeport_dec_ttl(skb);
	if (ret < 0)
		return ret;
	ret = eth_store_macs(skb, dmac, smac);
	if (ret < 0)
		return ret;
	fwd->mode = NP_FWD_PEER;
	fwd->ifindex = ifindex;
	return REASON_LB_TRANSLATED;
}

/* DSR to the remote backend st: the packet, unchanged but for its TTL, goes
 * IP-in-IP to the backend (its node decapsulates it, dsr.h). Returns
 * REASON_LB_DSR or a negative DROP_*. */
static __always_inline int nodeport_dsr_fwd(struct __sk_buff *skb, const struct lb4_state *st,
					    struct nodeport_fwd *fwd)
{
	struct ipv4_flow o = {
		.saddr = snat_ipv4, .daddr = st->baddr, .proto = IPPROTO_IPIP,
	};
	int ret;

	if (!snat_ipv4)
		return -DROP_NAT_NO_PORT;
	ret = nodeport_dec_ttl(skb);
	if (ret < 0)
		return ret;
	ret = dsr_encap(skb, snat_ipv4, st->baddr, st->bport);
	if (ret < 0)
		return ret;
	ret = nodeport_fib(skb, &o, fwd);
	if (ret < 0)
		return ret;
	return REASON_LB_DSR;
}

/* An IP-in-IP packet at an external device: DSR to a pod of this node is
 * decapsulated and delivered as to a local backend, its replies to leave
 * from the frontend in the inner destination. Returns 0 (not DSR),
 * REASON_LB_DSR_RX or a negative DROP_*. */
static __always_inline int nodeport_dsr_rx(struct __sk_buff *skb, struct nodeport_fwd *fwd)
{
	struct snat4_tuple rt = { .flags = SNAT_F_REV_DNAT };
	struct ct4_tuple t = {};
	struct endpoint_key ek = {};
	struct endpoint_info *ep;
	struct lb4_service *svc = NULL;
	struct lb4_state st = {};
	struct lb4_key fe = {};
	struct ipv4_flow f = {};
	struct snat4_entry *re;
	struct ct4_entry *e;
	__u64 now = now_sec();
	__be32 baddr = 0;
	__be16 bport = 0;
	int ret;

	ret = dsr_decap(skb, &baddr, &bport, &f, &svc, &fe);
	if (ret <= 0)
		return ret;
	ek.ip = baddr;
	ep = bpf_map_lookup_elem(&sluice_endpoints_v1, &ek);
	if (!ep)
		return -DROP_DSR_INVALID;
	/* The backend entry (client -> backend) as lb4_local makes it on
	 * the receiving node: policy marks it, the replies account to it. */
	t.saddr = f.saddr;
	t.daddr = baddr;
	t.sport = f.sport;
	t.dport = bport;
	t.proto = f.proto;
	e = ct4_lookup(&t);
	if (!e || ((e->flags & CT_E_CLOSING) && ct_is_new_syn(f.proto, f.tcp_flags))) {
		ret = ct4_create(&t, 0, 0, 0, now);
		if (ret < 0)
			return ret;
		e = ct4_lookup(&t);
	} else {
		ct4_update(e, f.proto, f.tcp_flags, 0, now);
	}
	st.baddr = baddr;
	st.bport = bport;
	st.saddr = f.saddr;
	st.lifetime = e ? e->lifetime : now + ct_lifetime(f.proto, 0);
	st.ct_flags = e ? e->flags : 0;
	rt.saddr = baddr;
	rt.daddr = f.saddr;
	rt.sport = bport;
	rt.dport = f.sport;
	rt.proto = f.proto;
	ret = nodeport_xlate_local(skb, &f, &st, ep, f.daddr, f.dport, fwd);
	if (ret < 0)
		return ret;
	re = snat4_lookup(&rt);
	if (re && !(re->flags & SNAT_E_DSR))
		re->flags |= SNAT_E_DSR;
	return REASON_LB_DSR_RX;
}

/* Translates f, whose destination is the frontend fe (master entry svc), to
 * a backend and says how to forward it. Returns REASON_LB_TRANSLATED (local
 * or host backend), REASON_LB_SNAT (remote backend) or a negative DROP_*. */
static __always_inline int nodeport_xlate(struct __sk_buff *skb, struct ipv4_flow *f,
					  const struct lb4_key *fe, const struct lb4_service *svc,
					  struct nodeport_fwd *fwd)
{
	__be32 fe_addr = f->daddr;
	__be16 fe_port = f->dport, nat_port = 0;
	struct endpoint_key ek = {};
	struct endpoint_info *ep;
	struct lb4_state st = {};
	__u64 now = now_sec();
	int ret;

	ret = lb4_local(f, fe, svc, 0, LB4_REV_NAT_BY_NAT_MAP, &st, now);
	if (ret < 0)
		return ret;
	ek.ip = st.baddr;
	ep = bpf_map_lookup_elem(&sluice_endpoints_v1, &ek);
	if (ep || is_node_addr(st.baddr))
		return nodeport_xlate_local(skb, f, &st, ep, fe_addr, fe_port, fwd);

	if (lb_dsr(svc, f->proto))
		return nodeport_dsr_fwd(skb, &st, fwd);

	ret = ipv4_nat(skb, f, 0, st.baddr, st.bport);
	if (ret < 0)
		return ret;
	ret = snat4_alloc(f, fe_addr, fe_port, st.lifetime, now, &nat_port);
	if (ret < 0)
		return ret;
	ret = nodeport_snat_fwd(skb, f, snat_ipv4, nat_port, fwd);
	if (ret < 0)
		return ret;
	return REASON_LB_SNAT;
}

/* A packet arriving at an external device. Returns 0 (not NodePort traffic:
 * to the stack untouched), a forward reason with *fwd set, or a DROP_*. */
static __always_inline int nodeport_from_netdev(struct __sk_buff *skb, struct nodeport_fwd *fwd)
{
	struct ethhdr *eth = NULL;
	struct iphdr *ip = ipv4_hdr(skb, &eth);
	struct ipv4_flow f = {};
	struct lb4_service *svc;
	struct lb4_key fe = {};
	int ret;

	if (!ip || eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	/* TTL 1 would expire here: the stack answers with time exceeded. */
	if (ip->ttl <= 1)
		return 0;
	if (ip->protocol == IPPROTO_IPIP)
		return nodeport_dsr_rx(skb, fwd);
	ret = ipv4_parse_flow(skb, ETH_HLEN, &f);
	if (ret <= 0)
		return 0; /* not TCP/UDP, a fragment, or truncated: the stack's */
	ret = nodeport_rev_snat(skb, &f, fwd);
	if (ret != 0)
		return ret;
	svc = nodeport_lookup(&f, &fe);
	if (!svc)
		return 0;
	return nodeport_xlate(skb, &f, &fe, svc, fwd);
}

/* A packet leaving through an external device: a local backend's reply to a
 * NodePort/ExternalIP flow leaves from the frontend. Returns 0 (untouched),
 * REASON_LB_REV_NAT or a DROP_*. */
static __always_inline int nodeport_to_netdev(struct __sk_buff *skb)
{
	struct ethhdr *eth = eth_hdr(skb);
	struct ipv4_flow f = {};
	struct snat4_tuple t = {};
	struct snat4_entry *e;
	__be32 fe_addr;
	__be16 fe_port;
	int ret;

	if (!eth || eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	ret = ipv4_parse_flow(skb, ETH_HLEN, &f);
	if (ret <= 0)
		return 0;
	t.saddr = f.saddr;
	t.daddr = f.daddr;
	t.sport = f.sport;
	t.dport = f.dport;
	t.proto = f.proto;
	t.flags = SNAT_F_REV_DNAT;
	e = snat4_lookup(&t);
	if (!e)
		return 0;
	fe_addr = e->fe_addr;
	fe_port = e->fe_port;
	snat4_touch(e, nodeport_ct_reply(f.saddr, f.sport, f.daddr, f.dport, f.proto, f.tcp_flags,
					 fe_addr, fe_port, now_sec()));
	if (e->flags & SNAT_E_DSR) {
		/* The client's segments reach this backend IP-in-IP. */
		__u32 mtu = 0;

		if (f.proto == IPPROTO_TCP && (f.tcp_flags & TCP_FLAG_SYN) &&
		    bpf_check_mtu(skb, 0, &mtu, 0, 0) >= 0 && mtu > 60 + 536)
			dsr_clamp_mss(skb, &f, mtu - 40 - DSR_ENCAP_LEN);
		ret = ipv4_nat(skb, &f, 1, fe_addr, fe_port);
		if (ret < 0)
			return ret;
		return REASON_LB_DSR_REV_NAT;
	}
	ret = ipv4_nat(skb, &f, 1, fe_addr, fe_port);
	if (ret < 0)
		return ret;
	return REASON_LB_REV_NAT;
}

/* Carries out fwd for a translated packet. */
static __always_inline int nodeport_forward(const struct nodeport_fwd *fwd)
{
	switch (fwd->mode) {
	case NP_FWD_PEER:
		return bpf_redirect_peer(fwd->ifindex, 0);
	case NP_FWD_REDIRECT:
		return bpf_redirect(fwd->ifindex, 0);
	case NP_FWD_NEIGH:
		return bpf_redirect_neigh(fwd->ifindex, NULL, 0, 0);
	default:
		return TC_ACT_OK;
	}
}

#endif /* SLUICE_NODEPORT_H */
