/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The filters of a syscall rule slot (syscall_rules.h), cheapest first:
 * pids, namespaces, capabilities, binary classes, then the arguments,
 * integers before strings. A user string is read once per syscall (the
 * first filter or capture that needs it) into the per-CPU scratch; an
 * Equal/Prefix filter compares its first 8 bytes with the heads of its
 * values before it looks the string up in the trie. */
#ifndef SLUICE_SYSCALL_MATCH_H
#define SLUICE_SYSCALL_MATCH_H

#include "syscall_types.h"
#include "process_task.h"

#define PROC_USER_INIT_INO	0xEFFFFFFDU	/* include/linux/proc_ns.h */

static __always_inline struct sys_scratch *sys_scratch(void)
{
	return map_first(&sluice_sys_scratch);
}

/* The tgid of t as its own pid namespace sees it. */
static __always_inline __u32 task_ns_tgid(struct task_struct *t)
{
	struct pid *p = BPF_CORE_READ(t, group_leader, thread_pid);
	unsigned int level = BPF_CORE_READ(p, level);
	struct upid up = {};

	bpf_probe_read_kernel(&up, sizeof(up), &p->numbers[level & 31]);
	return up.nr;
}

/* sys_width is x as the kernel sees an argument of v's width: a 32-bit
 * int is the register's low half (the syscall wrappers cast it), so the
 * upper half a process leaves in the register cannot make a value differ
 * from what the kernel uses. */
static __always_inline __u64 sys_width(__u64 x, __u8 flags)
{
	int sign = flags & SYS_VAL_SIGNED;

	if (flags & SYS_VAL_32)
		return sign ? (__u64)(__s64)(__s32)x : (__u32)x;
	if (flags & SYS_VAL_16)
		return sign ? (__u64)(__s64)(__s16)x : (__u16)x;
	if (flags & SYS_VAL_8)
		return sign ? (__u64)(__s64)(__s8)x : (__u8)x;
	return x;
}

static __always_inline __u64 sys_value(struct sys_ctx *c, struct sys_scratch *sc, struct sys_value *v)
{
	switch (v->source) {
	case SYS_SRC_NR:
		return c->nr;
	case SYS_SRC_RET:
		return c->ret;
	case SYS_SRC_ARG:
		if (v->index < SYS_STR_ARGS)
			return sys_width(sc->args[v->index], v->flags);
	}
	return 0;
}

/* The string argument idx: bpf_probe_read_user_str's result (NUL
 * included; <= 0 when it could not be read). */
static __always_inline long sys_str_get(struct sys_ctx *c, struct sys_scratch *sc, __u32 idx)
{
	if (idx >= SYS_STR_ARGS)
		return -1;
	if (!(c->read & (1 << idx))) {
		sc->len[idx] = bpf_probe_read_user_str(sc->str[idx].key.str, SYS_STR_MAX, (void *)sc->args[idx]);
		c->read |= 1 << idx;
	}
	return sc->len[idx];
}

/* Whether w (a string's first 8 bytes, those after its NUL whatever the
 * buffer held: no head has a byte beyond a NUL) starts with one of the
 * heads of string filter a. */
static __always_inline int sys_head_hit(struct sys_arg *a, __u64 w)
{
	for (int j = 0; j < SYS_INTS; j++) {
		__u8 n = a->hlen[j];
		__u64 m = n >= SYS_HEAD ? ~0ULL : (1ULL << ((n & 7) * 8)) - 1;

		if (j >= a->nints)
			break;
		if ((w & m) == a->ints[j])
			return 1;
	}
	return 0;
}

static __always_inline int sys_int_match(struct sys_ctx *c, struct sys_scratch *sc, struct sys_arg *a)
{
	__u64 v = sys_value(c, sc, &a->value), x = a->ints[0];
	int sign = a->value.flags & SYS_VAL_SIGNED;
	__u8 op = a->op, n = a->nints;

	if (op == SYS_OP_GT)
		return sign ? (__s64)v > (__s64)x : v > x;
	if (op == SYS_OP_LT)
		return sign ? (__s64)v < (__s64)x : v < x;
	for (int j = 0; j < SYS_INTS; j++) {
		if (j >= n)
			break;
		if (op == SYS_OP_MASK && (v & a->ints[j]))
			return 1;
		if (v == a->ints[j] && (op == SYS_OP_EQUAL || op == SYS_OP_NOTEQUAL))
			return op == SYS_OP_EQUAL;
	}
	return op == SYS_OP_NOTEQUAL;
}

/* Postfix: string argument idx (len bytes, NUL excluded) reversed into
 * the scratch's rev key, one byte per bpf_loop step (a plain loop would be
 * verified once per byte and path). */
struct sys_rev_ctx {
	__u32 idx;
	__u32 len;
};

static long sys_reverse_cb(__u64 i, void *ctx)
{
	struct sys_rev_ctx *r = ctx;
	struct sys_scratch *sc = sys_scratch();

	if (!sc || i >= r->len || i >= SYS_STR_KEY || r->idx >= SYS_STR_ARGS)
		return 1;
	sc->rev.str[i] = sc->str[r->idx].key.str[(r->len - 1 - i) & 0xff];
	return 0;
}

/* String filter f of slot: the trie entries of (slot, f), unless the
 * string starts with none of the filter's heads (then no entry matches).
 * A string that could not be read matches no filter; a cut one
 * (SYS_STR_MAX - 1 bytes or more) no Postfix/NotPostfix filter (its end is
 * unknown). */
static __always_inline int sys_str_match(struct sys_ctx *c, struct sys_scratch *sc, struct sys_arg *a,
					 __u32 slot, __u32 f)
{
	__u32 idx = a->value.index;
	__u8 op = a->op, id = slot << 2 | f;
	struct sys_str_key *k;
	long n = sys_str_get(c, sc, idx);
	__u64 head;
	int hit;

	if (n <= 0 || idx >= SYS_STR_ARGS)
		return 0;
	k = &sc->str[idx].key;
	if (op == SYS_OP_POSTFIX || op == SYS_OP_NOTPOSTFIX) {
		if (n >= SYS_STR_MAX)
			return 0;
		struct sys_rev_ctx r = { .idx = idx, .len = n - 1 };

		bpf_loop(SYS_STR_KEY, sys_reverse_cb, &r, 0);
		sc->rev.id = id;
		sc->rev.prefixlen = 8 + 8 * (__u32)(n - 1);
		hit = bpf_map_lookup_elem(&sluice_sys_postfix_v1, &sc->rev) != NULL;
		return op == SYS_OP_POSTFIX ? hit : !hit;
	}
	/* No value starts with the string's first bytes: no trie lookup. */
	__builtin_memcpy(&head, k->str, sizeof(head));
	if (a->nints && !sys_head_hit(a, head))
		return op == SYS_OP_NOTEQUAL || op == SYS_OP_NOTPREFIX;
	k->id = id;
	k->prefixlen = 8 + 8 * (__u32)(n < SYS_STR_KEY ? n : SYS_STR_KEY);
	hit = bpf_map_lookup_elem(&sluice_sys_str_v1, k) != NULL;
	return op == SYS_OP_EQUAL || op == SYS_OP_PREFIX ? hit : !hit;
}

/* Argument filter f of slot s. A global function: the verifier checks it
 * once, not once per filter and path of the slot loop. */
__attribute__((noinline)) int sys_arg_filter(struct sys_scratch *sc, struct sys_slot *s, __u32 slot, __u32 f)
{
	struct sys_arg *a;

	if (!sc || !s || f >= SYS_ARGS)
		return 0;
	a = &s->args[f];
	if (a->value.flags & SYS_VAL_STRING)
		return sys_str_match(&sc->c, sc, a, slot, f);
	return sys_int_match(&sc->c, sc, a);
}

static __always_inline int sys_args_match(struct sys_scratch *sc, struct sys_slot *s, __u32 slot)
{
	__u8 n = s->nargs;

	/* Integers first: they cost no read of user memory. */
	for (int str = 0; str < 2; str++) {
		for (int f = 0; f < SYS_ARGS; f++) {
			if (f >= n)
				break;
			if (!(s->args[f].value.flags & SYS_VAL_STRING) == !str && !sys_arg_filter(sc, s, slot, f))
				return 0;
		}
	}
	return 1;
}

static __always_inline int sys_pid_match(struct sys_ctx *c, struct sys_slot *s, __u32 slot, struct task_struct *t)
{
	__u32 pid = s->flags & SYS_PID_NS ? task_ns_tgid(t) : c->tgid;
	__u64 bit = 1ULL << slot, *f;
	int in = 0;

	for (int j = 0; j < SYS_PIDS; j++) {
		if (j >= s->npids)
			break;
		if (s->pids[j] == pid) {
			in = 1;
			break;
		}
	}
	if (s->flags & SYS_PID_FOLLOW) {
		f = bpf_map_lookup_elem(&sluice_sys_follow_v1, &c->tgid);
		if (!in) {
			in = f && (*f & bit);
		} else if (!f || !(*f & bit)) {
			__u64 v = (f ? *f : 0) | bit;

			bpf_map_update_elem(&sluice_sys_follow_v1, &c->tgid, &v, BPF_ANY);
		}
	}
	return s->flags & SYS_PID_NOTIN ? !in : in;
}

static __always_inline __u32 sys_ns_inode(struct task_struct *t, __u8 kind)
{
	struct nsproxy *nsp = t->nsproxy;

	if (kind == SYS_NS_PID)
		return task_pid_ns(t);
	if (kind == SYS_NS_USER)
		return t->cred->user_ns->ns.inum;
	if (!nsp)
		return 0;
	switch (kind) {
	case SYS_NS_UTS:
		return nsp->uts_ns->ns.inum;
	case SYS_NS_IPC:
		return nsp->ipc_ns->ns.inum;
	case SYS_NS_MNT:
		return nsp->mnt_ns->ns.inum;
	case SYS_NS_PID_CHILDREN:
		return nsp->pid_ns_for_children ? nsp->pid_ns_for_children->ns.inum : 0;
	case SYS_NS_NET:
		return nsp->net_ns->ns.inum;
	case SYS_NS_TIME:
		return nsp->time_ns ? nsp->time_ns->ns.inum : 0;
	case SYS_NS_TIME_CHILDREN:
		return nsp->time_ns_for_children ? nsp->time_ns_for_children->ns.inum : 0;
	case SYS_NS_CGROUP:
		return nsp->cgroup_ns ? nsp->cgroup_ns->ns.inum : 0;
	}
	return 0;
}

/* Namespace filter i of slot s (global: checked once). */
__attribute__((noinline)) int sys_ns_filter(struct sys_slot *s, __u32 i)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct sys_ns *f;
	__u32 ino;
	int in = 0;

	if (!s || i >= SYS_NS)
		return 0;
	f = &s->ns[i];
	ino = sys_ns_inode(t, f->kind);
	for (int j = 0; j < SYS_NS_INODES; j++)
		if (j < f->n && f->inodes[j] == ino)
			in = 1;
	return in != f->notin;
}

static __always_inline int sys_ns_match(struct sys_slot *s)
{
	for (int i = 0; i < SYS_NS; i++) {
		if (i >= s->nns)
			break;
		if (!sys_ns_filter(s, i))
			return 0;
	}
	return 1;
}

static __always_inline int sys_caps_match(struct sys_slot *s, struct task_struct *t)
{
	const struct cred *cr = t->cred;

	for (int i = 0; i < SYS_CAPS; i++) {
		struct sys_cap *f = &s->caps[i];
		__u64 v;
		int any;

		if (i >= s->ncaps)
			break;
		if (f->userns && cr->user_ns->ns.inum == PROC_USER_INIT_INO)
			return 0;
		v = f->set == SYS_CAP_PERMITTED ? cr->cap_permitted.val :
		    f->set == SYS_CAP_INHERITABLE ? cr->cap_inheritable.val : cr->cap_effective.val;
		any = (v & f->mask) != 0;
		if (any == f->notin)
			return 0;
	}
	return 1;
}

static __always_inline int sys_classes_match(struct sys_ctx *c, struct sys_slot *s)
{
	if (!(s->bin_all | s->bin_none | s->parent_all | s->parent_none))
		return 1;
	if (!c->cls) {
		struct proc_class *pc = proc_class_get(c->tgid);

		c->self = pc ? pc->self : 0;
		c->parent = pc ? pc->parent : 0;
		c->cls = 1;
	}
	return (c->self & s->bin_all) == s->bin_all && !(c->self & s->bin_none) &&
	       (c->parent & s->parent_all) == s->parent_all && !(c->parent & s->parent_none);
}

/* Whether slot's filters pass, cheapest first. */
static __always_inline int sys_slot_match(struct sys_ctx *c, struct sys_scratch *sc, struct sys_slot *s, __u32 slot)
{
	struct task_struct *t = bpf_get_current_task_btf();

	if (s->npids && !sys_pid_match(c, s, slot, t))
		return 0;
	if (s->nns && !sys_ns_match(s))
		return 0;
	if (s->ncaps && !sys_caps_match(s, t))
		return 0;
	if (!sys_classes_match(c, s))
		return 0;
	return !s->nargs || sys_args_match(sc, s, slot);
}

#endif /* SLUICE_SYSCALL_MATCH_H */
