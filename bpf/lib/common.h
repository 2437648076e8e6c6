/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Shared definitions for every Sluice program: includes, verdict reasons, directions. */
#ifndef SLUICE_COMMON_H
#define SLUICE_COMMON_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Why a packet was forwarded or dropped. Forward reasons are below 128, drop
 * reasons 128 and up. Helpers return a forward reason (>= 0) or a negated drop
 * reason (< 0). The Go side mirrors this enum (bpf2go -type sluice_reason). */
enum sluice_reason {
	REASON_FWD_LOCAL	= 1,	/* redirected into a pod on this node */
	REASON_FWD_STACK	= 2,	/* handed to the node's network stack */
	REASON_FWD_TO_EP	= 3,	/* delivered from the node's stack into a pod */
	REASON_LB_TRANSLATED	= 4,	/* service frontend translated to a backend (DNAT) */
	REASON_LB_REV_NAT	= 5,	/* backend reply translated back to the frontend */
	REASON_POLICY_AUDIT	= 20,	/* policy would drop (audit mode): forwarded */
	DROP_INVALID		= 130,	/* malformed or truncated packet */
	DROP_SPOOF_IP		= 131,	/* source IPv4 is not the endpoint's */
	DROP_SPOOF_MAC		= 132,	/* source MAC is not the endpoint's */
	DROP_ARP_SPOOF		= 133,	/* ARP sender IP/MAC is not the endpoint's */
	DROP_UNSUPPORTED_L3	= 134,	/* ethertype Sluice does not route (IPv6, ...) */
	DROP_NO_SERVICE_BACKEND	= 135,	/* service has no (existing) backend */
	DROP_NO_LOCAL_BACKEND	= 136,	/* traffic policy Local and no local backend */
	DROP_CT_MAP_FULL	= 137,	/* conntrack entry could not be created */
	DROP_NAT_FAILED		= 138,	/* rewriting addresses or checksums failed */
	DROP_POLICY		= 150,	/* no policy entry allows it (direction enforced) */
	DROP_POLICY_DENY	= 151,	/* a deny policy entry matched */
	/* Host device (NodePort, ExternalIP, LoadBalancer) reasons. */
	REASON_LB_SNAT		= 40,	/* translated to a remote backend and SNATed to the node IP */
	REASON_LB_REV_SNAT	= 41,	/* remote backend's reply translated back to the client */
	DROP_NO_ROUTE		= 170,	/* no route for a translated packet (FIB lookup failed) */
	DROP_NAT_NO_PORT	= 171,	/* no free SNAT source port (or no SNAT address) */
	/* XDP program on the host devices (xdp.c). */
	REASON_XDP_LB_SNAT	= 42,	/* as REASON_LB_SNAT, at XDP */
	REASON_XDP_LB_REV_SNAT	= 43,	/* as REASON_LB_REV_SNAT, at XDP */
	/* Direct server return (--lb-mode dsr|hybrid, bpf/lib/dsr.h). */
	REASON_LB_DSR		= 44,	/* to a remote backend, IP-in-IP to its node (no SNAT) */
	REASON_LB_DSR_RX	= 45,	/* a DSR packet decapsulated and DNATed into a local backend */
	REASON_LB_DSR_REV_NAT	= 46,	/* a DSR backend's reply sent to the client from the frontend */
	REASON_XDP_LB_DSR	= 47,	/* as REASON_LB_DSR, at XDP */
	DROP_DSR_INVALID	= 172,	/* malformed IP-in-IP to a local pod, or to no service frontend */
};

/* Direction of a packet relative to the endpoint. */
enum sluice_direction {
	DIR_EGRESS	= 1,	/* leaving the pod */
	DIR_INGRESS	= 2,	/* entering the pod */
};

/* Seconds of CLOCK_BOOTTIME: the one clock conntrack, NAT and affinity
 * entries age by (the agent's garbage collection reads the same clock). */
static __always_inline __u64 now_sec(void)
{
	return bpf_ktime_get_boot_ns() / 1000000000ULL;
}

/* Folds a 32-bit one's-complement sum (bpf_csum_diff's result) into a
 * 16-bit checksum. */
static __always_inline __u16 csum_fold32(__s64 sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

#endif /* SLUICE_COMMON_H */
