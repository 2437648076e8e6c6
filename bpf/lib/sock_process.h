/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* UDP connections for the process sensor, seen by the socket-LB hooks in
 * the process's context: connect() of a UDP socket and its sendmsg() to a
 * destination other than the last one reported, before and after service
 * translation. Off unless the agent runs the sensor: with the knob 0 the
 * verifier removes all of it, so the socket LB costs what it did. */
#ifndef SLUICE_SOCK_PROCESS_H
#define SLUICE_SOCK_PROCESS_H

#include "process.h"

/* Set from Go (datapath.Options.ProcessEvents). */
volatile const __u8 sock_process_events = 0;

/* A destination as a sock_addr program sees it. */
struct sock_dst {
	__be32 addr;
	__u32  port;	/* user_port: network order in the low 16 bits */
};

/* The last UDP destination reported per socket. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_dst);
} sluice_process_udp_v1 SEC(".maps");

/* Reports a UDP socket's new destination; orig is the destination before
 * the socket LB translated it. The caller tests sock_process_events. */
static __always_inline void sock_process_udp(struct bpf_sock_addr *ctx, struct sock_dst *orig)
{
	struct process_connect *e;
	struct bpf_sock *sk = ctx->sk;
	struct task_struct *t;
	struct sock_dst *seen;

	if (ctx->protocol != IPPROTO_UDP || !sk)
		return;
	seen = bpf_sk_storage_get(&sluice_process_udp_v1, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (seen) {
		if (seen->addr == ctx->user_ip4 && seen->port == ctx->user_port)
			return;
		seen->addr = ctx->user_ip4;
		seen->port = ctx->user_port;
	}
	t = bpf_get_current_task_btf();
	if (t->flags & PF_KTHREAD)
		return;
	e = bpf_ringbuf_reserve(&sluice_process_events_v1, sizeof(*e), 0);
	if (!e) {
		process_lost();
		return;
	}
	process_hdr_fill(&e->hdr, PROCESS_CONNECT, t);
	e->proto = IPPROTO_UDP;
	e->pad8 = 0;
	e->family = AF_INET;
	e->saddr = sk->src_ip4;
	e->sport = bpf_htons((__u16)sk->src_port);
	e->daddr = ctx->user_ip4;
	e->dport = (__be16)ctx->user_port;
	e->orig_daddr = 0;
	e->orig_dport = 0;
	if (orig->addr != ctx->user_ip4 || orig->port != ctx->user_port) {
		e->orig_daddr = orig->addr;
		e->orig_dport = (__be16)orig->port;
	}
	e->pad16 = 0;
	e->net_ns = t->nsproxy->net_ns->ns.inum;
	e->pad32 = 0;
	e->cookie = bpf_get_socket_cookie(ctx);
	bpf_ringbuf_submit(e, process_wakeup());
}

#endif /* SLUICE_SOCK_PROCESS_H */
