/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Process sensor events and the maps they leave through, shared by
 * bpf/process.c (exec, exit, fork, TCP connect, exec rules) and bpf/sock.c (UDP connect
 * and sendmsg, when the sensor is on). Mirrored in Go by bpf2go
 * (datapath/procsensor decodes them). */
#ifndef SLUICE_PROCESS_H
#define SLUICE_PROCESS_H

#include "common.h"
#include "ktypes.h"

#ifndef AF_INET
#define AF_INET		2
#endif

enum process_event_type {
	PROCESS_EXEC	= 1,
	PROCESS_EXIT	= 2,
	PROCESS_FORK	= 3,
	PROCESS_CONNECT	= 4,
	PROCESS_ENFORCE	= 5,	/* an exec rule matched (process_rules.h) */
	PROCESS_SYSCALL	= 6,	/* a syscall rule matched (syscall_rules.h) */
	PROCESS_CONNECT_RULE = 7, /* a connect rule matched (connect_rules.h) */
};

/* process_hdr.flags */
enum process_flag {
	PROCESS_FILENAME_TRUNC	= 1,	/* exec, enforce: bprm->filename cut */
	PROCESS_ARGS_TRUNC	= 2,	/* exec: argv cut */
	PROCESS_CWD_TRUNC	= 4,	/* exec: cwd walk stopped before the root */
	PROCESS_CONNECT_FAILED	= 8,	/* connect: SYN_SENT -> CLOSE */
};

/* A process: thread-group id and start time of the group leader. */
struct process_key {
	__u32 tgid;
	__u32 pad;
	__u64 start_time;	/* task->start_time, CLOCK_MONOTONIC ns */
};
_Static_assert(sizeof(struct process_key) == 16, "process_key size");

struct process_hdr {
	__u8  type;		/* enum process_event_type */
	__u8  flags;		/* enum process_flag */
	__u16 pad;
	__u32 pid;		/* the thread */
	__u64 ktime;		/* bpf_ktime_get_ns() */
	struct process_key key;
};
_Static_assert(sizeof(struct process_hdr) == 32, "process_hdr size");

/* Sizes of the exec event's variable part: the cwd components (leaf first,
 * each NUL-terminated; the reader reverses them), then bprm->filename
 * (NUL-terminated), then argv as in mm->arg_start..arg_end. */
#define PROCESS_CWD_MAX		1024	/* the walk stops past this many bytes */
#define PROCESS_NAME_MAX	256	/* one path component, NUL included */
#define PROCESS_FILENAME_MAX	512
#define PROCESS_ARGS_MAX	2048
#define PROCESS_DATA_MAX	8192	/* covers every masked offset below */

struct process_exec {
	struct process_hdr hdr;
	struct process_key parent;	/* real_parent's group leader */
	__u32 uid, euid, gid, auid;
	__u32 pid_ns, mnt_ns, net_ns;
	__u16 cwd_len, filename_len;
	__u16 args_len;
	__u16 pad16;
	__u32 pad32;
	__u64 cap_effective, cap_permitted;
	__u64 cgroup_id;		/* cgroup v2 id of the task */
	char  data[PROCESS_DATA_MAX];
};
_Static_assert(__builtin_offsetof(struct process_exec, data) == 112, "process_exec header size");

struct process_exit {
	struct process_hdr hdr;
	__u32 exit_code;	/* task->exit_code: status << 8 | signal */
	__u32 pad;
};
_Static_assert(sizeof(struct process_exit) == 40, "process_exit size");

struct process_fork {
	struct process_hdr hdr;	/* key: the child */
	struct process_key parent;
};
_Static_assert(sizeof(struct process_fork) == 48, "process_fork size");

struct process_connect {
	struct process_hdr hdr;
	__u8   proto;		/* IPPROTO_TCP, IPPROTO_UDP */
	__u8   pad8;
	__u16  family;		/* AF_INET */
	__be16 sport, dport;
	__be16 orig_dport;	/* service frontend before the socket LB, or 0 */
	__u16  pad16;
	__be32 saddr, daddr;
	__be32 orig_daddr;
	__u32  net_ns;
	__u32  pad32;
	__u64  cookie;		/* socket cookie */
};
_Static_assert(sizeof(struct process_connect) == 72, "process_connect size");

/* 4 MiB of events; fixed here because process.c and sock.c share the pin. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_process_events_v1 SEC(".maps");

/* Events that could not be reserved or written, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_process_lost_v1 SEC(".maps");

static __always_inline void process_lost(void)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&sluice_process_lost_v1, &zero);

	if (v)
		(*v)++;
}

/* Waking the reader for each event costs a self-IPI (microseconds in a VM,
 * more than the rest of the program): the reader polls every few
 * milliseconds instead (datapath/procsensor) and is woken only when an
 * eighth of the ring is waiting. */
#define PROCESS_WAKEUP_BYTES	(512 << 10)

static __always_inline __u64 process_wakeup(void)
{
	return bpf_ringbuf_query(&sluice_process_events_v1, BPF_RB_AVAIL_DATA) >= PROCESS_WAKEUP_BYTES ?
	       BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* Fills k with the process t belongs to. */
static __always_inline void process_key_of(struct task_struct *t, struct process_key *k)
{
	k->tgid = t->tgid;
	k->pad = 0;
	k->start_time = t->group_leader->start_time;
}

static __always_inline void process_hdr_fill(struct process_hdr *h, __u8 type, struct task_struct *t)
{
	h->type = type;
	h->flags = 0;
	h->pad = 0;
	h->pid = t->pid;
	h->ktime = bpf_ktime_get_ns();
	process_key_of(t, &h->key);
}

#endif /* SLUICE_PROCESS_H */
