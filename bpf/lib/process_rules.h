/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Exec rules of tracing policies (exec prevention and monitoring, issue 11),
 * evaluated in bpf/process.c's sched_process_exec program and kept up by its
 * fork and exit programs. Rules are slots 0..63 (datapath/procsensor
 * SetExecRules); a slot set is a u64 of slot bits. At exec:
 *
 *   match     = exact[path] | prefix[path], NotIn slots inverted
 *   applies   = global slots | scope[task netns] & ~cgroup slots
 *               | follow[tgid] | cgscope[task cgroup] (when match & cgroup)
 *   candidate = match & applies & active
 *
 * and the lowest candidate slot decides: Post reports, NoPost does nothing,
 * Sigkill/Signal send the signal (enforce mode) and report. Candidate slots
 * with followChildren add their children slots to follow[tgid], which a fork
 * copies to the child and an exit deletes. Without rules the cost is one
 * array lookup per exec (and per fork/exit without followChildren rules).
 *
 * Slots of a policy with a containerSelector are scoped by the cgroup v2 id
 * of the process (its container's), not by its network namespace (every
 * container of a pod shares it): the agent writes them to cgscope, never
 * to scope (which cannot carry them), and marks them in exec_config.cgroup,
 * so the cgroup id is read and looked up only when such a slot could match.
 *
 * The path is bprm->filename, as given to execve (see docs: a relative path
 * or a symlink does not match the rule of its target). The maps are not
 * pinned: rules live and die with the sensor, like its links. */
#ifndef SLUICE_PROCESS_RULES_H
#define SLUICE_PROCESS_RULES_H

#include "process_class.h"

#define EXEC_PATH_MAX	256	/* key bytes; longer paths match prefixes only */
#define EXEC_SLOTS	64

enum exec_action {
	EXEC_POST	= 1,
	EXEC_NOPOST	= 2,
	EXEC_SIGKILL	= 3,
	EXEC_SIGNAL	= 4,
};

/* exec_slot.flags */
enum exec_slot_flag {
	EXEC_ENFORCE	= 1,
	EXEC_NOTIN	= 2,
	EXEC_FOLLOW	= 4,
	EXEC_GLOBAL	= 8,
};

/* exec_config.flags: which path maps hold entries. */
enum exec_config_flag {
	EXEC_HAS_EXACT	= 1,
	EXEC_HAS_PREFIX	= 2,
};

struct exec_path {
	char path[EXEC_PATH_MAX];	/* NUL-padded */
};
_Static_assert(sizeof(struct exec_path) == 256, "exec_path size");

struct exec_prefix_key {
	__u32 prefixlen;		/* bits */
	char  path[EXEC_PATH_MAX];
};
_Static_assert(sizeof(struct exec_prefix_key) == sizeof(struct class_prefix_key), "exec_prefix_key size");

struct exec_slot {
	__u32 policy_id;
	__u8  action;			/* enum exec_action */
	__u8  signal;
	__u8  flags;			/* enum exec_slot_flag */
	__u8  pad;
	__u64 children;			/* slots a match adds to follow[tgid] */
};
_Static_assert(sizeof(struct exec_slot) == 16, "exec_slot size");

/* The slot masks, written after the slots and path entries they use. */
struct exec_config {
	__u64 active;
	__u64 global;
	__u64 notin;
	__u64 follow;			/* slots with followChildren */
	__u32 flags;			/* enum exec_config_flag */
	__u32 pad;
	__u64 cgroup;			/* slots scoped by cgroup (cgscope) */
};
_Static_assert(sizeof(struct exec_config) == 48, "exec_config size");

/* PROCESS_ENFORCE: an exec rule matched. */
struct process_enforce {
	struct process_hdr hdr;		/* flags: PROCESS_FILENAME_TRUNC */
	__u32 policy_id;
	__u8  slot;
	__u8  action;			/* enum exec_action */
	__u8  signal;
	__u8  enforced;			/* the signal was sent */
	__u32 net_ns;
	__u16 filename_len;		/* NUL excluded */
	__u16 pad;
	char  filename[EXEC_PATH_MAX];
};
_Static_assert(sizeof(struct process_enforce) == 304, "process_enforce size");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct exec_config);
	__uint(max_entries, 1);
} sluice_exec_config_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct exec_slot);
	__uint(max_entries, EXEC_SLOTS);
} sluice_exec_slots_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct exec_path);
	__type(value, __u64);
	__uint(max_entries, 1024);
} sluice_exec_exact_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct exec_prefix_key);
	__type(value, __u64);
	__uint(max_entries, 1024);
} sluice_exec_prefix_v1 SEC(".maps");

/* Network namespace inode -> slots that apply to its processes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 4096);
} sluice_exec_scope_v1 SEC(".maps");

/* Cgroup v2 id -> slots that apply to its processes (containerSelector). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, __u64);
	__uint(max_entries, 8192);
} sluice_exec_cgscope_v1 SEC(".maps");

/* tgid -> slots inherited through followChildren. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 16384);
} sluice_exec_follow_v1 SEC(".maps");

/* Where the path key is built (per CPU: too big for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct exec_prefix_key);
	__uint(max_entries, 1);
} sluice_exec_scratch SEC(".maps");

static __always_inline struct exec_config *exec_config(void)
{
	return map_first(&sluice_exec_config_v2);
}

/* Index of the lowest set bit of x (x != 0). */
static __always_inline __u32 exec_lowest_slot(__u64 x)
{
	__u32 n = 0;

	if (!(x & 0xffffffffULL)) { n += 32; x >>= 32; }
	if (!(x & 0xffff)) { n += 16; x >>= 16; }
	if (!(x & 0xff)) { n += 8; x >>= 8; }
	if (!(x & 0xf)) { n += 4; x >>= 4; }
	if (!(x & 0x3)) { n += 2; x >>= 2; }
	if (!(x & 0x1)) n += 1;
	return n;
}

static __always_inline __u64 exec_lookup_bits(void *map, const void *key)
{
	__u64 *v = bpf_map_lookup_elem(map, key);

	return v ? *v : 0;
}

/* Slots whose path filter the exec's path passes; *len is the path length
 * (NUL excluded), -1 when it could not be read. */
static __always_inline __u64 exec_path_match(struct exec_config *cfg, struct exec_prefix_key *k,
					     const char *filename, long *len)
{
	__u64 bits = path_bits(&sluice_exec_exact_v1, &sluice_exec_prefix_v1, cfg->flags,
			       (struct class_prefix_key *)k, filename, len);

	*len -= 1;
	return bits;
}

/* Adds the children slots of the followChildren slots in match to
 * follow[tgid]. */
static __always_inline void exec_follow_set(__u32 tgid, __u64 match, __u64 inherited)
{
	__u64 add = 0;

	for (int i = 0; i < EXEC_SLOTS && match; i++) {
		__u32 idx = exec_lowest_slot(match);
		struct exec_slot *s = bpf_map_lookup_elem(&sluice_exec_slots_v1, &idx);

		match &= match - 1;
		if (s)
			add |= s->children;
	}
	if ((add | inherited) != inherited) {
		add |= inherited;
		bpf_map_update_elem(&sluice_exec_follow_v1, &tgid, &add, BPF_ANY);
	}
}

static __always_inline void exec_enforce_emit(struct task_struct *p, struct exec_slot *s, __u32 slot,
					      struct exec_prefix_key *k, long len, __u32 netns, __u8 enforced)
{
	struct process_enforce *e;

	e = bpf_ringbuf_reserve(&sluice_process_events_v1, sizeof(*e), 0);
	if (!e) {
		process_lost();
		return;
	}
	process_hdr_fill(&e->hdr, PROCESS_ENFORCE, p);
	if (len >= EXEC_PATH_MAX - 1)
		e->hdr.flags |= PROCESS_FILENAME_TRUNC;
	e->policy_id = s->policy_id;
	e->slot = slot;
	e->action = s->action;
	e->signal = s->signal;
	e->enforced = enforced;
	e->net_ns = netns;
	e->filename_len = len > 0 ? len : 0;
	e->pad = 0;
	__builtin_memcpy(e->filename, k->path, EXEC_PATH_MAX);
	bpf_ringbuf_submit(e, process_wakeup());
}

/* Evaluates the exec rules for the new image of p. */
static __always_inline void exec_rules(struct task_struct *p, const char *filename)
{
	struct exec_config *cfg = exec_config();
	struct exec_prefix_key *k;
	struct exec_slot *s;
	__u32 zero = 0, tgid, netns, slot;
	__u64 match, inherited, applies, cand, cgid;
	__u8 enforced = 0;
	long len;

	if (!cfg || !cfg->active)
		return;
	k = bpf_map_lookup_elem(&sluice_exec_scratch, &zero);
	if (!k)
		return;
	match = exec_path_match(cfg, k, filename, &len) ^ cfg->notin;
	tgid = p->tgid;
	netns = p->nsproxy ? p->nsproxy->net_ns->ns.inum : 0;
	inherited = cfg->follow ? exec_lookup_bits(&sluice_exec_follow_v1, &tgid) : 0;
	applies = cfg->global | inherited | (exec_lookup_bits(&sluice_exec_scope_v1, &netns) & ~cfg->cgroup);
	if (match & cfg->active & cfg->cgroup) {
		cgid = bpf_get_current_cgroup_id();
		applies |= exec_lookup_bits(&sluice_exec_cgscope_v1, &cgid);
	}
	cand = match & cfg->active & applies;
	if (!cand)
		return;
	if (cand & cfg->follow)
		exec_follow_set(tgid, cand & cfg->follow, inherited);
	slot = exec_lowest_slot(cand);
	s = bpf_map_lookup_elem(&sluice_exec_slots_v1, &slot);
	if (!s || s->action == EXEC_NOPOST)
		return;
	if ((s->action == EXEC_SIGKILL || s->action == EXEC_SIGNAL) && s->flags & EXEC_ENFORCE)
		enforced = bpf_send_signal(s->signal) == 0;
	exec_enforce_emit(p, s, slot, k, len, netns, enforced);
}

/* fork: the child gets its parent's entry of a tgid -> slots map. */
static __always_inline void follow_fork(void *map, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid, ctgid;
	__u64 *v = bpf_map_lookup_elem(map, &ptgid);

	if (!v)
		return;
	ctgid = child->tgid;
	bpf_map_update_elem(map, &ctgid, v, BPF_ANY);
}

/* fork: the child inherits the parent's followChildren slots. */
static __always_inline void exec_rules_fork(struct task_struct *parent, struct task_struct *child)
{
	struct exec_config *cfg = exec_config();

	if (cfg && cfg->follow)
		follow_fork(&sluice_exec_follow_v1, parent, child);
}

/* exit of the thread group. */
static __always_inline void exec_rules_exit(struct task_struct *p)
{
	struct exec_config *cfg = exec_config();
	__u32 tgid = p->tgid;

	if (cfg && cfg->follow)
		bpf_map_delete_elem(&sluice_exec_follow_v1, &tgid);
}

#endif /* SLUICE_PROCESS_RULES_H */
