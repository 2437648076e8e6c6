/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Syscall rules of tracing policies (issue 11, phase 2), evaluated by
 * bpf/process.c's tp_btf sys_enter and sys_exit programs, which the sensor
 * attaches only while some rule of their hook exists. Rules are slots
 * 0..63 (datapath/procsensor SetSyscallRules). Per syscall:
 *
 *   cand = nr[nr].enter (or .exit) & active & (global
 *          | scope[netns] & ~cgroup | cgscope[cgroup])
 *
 * which costs one array lookup for a syscall no rule names. cgscope holds
 * the slots of containerSelector policies by cgroup v2 id; it is looked up
 * only when a candidate slot is one of them (sys_config.cgroup). Then each
 * candidate slot, lowest first, whose group has not decided yet, runs its
 * filters (syscall_match.h); the first that passes decides for its group
 * (a tracepoint's selectors): Post reports (rate-limited per process),
 * NoPost does nothing, Sigkill/Signal send the signal in enforce mode and
 * report (the syscall itself may still complete). Strings are read from
 * user memory at the hook (at most 255 bytes): another thread may change
 * them afterwards, and a path is as the process gave it (relative to its
 * dfd or cwd, symlinks unresolved). A string that cannot be read passes no
 * string filter, Not* included. Integers are the full 64-bit registers (an
 * int argument's upper half is whatever the caller left there). The maps
 * are not pinned: rules live and die with the sensor. x86_64 only (the
 * registers of struct pt_regs). */
#ifndef SLUICE_SYSCALL_RULES_H
#define SLUICE_SYSCALL_RULES_H

#include "syscall_match.h"
#include "process_rules.h"

static __always_inline struct sys_config *sys_config(void)
{
	return map_first(&sluice_sys_config_v1);
}

/* Captured value j of slot s into the event (global: checked once). */
__attribute__((noinline)) int sys_capture_one(struct sys_scratch *sc, struct sys_slot *s, __u32 j)
{
	struct sys_capture *cp;
	struct sys_value *v;
	__u32 idx;
	long n;

	if (!sc || !s || j >= SYS_CAPTURE)
		return 0;
	cp = &sc->ev.capture[j];
	v = &s->capture[j];
	idx = v->index;
	__builtin_memset(cp, 0, sizeof(*cp));
	if (j >= s->ncapture)
		return 0;
	cp->value = sys_value(&sc->c, sc, v);
	if (!(v->flags & SYS_VAL_STRING) || v->source != SYS_SRC_ARG || idx >= SYS_STR_ARGS)
		return 0;
	cp->flags = SYS_CAP_STRING;
	n = sys_str_get(&sc->c, sc, idx);
	if (n <= 0) {
		cp->flags |= SYS_CAP_FAULT;
		return 0;
	}
	if (n >= SYS_STR_MAX)
		cp->flags |= SYS_CAP_TRUNC;
	cp->len = n - 1;
	bpf_probe_read_kernel(sc->ev.strs[j], SYS_STR_MAX, sc->str[idx].key.str);
	return 0;
}

static __always_inline void sys_emit(struct sys_scratch *sc, struct sys_slot *s, __u32 slot, __u8 enforced)
{
	struct process_syscall *e = &sc->ev;
	struct sys_ctx *c = &sc->c;

	process_hdr_fill(&e->hdr, PROCESS_SYSCALL, bpf_get_current_task_btf());
	e->policy_id = s->policy_id;
	e->slot = slot;
	e->action = s->action;
	e->signal = s->signal;
	e->enforced = enforced;
	e->exit = c->exit;
	e->ncapture = s->ncapture;
	e->pad = 0;
	e->nr = c->nr;
	e->net_ns = c->netns;
	e->pad32 = 0;
	e->ret = c->ret;
	for (int j = 0; j < SYS_CAPTURE; j++)
		sys_capture_one(sc, s, j);
	if (bpf_ringbuf_output(&sluice_process_events_v1, e, sizeof(*e), process_wakeup()))
		process_lost();
}

/* Whether a Post of slot may leave now (rate limit per process). */
static __always_inline int sys_rate_ok(struct sys_ctx *c, struct sys_slot *s, __u32 slot)
{
	struct sys_rate_key k = { .tgid = c->tgid, .slot = slot };
	__u64 now, *last;

	if (!s->rate_ns)
		return 1;
	now = bpf_ktime_get_ns();
	last = bpf_map_lookup_elem(&sluice_sys_rate_v1, &k);
	if (last && now - *last < s->rate_ns)
		return 0;
	bpf_map_update_elem(&sluice_sys_rate_v1, &k, &now, BPF_ANY);
	return 1;
}

static __always_inline void sys_act(struct sys_scratch *sc, struct sys_slot *s, __u32 slot)
{
	struct sys_ctx *c = &sc->c;
	__u8 enforced = 0;

	switch (s->action) {
	case EXEC_POST:
		if (sys_rate_ok(c, s, slot))
			sys_emit(sc, s, slot, 0);
		return;
	case EXEC_SIGKILL:
	case EXEC_SIGNAL:
		if (s->flags & SYS_ENFORCE)
			enforced = bpf_send_signal(s->signal) == 0;
		sys_emit(sc, s, slot, enforced);
		return;
	}
}

/* One candidate slot (bpf_loop callback: the verifier checks it once). */
static long sys_slot_cb(__u64 i, void *ctx)
{
	struct sys_scratch *sc = sys_scratch();
	struct sys_slot *s;
	struct sys_ctx *c;
	__u32 slot;

	if (!sc)
		return 1;
	c = &sc->c;
	if (!c->cand)
		return 1;
	slot = exec_lowest_slot(c->cand);
	c->cand &= c->cand - 1;
	s = bpf_map_lookup_elem(&sluice_sys_slots_v1, &slot);
	if (!s || s->group & c->decided)
		return 0;
	if (!sys_slot_match(c, sc, s, slot))
		return 0;
	c->decided |= s->group | (1ULL << slot);
	sys_act(sc, s, slot);
	return 0;
}

/* Evaluates the rules of one hook (exit: sys_exit) for syscall nr. */
static __always_inline void syscall_rules(struct pt_regs *regs, __u64 nr, long ret, __u8 exit)
{
	struct sys_config *cfg;
	struct sys_scratch *sc;
	struct task_struct *t;
	struct sys_nr *n;
	__u32 key = nr, netns;
	__u64 bits, applies, cgid;

	if (nr >= SYS_NR_MAX)
		return;
	n = bpf_map_lookup_elem(&sluice_sys_nr_v1, &key);
	if (!n)
		return;
	bits = exit ? n->exit : n->enter;
	if (!bits)
		return;
	cfg = sys_config();
	if (!cfg)
		return;
	bits &= cfg->active;
	t = bpf_get_current_task_btf();
	if (!bits || t->flags & PF_KTHREAD)
		return;
	netns = t->nsproxy ? t->nsproxy->net_ns->ns.inum : 0;
	if (bits & ~cfg->global) {
		applies = cfg->global | (exec_lookup_bits(&sluice_sys_scope_v1, &netns) & ~cfg->cgroup);
		if (bits & cfg->cgroup) {
			cgid = bpf_get_current_cgroup_id();
			applies |= exec_lookup_bits(&sluice_sys_cgscope_v1, &cgid);
		}
		bits &= applies;
	}
	sc = sys_scratch();
	if (!bits || !sc)
		return;
	sc->args[0] = regs->di;
	sc->args[1] = regs->si;
	sc->args[2] = regs->dx;
	sc->args[3] = regs->r10;
	sc->args[4] = regs->r8;
	sc->args[5] = regs->r9;
	__builtin_memset(&sc->c, 0, sizeof(sc->c));
	sc->c.ret = ret;
	sc->c.cand = bits;
	sc->c.nr = key;
	sc->c.netns = netns;
	sc->c.tgid = t->tgid;
	sc->c.exit = exit;
	bpf_loop(SYS_SLOTS, sys_slot_cb, NULL, 0);
}

/* fork: the child keeps the parent's followForks pid slots. */
static __always_inline void sys_rules_fork(struct task_struct *parent, struct task_struct *child)
{
	struct sys_config *cfg = sys_config();

	if (cfg && cfg->follow)
		follow_fork(&sluice_sys_follow_v1, parent, child);
}

static __always_inline void sys_rules_exit(struct task_struct *p)
{
	struct sys_config *cfg = sys_config();
	__u32 tgid = p->tgid;

	if (cfg && cfg->follow)
		bpf_map_delete_elem(&sluice_sys_follow_v1, &tgid);
}

#endif /* SLUICE_SYSCALL_RULES_H */
