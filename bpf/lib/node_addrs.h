/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The node's own IPv4 addresses: NodePort frontends (wildcard address
 * 0.0.0.0) answer on these, at the host devices (nodeport.h), in the pod
 * programs (lb_skb.h) and in the socket hooks (sock.c), all through
 * lb4_lookup_nodeport. */
#ifndef SLUICE_NODE_ADDRS_H
#define SLUICE_NODE_ADDRS_H

#include "common.h"
#include "lb.h"

/* The node's own IPv4 addresses (network order; value: flags, reserved 0),
 * written by the agent: NodePort frontends answer on these. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __be32);
	__type(value, __u32);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_node_addrs_v1 SEC(".maps");

static __always_inline int is_node_addr(__be32 addr)
{
	return bpf_map_lookup_elem(&sluice_node_addrs_v1, &addr) != NULL;
}

/* The NodePort frontend for addr on fe's port and protocol: when addr is an
 * address of the node, fe's address becomes the wildcard and its service is
 * returned if it is a NodePort. NULL otherwise (fe untouched when addr is
 * no node address). */
static __always_inline struct lb4_service *lb4_lookup_nodeport(__be32 addr, struct lb4_key *fe)
{
	struct lb4_service *svc;

	if (!is_node_addr(addr))
		return NULL;
	fe->address = 0;
	svc = lb4_lookup_service(fe);
	if (svc && (svc->flags & LB_FLAG_NODEPORT))
		return svc;
	return NULL;
}

#endif /* SLUICE_NODE_ADDRS_H */
