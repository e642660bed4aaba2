/* cmp_sandbox_int.h: internals of the sandbox (cmp_sandbox.c and its
 * seccomp filter, cmp_sbxfilter.c). Nothing outside compute/ includes it. */
#ifndef DCR_CMP_SANDBOX_INT_H
#define DCR_CMP_SANDBOX_INT_H

#include "compute_sandbox.h"

/* Appends to prog the classic BPF program (an array of struct
 * sock_filter, as bwrap --seccomp reads it) that the script runs under:
 * on x86_64 it kills any call through another ABI (i386, x32), refuses
 * socket() for every family but AF_UNIX and refuses ptrace, mount and
 * the other calls listed in cmp_sbxfilter.c with EPERM; on aarch64 it
 * only checks the ABI (see the file comment). Returns 0, or DCR_EUNAVAIL
 * on an architecture it does not know. */
int cmp__sandbox_filter(dcr_buf *prog, dcr_err *err);

#endif
