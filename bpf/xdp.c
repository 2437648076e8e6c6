// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* XDP program on the node's external devices (agent flag
 * --lb-acceleration): NodePort, ExternalIP and LoadBalancer flows to remote
 * backends, and those backends' replies, translated and forwarded before an
 * skb is built (bpf/lib/nodeport_xdp.h). Everything else, local backends
 * included, goes on to the device's tc program (host.c) untouched.
 * Translations count in sluice_metrics_v1 under the device's ifindex as
 * REASON_XDP_LB_SNAT / REASON_XDP_LB_REV_SNAT / REASON_XDP_LB_DSR (ingress).
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/nodeport_xdp.h"

char __license[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int xdp_nodeport(struct xdp_md *ctx)
{
	__u32 ifindex = ctx->ingress_ifindex;
	__u32 len = ctx->data_end - ctx->data;
	struct ipv4_flow f = {};
	struct lb4_service *svc;
	struct lb4_key fe = {};
	struct xdp_pkt p = {};
	__u32 reason = 0;
	int ret;

	if (!xdp_parse(ctx, &p, &f))
		return XDP_PASS;
	ret = xdp_rev_snat(ctx, &p, &f);
	if (ret >= 0) {
		update_metrics(ifindex, REASON_XDP_LB_REV_SNAT, DIR_INGRESS, len);
		return ret;
	}
	svc = nodeport_lookup(&f, &fe);
	if (!svc)
		return XDP_PASS;
	ret = xdp_xlate(ctx, &p, &f, &fe, svc, &reason);
	if (ret < 0)
		return XDP_PASS;
	update_metrics(ifindex, reason, DIR_INGRESS, len);
	return ret;
}
