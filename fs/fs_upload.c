/* fs_upload.c: the upload and spool path of the mounted room.
 *
 * Local files ("lfiles") are the only mutable things: files being written
 * into datasets/NAME/ (and temporary files at the root, for editors of
 * room.json). Final names stream to the daemon as they are written, the
 * first FS_CHECK_BYTES_MAX bytes checked locally so a bad row fails its
 * write(2), and are committed at flush (close); temporary and editor
 * names (fs_is_temp_name) are spooled to a private local directory (0700,
 * files 0600) and are ingested only if renamed to a final name. Renaming
 * the provisioned file re-provisions it under the new name. An rm of the
 * provisioned file waits FS_RM_GRACE_MS and is undone when the next file
 * is rejected (pdep). Memory stays bounded: nothing holds a whole file. */
#include <fcntl.h>
#include <unistd.h>

#include "fs_int.h"

/* ---- pending rm and kept modes (f->mu held) -------------------------------- */

pdep *fs__pdep_find(fs *f, const char *ds)
{
	for (pdep *p = f->pending; p; p = p->next)
		if (!p->drop && strcmp(p->dataset, ds) == 0)
			return p;
	return NULL;
}

pdep *fs__pdep_for(fs *f, const char *ds, const char *name)
{
	if (!fs__is_append(f, ds))
		return fs__pdep_find(f, ds);
	for (pdep *p = f->pending; p && name; p = p->next)
		if (p->drop && strcmp(p->dataset, ds) == 0 && strcmp(p->file, name) == 0)
			return p;
	return NULL;
}

void fs__pdep_remove(fs *f, pdep *p)
{
	for (pdep **pp = &f->pending; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	free(p->dataset);
	free(p->file);
	free(p);
	f->force_inval = true;
}

/* Is this provision hidden by a pending rm? */
bool fs__pdep_hides(fs *f, const char *ds, const uint8_t sha256[32])
{
	pdep *p = fs__pdep_find(f, ds);
	return p && memcmp(p->sha256, sha256, 32) == 0;
}

pmeta *fs__pmeta_find(fs *f, const char *ds, const char *file, const uint8_t sha256[32],
                      bool create)
{
	for (pmeta *m = f->metas; m; m = m->next)
		if (strcmp(m->dataset, ds) == 0 && (m->file == file || (m->file && file &&
		                                                        strcmp(m->file, file) == 0))) {
			if (memcmp(m->sha256, sha256, 32) != 0) { /* another provision now */
				if (!create)
					return NULL;
				memcpy(m->sha256, sha256, 32);
				m->mode = -1;
				m->mtime_ns = 0;
			}
			return m;
		}
	if (!create)
		return NULL;
	pmeta *m = dcr_calloc(1, sizeof *m);
	m->dataset = dcr_strdup(ds);
	m->file = file ? dcr_strdup(file) : NULL;
	memcpy(m->sha256, sha256, 32);
	m->mode = -1;
	m->next = f->metas;
	f->metas = m;
	return m;
}

/* Applies the rm of provisioned files whose grace period is over (all of
 * them when `all`, at unmount). f->mu not held. */
void fs__pending_apply(fs *f, bool all)
{
	for (;;) {
		char *ds = NULL, *file = NULL;
		bool found = false, drop = false;
		pthread_mutex_lock(&f->mu);
		uint64_t now = dcr_mono_ms();
		for (pdep *p = f->pending; p; p = p->next) {
			if (p->uploads > 0 || (!all && now < p->due_ms))
				continue;
			/* Replaced meanwhile (a new file was provisioned): nothing to do. */
			const rm_provision *cur = rm_state_provision(&f->st, p->dataset);
			const rm_drop *dr = p->drop ? rm_state_drop(&f->st, p->dataset, p->file) : NULL;
			if (p->drop ? dr && memcmp(dr->sha256, p->sha256, 32) == 0
			            : cur && memcmp(cur->sha256, p->sha256, 32) == 0) {
				ds = dcr_strdup(p->dataset);
				file = dcr_strdup(p->file);
				drop = p->drop;
			}
			fs__pdep_remove(f, p);
			found = true;
			break;
		}
		pthread_mutex_unlock(&f->mu);
		if (!found)
			return;
		if (!ds)
			continue;
		dcr_err err = {0};
		dcr_buf body;
		dcr_buf_init(&body);
		if (drop)
			rm_body_withdrawn(&body, ds, file); /* one drop (fs_drops.c) */
		else
			rm_body_deprovisioned(&body, ds);
		int rc = f->be.submit(f->be.ctx, RM_EV_DEPROVISIONED, body.data, body.len, &err);
		dcr_buf_release(&body);
		if (rc < 0) {
			char *what = dcr_asprintf("rm %s/%s", ds, file);
			fs__set_last_error(f, what, &err);
			free(what);
		} else {
			fs__fetch_apply(f, &err);
		}
		free(ds);
		free(file);
	}
}

/* ---- local files ----------------------------------------------------------------- */

void fs__lfile_free(fs *f, lfile *l)
{
	if (l->up)
		f->be.upload_end(l->up, false, NULL);
	cmp_ingest_free(l->chk);
	if (l->fd >= 0)
		close(l->fd);
	if (l->spool) {
		unlink(l->spool);
		free(l->spool);
	}
	pthread_mutex_destroy(&l->mu);
	free(l->name);
	free(l->dataset);
	free(l);
}

/* New lfile at (dir, name); f->mu held. */
int fs__lfile_new(fs *f, uint64_t dir, const char *name, const char *dataset, lfile **out)
{
	if (f->nlfiles >= FS_SPOOL_FILES_MAX)
		return -EMFILE;
	lfile *l = dcr_calloc(1, sizeof *l);
	l->dir = dir;
	l->name = dcr_strdup(name);
	l->dataset = dataset ? dcr_strdup(dataset) : NULL;
	l->temp = fs_is_temp_name(name);
	l->fd = -1;
	l->mode = -1;
	l->mtime_ms = dcr_now_ms();
	pthread_mutex_init(&l->mu, NULL);
	if (l->temp) {
		l->spool =
		    dcr_asprintf("%s/%llu", f->spool_dir, (unsigned long long)++f->spool_seq);
		l->fd = open(l->spool, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (l->fd < 0) {
			int e = errno ? errno : EIO;
			free(l->spool);
			l->spool = NULL;
			fs__lfile_free(f, l);
			return -e;
		}
	}
	l->ino = fs__node_get(f, dir, name);
	l->linked = true;
	l->next = f->lfiles;
	f->lfiles = l;
	f->nlfiles++;
	*out = l;
	return 0;
}

/* Takes l out of the directory (it lives on while open). f->mu held. */
void fs__lfile_unlink(fs *f, lfile *l)
{
	for (lfile **pp = &f->lfiles; *pp; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			f->nlfiles--;
			break;
		}
	}
	l->linked = false;
	l->next = NULL;
	if (l->opens == 0)
		fs__lfile_free(f, l);
}

/* errno for a failed upload: the writer sees EINVAL for bad data. */
static int upload_errno(int code)
{
	int e = fs_errno(code);
	if (e == EIO || e == EACCES || e == EPERM || e == ENOSPC || e == EFBIG || e == ENOENT)
		return e;
	return EINVAL;
}

static char *upload_msg(const char *file, const dcr_err *err)
{
	char ts[32];
	fs__iso_time(dcr_now_ms(), ts);
	return dcr_asprintf("%s rejected %s: %s", ts, file,
	                    err->msg[0] ? err->msg : dcr_strerror(err->code));
}

/* An upload of dataset ds under `name` begins: it holds a pending rm of
 * the dataset's file (of an append dataset: of the drop of that name), if
 * any. Returns whether it does. f->mu not held. */
static bool hold_begin(fs *f, const char *ds, const char *name)
{
	pthread_mutex_lock(&f->mu);
	pdep *p = fs__pdep_for(f, ds, name);
	if (p)
		p->uploads++;
	pthread_mutex_unlock(&f->mu);
	return p != NULL;
}

/* The upload that held a pending rm ended. Accepted: the new file replaced
 * the old one, the rm has nothing left to do. Not accepted: the rm is
 * dropped, because a bad file must never cost the data already there. */
void fs__hold_end(fs *f, const char *ds, const char *name, bool accepted)
{
	pthread_mutex_lock(&f->mu);
	pdep *p = fs__pdep_for(f, ds, name);
	if (p && (accepted || --p->uploads <= 0)) {
		if (!accepted) {
			const char *prev = fs__get_dserr(f, ds);
			fs__set_dserr_locked(f, ds,
			                     dcr_asprintf("%s; the earlier rm of %s is undone: its "
			                                  "data stays provisioned",
			                                  prev ? prev : "upload abandoned",
			                                  p->file));
		}
		fs__pdep_remove(f, p);
	}
	pthread_mutex_unlock(&f->mu);
}

static void lfile_unhold(fs *f, lfile *l, bool accepted)
{
	if (l->holds) {
		l->holds = false;
		fs__hold_end(f, l->dataset, l->name, accepted);
	}
}

/* A temporary file of ds is being written (rsync's .NAME.XXXXXX, a drop's
 * x.tmp): a pending rm waits for it to be renamed, however long the
 * transfer, as long as it keeps being written. f->mu not held. */
void fs__pending_extend(fs *f, const char *ds)
{
	pthread_mutex_lock(&f->mu);
	for (pdep *p = f->pending; p; p = p->next) {
		if (strcmp(p->dataset, ds) != 0)
			continue;
		uint64_t due =
		    dcr_mono_ms() + (f->opt.rm_grace_ms ? f->opt.rm_grace_ms : FS_RM_GRACE_MS);
		if (due > p->due_ms)
			p->due_ms = due;
	}
	pthread_mutex_unlock(&f->mu);
}

/* Abandons the upload of l, if any: nothing is provisioned (lf->mu held). */
void fs__lfile_abandon(fs *f, lfile *l)
{
	if (l->up) {
		f->be.upload_end(l->up, false, NULL);
		l->up = NULL;
	}
	cmp_ingest_free(l->chk);
	l->chk = NULL;
	lfile_unhold(f, l, false);
}

/* The local check of a table dataset's file: the same validation as the
 * daemon's (compute's ingest, same schema, same label), over the first
 * FS_CHECK_BYTES_MAX bytes, so that the write(2) carrying a bad row fails
 * (shells ignore errors at close). NULL for file datasets. f->mu not held. */
static cmp_ingest *check_new(fs *f, const char *ds, const char *file)
{
	cmp_ingest *in = NULL;
	pthread_mutex_lock(&f->mu);
	const rm_dataset *d = f->st.def ? rm_def_dataset(f->st.def, ds) : NULL;
	if (d && d->kind == RM_DS_TABLE && d->ncolumns > 0) {
		cmp_column *c = dcr_calloc(d->ncolumns, sizeof *c);
		for (size_t i = 0; i < d->ncolumns; i++) {
			c[i].name = d->columns[i].name;
			c[i].type = d->columns[i].type;
			c[i].format = d->columns[i].format;
			c[i].nullable = d->columns[i].nullable;
		}
		cmp_schema sc = {c, d->ncolumns};
		if (cmp_ingest_new(&sc, file, &in) < 0)
			in = NULL; /* the daemon checks anyway */
		free(c);
	}
	pthread_mutex_unlock(&f->mu);
	return in;
}

/* Marks a streaming lfile failed (lf->mu held). Returns -errno. */
int fs__lfile_fail(fs *f, lfile *l, int code, const dcr_err *err)
{
	l->state = LF_FAILED;
	fs__set_dserr(f, l->dataset, upload_msg(l->name, err));
	fs__set_last_error(f, l->dataset, err);
	fs__lfile_abandon(f, l); /* after: may add that a pending rm is undone */
	return -upload_errno(code);
}

/* Streams n bytes to the upload of l (lf->mu held). */
int fs__lfile_stream(fs *f, lfile *l, const void *p, size_t n)
{
	dcr_err err = {0};
	int rc;
	if (l->state == LF_IDLE) {
		l->holds = hold_begin(f, l->dataset, l->name);
		rc = f->be.upload_begin(f->be.ctx, l->dataset, l->name, &l->up, &err);
		if (rc < 0) {
			l->up = NULL;
			return fs__lfile_fail(f, l, rc, &err);
		}
		l->state = LF_STREAM;
		l->chk = check_new(f, l->dataset, l->name);
		l->chk_bytes = 0;
	}
	if (l->chk) {
		rc = cmp_ingest_feed(l->chk, p, n, &err);
		if (rc < 0)
			return fs__lfile_fail(f, l, rc, &err);
		l->chk_bytes += n;
		if (l->chk_bytes >= FS_CHECK_BYTES_MAX) {
			cmp_ingest_free(l->chk);
			l->chk = NULL;
		}
	}
	rc = f->be.upload_write(l->up, p, n, &err);
	if (rc < 0)
		return fs__lfile_fail(f, l, rc, &err);
	return 0;
}

/* Keeps the mode and mtime a tool set on a file for the provision it just
 * became (the current one of ds; of an append dataset, its drop `name`).
 * f->mu not held. */
static void keep_meta(fs *f, const char *ds, const char *name, int mode, uint64_t mtime_ns)
{
	if (mode < 0 && !mtime_ns)
		return;
	pthread_mutex_lock(&f->mu);
	const rm_provision *p = rm_state_provision(&f->st, ds);
	const rm_drop *dr = p && fs__is_append(f, ds) ? rm_state_drop(&f->st, ds, name) : NULL;
	if (p && (dr || !fs__is_append(f, ds))) {
		pmeta *m = fs__pmeta_find(f, ds, dr ? dr->file : NULL, dr ? dr->sha256 : p->sha256,
		                          true);
		if (mode >= 0)
			m->mode = mode;
		if (mtime_ns)
			m->mtime_ns = mtime_ns;
	}
	pthread_mutex_unlock(&f->mu);
}

/* Commits a streaming lfile (lf->mu held). */
int fs__lfile_commit(fs *f, lfile *l)
{
	dcr_err err = {0};
	void *up = l->up;
	l->up = NULL;
	int rc = f->be.upload_end(up, true, &err);
	/* The same drop again (name and bytes): counted once, nothing changes
	 * (docs/rules.md "Drops"); the copy succeeds, as into a folder that
	 * already holds the file. */
	bool same = rc == DCR_EEXIST && l->dataset && fs__drop_known(f, l->dataset, l->name);
	if (rc < 0 && !same)
		return fs__lfile_fail(f, l, rc, &err);
	l->state = LF_DONE;
	cmp_ingest_free(l->chk);
	l->chk = NULL;
	char ts[32];
	fs__iso_time(dcr_now_ms(), ts);
	fs__set_dserr(f, l->dataset,
	              same ? dcr_asprintf("%s %s unchanged: the same file (name and SHA-256) is "
	                                  "already a drop of %s, counted once",
	                                  ts, l->name, l->dataset)
	                   : dcr_asprintf("%s %s %s (%llu bytes)", ts,
	                                  fs__drop_known(f, l->dataset, NULL) ? "dropped"
	                                                                      : "provisioned from",
	                                  l->name, (unsigned long long)l->size));
	fs__fetch_apply(f, &err);
	lfile_unhold(f, l, true);
	keep_meta(f, l->dataset, l->name, l->mode, l->mtime_ns);
	return 0;
}

/* Is the spooled file l, renamed to `name`, the provisioned file itself
 * (same name, same SHA-256)? Then there is nothing to upload and no event
 * to sign: `rsync -a` of an unchanged file (after a remount, which forgets
 * the kept mtime) changes nothing. Returns 1 (unchanged, the mode and
 * mtime set on l are kept), 0 (upload it) or -errno. buf: FS_IO_BYTES_MAX
 * bytes of scratch. lf->mu held. */
static int spool_unchanged(fs *f, lfile *l, const char *name, uint8_t *buf)
{
	uint8_t cur[32], sha[32];
	bool have = false;
	pthread_mutex_lock(&f->mu);
	const rm_provision *p = rm_state_provision(&f->st, l->dataset);
	if (p && p->file && strcmp(p->file, name) == 0 && p->bytes == l->size) {
		memcpy(cur, p->sha256, 32);
		have = true;
	} else if (p && p->ndrops) {
		have = fs__drop_same_size(f, l->dataset, name, l->size, cur);
	}
	pthread_mutex_unlock(&f->mu);
	if (!have)
		return 0;
	dcr_sha256_ctx *c = dcr_sha256_new();
	uint64_t off = 0;
	for (;;) {
		ssize_t r = pread(l->fd, buf, FS_IO_BYTES_MAX, (off_t)off);
		if (r < 0) {
			int e = errno;
			dcr_sha256_free(c);
			return -e;
		}
		if (r == 0)
			break;
		dcr_sha256_update(c, buf, (size_t)r);
		off += (uint64_t)r;
	}
	dcr_sha256_final(c, sha);
	dcr_sha256_free(c);
	if (memcmp(sha, cur, 32) != 0)
		return 0;
	char ts[32];
	fs__iso_time(dcr_now_ms(), ts);
	fs__set_dserr(f, l->dataset,
	              dcr_asprintf("%s %s unchanged (renamed from %s, same SHA-256 as the "
	                           "provisioned file): nothing uploaded",
	                           ts, name, l->name));
	keep_meta(f, l->dataset, name, l->mode, l->mtime_ns);
	return 1;
}

/* One upload of dataset ds under the file name `name`, its bytes read
 * with rd from offset 0 until it returns 0 (buf holds FS_IO_BYTES_MAX);
 * *bytes gets how many were sent. */
typedef int (*upload_read_fn)(void *ctx, uint64_t off, void *buf, size_t n, dcr_err *err);

static int upload_from(fs *f, const char *ds, const char *name, upload_read_fn rd, void *ctx,
                       uint8_t *buf, uint64_t *bytes, dcr_err *err)
{
	void *up = NULL;
	uint64_t off = 0;
	int rc = f->be.upload_begin(f->be.ctx, ds, name, &up, err);

	if (rc < 0)
		return rc;
	for (;;) {
		int r = rd(ctx, off, buf, FS_IO_BYTES_MAX, err);
		if (r < 0) {
			rc = r;
			break;
		}
		if (r == 0)
			break;
		rc = f->be.upload_write(up, buf, (size_t)r, err);
		if (rc < 0)
			break;
		off += (uint64_t)r;
	}
	if (rc < 0)
		f->be.upload_end(up, false, NULL);
	else
		rc = f->be.upload_end(up, true, err);
	*bytes = off;
	return rc;
}

/* upload_from's reader of a spooled temp file (ctx: its lfile). */
static int spool_read(void *ctx, uint64_t off, void *buf, size_t n, dcr_err *err)
{
	ssize_t r = pread(((lfile *)ctx)->fd, buf, n, (off_t)off);

	if (r < 0)
		return dcr_err_set(err, -errno, "spool read: %s", strerror(errno));
	return (int)r;
}

/* upload_from's reader of the provisioned file of a dataset, pinned by its
 * SHA-256, from the daemon. */
struct provisioned_src {
	fs *f;
	const char *ds;
	const uint8_t *sha256;
	const char *file; /* a drop of an append dataset; NULL: the provisioned file */
};

static int provisioned_read(void *ctx, uint64_t off, void *buf, size_t n, dcr_err *err)
{
	struct provisioned_src *p = ctx;
	if (p->file)
		return p->f->be.drop_read(p->f->be.ctx, p->ds, p->file, p->sha256, off, buf, n,
		                          err);
	return p->f->be.data_read(p->f->be.ctx, p->ds, p->sha256, off, buf, n, err);
}

/* Uploads a spooled temp file under the final name `name` (lf->mu held). */
int fs__lfile_ingest_spool(fs *f, lfile *l, const char *name)
{
	dcr_err err = {0};
	uint8_t *buf = dcr_malloc(FS_IO_BYTES_MAX);
	uint64_t off = 0;
	bool holds = hold_begin(f, l->dataset, name);
	int rc = spool_unchanged(f, l, name, buf);
	if (rc != 0) {
		free(buf);
		if (holds)
			fs__hold_end(f, l->dataset, name, rc > 0);
		return rc > 0 ? 0 : rc;
	}
	rc = upload_from(f, l->dataset, name, spool_read, l, buf, &off, &err);
	free(buf);
	char ts[32];
	fs__iso_time(dcr_now_ms(), ts);
	if (rc == DCR_EEXIST && fs__drop_known(f, l->dataset, name)) {
		/* the same drop raced in meanwhile: counted once */
		fs__set_dserr(f, l->dataset,
		              dcr_asprintf("%s %s unchanged: the same file is already a drop of "
		                           "%s, counted once",
		                           ts, name, l->dataset));
		if (holds)
			fs__hold_end(f, l->dataset, name, true);
		return 0;
	}
	if (rc < 0) {
		fs__set_dserr(f, l->dataset, upload_msg(name, &err));
		fs__set_last_error(f, l->dataset, &err);
		if (holds)
			fs__hold_end(f, l->dataset, name, false);
		return -upload_errno(rc);
	}
	fs__set_dserr(f, l->dataset,
	              dcr_asprintf("%s provisioned from %s (renamed from %s, %llu bytes)", ts, name,
	                           l->name, (unsigned long long)off));
	fs__fetch_apply(f, &err);
	if (holds)
		fs__hold_end(f, l->dataset, name, true);
	keep_meta(f, l->dataset, name, l->mode, l->mtime_ns);
	return 0;
}

/* Opens an lfile (f->mu held): pins it, applies O_TRUNC. */
int fs__lfile_open(fs *f, lfile *l, int flags, fs_file *h)
{
	if (!l->temp && (flags & O_ACCMODE) == O_RDONLY)
		return -EACCES; /* a dataset file being written is write-only */
	if (!l->temp && fs__wants_write(flags) && l->opens > 0) {
		/* A second writer would cut the first one's file: refused at
		 * open; the first goes on. */
		dcr_err err;
		dcr_err_set(&err, DCR_EEXIST,
		            "%s is being written by another process; a second writer is "
		            "refused (wait for the first to close it)",
		            l->name);
		char ts[32];
		fs__iso_time(dcr_now_ms(), ts);
		fs__set_dserr_locked(
		    f, l->dataset,
		    dcr_asprintf("%s refused a second writer of %s: %s", ts, l->name, err.msg));
		free(f->last_error);
		f->last_error = dcr_asprintf("%s %s: %s", ts, l->dataset, err.msg);
		return -EBUSY;
	}
	if (!l->temp && fs__wants_write(flags) && !(flags & O_TRUNC) && l->state != LF_IDLE &&
	    l->size > 0)
		return -EINVAL; /* no appending: write the whole file */
	l->opens++;
	h->lf = l;
	h->kind = K_LFILE;
	return 0;
}

int fs__lfile_truncate(fs *f, lfile *l, uint64_t size)
{
	int rc = 0;
	pthread_mutex_lock(&l->mu);
	if (l->temp) {
		if (ftruncate(l->fd, (off_t)size) < 0)
			rc = -errno;
		else
			l->size = size;
	} else if (size == l->size) {
		rc = 0;
	} else if (size == 0) {
		fs__lfile_abandon(f, l);
		l->state = LF_IDLE;
		l->size = 0;
	} else {
		rc = -EINVAL;
	}
	l->mtime_ms = dcr_now_ms();
	pthread_mutex_unlock(&l->mu);
	return rc;
}

/* The kernel keeps a name for up to FS_ENTRY_TIMEOUT after the file went
 * away (`touch x.csv` closed empty, a rejected upload): opening it for
 * writing then is creating it anew, as in a local folder. f->mu held. */
int fs__reopen_gone(fs *f, uint64_t ino, struct desc *d)
{
	node *n = fs__node_at(f, ino);
	struct desc pd;
	lfile *l;
	if (!n || !n->name || fs__resolve(f, n->parent, &pd) < 0 || pd.kind != K_DS ||
	    fs__reserved_ds_name(n->name))
		return -ENOENT;
	if (!rm_is_owner(f->st.def, f->opt.me, pd.ds))
		return -EACCES;
	int rc = fs__lfile_new(f, n->parent, n->name, pd.ds, &l);
	if (rc < 0)
		return rc;
	memset(d, 0, sizeof *d);
	d->kind = K_LFILE;
	d->lf = l;
	d->ds = l->dataset;
	return 0;
}

/* Renames the provisioned file of ds (pinned by sha256) to a final name:
 * the file is read back from the daemon and provisioned under the new
 * name (the log names every provisioned file; there is no rename event).
 * This is how `sed -i` and `perl -pi` finish: their work file, provisioned
 * at its close, is renamed over the real name. f->mu not held. */
int fs__reprovision_as(fs *f, const char *ds, const uint8_t sha256[32], const char *name)
{
	return fs__reprovision_from(f, ds, NULL, sha256, name);
}

int fs__reprovision_from(fs *f, const char *ds, const char *file, const uint8_t sha256[32],
                         const char *name)
{
	dcr_err err = {0};
	uint8_t *buf = dcr_malloc(FS_IO_BYTES_MAX);
	uint64_t off = 0;
	bool holds = hold_begin(f, ds, name);
	struct provisioned_src src = {f, ds, sha256, file};
	int rc = upload_from(f, ds, name, provisioned_read, &src, buf, &off, &err);
	free(buf);
	if (rc < 0) {
		fs__set_dserr(f, ds, upload_msg(name, &err));
		fs__set_last_error(f, ds, &err);
		if (holds)
			fs__hold_end(f, ds, name, false);
		return rc == DCR_ESTATE ? -ESTALE : -upload_errno(rc);
	}
	char ts[32];
	fs__iso_time(dcr_now_ms(), ts);
	fs__set_dserr(f, ds,
	              dcr_asprintf("%s provisioned from %s (renamed, %llu bytes)", ts, name,
	                           (unsigned long long)off));
	fs__fetch_apply(f, &err);
	if (holds)
		fs__hold_end(f, ds, name, true);
	return 0;
}
