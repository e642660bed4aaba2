/* fuse_ll.c: the one file that speaks the libfuse3 low-level API.
 *
 * A thin adapter: each FUSE request becomes one fs_* call of the core
 * (fs_core.c) and its result a reply; -errno goes back as is. Every file is
 * opened with direct_io, so the kernel never serves stale contents of the
 * generated files from its page cache, and writes reach the core in order
 * and in 1 MiB pieces (max_write; asynchronous direct I/O is turned off so
 * the pieces of one write(2) are not sent in parallel).
 *
 * A background thread (the poller) asks the core for new events every
 * poll_ms and invalidates the inodes it reports with
 * fuse_lowlevel_notify_inval_inode; the notifications come from that
 * thread, never from inside a request handler. The same thread reports
 * readiness: it stat()s the mountpoint (served by this process once the
 * loop runs) and then writes "ok\n" to the ready fd. */
#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"

#define FS_ATTR_TIMEOUT_S  1.0
#define FS_ENTRY_TIMEOUT_S 1.0

typedef struct ll {
	fs *f;
	struct fuse_session *se;
	char *mountpoint;
	unsigned poll_ms;
	int ready_fd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	struct fuse_conn_info_opts *conn_opts;
} ll;

static fs *F(fuse_req_t req)
{
	return ((ll *)fuse_req_userdata(req))->f;
}

static void to_stat(const fs_attr *a, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_size = (off_t)a->size;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_blksize = a->blksize;
	st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
	if (a->mtime_ns) {
		st->st_mtim.tv_sec = (time_t)(a->mtime_ns / 1000000000u);
		st->st_mtim.tv_nsec = (long)(a->mtime_ns % 1000000000u);
	} else {
		st->st_mtim.tv_sec = (time_t)(a->mtime_ms / 1000);
		st->st_mtim.tv_nsec = (long)(a->mtime_ms % 1000) * 1000000L;
	}
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

static void reply_entry(fuse_req_t req, const fs_attr *a)
{
	struct fuse_entry_param e;
	memset(&e, 0, sizeof e);
	e.ino = a->ino;
	e.generation = 1;
	e.attr_timeout = FS_ATTR_TIMEOUT_S;
	e.entry_timeout = FS_ENTRY_TIMEOUT_S;
	to_stat(a, &e.attr);
	fuse_reply_entry(req, &e);
}

static void ll_init(void *userdata, struct fuse_conn_info *conn)
{
	ll *l = userdata;
	if (l->conn_opts)
		fuse_apply_conn_info_opts(l->conn_opts, conn);
	conn->max_write = FS_IO_BYTES_MAX;
	conn->max_read = FS_IO_BYTES_MAX;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	conn->want &= ~(unsigned)FUSE_CAP_ASYNC_DIO;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fs_attr a;
	int rc = fs_lookup(F(req), parent, name, &a);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		reply_entry(req, &a);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	/* inode numbers are never reused; nothing to free */
	fuse_reply_none(req);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fs_attr a;
	struct stat st;
	int rc = fs_getattr(F(req), ino, &a);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	to_stat(&a, &st);
	fuse_reply_attr(req, &st, FS_ATTR_TIMEOUT_S);
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
	fs_attr a;
	struct stat st;
	int64_t size = (to_set & FUSE_SET_ATTR_SIZE) ? (int64_t)attr->st_size : -1;
	int mode = (to_set & FUSE_SET_ATTR_MODE) ? (int)(attr->st_mode & 07777) : -1;
	int64_t mtime_ns = -1;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		mtime_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	} else if (to_set & FUSE_SET_ATTR_MTIME) {
		mtime_ns = (int64_t)attr->st_mtim.tv_sec * 1000000000 + attr->st_mtim.tv_nsec;
	}
	fs_file *h = fi ? (fs_file *)(uintptr_t)fi->fh : NULL;
	int rc = fs_setattr(F(req), ino, h, size, mode, mtime_ns, &a);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	to_stat(&a, &st);
	fuse_reply_attr(req, &st, FS_ATTR_TIMEOUT_S);
}

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fs_dir *d;
	int rc = fs_opendir(F(req), ino, &d);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi) != 0)
		fs_dir_free(d);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	fs_dir *d = (fs_dir *)(uintptr_t)fi->fh;
	char *buf = dcr_malloc(size);
	size_t used = 0;
	/* offsets: 1 ".", 2 "..", 3.. the entries */
	for (off_t i = off; i < (off_t)d->n + 2; i++) {
		struct stat st;
		memset(&st, 0, sizeof st);
		const char *name;
		if (i == 0) {
			name = ".";
			st.st_ino = ino;
			st.st_mode = S_IFDIR;
		} else if (i == 1) {
			name = "..";
			st.st_ino = FS_ROOT_INO;
			st.st_mode = S_IFDIR;
		} else {
			name = d->ents[i - 2].name;
			st.st_ino = d->ents[i - 2].ino;
			st.st_mode = d->ents[i - 2].mode;
		}
		size_t need = fuse_add_direntry(req, buf + used, size - used, name, &st, i + 1);
		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fs_dir_free((fs_dir *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/* Is the task closing the file dying of a signal? /proc/PID/stat: flags
 * (field 9) has PF_EXITING once do_exit runs, and exit_code (field 52) is
 * the signal number for a killed task, status << 8 for a normal exit. A
 * process that exits normally without closing its files commits them. */
static bool killed_writer(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *fp = fopen(path, "re");
	if (!fp)
		return false;
	size_t n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* the command name may hold spaces */
	if (!p)
		return false;
	unsigned long long flags = 0;
	long long exit_code = 0;
	int field = 2;
	for (char *save = NULL, *t = strtok_r(p + 1, " ", &save); t;
	     t = strtok_r(NULL, " ", &save)) {
		field++;
		if (field == 9)
			flags = strtoull(t, NULL, 10);
		else if (field == 52)
			exit_code = strtoll(t, NULL, 10);
	}
	return (flags & 0x4) && (exit_code & 0x7f) != 0; /* PF_EXITING, by a signal */
}

/* Thread group (process) of the requesting thread; 0 if unknown. */
static uint64_t caller_tgid(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	char path[64], line[128];
	uint64_t tgid = 0;
	if (!ctx || ctx->pid <= 0)
		return 0;
	snprintf(path, sizeof path, "/proc/%d/status", (int)ctx->pid);
	FILE *fp = fopen(path, "re");
	if (!fp)
		return 0;
	while (fgets(line, sizeof line, fp))
		if (strncmp(line, "Tgid:", 5) == 0) {
			tgid = strtoull(line + 5, NULL, 10);
			break;
		}
	fclose(fp);
	return tgid;
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fs_file *h;
	int rc = fs_open(F(req), ino, fi->flags, &h);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fs_file_set_opener(h, caller_tgid(req));
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	if (fuse_reply_open(req, fi) != 0)
		fs_release(F(req), h); /* interrupted: the kernel will not release */
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
	fs_file *h;
	fs_attr a;
	int rc = fs_create(F(req), parent, name, fi->flags, &a, &h);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof e);
	e.ino = a.ino;
	e.generation = 1;
	e.attr_timeout = FS_ATTR_TIMEOUT_S;
	e.entry_timeout = FS_ENTRY_TIMEOUT_S;
	to_stat(&a, &e.attr);
	fs_file_set_opener(h, caller_tgid(req));
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	if (fuse_reply_create(req, &e, fi) != 0)
		fs_release(F(req), h);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	if (size > FS_IO_BYTES_MAX)
		size = FS_IO_BYTES_MAX;
	char *buf = dcr_malloc(size ? size : 1);
	ssize_t r = fs_read(F(req), (fs_file *)(uintptr_t)fi->fh, (uint64_t)off, buf, size);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

static bool req_interrupted(void *req)
{
	return fuse_req_interrupted(req) != 0;
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
	/* Writing `run` waits for the run: a signal (^C, kill) ends the wait. */
	fs_set_interrupt(req_interrupted, req);
	ssize_t r = fs_write(F(req), (fs_file *)(uintptr_t)fi->fh, (uint64_t)off, buf, size);
	fs_set_interrupt(NULL, NULL);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_write(req, (size_t)r);
}

static void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	bool killed = ctx && ctx->pid > 0 && killed_writer(ctx->pid);
	int rc = fs_flush(F(req), (fs_file *)(uintptr_t)fi->fh, caller_tgid(req), killed);
	fuse_reply_err(req, rc < 0 ? -rc : 0);
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fs_release(F(req), (fs_file *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0); /* data is committed at close */
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	int rc = fs_unlink(F(req), parent, name);
	fuse_reply_err(req, rc < 0 ? -rc : 0);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
	int rc = fs_rename(F(req), parent, name, newparent, newname, flags);
	fuse_reply_err(req, rc < 0 ? -rc : 0);
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	fuse_reply_err(req, EACCES);
}

static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EACCES);
}

/* access(2) from the modes fs_getattr computes for this identity. */
static void ll_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	fs_attr a;
	int rc = fs_getattr(F(req), ino, &a);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	mode_t need = 0;
	if (mask & R_OK)
		need |= 0400;
	if (mask & W_OK)
		need |= 0200;
	if (mask & X_OK)
		need |= 0100;
	fuse_reply_err(req, (a.mode & need) == need ? 0 : EACCES);
}

static void ll_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	memset(&sv, 0, sizeof sv);
	sv.f_bsize = FS_BLKSIZE;
	sv.f_frsize = 4096;
	sv.f_blocks = sv.f_bfree = sv.f_bavail = (fsblkcnt_t)1 << 32; /* 16 TiB: no quota here */
	sv.f_files = sv.f_ffree = sv.f_favail = 1u << 20;
	sv.f_namemax = FS_NAME_BYTES_MAX;
	fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops ops = {
    .init = ll_init,
    .lookup = ll_lookup,
    .forget = ll_forget,
    .getattr = ll_getattr,
    .setattr = ll_setattr,
    .opendir = ll_opendir,
    .readdir = ll_readdir,
    .releasedir = ll_releasedir,
    .open = ll_open,
    .create = ll_create,
    .read = ll_read,
    .write = ll_write,
    .flush = ll_flush,
    .release = ll_release,
    .fsync = ll_fsync,
    .unlink = ll_unlink,
    .rename = ll_rename,
    .mkdir = ll_mkdir,
    .rmdir = ll_rmdir,
    .statfs = ll_statfs,
    .access = ll_access,
};

/* ---- the poller ------------------------------------------------------------------ */

static void ready(ll *l, const char *msg)
{
	if (l->ready_fd < 0)
		return;
	size_t n = strlen(msg);
	while (n > 0) {
		ssize_t w = write(l->ready_fd, msg, n);
		if (w <= 0)
			break;
		msg += w;
		n -= (size_t)w;
	}
	close(l->ready_fd);
	l->ready_fd = -1;
}

static bool wait_stop(ll *l, unsigned ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&l->mu);
	if (!l->stop)
		pthread_cond_timedwait(&l->cv, &l->mu, &ts);
	bool stop = l->stop;
	pthread_mutex_unlock(&l->mu);
	return stop;
}

static void *poller(void *arg)
{
	ll *l = arg;
	struct stat st;
	/* Served by our own loop: returns once the mount answers. */
	if (stat(l->mountpoint, &st) == 0 && st.st_ino == FS_ROOT_INO) {
		ready(l, "ok\n");
	} else {
		char msg[256];
		snprintf(msg, sizeof msg, "the mount at %s does not answer\n", l->mountpoint);
		ready(l, msg);
	}
	while (!wait_stop(l, l->poll_ms)) {
		uint64_t *changed = NULL;
		size_t n = 0;
		dcr_err err = {0};
		/* daemon away: keep serving what we know (status and README say
		 * so; those are invalidated), retry */
		fs_refresh(l->f, &changed, &n, &err);
		for (size_t i = 0; i < n; i++) {
			pthread_mutex_lock(&l->mu);
			bool stop = l->stop;
			pthread_mutex_unlock(&l->mu);
			if (stop)
				break;
			fuse_lowlevel_notify_inval_inode(l->se, changed[i], 0, 0);
		}
		free(changed);
	}
	return NULL;
}

int fs_fuse_run(fs *f, const char *mountpoint, int ready_fd, unsigned poll_ms, bool debug,
                dcr_err *err)
{
	char max_read[64], max_write[64];
	snprintf(max_read, sizeof max_read, "max_read=%u", FS_IO_BYTES_MAX);
	snprintf(max_write, sizeof max_write, "max_write=%u", FS_IO_BYTES_MAX);
	char *argv[] = {(char *)"dcr-mount", (char *)"-o", (char *)"fsname=dcr,subtype=dcr",
	                (char *)"-o",        max_read,     (char *)"-o",
	                max_write,           (char *)"-d", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(debug ? 8 : 7, argv);
	ll l;
	pthread_t th;
	bool th_started = false, mounted = false, handlers = false;
	int rc = 0;

	memset(&l, 0, sizeof l);
	l.f = f;
	l.mountpoint = dcr_strdup(mountpoint);
	l.poll_ms = poll_ms ? poll_ms : 200;
	l.ready_fd = ready_fd;
	pthread_mutex_init(&l.mu, NULL);
	pthread_cond_init(&l.cv, NULL);

	/* -o max_write=: for conn->max_write, applied in init */
	l.conn_opts = fuse_parse_conn_info_opts(&args);
	if (!l.conn_opts) {
		rc = dcr_err_set(err, DCR_EINTERNAL, "fuse: bad connection options");
		goto out;
	}
	l.se = fuse_session_new(&args, &ops, sizeof ops, &l);
	if (!l.se) {
		rc = dcr_err_set(err, DCR_EINTERNAL, "fuse: cannot create the session");
		goto out;
	}
	if (fuse_set_signal_handlers(l.se) != 0) {
		rc = dcr_err_set(err, DCR_EINTERNAL, "fuse: cannot install signal handlers");
		goto out;
	}
	handlers = true;
	if (fuse_session_mount(l.se, mountpoint) != 0) {
		rc = dcr_err_set(err, -EIO,
		                 "cannot mount on %s (is /dev/fuse usable and "
		                 "fusermount3 installed?)",
		                 mountpoint);
		goto out;
	}
	mounted = true;
	if (pthread_create(&th, NULL, poller, &l) != 0) {
		rc = dcr_err_set(err, -EAGAIN, "cannot start the poller thread");
		goto out;
	}
	th_started = true;
	struct fuse_loop_config cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.clone_fd = 0;
	cfg.max_idle_threads = 16;
	rc = fuse_session_loop_mt(l.se, &cfg);
	rc = rc > 0 ? 0 : rc; /* a signal value: a clean stop */
	if (rc < 0)
		dcr_err_set(err, rc, "fuse loop: %s", strerror(-rc));
out:
	if (th_started) {
		pthread_mutex_lock(&l.mu);
		l.stop = true;
		pthread_cond_broadcast(&l.cv);
		pthread_mutex_unlock(&l.mu);
		pthread_join(th, NULL);
	}
	if (mounted)
		fuse_session_unmount(l.se);
	if (handlers)
		fuse_remove_signal_handlers(l.se);
	if (l.se)
		fuse_session_destroy(l.se);
	free(l.conn_opts);
	fuse_opt_free_args(&args);
	if (l.ready_fd >= 0 && rc < 0) {
		char msg[DCR_ERR_MSG_BYTES + 2];
		snprintf(msg, sizeof msg, "%s\n", err && err->msg[0] ? err->msg : "mount failed");
		ready(&l, msg);
	} else if (l.ready_fd >= 0) {
		close(l.ready_fd);
	}
	pthread_mutex_destroy(&l.mu);
	pthread_cond_destroy(&l.cv);
	free(l.mountpoint);
	return rc;
}
