/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Socket load balancing state: the per-socket reverse translation and the
 * socket hooks' counters. */
#ifndef SLUICE_SOCK_H
#define SLUICE_SOCK_H

#include "common.h"

/* Why a socket hook acted. Index of sluice_sock_metrics_v1; mirrored in Go
 * (bpf2go -type sluice_sock_reason). */
enum sluice_sock_reason {
	SOCK_CONNECT_XLATED	= 1,	/* connect() to a frontend got a backend */
	SOCK_SENDMSG_XLATED	= 2,	/* sendmsg() to a frontend got a backend */
	SOCK_REV_XLATED		= 3,	/* recvmsg()/getpeername() showed the frontend */
	SOCK_NO_BACKEND		= 4,	/* frontend without backends: ECONNREFUSED */
	SOCK_REASON_MAX		= 8,
};

/* Key of sluice_sock4_rev_nat_v1: a socket and the backend it was sent to. */
struct sock4_rev_nat_key {
	__u64  cookie;		/* bpf_get_socket_cookie() */
	__be32 address;		/* backend */
	__be16 port;
	__u16  pad;
};
_Static_assert(sizeof(struct sock4_rev_nat_key) == 16, "sock4_rev_nat_key size");

struct sock4_rev_nat_val {
	__be32 address;		/* frontend */
	__be16 port;
	__u16  rev_nat_id;
};
_Static_assert(sizeof(struct sock4_rev_nat_val) == 8, "sock4_rev_nat_val size");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct sock4_rev_nat_key);
	__type(value, struct sock4_rev_nat_val);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_sock4_rev_nat_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, SOCK_REASON_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_sock_metrics_v1 SEC(".maps");

static __always_inline void sock_count(__u32 reason)
{
	__u64 *v = bpf_map_lookup_elem(&sluice_sock_metrics_v1, &reason);

	if (v)
		(*v)++;
}

#endif /* SLUICE_SOCK_H */
