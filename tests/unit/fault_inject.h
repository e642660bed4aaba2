/* fault_inject.h: I/O fault injection for tests (tests/README.md, "Fault
 * injection"). Header-only: include it in exactly one test executable.
 *
 * The executable itself defines write, pwrite, writev, pwritev, fsync, fdatasync, msync, rename,
 * renameat, open, openat and mkdir (under their link names, so header redirections such as pwrite
 * -> pwrite64 do not matter). A dynamic executable's symbols come first in symbol lookup, so these
 * definitions receive the calls of the statically linked dcr libraries (blob store, key files) and
 * of liblmdb.so alike; each forwards to the next definition (libc, or the sanitizer's interceptor)
 * found with dlsym(RTLD_NEXT). Nothing of this is in dcrd or in any library: the production binary
 * carries no hook.
 *
 * Only calls of the process fi->pid on files under fi->dir count, and only
 * while armed. Every such call of a selected class is one "I/O point",
 * numbered from 1; point fi->target fails (or, FI_STICKY, that point and
 * every later one fails, like a full disk):
 *   FI_EIO, FI_ENOSPC, FI_EINVAL
 *                      the call does nothing and returns -1 with that errno
 *                      (EINVAL: what a direct write the file system cannot
 *                      do gets);
 *   FI_SHORT           a write writes half its bytes and returns that count.
 *   FI_DELAY           a write of at least fi->delay_min bytes waits
 *                      fi->delay_ms first, then is done whole (a slow disk,
 *                      to hold a background job at its write).
 * The state lives in a shared anonymous mapping, so a parent can arm a
 * forked daemon and read its counts.
 *
 * With fi->no_sync (the default), a sync under fi->dir that does not fail
 * returns at once without reaching the disk, and O_SYNC/O_DSYNC are
 * dropped from opens there: the sweeps restart processes, they do not cut
 * the power, and thousands of real fsyncs would make them slow. */
#ifndef FAULT_INJECT_H
#define FAULT_INJECT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { FI_WRITE = 1, FI_SYNC = 2, FI_RENAME = 4, FI_CREATE = 8, FI_ALL = 15 };
enum { FI_EIO, FI_ENOSPC, FI_SHORT, FI_DELAY, FI_EINVAL };

typedef struct fi_state {
	char dir[256]; /* prefix of the paths that count */
	size_t dir_n;
	pid_t pid; /* the process whose calls count */
	int armed;
	unsigned classes; /* FI_* mask of the calls that count */
	int kind;         /* FI_EIO, FI_ENOSPC, FI_SHORT, FI_DELAY, FI_EINVAL */
	long delay_ms;    /* FI_DELAY: the wait, */
	size_t delay_min; /* for writes of this many bytes or more */
	int sticky;       /* fail target and every later point */
	long target;      /* 0: count only */
	long count;       /* points seen while armed */
	long fired;       /* failures injected */
	int no_sync;      /* syncs under dir succeed without syncing */
	char what[320];   /* the first injected point: "fsync .../blobs/ab" */
} fi_state;

static fi_state *fi;

/* Maps the shared state (once, before any fork). */
__attribute__((unused)) static void fi_setup(const char *dir)
{
	void *p = mmap(NULL, sizeof *fi, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("fi_setup: mmap");
		_exit(1);
	}
	fi = p;
	memset(fi, 0, sizeof *fi);
	snprintf(fi->dir, sizeof fi->dir, "%s/", dir);
	fi->dir_n = strlen(fi->dir);
	fi->no_sync = 1;
}

/* Arms the hook for process pid: point target (0: none) fails. */
__attribute__((unused)) static void fi_arm(pid_t pid, unsigned classes, int kind, int sticky,
                                           long target)
{
	fi->pid = pid;
	fi->classes = classes;
	fi->kind = kind;
	fi->sticky = sticky;
	fi->target = target;
	__atomic_store_n(&fi->count, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&fi->fired, 0, __ATOMIC_SEQ_CST);
	fi->what[0] = 0;
	__atomic_store_n(&fi->armed, 1, __ATOMIC_SEQ_CST);
}

__attribute__((unused)) static void fi_disarm(void)
{
	if (fi)
		__atomic_store_n(&fi->armed, 0, __ATOMIC_SEQ_CST);
}

static void *fi_next(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	if (!f) {
		static const char msg[] = "fault_inject: dlsym failed\n";
		ssize_t (*w)(int, const void *, size_t) =
		    (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
		if (w && w(2, msg, sizeof msg - 1) < 0)
			_exit(99);
		_exit(99);
	}
	return f;
}

#define FI_REAL(type, name)                                                                        \
	static __typeof__(type) real_;                                                             \
	__typeof__(type) real = __atomic_load_n(&real_, __ATOMIC_ACQUIRE);                         \
	if (!real) {                                                                               \
		real = (__typeof__(type))fi_next(name);                                            \
		__atomic_store_n(&real_, real, __ATOMIC_RELEASE);                                  \
	}

static bool fi_path_counts(const char *path)
{
	return fi && path && strncmp(path, fi->dir, fi->dir_n) == 0;
}

static bool fi_fd_counts(int fd, char *path, size_t cap)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	n = readlink(link, path, cap - 1);
	if (n < 0)
		return false;
	path[n] = 0;
	return fi_path_counts(path);
}

/* Whether this call (class cls, on path) is the point to fail. */
static bool fi_hit(unsigned cls, const char *op, const char *path)
{
	long k;

	if (!fi || !__atomic_load_n(&fi->armed, __ATOMIC_SEQ_CST) || fi->pid != getpid() ||
	    !(fi->classes & cls))
		return false;
	k = __atomic_add_fetch(&fi->count, 1, __ATOMIC_SEQ_CST);
	if (fi->target <= 0 || k < fi->target || (k > fi->target && !fi->sticky))
		return false;
	if (__atomic_add_fetch(&fi->fired, 1, __ATOMIC_SEQ_CST) == 1)
		snprintf(fi->what, sizeof fi->what, "point %ld: %s %s", k, op,
		         path + fi->dir_n - 1 /* keep the '/' */);
	return true;
}

static bool fi_fd_hit(unsigned cls, const char *op, int fd)
{
	char path[512];

	if (!fi || !__atomic_load_n(&fi->armed, __ATOMIC_SEQ_CST) || fi->pid != getpid() ||
	    !(fi->classes & cls))
		return false;
	return fi_fd_counts(fd, path, sizeof path) && fi_hit(cls, op, path);
}

static int fi_errno(void)
{
	return fi->kind == FI_ENOSPC ? ENOSPC : fi->kind == FI_EINVAL ? EINVAL : EIO;
}

/* The fault for a write of n bytes: -1 (errno set), or the short count to
 * really write (kind FI_SHORT, n > 1). */
static ssize_t fi_write_fault(size_t n)
{
	if (fi->kind == FI_DELAY) {
		if (n >= fi->delay_min)
			usleep((useconds_t)(fi->delay_ms * 1000));
		return (ssize_t)n;
	}
	if (fi->kind == FI_SHORT && n > 1)
		return (ssize_t)(n / 2);
	errno = fi_errno();
	return -1;
}

/* ---- the interposed calls -------------------------------------------------- */

ssize_t fi_write(int fd, const void *p, size_t n) __asm__("write");
ssize_t fi_write(int fd, const void *p, size_t n)
{
	FI_REAL(ssize_t(*)(int, const void *, size_t), "write");
	if (fi_fd_hit(FI_WRITE, "write", fd)) {
		ssize_t k = fi_write_fault(n);
		if (k < 0)
			return -1;
		n = (size_t)k;
	}
	return real(fd, p, n);
}

#define FI_PWRITE(cname, sym)                                                                      \
	ssize_t cname(int fd, const void *p, size_t n, off_t off) __asm__(sym);                    \
	ssize_t cname(int fd, const void *p, size_t n, off_t off)                                  \
	{                                                                                          \
		FI_REAL(ssize_t (*)(int, const void *, size_t, off_t), sym);                       \
		if (fi_fd_hit(FI_WRITE, "pwrite", fd)) {                                           \
			ssize_t k = fi_write_fault(n);                                             \
			if (k < 0)                                                                 \
				return -1;                                                         \
			n = (size_t)k;                                                             \
		}                                                                                  \
		return real(fd, p, n, off);                                                        \
	}
FI_PWRITE(fi_pwrite, "pwrite")
FI_PWRITE(fi_pwrite64, "pwrite64")

/* Vectored writes: a short write keeps the first iovec only (or half of
 * it when it is the only one). */
static int fi_iov_fault(const struct iovec *iov, int cnt, struct iovec *one)
{
	size_t total = 0;

	for (int i = 0; i < cnt; i++)
		total += iov[i].iov_len;
	if (fi->kind == FI_DELAY) {
		(void)fi_write_fault(total);
		return 0; /* all of it */
	}
	if (fi->kind != FI_SHORT || total < 2) {
		errno = fi_errno();
		return -1;
	}
	*one = iov[0];
	if (cnt == 1 || one->iov_len == total)
		one->iov_len /= 2;
	return 1;
}

ssize_t fi_writev(int fd, const struct iovec *iov, int cnt) __asm__("writev");
ssize_t fi_writev(int fd, const struct iovec *iov, int cnt)
{
	struct iovec one;

	FI_REAL(ssize_t(*)(int, const struct iovec *, int), "writev");
	if (fi_fd_hit(FI_WRITE, "writev", fd)) {
		int k_ = fi_iov_fault(iov, cnt, &one);
		if (k_ < 0)
			return -1;
		if (k_ > 0)
			return real(fd, &one, 1);
	}
	return real(fd, iov, cnt);
}

#define FI_PWRITEV(cname, sym)                                                                     \
	ssize_t cname(int fd, const struct iovec *iov, int cnt, off_t off) __asm__(sym);           \
	ssize_t cname(int fd, const struct iovec *iov, int cnt, off_t off)                         \
	{                                                                                          \
		struct iovec one;                                                                  \
		FI_REAL(ssize_t (*)(int, const struct iovec *, int, off_t), sym);                  \
		if (fi_fd_hit(FI_WRITE, "pwritev", fd)) {                                          \
			int k_ = fi_iov_fault(iov, cnt, &one);                                     \
			if (k_ < 0)                                                                \
				return -1;                                                         \
			if (k_ > 0)                                                                \
				return real(fd, &one, 1, off);                                     \
		}                                                                                  \
		return real(fd, iov, cnt, off);                                                    \
	}
FI_PWRITEV(fi_pwritev, "pwritev")
FI_PWRITEV(fi_pwritev64, "pwritev64")

#define FI_SYNC_FN(cname, sym)                                                                     \
	int cname(int fd) __asm__(sym);                                                            \
	int cname(int fd)                                                                          \
	{                                                                                          \
		char path_[512];                                                                   \
		FI_REAL(int (*)(int), sym);                                                        \
		if (fi_fd_hit(FI_SYNC, sym, fd)) {                                                 \
			errno = fi_errno();                                                        \
			return -1;                                                                 \
		}                                                                                  \
		if (fi && fi->no_sync && fi_fd_counts(fd, path_, sizeof path_))                    \
			return 0;                                                                  \
		return real(fd);                                                                   \
	}
FI_SYNC_FN(fi_fsync, "fsync")
FI_SYNC_FN(fi_fdatasync, "fdatasync")

/* msync has no file descriptor: it counts whatever it maps (dcr opens LMDB
 * without MDB_WRITEMAP, so LMDB never calls it). */
int fi_msync(void *addr, size_t len, int flags) __asm__("msync");
int fi_msync(void *addr, size_t len, int flags)
{
	FI_REAL(int (*)(void *, size_t, int), "msync");
	if (fi && __atomic_load_n(&fi->armed, __ATOMIC_SEQ_CST) && fi->pid == getpid() &&
	    fi_hit(FI_SYNC, "msync", fi->dir)) {
		errno = fi_errno();
		return -1;
	}
	return real(addr, len, flags);
}

int fi_rename(const char *from, const char *to) __asm__("rename");
int fi_rename(const char *from, const char *to)
{
	FI_REAL(int (*)(const char *, const char *), "rename");
	if (fi_path_counts(to) && fi_hit(FI_RENAME, "rename", to)) {
		errno = fi_errno();
		return -1;
	}
	return real(from, to);
}

int fi_renameat(int fd1, const char *from, int fd2, const char *to) __asm__("renameat");
int fi_renameat(int fd1, const char *from, int fd2, const char *to)
{
	FI_REAL(int (*)(int, const char *, int, const char *), "renameat");
	if (fi_path_counts(to) && fi_hit(FI_RENAME, "renameat", to)) {
		errno = fi_errno();
		return -1;
	}
	return real(fd1, from, fd2, to);
}

/* Creating a file or a directory needs space too (ENOSPC, EIO). */
#define FI_OPEN(cname, sym)                                                                        \
	int cname(const char *path, int flags, ...) __asm__(sym);                                  \
	int cname(const char *path, int flags, ...)                                                \
	{                                                                                          \
		mode_t mode = 0;                                                                   \
		FI_REAL(int (*)(const char *, int, ...), sym);                                     \
		if (flags & (O_CREAT | O_TMPFILE)) {                                               \
			va_list ap;                                                                \
			va_start(ap, flags);                                                       \
			mode = (mode_t)va_arg(ap, int);                                            \
			va_end(ap);                                                                \
			if (fi_path_counts(path) && access(path, F_OK) < 0 &&                      \
			    fi_hit(FI_CREATE, "create", path)) {                                   \
				errno = fi_errno();                                                \
				return -1;                                                         \
			}                                                                          \
		}                                                                                  \
		if (fi && fi->no_sync && fi_path_counts(path))                                     \
			flags &= ~(O_SYNC | O_DSYNC);                                              \
		return real(path, flags, mode);                                                    \
	}
FI_OPEN(fi_open, "open")
FI_OPEN(fi_open64, "open64")

#define FI_OPENAT(cname, sym)                                                                      \
	int cname(int dfd, const char *path, int flags, ...) __asm__(sym);                         \
	int cname(int dfd, const char *path, int flags, ...)                                       \
	{                                                                                          \
		mode_t mode = 0;                                                                   \
		FI_REAL(int (*)(int, const char *, int, ...), sym);                                \
		if (flags & (O_CREAT | O_TMPFILE)) {                                               \
			va_list ap;                                                                \
			va_start(ap, flags);                                                       \
			mode = (mode_t)va_arg(ap, int);                                            \
			va_end(ap);                                                                \
			if (fi_path_counts(path) && access(path, F_OK) < 0 &&                      \
			    fi_hit(FI_CREATE, "create", path)) {                                   \
				errno = fi_errno();                                                \
				return -1;                                                         \
			}                                                                          \
		}                                                                                  \
		if (fi && fi->no_sync && fi_path_counts(path))                                     \
			flags &= ~(O_SYNC | O_DSYNC);                                              \
		return real(dfd, path, flags, mode);                                               \
	}
FI_OPENAT(fi_openat, "openat")
FI_OPENAT(fi_openat64, "openat64")

int fi_mkdir(const char *path, mode_t mode) __asm__("mkdir");
int fi_mkdir(const char *path, mode_t mode)
{
	FI_REAL(int (*)(const char *, mode_t), "mkdir");
	if (fi_path_counts(path) && access(path, F_OK) < 0 && fi_hit(FI_CREATE, "mkdir", path)) {
		errno = fi_errno();
		return -1;
	}
	return real(path, mode);
}

#endif
