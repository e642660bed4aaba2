/* cmp_sandbox.c: runs an untrusted python or R script in a sandbox.
 *
 * Two halves, one file, talking over one unix socket pair:
 *
 * The caller (cmp_sandbox_run, in multi-threaded dcrd) validates the
 * spec, posix_spawn()s spec->self_exe with CMP_SANDBOX_ARGV in its own
 * process group, streams the job to the child's stdin (a header of fixed
 * 64-bit fields, the script, then each input as path + size + bytes, a
 * path ending in '/' with size 0 being an empty directory to make:
 * inputs are never written to the host's disk) and reads the outcome back
 * from its stdout (code, message, measures, logs, files), bounded by the
 * limits. Cancel and a backstop past the wall-clock limit send SIGTERM to
 * the child, which kills the sandbox and answers; SIGKILL follows if it
 * does not answer within 2 s. The caller never forks.
 *
 * The child (cmp_sandbox_child_main, single-threaded) builds the sandbox:
 *  - its own mount namespace (unshare(CLONE_NEWNS) as root; as another
 *    user a user namespace too), with three size-limited tmpfs mounted
 *    over /tmp of that namespace only: in/ (the script and the inputs,
 *    written by the child, read-only to the script), out/ (the script's
 *    /output, owned by the sandbox uid, limited to output_bytes plus 1 MiB
 *    so that passing the limit is seen, never stored without bound) and
 *    tmp/ (the script's /tmp and /dev/shm, tmp_bytes);
 *  - a host uid of its own when dcrd runs as root: CMP_SANDBOX_UID_BASE +
 *    the child's pid. A pid is unique among live processes and the child
 *    lives until every process of its run is dead, so two runs never
 *    share a uid, with no allocation table and no lock. A uid of its own
 *    is what makes RLIMIT_NPROC count this run's processes only (it is
 *    counted per uid, and root is exempt), what lets the child kill every
 *    process of the run at the end (kill(-1) under that uid) and what
 *    keeps one run's processes from signalling another's. The range
 *    0x70000000 + [0, 2^22) holds no account on any ordinary system.
 *    Without root the child cannot switch: the runs share dcrd's uid, and
 *    RLIMIT_NPROC then counts all of that user's processes
 *    (docs/security.md);
 *  - a grandchild that starts a new session, drops to that uid with no
 *    supplementary groups, sets the rlimits (AS, CPU, NPROC, FSIZE,
 *    NOFILE, CORE=0), oom_score_adj 1000 (the OOM killer's first victims,
 *    not dcrd) and PR_SET_NO_NEW_PRIVS and executes bubblewrap, which
 *    unshares every namespace (user, pid, net, ipc, uts, cgroup), maps an
 *    unprivileged uid inside, forbids further user namespaces, drops every
 *    capability, binds a read-only /usr and /input, the writable /output
 *    and /tmp, remounts its root read-only and installs the seccomp filter
 *    (cmp_sbxfilter.c) before it executes the interpreter;
 *  - a watch loop (poll on the two log pipes and a signalfd, every 100 ms)
 *    that keeps the logs up to log_bytes each, sums the CPU time and the
 *    proportional resident memory (Pss) of the run's processes from /proc
 *    (RLIMIT_CPU and RLIMIT_AS are per process; the sums are the limits,
 *    the memory one sampled), notes the largest address space and process
 *    count seen, and enforces the wall-clock limit and SIGTERM (cancel);
 *  - the end: the bwrap process group and every process of the uid are
 *    killed, and since the child is a child subreaper every descendant,
 *    daemonised or not, is reparented to it and reaped before the outcome
 *    is written: when cmp_sandbox_run returns, nothing of the run is
 *    alive;
 *  - the collector (collect_*): walks out/ with fstatat(AT_SYMLINK_NOFOLLOW)
 *    and openat(O_NOFOLLOW|O_NOATIME), refuses symlinks, hardlinks
 *    (st_nlink > 1), FIFOs, devices, sockets and bad names, bounds depth,
 *    count and bytes, and sorts the files by name. Nothing of the run is
 *    alive while it reads, so nothing can change under it.
 *
 * Detecting which limit a failed run passed: the wall clock, the CPU sum
 * and cancel are the child's own decisions; RLIMIT_CPU and RLIMIT_FSIZE
 * show as the signal that killed the script; a full /output or /tmp is
 * seen with statvfs. RLIMIT_AS and RLIMIT_NPROC make a call fail instead
 * of killing, so the child names them when the script failed and either
 * the largest address space / process count it sampled came near the
 * limit or the end of stderr shows the runtime's out-of-memory / cannot
 * fork error. A script can make a failure look like one of those limits,
 * never the reverse of a verdict that matters: the run fails either way. */
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compute_int.h"
#include "cmp_sandbox_int.h"

extern char **environ;

#define SBX_BWRAP "/usr/bin/bwrap"
#define SBX_PYTHON "/usr/bin/python3"
#define SBX_RSCRIPT "/usr/bin/Rscript"
#define SBX_INNER_ID "1000"          /* uid and gid inside the sandbox */
#define SBX_ROOT "/tmp"               /* where the child mounts its tmpfs */
#define SBX_IN SBX_ROOT "/in"
#define SBX_OUT SBX_ROOT "/out"
#define SBX_TMP SBX_ROOT "/tmp"
#define SBX_MAGIC "DCRSBX01"
#define SBX_HEADER_FIELDS 13
#define SBX_TICK_MS 100u              /* child: watch loop */
#define SBX_POLL_MS 50u               /* caller: cancel is seen within this */
#define SBX_TERM_GRACE_MS 2000u       /* SIGTERM -> SIGKILL of the child */
#define SBX_OUT_SLACK (1024u * 1024)  /* out/ tmpfs beyond output_bytes */
#define SBX_FULL_BYTES (64u * 1024)   /* a tmpfs with less free is full */
#define SBX_IO_CHUNK (64u * 1024)
#define SBX_MSG_BYTES (DCR_ERR_MSG_BYTES - 1)
#define SBX_TAIL_BYTES 4096u          /* end of stderr kept for verdict() */

/* ---- small helpers ------------------------------------------------------ */

void cmp_sandbox_limits_default(cmp_sandbox_limits *l)
{
	if (!l->wall_ms)
		l->wall_ms = CMP_SANDBOX_WALL_MS_DEFAULT;
	if (!l->cpu_ms)
		l->cpu_ms = CMP_SANDBOX_CPU_MS_DEFAULT;
	if (!l->memory_bytes)
		l->memory_bytes = CMP_SANDBOX_MEMORY_BYTES_DEFAULT;
	if (!l->procs)
		l->procs = CMP_SANDBOX_PROCS_DEFAULT;
	if (!l->output_bytes)
		l->output_bytes = CMP_SANDBOX_OUTPUT_BYTES_DEFAULT;
	if (!l->output_files)
		l->output_files = CMP_SANDBOX_OUTPUT_FILES_DEFAULT;
	if (!l->output_depth)
		l->output_depth = CMP_SANDBOX_OUTPUT_DEPTH_DEFAULT;
	if (!l->tmp_bytes)
		l->tmp_bytes = CMP_SANDBOX_TMP_BYTES_DEFAULT;
	if (!l->log_bytes)
		l->log_bytes = CMP_SANDBOX_LOG_BYTES_DEFAULT;
}

void cmp_sandbox_out_init(cmp_sandbox_out *o)
{
	memset(o, 0, sizeof *o);
	dcr_buf_init(&o->out_log);
	dcr_buf_init(&o->err_log);
}

void cmp_sandbox_out_release(cmp_sandbox_out *o)
{
	size_t i;

	for (i = 0; i < o->nfiles; i++) {
		free(o->files[i].name);
		free(o->files[i].data);
	}
	free(o->files);
	dcr_buf_release(&o->out_log);
	dcr_buf_release(&o->err_log);
	cmp_sandbox_out_init(o);
}

/* One name of a path: not empty, not "." or "..", no '/', no control
 * character or DEL, no "..", at most CMP_SANDBOX_NAME_BYTES_MAX bytes.
 * Returns the rule broken, or NULL. */
static const char *name_rule(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return "an empty name";
	if (n > CMP_SANDBOX_NAME_BYTES_MAX)
		return "a name longer than 255 bytes";
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '/')
			return "a '/' in a name";
		if (c == '\n')
			return "a newline in a name";
		if (c < 0x20 || c == 0x7f)
			return "a control character in a name";
		if (c == '.' && i + 1 < n && s[i + 1] == '.')
			return "'..' in a name";
	}
	if (n == 1 && s[0] == '.')
		return "the name '.'";
	return NULL;
}

/* A relative '/'-separated path of valid names; its depth (names - 1). */
static const char *path_rule(const char *p, size_t n, unsigned *depth)
{
	size_t i = 0, j;
	const char *r;

	*depth = 0;
	if (n == 0 || n > CMP_SANDBOX_PATH_BYTES_MAX)
		return n ? "a path longer than 4096 bytes" : "an empty path";
	if (memchr(p, 0, n))
		return "a NUL byte in a path";
	for (;;) {
		for (j = i; j < n && p[j] != '/'; j++)
			;
		if ((r = name_rule(p + i, j - i)))
			return r;
		if (j == n)
			return NULL;
		(*depth)++;
		i = j + 1;
	}
}

/* An input path: a file, or with one trailing '/' an empty directory
 * (then its size must be 0). */
static const char *input_rule(const char *p, size_t n, uint64_t size)
{
	unsigned depth;

	if (n > 1 && p[n - 1] == '/') {
		if (size)
			return "a directory (trailing '/') with bytes";
		return path_rule(p, n - 1, &depth);
	}
	return path_rule(p, n, &depth);
}

/* ---- the wire between caller and child ------------------------------------ */

typedef struct rd {
	const uint8_t *p;
	size_t n, off;
	bool bad;
} rd;

static uint64_t rd_u64(rd *r)
{
	uint64_t v;

	if (r->bad || r->n - r->off < 8) {
		r->bad = true;
		return 0;
	}
	v = dcr_get_be64(r->p + r->off);
	r->off += 8;
	return v;
}

static const uint8_t *rd_bytes(rd *r, uint64_t len)
{
	const uint8_t *p;

	if (r->bad || r->n - r->off < len) {
		r->bad = true;
		return NULL;
	}
	p = r->p + r->off;
	r->off += (size_t)len;
	return p;
}

static void put_u64(dcr_buf *b, uint64_t v)
{
	uint8_t x[8];

	dcr_put_be64(x, v);
	dcr_buf_append(b, x, 8);
}

static void put_bytes(dcr_buf *b, const void *p, size_t n)
{
	put_u64(b, n);
	dcr_buf_append(b, p, n);
}

/* Reads exactly n bytes (blocking fd); 0, or -1 at end of file / error. */
static int read_full(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n) {
		ssize_t k = read(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;

	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* ---- the caller's half --------------------------------------------------- */

typedef struct caller {
	int fd;
	pid_t pid;
	const cmp_cancel *cancel;
	uint64_t deadline_ms; /* backstop: wall_ms + grace after the start */
	uint64_t term_ms;     /* when SIGTERM was sent, 0: not yet */
	int why;              /* DCR_ECANCELED / DCR_ETIMEOUT / 0 */
	bool killed;
} caller;

/* Asks the child to stop (SIGTERM), then forces it (SIGKILL to its
 * group) when it does not answer in time. */
static void caller_stop(caller *c, int why)
{
	uint64_t now = dcr_mono_ms();

	if (!c->why)
		c->why = why;
	if (!c->term_ms) {
		c->term_ms = now;
		kill(c->pid, SIGTERM);
	} else if (!c->killed && now - c->term_ms >= SBX_TERM_GRACE_MS) {
		c->killed = true;
		kill(-c->pid, SIGKILL);
	}
}

static void caller_tick(caller *c)
{
	if (cmp_cancel_fired(c->cancel))
		caller_stop(c, DCR_ECANCELED);
	else if (dcr_mono_ms() >= c->deadline_ms)
		caller_stop(c, DCR_ETIMEOUT);
	else if (c->term_ms)
		caller_stop(c, c->why);
}

/* Sends n bytes; 0, 1 when the child stopped reading (it answers with an
 * error: go and read it), or a negative code when the run was stopped. */
static int caller_send(caller *c, const void *buf, size_t n)
{
	const uint8_t *p = buf;

	while (n) {
		struct pollfd pfd = {c->fd, POLLOUT, 0};
		ssize_t k;

		caller_tick(c);
		if (c->why)
			return c->why;
		if (poll(&pfd, 1, SBX_POLL_MS) < 0 && errno != EINTR)
			return -errno;
		k = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return 1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int send_job(caller *c, const cmp_sandbox_spec *spec, const cmp_sandbox_limits *l,
                    uint64_t inputs_total, dcr_err *err)
{
	dcr_buf b;
	uint8_t *chunk = NULL;
	size_t i;
	int rc;

	dcr_buf_init(&b);
	dcr_buf_append(&b, SBX_MAGIC, 8);
	put_u64(&b, (uint64_t)spec->lang);
	put_u64(&b, l->wall_ms);
	put_u64(&b, l->cpu_ms);
	put_u64(&b, l->memory_bytes);
	put_u64(&b, l->procs);
	put_u64(&b, l->output_bytes);
	put_u64(&b, l->output_files);
	put_u64(&b, l->output_depth);
	put_u64(&b, l->tmp_bytes);
	put_u64(&b, l->log_bytes);
	put_u64(&b, spec->script_len);
	put_u64(&b, spec->ninputs);
	put_u64(&b, inputs_total);
	dcr_buf_append(&b, spec->script, spec->script_len);
	rc = caller_send(c, b.data, b.len);
	chunk = dcr_malloc(SBX_IO_CHUNK);
	for (i = 0; rc == 0 && i < spec->ninputs; i++) {
		const cmp_sandbox_input *in = &spec->inputs[i];
		uint64_t got = 0;

		dcr_buf_reset(&b);
		put_bytes(&b, in->path, strlen(in->path));
		put_u64(&b, in->size);
		rc = caller_send(c, b.data, b.len);
		while (rc == 0 && in->read) { /* NULL: an empty directory */
			int k = in->read(in->ctx, chunk, SBX_IO_CHUNK);
			if (k < 0) {
				rc = dcr_err_set(err, k, "input %s: reading it failed: %s", in->path,
				                 dcr_strerror(k));
				break;
			}
			if (k == 0)
				break;
			if ((uint64_t)k > in->size - got) {
				rc = dcr_err_set(err, DCR_EINVALID,
				                 "input %s: its reader gave more than its %llu bytes",
				                 in->path, (unsigned long long)in->size);
				break;
			}
			got += (uint64_t)k;
			rc = caller_send(c, chunk, (size_t)k);
		}
		if (rc == 0 && got != in->size)
			rc = dcr_err_set(err, DCR_EINVALID,
			                 "input %s: its reader ended after %llu of %llu bytes", in->path,
			                 (unsigned long long)got, (unsigned long long)in->size);
	}
	free(chunk);
	dcr_buf_release(&b);
	return rc;
}

/* Reads the child's answer to its end; 0 or a negative code (stopped,
 * or the answer is larger than the limits allow). */
static int recv_answer(caller *c, dcr_buf *ans, size_t cap)
{
	for (;;) {
		struct pollfd pfd = {c->fd, POLLIN, 0};
		ssize_t k;

		caller_tick(c);
		if (poll(&pfd, 1, SBX_POLL_MS) < 0 && errno != EINTR)
			return -errno;
		dcr_buf_reserve(ans, SBX_IO_CHUNK);
		k = recv(c->fd, ans->data + ans->len, SBX_IO_CHUNK, MSG_DONTWAIT);
		/* a child that exits without reading all of the job resets the
		 * connection: that is its end too */
		if (k == 0 || (k < 0 && errno == ECONNRESET))
			return 0;
		if (k < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		ans->len += (size_t)k;
		if (ans->len > cap) {
			caller_stop(c, DCR_EINTERNAL);
			return DCR_EINTERNAL;
		}
	}
}

static int file_cmp(const void *a, const void *b)
{
	return strcmp(((const cmp_sandbox_file *)a)->name, ((const cmp_sandbox_file *)b)->name);
}

static int parse_answer(const uint8_t *p, size_t n, const cmp_sandbox_limits *l,
                        cmp_sandbox_out *out, dcr_err *err)
{
	rd r = {p, n, 0, false};
	int64_t code;
	uint64_t mlen, len, nfiles, total = 0, i;
	const uint8_t *msg, *b;

	code = (int64_t)rd_u64(&r);
	mlen = rd_u64(&r);
	msg = rd_bytes(&r, mlen);
	out->exit_code = (int)(int64_t)rd_u64(&r);
	out->wall_ms = rd_u64(&r);
	out->cpu_ms = rd_u64(&r);
	out->peak_rss_bytes = rd_u64(&r);
	out->host_uid = (uint32_t)rd_u64(&r);
	out->out_truncated = rd_u64(&r) != 0;
	out->err_truncated = rd_u64(&r) != 0;
	len = rd_u64(&r);
	if (len > l->log_bytes)
		r.bad = true;
	if ((b = rd_bytes(&r, len)))
		dcr_buf_append(&out->out_log, b, (size_t)len);
	len = rd_u64(&r);
	if (len > l->log_bytes)
		r.bad = true;
	if ((b = rd_bytes(&r, len)))
		dcr_buf_append(&out->err_log, b, (size_t)len);
	nfiles = rd_u64(&r);
	if (nfiles > l->output_files || mlen > SBX_MSG_BYTES || code > 0 || code < INT32_MIN)
		r.bad = true;
	if (!r.bad && nfiles)
		out->files = dcr_calloc((size_t)nfiles, sizeof *out->files);
	for (i = 0; !r.bad && i < nfiles; i++) {
		uint64_t nl = rd_u64(&r);
		const uint8_t *name = rd_bytes(&r, nl);
		unsigned depth;

		len = rd_u64(&r);
		b = rd_bytes(&r, len);
		total += len;
		if (r.bad || path_rule((const char *)name, (size_t)nl, &depth) ||
		    depth > l->output_depth || total > l->output_bytes) {
			r.bad = true;
			break;
		}
		out->files[i].name = dcr_strndup((const char *)name, (size_t)nl);
		out->files[i].len = (size_t)len;
		out->files[i].data = dcr_malloc(len ? (size_t)len : 1);
		memcpy(out->files[i].data, b, (size_t)len);
		out->nfiles++;
	}
	if (r.bad || r.off != r.n) {
		for (i = 0; i < out->nfiles; i++) {
			free(out->files[i].name);
			free(out->files[i].data);
		}
		free(out->files);
		out->files = NULL;
		out->nfiles = 0;
		return dcr_err_set(err, DCR_EINTERNAL, "the sandbox child's answer is malformed");
	}
	/* the child sorted them; the order is part of the contract, so check */
	for (i = 1; i < out->nfiles; i++)
		DCR_ASSERT(file_cmp(&out->files[i - 1], &out->files[i]) < 0);
	if (code == 0)
		return 0;
	return dcr_err_set(err, (int)code, "%.*s", (int)mlen, (const char *)msg);
}

static int check_spec(const cmp_sandbox_spec *spec, const cmp_sandbox_limits *l,
                      uint64_t *inputs_total, dcr_err *err)
{
	size_t i;
	const char *r;

	*inputs_total = 0;
	if (spec->lang != CMP_LANG_PYTHON && spec->lang != CMP_LANG_R)
		return dcr_err_set(err, DCR_EINVALID, "sandbox: unknown language %d",
		                   (int)spec->lang);
	if (!spec->script && spec->script_len)
		return dcr_err_set(err, DCR_EINVALID, "sandbox: no script");
	if (spec->script_len > CMP_SANDBOX_SCRIPT_BYTES_MAX)
		return dcr_err_set(err, DCR_ELIMIT, "sandbox: the script has %zu bytes, at most %u",
		                   spec->script_len, CMP_SANDBOX_SCRIPT_BYTES_MAX);
	if (spec->ninputs > CMP_SANDBOX_INPUTS_MAX)
		return dcr_err_set(err, DCR_ELIMIT, "sandbox: %zu input files, at most %u",
		                   spec->ninputs, CMP_SANDBOX_INPUTS_MAX);
	if (l->output_files > CMP_SANDBOX_OUTPUT_FILES_MAX ||
	    l->output_depth > CMP_SANDBOX_OUTPUT_DEPTH_MAX)
		return dcr_err_set(err, DCR_EINVALID,
		                   "sandbox: output limits of %u files / depth %u are beyond %u / %u",
		                   l->output_files, l->output_depth, CMP_SANDBOX_OUTPUT_FILES_MAX,
		                   CMP_SANDBOX_OUTPUT_DEPTH_MAX);
	if (l->memory_bytes < (16u << 20) || l->procs > (1u << 20) || l->log_bytes > (1ull << 32) ||
	    l->output_bytes > (1ull << 40) || l->tmp_bytes > (1ull << 40) || l->wall_ms > (1ull << 40) ||
	    l->cpu_ms > (1ull << 40))
		return dcr_err_set(err, DCR_EINVALID,
		                   "sandbox: a limit is out of range (memory at least 16 MiB)");
	for (i = 0; i < spec->ninputs; i++) {
		const char *p = spec->inputs[i].path;
		if (!p)
			return dcr_err_set(err, DCR_EINVALID, "sandbox: input %zu has no path", i);
		if ((r = input_rule(p, strlen(p), spec->inputs[i].size)))
			return dcr_err_set(err, DCR_EINVALID, "sandbox: input path %s: %s", p, r);
		if (spec->inputs[i].size > (1ull << 40) - *inputs_total)
			return dcr_err_set(err, DCR_ELIMIT, "sandbox: the inputs pass 1 TiB");
		*inputs_total += spec->inputs[i].size;
	}
	return 0;
}

int cmp_sandbox_run(const cmp_sandbox_spec *spec, cmp_sandbox_out *out, dcr_err *err)
{
	cmp_sandbox_limits l = spec->limits;
	const char *exe = spec->self_exe ? spec->self_exe : "/proc/self/exe";
	char *argv[3] = {(char *)exe, (char *)CMP_SANDBOX_ARGV, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, def;
	caller c = {-1, 0, spec->cancel, 0, 0, 0, false};
	int sv[2] = {-1, -1}, rc, status = 0;
	uint64_t inputs_total, start = dcr_mono_ms();
	size_t cap;
	dcr_buf ans;

	dcr_buf_init(&ans);
	cmp_sandbox_limits_default(&l);
	if ((rc = check_spec(spec, &l, &inputs_total, err)))
		return rc;
	if (cmp_cancel_fired(spec->cancel))
		return dcr_err_set(err, DCR_ECANCELED, "the run was cancelled");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return dcr_err_set(err, -errno, "sandbox: socketpair: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 1);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGTERM);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGCHLD);
	sigaddset(&def, SIGHUP);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &def);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
	                                    POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(&c.pid, exe, &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(sv[1]);
	if (rc) {
		close(sv[0]);
		return dcr_err_set(err, DCR_EUNAVAIL, "sandbox: cannot start %s: %s", exe,
		                   strerror(rc));
	}
	c.fd = sv[0];
	c.deadline_ms = start + l.wall_ms + CMP_SANDBOX_KILL_GRACE_MS;
	rc = send_job(&c, spec, &l, inputs_total, err);
	if (rc < 0) {
		/* a reader failed or the run was stopped while sending */
		caller_stop(&c, rc);
	}
	shutdown(c.fd, SHUT_WR);
	cap = (size_t)l.output_bytes + 2 * (size_t)l.log_bytes +
	      (size_t)l.output_files * (CMP_SANDBOX_PATH_BYTES_MAX + 16) + 64 * 1024;
	rc = recv_answer(&c, &ans, cap);
	close(c.fd);
	while (waitpid(c.pid, &status, 0) < 0 && errno == EINTR)
		;
	if (c.why == DCR_ECANCELED) {
		rc = dcr_err_set(err, DCR_ECANCELED, "the run was cancelled");
	} else if (c.why == DCR_ETIMEOUT) {
		rc = dcr_err_set(err, DCR_ETIMEOUT,
		                 "the run passed its wall-clock limit of %llu ms",
		                 (unsigned long long)l.wall_ms);
	} else if (c.why && c.why != DCR_EINTERNAL) {
		/* err holds the reader's message */
		rc = c.why;
	} else if (rc < 0 || c.why) {
		rc = dcr_err_set(err, DCR_EINTERNAL, "sandbox: reading the child's answer failed: %s",
		                 dcr_strerror(rc < 0 ? rc : c.why));
	} else if (ans.len == 0) {
		rc = dcr_err_set(err, DCR_EUNAVAIL,
		                 "sandbox: the child %s ended without an answer (%s %d)", exe,
		                 WIFSIGNALED(status) ? "signal" : "status",
		                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	} else {
		rc = parse_answer(ans.data, ans.len, &l, out, err);
	}
	dcr_buf_release(&ans);
	return rc;
}

/* ---- the child's half ---------------------------------------------------- */

typedef struct child {
	cmp_sandbox_limits l;
	enum cmp_lang lang;
	uint64_t script_len, ninputs, inputs_total;
	uid_t uid;        /* host uid of the run's processes */
	bool switched;    /* it is a uid of its own (the child is root) */
	int sigfd, out_r, err_r, info_r;
	pid_t bwrap;
	int bwrap_status;
	bool bwrap_done, started;
	/* the watch loop's findings */
	uint64_t start_ms, cpu_seen_ms, vm_peak_bytes, pss_peak_bytes;
	uint32_t procs_peak;
	int stop; /* DCR_ECANCELED, DCR_ETIMEOUT, DCR_ELIMIT, 0 */
	bool stop_procs; /* DCR_ELIMIT: the process limit */
	bool stop_memory; /* DCR_ELIMIT: the memory sum (else the CPU sum) */
	dcr_buf out_log, err_log, info;
	dcr_buf err_tail; /* the last SBX_TAIL_BYTES of stderr, for verdict() */
	bool out_trunc, err_trunc;
	char lnk[6][64]; /* merged-usr symlink targets */
	/* the collected files */
	cmp_sandbox_file *files;
	size_t nfiles, files_cap;
	uint64_t files_bytes;
} child;

/* Fills err and returns code (the child reports it to the caller). */
#define CFAIL(code, ...) dcr_err_set(err, (code), __VA_ARGS__)

static int mount_tmpfs(const char *dir, uint64_t size, uint64_t inodes, uid_t uid, unsigned mode,
                       dcr_err *err)
{
	char opt[160];

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return CFAIL(DCR_EUNAVAIL, "sandbox: mkdir %s: %s", dir, strerror(errno));
	/* gid: the run's own (= uid) as root; else dcrd's, the one gid the
	 * user namespace maps (a service user's gid is rarely its uid) */
	snprintf(opt, sizeof opt, "size=%llu,nr_inodes=%llu,mode=%o,uid=%u,gid=%u",
	         (unsigned long long)size, (unsigned long long)inodes, mode, (unsigned)uid,
	         geteuid() == 0 ? (unsigned)uid : (unsigned)getegid());
	if (mount("dcr-sandbox", dir, "tmpfs", MS_NOSUID | MS_NODEV, opt) < 0)
		return CFAIL(DCR_EUNAVAIL, "sandbox: mounting a tmpfs on %s: %s", dir,
		             strerror(errno));
	return 0;
}

static int write_id_map(const char *file, const char *line, dcr_err *err)
{
	int fd = open(file, O_WRONLY | O_CLOEXEC);
	int ok = fd >= 0 && write_full(fd, line, strlen(line)) == 0;

	if (fd >= 0)
		close(fd);
	return ok ? 0 : CFAIL(DCR_EUNAVAIL, "sandbox: writing %s: %s", file, strerror(errno));
}

/* The child's own mount namespace with in/, out/ and tmp/. */
static int build_mounts(child *c, dcr_err *err)
{
	uint64_t in_size;
	char line[64];
	int rc;

	if (geteuid() == 0) {
		c->uid = (uid_t)(CMP_SANDBOX_UID_BASE + (uint32_t)getpid());
		c->switched = true;
		if (unshare(CLONE_NEWNS) < 0)
			return CFAIL(DCR_EUNAVAIL, "sandbox: unshare(CLONE_NEWNS): %s",
			             strerror(errno));
	} else {
		uid_t u = geteuid();
		gid_t g = getegid();
		c->uid = u;
		if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
			return CFAIL(DCR_EUNAVAIL,
			             "sandbox: unshare(CLONE_NEWUSER|CLONE_NEWNS): %s (user namespaces "
			             "are needed when dcrd is not root)",
			             strerror(errno));
		snprintf(line, sizeof line, "%u %u 1\n", (unsigned)u, (unsigned)u);
		if ((rc = write_id_map("/proc/self/uid_map", line, err)))
			return rc;
		if ((rc = write_id_map("/proc/self/setgroups", "deny", err)))
			return rc;
		snprintf(line, sizeof line, "%u %u 1\n", (unsigned)g, (unsigned)g);
		if ((rc = write_id_map("/proc/self/gid_map", line, err)))
			return rc;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return CFAIL(DCR_EUNAVAIL, "sandbox: making / private: %s", strerror(errno));
	if ((rc = mount_tmpfs(SBX_ROOT, 1u << 20, 64, geteuid(), 0755, err)))
		return rc;
	/* tmpfs counts data pages; directories and small files round up */
	in_size = c->inputs_total + c->script_len + (c->ninputs + 8) * 2 * 4096 + (1u << 20);
	if ((rc = mount_tmpfs(SBX_IN, in_size, c->ninputs * 2 + 64, geteuid(), 0755, err)))
		return rc;
	if ((rc = mount_tmpfs(SBX_OUT, c->l.output_bytes + SBX_OUT_SLACK,
	                      (uint64_t)c->l.output_files * 2 + 64, c->uid, 0700, err)))
		return rc;
	return mount_tmpfs(SBX_TMP, c->l.tmp_bytes, 1u << 20, c->uid, 0700, err);
}

/* mkdir -p of the parents of rel under dirfd (SBX_IN), 0755. */
static int make_parents(int dirfd, char *rel, dcr_err *err)
{
	char *s;

	for (s = strchr(rel, '/'); s; s = strchr(s + 1, '/')) {
		*s = 0;
		if (mkdirat(dirfd, rel, 0755) < 0 && errno != EEXIST) {
			int e = errno;
			*s = '/';
			return CFAIL(DCR_EINVALID, "sandbox: input %s: mkdir: %s", rel, strerror(e));
		}
		*s = '/';
	}
	return 0;
}

/* Copies n bytes from fd 0 to a new file rel under dirfd. */
static int take_file(int dirfd, const char *rel, uint64_t n, dcr_err *err)
{
	uint8_t *buf = dcr_malloc(SBX_IO_CHUNK);
	int fd, rc = 0;

	fd = openat(dirfd, rel, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
	if (fd < 0) {
		rc = CFAIL(errno == EEXIST ? DCR_EEXIST : DCR_EINVALID, "sandbox: input %s: %s", rel,
		           errno == EEXIST ? "given twice (or it is the script)" : strerror(errno));
		goto out;
	}
	while (n) {
		size_t k = n < SBX_IO_CHUNK ? (size_t)n : SBX_IO_CHUNK;
		if (read_full(0, buf, k) < 0) {
			rc = CFAIL(DCR_EINTERNAL, "sandbox: the job ended inside input %s", rel);
			goto out;
		}
		if (write_full(fd, buf, k) < 0) {
			rc = CFAIL(DCR_EINTERNAL, "sandbox: writing input %s: %s", rel,
			           strerror(errno));
			goto out;
		}
		n -= k;
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

static int read_job_header(child *c, dcr_err *err)
{
	uint8_t h[8 + 8 * SBX_HEADER_FIELDS];
	rd r = {h, sizeof h, 8, false};
	uint64_t lang;

	if (read_full(0, h, sizeof h) < 0 || memcmp(h, SBX_MAGIC, 8) != 0)
		return CFAIL(DCR_EINTERNAL, "sandbox: the job header is missing or malformed");
	lang = rd_u64(&r);
	c->l.wall_ms = rd_u64(&r);
	c->l.cpu_ms = rd_u64(&r);
	c->l.memory_bytes = rd_u64(&r);
	c->l.procs = (uint32_t)rd_u64(&r);
	c->l.output_bytes = rd_u64(&r);
	c->l.output_files = (uint32_t)rd_u64(&r);
	c->l.output_depth = (uint32_t)rd_u64(&r);
	c->l.tmp_bytes = rd_u64(&r);
	c->l.log_bytes = rd_u64(&r);
	c->script_len = rd_u64(&r);
	c->ninputs = rd_u64(&r);
	c->inputs_total = rd_u64(&r);
	DCR_ASSERT(!r.bad);
	if (lang > CMP_LANG_R || c->script_len > CMP_SANDBOX_SCRIPT_BYTES_MAX ||
	    c->ninputs > CMP_SANDBOX_INPUTS_MAX || c->inputs_total > (1ull << 40) ||
	    c->l.output_files > CMP_SANDBOX_OUTPUT_FILES_MAX ||
	    c->l.output_depth > CMP_SANDBOX_OUTPUT_DEPTH_MAX || c->l.log_bytes > (1ull << 32) ||
	    c->l.memory_bytes < (16u << 20) || !c->l.wall_ms || !c->l.cpu_ms || !c->l.procs ||
	    !c->l.output_bytes || !c->l.tmp_bytes)
		return CFAIL(DCR_EINTERNAL, "sandbox: the job header is out of range");
	c->lang = (enum cmp_lang)lang;
	return 0;
}

static int read_job_files(child *c, dcr_err *err)
{
	int dirfd, rc = 0;
	uint64_t i, total = 0;
	char *path = NULL;

	dirfd = open(SBX_IN, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return CFAIL(DCR_EUNAVAIL, "sandbox: open %s: %s", SBX_IN, strerror(errno));
	rc = take_file(dirfd, c->lang == CMP_LANG_PYTHON ? "script.py" : "script.R", c->script_len,
	               err);
	for (i = 0; rc == 0 && i < c->ninputs; i++) {
		uint8_t h[8];
		uint64_t plen, size;
		const char *why;

		if (read_full(0, h, 8) < 0 || (plen = dcr_get_be64(h)) > CMP_SANDBOX_PATH_BYTES_MAX) {
			rc = CFAIL(DCR_EINTERNAL, "sandbox: input %llu: bad path length",
			           (unsigned long long)i);
			break;
		}
		path = dcr_malloc((size_t)plen + 1);
		if (read_full(0, path, (size_t)plen) < 0 || read_full(0, h, 8) < 0) {
			rc = CFAIL(DCR_EINTERNAL, "sandbox: the job ended in input %llu",
			           (unsigned long long)i);
			break;
		}
		path[plen] = 0;
		size = dcr_get_be64(h);
		if ((why = input_rule(path, (size_t)plen, size))) {
			rc = CFAIL(DCR_EINVALID, "sandbox: input path %s: %s", path, why);
			break;
		}
		if (size > c->inputs_total - total) {
			rc = CFAIL(DCR_EINTERNAL, "sandbox: input %s: more bytes than announced", path);
			break;
		}
		total += size;
		/* "NAME/": make_parents makes NAME too, and there is no file */
		if ((rc = make_parents(dirfd, path, err)) == 0 && path[plen - 1] != '/')
			rc = take_file(dirfd, path, size, err);
		free(path);
		path = NULL;
	}
	free(path);
	close(dirfd);
	return rc;
}

static int memfd_of(const dcr_buf *b, dcr_err *err)
{
	int fd = (int)syscall(SYS_memfd_create, "dcr-seccomp", MFD_CLOEXEC);

	if (fd < 0)
		return CFAIL(DCR_EUNAVAIL, "sandbox: memfd_create: %s", strerror(errno));
	if (write_full(fd, b->data, b->len) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		close(fd);
		return CFAIL(DCR_EUNAVAIL, "sandbox: writing the seccomp filter: %s",
		             strerror(errno));
	}
	return fd;
}

/* bwrap's arguments. fd 3 is the seccomp filter, fd 4 bwrap's info. */
static void bwrap_args(child *c, const char **a, size_t cap)
{
	static const char *const top[] = {"/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"};
	size_t n = 0, i;
	struct stat st;

#define A(s)                                                                           \
	do {                                                                           \
		DCR_ASSERT(n + 1 < cap);                                               \
		a[n++] = (s);                                                          \
	} while (0)
	A(SBX_BWRAP);
	A("--unshare-all");
	A("--unshare-user");
	A("--disable-userns");
	A("--die-with-parent");
	A("--new-session");
	A("--cap-drop");
	A("ALL");
	A("--uid");
	A(SBX_INNER_ID);
	A("--gid");
	A(SBX_INNER_ID);
	A("--hostname");
	A("sandbox");
	A("--ro-bind");
	A("/usr");
	A("/usr");
	/* the merged-usr links as the host has them (or the directories) */
	for (i = 0; i < sizeof top / sizeof top[0]; i++) {
		ssize_t k;
		if (lstat(top[i], &st) < 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			k = readlink(top[i], c->lnk[i], sizeof c->lnk[i] - 1);
			if (k <= 0)
				continue;
			c->lnk[i][k] = 0;
			A("--symlink");
			A(c->lnk[i]);
			A(top[i]);
		} else if (S_ISDIR(st.st_mode)) {
			A("--ro-bind");
			A(top[i]);
			A(top[i]);
		}
	}
	A("--ro-bind-try");
	A("/etc/alternatives");
	A("/etc/alternatives");
	A("--ro-bind-try");
	A("/etc/ld.so.cache");
	A("/etc/ld.so.cache");
	A("--ro-bind-try");
	A("/etc/R");
	A("/etc/R");
	A("--proc");
	A("/proc");
	A("--dev");
	A("/dev");
	A("--bind");
	A(SBX_TMP);
	A("/tmp");
	/* /dev/shm is the same tmpfs as /tmp (one budget); /dev itself and
	 * the root are read-only, so /tmp and /output are all that is
	 * writable */
	A("--bind");
	A(SBX_TMP);
	A("/dev/shm");
	A("--ro-bind");
	A(SBX_IN);
	A("/input");
	A("--bind");
	A(SBX_OUT);
	A("/output");
	A("--remount-ro");
	A("/dev");
	A("--remount-ro");
	A("/");
	A("--chdir");
	A("/tmp");
	A("--clearenv");
	A("--setenv");
	A("PATH");
	A("/usr/bin:/bin");
	A("--setenv");
	A("HOME");
	A("/tmp");
	A("--setenv");
	A("TMPDIR");
	A("/tmp");
	A("--setenv");
	A("LANG");
	A("C.UTF-8");
	A("--seccomp");
	A("3");
	A("--info-fd");
	A("4");
	A("--");
	if (c->lang == CMP_LANG_PYTHON) {
		A(SBX_PYTHON);
		A("-I");
		A("-B");
		A("/input/script.py");
	} else {
		A(SBX_RSCRIPT);
		A("--vanilla");
		A("/input/script.R");
	}
	a[n] = NULL;
#undef A
}

static int set_rlimit(int res, uint64_t soft, uint64_t hard)
{
	struct rlimit r = {(rlim_t)soft, (rlim_t)hard};

	return setrlimit(res, &r);
}

/* The grandchild: from here to execve of bwrap. Never returns. fds:
 * the five sources are >= 10 (see start_bwrap). */
static _Noreturn void grandchild(child *c, int devnull, int out_w, int err_w, int filter,
                                 int info_w, int fail_w, const char **args)
{
	static char *const noenv[] = {NULL};
	uint64_t cpu_s = (c->l.cpu_ms + 999) / 1000;
	uint64_t fsize = c->l.output_bytes + SBX_OUT_SLACK;
	int e;

	if (fsize < c->l.tmp_bytes)
		fsize = c->l.tmp_bytes;
	if (setsid() < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		goto fail;
	if (dup2(devnull, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0 ||
	    dup2(filter, 3) < 0 || dup2(info_w, 4) < 0)
		goto fail;
	/* the first the kernel's OOM killer picks, before dcrd: an
	 * unprivileged script may lower it to 0, never below dcrd's */
	{
		int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "1000", 4) != 4)
			goto fail;
		close(fd);
	}
	if (c->switched) {
		if (setgroups(0, NULL) < 0 || setresgid(c->uid, c->uid, c->uid) < 0 ||
		    setresuid(c->uid, c->uid, c->uid) < 0)
			goto fail;
		/* the credential change cleared it */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
			goto fail;
	}
	/* SIGXCPU at the CPU soft limit, SIGKILL one second later; bwrap's
	 * own two processes count in NPROC too */
	if (set_rlimit(RLIMIT_CORE, 0, 0) < 0 ||
	    set_rlimit(RLIMIT_AS, c->l.memory_bytes, c->l.memory_bytes) < 0 ||
	    set_rlimit(RLIMIT_CPU, cpu_s, cpu_s + 1) < 0 ||
	    set_rlimit(RLIMIT_NPROC, (uint64_t)c->l.procs + 2, (uint64_t)c->l.procs + 2) < 0 ||
	    set_rlimit(RLIMIT_FSIZE, fsize, fsize) < 0 ||
	    set_rlimit(RLIMIT_NOFILE, CMP_SANDBOX_NOFILE, CMP_SANDBOX_NOFILE) < 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		goto fail;
	{
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
	}
	execve(SBX_BWRAP, (char *const *)args, noenv);
fail:
	e = errno;
	if (write(fail_w, &e, sizeof e) < 0) {
		/* nothing more to say */
	}
	_exit(126);
}

static int move_high(int fd)
{
	int h = fcntl(fd, F_DUPFD_CLOEXEC, 10);

	close(fd);
	return h;
}

static int start_bwrap(child *c, dcr_err *err)
{
	int out_p[2] = {-1, -1}, err_p[2] = {-1, -1}, info_p[2] = {-1, -1}, fail_p[2] = {-1, -1};
	int devnull = -1, filter = -1, rc = 0, e = 0;
	const char *args[128];
	dcr_buf prog;
	ssize_t k;

	dcr_buf_init(&prog);
	if ((rc = cmp__sandbox_filter(&prog, err)))
		goto out;
	if ((filter = memfd_of(&prog, err)) < 0) {
		rc = filter;
		goto out;
	}
	if (pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0 ||
	    pipe2(info_p, O_CLOEXEC) < 0 || pipe2(fail_p, O_CLOEXEC) < 0 ||
	    (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		rc = CFAIL(DCR_EUNAVAIL, "sandbox: pipes: %s", strerror(errno));
		goto out;
	}
	devnull = move_high(devnull);
	out_p[1] = move_high(out_p[1]);
	err_p[1] = move_high(err_p[1]);
	filter = move_high(filter);
	info_p[1] = move_high(info_p[1]);
	fail_p[1] = move_high(fail_p[1]);
	bwrap_args(c, args, sizeof args / sizeof args[0]);
	c->start_ms = dcr_mono_ms();
	c->bwrap = fork();
	if (c->bwrap < 0) {
		rc = CFAIL(DCR_EUNAVAIL, "sandbox: fork: %s", strerror(errno));
		goto out;
	}
	if (c->bwrap == 0)
		grandchild(c, devnull, out_p[1], err_p[1], filter, info_p[1], fail_p[1], args);
	close(fail_p[1]);
	fail_p[1] = -1;
	while ((k = read(fail_p[0], &e, sizeof e)) < 0 && errno == EINTR)
		;
	if (k == (ssize_t)sizeof e) {
		rc = CFAIL(DCR_EUNAVAIL, "sandbox: starting %s: %s", SBX_BWRAP, strerror(e));
		goto out;
	}
	c->out_r = out_p[0];
	c->err_r = err_p[0];
	c->info_r = info_p[0];
	out_p[0] = err_p[0] = info_p[0] = -1;
out:
	for (int i = 0; i < 2; i++) {
		if (out_p[i] >= 0)
			close(out_p[i]);
		if (err_p[i] >= 0)
			close(err_p[i]);
		if (info_p[i] >= 0)
			close(info_p[i]);
		if (fail_p[i] >= 0)
			close(fail_p[i]);
	}
	if (devnull >= 0)
		close(devnull);
	if (filter >= 0)
		close(filter);
	dcr_buf_release(&prog);
	return rc;
}

/* Kills every process of the run: bwrap's session, and (with a uid of
 * its own) every process of that uid, from a helper that takes the uid
 * so that kill(-1) reaches exactly those. */
static void kill_run(child *c)
{
	pid_t k;

	if (c->bwrap > 0 && !c->bwrap_done)
		kill(-c->bwrap, SIGKILL);
	if (c->bwrap > 0 && !c->bwrap_done)
		kill(c->bwrap, SIGKILL);
	if (!c->switched)
		return;
	k = fork();
	if (k == 0) {
		if (setresuid(c->uid, c->uid, c->uid) == 0)
			kill(-1, SIGKILL);
		_exit(0);
	}
	if (k > 0)
		while (waitpid(k, NULL, 0) < 0 && errno == EINTR)
			;
}

/* Keeps the last SBX_TAIL_BYTES of what passed. */
static void keep_tail(dcr_buf *t, const uint8_t *p, size_t n)
{
	if (n >= SBX_TAIL_BYTES) {
		dcr_buf_reset(t);
		dcr_buf_append(t, p + n - SBX_TAIL_BYTES, SBX_TAIL_BYTES);
		return;
	}
	if (t->len + n > SBX_TAIL_BYTES) {
		size_t drop = t->len + n - SBX_TAIL_BYTES;
		memmove(t->data, t->data + drop, t->len - drop);
		t->len -= drop;
	}
	dcr_buf_append(t, p, n);
}

/* Keeps at most cap bytes of a stream; reads (and drops) the rest; the
 * end of it in tail (if not NULL). */
static void drain(int *fd, dcr_buf *b, uint64_t cap, bool *trunc, dcr_buf *tail)
{
	uint8_t buf[SBX_IO_CHUNK];
	ssize_t k = read(*fd, buf, sizeof buf);

	if (k < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (k <= 0) {
		close(*fd);
		*fd = -1;
		return;
	}
	if (tail)
		keep_tail(tail, buf, (size_t)k);
	if (b->len < cap) {
		size_t keep = (size_t)k;
		if (keep > cap - b->len) {
			keep = (size_t)(cap - b->len);
			*trunc = true;
		}
		dcr_buf_append(b, buf, keep);
	} else {
		*trunc = true;
	}
}

/* Parses one /proc/PID/status for the uid, threads and VmPeak. */
static bool proc_status(const char *pid, uid_t *uid, uint32_t *threads, uint64_t *vmpeak)
{
	char path[64], buf[4096], *s;
	int fd;
	ssize_t k;

	snprintf(path, sizeof path, "/proc/%s/status", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	k = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (k <= 0)
		return false;
	buf[k] = 0;
	*threads = 1;
	*vmpeak = 0;
	if (!(s = strstr(buf, "\nUid:")))
		return false;
	*uid = (uid_t)strtoul(s + 5, NULL, 10);
	if ((s = strstr(buf, "\nThreads:")))
		*threads = (uint32_t)strtoul(s + 9, NULL, 10);
	if ((s = strstr(buf, "\nVmPeak:")))
		*vmpeak = strtoull(s + 8, NULL, 10) * 1024;
	return true;
}

/* utime + stime + cutime + cstime of /proc/PID/stat, in ms. */
static uint64_t proc_cpu_ms(const char *pid)
{
	char path[64], buf[1024], *s;
	int fd, i;
	ssize_t k;
	uint64_t t = 0;
	long hz = sysconf(_SC_CLK_TCK);

	snprintf(path, sizeof path, "/proc/%s/stat", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	k = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (k <= 0)
		return 0;
	buf[k] = 0;
	if (!(s = strrchr(buf, ')')))
		return 0;
	s++;
	for (i = 0; i < 11 && s; i++)
		s = strchr(s + 1, ' ');
	for (i = 0; i < 4 && s; i++) {
		t += strtoull(s + 1, &s, 10);
	}
	return hz > 0 ? t * 1000 / (uint64_t)hz : 0;
}

/* One look at the run's processes (with a uid of its own only: else the
 * uid is dcrd's and the sum would be meaningless). */
/* Pss of /proc/PID/smaps_rollup (the process's share of the memory it
 * maps, pages shared with other processes divided among them), bytes. */
static uint64_t proc_pss_bytes(const char *pid)
{
	char path[64], buf[2048], *s;
	int fd;
	ssize_t k;

	snprintf(path, sizeof path, "/proc/%s/smaps_rollup", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	k = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (k <= 0)
		return 0;
	buf[k] = 0;
	if (!(s = strstr(buf, "\nPss:")))
		return 0;
	return strtoull(s + 5, NULL, 10) * 1024;
}

static void sample(child *c)
{
	DIR *d;
	struct dirent *e;
	uint64_t cpu = 0, vm, pss = 0;
	uint32_t procs = 0, th;
	uid_t u;

	if (!c->switched || !(d = opendir("/proc")))
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		if (!proc_status(e->d_name, &u, &th, &vm) || u != c->uid)
			continue;
		procs += th;
		cpu += proc_cpu_ms(e->d_name);
		pss += proc_pss_bytes(e->d_name);
		if (vm > c->vm_peak_bytes)
			c->vm_peak_bytes = vm;
	}
	closedir(d);
	if (procs > c->procs_peak)
		c->procs_peak = procs;
	if (cpu > c->cpu_seen_ms)
		c->cpu_seen_ms = cpu;
	if (pss > c->pss_peak_bytes)
		c->pss_peak_bytes = pss;
}

static void reap(child *c)
{
	int st;
	pid_t p;

	while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
		if (p == c->bwrap) {
			c->bwrap_status = st;
			c->bwrap_done = true;
		}
	}
}

/* Runs until bwrap ended (or a limit or cancel stopped the run), then
 * kills what is left and waits until the pipes are closed and no
 * descendant is alive. */
static void watch(child *c)
{
	uint64_t next_sample = 0;
	bool killed = false;

	for (;;) {
		struct pollfd p[4] = {{c->sigfd, POLLIN, 0},
		                      {c->out_r, POLLIN, 0},
		                      {c->err_r, POLLIN, 0},
		                      {c->info_r, POLLIN, 0}};
		uint64_t now = dcr_mono_ms();

		if (poll(p, 4, SBX_TICK_MS) < 0 && errno != EINTR)
			break;
		if (p[0].revents) {
			struct signalfd_siginfo si;
			while (read(c->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
				if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT ||
				    si.ssi_signo == SIGHUP)
					if (!c->stop)
						c->stop = DCR_ECANCELED;
			}
		}
		if (c->out_r >= 0 && p[1].revents)
			drain(&c->out_r, &c->out_log, c->l.log_bytes, &c->out_trunc, NULL);
		if (c->err_r >= 0 && p[2].revents)
			drain(&c->err_r, &c->err_log, c->l.log_bytes, &c->err_trunc,
			      &c->err_tail);
		if (c->info_r >= 0 && p[3].revents) {
			bool t = false;
			drain(&c->info_r, &c->info, 4096, &t, NULL);
		}
		reap(c);
		now = dcr_mono_ms();
		if (!killed && now >= next_sample) {
			sample(c);
			next_sample = now + SBX_TICK_MS;
			if (c->cpu_seen_ms > c->l.cpu_ms && !c->stop)
				c->stop = DCR_ELIMIT;
			/* all the processes RLIMIT_NPROC allows (bwrap's two
			 * included) are alive: a fork bomb, or a script whose next
			 * fork fails; either way the run ends here */
			if (c->procs_peak >= c->l.procs + 2 && !c->stop) {
				c->stop = DCR_ELIMIT;
				c->stop_procs = true;
			}
			/* RLIMIT_AS bounds each process; this bounds them together
			 * (what a cgroup's memory.max would do, sampled) */
			if (c->pss_peak_bytes > c->l.memory_bytes && !c->stop) {
				c->stop = DCR_ELIMIT;
				c->stop_memory = true;
			}
		}
		if (!c->stop && now - c->start_ms >= c->l.wall_ms)
			c->stop = DCR_ETIMEOUT;
		if (!killed && (c->stop || c->bwrap_done)) {
			sample(c);
			kill_run(c);
			killed = true;
		}
		if (killed) {
			/* everything is dead or dying: the pipes reach their end once
			 * the last writer is gone; every descendant is reparented to us
			 * (subreaper) and reaped here */
			if (c->out_r < 0 && c->err_r < 0 && c->info_r < 0) {
				int st;
				pid_t q;
				while ((q = waitpid(-1, &st, 0)) > 0 || (q < 0 && errno == EINTR)) {
					if (q == c->bwrap) {
						c->bwrap_status = st;
						c->bwrap_done = true;
					}
				}
				break;
			}
			/* a process that closed its ends is still reaped above; one
			 * that was just forked when kill(-1) ran is killed again */
			if (now >= next_sample) {
				kill_run(c);
				next_sample = now + SBX_TICK_MS;
			}
		}
	}
}

static bool full(const char *dir)
{
	struct statvfs v;

	return statvfs(dir, &v) == 0 && (uint64_t)v.f_bavail * v.f_frsize < SBX_FULL_BYTES;
}

static bool log_says(const dcr_buf *b, const char *const *needles)
{
	size_t i;

	for (i = 0; needles[i]; i++) {
		size_t m = strlen(needles[i]), j;
		for (j = 0; j + m <= b->len; j++)
			if (memcmp(b->data + j, needles[i], m) == 0)
				return true;
	}
	return false;
}

/* ---- the collector ------------------------------------------------------- */

static int add_file(child *c, const char *rel, int fd, uint64_t size, dcr_err *err)
{
	cmp_sandbox_file *f;
	uint8_t *data = dcr_malloc(size ? (size_t)size : 1);

	if (read_full(fd, data, (size_t)size) < 0) {
		free(data);
		return CFAIL(DCR_EOUTPUT, "output %s: it could not be read", rel);
	}
	if (c->nfiles == c->files_cap) {
		c->files_cap = c->files_cap ? 2 * c->files_cap : 16;
		c->files = dcr_realloc(c->files, c->files_cap * sizeof *c->files);
	}
	f = &c->files[c->nfiles++];
	f->name = dcr_strdup(rel);
	f->data = data;
	f->len = (size_t)size;
	return 0;
}

static int collect_dir(child *c, int dirfd, const char *prefix, unsigned depth, dcr_err *err)
{
	DIR *d;
	struct dirent *e;
	int rc = 0;

	d = fdopendir(dirfd);
	if (!d) {
		close(dirfd);
		return CFAIL(DCR_EOUTPUT, "output %s: it could not be listed", *prefix ? prefix : "/");
	}
	while (rc == 0 && (e = readdir(d))) {
		const char *name = e->d_name, *why;
		char *rel;
		struct stat st, st2;
		int fd;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if ((why = name_rule(name, strlen(name)))) {
			/* do not print the name itself: it broke the rules */
			rc = CFAIL(DCR_EOUTPUT, "output: a file in /output%s%s has %s", *prefix ? "/" : "",
			           prefix, why);
			break;
		}
		rel = *prefix ? dcr_asprintf("%s/%s", prefix, name) : dcr_strdup(name);
		if (strlen(rel) > CMP_SANDBOX_PATH_BYTES_MAX) {
			rc = CFAIL(DCR_EOUTPUT, "output: a path in /output is longer than %u bytes",
			           CMP_SANDBOX_PATH_BYTES_MAX);
		} else if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = CFAIL(DCR_EOUTPUT, "output %s: %s", rel, strerror(errno));
		} else if (S_ISLNK(st.st_mode)) {
			rc = CFAIL(DCR_EOUTPUT, "output %s: a symbolic link (only regular files are "
			                        "collected)", rel);
		} else if (S_ISFIFO(st.st_mode)) {
			rc = CFAIL(DCR_EOUTPUT, "output %s: a FIFO (only regular files are collected)",
			           rel);
		} else if (S_ISSOCK(st.st_mode)) {
			rc = CFAIL(DCR_EOUTPUT, "output %s: a socket (only regular files are collected)",
			           rel);
		} else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
			rc = CFAIL(DCR_EOUTPUT, "output %s: a device (only regular files are collected)",
			           rel);
		} else if (S_ISDIR(st.st_mode)) {
			if (depth + 1 > c->l.output_depth) {
				rc = CFAIL(DCR_EOUTPUT,
				           "output %s: a directory deeper than the output's limit of %u "
				           "levels",
				           rel, c->l.output_depth);
			} else {
				fd = openat(dirfd, name,
				            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC);
				if (fd < 0)
					rc = CFAIL(DCR_EOUTPUT, "output %s: %s", rel, strerror(errno));
				else
					rc = collect_dir(c, fd, rel, depth + 1, err);
			}
		} else if (!S_ISREG(st.st_mode)) {
			rc = CFAIL(DCR_EOUTPUT, "output %s: not a regular file", rel);
		} else if (st.st_nlink > 1) {
			rc = CFAIL(DCR_EOUTPUT,
			           "output %s: a hard link (a file with %lu names; only files with one "
			           "name are collected)",
			           rel, (unsigned long)st.st_nlink);
		} else if (c->nfiles + 1 > c->l.output_files) {
			rc = CFAIL(DCR_ELIMIT, "the run passed its output limit of %u files",
			           c->l.output_files);
		} else if ((uint64_t)st.st_size > c->l.output_bytes - c->files_bytes) {
			rc = CFAIL(DCR_ELIMIT, "the run passed its output limit of %llu bytes",
			           (unsigned long long)c->l.output_bytes);
		} else {
			fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC | O_NONBLOCK);
			if (fd < 0) {
				rc = CFAIL(DCR_EOUTPUT, "output %s: %s", rel, strerror(errno));
			} else {
				if (fstat(fd, &st2) < 0 || st2.st_dev != st.st_dev ||
				    st2.st_ino != st.st_ino || !S_ISREG(st2.st_mode) ||
				    st2.st_nlink != 1 || st2.st_size != st.st_size)
					rc = CFAIL(DCR_EOUTPUT, "output %s: it changed while collected", rel);
				else
					rc = add_file(c, rel, fd, (uint64_t)st.st_size, err);
				c->files_bytes += (uint64_t)st.st_size;
				close(fd);
			}
		}
		free(rel);
	}
	closedir(d);
	return rc;
}

static int file_cmp_c(const void *a, const void *b)
{
	return strcmp(((const cmp_sandbox_file *)a)->name, ((const cmp_sandbox_file *)b)->name);
}

static int collect(child *c, dcr_err *err)
{
	int fd = open(SBX_OUT, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return CFAIL(DCR_EUNAVAIL, "sandbox: open %s: %s", SBX_OUT, strerror(errno));
	rc = collect_dir(c, fd, "", 0, err);
	if (rc == 0 && c->nfiles > 1)
		qsort(c->files, c->nfiles, sizeof *c->files, file_cmp_c);
	return rc;
}

static void mib(char *s, size_t n, uint64_t bytes)
{
	if (bytes % (1u << 20) == 0)
		snprintf(s, n, "%llu MiB", (unsigned long long)(bytes >> 20));
	else
		snprintf(s, n, "%llu bytes", (unsigned long long)bytes);
}

/* After the run: which rule decides the outcome. */
static int verdict(child *c, dcr_err *err)
{
	static const char *const oom[] = {"MemoryError", "cannot allocate",
	                                  "Cannot allocate memory", "bad_alloc",
	                                  "memory exhausted", "Error: vector memory", NULL};
	static const char *const nofork[] = {"Resource temporarily unavailable", "cannot fork",
	                                     NULL};
	/* python ignores SIGXFSZ and reports EFBIG */
	static const char *const fbig[] = {"File too large", NULL};
	int st = c->bwrap_status, code, sig = 0;
	char m[32];

	if (c->stop == DCR_ECANCELED)
		return CFAIL(DCR_ECANCELED, "the run was cancelled");
	if (c->stop == DCR_ETIMEOUT)
		return CFAIL(DCR_ETIMEOUT, "the run passed its wall-clock limit of %llu ms",
		             (unsigned long long)c->l.wall_ms);
	if (c->stop == DCR_ELIMIT && c->stop_procs)
		return CFAIL(DCR_ELIMIT, "the run reached its limit of %u processes",
		             c->l.procs);
	if (c->stop == DCR_ELIMIT && c->stop_memory) {
		mib(m, sizeof m, c->l.memory_bytes);
		return CFAIL(DCR_ELIMIT,
		             "the run passed its memory limit of %s (its processes together)", m);
	}
	if (c->stop == DCR_ELIMIT)
		return CFAIL(DCR_ELIMIT, "the run passed its CPU limit of %llu ms",
		             (unsigned long long)c->l.cpu_ms);
	if (!c->started) {
		/* bwrap failed before it started the script: its stderr is its own */
		int n = (int)(c->err_log.len > 200 ? 200 : c->err_log.len);
		return CFAIL(DCR_EUNAVAIL, "sandbox: bubblewrap could not build the sandbox: %.*s", n,
		             (const char *)c->err_log.data);
	}
	if (WIFSIGNALED(st)) {
		code = 128 + WTERMSIG(st);
	} else {
		code = WEXITSTATUS(st);
	}
	/* bwrap reports a script killed by signal S as 128 + S */
	if (code > 128 && code < 128 + 65)
		sig = code - 128;
	if (sig == SIGXCPU || (sig == SIGKILL && c->cpu_seen_ms * 10 >= c->l.cpu_ms * 9))
		return CFAIL(DCR_ELIMIT, "the run passed its CPU limit of %llu ms",
		             (unsigned long long)c->l.cpu_ms);
	mib(m, sizeof m, c->l.output_bytes);
	if (full(SBX_OUT))
		return CFAIL(DCR_ELIMIT, "the run passed its output limit of %s", m);
	mib(m, sizeof m, c->l.tmp_bytes);
	if (full(SBX_TMP))
		return CFAIL(DCR_ELIMIT, "the run passed its /tmp limit of %s", m);
	if (sig == SIGXFSZ || (code != 0 && log_says(&c->err_tail, fbig)))
		return CFAIL(DCR_ELIMIT, "the run passed its file size limit of %llu bytes",
		             (unsigned long long)(c->l.output_bytes + SBX_OUT_SLACK));
	if (code != 0) {
		mib(m, sizeof m, c->l.memory_bytes);
		if (c->vm_peak_bytes * 10 >= c->l.memory_bytes * 9 || log_says(&c->err_tail, oom))
			return CFAIL(DCR_ELIMIT, "the run passed its memory limit of %s (the script "
			                         "exited with status %d)", m, code);
		if (c->procs_peak >= c->l.procs || log_says(&c->err_tail, nofork))
			return CFAIL(DCR_ELIMIT, "the run reached its limit of %u processes (the script "
			                         "exited with status %d)", c->l.procs, code);
		if (sig)
			return CFAIL(DCR_ESCRIPT, "the script was killed by signal %d", sig);
		return CFAIL(DCR_ESCRIPT, "the script exited with status %d", code);
	}
	return collect(c, err);
}

static void answer(child *c, int rc, const dcr_err *err, int exit_code)
{
	dcr_buf b;
	struct rusage ru;
	size_t i, mlen = rc ? strlen(err->msg) : 0;
	uint64_t cpu = 0, rss = 0;

	if (getrusage(RUSAGE_CHILDREN, &ru) == 0) {
		cpu = (uint64_t)ru.ru_utime.tv_sec * 1000 + (uint64_t)ru.ru_utime.tv_usec / 1000 +
		      (uint64_t)ru.ru_stime.tv_sec * 1000 + (uint64_t)ru.ru_stime.tv_usec / 1000;
		rss = (uint64_t)ru.ru_maxrss * 1024;
	}
	if (c->cpu_seen_ms > cpu)
		cpu = c->cpu_seen_ms;
	if (mlen > SBX_MSG_BYTES)
		mlen = SBX_MSG_BYTES;
	dcr_buf_init(&b);
	put_u64(&b, (uint64_t)(int64_t)rc);
	put_bytes(&b, err->msg, rc ? mlen : 0);
	put_u64(&b, (uint64_t)(int64_t)exit_code);
	put_u64(&b, c->start_ms ? dcr_mono_ms() - c->start_ms : 0);
	put_u64(&b, cpu);
	put_u64(&b, rss);
	put_u64(&b, c->uid);
	put_u64(&b, c->out_trunc);
	put_u64(&b, c->err_trunc);
	put_bytes(&b, c->out_log.data, c->out_log.len);
	put_bytes(&b, c->err_log.data, c->err_log.len);
	put_u64(&b, rc ? 0 : c->nfiles);
	for (i = 0; rc == 0 && i < c->nfiles; i++) {
		put_bytes(&b, c->files[i].name, strlen(c->files[i].name));
		put_bytes(&b, c->files[i].data, c->files[i].len);
	}
	if (write_full(1, b.data, b.len) < 0) {
		/* the caller is gone */
	}
	dcr_buf_release(&b);
}

int cmp_sandbox_child_main(int argc, char **argv)
{
	child c;
	dcr_err err;
	sigset_t set;
	int rc, exit_code = -1;
	size_t i;

	(void)argc;
	(void)argv;
	memset(&c, 0, sizeof c);
	c.sigfd = c.out_r = c.err_r = c.info_r = -1;
	dcr_buf_init(&c.out_log);
	dcr_buf_init(&c.err_log);
	dcr_buf_init(&c.info);
	dcr_buf_init(&c.err_tail);
	dcr_err_clear(&err);
	/* nothing of the caller's but the job socket (0, 1) and stderr (2) */
	if (syscall(SYS_close_range, 3u, ~0u, 0u) < 0)
		for (i = 3; i < 4096; i++)
			close((int)i);
	signal(SIGPIPE, SIG_IGN);
	/* the caller's death ends the run (the chain goes on through bwrap's
	 * --die-with-parent) */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		return 1;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	c.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (c.sigfd < 0 || prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		rc = dcr_err_set(&err, DCR_EUNAVAIL, "sandbox: signalfd or subreaper: %s",
		                 strerror(errno));
		goto out;
	}
	if ((rc = read_job_header(&c, &err)))
		goto out;
	if ((rc = build_mounts(&c, &err)))
		goto out;
	if ((rc = read_job_files(&c, &err)))
		goto out;
	if ((rc = start_bwrap(&c, &err)))
		goto out;
	watch(&c);
	c.started = c.info.len > 0 && memmem(c.info.data, c.info.len, "child-pid", 9) != NULL;
	if (c.bwrap_done)
		exit_code = WIFSIGNALED(c.bwrap_status) ? 128 + WTERMSIG(c.bwrap_status)
		                                        : WEXITSTATUS(c.bwrap_status);
	rc = verdict(&c, &err);
out:
	answer(&c, rc, &err, exit_code);
	for (i = 0; i < c.nfiles; i++) {
		free(c.files[i].name);
		free(c.files[i].data);
	}
	free(c.files);
	dcr_buf_release(&c.out_log);
	dcr_buf_release(&c.err_log);
	dcr_buf_release(&c.info);
	dcr_buf_release(&c.err_tail);
	if (c.sigfd >= 0)
		close(c.sigfd);
	return 0;
}

/* ---- availability ---------------------------------------------------------- */

bool cmp_sandbox_available(const char *self_exe, dcr_err *err)
{
	cmp_sandbox_spec spec;
	cmp_sandbox_out out;
	int rc;

	if (access(SBX_BWRAP, X_OK) < 0) {
		dcr_err_set(err, DCR_EUNAVAIL, "sandbox: %s: %s (install bubblewrap)", SBX_BWRAP,
		            strerror(errno));
		return false;
	}
	if (access(SBX_PYTHON, X_OK) < 0) {
		dcr_err_set(err, DCR_EUNAVAIL, "sandbox: %s: %s (install python3)", SBX_PYTHON,
		            strerror(errno));
		return false;
	}
	memset(&spec, 0, sizeof spec);
	spec.lang = CMP_LANG_PYTHON;
	spec.script = "";
	spec.limits.wall_ms = 30000;
	spec.self_exe = self_exe;
	cmp_sandbox_out_init(&out);
	rc = cmp_sandbox_run(&spec, &out, err);
	cmp_sandbox_out_release(&out);
	if (rc && rc != DCR_EUNAVAIL)
		dcr_err_prefix(err, "sandbox: a trial run failed");
	return rc == 0;
}
