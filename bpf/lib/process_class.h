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
 * and the parent's path; fork copies it to the child; exit deletes it. The
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
	char  path[CLASS_PATH_MAX];	/* the binary as exec'd (or /proc/PID/exe) */
	char  ppath[CLASS_PATH_MAX];	/* the parent's binary */
};
_Static_assert(sizeof(struct proc_class) == 32 + 2 * CLASS_PATH_MAX, "proc_class size");

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

/* proc_class_get returns the classes of thread group tgid, up to date with
 * the current generation, or NULL when the process is unknown (no classes:
 * an In filter fails, a NotIn filter passes). CONTRACT: the implementation
 * (lazy recompute when gen differs) is the sensor's; callers rely only on
 * this signature and on self/parent being current. */
static __always_inline struct proc_class *proc_class_get(__u32 tgid)
{
	return bpf_map_lookup_elem(&sluice_proc_class_v1, &tgid);
}

#endif /* SLUICE_PROCESS_CLASS_H */
