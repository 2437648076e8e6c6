/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connect rules of tracing policies (spec.connects, issue 11): evaluated by
 * bpf/sock.c's connect4 and sendmsg4 programs, in the process's context, on
 * the kernel's copy of the destination (ctx->user_ip4/user_port: what the
 * process passed was copied in before the hook runs, so there is no
 * time-of-check/time-of-use gap), once as the process gave it and once
 * after the socket LB translated it: either matching is a match. Only with
 * the process sensor on (sock_process_events): off, the verifier removes
 * all of it.
 *
 * Rules are slots 0..63 (datapath.SetConnectRules); a slot set is a u64 of
 * slot bits, and each filter is one lookup for every slot at once:
 *
 *   applies = active & (global | scope[task netns] & ~cgroup
 *             | cgscope[cgroup]) & proto slots
 *   dst(a)  = (dests[a.addr] ^ not_dests) & dests | ~dests    (LPM trie)
 *           & (ports[a.port] ^ not_ports) & ports | ~ports    (hash)
 *   cand    = applies & (dst(orig) | dst(backend))
 *
 * (cgscope: the slots of containerSelector policies by the process's cgroup
 * v2 id, looked up only when a candidate slot is one of them.)
 *
 * then the candidates with a binary class filter are checked against the
 * process's classes (lib/process_class.h), and in each group the lowest
 * candidate slot decides: Post reports, NoPost does nothing, Deny refuses
 * the call with EPERM, Sigkill sends SIGKILL (bpf_send_signal, allowed in
 * these hooks) and refuses the call so no packet leaves a dying process,
 * Signal sends its signal and lets the call go on; each reports, and in
 * monitor mode only reports. Without rules the cost is one array lookup per
 * connect()/sendmsg() with an address.
 *
 * The trie answers with the longest matching prefix only, so the agent
 * writes each prefix with the slots of every shorter prefix covering it.
 * Pinned by name: rules survive an agent restart with the socket LB. */
#ifndef SLUICE_CONNECT_RULES_H
#define SLUICE_CONNECT_RULES_H

#include "process.h"
#include "process_class.h"
#include "sock_process.h"

#define CONNECT_SLOTS	64

enum connect_action {
	CONNECT_POST	= 1,
	CONNECT_NOPOST	= 2,
	CONNECT_SIGKILL	= 3,	/* SIGKILL, and the call is refused (EPERM) */
	CONNECT_SIGNAL	= 4,	/* the signal; the call goes on */
	CONNECT_DENY	= 5,	/* EPERM */
};

/* connect_slot.flags */
enum connect_slot_flag {
	CONNECT_ENFORCE	= 1,
};

/* What connect_rules tells its caller. */
enum connect_verdict {
	CONNECT_ALLOW	= 0,
	CONNECT_REFUSE	= 1,
};

/* The slot masks, written after the slots and entries they use. */
struct connect_config {
	__u64 active;
	__u64 global;
	__u64 tcp;		/* slots for TCP sockets (protocol TCP or any) */
	__u64 udp;		/* slots for UDP sockets */
	__u64 dests;		/* slots with destination prefixes */
	__u64 not_dests;	/* ... that match outside them */
	__u64 ports;		/* slots with ports */
	__u64 not_ports;
	__u64 classes;		/* slots with a binary or parent class filter */
	__u64 cgroup;		/* slots scoped by cgroup (cgscope) */
};
_Static_assert(sizeof(struct connect_config) == 80, "connect_config size");

struct connect_slot {
	__u32 policy_id;
	__u8  action;		/* enum connect_action */
	__u8  signal;
	__u8  flags;		/* enum connect_slot_flag */
	__u8  pad;
	__u64 group;		/* slots one match decides for, this one included */
	__u64 bin_all, bin_none;	/* the binary's classes: all of, none of */
	__u64 par_all, par_none;	/* the parent binary's */
};
_Static_assert(sizeof(struct connect_slot) == 48, "connect_slot size");

struct connect_dest_key {
	__u32  prefixlen;	/* bits */
	__be32 addr;
};
_Static_assert(sizeof(struct connect_dest_key) == 8, "connect_dest_key size");

/* PROCESS_CONNECT_RULE: a connect rule decided. */
struct process_connect_rule {
	struct process_hdr hdr;
	__u32  policy_id;
	__u8   slot;
	__u8   action;		/* enum connect_action */
	__u8   signal;
	__u8   enforced;	/* refused (Deny) / the signal was sent */
	__u8   proto;		/* IPPROTO_TCP, IPPROTO_UDP */
	__u8   pad8;
	__be16 dport;		/* as the process gave it */
	__be32 daddr;
	__be32 backend_addr;	/* after the socket LB, 0 when not translated */
	__be16 backend_port;
	__u16  pad16;
	__u32  net_ns;
	__u32  pad32;
};
_Static_assert(sizeof(struct process_connect_rule) == 64, "process_connect_rule size");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct connect_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_connect_config_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct connect_slot);
	__uint(max_entries, CONNECT_SLOTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_connect_slots_v1 SEC(".maps");

/* Destination prefix -> slots whose prefixes contain it. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct connect_dest_key);
	__type(value, __u64);
	__uint(max_entries, 4096);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_connect_dests_v1 SEC(".maps");

/* Destination port (host order) -> slots listing it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_connect_ports_v1 SEC(".maps");

/* Network namespace inode -> slots that apply to its processes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 4096);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_connect_scope_v1 SEC(".maps");

/* Cgroup v2 id -> slots that apply to its processes (containerSelector). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, __u64);
	__uint(max_entries, 8192);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_connect_cgscope_v1 SEC(".maps");

static __always_inline __u64 connect_bits(void *map, const void *key)
{
	__u64 *v = bpf_map_lookup_elem(map, key);

	return v ? *v : 0;
}

/* Index of the one set bit of bit, without a branch: (x | -x) >> 63 is 1
 * for x != 0, 0 for x == 0. Branches here would multiply the states the
 * verifier walks in the slot loop by up to 64. */
static __always_inline __u32 connect_slot_of(__u64 bit)
{
	__u64 x, n = 0;

	x = bit & 0xffffffff00000000ULL; n |= ((x | -x) >> 63) << 5;
	x = bit & 0xffff0000ffff0000ULL; n |= ((x | -x) >> 63) << 4;
	x = bit & 0xff00ff00ff00ff00ULL; n |= ((x | -x) >> 63) << 3;
	x = bit & 0xf0f0f0f0f0f0f0f0ULL; n |= ((x | -x) >> 63) << 2;
	x = bit & 0xccccccccccccccccULL; n |= ((x | -x) >> 63) << 1;
	x = bit & 0xaaaaaaaaaaaaaaaaULL; n |= (x | -x) >> 63;
	return n;
}

/* The slots of cand whose port and destination filters d passes; each
 * lookup only when a slot left needs it, the cheaper hash first. */
static __always_inline __u64 connect_dst_match(struct connect_config *cfg, struct sock_dst *d, __u64 cand)
{
	struct connect_dest_key k = { .prefixlen = 32, .addr = d->addr };
	__u32 port = bpf_ntohs((__u16)d->port);

	if (cand & cfg->ports)
		cand &= ~cfg->ports | ((connect_bits(&sluice_connect_ports_v1, &port) ^ cfg->not_ports) & cfg->ports);
	if (cand & cfg->dests)
		cand &= ~cfg->dests | ((connect_bits(&sluice_connect_dests_v1, &k) ^ cfg->not_dests) & cfg->dests);
	return cand;
}

/* The classes of the current process (self, then its parent's) that the
 * class filters test: none when it has no entry. */
struct connect_classes {
	__u64 self, parent;
};

static __always_inline void connect_classes_of(__u32 tgid, struct connect_classes *c)
{
	struct proc_class *pc = proc_class_get(tgid);

	c->self = pc ? pc->self : 0;
	c->parent = pc ? pc->parent : 0;
}

static __always_inline int connect_class_ok(struct connect_slot *s, struct connect_classes *c)
{
	return (c->self & s->bin_all) == s->bin_all && !(c->self & s->bin_none) &&
	       (c->parent & s->par_all) == s->par_all && !(c->parent & s->par_none);
}

static __always_inline void connect_rule_emit(struct task_struct *t, struct connect_slot *s, __u32 slot,
					      __u8 enforced, __u8 proto, struct sock_dst *orig,
					      struct bpf_sock_addr *ctx, __u32 netns)
{
	struct process_connect_rule *e;

	e = bpf_ringbuf_reserve(&sluice_process_events_v1, sizeof(*e), 0);
	if (!e) {
		process_lost();
		return;
	}
	process_hdr_fill(&e->hdr, PROCESS_CONNECT_RULE, t);
	e->policy_id = s->policy_id;
	e->slot = slot;
	e->action = s->action;
	e->signal = s->signal;
	e->enforced = enforced;
	e->proto = proto;
	e->pad8 = 0;
	e->dport = (__be16)orig->port;
	e->daddr = orig->addr;
	e->backend_addr = 0;
	e->backend_port = 0;
	if (ctx->user_ip4 != orig->addr || ctx->user_port != orig->port) {
		e->backend_addr = ctx->user_ip4;
		e->backend_port = (__be16)ctx->user_port;
	}
	e->pad16 = 0;
	e->net_ns = netns;
	e->pad32 = 0;
	bpf_ringbuf_submit(e, process_wakeup());
}

/* Evaluates the connect rules for ctx's destination: orig as the process
 * gave it, ctx->user_ip4/user_port after the socket LB. The caller tests
 * sock_process_events. */
static __always_inline int connect_rules(struct bpf_sock_addr *ctx, struct sock_dst *orig, __u8 proto)
{
	__u32 zero = 0, netns, slot;
	struct connect_config *cfg = bpf_map_lookup_elem(&sluice_connect_config_v2, &zero);
	struct sock_dst now = { .addr = ctx->user_ip4, .port = ctx->user_port };
	struct connect_classes classes = {};
	struct task_struct *t;
	struct connect_slot *s;
	__u64 cand, bit, applies, cgid, refuse = 0;
	__u8 enforced;

	if (!cfg || !cfg->active)
		return CONNECT_ALLOW;
	t = bpf_get_current_task_btf();
	if (t->flags & PF_KTHREAD)
		return CONNECT_ALLOW;
	cand = proto == IPPROTO_TCP ? cfg->tcp : proto == IPPROTO_UDP ? cfg->udp : 0;
	cand &= cfg->active;
	netns = t->nsproxy->net_ns->ns.inum;
	if (cand & ~cfg->global) {
		applies = cfg->global | (connect_bits(&sluice_connect_scope_v1, &netns) & ~cfg->cgroup);
		if (cand & cfg->cgroup) {
			cgid = bpf_get_current_cgroup_id();
			applies |= connect_bits(&sluice_connect_cgscope_v1, &cgid);
		}
		cand &= applies;
	}
	if (!cand)
		return CONNECT_ALLOW;
	if (now.addr != orig->addr || now.port != orig->port)
		cand = connect_dst_match(cfg, orig, cand) | connect_dst_match(cfg, &now, cand);
	else
		cand = connect_dst_match(cfg, orig, cand);
	if (cand & cfg->classes)
		connect_classes_of(t->tgid, &classes);
	for (int i = 0; i < CONNECT_SLOTS && cand; i++) {
		bit = cand & -cand;
		slot = connect_slot_of(bit);
		cand &= ~bit;
		s = bpf_map_lookup_elem(&sluice_connect_slots_v1, &slot);
		if (!s || (bit & cfg->classes && !connect_class_ok(s, &classes)))
			continue;
		cand &= ~s->group;	/* the group is decided */
		if (s->action == CONNECT_NOPOST)
			continue;
		enforced = 0;
		if (s->flags & CONNECT_ENFORCE) {
			if (s->action == CONNECT_DENY || s->action == CONNECT_SIGKILL)
				refuse |= bit;
			if (s->action == CONNECT_SIGKILL || s->action == CONNECT_SIGNAL)
				enforced = bpf_send_signal(s->signal) == 0;
			else
				enforced = s->action == CONNECT_DENY;
		}
		connect_rule_emit(t, s, slot, enforced, proto, orig, ctx, netns);
	}
	return refuse ? CONNECT_REFUSE : CONNECT_ALLOW;
}

#endif /* SLUICE_CONNECT_RULES_H */
