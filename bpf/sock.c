// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Socket load balancing, attached to a cgroup v2:
 *
 * cgroup/connect4, cgroup/sendmsg4: a TCP or UDP socket addressing a service
 *   frontend (ClusterIP, ExternalIP, LoadBalancer by exact address; a
 *   NodePort on any address of the node, loopback included, as kube-proxy's
 *   localhost NodePorts) is given a backend once, before any packet exists,
 *   so the packets of the flow need no per-packet NAT. The address the
 *   socket used is remembered per socket cookie and backend.
 * cgroup/recvmsg4, cgroup/getpeername4: the backend address is shown as the
 *   frontend, so applications see the address they connected to.
 *
 * A frontend without backends refuses connect() and sendmsg() with
 * ECONNREFUSED (kube-proxy REJECTs).
 *
 * With the process sensor on (sock_process_events), connect4 and sendmsg4
 * also report UDP destinations with the process (lib/sock_process.h) and
 * apply the connect rules of tracing policies (lib/connect_rules.h).
 */
#include "lib/common.h"
#include "lib/lb.h"
#include "lib/sock.h"
#include "lib/node_addrs.h"
#include "lib/sock_process.h"
#include "lib/connect_rules.h"


#define ECONNREFUSED	111
#define SOCK_STREAM	1
#define SOCK_DGRAM	2

char __license[] SEC("license") = "Dual BSD/GPL";

const enum sluice_sock_reason *unused_sock_reason __attribute__((unused));
const enum connect_action *unused_connect_action __attribute__((unused));
const enum connect_slot_flag *unused_connect_slot_flag __attribute__((unused));
const struct process_connect_rule *unused_connect_event __attribute__((unused));

static __always_inline __u8 sock_proto(struct bpf_sock_addr *ctx)
{
	switch (ctx->type) {
	case SOCK_STREAM:
		return IPPROTO_TCP;
	case SOCK_DGRAM:
		return IPPROTO_UDP;
	}
	return 0;
}

/* Translates the destination of ctx from a frontend to a backend. Returns 0
 * (translated or not a frontend) or a negative DROP_* reason. */
static __always_inline int sock4_xlate_fwd(struct bpf_sock_addr *ctx, __u32 xlated_reason)
{
	struct lb4_key fe = {
		.address = ctx->user_ip4,
		.dport = (__be16)ctx->user_port,
		.proto = sock_proto(ctx),
	};
	struct sock4_rev_nat_key rkey = {};
	struct sock4_rev_nat_val rval = {};
	struct lb4_service *svc;
	struct lb4_backend *be;
	__u32 backend_id = 0;
	int ret;

	if (!fe.proto)
		return 0;
	svc = lb4_lookup_service(&fe);
	if (!svc)
		svc = lb4_lookup_nodeport(fe.address, &fe);
	else if ((svc->flags & LB_FLAG_NODEPORT) && fe.address)
		return 0; /* not a frontend the agent writes */
	if (!svc)
		return 0;
	ret = lb4_select_backend(&fe, svc, bpf_get_netns_cookie(ctx), 1, &be, &backend_id);
	if (ret < 0)
		return ret;

	rkey.cookie = bpf_get_socket_cookie(ctx);
	rkey.address = be->address;
	rkey.port = be->port;
	rval.address = ctx->user_ip4;	/* the node address for a NodePort */
	rval.port = fe.dport;
	rval.rev_nat_id = svc->rev_nat_id;
	/* Without the entry the application would see the backend's address:
	 * still connected to the right place, so translate anyway. */
	bpf_map_update_elem(&sluice_sock4_rev_nat_v1, &rkey, &rval, BPF_ANY);

	ctx->user_ip4 = be->address;
	ctx->user_port = (__u32)be->port;
	sock_count(xlated_reason);
	return 0;
}

static __always_inline int sock4_refuse(void)
{
	sock_count(SOCK_NO_BACKEND);
	/* connect()/sendmsg() fail with ECONNREFUSED instead of EPERM. */
	bpf_set_retval(-ECONNREFUSED);
	return 0;
}

/* Shows the frontend instead of the backend a translated socket talks to. */
static __always_inline void sock4_xlate_rev(struct bpf_sock_addr *ctx)
{
	struct sock4_rev_nat_key key = {
		.cookie = bpf_get_socket_cookie(ctx),
		.address = ctx->user_ip4,
		.port = (__be16)ctx->user_port,
	};
	struct sock4_rev_nat_val *val;

	val = bpf_map_lookup_elem(&sluice_sock4_rev_nat_v1, &key);
	if (!val)
		return;
	ctx->user_ip4 = val->address;
	ctx->user_port = (__u32)val->port;
	sock_count(SOCK_REV_XLATED);
}

/* connect4 and sendmsg4 with the process sensor on: the same translation,
 * then the connect rules on the destination before and after it (a refusal
 * is EPERM, the hook's own error), then the UDP destination reported with
 * the process. */
static __always_inline int sock4_fwd_process(struct bpf_sock_addr *ctx, __u32 xlated_reason)
{
	struct sock_dst orig = {
		.addr = ctx->user_ip4,
		.port = ctx->user_port,
	};
	int ret = sock4_xlate_fwd(ctx, xlated_reason);

	if (connect_rules(ctx, &orig, sock_proto(ctx)) == CONNECT_REFUSE)
		return 0;
	if (ret < 0)
		return sock4_refuse();
	sock_process_udp(ctx, &orig);
	return 1;
}

/* The knob is tested once, first: off, the verifier drops the branch and
 * the path is the socket LB's own. */
SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	if (sock_process_events)
		return sock4_fwd_process(ctx, SOCK_CONNECT_XLATED);
	if (sock4_xlate_fwd(ctx, SOCK_CONNECT_XLATED) < 0)
		return sock4_refuse();
	return 1;
}

SEC("cgroup/sendmsg4")
int sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	if (sock_process_events)
		return sock4_fwd_process(ctx, SOCK_SENDMSG_XLATED);
	if (sock4_xlate_fwd(ctx, SOCK_SENDMSG_XLATED) < 0)
		return sock4_refuse();
	return 1;
}

SEC("cgroup/recvmsg4")
int sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	sock4_xlate_rev(ctx);
	return 1;
}

SEC("cgroup/getpeername4")
int sock_getpeername4(struct bpf_sock_addr *ctx)
{
	sock4_xlate_rev(ctx);
	return 1;
}
