/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Service load balancing: the LB maps and backend selection, shared by the
 * socket hooks (sock.c), the pod programs (lxc.c) and the host device program.
 *
 * Services use Cilium's layout: slot 0 of a frontend is the master entry
 * (backend count, flags, reverse-NAT id); slots 1..count hold backend ids.
 * The agent writes slots before the master and deletes the master before the
 * slots, so a reader that found a master finds its slots (or, racing a
 * shrink, a missing slot, which selection treats like a missing backend). */
#ifndef SLUICE_LB_H
#define SLUICE_LB_H

#include "common.h"

/* Service flags (lb4_service.flags). */
#define LB_FLAG_NODEPORT	(1 << 0)	/* frontend is a NodePort (addr 0.0.0.0) */
#define LB_FLAG_EXTERNAL	(1 << 1)	/* ExternalIP or LoadBalancer frontend */
#define LB_FLAG_LOCAL_ONLY	(1 << 2)	/* traffic policy Local: slots hold local backends only */
#define LB_FLAG_AFFINITY	(1 << 3)	/* sessionAffinity ClientIP */
#define LB_FLAG_MAGLEV		(1 << 4)	/* per-packet selection by the Maglev table */
/* The service's own forwarding mode to remote backends (annotation
 * service.sluice.io/lb-mode; dsr.h): with LB_FLAG_MODE_SET, DSR when
 * LB_FLAG_DSR is set, else SNAT (the agent resolves hybrid by the
 * frontend's protocol); without it the node's lb_mode applies. */
#define LB_FLAG_MODE_SET	(1 << 5)
#define LB_FLAG_DSR		(1 << 6)

/* Backend flags (lb4_backend.flags). */
#define LB_BACKEND_TERMINATING	(1 << 0)

/* Key of sluice_lb4_services_v1. Address and port in network byte order. */
struct lb4_key {
	__be32 address;
	__be16 dport;
	__u8   proto;		/* IPPROTO_TCP or IPPROTO_UDP */
	__u8   scope;		/* 0; reserved for internal/external split */
	__u16  backend_slot;	/* 0: master entry, 1..count: backends */
	__u16  pad;
};
_Static_assert(sizeof(struct lb4_key) == 12, "lb4_key size");

/* Value of sluice_lb4_services_v1. */
struct lb4_service {
	__u32 backend_id;	/* slot > 0: backend id; slot 0: number of backends */
	__u16 rev_nat_id;	/* master: reverse-NAT id of the frontend */
	__u16 flags;		/* master: LB_FLAG_* */
	__u32 affinity_timeout;	/* master: affinity timeout in seconds */
	__u32 pad;
};
_Static_assert(sizeof(struct lb4_service) == 16, "lb4_service size");

/* Value of sluice_lb4_backends_v1 (key: __u32 backend id). */
struct lb4_backend {
	__be32 address;
	__be16 port;
	__u8   proto;
	__u8   flags;		/* LB_BACKEND_* */
};
_Static_assert(sizeof(struct lb4_backend) == 8, "lb4_backend size");

/* Value of sluice_lb4_reverse_nat_v1 (key: __u16 reverse-NAT id): the
 * frontend replies must appear to come from. */
struct lb4_reverse_nat {
	__be32 address;
	__be16 port;
	__u8   proto;		/* informational: replies keep their protocol */
	__u8   pad;
};
_Static_assert(sizeof(struct lb4_reverse_nat) == 8, "lb4_reverse_nat size");

/* Key of sluice_lb4_affinity_v1. The tc path knows the client's address; the
 * socket hooks know only the client's network namespace (a pod), so they key
 * by netns cookie with netns = 1. */
struct lb4_affinity_key {
	__u64 client_id;	/* IPv4 address (network order, in the low 32 bits) or netns cookie */
	__u16 rev_nat_id;	/* the service */
	__u8  netns;		/* 1: client_id is a netns cookie */
	__u8  pad1;
	__u32 pad2;
};
_Static_assert(sizeof(struct lb4_affinity_key) == 16, "lb4_affinity_key size");

struct lb4_affinity_val {
	__u32 backend_id;
	__u16 slot;		/* slot the backend was found in */
	__u16 pad;
	__u64 last_used;	/* seconds of CLOCK_BOOTTIME */
};
_Static_assert(sizeof(struct lb4_affinity_val) == 16, "lb4_affinity_val size");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb4_key);
	__type(value, struct lb4_service);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_lb4_services_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb4_backend);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_lb4_backends_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, struct lb4_reverse_nat);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_lb4_reverse_nat_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb4_affinity_key);
	__type(value, struct lb4_affinity_val);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_lb4_affinity_v1 SEC(".maps");

/* Maglev (--lb-algorithm=maglev, or the Service's lb-algorithm annotation):
 * the agent builds a lookup table of lb_maglev_table_size backend ids per service (agent/lb/maglev, as in the
 * Maglev paper, from the backends' addresses, so every node with the same
 * backends has the same table) and puts it in an inner array map stored in
 * sluice_lb4_maglev_v1 under the service's reverse-NAT id. A change is a new
 * inner map swapped in with one update of the outer map: a reader sees the
 * old table or the new one, never a half-written one. BPF_F_INNER_MAP lets
 * inner maps of another size than the template in (a restart with another
 * --maglev-table-size rebuilds every table; an index beyond a table's end
 * finds nothing and the packet falls back to random selection).
 * The agent sets lb_maglev_table_size whatever its default algorithm, since
 * a Service may ask for Maglev by annotation (only services flagged
 * LB_FLAG_MAGLEV have a table). With 0 (loaded without a size) the verifier
 * removes the Maglev code. */
volatile const __u32 lb_maglev_table_size = 0;

struct sluice_lb4_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);		/* backend id */
	__uint(max_entries, 16381);
	__uint(map_flags, BPF_F_INNER_MAP);
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__type(key, __u16);		/* reverse-NAT id of the service */
	__type(value, __u32);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct sluice_lb4_maglev_inner);
} sluice_lb4_maglev_v1 SEC(".maps");

/* The backend id at index idx of the Maglev table of service rev_nat_id, or
 * 0 (no table, or idx beyond its end). */
static __always_inline __u32 lb4_maglev_backend_id(__u16 rev_nat_id, __u32 idx)
{
	__u32 *id;
	void *tbl;

	tbl = bpf_map_lookup_elem(&sluice_lb4_maglev_v1, &rev_nat_id);
	if (!tbl)
		return 0;
	id = bpf_map_lookup_elem(tbl, &idx);
	return id ? *id : 0;
}

/* Whether the backend choice of svc follows its Maglev table (for packets;
 * the socket hooks stay random, as Cilium's). */
static __always_inline int lb4_svc_maglev(const struct lb4_service *svc)
{
	return lb_maglev_table_size && (svc->flags & LB_FLAG_MAGLEV);
}

/* The master entry of the frontend fe (its backend_slot must be 0), or NULL:
 * the one lookup of a frontend, for every program. */
static __always_inline struct lb4_service *lb4_lookup_service(const struct lb4_key *fe)
{
	return bpf_map_lookup_elem(&sluice_lb4_services_v1, fe);
}

static __always_inline struct lb4_backend *lb4_lookup_backend(__u32 id)
{
	return bpf_map_lookup_elem(&sluice_lb4_backends_v1, &id);
}

static __always_inline struct lb4_reverse_nat *lb4_lookup_rev_nat(__u16 id)
{
	return bpf_map_lookup_elem(&sluice_lb4_reverse_nat_v1, &id);
}

static __always_inline int lb4_no_backend(const struct lb4_service *svc)
{
	return svc->flags & LB_FLAG_LOCAL_ONLY ? -DROP_NO_LOCAL_BACKEND : -DROP_NO_SERVICE_BACKEND;
}

/* Returns the backend id in slot of the frontend fe, or 0. */
static __always_inline __u32 lb4_slot_backend_id(const struct lb4_key *fe, __u16 slot)
{
	struct lb4_key key = *fe;
	struct lb4_service *val;

	key.backend_slot = slot;
	val = bpf_map_lookup_elem(&sluice_lb4_services_v1, &key);
	return val ? val->backend_id : 0;
}

/* Selects a backend for a new flow of a client to the frontend fe, whose
 * master entry is svc. With affinity, the client's affinity entry wins while
 * it is fresh and its backend is still in the same slot of the service and
 * not terminating; otherwise a random slot is taken (once more if its backend
 * no longer exists). Returns 0 with *be and *backend_id set, or a negative
 * DROP_* reason. */
static __always_inline int lb4_select_backend(const struct lb4_key *fe, const struct lb4_service *svc,
					      __u64 client_id, __u8 client_is_netns,
					      struct lb4_backend **be, __u32 *backend_id)
{
	struct lb4_affinity_key akey = {
		.client_id = client_id, .rev_nat_id = svc->rev_nat_id, .netns = client_is_netns,
	};
	struct lb4_affinity_val *aval, nval = {};
	struct lb4_backend *b = NULL;
	__u32 count = svc->backend_id;
	__u64 now = 0;
	__u16 slot;
	__u32 id;

	if (count == 0)
		return lb4_no_backend(svc);
	if (svc->flags & LB_FLAG_AFFINITY) {
		now = now_sec();
		aval = bpf_map_lookup_elem(&sluice_lb4_affinity_v1, &akey);
		if (aval && aval->last_used + svc->affinity_timeout >= now &&
		    aval->slot >= 1 && aval->slot <= count &&
		    lb4_slot_backend_id(fe, aval->slot) == aval->backend_id) {
			b = lb4_lookup_backend(aval->backend_id);
			if (b && !(b->flags & LB_BACKEND_TERMINATING)) {
				aval->last_used = now;
				*be = b;
				*backend_id = aval->backend_id;
				return 0;
			}
			b = NULL;
		}
	}
	slot = (bpf_get_prandom_u32() % count) + 1;
	id = lb4_slot_backend_id(fe, slot);
	if (id)
		b = lb4_lookup_backend(id);
	if (!b) {
		slot = (bpf_get_prandom_u32() % count) + 1;
		id = lb4_slot_backend_id(fe, slot);
		if (id)
			b = lb4_lookup_backend(id);
	}
	if (!b)
		return lb4_no_backend(svc);
	if (svc->flags & LB_FLAG_AFFINITY) {
		nval.backend_id = id;
		nval.slot = slot;
		nval.last_used = now;
		bpf_map_update_elem(&sluice_lb4_affinity_v1, &akey, &nval, BPF_ANY);
	}
	*be = b;
	*backend_id = id;
	return 0;
}

/* Selects a backend for a new flow of client to the frontend fe of a Maglev
 * service svc (lb4_svc_maglev): the entry of its table at flow_hash modulo
 * the table size. With affinity, the client's affinity entry wins as in
 * lb4_select_backend while it is fresh and its backend is still in the same
 * entry of the table (the entry's index is kept in the affinity slot; an
 * entry from random selection fails this check and the table decides). A
 * missing table or backend falls back to lb4_select_backend (random). Kept
 * apart from lb4_select_backend so that the random path stays what it was:
 * with Maglev off the verifier removes this function's call. Returns 0 with
 * *be and *backend_id set, or a negative DROP_* reason. */
static __always_inline int lb4_select_backend_maglev(const struct lb4_key *fe, const struct lb4_service *svc,
						     __be32 client, __u32 flow_hash,
						     struct lb4_backend **be, __u32 *backend_id)
{
	struct lb4_affinity_key akey = { .client_id = client, .rev_nat_id = svc->rev_nat_id };
	struct lb4_affinity_val *aval, nval = {};
	struct lb4_backend *b = NULL;
	__u64 now = 0;
	__u16 idx;
	__u32 id;

	if (svc->backend_id == 0)
		return lb4_no_backend(svc);
	if (svc->flags & LB_FLAG_AFFINITY) {
		now = now_sec();
		aval = bpf_map_lookup_elem(&sluice_lb4_affinity_v1, &akey);
		if (aval && aval->last_used + svc->affinity_timeout >= now &&
		    lb4_maglev_backend_id(svc->rev_nat_id, aval->slot) == aval->backend_id) {
			b = lb4_lookup_backend(aval->backend_id);
			if (b && !(b->flags & LB_BACKEND_TERMINATING)) {
				aval->last_used = now;
				*be = b;
				*backend_id = aval->backend_id;
				return 0;
			}
			b = NULL;
		}
	}
	/* The table size is below 65536: the index fits the slot. */
	idx = flow_hash % lb_maglev_table_size;
	id = lb4_maglev_backend_id(svc->rev_nat_id, idx);
	if (id)
		b = lb4_lookup_backend(id);
	if (!b)
		return lb4_select_backend(fe, svc, client, 0, be, backend_id);
	if (svc->flags & LB_FLAG_AFFINITY) {
		nval.backend_id = id;
		nval.slot = idx;
		nval.last_used = now;
		bpf_map_update_elem(&sluice_lb4_affinity_v1, &akey, &nval, BPF_ANY);
	}
	*be = b;
	*backend_id = id;
	return 0;
}

#endif /* SLUICE_LB_H */
