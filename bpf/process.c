// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Process sensor: BTF raw tracepoints only (no kprobes, fentry or LSM), so it
 * runs on kernels without them.
 *
 * tp_btf/sched_process_exec   the new image: binary, argv, cwd, credentials,
 *                              namespaces, cgroup, parent.
 * tp_btf/sched_process_exit   once per thread group, when its last thread
 *                              exits: exit status and signal.
 * tp_btf/sched_process_fork   a new process (not a thread).
 * tp_btf/sys_enter, sys_exit   syscall rules of tracing policies
 *                              (lib/syscall_rules.h), attached only while
 *                              some rule of the hook exists.
 * tp_btf/inet_sock_set_state  TCP connect: SYN_SENT (process context) records
 *                              the process on the socket; ESTABLISHED emits
 *                              the connection, SYN_SENT -> CLOSE its failure.
 * iter/task                    processes already running, once at start.
 *
 * The exec, fork and exit programs also run the exec rules of tracing
 * policies (lib/process_rules.h): here rather than in programs of their own
 * on the same tracepoints, so an exec pays no second program call and,
 * without rules, one array lookup. They keep the binary classes of the
 * syscall and connect rules too (lib/process_class.h).
 *
 * Kernel threads are left out here, before ring space is reserved. Events
 * that find no space are counted in sluice_process_lost_v1.
 */
#include "lib/process_task.h"
#include "lib/process_rules.h"
#include "lib/syscall_rules.h"
#include "lib/sock.h"
#include <bpf/bpf_tracing.h>

#define TCP_ESTABLISHED	1
#define TCP_SYN_SENT	2
#define TCP_CLOSE	7

char __license[] SEC("license") = "Dual BSD/GPL";

const struct process_exec *unused_process_exec __attribute__((unused));
const struct process_exit *unused_process_exit __attribute__((unused));
const struct process_fork *unused_process_fork __attribute__((unused));
const struct process_connect *unused_process_connect __attribute__((unused));
const enum process_event_type *unused_process_event_type __attribute__((unused));
const enum process_flag *unused_process_flag __attribute__((unused));
const struct process_enforce *unused_process_enforce __attribute__((unused));
const enum exec_action *unused_exec_action __attribute__((unused));
const enum exec_slot_flag *unused_exec_slot_flag __attribute__((unused));
const enum exec_config_flag *unused_exec_config_flag __attribute__((unused));
const struct process_syscall *unused_process_syscall __attribute__((unused));
const enum sys_source *unused_sys_source __attribute__((unused));
const enum sys_value_flag *unused_sys_value_flag __attribute__((unused));
const enum sys_op *unused_sys_op __attribute__((unused));
const enum sys_slot_flag *unused_sys_slot_flag __attribute__((unused));
const enum sys_ns_kind *unused_sys_ns_kind __attribute__((unused));
const enum sys_cap_set *unused_sys_cap_set __attribute__((unused));
const enum sys_capture_flag *unused_sys_capture_flag __attribute__((unused));
const enum class_config_flag *unused_class_config_flag __attribute__((unused));

/* Where an exec event is built (too big for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct process_exec);
	__uint(max_entries, 1);
} sluice_process_scratch SEC(".maps");

/* The process that put a TCP socket in SYN_SENT. */
struct process_sk {
	struct process_key key;
	__u32 pid;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct process_sk);
} sluice_process_sk_v1 SEC(".maps");

static __always_inline int process_kthread(struct task_struct *t)
{
	return t->flags & PF_KTHREAD;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(trace_exec, struct task_struct *p, int old_pid, struct linux_binprm *bprm)
{
	__u32 zero = 0, size;
	struct process_exec *e;

	if (process_kthread(p))
		return 0;
	e = bpf_map_lookup_elem(&sluice_process_scratch, &zero);
	if (!e)
		return 0;
	process_hdr_fill(&e->hdr, PROCESS_EXEC, p);
	process_exec_task(e, p);
	size = process_exec_data(e, p, BPF_CORE_READ(bprm, filename));
	size = (size & (PROCESS_DATA_MAX - 1)) + __builtin_offsetof(struct process_exec, data);
	if (bpf_ringbuf_output(&sluice_process_events_v1, e, size, process_wakeup()))
		process_lost();
	/* After the exec event, so a reader knows the process first. */
	exec_rules(p, BPF_CORE_READ(bprm, filename));
	class_exec(p, BPF_CORE_READ(bprm, filename));
	return 0;
}

/* The end of p's thread group: its event, and what the rules kept of it. */
static __always_inline void process_exit_emit(struct task_struct *p)
{
	struct process_exit *e;

	e = bpf_ringbuf_reserve(&sluice_process_events_v1, sizeof(*e), 0);
	if (e) {
		process_hdr_fill(&e->hdr, PROCESS_EXIT, p);
		e->exit_code = p->exit_code;
		e->pad = 0;
		bpf_ringbuf_submit(e, process_wakeup());
	} else {
		process_lost();
	}
	exec_rules_exit(p);
	class_exit(p);
	sys_rules_exit(p);
}

/* Since 6.16 the tracepoint says whether this thread was the group's last. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(trace_exit, struct task_struct *p, _Bool group_dead)
{
	if (group_dead && !process_kthread(p))
		process_exit_emit(p);
	return 0;
}

/* Older kernels: the group is dead when no thread is left alive (do_exit
 * decrements signal->live before the tracepoint). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(trace_exit_live, struct task_struct *p)
{
	if (p->signal->live.counter == 0 && !process_kthread(p))
		process_exit_emit(p);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(trace_fork, struct task_struct *parent, struct task_struct *child)
{
	struct process_fork *e;

	if (child->pid != child->tgid || process_kthread(child))
		return 0; /* a thread, or a kernel thread */
	exec_rules_fork(parent, child);
	class_fork(parent, child);
	sys_rules_fork(parent, child);
	e = bpf_ringbuf_reserve(&sluice_process_events_v1, sizeof(*e), 0);
	if (!e) {
		process_lost();
		return 0;
	}
	process_hdr_fill(&e->hdr, PROCESS_FORK, child);
	process_key_of(child->real_parent, &e->parent);
	bpf_ringbuf_submit(e, process_wakeup());
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(trace_sys_enter, struct pt_regs *regs, long id)
{
	syscall_rules(regs, id, 0, 0);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(trace_sys_exit, struct pt_regs *regs, long ret)
{
	syscall_rules(regs, regs->orig_ax, ret, 1);
	return 0;
}

/* Emits the connection of sk for the process recorded at SYN_SENT. */
static __always_inline void process_tcp_emit(struct sock *sk, struct process_sk *ps, __u8 flags)
{
	struct process_connect *e;
	struct sock4_rev_nat_key rkey = {};
	struct sock4_rev_nat_val *rev;

	e = bpf_ringbuf_reserve(&sluice_process_events_v1, sizeof(*e), 0);
	if (!e) {
		process_lost();
		return;
	}
	e->hdr.type = PROCESS_CONNECT;
	e->hdr.flags = flags;
	e->hdr.pad = 0;
	e->hdr.pid = ps->pid;
	e->hdr.ktime = bpf_ktime_get_ns();
	e->hdr.key = ps->key;
	e->proto = IPPROTO_TCP;
	e->pad8 = 0;
	e->family = AF_INET;
	e->saddr = sk->__sk_common.skc_rcv_saddr;
	e->sport = bpf_htons(sk->__sk_common.skc_num);
	e->daddr = sk->__sk_common.skc_daddr;
	e->dport = sk->__sk_common.skc_dport;
	e->orig_daddr = 0;
	e->orig_dport = 0;
	e->pad16 = 0;
	e->net_ns = sk->__sk_common.skc_net.net->ns.inum;
	e->pad32 = 0;
	e->cookie = bpf_get_socket_cookie(sk);
	rkey.cookie = e->cookie;
	rkey.address = e->daddr;
	rkey.port = e->dport;
	rev = bpf_map_lookup_elem(&sluice_sock4_rev_nat_v1, &rkey);
	if (rev) {
		e->orig_daddr = rev->address;
		e->orig_dport = rev->port;
	}
	bpf_ringbuf_submit(e, process_wakeup());
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(trace_tcp_state, struct sock *sk, int oldstate, int newstate)
{
	struct process_sk *ps;

	if (sk->sk_protocol != IPPROTO_TCP || sk->__sk_common.skc_family != AF_INET)
		return 0;
	if (newstate == TCP_SYN_SENT) {
		/* connect(): process context. */
		struct task_struct *t = bpf_get_current_task_btf();

		if (process_kthread(t))
			return 0;
		ps = bpf_sk_storage_get(&sluice_process_sk_v1, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!ps)
			return 0;
		process_key_of(t, &ps->key);
		ps->pid = t->pid;
		return 0;
	}
	if (oldstate != TCP_SYN_SENT || (newstate != TCP_ESTABLISHED && newstate != TCP_CLOSE))
		return 0;
	ps = bpf_sk_storage_get(&sluice_process_sk_v1, sk, 0, 0);
	if (ps)
		process_tcp_emit(sk, ps, newstate == TCP_CLOSE ? PROCESS_CONNECT_FAILED : 0);
	return 0;
}

/* Processes running when the sensor starts: the fixed part of an exec event
 * per thread-group leader (the reader adds binary, argv and cwd from /proc). */
SEC("iter/task")
int iter_tasks(struct bpf_iter__task *ctx)
{
	struct task_struct *t = ctx->task;
	struct process_exec *e;
	__u32 zero = 0;

	if (!t || t->pid != t->tgid || process_kthread(t))
		return 0;
	e = bpf_map_lookup_elem(&sluice_process_scratch, &zero);
	if (!e)
		return 0;
	process_hdr_fill(&e->hdr, PROCESS_EXEC, t);
	process_exec_task(e, t);
	bpf_seq_write(ctx->meta->seq, e, __builtin_offsetof(struct process_exec, data));
	return 0;
}
