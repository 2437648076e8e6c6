/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Syscall rules of tracing policies (issue 11, phase 2): the slot
 * configuration, the maps and the PROCESS_SYSCALL event, mirrored in Go by
 * bpf2go (datapath/procsensor SetSyscallRules). The evaluation is in
 * syscall_match.h and syscall_rules.h. */
#ifndef SLUICE_SYSCALL_TYPES_H
#define SLUICE_SYSCALL_TYPES_H

#include "process_class.h"

#define SYS_NR_MAX	512	/* syscall numbers the rules can name */
#define SYS_SLOTS	64
#define SYS_ARGS	4	/* argument filters per slot */
#define SYS_INTS	8	/* integers per argument filter */
#define SYS_CAPTURE	4	/* values an event carries */
#define SYS_PIDS	8
#define SYS_NS		4	/* namespace filters per slot */
#define SYS_NS_INODES	4
#define SYS_CAPS	4	/* capability filters per slot */
#define SYS_STR_MAX	256	/* bytes read of a user string, NUL included */
#define SYS_STR_KEY	255	/* string bytes in a trie key */
#define SYS_STR_ARGS	6	/* syscall arguments */
#define SYS_HEAD	8	/* bytes of a string filter's head (struct sys_arg) */

enum sys_source {
	SYS_SRC_NR	= 1,
	SYS_SRC_ARG	= 2,
	SYS_SRC_RET	= 3,
};

/* sys_value.flags */
enum sys_value_flag {
	SYS_VAL_STRING	= 1,	/* the argument points to a user string */
	SYS_VAL_SIGNED	= 2,	/* GT/LT compare signed; narrow values sign-extend */
	SYS_VAL_32	= 4,	/* the argument is 32 bits wide (int, unsigned int) */
	SYS_VAL_16	= 8,
	SYS_VAL_8	= 16,
};

enum sys_op {
	SYS_OP_EQUAL		= 1,
	SYS_OP_NOTEQUAL		= 2,
	SYS_OP_PREFIX		= 3,
	SYS_OP_NOTPREFIX	= 4,
	SYS_OP_POSTFIX		= 5,
	SYS_OP_NOTPOSTFIX	= 6,
	SYS_OP_MASK		= 7,
	SYS_OP_GT		= 8,
	SYS_OP_LT		= 9,
};

/* sys_slot.flags */
enum sys_slot_flag {
	SYS_ENFORCE	= 1,	/* carry out Sigkill/Signal */
	SYS_PID_NOTIN	= 2,
	SYS_PID_NS	= 4,	/* pids as seen in the process's pid namespace */
	SYS_PID_FOLLOW	= 8,	/* descendants of a matching pid match too */
};

enum sys_ns_kind {
	SYS_NS_UTS = 1, SYS_NS_IPC, SYS_NS_MNT, SYS_NS_PID, SYS_NS_PID_CHILDREN, SYS_NS_NET,
	SYS_NS_TIME, SYS_NS_TIME_CHILDREN, SYS_NS_CGROUP, SYS_NS_USER,
};

enum sys_cap_set {
	SYS_CAP_EFFECTIVE = 1, SYS_CAP_PERMITTED, SYS_CAP_INHERITABLE,
};

struct sys_value {
	__u8 source;		/* enum sys_source */
	__u8 index;		/* argument 0..5 */
	__u8 flags;		/* enum sys_value_flag */
	__u8 pad;
};

/* A string filter's values are entries of the string tries. Equal and
 * Prefix filters (and their Not*) also carry heads: the first hlen[j]
 * bytes (at most 8, little-endian in ints[j], the rest zero) of values,
 * every value starting with one of them (an Equal value's NUL counts). A
 * string that starts with none matches no value, so the trie need not be
 * consulted (nints heads; 0: none, the values are too diverse). */
struct sys_arg {
	struct sys_value value;
	__u8  op;		/* enum sys_op */
	__u8  nints;		/* integers; strings: heads */
	__u16 pad;
	__u64 ints[SYS_INTS];	/* integers; strings: heads */
	__u8  hlen[SYS_INTS];	/* strings: bytes of each head (0..SYS_HEAD) */
};
_Static_assert(sizeof(struct sys_arg) == 80, "sys_arg size");

struct sys_ns {
	__u8  kind;		/* enum sys_ns_kind */
	__u8  notin;
	__u8  n;
	__u8  pad;
	__u32 inodes[SYS_NS_INODES];
};

struct sys_cap {
	__u8  set;		/* enum sys_cap_set */
	__u8  notin;
	__u8  userns;		/* only outside the initial user namespace */
	__u8  pad[5];
	__u64 mask;
};

struct sys_slot {
	__u32 policy_id;
	__u8  action;		/* enum exec_action */
	__u8  signal;
	__u8  flags;		/* enum sys_slot_flag */
	__u8  nargs;
	__u8  npids, nns, ncaps, ncapture;
	__u32 pad;
	__u64 group;		/* slots of the same tracepoint: the first match decides */
	__u64 rate_ns;		/* Post at most once per process per rate_ns */
	__u64 bin_all, bin_none;
	__u64 parent_all, parent_none;
	__u32 pids[SYS_PIDS];
	struct sys_ns ns[SYS_NS];
	struct sys_cap caps[SYS_CAPS];
	struct sys_arg args[SYS_ARGS];
	struct sys_value capture[SYS_CAPTURE];
};
_Static_assert(sizeof(struct sys_slot) == 576, "sys_slot size");

/* Per syscall number: the slots of the enter and exit hooks. */
struct sys_nr {
	__u64 enter;
	__u64 exit;
};

/* The slot masks, written after the slots and entries they use. */
struct sys_config {
	__u64 active;
	__u64 global;
	__u64 follow;		/* slots with SYS_PID_FOLLOW */
	__u64 cgroup;		/* slots scoped by cgroup (sluice_sys_cgscope_v1) */
};
_Static_assert(sizeof(struct sys_config) == 32, "sys_config size");

/* A string filter entry: (slot << 2 | filter index, bytes). Equal entries
 * end with the NUL, Prefix entries do not; Postfix entries are reversed in
 * their own trie. */
struct sys_str_key {
	__u32 prefixlen;	/* bits, id byte included */
	__u8  id;
	char  str[SYS_STR_KEY];
};
_Static_assert(sizeof(struct sys_str_key) == 260, "sys_str_key size");

struct sys_rate_key {
	__u32 tgid;
	__u32 slot;
};

/* sys_capture.flags */
enum sys_capture_flag {
	SYS_CAP_STRING	= 1,
	SYS_CAP_TRUNC	= 2,	/* longer than SYS_STR_MAX - 1 bytes */
	SYS_CAP_FAULT	= 4,	/* the user memory could not be read */
};

struct sys_capture {
	__u64 value;		/* the integer (strings: the pointer) */
	__u16 len;		/* string bytes, NUL excluded */
	__u8  flags;		/* enum sys_capture_flag */
	__u8  pad[5];
};

/* PROCESS_SYSCALL: a syscall rule matched. */
struct process_syscall {
	struct process_hdr hdr;
	__u32 policy_id;
	__u8  slot;
	__u8  action;		/* enum exec_action */
	__u8  signal;
	__u8  enforced;		/* the signal was sent */
	__u8  exit;		/* sys_exit (else sys_enter) */
	__u8  ncapture;
	__u16 pad;
	__u32 nr;
	__u32 net_ns;
	__u32 pad32;
	__s64 ret;		/* sys_exit */
	struct sys_capture capture[SYS_CAPTURE];
	char  strs[SYS_CAPTURE][SYS_STR_MAX];
};
_Static_assert(sizeof(struct process_syscall) == 1152, "process_syscall size");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct sys_config);
	__uint(max_entries, 1);
} sluice_sys_config_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct sys_nr);
	__uint(max_entries, SYS_NR_MAX);
} sluice_sys_nr_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct sys_slot);
	__uint(max_entries, SYS_SLOTS);
} sluice_sys_slots_v1 SEC(".maps");

/* Network namespace inode -> slots that apply to its processes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 4096);
} sluice_sys_scope_v1 SEC(".maps");

/* Cgroup v2 id -> slots that apply to its processes (containerSelector). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, __u64);
	__uint(max_entries, 8192);
} sluice_sys_cgscope_v1 SEC(".maps");

/* tgid -> slots whose pid filter it passes through followForks. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 16384);
} sluice_sys_follow_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sys_str_key);
	__type(value, __u64);
	__uint(max_entries, 4096);
} sluice_sys_str_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sys_str_key);
	__type(value, __u64);
	__uint(max_entries, 4096);
} sluice_sys_postfix_v1 SEC(".maps");

/* (tgid, slot) -> ktime of the last Post (rate limit). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct sys_rate_key);
	__type(value, __u64);
	__uint(max_entries, 8192);
} sluice_sys_rate_v1 SEC(".maps");

/* A user string read once per syscall: key.str is followed by one more
 * byte so the read takes SYS_STR_MAX bytes. */
struct sys_str {
	struct sys_str_key key;
	char  tail;
	__u8  pad[3];
};

/* One syscall's evaluation state. */
struct sys_ctx {
	__s64 ret;
	__u64 cand;		/* slots left to try */
	__u64 decided;		/* groups that matched */
	__u64 self, parent;	/* classes, once cls is set */
	__u32 nr, tgid, netns;
	__u8  exit;
	__u8  read;		/* string arguments read (scratch len/str) */
	__u8  cls;
	__u8  pad;
};

/* Per CPU, per syscall (the programs and callbacks find it there): the
 * evaluation state, the event, the arguments, and each string argument read at
 * most once (len: bpf_probe_read_user_str's result, valid when the
 * syscall's read mask has the argument's bit). */
struct sys_scratch {
	struct sys_ctx c;
	struct process_syscall ev;	/* built here, then copied to the ring */
	__u64 args[SYS_STR_ARGS];
	__s32 len[SYS_STR_ARGS];
	struct sys_str str[SYS_STR_ARGS];
	struct sys_str_key rev;	/* a string reversed (Postfix) */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct sys_scratch);
	__uint(max_entries, 1);
} sluice_sys_scratch SEC(".maps");

#endif /* SLUICE_SYSCALL_TYPES_H */
