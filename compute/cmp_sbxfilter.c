/* cmp_sbxfilter.c: the seccomp filter of the python/r sandbox.
 *
 * A classic BPF program, handed to bubblewrap (--seccomp FD), which
 * installs it just before it executes the interpreter, after it built the
 * namespaces (so its own mount and socket calls are not affected). The
 * namespaces and the unprivileged uid are the walls; this filter removes
 * kernel surface they leave:
 *  - any ABI but the native one (i386 int 0x80 and x32 calls on x86_64:
 *    a filter written for one syscall table does not hold for another):
 *    the process is killed;
 *  - socket() for every family but AF_UNIX: bwrap brings up a loopback
 *    interface in the new network namespace, so without this a script
 *    could still listen and connect on 127.0.0.1 inside; with it there is
 *    no network at all (EPERM for AF_INET, AF_INET6, AF_NETLINK, AF_PACKET,
 *    ...). AF_UNIX stays because libraries use socketpair() for their own
 *    threads, and there is no unix socket of the host in the sandbox's
 *    view;
 *  - calls that give a new way into the kernel or another process:
 *    ptrace and process_vm_*, the mount family, keyctl/add_key/
 *    request_key, bpf, perf_event_open, userfaultfd, io_uring (whose
 *    operations, socket creation included, are not seen by seccomp),
 *    kexec and module loading, open_by_handle_at: EPERM.
 * On aarch64 the program only checks the ABI (AUDIT_ARCH_AARCH64): the
 * list above is written and tested for x86_64 only (docs/security.md).
 * Other architectures have no filter and the sandbox is unavailable. */
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "cmp_sandbox_int.h"

static void emit(dcr_buf *prog, uint16_t code, uint8_t jt, uint8_t jf, uint32_t k)
{
	struct sock_filter f = {code, jt, jf, k};

	dcr_buf_append(prog, &f, sizeof f);
}

#if defined(__x86_64__)

#define X32_SYSCALL_BIT 0x40000000u

static const int refused[] = {
    __NR_ptrace,          __NR_process_vm_readv, __NR_process_vm_writev,
    __NR_mount,           __NR_umount2,          __NR_pivot_root,
    __NR_open_tree,       __NR_move_mount,       __NR_fsopen,
    __NR_fsconfig,        __NR_fsmount,          __NR_fspick,
    __NR_keyctl,          __NR_add_key,          __NR_request_key,
    __NR_bpf,             __NR_perf_event_open,  __NR_userfaultfd,
    __NR_io_uring_setup,  __NR_io_uring_enter,   __NR_io_uring_register,
    __NR_kexec_load,      __NR_kexec_file_load,  __NR_init_module,
    __NR_finit_module,    __NR_delete_module,    __NR_open_by_handle_at,
#ifdef __NR_mount_setattr
    __NR_mount_setattr,
#endif
};

int cmp__sandbox_filter(dcr_buf *prog, dcr_err *err)
{
	size_t n = sizeof refused / sizeof refused[0], i;
	const uint32_t kill = SECCOMP_RET_KILL_PROCESS;
	const uint32_t eperm = SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA);

	(void)err;
	DCR_ASSERT(n < 200); /* jump offsets fit in 8 bits */
	/* 0: the ABI */
	emit(prog, BPF_LD | BPF_W | BPF_ABS, 0, 0, offsetof(struct seccomp_data, arch));
	emit(prog, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, AUDIT_ARCH_X86_64);
	emit(prog, BPF_RET | BPF_K, 0, 0, kill);
	emit(prog, BPF_LD | BPF_W | BPF_ABS, 0, 0, offsetof(struct seccomp_data, nr));
	emit(prog, BPF_JMP | BPF_JGE | BPF_K, 0, 1, X32_SYSCALL_BIT);
	emit(prog, BPF_RET | BPF_K, 0, 0, kill);
	/* the refused calls: each "nr == x ? jump to the EPERM return" */
	for (i = 0; i < n; i++)
		emit(prog, BPF_JMP | BPF_JEQ | BPF_K, (uint8_t)(n - i + 4), 0, (uint32_t)refused[i]);
	/* socket(): only AF_UNIX (the low 32 bits of the first argument: the
	 * kernel reads it as an int) */
	emit(prog, BPF_JMP | BPF_JEQ | BPF_K, 0, 3, __NR_socket);
	emit(prog, BPF_LD | BPF_W | BPF_ABS, 0, 0, offsetof(struct seccomp_data, args[0]));
	emit(prog, BPF_JMP | BPF_JEQ | BPF_K, 0, 2, AF_UNIX);
	emit(prog, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW);
	emit(prog, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW);
	emit(prog, BPF_RET | BPF_K, 0, 0, eperm);
	return 0;
}

#elif defined(__aarch64__)

int cmp__sandbox_filter(dcr_buf *prog, dcr_err *err)
{
	(void)err;
	emit(prog, BPF_LD | BPF_W | BPF_ABS, 0, 0, offsetof(struct seccomp_data, arch));
	emit(prog, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, AUDIT_ARCH_AARCH64);
	emit(prog, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_KILL_PROCESS);
	emit(prog, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW);
	return 0;
}

#else

int cmp__sandbox_filter(dcr_buf *prog, dcr_err *err)
{
	(void)prog;
	return dcr_err_set(err, DCR_EUNAVAIL,
	                   "the sandbox has no seccomp filter for this architecture "
	                   "(x86_64 and aarch64 only)");
}

#endif
