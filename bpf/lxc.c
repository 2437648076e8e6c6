// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Pod programs, attached with TCX to the host side of each pod's veth.
 *
 * from_container (tcx ingress of the host veth): packets the pod sends.
 *   Anti-spoofing, then local delivery straight into the destination pod with
 *   bpf_redirect_peer, or hand-off to the node's stack.
 *   Service frontends are translated to a backend (DNAT with conntrack) and
 *   a backend pod's replies reverse-NATed, between anti-spoofing and delivery.
 *   A TCP SYN or UDP datagram to a service without backends is answered with
 *   ICMP port unreachable.
 *   Policy, after translation: the pod's egress policy and, for a local
 *   destination, that pod's ingress policy (its to_container is skipped by
 *   bpf_redirect_peer).
 * to_container (tcx egress of the host veth): packets the node's stack sends
 *   into the pod; replies of stack-reached backends are reverse-NATed; then
 *   the pod's ingress policy. NodePort traffic the host device redirects
 *   into the pod skips it: host.c enforces the same policy (policy_ingress).
 * Most packets belong to an established flow to no service: the address
 * filters (lib/addr_filter.h) skip the service, NodePort, reverse-NAT and
 * destination endpoint lookups that cannot match them, which leaves the
 * source endpoint, the flow's conntrack entry and the counters.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/endpoint.h"
#include "lib/icmp.h"
#include "lib/policy.h"
#include "lib/flow.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* Keep the enums in BTF for bpf2go -type; metrics_key stores them as __u8. */
const enum sluice_reason *unused_reason __attribute__((unused));
const enum sluice_direction *unused_direction __attribute__((unused));
/* Keep the LB and conntrack types in BTF for bpf2go -type. */
const struct lb4_affinity_val *unused_affinity_val __attribute__((unused));
/* Keep the policy, IP cache and flow event types in BTF for bpf2go -type. */
const struct flow_event *unused_flow_event __attribute__((unused));
const enum flow_verdict *unused_flow_verdict __attribute__((unused));
const struct flow_config *unused_flow_config __attribute__((unused));
const struct policy_config *unused_policy_config __attribute__((unused));

SEC("tcx/ingress")
int from_container(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	__u32 redirect = 0;
	__u32 len = skb->len;
	__u8 drop_dir = DIR_EGRESS;
	int ret;

	ret = handle_from_container(skb, ifindex, &redirect, &drop_dir);
	if (ret < 0) {
		update_metrics(ifindex, -ret, drop_dir, len);
		/* A service without backends rejects a new flow: answer the
		 * pod with ICMP port unreachable instead of a silent drop. */
		if ((ret == -DROP_NO_SERVICE_BACKEND || ret == -DROP_NO_LOCAL_BACKEND) &&
		    icmp4_port_unreachable(skb) == 0)
			return bpf_redirect(ifindex, 0);
		return TC_ACT_SHOT;
	}
	update_metrics(ifindex, ret, DIR_EGRESS, len);
	if (ret == REASON_FWD_LOCAL)
		return bpf_redirect_peer(redirect, 0);
	return TC_ACT_OK;
}

SEC("tcx/egress")
int to_container(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	__u32 len = skb->len;
	int ret;

	ret = handle_to_container(skb, ifindex);
	if (ret < 0) {
		update_metrics(ifindex, -ret, DIR_INGRESS, len);
		return TC_ACT_SHOT;
	}
	update_metrics(ifindex, ret, DIR_INGRESS, len);
	return TC_ACT_OK;
}
