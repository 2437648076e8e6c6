/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* What the process sensor reads of a task: credentials, namespaces, cgroup,
 * parent (the fixed part of an exec event, also written by the iter/task
 * program for processes already running), and the variable part of an exec
 * event: cwd, filename, arguments. */
#ifndef SLUICE_PROCESS_TASK_H
#define SLUICE_PROCESS_TASK_H

#include <bpf/bpf_core_read.h>
#include "process.h"

#define PROCESS_CWD_DEPTH	64	/* path components and mount crossings */

/* Inode of the pid namespace t sees itself in: its pid's level-th upid. */
static __always_inline __u32 task_pid_ns(struct task_struct *t)
{
	/* Read as a number: a BTF pointer takes no variable offset. */
	struct pid *p = BPF_CORE_READ(t, thread_pid);
	unsigned int level = BPF_CORE_READ(p, level);
	struct upid up = {};

	bpf_probe_read_kernel(&up, sizeof(up), &p->numbers[level & 31]);
	return BPF_CORE_READ(up.ns, ns.inum);
}

/* Fills everything of an exec event but its header and variable part. */
static __always_inline void process_exec_task(struct process_exec *e, struct task_struct *t)
{
	const struct cred *c = t->real_cred;
	struct nsproxy *nsp = t->nsproxy;

	process_key_of(t->real_parent, &e->parent);
	e->uid = c->uid.val;
	e->euid = c->euid.val;
	e->gid = c->gid.val;
	e->auid = t->loginuid.val;
	e->cap_effective = c->cap_effective.val;
	e->cap_permitted = c->cap_permitted.val;
	e->pid_ns = task_pid_ns(t);
	e->mnt_ns = nsp ? nsp->mnt_ns->ns.inum : 0;
	e->net_ns = nsp ? nsp->net_ns->ns.inum : 0;
	e->cgroup_id = t->cgroups->dfl_cgrp->kn->id;
	e->cwd_len = 0;
	e->filename_len = 0;
	e->args_len = 0;
	e->pad16 = 0;
	e->pad32 = 0;
}

/* Writes the components of t's working directory into buf, leaf first,
 * each NUL-terminated, walking d_parent and crossing mounts up to t's root
 * (fs->root). Returns the bytes written; sets PROCESS_CWD_TRUNC in *flags
 * when it stopped before the root. */
static __always_inline __u32 process_cwd(struct task_struct *t, char *buf, __u8 *flags)
{
	struct fs_struct *fs = t->fs;
	struct dentry *root_d = BPF_CORE_READ(fs, root.dentry);
	struct vfsmount *root_m = BPF_CORE_READ(fs, root.mnt);
	struct dentry *d = BPF_CORE_READ(fs, pwd.dentry);
	struct vfsmount *vm = BPF_CORE_READ(fs, pwd.mnt);
	struct mount *m = container_of(vm, struct mount, mnt);
	__u32 pos = 0;

	for (int i = 0; i < PROCESS_CWD_DEPTH; i++) {
		if (d == root_d && vm == root_m)
			return pos;
		if (d == BPF_CORE_READ(vm, mnt_root)) {
			struct mount *parent = BPF_CORE_READ(m, mnt_parent);

			if (parent == m)
				return pos; /* top of the mount tree */
			d = BPF_CORE_READ(m, mnt_mountpoint);
			m = parent;
			vm = &parent->mnt;
			continue;
		}
		struct dentry *up = BPF_CORE_READ(d, d_parent);

		if (up == d || pos >= PROCESS_CWD_MAX)
			break;
		long n = bpf_probe_read_kernel_str(&buf[pos & (PROCESS_CWD_MAX - 1)], PROCESS_NAME_MAX,
						   BPF_CORE_READ(d, d_name.name));
		if (n <= 0)
			break;
		pos += n;
		d = up;
	}
	*flags |= PROCESS_CWD_TRUNC;
	return pos;
}

/* Fills the variable part of an exec event (cwd, filename, argv) and
 * returns its size. */
static __always_inline __u32 process_exec_data(struct process_exec *e, struct task_struct *t, const char *filename)
{
	struct mm_struct *mm = t->mm;
	__u32 off, len;
	long n;

	e->cwd_len = process_cwd(t, e->data, &e->hdr.flags);
	off = e->cwd_len & 2047;
	n = bpf_probe_read_kernel_str(&e->data[off], PROCESS_FILENAME_MAX, filename);
	if (n < 0)
		n = 0;
	if (n >= PROCESS_FILENAME_MAX)
		e->hdr.flags |= PROCESS_FILENAME_TRUNC;
	e->filename_len = n;
	off = (off + (__u32)n) & 4095;

	unsigned long start = mm->arg_start, end = mm->arg_end;
	len = end > start ? end - start : 0;
	if (end - start > PROCESS_ARGS_MAX) {
		len = PROCESS_ARGS_MAX;
		e->hdr.flags |= PROCESS_ARGS_TRUNC;
	}
	if (len && bpf_probe_read_user(&e->data[off], len & (2 * PROCESS_ARGS_MAX - 1), (void *)start))
		len = 0;
	e->args_len = len;
	return off + len;
}

#endif /* SLUICE_PROCESS_TASK_H */
