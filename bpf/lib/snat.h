/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The NodePort NAT map: source NAT of flows to remote backends (the node IP
 * and a port from a range) and the reverse translation of their replies, plus
 * the frontend replies of local backends must be shown as coming from.
 *
 * Entries of one flow client C:cp -> frontend F:fp, backend B:bp:
 *   SNAT_F_OUT      C:cp -> B:bp      the SNAT address and port the flow uses
 *   SNAT_F_IN       B:bp -> N:natport the client (C:cp) and frontend (F:fp)
 *                                     replies of a remote backend go back to
 *   SNAT_F_REV_DNAT B:bp -> C:cp      the frontend (F:fp) replies of a local
 *                                     backend leave the node as
 * Lifetimes follow the flow's conntrack entry; the LRU evicts under pressure.
 * An SNAT_F_IN entry holds its port until it expires, or until a new TCP
 * connection needs a port while the entry's flow is over (its conntrack
 * entry closing or gone): as Linux's NAT reuses the tuple of a connection in
 * TIME_WAIT/CLOSE, so a high connection rate to one backend is not limited
 * to the range's size per closing lifetime (snat4_port_reusable). */
#ifndef SLUICE_SNAT_H
#define SLUICE_SNAT_H

#include "common.h"
#include "conntrack.h"
#include "nat.h"

/* SNAT address (network order; 0: no SNAT, remote backends are dropped) and
 * the host-order source port range, set by the agent before load. The default
 * range lies above Linux's ephemeral ports (32768-60999). */
volatile const __be32 snat_ipv4 = 0;
volatile const __u16 snat_port_min = 61000;
volatile const __u16 snat_port_max = 65535;

/* snat4_tuple.flags */
#define SNAT_F_OUT	(1 << 0)
#define SNAT_F_IN	(1 << 1)
#define SNAT_F_REV_DNAT	(1 << 2)

/* snat4_entry.flags */
#define SNAT_E_DSR	(1 << 0)	/* a DSR flow's backend: its SYN-ACK's MSS is clamped */

#define SNAT_ALLOC_TRIES 16

/* Key of sluice_snat4_v1, addresses and ports in network byte order. */
struct snat4_tuple {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8   proto;
	__u8   flags;		/* SNAT_F_* */
	__u16  pad;
};
_Static_assert(sizeof(struct snat4_tuple) == 16, "snat4_tuple size");

/* Value of sluice_snat4_v1. */
struct snat4_entry {
	__be32 addr;		/* OUT: SNAT address; IN: client address; REV_DNAT: 0 */
	__be16 port;		/* OUT: SNAT port; IN: client port; REV_DNAT: 0 */
	__u16  flags;		/* REV_DNAT: SNAT_E_*; 0 otherwise (was padding) */
	__be32 fe_addr;		/* IN, REV_DNAT: frontend replies come from */
	__be16 fe_port;
	__u16  pad2;
	__u32  lifetime;	/* expiry, seconds of CLOCK_BOOTTIME */
	__u32  pad3;
};
_Static_assert(sizeof(struct snat4_entry) == 24, "snat4_entry size");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct snat4_tuple);
	__type(value, struct snat4_entry);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_snat4_v1 SEC(".maps");

static __always_inline struct snat4_entry *snat4_lookup(const struct snat4_tuple *t)
{
	return bpf_map_lookup_elem(&sluice_snat4_v1, t);
}

static __always_inline void snat4_touch(struct snat4_entry *e, __u32 lifetime)
{
	if (e->lifetime != lifetime)
		e->lifetime = lifetime;
}

/* Records the frontend a local backend's replies to the flow f (already
 * DNATed: client -> backend) must come from. */
static __always_inline int snat4_record_rev_dnat(const struct ipv4_flow *f, __be32 fe_addr, __be16 fe_port,
						 __u32 lifetime)
{
	struct snat4_tuple t = {
		.saddr = f->daddr, .daddr = f->saddr, .sport = f->dport, .dport = f->sport,
		.proto = f->proto, .flags = SNAT_F_REV_DNAT,
	};
	struct snat4_entry *e, ne = { .fe_addr = fe_addr, .fe_port = fe_port, .lifetime = lifetime };

	e = snat4_lookup(&t);
	if (e && e->fe_addr == fe_addr && e->fe_port == fe_port) {
		snat4_touch(e, lifetime);
		return 0;
	}
	if (bpf_map_update_elem(&sluice_snat4_v1, &t, &ne, BPF_ANY) < 0)
		return -DROP_NAT_FAILED;
	return 0;
}

/* Whether the port the SNAT_F_IN entry in (backend -> SNAT address:port)
 * holds for the flow ie names may go to the new flow f: f opens a TCP
 * connection and ie's connection is over — its backend entry (client ->
 * backend, conntrack.h) says closing (RST, or FIN both ways), or is gone. A
 * late packet of the old flow then no longer matches the entry (its client
 * differs) and gets no translation to the new client. */
static __always_inline int snat4_port_reusable(const struct ipv4_flow *f, const struct snat4_tuple *in,
					       const struct snat4_entry *ie)
{
	struct ct4_tuple t = {
		.saddr = ie->addr, .daddr = in->saddr, .sport = ie->port, .dport = in->sport,
		.proto = in->proto,
	};
	struct ct4_entry *e;

	if (!ct_is_new_syn(f->proto, f->tcp_flags))
		return 0;
	e = ct4_lookup(&t);
	return !e || (e->flags & CT_E_CLOSING);
}

/* Finds or allocates the SNAT port of the flow f (already DNATed: client ->
 * backend) to the frontend fe_addr:fe_port. Returns the port (network order)
 * in *port, and 0 or a negative DROP_* reason. */
static __always_inline int snat4_alloc(const struct ipv4_flow *f, __be32 fe_addr, __be16 fe_port,
				       __u32 lifetime, __u64 now, __be16 *port)
{
	struct snat4_tuple out = {
		.saddr = f->saddr, .daddr = f->daddr, .sport = f->sport, .dport = f->dport,
		.proto = f->proto, .flags = SNAT_F_OUT,
	};
	struct snat4_tuple in = {
		.saddr = f->daddr, .daddr = snat_ipv4, .sport = f->dport,
		.proto = f->proto, .flags = SNAT_F_IN,
	};
	struct snat4_entry *oe, *ie, ne = {};
	__u32 range = (__u32)snat_port_max - snat_port_min + 1;
	__u64 flags;
	int i;

	if (!snat_ipv4 || snat_port_max < snat_port_min)
		return -DROP_NAT_NO_PORT;
	oe = snat4_lookup(&out);
	if (oe && oe->addr == snat_ipv4) {
		in.dport = oe->port;
		ie = snat4_lookup(&in);
		if (ie && ie->addr == f->saddr && ie->port == f->sport) {
			snat4_touch(oe, lifetime);
			snat4_touch(ie, lifetime);
			*port = in.dport;
			return 0;
		}
	}
	for (i = 0; i < SNAT_ALLOC_TRIES; i++) {
		in.dport = bpf_htons((__u16)(snat_port_min + bpf_get_prandom_u32() % range));
		ie = snat4_lookup(&in);
		flags = BPF_NOEXIST;
		if (ie) {
			if (ie->lifetime >= now && !(ie->addr == f->saddr && ie->port == f->sport) &&
			    !snat4_port_reusable(f, &in, ie))
				continue; /* in use by another flow */
			flags = BPF_ANY;
		}
		ne.addr = f->saddr;
		ne.port = f->sport;
		ne.fe_addr = fe_addr;
		ne.fe_port = fe_port;
		ne.lifetime = lifetime;
		if (bpf_map_update_elem(&sluice_snat4_v1, &in, &ne, flags) < 0)
			continue; /* another CPU took the port */
		ne.addr = snat_ipv4;
		ne.port = in.dport;
		ne.fe_addr = 0;
		ne.fe_port = 0;
		if (bpf_map_update_elem(&sluice_snat4_v1, &out, &ne, BPF_ANY) < 0)
			return -DROP_NAT_FAILED;
		*port = in.dport;
		return 0;
	}
	return -DROP_NAT_NO_PORT;
}

#endif /* SLUICE_SNAT_H */
