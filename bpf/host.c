// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Host device programs, attached with TCX to the node's external devices
 * (agent flag --devices).
 *
 * from_netdev (tcx ingress): NodePort, ExternalIP and LoadBalancer traffic
 *   is load-balanced (bpf/lib/nodeport.h): DNAT into a local pod, or DNAT +
 *   SNAT to a remote backend; replies of remote backends are translated back
 *   to the client. A local pod's ingress policy is enforced here (its
 *   to_container is skipped by bpf_redirect_peer) against the client's
 *   identity from the IP cache; policy drops count as ingress drops of the
 *   device and are reported as flow events. A TCP SYN or UDP datagram to a service without backends is
 *   answered with ICMP port unreachable; traffic policy Local without a local
 *   backend is dropped. Everything else goes to the stack untouched.
 * to_netdev (tcx egress): replies of local backends leave from the frontend.
 * Counters are keyed by the device's ifindex (ingress / egress direction).
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/nodeport.h"
#include "lib/icmp.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* Keep the enums and NAT types in BTF for bpf2go -type. */
const enum sluice_reason *unused_reason __attribute__((unused));
const struct snat4_tuple *unused_snat4_tuple __attribute__((unused));
const struct snat4_entry *unused_snat4_entry __attribute__((unused));

SEC("tcx/ingress")
int from_netdev(struct __sk_buff *skb)
{
	struct nodeport_fwd fwd = {};
	__u32 ifindex = skb->ifindex;
	__u32 len = skb->len;
	int ret;

	ret = nodeport_from_netdev(skb, &fwd);
	if (ret < 0) {
		update_metrics(ifindex, -ret, DIR_INGRESS, len);
		/* kube-proxy rejects flows to services without backends. */
		if (ret == -DROP_NO_SERVICE_BACKEND && icmp4_port_unreachable(skb) == 0)
			return bpf_redirect(ifindex, 0);
		return TC_ACT_SHOT;
	}
	if (ret == 0)
		return TC_ACT_OK;
	update_metrics(ifindex, ret, DIR_INGRESS, len);
	return nodeport_forward(&fwd);
}

SEC("tcx/egress")
int to_netdev(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	__u32 len = skb->len;
	int ret;

	ret = nodeport_to_netdev(skb);
	if (ret < 0) {
		update_metrics(ifindex, -ret, DIR_EGRESS, len);
		return TC_ACT_SHOT;
	}
	if (ret > 0)
		update_metrics(ifindex, ret, DIR_EGRESS, len);
	return TC_ACT_OK;
}
