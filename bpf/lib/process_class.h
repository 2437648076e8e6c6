/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Binary classes of tracing policies (issue 11, phase 2): every distinct
 * matchBinaries / matchParentBinaries entry of the syscall and connect rules
 * is a class (0..63, datapath/procsensor SetBinaryClasses). A process's
 * classes are a u64 of class bits kept per thread group:
 *
 *   self    the classes of the binary it exec'd (exact path or prefix),
 *           plus the followChildren classes it inherited;
 *   parent  the classes of its parent's binary at the time of the exec.
 *
 * The exec program (bpf/process.c) writes the entry with the binary path
 * and the parent's path (parent: the real parent's own classes); fork
 * copies it to the child (the parent's own classes become the child's
 * parent classes, its followChildren classes the child's inherited ones);
 * exit deletes it; without classes (config.active 0) none of this runs. The
 * bits are computed with the class maps of generation config.gen: when the
 * classes change the agent bumps gen and an entry of an older generation is
 * recomputed from its stored paths at its next use, so a process that ran
 * before a policy is classified like one started after it. Processes
 * running when the sensor starts get entries from the agent (/proc/PID/exe,
 * inserted only where the kernel has none).
 *
 * Shared by pin with bpf/sock.c (connect rules). */
#ifndef SLUICE_PROCESS_CLASS_H
#define SLUICE_PROCESS_CLASS_H

#include "process.h"

#define CLASS_PATH_MAX	256

struct class_config {
	__u32 gen;		/* bumped by the agent on every class change */
	__u32 flags;		/* enum class_config_flag */
	__u64 active;		/* classes in use (0: no entry is kept) */
	__u64 follow;		/* classes with followChildren */
};
_Static_assert(sizeof(struct class_config) == 24, "class_config size");

enum class_config_flag {
	CLASS_HAS_EXACT		= 1,
	CLASS_HAS_PREFIX	= 2,
};

struct class_path {
	char path[CLASS_PATH_MAX];	/* NUL-padded */
};

struct class_prefix_key {
	__u32 prefixlen;		/* bits */
	char  path[CLASS_PATH_MAX];
};

struct proc_class {
	__u32 gen;			/* generation self/parent were computed with */
	__u32 pad;
	__u64 self;
	__u64 parent;
	__u64 inherited;		/* followChildren classes passed down */
	__u64 own;			/* the classes of path alone (a child's parent) */
	char  path[CLASS_PATH_MAX];	/* the binary as exec'd (or /proc/PID/exe) */
	char  ppath[CLASS_PATH_MAX];	/* the parent's binary */
};
_Static_assert(sizeof(struct proc_class) == 40 + 2 * CLASS_PATH_MAX, "proc_class size");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct class_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_class_config_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct class_path);
	__type(value, __u64);
	__uint(max_entries, 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_class_exact_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct class_prefix_key);
	__type(value, __u64);
	__uint(max_entries, 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_class_prefix_v1 SEC(".maps");

/* tgid -> classes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct proc_class);
	__uint(max_entries, 32768);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_proc_class_v1 SEC(".maps");

/* Where path keys and new entries are built (per CPU: too big for the
 * stack). Not pinned: each object has its own. */
struct class_scratch {
	struct class_prefix_key k;
	struct proc_class e;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct class_scratch);
	__uint(max_entries, 1);
} sluice_class_scratch SEC(".maps");

/* The entry of a one-entry array: a configuration, a per-CPU scratch. */
static __always_inline void *map_first(void *map)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(map, &zero);
}

static __always_inline struct class_config *class_config(void)
{
	return map_first(&sluice_class_config_v1);
}

static __always_inline __u64 class_lookup(void *map, const void *key)
{
	__u64 *v = bpf_map_lookup_elem(map, key);

	return v ? *v : 0;
}

/* Bits of the path at src (kernel memory) in an exact-path hash and a
 * prefix trie (which: 1 exact, 2 prefix), read into k->path (NUL-padded);
 * *n is the read's result (NUL included, <= 0: unreadable). Shared with
 * the exec rules (process_rules.h), whose maps have the same layout. */
static __always_inline __u64 path_bits(void *exact, void *prefix, __u32 which, struct class_prefix_key *k,
				       const char *src, long *n)
{
	__u64 bits = 0;

	__builtin_memset(k, 0, sizeof(*k));
	*n = bpf_probe_read_kernel_str(k->path, CLASS_PATH_MAX, src);
	if (*n <= 0)
		return 0;
	if (which & CLASS_HAS_EXACT && *n < CLASS_PATH_MAX)
		bits |= class_lookup(exact, k->path);
	if (which & CLASS_HAS_PREFIX) {
		k->prefixlen = (__u32)(*n - 1) * 8;
		bits |= class_lookup(prefix, k);
	}
	return bits;
}

/* Classes of the binary path at src (bprm->filename or a stored path). */
static __always_inline __u64 class_bits(struct class_config *cfg, struct class_prefix_key *k, const char *src)
{
	long n;

	return path_bits(&sluice_class_exact_v1, &sluice_class_prefix_v1, cfg->flags, k, src, &n);
}

static __always_inline struct class_scratch *class_scratch(void)
{
	return map_first(&sluice_class_scratch);
}

/* proc_class_get returns the classes of thread group tgid, up to date with
 * the current generation, or NULL when the process is unknown (no classes:
 * an In filter fails, a NotIn filter passes). An entry of another
 * generation (classes changed since, a fork's child, a seeded process) is
 * recomputed here from its stored paths; inherited is kept. */
static __always_inline struct proc_class *proc_class_get(__u32 tgid)
{
	struct proc_class *e = bpf_map_lookup_elem(&sluice_proc_class_v1, &tgid);
	struct class_config *cfg;
	struct class_scratch *sc;

	if (!e)
		return NULL;
	cfg = class_config();
	if (!cfg || e->gen == cfg->gen)
		return e;
	sc = class_scratch();
	if (!sc)
		return e;
	e->own = class_bits(cfg, &sc->k, e->path);
	e->self = e->own | (e->inherited & cfg->follow);
	e->parent = class_bits(cfg, &sc->k, e->ppath);
	e->gen = cfg->gen;
	return e;
}

/* exec: p's entry for its new image filename; the parent's binary and its
 * classes come from the real parent's entry, the followChildren classes
 * from p's entry before the exec (its own, or the one its fork copied). */
static __always_inline void class_exec(struct task_struct *p, const char *filename)
{
	struct class_config *cfg = class_config();
	struct class_scratch *sc;
	struct proc_class *old, *pe;
	__u64 inherited = 0;
	__u32 tgid = p->tgid;

	if (!cfg || !cfg->active)
		return;
	sc = class_scratch();
	if (!sc)
		return;
	old = proc_class_get(tgid);
	if (old)
		inherited = old->inherited | (old->self & cfg->follow);
	sc->e.gen = cfg->gen;
	sc->e.pad = 0;
	sc->e.inherited = inherited;
	sc->e.own = class_bits(cfg, &sc->k, filename);
	sc->e.self = sc->e.own | (inherited & cfg->follow);
	__builtin_memcpy(sc->e.path, sc->k.path, CLASS_PATH_MAX);
	pe = proc_class_get(p->real_parent->tgid);
	if (pe) {
		__builtin_memcpy(sc->e.ppath, pe->path, CLASS_PATH_MAX);
		sc->e.parent = pe->own;
	} else {
		__builtin_memset(sc->e.ppath, 0, CLASS_PATH_MAX);
		sc->e.parent = 0;
	}
	bpf_map_update_elem(&sluice_proc_class_v1, &tgid, &sc->e, BPF_ANY);
}

/* fork of a process: the child runs the parent's binary under the parent,
 * inheriting its followChildren classes. */
static __always_inline void class_fork(struct task_struct *parent, struct task_struct *child)
{
	struct class_config *cfg = class_config();
	struct class_scratch *sc;
	struct proc_class *pe;
	__u32 ctgid = child->tgid;

	if (!cfg || !cfg->active)
		return;
	pe = proc_class_get(parent->tgid);
	sc = class_scratch();
	if (!pe || !sc)
		return;
	__builtin_memcpy(&sc->e, pe, sizeof(sc->e));
	sc->e.inherited = pe->inherited | (pe->self & cfg->follow);
	sc->e.parent = pe->own;
	__builtin_memcpy(sc->e.ppath, pe->path, CLASS_PATH_MAX);
	bpf_map_update_elem(&sluice_proc_class_v1, &ctgid, &sc->e, BPF_ANY);
}

/* exit of the thread group. */
static __always_inline void class_exit(struct task_struct *p)
{
	struct class_config *cfg = class_config();
	__u32 tgid;

	if (!cfg || !cfg->active)
		return;
	tgid = p->tgid;
	bpf_map_delete_elem(&sluice_proc_class_v1, &tgid);
}

#endif /* SLUICE_PROCESS_CLASS_H */
