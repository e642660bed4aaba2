/* fs_dev.c: development runs in the mount (dev/, docs/mount.md).
 *
 * Writing dev/NAME.sql, dev/NAME.py or dev/NAME.R runs it when the file is
 * closed: the close signs dev.requested with the script's text (inputs: an
 * SQL query's names, a python/r script's first line "# inputs: a, b";
 * rm_dev_infer_inputs, as `dcr dev run`), waits for the outcome, and keeps
 * what dev/NAME.out/ shows: status, the output files (result.csv of an SQL
 * run, the top-level files of a python/r run) and stdout and stderr. The
 * names are this mount's (the log knows runs by id; `dcr dev status`
 * lists them all); each entry holds at most FS_DEV_OUTPUT_BYTES_MAX of
 * output, checked against the hashes the daemon signed into the log. At
 * most FS_DEV_RUNS_MAX names are kept, the oldest dropped first.
 *
 * Locking: entries live in f->devs under f->mu; the close waits for the
 * run without it and matches the entry again by name and run id. */
#include <unistd.h>

#include "fs_int.h"

struct fs_dev {
	char *name; /* "counts.py" */
	enum rm_dev_lang lang;
	char run_id[33]; /* "" until dev.requested was accepted */
	bool closed;     /* its close ran it or was refused: NAME.out/ shows why */
	uint64_t gen;    /* bumped at every new write of the name */
	char *status;    /* the status file's text */
	dcr_buf result;  /* the result bytes (CSV or archive) */
	dcr_archive files;
	bool have_files;
	dcr_buf logs_buf;
	dcr_archive logs;
	bool have_logs;
	uint64_t mtime_ms;
	fs_dev *next;
};

static void dev_clear(fs_dev *e)
{
	free(e->status);
	e->status = NULL;
	if (e->have_files)
		dcr_archive_release(&e->files);
	if (e->have_logs)
		dcr_archive_release(&e->logs);
	e->have_files = e->have_logs = false;
	dcr_buf_release(&e->result);
	dcr_buf_release(&e->logs_buf);
	dcr_buf_init(&e->result);
	dcr_buf_init(&e->logs_buf);
	e->run_id[0] = 0;
	e->closed = false;
}

static void dev_free(fs_dev *e)
{
	dev_clear(e);
	free(e->name);
	free(e);
}

void fs__dev_free_all(fs *f)
{
	while (f->devs) {
		fs_dev *e = f->devs;
		f->devs = e->next;
		dev_free(e);
	}
	f->ndevs = 0;
}

static fs_dev *dev_find(fs *f, const char *name)
{
	for (fs_dev *e = f->devs; e; e = e->next)
		if (strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

bool fs__dev_may_create(fs *f)
{
	return f->be.dev_run && rm_check_dev(&f->st, f->opt.me, NULL) == 0;
}

/* "counts.out" -> the entry "counts.EXT" that ran. */
static fs_dev *dev_of_out(fs *f, const char *name)
{
	size_t n = strlen(name);
	if (n < 5 || strcmp(name + n - 4, ".out") != 0)
		return NULL;
	for (fs_dev *e = f->devs; e; e = e->next) {
		const char *dot = strrchr(e->name, '.');
		if (e->closed && dot && (size_t)(dot - e->name) == n - 4 &&
		    memcmp(e->name, name, n - 4) == 0)
			return e;
	}
	return NULL;
}

/* A top-level output file (names with '/' are not shown here) that does
 * not shadow status, stdout or stderr. */
static bool shown_file(const dcr_archive_entry *a)
{
	if (memchr(a->name, '/', a->name_len))
		return false;
	return !((a->name_len == 6 && memcmp(a->name, "status", 6) == 0) ||
	         (a->name_len == 6 && memcmp(a->name, "stdout", 6) == 0) ||
	         (a->name_len == 6 && memcmp(a->name, "stderr", 6) == 0));
}

static const dcr_archive_entry *dev_file(const fs_dev *e, const char *name, bool *is_log)
{
	size_t n = strlen(name);
	*is_log = false;
	if (e->have_logs && (strcmp(name, "stdout") == 0 || strcmp(name, "stderr") == 0)) {
		*is_log = true;
		return dcr_archive_find(&e->logs, name);
	}
	if (!e->have_files)
		return NULL;
	for (size_t i = 0; i < e->files.n; i++)
		if (e->files.e[i].name_len == n && memcmp(e->files.e[i].name, name, n) == 0 &&
		    shown_file(&e->files.e[i]))
			return &e->files.e[i];
	return NULL;
}

int fs__dev_resolve(fs *f, const struct desc *pd, const char *name, struct desc *d)
{
	if (pd->kind == K_DEV) {
		fs_dev *e = dev_find(f, name);
		if (e) {
			d->kind = K_DEV_SCRIPT;
			d->dev = e;
			return 0;
		}
		e = dev_of_out(f, name);
		if (!e)
			return -ENOENT;
		d->kind = K_DEV_OUT;
		d->dev = e;
		return 0;
	}
	DCR_ASSERT(pd->kind == K_DEV_OUT);
	d->dev = pd->dev;
	if (strcmp(name, "status") == 0) {
		d->kind = K_DEV_STATUS;
		return 0;
	}
	bool is_log;
	const dcr_archive_entry *a = dev_file(pd->dev, name, &is_log);
	if (!a)
		return -ENOENT;
	d->kind = K_DEV_FILE;
	d->dev_file = a->name; /* the entry's own bytes: file_of() finds it again */
	return 0;
}

void fs__dev_list(fs *f, const struct desc *d, void (*add)(void *ctx, const char *name),
                  void *ctx)
{
	if (d->kind == K_DEV) {
		for (fs_dev *e = f->devs; e; e = e->next) {
			add(ctx, e->name);
			if (e->closed) {
				const char *dot = strrchr(e->name, '.');
				char *out = dcr_asprintf("%.*s.out", (int)(dot - e->name), e->name);
				add(ctx, out);
				free(out);
			}
		}
		return;
	}
	DCR_ASSERT(d->kind == K_DEV_OUT);
	const fs_dev *e = d->dev;
	add(ctx, "status");
	if (e->have_logs) {
		add(ctx, "stdout");
		add(ctx, "stderr");
	}
	for (size_t i = 0; e->have_files && i < e->files.n; i++)
		if (shown_file(&e->files.e[i])) {
			char *n = dcr_strndup(e->files.e[i].name, e->files.e[i].name_len);
			add(ctx, n);
			free(n);
		}
}

int fs__dev_create(fs *f, const char *name, struct desc *d)
{
	enum rm_dev_lang lang;
	dcr_err err = {0};
	fs_dev *e;
	if (rm_dev_lang_of_file(name, &lang, &err) != 0 || strchr(name, '/') ||
	    strlen(name) > DCR_RM_NAME_BYTES_MAX) {
		free(f->last_error);
		f->last_error = dcr_asprintf("dev/%s: a development script is NAME.sql, NAME.py "
		                             "or NAME.R (at most %u bytes)",
		                             name, DCR_RM_NAME_BYTES_MAX);
		return -EINVAL;
	}
	if (rm_check_dev(&f->st, f->opt.me, &err) != 0) {
		free(f->last_error);
		f->last_error = dcr_asprintf("dev/%s: %s", name, err.msg);
		return -EACCES;
	}
	if (!f->be.dev_run)
		return -EACCES;
	e = dev_find(f, name);
	if (!e) {
		if (f->ndevs >= FS_DEV_RUNS_MAX) { /* drop the oldest */
			fs_dev **pp = &f->devs;
			while ((*pp)->next)
				pp = &(*pp)->next;
			dev_free(*pp);
			*pp = NULL;
			f->ndevs--;
		}
		e = dcr_calloc(1, sizeof *e);
		e->name = dcr_strdup(name);
		dcr_buf_init(&e->result);
		dcr_buf_init(&e->logs_buf);
		e->next = f->devs;
		f->devs = e;
		f->ndevs++;
	}
	dev_clear(e);
	e->lang = lang;
	e->gen++;
	e->mtime_ms = dcr_now_ms();
	e->status = dcr_strdup("written, not run yet: the run starts when the file is closed\n");
	d->kind = K_DEV_SCRIPT;
	d->dev = e;
	return 0;
}

/* The archive entry a K_DEV_FILE desc names (its name pointer). */
static const dcr_archive_entry *file_of(const struct desc *d)
{
	const fs_dev *e = d->dev;
	for (size_t i = 0; e->have_logs && i < e->logs.n; i++)
		if (e->logs.e[i].name == d->dev_file)
			return &e->logs.e[i];
	for (size_t i = 0; e->have_files && i < e->files.n; i++)
		if (e->files.e[i].name == d->dev_file)
			return &e->files.e[i];
	return NULL;
}

int fs__dev_content(fs *f, const struct desc *d, dcr_buf *out)
{
	const fs_dev *e = d->dev;
	switch (d->kind) {
	case K_DEV_SCRIPT: {
		const rm_dev *dv = e->run_id[0] ? rm_state_dev(&f->st, e->run_id) : NULL;
		if (dv)
			dcr_buf_append_str(out, dv->script);
		return 0;
	}
	case K_DEV_STATUS:
		dcr_buf_append_str(out, e->status ? e->status : "");
		return 0;
	case K_DEV_FILE: {
		const dcr_archive_entry *a = file_of(d);
		if (!a)
			return -ENOENT;
		dcr_buf_append(out, a->data, a->len);
		return 0;
	}
	default:
		return -ENOENT;
	}
}

uint64_t fs__dev_size(fs *f, const struct desc *d)
{
	dcr_buf b;
	if (d->kind == K_DEV_FILE) {
		const dcr_archive_entry *a = file_of(d);
		return a ? a->len : 0;
	}
	uint64_t n;
	dcr_buf_init(&b);
	fs__dev_content(f, d, &b);
	n = b.len;
	dcr_buf_release(&b);
	return n;
}

uint64_t fs__dev_mtime_ms(const struct desc *d)
{
	return d->dev ? d->dev->mtime_ms : 0;
}

/* Reads a whole object of a finished run (at most FS_DEV_OUTPUT_BYTES_MAX)
 * and checks it against the hash in the log. */
static int dev_fetch(fs *f, const char *run_id, const char *what, const uint8_t sha[32],
                     dcr_buf *out, dcr_err *err)
{
	uint8_t *buf = dcr_malloc(FS_IO_BYTES_MAX), got[32];
	int rc = 0;
	for (;;) {
		int n = f->be.dev_read(f->be.ctx, run_id, what, out->len, buf, FS_IO_BYTES_MAX, err);
		if (n < 0) {
			rc = n;
			break;
		}
		if (n == 0)
			break;
		if (out->len + (size_t)n > FS_DEV_OUTPUT_BYTES_MAX) {
			rc = dcr_err_set(err, DCR_ELIMIT,
			                 "the %s is larger than the mount shows (%u MiB): dcr dev "
			                 "result",
			                 what, FS_DEV_OUTPUT_BYTES_MAX >> 20);
			break;
		}
		dcr_buf_append(out, buf, (size_t)n);
	}
	free(buf);
	if (rc == 0) {
		dcr_sha256(out->data, out->len, got);
		if (memcmp(got, sha, 32) != 0)
			rc = dcr_err_set(err, DCR_EINTEGRITY, "the %s is not the one the log records",
			                 what);
	}
	return rc;
}

static char *status_text(const char *run_id, const rm_dev *dv, const fs_dev_status *st,
                         const char *note)
{
	dcr_buf b;
	char *s;
	dcr_buf_init(&b);
	dcr_buf_printf(&b, "run %s (%s): %s\n", run_id, dv ? rm_dev_lang_name(dv->lang) : "?",
	               st->state);
	if (st->error[0])
		dcr_buf_printf(&b, "error: %s%s%s\n", st->error, st->detail[0] ? ": " : "",
		               st->detail);
	if (dv) {
		dcr_buf_append_str(&b, "inputs:");
		for (size_t i = 0; i < dv->ninputs; i++)
			dcr_buf_printf(&b, "%s %s", i ? "," : "", dv->inputs[i].name);
		dcr_buf_append_str(&b, dv->ninputs ? "\n" : " none\n");
		if (dv->state == RM_RUN_DONE)
			dcr_buf_printf(&b, "result: %llu bytes, %llu ms\n",
			               (unsigned long long)dv->result_bytes,
			               (unsigned long long)dv->duration_ms);
	}
	if (note)
		dcr_buf_printf(&b, "%s\n", note);
	s = dcr_strdup(dcr_buf_cstr(&b));
	dcr_buf_release(&b);
	return s;
}

int fs__dev_submit(fs *f, const char *name, const void *script_p, size_t script_n)
{
	dcr_err err = {0};
	char run_id[33] = "", **inputs = NULL, *script = NULL, *note = NULL;
	size_t ninputs = 0;
	enum rm_dev_lang lang = RM_DEV_SQL;
	uint64_t gen = 0, t0 = dcr_mono_ms();
	uint8_t rsha[32], lsha[32];
	fs_dev_status st;
	dcr_buf result, logs;
	bool done = false, has_logs = false;
	int rc = 0;

	memset(&st, 0, sizeof st);
	dcr_buf_init(&result);
	dcr_buf_init(&logs);
	pthread_mutex_lock(&f->mu);
	fs_dev *e = dev_find(f, name);
	if (!e) {
		pthread_mutex_unlock(&f->mu);
		return 0; /* dropped meanwhile */
	}
	gen = e->gen;
	lang = e->lang;
	if (script_n == 0 || memchr(script_p, 0, script_n) || script_n > DCR_RM_SCRIPT_BYTES_MAX)
		rc = dcr_err_set(&err, DCR_EINVALID, "dev/%s: a script of 1 to %u bytes, no NUL",
		                 name, DCR_RM_SCRIPT_BYTES_MAX);
	if (rc == 0) {
		script = dcr_strndup(script_p, script_n);
		rc = rm_dev_infer_inputs(&f->st, lang, script, &inputs, &ninputs, &err);
	}
	for (size_t i = 0; rc == 0 && i < ninputs; i++)
		rc = rm_check_dev_input(&f->st, f->opt.me, inputs[i], &err);
	if (rc == 0)
		rc = rm_check_dev(&f->st, f->opt.me, &err);
	pthread_mutex_unlock(&f->mu);
	if (rc == 0)
		rc = f->be.dev_run(f->be.ctx, rm_dev_lang_name(lang), script,
		                   (const char *const *)inputs, ninputs, run_id, &err);
	if (rc < 0)
		goto refused;
	/* wait for the outcome (as writing `run` does for a computation) */
	for (;;) {
		rc = f->be.dev_status(f->be.ctx, run_id, &st, &err);
		if (rc < 0)
			break;
		done = strcmp(st.state, "done") == 0;
		if (done || strcmp(st.state, "failed") == 0)
			break;
		if (dcr_mono_ms() - t0 > FS_RUN_WAIT_MS_MAX) {
			note = dcr_strdup("still running: this mount stopped waiting (dcr dev status)");
			break;
		}
		usleep((f->opt.run_poll_ms ? f->opt.run_poll_ms : 50) * 1000u);
	}
	{
		dcr_err ferr = {0};
		fs__fetch_apply(f, &ferr); /* the outcome's event, for its hashes */
	}
	pthread_mutex_lock(&f->mu);
	{
		const rm_dev *dv = rm_state_dev(&f->st, run_id);
		bool fin = dv && dv->state != RM_RUN_QUEUED;
		if (fin) {
			memcpy(rsha, dv->result_sha256, 32);
			memcpy(lsha, dv->logs_sha256, 32);
			has_logs = dv->logs_blob && dv->logs_blob[0];
		}
		done = done && fin && dv->state == RM_RUN_DONE;
	}
	pthread_mutex_unlock(&f->mu);
	if (rc == 0 && done && dev_fetch(f, run_id, "result", rsha, &result, &err) < 0) {
		note = dcr_asprintf("the result is not shown here: %s", err.msg);
		dcr_buf_reset(&result);
		done = false; /* nothing unchecked is shown */
	}
	if (rc == 0 && has_logs && dev_fetch(f, run_id, "logs", lsha, &logs, &err) < 0) {
		char *n2 = dcr_asprintf("%s%sthe logs are not shown here: %s", note ? note : "",
		                        note ? "\n" : "", err.msg);
		free(note);
		note = n2;
		dcr_buf_reset(&logs);
	}
	if (rc < 0 && !note) {
		note = dcr_asprintf("not shown here: %s", err.msg);
		rc = 0;
	}
	pthread_mutex_lock(&f->mu);
	e = dev_find(f, name);
	if (e && e->gen == gen) {
		const rm_dev *dv = rm_state_dev(&f->st, run_id);
		memcpy(e->run_id, run_id, 33);
		e->closed = true;
		e->mtime_ms = dcr_now_ms();
		free(e->status);
		e->status = status_text(run_id, dv, &st, note);
		if (done && result.len) {
			dcr_err e2;
			dcr_buf_append(&e->result, result.data, result.len);
			if (lang == RM_DEV_SQL) {
				/* one file, result.csv */
				dcr_archive_entry one = {"result.csv", 10, NULL, 0};
				dcr_buf ar;
				dcr_buf_init(&ar);
				one.data = e->result.data;
				one.len = e->result.len;
				dcr_archive_write(&ar, &one, 1);
				dcr_buf_reset(&e->result);
				dcr_buf_append(&e->result, ar.data, ar.len);
				dcr_buf_release(&ar);
			}
			e->have_files = dcr_archive_read(e->result.data, e->result.len, &e->files,
			                                 &e2) == 0;
		} else if (done) {
			dcr_archive_entry one = {"result.csv", 10, (const uint8_t *)"", 0};
			if (lang == RM_DEV_SQL)
				dcr_archive_write(&e->result, &one, 1);
			else
				dcr_archive_write(&e->result, NULL, 0);
			dcr_err e2;
			e->have_files = dcr_archive_read(e->result.data, e->result.len, &e->files,
			                                 &e2) == 0;
		}
		if (logs.len) {
			dcr_err e2;
			dcr_buf_append(&e->logs_buf, logs.data, logs.len);
			e->have_logs = dcr_archive_read(e->logs_buf.data, e->logs_buf.len, &e->logs,
			                                &e2) == 0;
		}
		f->force_inval = true;
	}
	pthread_mutex_unlock(&f->mu);
	goto out;
refused:
	pthread_mutex_lock(&f->mu);
	e = dev_find(f, name);
	if (e && e->gen == gen) {
		free(e->status);
		e->status = dcr_asprintf("refused: %s\n", err.msg);
		e->closed = true;
		f->force_inval = true;
	}
	pthread_mutex_unlock(&f->mu);
	fs__set_last_error(f, name, &err);
	rc = err.code == DCR_EDENIED || err.code == DCR_ESTATE ? -EACCES : -EIO;
out:
	for (size_t i = 0; i < ninputs; i++)
		free(inputs[i]);
	free(inputs);
	free(script);
	free(note);
	dcr_buf_release(&result);
	dcr_buf_release(&logs);
	return rc;
}
