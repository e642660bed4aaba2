/* test_fs_core.c: the filesystem core against an in-memory fake daemon,
 * without mounting anything.
 *
 * The fake keeps one room's log, validates every submitted event with the
 * same rm_apply the daemon uses, "validates" uploaded CSV (every row must
 * have as many fields as the header, checked as the bytes arrive) and
 * completes runs at once, signing run.completed with its own key. Each
 * identity (anna: creator, owner of bank_customers, analyst of overlap;
 * ian: owner of insurer_customers; eve: outsider) gets its own fs. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../fs/fs.h"
#include "../../room/room.h"

#include "test.h"

/* ---- the fake daemon --------------------------------------------------------- */

typedef struct fake_result {
	char run_id[33];
	char *csv;
} fake_result;

typedef struct fake {
	dcr_key *daemon;
	uint8_t daemon_pub[32];
	uint8_t room[ES_ROOM_ID_BYTES];
	rm_state st;
	dcr_buf *entries;
	size_t n;
	fake_result results[64];
	size_t nresults;
	unsigned blobs;
	unsigned uploads_open;
	bool down; /* the daemon does not answer */
	bool lying; /* the witness refuses the host (proto/witness.h) */
	struct {
		char *dataset;
		char *file;    /* a drop of an append dataset; NULL: the dataset's file */
		dcr_buf bytes; /* the last committed upload, for data_read */
	} files[16];
	size_t nfiles;
} fake;

typedef struct fake_user {
	fake *fk;
	dcr_key *key;
	uint8_t pub[32];
} fake_user;

static int fake_append(fake *fk, const dcr_key *k, const char *type, const void *body, size_t n,
                       dcr_err *err)
{
	dcr_buf e;
	es_event ev;
	dcr_buf_init(&e);
	int rc = es_event_build(k, fk->room, fk->n, dcr_now_ms(), type, body, n, &e, err);
	if (rc == 0)
		rc = es_event_decode(e.data, e.len, &ev, err);
	if (rc < 0) {
		dcr_buf_release(&e);
		return rc;
	}
	rc = rm_apply(&fk->st, &ev, err);
	es_event_release(&ev);
	if (rc < 0) {
		dcr_buf_release(&e);
		return rc;
	}
	fk->entries = dcr_realloc(fk->entries, (fk->n + 1) * sizeof *fk->entries);
	fk->entries[fk->n++] = e;
	return 0;
}

static int fk_events(void *ctx, uint64_t from,
                     int (*fn)(void *fctx, uint64_t seq, const void *entry, size_t n), void *fctx,
                     dcr_err *err)
{
	fake_user *u = ctx;
	if (u->fk->down)
		return dcr_err_set(err, -EIO, "daemon at /fake/sock unreachable");
	if (u->fk->lying)
		return dcr_err_set(err, DCR_EINTEGRITY,
		                   "room r: the host shows another log of the same size");
	for (uint64_t i = from; i < u->fk->n; i++) {
		int rc = fn(fctx, i, u->fk->entries[i].data, u->fk->entries[i].len);
		if (rc)
			return rc;
	}
	return 0;
}

static int fk_submit(void *ctx, const char *type, const void *body, size_t n, dcr_err *err)
{
	fake_user *u = ctx;
	return fake_append(u->fk, u->key, type, body, n, err);
}

typedef struct fk_upload {
	fake_user *u;
	char *dataset, *file;
	dcr_sha256_ctx *sha;
	uint64_t bytes, line, rows;
	int header_fields, fields;
	bool in_header, failed;
	dcr_buf data;
} fk_upload;

static int fk_upload_begin(void *ctx, const char *dataset, const char *file_name, void **up,
                           dcr_err *err)
{
	fake_user *u = ctx;
	int rc = rm_check_provision(&u->fk->st, u->pub, dataset, err);
	if (rc < 0)
		return rc;
	fk_upload *x = dcr_calloc(1, sizeof *x);
	x->u = u;
	x->dataset = dcr_strdup(dataset);
	x->file = dcr_strdup(file_name);
	x->sha = dcr_sha256_new();
	dcr_buf_init(&x->data);
	x->line = 1;
	x->fields = 1;
	x->in_header = true;
	u->fk->uploads_open++;
	*up = x;
	return 0;
}

static int fk_upload_write(void *up, const void *p, size_t n, dcr_err *err)
{
	fk_upload *x = up;
	const char *s = p;
	if (x->failed)
		return dcr_err_set(err, DCR_ECSV, "upload already failed");
	dcr_sha256_update(x->sha, p, n);
	dcr_buf_append(&x->data, p, n);
	for (size_t i = 0; i < n; i++) {
		x->bytes++;
		if (s[i] == ',') {
			x->fields++;
		} else if (s[i] == '\n') {
			if (x->in_header) {
				x->header_fields = x->fields;
				x->in_header = false;
			} else if (x->fields != x->header_fields) {
				x->failed = true;
				return dcr_err_set(
				    err, DCR_ECSV, "line %llu, column %d: expected %d fields",
				    (unsigned long long)x->line, x->fields, x->header_fields);
			} else {
				x->rows++;
			}
			x->line++;
			x->fields = 1;
		}
	}
	return 0;
}

static int fk_upload_end(void *up, bool commit, dcr_err *err)
{
	fk_upload *x = up;
	int rc = 0;
	x->u->fk->uploads_open--;
	if (!commit)
		goto out;
	if (x->failed || x->in_header || x->fields != 1) {
		rc = dcr_err_set(err, DCR_ECSV, "line %llu: incomplete CSV",
		                 (unsigned long long)x->line);
		goto out;
	}
	rm_provision p;
	memset(&p, 0, sizeof p);
	p.dataset = x->dataset;
	dcr_sha256_final(x->sha, p.sha256);
	char blob[32];
	snprintf(blob, sizeof blob, "blob-%u", ++x->u->fk->blobs);
	p.blob = blob;
	p.bytes = x->bytes;
	p.rows = x->rows;
	p.file = x->file;
	dcr_buf body;
	dcr_buf_init(&body);
	rm_body_provisioned(&body, &p);
	rc = fake_append(x->u->fk, x->u->key, RM_EV_PROVISIONED, body.data, body.len, err);
	dcr_buf_release(&body);
	if (rc == 0) {
		fake *fk = x->u->fk;
		const char *drop = rm_def_dataset(fk->st.def, x->dataset)->append ? x->file : NULL;
		size_t i;
		for (i = 0; i < fk->nfiles && (strcmp(fk->files[i].dataset, x->dataset) != 0 ||
		                               (drop && strcmp(fk->files[i].file, drop) != 0));
		     i++)
			;
		DCR_ASSERT(i < 16);
		if (i == fk->nfiles) {
			fk->files[fk->nfiles].dataset = dcr_strdup(x->dataset);
			fk->files[fk->nfiles].file = drop ? dcr_strdup(drop) : NULL;
			dcr_buf_init(&fk->files[fk->nfiles++].bytes);
		}
		dcr_buf_reset(&fk->files[i].bytes);
		dcr_buf_append(&fk->files[i].bytes, x->data.data, x->data.len);
	}
out:
	dcr_buf_release(&x->data);
	dcr_sha256_free(x->sha);
	free(x->dataset);
	free(x->file);
	free(x);
	return rc;
}

static int fk_run(void *ctx, const char *computation, char run_id[33], dcr_err *err)
{
	fake_user *u = ctx;
	fake *fk = u->fk;
	uint8_t rnd[16];
	dcr_buf body;
	dcr_random(rnd, sizeof rnd);
	dcr_hex_encode(rnd, 16, run_id);
	dcr_buf_init(&body);
	rm_body_run_requested(&body, computation, run_id);
	int rc = fake_append(fk, u->key, RM_EV_RUN_REQUESTED, body.data, body.len, err);
	dcr_buf_release(&body);
	if (rc < 0)
		return rc;
	/* the fake computes at once */
	DCR_ASSERT(fk->nresults < 64);
	fake_result *res = &fk->results[fk->nresults++];
	memcpy(res->run_id, run_id, 33);
	res->csv = dcr_asprintf("city,n\nParis,%zu\n", fk->nresults * 10);
	rm_run r;
	memset(&r, 0, sizeof r);
	r.id = run_id;
	r.computation = (char *)computation;
	r.state = RM_RUN_DONE;
	dcr_sha256(res->csv, strlen(res->csv), r.result_sha256);
	r.result_blob = (char *)"result-blob";
	r.rows = 1;
	r.suppressed = 2;
	r.result_bytes = strlen(res->csv);
	r.duration_ms = 3;
	rm_run_col cols[] = {{(char *)"city", CMP_STRING}, {(char *)"n", CMP_INTEGER}};
	const rm_run *q = rm_state_run(&fk->st, run_id);
	r.cols = cols;
	r.ncols = 2;
	r.inputs = q ? q->inputs : NULL;
	r.ninputs = q ? q->ninputs : 0;
	dcr_buf_init(&body);
	rm_body_run_completed(&body, &r);
	rc = fake_append(fk, fk->daemon, RM_EV_RUN_COMPLETED, body.data, body.len, err);
	dcr_buf_release(&body);
	return rc;
}

static int fk_run_status(void *ctx, const char *computation, fs_run_status *st, dcr_err *err)
{
	fake_user *u = ctx;
	const rm_run *r = rm_state_last_run(&u->fk->st, computation);
	memset(st, 0, sizeof *st);
	if (!r) {
		snprintf(st->state, sizeof st->state, "none");
		return 0;
	}
	memcpy(st->run_id, r->id, 33);
	snprintf(st->state, sizeof st->state, "%s",
	         r->state == RM_RUN_DONE     ? "done"
	         : r->state == RM_RUN_FAILED ? "failed"
	                                     : "queued");
	st->rows = r->rows;
	st->suppressed = r->suppressed;
	return 0;
}

static const char *fk_result(fake *fk, const char *run_id)
{
	for (size_t i = 0; i < fk->nresults; i++)
		if (strcmp(fk->results[i].run_id, run_id) == 0)
			return fk->results[i].csv;
	return NULL;
}

static int fk_result_open(void *ctx, const char *computation, char run_id[33], uint64_t *size,
                          dcr_err *err)
{
	fake_user *u = ctx;
	const rm_run *r = NULL;
	for (size_t i = u->fk->st.nruns; i-- > 0;)
		if (strcmp(u->fk->st.runs[i].computation, computation) == 0 &&
		    u->fk->st.runs[i].state == RM_RUN_DONE) {
			r = &u->fk->st.runs[i];
			break;
		}
	if (!r)
		return dcr_err_set(err, DCR_ENOTFOUND, "no result");
	int rc = rm_check_retrieve(&u->fk->st, u->pub, r->id, err);
	if (rc < 0)
		return rc;
	memcpy(run_id, r->id, 33);
	*size = strlen(fk_result(u->fk, r->id));
	dcr_buf body;
	dcr_buf_init(&body);
	rm_body_retrieved(&body, run_id);
	rc = fake_append(u->fk, u->key, RM_EV_RETRIEVED, body.data, body.len, err);
	dcr_buf_release(&body);
	return rc;
}

static int fk_result_read(void *ctx, const char *run_id, uint64_t off, void *buf, size_t cap,
                          dcr_err *err)
{
	fake_user *u = ctx;
	const char *csv = fk_result(u->fk, run_id);
	if (!csv)
		return dcr_err_set(err, DCR_ENOTFOUND, "no run %s", run_id);
	size_t len = strlen(csv);
	if (off >= len)
		return 0;
	size_t n = len - off < cap ? len - off : cap;
	memcpy(buf, csv + off, n);
	return (int)n;
}

static int fk_data_read(void *ctx, const char *dataset, const uint8_t sha256[32], uint64_t off,
                        void *buf, size_t cap, dcr_err *err)
{
	fake_user *u = ctx;
	if (!rm_may_read_data(&u->fk->st, u->pub, dataset))
		return dcr_err_set(err, DCR_EDENIED, "not an owner of %s", dataset);
	const rm_provision *pv = rm_state_provision(&u->fk->st, dataset);
	if (!pv || (sha256 && memcmp(pv->sha256, sha256, 32) != 0))
		return dcr_err_set(err, DCR_ESTATE, "%s was provisioned again", dataset);
	for (size_t i = 0; i < u->fk->nfiles; i++) {
		const dcr_buf *b = &u->fk->files[i].bytes;
		if (strcmp(u->fk->files[i].dataset, dataset) != 0)
			continue;
		if (off >= b->len)
			return 0;
		size_t n = b->len - off < cap ? b->len - off : cap;
		if (n > 3)
			n = 3; /* short reads: the core must loop */
		memcpy(buf, b->data + off, n);
		return (int)n;
	}
	return dcr_err_set(err, DCR_ENOTFOUND, "%s is not provisioned", dataset);
}

static int fk_stats(void *ctx, const char *dataset, dcr_buf *json, dcr_err *err)
{
	fake_user *u = ctx;
	if (!rm_may_read_stats(&u->fk->st, u->pub, dataset))
		return dcr_err_set(err, DCR_EDENIED, "statistics of %s are not shared", dataset);
	const rm_provision *p = rm_state_provision(&u->fk->st, dataset);
	if (!p)
		return dcr_err_set(err, DCR_ENOTFOUND, "not provisioned");
	dcr_buf_printf(json, "{\"rows\": %llu}\n", (unsigned long long)p->rows);
	return 0;
}

static int fk_room_test(void *ctx, dcr_buf *report, dcr_err *err)
{
	dcr_buf_append_str(report, "overlap: ok\n  city string\n  n integer\n");
	return 0;
}

/* A drop, back to its owner (by file name, pinned to its sha256). */
static int fk_drop_read(void *ctx, const char *dataset, const char *file,
                        const uint8_t sha256[32], uint64_t off, void *buf, size_t cap,
                        dcr_err *err)
{
	fake_user *u = ctx;
	if (!rm_may_read_data(&u->fk->st, u->pub, dataset))
		return dcr_err_set(err, DCR_EDENIED, "not an owner of %s", dataset);
	const rm_drop *dr = rm_state_drop(&u->fk->st, dataset, file);
	if (!dr || (sha256 && memcmp(dr->sha256, sha256, 32) != 0))
		return dcr_err_set(err, DCR_ESTATE, "drop %s of %s is gone", file, dataset);
	for (size_t i = 0; i < u->fk->nfiles; i++) {
		const dcr_buf *b = &u->fk->files[i].bytes;
		if (strcmp(u->fk->files[i].dataset, dataset) != 0 || !u->fk->files[i].file ||
		    strcmp(u->fk->files[i].file, file) != 0)
			continue;
		if (off >= b->len)
			return 0;
		size_t n = b->len - off < cap ? b->len - off : cap;
		memcpy(buf, b->data + off, n);
		return (int)n;
	}
	return dcr_err_set(err, DCR_ENOTFOUND, "no drop %s", file);
}

static void user_init(fake_user *u, fake *fk)
{
	u->fk = fk;
	DCR_ASSERT(dcr_key_generate(&u->key) == 0);
	dcr_key_public(u->key, u->pub);
}

static fs *mount_as(fake_user *u, fs_backend *be)
{
	fs_options o;
	fs *f = NULL;
	dcr_err err = {0};
	memset(&o, 0, sizeof o);
	memcpy(o.room, u->fk->room, sizeof o.room);
	memcpy(o.me, u->pub, 32);
	memcpy(o.daemon, u->fk->daemon_pub, 32);
	o.mountpoint = "/mnt/room";
	o.uid = 1000;
	o.gid = 1000;
	o.run_poll_ms = 1;
	o.rm_grace_ms = 1000;
	memset(be, 0, sizeof *be);
	be->ctx = u;
	be->events = fk_events;
	be->submit = fk_submit;
	be->upload_begin = fk_upload_begin;
	be->upload_write = fk_upload_write;
	be->upload_end = fk_upload_end;
	be->run = fk_run;
	be->run_status = fk_run_status;
	be->result_open = fk_result_open;
	be->result_read = fk_result_read;
	be->data_read = fk_data_read;
	be->drop_read = fk_drop_read;
	be->stats = fk_stats;
	be->room_test = fk_room_test;
	int rc = fs_new(&o, be, &f, &err);
	if (rc < 0)
		fprintf(stderr, "fs_new: %s\n", err.msg);
	DCR_ASSERT(rc == 0);
	return f;
}

/* ---- helpers over the core ------------------------------------------------------- */

static uint64_t walk(fs *f, const char *path)
{
	uint64_t ino = FS_ROOT_INO;
	char buf[512];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *save = NULL, *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		fs_attr a;
		if (fs_lookup(f, ino, c, &a) < 0)
			return 0;
		ino = a.ino;
	}
	return ino;
}

static uint64_t parent_of(fs *f, const char *path, const char **leaf)
{
	char dir[512];
	const char *slash = strrchr(path, '/');
	*leaf = slash ? slash + 1 : path;
	if (!slash)
		return FS_ROOT_INO;
	snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	return walk(f, dir);
}

/* Reads a whole file; returns -errno or 0 with *out (heap, NUL terminated). */
static int read_all(fs *f, const char *path, char **out)
{
	*out = NULL;
	uint64_t ino = walk(f, path);
	if (!ino)
		return -ENOENT;
	fs_file *h;
	int rc = fs_open(f, ino, O_RDONLY, &h);
	if (rc < 0)
		return rc;
	dcr_buf b;
	dcr_buf_init(&b);
	char tmp[7]; /* small reads exercise offsets */
	for (;;) {
		ssize_t r = fs_read(f, h, b.len, tmp, sizeof tmp);
		if (r < 0) {
			rc = (int)r;
			break;
		}
		if (r == 0)
			break;
		dcr_buf_append(&b, tmp, (size_t)r);
	}
	fs_flush(f, h, 0, false);
	fs_release(f, h);
	if (rc < 0) {
		dcr_buf_release(&b);
		return rc;
	}
	*out = dcr_strdup(dcr_buf_cstr(&b));
	dcr_buf_release(&b);
	return 0;
}

static bool file_contains(fs *f, const char *path, const char *needle)
{
	char *s;
	if (read_all(f, path, &s) < 0)
		return false;
	bool ok = strstr(s, needle) != NULL;
	if (!ok)
		fprintf(stderr, "%s lacks \"%s\":\n%s\n", path, needle, s);
	free(s);
	return ok;
}

/* Writes data in chunks of `chunk` bytes to path (created when absent, else
 * opened with O_TRUNC); returns the first error of write or close. */
static int write_file(fs *f, const char *path, const char *data, size_t chunk)
{
	const char *leaf;
	uint64_t dir = parent_of(f, path, &leaf);
	fs_file *h = NULL;
	fs_attr a;
	int rc;
	if (!dir)
		return -ENOENT;
	if (fs_lookup(f, dir, leaf, &a) == 0)
		rc = fs_open(f, a.ino, O_WRONLY | O_TRUNC, &h);
	else
		rc = fs_create(f, dir, leaf, O_WRONLY | O_CREAT | O_TRUNC, &a, &h);
	if (rc < 0)
		return rc;
	size_t len = strlen(data), off = 0;
	while (off < len) {
		size_t n = len - off < chunk ? len - off : chunk;
		ssize_t w = fs_write(f, h, off, data + off, n);
		if (w < 0) {
			rc = (int)w;
			break;
		}
		off += (size_t)w;
	}
	int frc = fs_flush(f, h, 0, false);
	fs_release(f, h);
	return rc < 0 ? rc : frc;
}

static int do_rename(fs *f, const char *from, const char *to)
{
	const char *l1, *l2;
	uint64_t d1 = parent_of(f, from, &l1), d2 = parent_of(f, to, &l2);
	return fs_rename(f, d1, l1, d2, l2, 0);
}

static bool listed(fs *f, const char *dirpath, const char *name)
{
	fs_dir *d;
	uint64_t ino = dirpath[0] ? walk(f, dirpath) : FS_ROOT_INO;
	if (!ino || fs_opendir(f, ino, &d) < 0)
		return false;
	bool found = false;
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->ents[i].name, name) == 0)
			found = true;
	fs_dir_free(d);
	return found;
}

static int open_mode(fs *f, const char *path, int flags)
{
	uint64_t ino = walk(f, path);
	fs_file *h;
	if (!ino)
		return -ENOENT;
	int rc = fs_open(f, ino, flags, &h);
	if (rc == 0)
		fs_release(f, h);
	return rc;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* ---- the room ---------------------------------------------------------------------- */

static char *room_json(const fake_user *anna, const fake_user *ian, const char *desc)
{
	char *ka = dcr_pub_format(anna->pub), *ki = dcr_pub_format(ian->pub);
	char *s = dcr_asprintf(
	    "{\"format\": \"dcr.room/1\", \"name\": \"bank-insurer\", \"description\": \"%s\",\n"
	    " \"settings\": {\"interactive\": true, \"development\": false, "
	    "\"require_provisioned\": true},\n"
	    " \"participants\": [\n"
	    "  {\"email\": \"anna@bank.example\", \"key\": \"%s\", \"owner_of\": "
	    "[\"bank_customers\"], \"analyst_of\": [\"overlap\"]},\n"
	    "  {\"email\": \"ian@insurer.example\", \"key\": \"%s\", \"owner_of\": "
	    "[\"insurer_customers\"]}],\n"
	    " \"datasets\": [\n"
	    "  {\"name\": \"bank_customers\", \"kind\": \"table\", \"unit\": \"email\", "
	    "\"columns\": ["
	    "{\"name\": \"email\", \"type\": \"string\", \"nullable\": false, "
	    "\"allow\": [\"join\"]},"
	    "{\"name\": \"city\", \"type\": \"string\", \"allow\": [\"group\"]}]},\n"
	    "  {\"name\": \"insurer_customers\", \"kind\": \"table\", \"share_statistics\": true, "
	    "\"unit\": \"email\", "
	    "\"columns\": [{\"name\": \"email\", \"type\": \"string\", \"nullable\": false, "
	    "\"allow\": [\"join\"]},"
	    "{\"name\": \"risk\", \"type\": \"integer\"}]}],\n"
	    " \"computations\": [\n"
	    "  {\"name\": \"overlap\", \"kind\": \"sql\", \"privacy\": {\"min_rows_aggregated\": "
	    "2},"
	    " \"query\": \"SELECT b.city, COUNT(*) AS n FROM bank_customers b JOIN "
	    "insurer_customers i USING (email) GROUP BY b.city\"}]}\n",
	    desc, ka, ki);
	free(ka);
	free(ki);
	return s;
}

static void test_temp_names(void)
{
	const char *temp[] = {".data.csv.AbC123", ".x.swp",     "data.csv~",
	                      ".fuse_hidden0001", "._data.csv", ".DS_Store",
	                      "data.part",        "data.tmp",   "x.csv.swp"};
	const char *final[] = {"data.csv", "bank.csv", "4913", "a.b.c", "tmp.csv", "part"};
	for (size_t i = 0; i < sizeof temp / sizeof temp[0]; i++)
		CHECK(fs_is_temp_name(temp[i]));
	for (size_t i = 0; i < sizeof final / sizeof final[0]; i++)
		CHECK(!fs_is_temp_name(final[i]));
	CHECK_RC(fs_errno(DCR_EDENIED), EACCES);
	CHECK_RC(fs_errno(DCR_ECSV), EINVAL);
	CHECK_RC(fs_errno(-ENOENT), ENOENT);
}

/* requests/ (fs_requests.c): a proposal written into requests/ is signed
 * at close, refused ones fail the close with the reason in status; approve
 * is writable by the affected owner only and its close merges; withdraw by
 * the author. */
static char *first_entry(fs *f, const char *dirpath)
{
	fs_dir *d;
	char *name = NULL;
	if (fs_opendir(f, walk(f, dirpath), &d) < 0)
		return NULL;
	if (d->n)
		name = dcr_strdup(d->ents[d->n - 1].name);
	fs_dir_free(d);
	return name;
}

static void test_requests(fs *fa, fs *fi, fs *fe)
{
	static const char req[] =
	    "{\"title\": \"by city\", \"computations\": [{\"name\": \"bank_by_city\", "
	    "\"kind\": \"sql\", \"privacy\": {\"min_rows_aggregated\": 2}, \"query\": "
	    "\"SELECT city, COUNT(*) AS n FROM bank_customers GROUP BY city\", \"analysts\": "
	    "[\"ian@insurer.example\"]}]}\n";
	fs_attr a;
	dcr_err err = {0};
	char *s, path[256];

	CHECK(file_contains(fi, "README", "cp request.json /mnt/room/requests/"));
	CHECK(read_all(fe, "README", &s) == 0 && !strstr(s, "cp request.json"));
	free(s);
	CHECK_RC(write_file(fe, "requests/x.json", req, 1000), -EACCES);
	char *bad = dcr_strdup(req);
	memcpy(strstr(bad, "ian@insurer"), "xan", 3);
	CHECK_RC(write_file(fi, "requests/x.json", bad, 7), -EINVAL);
	free(bad);
	CHECK(file_contains(fi, "status", "\"xan@insurer.example\" is not a participant"));
	CHECK(first_entry(fi, "requests") == NULL);
	CHECK_RC(write_file(fi, "requests/x.json", req, 7), 0);
	CHECK(!listed(fi, "requests", "x.json"));
	char *id = first_entry(fi, "requests");
	CHECK(id && strlen(id) == 32);
	if (!id)
		return;
	CHECK(fs_refresh(fa, NULL, NULL, &err) >= 0); /* anna's mount sees it now */
	CHECK(fs_refresh(fe, NULL, NULL, &err) >= 0);
	snprintf(path, sizeof path, "requests/%s/request.json", id);
	CHECK(read_all(fi, path, &s) == 0 && strcmp(s, req) == 0);
	free(s);
	snprintf(path, sizeof path, "requests/%s/status", id);
	CHECK(file_contains(fi, path, "state:        open"));
	CHECK(file_contains(fa, path, "  anna@bank.example: pending"));
	CHECK_RC(open_mode(fe, path, O_RDONLY), -ENOENT); /* outsiders see no requests */
	CHECK(first_entry(fe, "requests") == NULL);
	snprintf(path, sizeof path, "requests/%s/approve", id);
	CHECK_RC(fs_getattr(fa, walk(fa, path), &a), 0);
	CHECK((a.mode & 0777) == 0200);
	CHECK_RC(fs_getattr(fi, walk(fi, path), &a), 0);
	CHECK((a.mode & 0777) == 0);
	CHECK_RC(write_file(fi, path, "yes\n", 10), -EACCES);
	CHECK(walk(fi, "computations/bank_by_city") == 0);
	/* preview/run: the sole affected owner only */
	snprintf(path, sizeof path, "requests/%s/preview/run", id);
	CHECK_RC(fs_getattr(fa, walk(fa, path), &a), 0);
	CHECK((a.mode & 0777) == 0200);
	CHECK_RC(fs_getattr(fi, walk(fi, path), &a), 0);
	CHECK((a.mode & 0777) == 0);
	CHECK_RC(write_file(fi, path, "\n", 10), -EACCES);
	snprintf(path, sizeof path, "requests/%s", id);
	CHECK(listed(fa, path, "preview"));
	snprintf(path, sizeof path, "requests/%s/approve", id);
	CHECK_RC(write_file(fa, path, "fine by the bank\n", 3), 0);
	CHECK_RC(write_file(fa, path, "again\n", 10), -EACCES);
	CHECK(fs_refresh(fi, NULL, NULL, &err) >= 0);
	snprintf(path, sizeof path, "requests/%s/status", id);
	CHECK(file_contains(fi, path, "state:        merged"));
	CHECK(file_contains(fi, path, "  anna@bank.example: approved (fine by the bank)"));
	CHECK(file_contains(fi, path, "merged:       definition version 2"));
	CHECK(walk(fi, "computations/bank_by_city/query.sql") != 0);
	CHECK(file_contains(fi, "room.json", "bank_by_city"));
	CHECK(file_contains(fa, "audit.log", "approved request"));

	/* withdraw: the author only */
	char *second = dcr_strdup(req);
	memcpy(strstr(second, "bank_by_city"), "bank_by_town", 12);
	CHECK_RC(write_file(fi, "requests/y.json", second, 1000), 0);
	free(second);
	CHECK(fs_refresh(fa, NULL, NULL, &err) >= 0);
	char *first = id;
	fs_dir *d;
	id = NULL;
	CHECK_RC(fs_opendir(fi, walk(fi, "requests"), &d), 0);
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->ents[i].name, first) != 0)
			id = dcr_strdup(d->ents[i].name);
	CHECK(d->n == 2);
	fs_dir_free(d);
	free(first);
	CHECK(id != NULL);
	if (!id)
		return;
	snprintf(path, sizeof path, "requests/%s/withdraw", id);
	CHECK_RC(write_file(fa, path, "\n", 10), -EACCES);
	CHECK_RC(write_file(fi, path, "\n", 10), 0);
	snprintf(path, sizeof path, "requests/%s/status", id);
	CHECK(file_contains(fi, path, "state:        withdrawn"));
	CHECK(fs_refresh(fa, NULL, NULL, &err) >= 0);
	snprintf(path, sizeof path, "requests/%s/approve", id);
	CHECK_RC(write_file(fa, path, "late\n", 10), -EACCES);
	free(id);
}

/* ---- drop folders (an append dataset) -------------------------------------------- */

static void fake_free(fake *fk)
{
	for (size_t i = 0; i < fk->n; i++)
		dcr_buf_release(&fk->entries[i]);
	free(fk->entries);
	for (size_t i = 0; i < fk->nresults; i++)
		free(fk->results[i].csv);
	for (size_t i = 0; i < fk->nfiles; i++) {
		free(fk->files[i].dataset);
		free(fk->files[i].file);
		dcr_buf_release(&fk->files[i].bytes);
	}
	rm_state_release(&fk->st);
	dcr_key_free(fk->daemon);
}

static void test_drops(void)
{
	fake fk;
	fake_user anna, ian;
	fs_backend bea, bei;
	dcr_err err = {0};
	dcr_buf body;
	char *s;
	fs_attr a;

	memset(&fk, 0, sizeof fk);
	DCR_ASSERT(dcr_key_generate(&fk.daemon) == 0);
	dcr_key_public(fk.daemon, fk.daemon_pub);
	es_room_new(fk.room);
	rm_state_init(&fk.st, fk.daemon_pub);
	user_init(&anna, &fk);
	user_init(&ian, &fk);
	char *ka = dcr_pub_format(anna.pub), *ki = dcr_pub_format(ian.pub);
	char *json = dcr_asprintf(
	    "{\"format\": \"dcr.room/1\", \"name\": \"drops\",\n"
	    " \"participants\": [\n"
	    "  {\"email\": \"anna@bank.example\", \"key\": \"%s\", \"owner_of\": [\"daily\"]},\n"
	    "  {\"email\": \"ian@insurer.example\", \"key\": \"%s\", \"analyst_of\": "
	    "[\"n\"]}],\n"
	    " \"datasets\": [{\"name\": \"daily\", \"drops\": \"append\", \"columns\": "
	    "[{\"name\": \"x\", \"type\": \"integer\"}, {\"name\": \"y\", \"type\": "
	    "\"integer\"}]}],\n"
	    " \"computations\": [{\"name\": \"n\", \"kind\": \"sql\", \"query\": "
	    "\"SELECT COUNT(*) AS c FROM daily\"}]}\n",
	    ka, ki);
	free(ka);
	free(ki);
	dcr_buf_init(&body);
	rm_body_definition(&body, json);
	DCR_ASSERT(fake_append(&fk, anna.key, RM_EV_CREATED, body.data, body.len, &err) == 0);
	dcr_buf_reset(&body);
	rm_body_published(&body, fk.st.def_sha256);
	DCR_ASSERT(fake_append(&fk, anna.key, RM_EV_PUBLISHED, body.data, body.len, &err) == 0);
	dcr_buf_release(&body);
	free(json);
	fs *fa = mount_as(&anna, &bea);
	fs *fi = mount_as(&ian, &bei);

	/* the README tells the owner it is a drop folder */
	CHECK(file_contains(fa, "README", "add a drop to daily"));
	CHECK(file_contains(fa, "README", "a drop folder: no drops yet"));
	CHECK(file_contains(fa, "datasets/daily/status", "state: not provisioned (no drops)"));

	/* three daily drops: each its own file */
	CHECK_RC(write_file(fa, "datasets/daily/export_2026-12-01.csv", "x,y\n1,2\n3,4\n", 5), 0);
	CHECK_RC(write_file(fa, "datasets/daily/export_2026-12-02.csv", "y,x\n5,6\n", 5), 0);
	CHECK_RC(write_file(fa, "datasets/daily/export_2026-12-03.csv", "x,y\n7,8\n9,9\n1,1\n", 64),
	         0);
	CHECK_RC(fs_size(fa), 5);
	CHECK(listed(fa, "datasets/daily", "export_2026-12-01.csv"));
	CHECK(listed(fa, "datasets/daily", "export_2026-12-02.csv"));
	CHECK(listed(fa, "datasets/daily", "export_2026-12-03.csv"));
	CHECK(file_contains(fa, "datasets/daily/status", "drop_count: 3"));
	CHECK(file_contains(fa, "datasets/daily/status", "rows: 6"));
	CHECK(file_contains(fa, "datasets/daily/status", "drop: export_2026-12-02.csv: 1 rows"));
	CHECK(file_contains(fa, "README", "3 drops, 6 rows"));
	/* each drop reads back as it was written, with its size */
	CHECK(read_all(fa, "datasets/daily/export_2026-12-02.csv", &s) == 0 &&
	      strcmp(s, "y,x\n5,6\n") == 0);
	free(s);
	CHECK_RC(fs_getattr(fa, walk(fa, "datasets/daily/export_2026-12-03.csv"), &a), 0);
	CHECK(a.size == strlen("x,y\n7,8\n9,9\n1,1\n"));
	/* not the analyst's to see */
	CHECK(!listed(fi, "datasets/daily", "export_2026-12-01.csv"));
	CHECK(walk(fi, "datasets/daily/export_2026-12-01.csv") == 0);
	/* the audit log names every drop's file */
	CHECK(fs_refresh(fi, NULL, NULL, &err) > 0);
	CHECK(file_contains(fi, "audit.log", "dropped daily: 2 rows, 12 bytes, sha256 "));
	CHECK(file_contains(fi, "audit.log", "file export_2026-12-01.csv"));
	CHECK(file_contains(fi, "audit.log", "file export_2026-12-03.csv"));

	/* the same file again: counted once, no event, the write succeeds */
	CHECK_RC(write_file(fa, "datasets/daily/export_2026-12-01.csv", "x,y\n1,2\n3,4\n", 64), 0);
	CHECK_RC(fs_size(fa), 5);
	CHECK(file_contains(fa, "datasets/daily/status", "export_2026-12-01.csv unchanged"));
	/* a bad drop: refused, nothing changes */
	CHECK_RC(write_file(fa, "datasets/daily/export_2026-12-04.csv", "x,y\n1\n", 64), -EINVAL);
	CHECK_RC(fs_size(fa), 5);
	CHECK(!listed(fa, "datasets/daily", "export_2026-12-04.csv"));
	CHECK(file_contains(fa, "datasets/daily/status", "drop_count: 3"));
	/* a spooled temp renamed to a drop's name with the same bytes: unchanged */
	CHECK_RC(write_file(fa, "datasets/daily/.export_2026-12-02.csv.Ab12", "y,x\n5,6\n", 64),
	         0);
	CHECK_RC(do_rename(fa, "datasets/daily/.export_2026-12-02.csv.Ab12",
	                   "datasets/daily/export_2026-12-02.csv"),
	         0);
	CHECK_RC(fs_size(fa), 5);

	/* rm withdraws one drop (the owner only) */
	{
		const char *leaf;
		uint64_t dir = parent_of(fa, "datasets/daily/export_2026-12-02.csv", &leaf);
		CHECK_RC(fs_unlink(fi, walk(fi, "datasets/daily"), "export_2026-12-02.csv"),
		         -ENOENT);
		CHECK_RC(fs_unlink(fa, dir, leaf), 0);
		/* gone from the listing at once, withdrawn after the grace */
		CHECK(!listed(fa, "datasets/daily", "export_2026-12-02.csv"));
		CHECK(file_contains(fa, "datasets/daily/status", "pending_rm: export_2026-12-02.csv"));
		CHECK_RC(fs_size(fa), 5);
		usleep(1100 * 1000);
		CHECK(fs_refresh(fa, NULL, NULL, &err) >= 0);
		CHECK_RC(fs_size(fa), 6);
		CHECK(!listed(fa, "datasets/daily", "export_2026-12-02.csv"));
		CHECK(file_contains(fa, "datasets/daily/status", "drop_count: 2"));
		CHECK(file_contains(fa, "datasets/daily/status", "rows: 5"));
		CHECK(fs_refresh(fi, NULL, NULL, &err) > 0);
		CHECK(file_contains(fi, "audit.log",
		                    "withdrew from daily, file export_2026-12-02.csv"));
		CHECK_RC(fs_unlink(fa, dir, "export_2026-12-09.csv"), -ENOENT);
	}
	/* rm, then a bad file under the same name (install, tar -x): the
	 * rm is undone, the drop stays */
	{
		const char *leaf;
		uint64_t dir = parent_of(fa, "datasets/daily/export_2026-12-03.csv", &leaf);
		CHECK_RC(fs_unlink(fa, dir, leaf), 0);
		CHECK(!listed(fa, "datasets/daily", "export_2026-12-03.csv"));
		CHECK_RC(write_file(fa, "datasets/daily/export_2026-12-03.csv", "x,y\n1\n", 64),
		         -EINVAL);
		usleep(1100 * 1000);
		CHECK(fs_refresh(fa, NULL, NULL, &err) >= 0);
		CHECK_RC(fs_size(fa), 6);
		CHECK(listed(fa, "datasets/daily", "export_2026-12-03.csv"));
		CHECK(file_contains(fa, "datasets/daily/status",
		                    "the earlier rm of export_2026-12-03.csv is undone"));
		CHECK(file_contains(fa, "datasets/daily/status", "drop_count: 2"));
	}
	/* mv: dropped again under the new name, the old one withdrawn */
	CHECK_RC(do_rename(fa, "datasets/daily/export_2026-12-01.csv",
	                   "datasets/daily/export_2026-12-01-fixed.csv"),
	         0);
	CHECK_RC(fs_size(fa), 8);
	CHECK(!listed(fa, "datasets/daily", "export_2026-12-01.csv"));
	CHECK(read_all(fa, "datasets/daily/export_2026-12-01-fixed.csv", &s) == 0 &&
	      strcmp(s, "x,y\n1,2\n3,4\n") == 0);
	free(s);
	CHECK(file_contains(fa, "datasets/daily/status", "rows: 5"));
	/* a re-export of a name with other bytes replaces that drop */
	CHECK_RC(write_file(fa, "datasets/daily/export_2026-12-03.csv", "x,y\n7,8\n", 64), 0);
	CHECK_RC(fs_size(fa), 9);
	CHECK(file_contains(fa, "datasets/daily/status", "drop_count: 2"));
	CHECK(file_contains(fa, "datasets/daily/status", "rows: 3"));

	fs_free(fa);
	fs_free(fi);
	fake_free(&fk);
	dcr_key_free(anna.key);
	dcr_key_free(ian.key);
}

/* ---- dev/: development runs, against a fake daemon that runs them at once --------- */

/* What the fake's dev runs return: an SQL run "n\n42\n", a python run an
 * archive with out.txt and subdir/x.txt, and logs; fk_dev_lie makes the
 * result bytes differ from the hash in the log. */
static struct {
	char run_id[33];
	dcr_buf result, logs;
} fk_devs[16];
static size_t fk_ndevs;
static bool fk_dev_lie;

static int fk_dev_run(void *ctx, const char *language, const char *script,
                      const char *const *inputs, size_t ninputs, char run_id[33], dcr_err *err)
{
	fake_user *u = ctx;
	fake *fk = u->fk;
	enum rm_dev_lang lang = strcmp(language, "sql") == 0      ? RM_DEV_SQL
	                        : strcmp(language, "python") == 0 ? RM_DEV_PYTHON
	                                                          : RM_DEV_R;
	uint8_t rnd[16];
	dcr_buf body;
	dcr_random(rnd, sizeof rnd);
	dcr_hex_encode(rnd, 16, run_id);
	dcr_buf_init(&body);
	rm_body_dev_requested(&body, run_id, lang, script, inputs, ninputs);
	int rc = fake_append(fk, u->key, RM_EV_DEV_REQUESTED, body.data, body.len, err);
	dcr_buf_release(&body);
	if (rc < 0)
		return rc;
	DCR_ASSERT(fk_ndevs < 16);
	size_t i = fk_ndevs++;
	memcpy(fk_devs[i].run_id, run_id, 33);
	dcr_buf_init(&fk_devs[i].result);
	dcr_buf_init(&fk_devs[i].logs);
	const rm_dev *q = rm_state_dev(&fk->st, run_id);
	rm_dev d;
	memset(&d, 0, sizeof d);
	d.id = run_id;
	d.inputs = q->inputs;
	d.ninputs = q->ninputs;
	d.result_blob = "dev-blob";
	d.logs_blob = "";
	dcr_sha256("", 0, d.logs_sha256);
	if (lang == RM_DEV_SQL) {
		dcr_buf_append_str(&fk_devs[i].result, "n\n42\n");
	} else {
		dcr_archive_entry e[2] = {{"out.txt", 7, (const uint8_t *)"hello\n", 6},
		                          {"subdir/x.txt", 12, (const uint8_t *)"x", 1}};
		dcr_archive_entry l[2] = {{"stderr", 6, (const uint8_t *)"warn\n", 5},
		                          {"stdout", 6, (const uint8_t *)"printed\n", 8}};
		dcr_archive_write(&fk_devs[i].result, e, 2);
		dcr_archive_write(&fk_devs[i].logs, l, 2);
		d.logs_blob = "dev-logs";
		dcr_sha256(fk_devs[i].logs.data, fk_devs[i].logs.len, d.logs_sha256);
	}
	dcr_sha256(fk_devs[i].result.data, fk_devs[i].result.len, d.result_sha256);
	d.result_bytes = fk_devs[i].result.len;
	if (fk_dev_lie)
		fk_devs[i].result.data[0] ^= 1;
	dcr_buf_init(&body);
	rm_body_dev_completed(&body, &d);
	rc = fake_append(fk, fk->daemon, RM_EV_DEV_COMPLETED, body.data, body.len, err);
	dcr_buf_release(&body);
	return rc;
}

static int fk_dev_status(void *ctx, const char *run_id, fs_dev_status *st, dcr_err *err)
{
	fake_user *u = ctx;
	int rc = rm_check_dev_read(&u->fk->st, u->pub, run_id, err);
	if (rc < 0)
		return rc;
	const rm_dev *d = rm_state_dev(&u->fk->st, run_id);
	memset(st, 0, sizeof *st);
	snprintf(st->state, sizeof st->state, "%s", d->state == RM_RUN_DONE ? "done" : "failed");
	st->logs = d->logs_blob && d->logs_blob[0];
	return 0;
}

static int fk_dev_read(void *ctx, const char *run_id, const char *what, uint64_t off, void *buf,
                       size_t cap, dcr_err *err)
{
	fake_user *u = ctx;
	int rc = rm_check_dev_read(&u->fk->st, u->pub, run_id, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < fk_ndevs; i++) {
		if (strcmp(fk_devs[i].run_id, run_id) != 0)
			continue;
		const dcr_buf *b = strcmp(what, "logs") == 0 ? &fk_devs[i].logs : &fk_devs[i].result;
		if (off >= b->len)
			return 0;
		size_t n = b->len - off < cap ? b->len - off : cap;
		memcpy(buf, b->data + off, n);
		return (int)n;
	}
	return dcr_err_set(err, DCR_ENOTFOUND, "no development run %s", run_id);
}

static fs *mount_dev(fake_user *u, fs_backend *be)
{
	fs *f = mount_as(u, be);
	/* mount_as copied the backend into the fs: a second mount with the dev
	 * functions set */
	fs_free(f);
	be->dev_run = fk_dev_run;
	be->dev_status = fk_dev_status;
	be->dev_read = fk_dev_read;
	fs_options o;
	dcr_err err = {0};
	memset(&o, 0, sizeof o);
	memcpy(o.room, u->fk->room, sizeof o.room);
	memcpy(o.me, u->pub, 32);
	memcpy(o.daemon, u->fk->daemon_pub, 32);
	o.mountpoint = "/mnt/room";
	o.uid = 1000;
	o.gid = 1000;
	o.run_poll_ms = 1;
	DCR_ASSERT(fs_new(&o, be, &f, &err) == 0);
	return f;
}

static void test_dev(void)
{
	fake fk;
	fake_user anna, ian, eve;
	fs_backend bea, bei, bee;
	dcr_err err = {0};
	dcr_buf body;
	fs_attr a;
	char *s;

	memset(&fk, 0, sizeof fk);
	DCR_ASSERT(dcr_key_generate(&fk.daemon) == 0);
	dcr_key_public(fk.daemon, fk.daemon_pub);
	es_room_new(fk.room);
	rm_state_init(&fk.st, fk.daemon_pub);
	user_init(&anna, &fk);
	user_init(&ian, &fk);
	user_init(&eve, &fk);
	char *json = room_json(&anna, &ian, "dev");
	char *on = strstr(json, "\"development\": false");
	DCR_ASSERT(on);
	memcpy(on, "\"development\": true ", 20);
	dcr_buf_init(&body);
	rm_body_definition(&body, json);
	DCR_ASSERT(fake_append(&fk, anna.key, RM_EV_CREATED, body.data, body.len, &err) == 0);
	free(json);
	fs *fa = mount_dev(&anna, &bea);
	fs *fi = mount_dev(&ian, &bei);
	fs *fe = mount_dev(&eve, &bee);

	/* draft: dev/ is not writable yet */
	CHECK_RC(write_file(fa, "dev/q.sql", "SELECT 1 AS x", 100), -EACCES);
	CHECK(file_contains(fa, "status", "the room is draft"));
	dcr_buf_reset(&body);
	rm_body_published(&body, fk.st.def_sha256);
	DCR_ASSERT(fake_append(&fk, anna.key, RM_EV_PUBLISHED, body.data, body.len, &err) == 0);
	{
		rm_provision p = {.dataset = "bank_customers", .blob = "b1", .file = "bank.csv"};
		memset(p.sha256, 0x3f, 32);
		dcr_buf_reset(&body);
		rm_body_provisioned(&body, &p);
		DCR_ASSERT(fake_append(&fk, anna.key, RM_EV_PROVISIONED, body.data, body.len,
		                       &err) == 0);
	}
	dcr_buf_release(&body);
	CHECK(fs_refresh(fa, NULL, NULL, &err) >= 0);
	CHECK(fs_refresh(fi, NULL, NULL, &err) >= 0);
	CHECK(fs_refresh(fe, NULL, NULL, &err) >= 0);
	CHECK_RC(fs_getattr(fa, walk(fa, "dev"), &a), 0);
	CHECK((a.mode & 0200) != 0);
	CHECK(file_contains(fa, "README", "cp q.sql /mnt/room/dev/"));

	/* SQL over one's own dataset: run at close, output under q.out/ */
	const char *q = "SELECT COUNT(*) AS n FROM bank_customers";
	CHECK_RC(write_file(fa, "dev/q.sql", q, 7), 0);
	CHECK(listed(fa, "dev", "q.sql") && listed(fa, "dev", "q.out"));
	CHECK(read_all(fa, "dev/q.sql", &s) == 0 && strcmp(s, q) == 0);
	free(s);
	CHECK(file_contains(fa, "dev/q.out/status", "(sql): done"));
	CHECK(file_contains(fa, "dev/q.out/status", "inputs: bank_customers"));
	CHECK(read_all(fa, "dev/q.out/result.csv", &s) == 0 && strcmp(s, "n\n42\n") == 0);
	free(s);
	CHECK_RC(fs_getattr(fa, walk(fa, "dev/q.out/result.csv"), &a), 0);
	CHECK(a.size == 5 && (a.mode & 0444) && !(a.mode & 0222));
	CHECK(!listed(fa, "dev/q.out", "stdout")); /* an SQL run writes no logs */
	CHECK(rm_state_dev(&fk.st, fk_devs[0].run_id) != NULL);

	/* python: inputs from the first line, files and logs */
	CHECK_RC(write_file(fa, "dev/p.py", "# inputs: bank_customers\nprint(1)\n", 100), 0);
	CHECK(read_all(fa, "dev/p.out/out.txt", &s) == 0 && strcmp(s, "hello\n") == 0);
	free(s);
	CHECK(read_all(fa, "dev/p.out/stdout", &s) == 0 && strcmp(s, "printed\n") == 0);
	free(s);
	CHECK(file_contains(fa, "dev/p.out/stderr", "warn"));
	CHECK(!listed(fa, "dev/p.out", "subdir")); /* nested files: dcr dev result */
	CHECK(listed(fa, "dev/p.out", "status"));

	/* someone else's dataset: refused, the rule's words in status */
	CHECK_RC(write_file(fi, "dev/q.sql", q, 100), -EACCES);
	CHECK(file_contains(fi, "dev/q.out/status", "refused: "));
	CHECK(file_contains(fi, "dev/q.out/status", "is not an owner of dataset bank_customers"));
	CHECK(file_contains(fi, "status", "is not an owner of dataset bank_customers"));
	CHECK(walk(fi, "dev/q.out/result.csv") == 0);
	/* ... and ian's mount shows nothing of anna's */
	CHECK(!listed(fi, "dev", "p.py"));
	/* a script over nothing: fine for a participant with no role */
	CHECK_RC(write_file(fi, "dev/c.sql", "SELECT 6 * 7 AS answer", 100), 0);
	CHECK(file_contains(fi, "dev/c.out/status", "inputs: none"));
	/* not a participant; not a script name; an empty script */
	CHECK_RC(write_file(fe, "dev/c.sql", "SELECT 1", 100), -EACCES);
	CHECK_RC(write_file(fa, "dev/notes.txt", "x", 100), -EINVAL);
	CHECK_RC(write_file(fa, "dev/empty.sql", "", 100), -EIO);
	CHECK(file_contains(fa, "dev/empty.out/status", "refused: "));

	/* bytes that are not the ones the log records are not shown */
	fk_dev_lie = true;
	CHECK_RC(write_file(fa, "dev/lie.sql", q, 100), 0);
	fk_dev_lie = false;
	CHECK(file_contains(fa, "dev/lie.out/status", "not the one the log records"));
	CHECK(walk(fa, "dev/lie.out/result.csv") == 0);

	/* writing the name again runs it again */
	size_t before = fk_ndevs;
	CHECK_RC(write_file(fa, "dev/q.sql", q, 100), 0);
	CHECK(fk_ndevs == before + 1);
	CHECK(file_contains(fa, "dev/q.out/status", fk_devs[before].run_id));

	/* A host the witness refuses: ian's mount stops following it; every
	 * file but status and README answers EIO, status says why (a
	 * participant mount sees its files until then). */
	CHECK(file_contains(fi, "datasets/insurer_customers/status", "insurer"));
	fk.lying = true;
	CHECK(fs_refresh(fi, NULL, NULL, &err) < 0);
	CHECK(file_contains(fi, "status", "host_refused: room r: the host shows another log"));
	CHECK(file_contains(fi, "README", "insurer"));
	CHECK_RC(open_mode(fi, "audit.log", O_RDONLY), -EIO);
	CHECK_RC(open_mode(fi, "datasets/insurer_customers/status", O_RDONLY), -EIO);
	CHECK_RC(open_mode(fi, "status", O_WRONLY), -EIO);
	fk.lying = false; /* refused for good: no more fetches */
	CHECK(fs_refresh(fi, NULL, NULL, &err) >= 0);
	CHECK_RC(open_mode(fi, "audit.log", O_RDONLY), -EIO);

	fs_free(fa);
	fs_free(fi);
	fs_free(fe);
	for (size_t i = 0; i < fk.n; i++)
		dcr_buf_release(&fk.entries[i]);
	free(fk.entries);
	for (size_t i = 0; i < fk_ndevs; i++) {
		dcr_buf_release(&fk_devs[i].result);
		dcr_buf_release(&fk_devs[i].logs);
	}
	rm_state_release(&fk.st);
	dcr_key_free(fk.daemon);
	dcr_key_free(anna.key);
	dcr_key_free(ian.key);
	dcr_key_free(eve.key);
}

int main(void)
{
	fake fk;
	fake_user anna, ian, eve;
	fs_backend bea, bei, bee;
	dcr_err err = {0};
	char *s;
	fs_attr a;

	test_temp_names();
	test_drops();
	test_dev();

	memset(&fk, 0, sizeof fk);
	DCR_ASSERT(dcr_key_generate(&fk.daemon) == 0);
	dcr_key_public(fk.daemon, fk.daemon_pub);
	es_room_new(fk.room);
	rm_state_init(&fk.st, fk.daemon_pub);
	user_init(&anna, &fk);
	user_init(&ian, &fk);
	user_init(&eve, &fk);

	char *json = room_json(&anna, &ian, "first draft");
	dcr_buf body;
	dcr_buf_init(&body);
	rm_body_definition(&body, json);
	if (fake_append(&fk, anna.key, RM_EV_CREATED, body.data, body.len, &err) < 0) {
		fprintf(stderr, "room.created: %s\n", err.msg);
		return 1;
	}
	dcr_buf_release(&body);
	free(json);

	fs *fa = mount_as(&anna, &bea);
	fs *fi = mount_as(&ian, &bei);
	fs *fe = mount_as(&eve, &bee);

	/* layout */
	const char *top[] = {"README", "room.json", "status",       "ctl",      "audit.log",
	                     "events", "datasets",  "computations", "requests", "dev"};
	for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
		CHECK(listed(fa, "", top[i]));
	CHECK(!listed(fa, "", "test.out"));
	CHECK(walk(fa, "datasets/bank_customers/schema.json") != 0);
	CHECK(walk(fa, "computations/overlap/query.sql") != 0);
	CHECK(walk(fa, "datasets/nope") == 0);
	CHECK_RC(fs_getattr(fa, 999999, &a), -ENOENT);
	CHECK_RC(fs_getattr(fa, FS_ROOT_INO, &a), 0);
	CHECK(S_ISDIR(a.mode));
	CHECK_RC(fs_getattr(fa, walk(fa, "README"), &a), 0);
	CHECK(S_ISREG(a.mode) && a.blksize == FS_BLKSIZE && a.size > 100 && a.uid == 1000);

	/* README: roles in words and example commands */
	CHECK(file_contains(fa, "README", "creator of the room"));
	CHECK(file_contains(fa, "README", "data owner of dataset bank_customers"));
	CHECK(file_contains(fa, "README", "analyst of computation overlap"));
	CHECK(file_contains(fa, "README",
	                    "cp bank_customers.csv /mnt/room/datasets/bank_customers/"));
	CHECK(file_contains(fa, "README", "echo > /mnt/room/computations/overlap/run"));
	CHECK(file_contains(fa, "README", "requests/     proposals of new computations"));
	CHECK(file_contains(fa, "README", "dev/          development runs (settings.development)"));
	CHECK(file_contains(fi, "README", "data owner of dataset insurer_customers"));
	CHECK(read_all(fi, "README", &s) == 0 && !strstr(s, "analyst of") &&
	      !strstr(s, "creator of"));
	free(s);
	CHECK(file_contains(fe, "README", "not a participant"));
	CHECK(file_contains(fa, "status", "status: draft"));
	CHECK(file_contains(fa, "computations/overlap/query.sql", "JOIN insurer_customers"));
	CHECK(file_contains(fa, "datasets/bank_customers/schema.json", "\"name\": \"email\""));

	/* outsider: nothing but README and status */
	CHECK_RC(open_mode(fe, "room.json", O_RDONLY), -EACCES);
	CHECK_RC(open_mode(fe, "audit.log", O_RDONLY), -EACCES);
	CHECK_RC(open_mode(fe, "events/000000000000.event", O_RDONLY), -EACCES);
	CHECK_RC(open_mode(fe, "datasets/bank_customers/schema.json", O_RDONLY), -EACCES);
	CHECK(!listed(fe, "events", "000000000000.event"));

	/* draft editing: only the creator; a bad document fails at close */
	CHECK_RC(open_mode(fi, "room.json", O_WRONLY | O_TRUNC), -EACCES);
	CHECK_RC(write_file(fa, "room.json", "{\"format\": \"dcr.room/1\",", 1000), -EINVAL);
	CHECK(file_contains(fa, "status", "last_error:"));
	CHECK(file_contains(fa, "status", "room.json"));
	CHECK_RC(fs_size(fa), 1);
	/* a query that does not compile: refused by the admission check before
	 * anything is signed */
	json = room_json(&anna, &ian, "bad sql");
	{
		/* abs() without argument: in the filtered subset, refused by
		 * SQLite */
		char *at = strstr(json, "GROUP BY b.city");
		char *bad = dcr_asprintf("%.*sGROUP BY b.city HAVING abs() > 0%s", (int)(at - json),
		                         json, at + strlen("GROUP BY b.city"));
		free(json);
		json = bad;
	}
	CHECK_RC(write_file(fa, "room.json", json, 100), -EINVAL);
	free(json);
	CHECK(file_contains(fa, "status", "SQL error: wrong number of arguments to function abs()"));
	CHECK_RC(fs_size(fa), 1);
	json = room_json(&anna, &ian, "second draft");
	CHECK_RC(write_file(fa, "room.json", json, 100), 0);
	free(json);
	CHECK_RC(fs_size(fa), 2);
	CHECK(file_contains(fa, "room.json", "second draft"));
	/* an editor's way: write a temp file next to it, rename it over */
	json = room_json(&anna, &ian, "third draft");
	CHECK_RC(write_file(fa, ".room.json.tmp", json, 64), 0);
	free(json);
	CHECK_RC(fs_size(fa), 2);
	CHECK(listed(fa, "", ".room.json.tmp"));
	CHECK_RC(do_rename(fa, ".room.json.tmp", "room.json"), 0);
	CHECK_RC(fs_size(fa), 3);
	CHECK(file_contains(fa, "room.json", "third draft"));
	CHECK(!listed(fa, "", ".room.json.tmp"));
	CHECK_RC(write_file(fa, ".bad.tmp", "{", 64), 0);
	CHECK_RC(do_rename(fa, ".bad.tmp", "room.json"), -EINVAL);
	CHECK_RC(do_rename(fa, ".bad.tmp", "other.json"), -EACCES);
	CHECK(listed(fa, "", ".bad.tmp"));

	/* ctl: test, then publish; unknown commands and other people fail */
	CHECK_RC(open_mode(fi, "ctl", O_WRONLY), -EACCES);
	CHECK_RC(write_file(fa, "ctl", "bogus\n", 100), -EINVAL);
	CHECK_RC(write_file(fa, "ctl", "test\n", 100), 0);
	CHECK(listed(fa, "", "test.out"));
	CHECK(file_contains(fa, "test.out", "overlap: ok"));
	/* provisioning before publish is refused by the rules */
	CHECK(write_file(fa, "datasets/bank_customers/early.csv", "email,city\na,b\n", 100) < 0);
	CHECK_RC(write_file(fa, "ctl", "publish\n", 100), 0);
	CHECK(file_contains(fa, "status", "status: published"));
	CHECK_RC(open_mode(fa, "room.json", O_WRONLY | O_TRUNC), -EACCES);
	/* development off: dev/ takes no script, and says why */
	CHECK_RC(write_file(fa, "dev/q.sql", "SELECT 1 AS x", 100), -EACCES);
	CHECK(file_contains(fa, "status", "development runs are off in this room"));
	CHECK_RC(fs_getattr(fa, walk(fa, "dev"), &a), 0);
	CHECK((a.mode & 0222) == 0);

	/* provisioning by cp: streamed in chunks, committed at close */
	const char *bank = "email,city\na@x,Paris\nb@x,Paris\nc@x,Lyon\n";
	CHECK_RC(write_file(fi, "datasets/bank_customers/bank.csv", bank, 5), -EACCES);
	CHECK_RC(write_file(fa, "datasets/bank_customers/bank.csv", bank, 5), 0);
	CHECK_RC(fk.uploads_open, 0);
	CHECK(fs_lookup(fa, walk(fa, "datasets/bank_customers"), "bank.csv", &a) == 0);
	CHECK(a.size == strlen(bank) && (a.mode & 0777) == 0644);
	CHECK(file_contains(fa, "datasets/bank_customers/status", "state: provisioned"));
	CHECK(file_contains(fa, "datasets/bank_customers/status", "rows: 3"));
	CHECK(file_contains(fa, "datasets/bank_customers/stats.json", "\"rows\": 3"));
	/* the owner reads the provisioned file back (ranged reads from the daemon) */
	CHECK(read_all(fa, "datasets/bank_customers/bank.csv", &s) == 0 && strcmp(s, bank) == 0);
	free(s);
	{
		/* a read pinned to one provision fails (ESTALE) once the dataset is
		 * provisioned again, instead of mixing the two files */
		fs_file *h;
		char got[8];
		CHECK_RC(fs_open(fa, walk(fa, "datasets/bank_customers/bank.csv"), O_RDONLY, &h), 0);
		CHECK_RC(fs_read(fa, h, 0, got, 5), 5);
		CHECK_RC(write_file(fa, "datasets/bank_customers/bank.csv",
		                    "email,city\nz@x,Nice\ny@x,Nice\nx@x,Nice\n", 7),
		         0);
		CHECK_RC(fs_read(fa, h, 5, got, 5), -ESTALE);
		fs_flush(fa, h, 0, false);
		fs_release(fa, h);
		CHECK_RC(write_file(fa, "datasets/bank_customers/bank.csv", bank, 5), 0);
		CHECK(read_all(fa, "datasets/bank_customers/bank.csv", &s) == 0 &&
		      strcmp(s, bank) == 0);
		free(s);
	}
	CHECK_RC(open_mode(fi, "datasets/insurer_customers/nothing.csv", O_RDWR), -ENOENT);
	{
		/* O_RDWR (python's "w+") writes; its reads are refused */
		uint64_t dir = walk(fa, "datasets/bank_customers");
		fs_file *h;
		char c;
		CHECK_RC(fs_create(fa, dir, "rw.csv", O_RDWR | O_CREAT, &a, &h), 0);
		CHECK_RC(fs_read(fa, h, 0, &c, 1), -EACCES);
		CHECK_RC(fs_write(fa, h, 0, bank, strlen(bank)), strlen(bank));
		CHECK_RC(fs_flush(fa, h, 0, false), 0);
		fs_release(fa, h);
		CHECK(file_contains(fa, "datasets/bank_customers/status", "file: rw.csv"));
		CHECK_RC(write_file(fa, "datasets/bank_customers/bank.csv", bank, 5), 0);
	}
	/* others do not see the file, nor unshared statistics, but see who provisioned */
	CHECK(fs_refresh(fi, NULL, NULL, &err) > 0);
	CHECK(walk(fi, "datasets/bank_customers/bank.csv") == 0);
	CHECK(!listed(fi, "datasets/bank_customers", "stats.json"));
	CHECK(file_contains(fi, "datasets/bank_customers/status", "by: anna@bank.example"));

	/* a bad file fails the writer (at the bad line or at close), says where, and
	 * leaves the earlier data in place */
	uint64_t before = fs_size(fa);
	CHECK_RC(
	    write_file(fa, "datasets/bank_customers/bad.csv", "email,city\nz@x,Nice\noops\n", 4),
	    -EINVAL);
	CHECK_RC(fs_size(fa), before);
	CHECK(file_contains(fa, "datasets/bank_customers/status", "line 3"));
	CHECK(file_contains(fa, "datasets/bank_customers/status", "file: bank.csv"));
	CHECK(walk(fa, "datasets/bank_customers/bad.csv") == 0);
	CHECK_RC(fk.uploads_open, 0);
	/* only whole files: appending or seeking is refused */
	{
		uint64_t dir = walk(fa, "datasets/bank_customers");
		fs_file *h;
		CHECK_RC(fs_create(fa, dir, "gap.csv", O_WRONLY | O_CREAT, &a, &h), 0);
		CHECK_RC(fs_write(fa, h, 10, "x", 1), -EINVAL);
		fs_flush(fa, h, 0, false);
		fs_release(fa, h);
		CHECK_RC(fk.uploads_open, 0);
	}

	/* a writer killed mid-file: the close abandons the upload */
	{
		uint64_t dir = walk(fa, "datasets/bank_customers");
		fs_file *h;
		before = fs_size(fa);
		CHECK_RC(fs_create(fa, dir, "cut.csv", O_WRONLY | O_CREAT, &a, &h), 0);
		CHECK_RC(fs_write(fa, h, 0, "email,city\na@x,P\n", 17), 17);
		fs_file_set_opener(h, 42);
		CHECK_RC(fs_flush(fa, h, 43, false), 0); /* a child's close: not the end */
		CHECK_RC(fk.uploads_open, 1);
		CHECK_RC(fs_write(fa, h, 17, "b@x,Q\n", 6), 6);
		CHECK_RC(fs_flush(fa, h, 42, true), 0);
		CHECK_RC(fs_flush(fa, h, 42, false), 0); /* a later close commits nothing */
		fs_release(fa, h);
		CHECK_RC(fk.uploads_open, 0);
		CHECK_RC(fs_size(fa), before);
		CHECK(file_contains(fa, "datasets/bank_customers/status", "writer was killed"));
		CHECK(file_contains(fa, "datasets/bank_customers/status", "file: bank.csv"));
	}

	/* rsync: temp name written, never ingested, renamed: ingested; same inode */
	const char *ins = "email,risk\na@x,1\nb@x,2\nq@x,3\n";
	before = fs_size(fi);
	CHECK_RC(write_file(fi, "datasets/insurer_customers/.ins.csv.Xy12Ab", ins, 3), 0);
	CHECK_RC(fs_size(fi), before);
	CHECK(listed(fi, "datasets/insurer_customers", ".ins.csv.Xy12Ab"));
	CHECK(file_contains(fi, "datasets/insurer_customers/.ins.csv.Xy12Ab", "q@x,3"));
	uint64_t tino = walk(fi, "datasets/insurer_customers/.ins.csv.Xy12Ab");
	CHECK_RC(do_rename(fi, "datasets/insurer_customers/.ins.csv.Xy12Ab",
	                   "datasets/insurer_customers/ins.csv"),
	         0);
	CHECK_RC(walk(fi, "datasets/insurer_customers/ins.csv"), tino);
	CHECK(walk(fi, "datasets/insurer_customers/.ins.csv.Xy12Ab") == 0);
	CHECK(file_contains(fi, "datasets/insurer_customers/status", "file: ins.csv"));
	{
		/* the same file sent again (rsync -a after a remount): no upload, no
		 * event; a changed one is uploaded */
		size_t n0 = fk.n;
		CHECK_RC(write_file(fi, "datasets/insurer_customers/.ins.csv.Zz", ins, 3), 0);
		CHECK_RC(do_rename(fi, "datasets/insurer_customers/.ins.csv.Zz",
		                   "datasets/insurer_customers/ins.csv"),
		         0);
		CHECK_RC(fk.n, n0);
		CHECK(file_contains(fi, "datasets/insurer_customers/status", "nothing uploaded"));
		CHECK(!listed(fi, "datasets/insurer_customers", ".ins.csv.Zz"));
		char *ins2 = dcr_asprintf("%sz@x,9\n", ins);
		CHECK_RC(write_file(fi, "datasets/insurer_customers/.ins.csv.Zz", ins2, 3), 0);
		CHECK_RC(do_rename(fi, "datasets/insurer_customers/.ins.csv.Zz",
		                   "datasets/insurer_customers/ins.csv"),
		         0);
		CHECK_RC(fk.n, n0 + 1);
		free(ins2);
		CHECK_RC(write_file(fi, "datasets/insurer_customers/.ins.csv.Zz", ins, 3), 0);
		CHECK_RC(do_rename(fi, "datasets/insurer_customers/.ins.csv.Zz",
		                   "datasets/insurer_customers/ins.csv"),
		         0);
		CHECK_RC(fk.n, n0 + 2);
	}
	/* shared statistics: ian's stats are readable by anna */
	CHECK_RC(fs_refresh(fa, NULL, NULL, &err) > 0, 1);
	CHECK(file_contains(fa, "datasets/insurer_customers/stats.json", "\"rows\": 3"));

	/* legacy drop: x.tmp renamed to x.csv; a bad drop fails the rename and stays */
	CHECK_RC(write_file(fi, "datasets/insurer_customers/drop.tmp", "email,risk\nbad\n", 100),
	         0);
	CHECK_RC(do_rename(fi, "datasets/insurer_customers/drop.tmp",
	                   "datasets/insurer_customers/drop.csv"),
	         -EINVAL);
	CHECK(listed(fi, "datasets/insurer_customers", "drop.tmp"));
	CHECK(file_contains(fi, "datasets/insurer_customers/status", "line 2"));
	CHECK(file_contains(fi, "datasets/insurer_customers/status", "file: ins.csv"));
	CHECK_RC(write_file(fi, "datasets/insurer_customers/drop.tmp", ins, 100), 0);
	CHECK_RC(do_rename(fi, "datasets/insurer_customers/drop.tmp",
	                   "datasets/insurer_customers/drop.csv"),
	         0);
	CHECK(file_contains(fi, "datasets/insurer_customers/status", "file: drop.csv"));
	CHECK(!listed(fi, "datasets/insurer_customers", "ins.csv"));
	CHECK(listed(fi, "datasets/insurer_customers", "drop.csv"));
	/* renaming a final file is not a thing here */
	CHECK_RC(do_rename(fi, "datasets/insurer_customers/drop.csv",
	                   "datasets/insurer_customers/drop.csv~"),
	         -EPERM);

	/* editor: swap file created and removed (never ingested), file rewritten in place */
	CHECK(fs_refresh(fa, NULL, NULL, &err) >= 0);
	before = fs_size(fa);
	CHECK_RC(write_file(fa, "datasets/bank_customers/.bank.csv.swp", "garbage", 100), 0);
	{
		const char *leaf;
		uint64_t dir = parent_of(fa, "datasets/bank_customers/.bank.csv.swp", &leaf);
		CHECK_RC(fs_unlink(fa, dir, leaf), 0);
		CHECK_RC(fs_unlink(fa, dir, leaf), -ENOENT);
	}
	CHECK_RC(fs_size(fa), before);
	uint64_t bino = walk(fa, "datasets/bank_customers/bank.csv");
	CHECK_RC(write_file(fa, "datasets/bank_customers/bank.csv",
	                    "email,city\na@x,Paris\nb@x,Paris\nq@x,Lyon\nr@x,Lyon\n", 7),
	         0);
	CHECK_RC(fs_size(fa), before + 1);
	CHECK_RC(walk(fa, "datasets/bank_customers/bank.csv"), bino);
	CHECK(file_contains(fa, "datasets/bank_customers/status", "rows: 4"));
	/* root temp files only for the creator, and never other names */
	CHECK_RC(write_file(fi, ".room.json.swp", "x", 10), -EACCES);
	CHECK_RC(write_file(fa, "notes.txt", "x", 10), -EACCES);

	/* runs: the write returns when the run is done; the result is the new one */
	CHECK_RC(open_mode(fi, "computations/overlap/run", O_WRONLY), -EACCES);
	CHECK(walk(fa, "computations/overlap/result.csv") == 0);
	CHECK_RC(write_file(fa, "computations/overlap/run", "\n", 10), 0);
	CHECK(file_contains(fa, "computations/overlap/result.csv", "city,n\nParis,10\n"));
	CHECK(file_contains(fa, "computations/overlap/status", "state: done"));
	CHECK(file_contains(fa, "computations/overlap/status", "suppressed: 2"));
	CHECK_RC(write_file(fa, "computations/overlap/run", "\n", 10), 0);
	uint64_t retrieved0 = rm_state_last_run(&fk.st, "overlap")->retrieved;
	CHECK(file_contains(fa, "computations/overlap/result.csv", "Paris,20"));
	CHECK_RC(rm_state_last_run(&fk.st, "overlap")->retrieved, retrieved0 + 1);
	/* the other party is refused the result, and sees no rows */
	CHECK_RC(fs_refresh(fi, NULL, NULL, &err) > 0, 1);
	CHECK(walk(fi, "computations/overlap/result.csv") != 0);
	CHECK_RC(open_mode(fi, "computations/overlap/result.csv", O_RDONLY), -EACCES);
	CHECK_RC(fs_getattr(fi, walk(fi, "computations/overlap/result.csv"), &a), 0);
	CHECK((a.mode & 0777) == 0);
	CHECK(file_contains(fi, "computations/overlap/status", "state: done"));

	/* audit.log: one line per event; events/: the raw entries */
	CHECK_RC(fs_refresh(fa, NULL, NULL, &err) >= 0, 1);
	CHECK(read_all(fa, "audit.log", &s) == 0);
	CHECK_RC(count_lines(s), fk.n);
	free(s);
	CHECK(read_all(fi, "audit.log", &s) == 0);
	CHECK(s && strstr(s, "anna@bank.example"));
	free(s);
	{
		char name[64];
		snprintf(name, sizeof name, "events/%012zu.event", fk.n - 1);
		CHECK(read_all(fa, name, &s) == 0);
		CHECK(s && memcmp(s, fk.entries[fk.n - 1].data, strlen(s)) == 0);
		free(s);
		CHECK(listed(fa, "events", "000000000000.event"));
	}

	/* refresh reports changed inodes to invalidate */
	{
		uint64_t *ch = NULL;
		size_t nch = 0;
		CHECK(fs_refresh(fi, &ch, &nch, &err) >= 0); /* drain */
		free(ch);
		CHECK_RC(write_file(fa, "datasets/bank_customers/bank.csv", bank, 64), 0);
		CHECK(fs_refresh(fi, &ch, &nch, &err) >= 1);
		CHECK(ch != NULL && nch > 3);
		free(ch);
		CHECK_RC(fs_refresh(fi, &ch, &nch, &err), 0);
		CHECK(ch == NULL && nch == 0);
	}

	/* everyday tools (issue 17) */
	{
		const char *good = "email,city\na@x,Paris\nb@x,Paris\nc@x,Lyon\n";
		const char *bad = "email,city\na@x,Paris\n,Lyon\n"; /* email is not nullable */
		const char *leaf;
		uint64_t dir = parent_of(fa, "datasets/bank_customers/bank.csv", &leaf);
		fs_file *h, *h2;
		size_t n0;
		CHECK_RC(write_file(fa, "datasets/bank_customers/bank.csv", good, 64), 0);
		/* a bad row fails the write(2) that carries it (the local check) */
		n0 = fk.n;
		CHECK_RC(fs_create(fa, dir, "x.csv", O_WRONLY | O_CREAT, &a, &h), 0);
		CHECK_RC(fs_write(fa, h, 0, bad, strlen(bad)), -EINVAL);
		fs_flush(fa, h, 0, false);
		fs_release(fa, h);
		CHECK(file_contains(fa, "datasets/bank_customers/status", "x.csv line 3"));
		CHECK_RC(fk.n, n0);
		/* ... and the name can be written again at once (stale kernel entry) */
		CHECK_RC(fs_open(fa, a.ino, O_WRONLY | O_TRUNC, &h), 0);
		CHECK_RC(fs_write(fa, h, 0, good, strlen(good)), strlen(good));
		CHECK_RC(fs_flush(fa, h, 0, false), 0);
		fs_release(fa, h);
		CHECK(file_contains(fa, "datasets/bank_customers/status", "file: x.csv"));
		/* two writers: the second is refused at open, the first succeeds */
		CHECK_RC(fs_create(fa, dir, "two.csv", O_WRONLY | O_CREAT, &a, &h), 0);
		CHECK_RC(fs_write(fa, h, 0, good, 12), 12);
		CHECK_RC(fs_open(fa, a.ino, O_WRONLY | O_TRUNC, &h2), -EBUSY);
		CHECK(file_contains(fa, "status", "being written by another process"));
		CHECK_RC(fs_write(fa, h, 12, good + 12, strlen(good) - 12), strlen(good) - 12);
		CHECK_RC(fs_flush(fa, h, 0, false), 0);
		fs_release(fa, h);
		CHECK(file_contains(fa, "datasets/bank_customers/status", "file: two.csv"));
		/* sed -i: the work file, provisioned at close, renamed over the name */
		CHECK_RC(write_file(fa, "datasets/bank_customers/sedAb12Cd", good, 64), 0);
		CHECK_RC(do_rename(fa, "datasets/bank_customers/sedAb12Cd",
		                   "datasets/bank_customers/bank.csv"),
		         0);
		CHECK(file_contains(fa, "datasets/bank_customers/status", "file: bank.csv"));
		CHECK(listed(fa, "datasets/bank_customers", "bank.csv"));
		CHECK(!listed(fa, "datasets/bank_customers", "sedAb12Cd"));
		CHECK(read_all(fa, "datasets/bank_customers/bank.csv", &s) == 0 &&
		      strcmp(s, good) == 0);
		free(s);
		/* mode and mtime a tool sets are kept (rsync -a, cp -p) */
		uint64_t bank_ino = walk(fa, "datasets/bank_customers/bank.csv");
		CHECK_RC(fs_setattr(fa, bank_ino, NULL, -1, 0600, 1700000000123456789LL, &a), 0);
		CHECK(a.mtime_ns == 1700000000123456789ULL && (a.mode & 0777) == 0600);
		CHECK_RC(fs_getattr(fa, bank_ino, &a), 0);
		CHECK(a.mtime_ns == 1700000000123456789ULL && (a.mode & 0777) == 0600);
		CHECK_RC(fs_setattr(fi, walk(fi, "datasets/insurer_customers"), NULL, -1, 0700, -1,
		                    &a),
		         0);
		/* install / tar -x: rm, then a bad file: the data stays */
		n0 = fk.n;
		CHECK_RC(fs_unlink(fa, dir, "bank.csv"), 0);
		CHECK(walk(fa, "datasets/bank_customers/bank.csv") == 0);
		CHECK(file_contains(fa, "datasets/bank_customers/status", "pending_rm: bank.csv"));
		CHECK_RC(write_file(fa, "datasets/bank_customers/bank.csv", bad, 64), -EINVAL);
		CHECK(file_contains(fa, "datasets/bank_customers/status", "rm of bank.csv is undone"));
		CHECK(file_contains(fa, "datasets/bank_customers/status", "state: provisioned"));
		CHECK(walk(fa, "datasets/bank_customers/bank.csv") != 0);
		CHECK_RC(fk.n, n0);
		/* rsync --delete: rm, then a long transfer into a temp name that
		 * keeps the rm pending, then a rejected rename: the data stays */
		CHECK_RC(fs_unlink(fa, dir, "bank.csv"), 0);
		CHECK_RC(fs_create(fa, dir, ".other.csv.Xy12Ab", O_WRONLY | O_CREAT, &a, &h), 0);
		CHECK_RC(fs_write(fa, h, 0, "email,city\n", 11), 11);
		for (int i = 0; i < 3; i++) {
			usleep(600 * 1000);
			CHECK(fs_refresh(fa, NULL, NULL, &err) >= 0);
			CHECK_RC(fs_write(fa, h, 11 + (uint64_t)i * 4, "a@x\n", 4), 4);
		}
		fs_flush(fa, h, 0, false);
		fs_release(fa, h);
		CHECK(file_contains(fa, "datasets/bank_customers/status", "pending_rm: bank.csv"));
		CHECK_RC(do_rename(fa, "datasets/bank_customers/.other.csv.Xy12Ab",
		                   "datasets/bank_customers/other.csv"),
		         -EINVAL);
		CHECK(file_contains(fa, "datasets/bank_customers/status", "file: bank.csv"));
		CHECK(walk(fa, "datasets/bank_customers/bank.csv") != 0);
		CHECK_RC(fs_unlink(fa, dir, ".other.csv.Xy12Ab"), 0);
		CHECK_RC(fk.n, n0);
		/* ... and a good one replaces it without a deprovision */
		CHECK_RC(fs_unlink(fa, dir, "bank.csv"), 0);
		CHECK_RC(write_file(fa, "datasets/bank_customers/bank.csv", good, 64), 0);
		usleep(1100 * 1000);
		CHECK(fs_refresh(fa, NULL, NULL, &err) >= 0);
		CHECK(file_contains(fa, "datasets/bank_customers/status", "state: provisioned"));
		CHECK_RC(fk.n, n0 + 1);
		/* generated files have their size before the first open */
		CHECK_RC(fs_lookup(fi, walk(fi, "datasets/insurer_customers"), "stats.json", &a), 0);
		CHECK(read_all(fi, "datasets/insurer_customers/stats.json", &s) == 0);
		CHECK(a.size > 0 && a.size == strlen(s));
		free(s);
		/* audit.log reads as it is now, not as of the open (tail -f) */
		char buf[64];
		CHECK_RC(fs_open(fa, walk(fa, "audit.log"), O_RDONLY, &h), 0);
		CHECK_RC(fs_getattr(fa, walk(fa, "audit.log"), &a), 0);
		CHECK_RC(write_file(fa, "computations/overlap/run", "a\nb\nc\n", 2), 0);
		CHECK(fs_read(fa, h, a.size, buf, sizeof buf) > 0);
		fs_release(fa, h);
	}
	/* the daemon away: status and README say so; back when it answers */
	CHECK(file_contains(fa, "status", "daemon: connected"));
	fk.down = true;
	CHECK(fs_refresh(fa, NULL, NULL, &err) < 0);
	CHECK(file_contains(fa, "status", "daemon: unreachable since"));
	CHECK(file_contains(fa, "README", "WARNING: the daemon does not answer"));
	fk.down = false;
	CHECK(fs_refresh(fa, NULL, NULL, &err) >= 0);
	CHECK(file_contains(fa, "status", "daemon: connected"));
	CHECK(read_all(fa, "README", &s) == 0 && !strstr(s, "WARNING"));
	free(s);

	/* one open-write-close is one run, whatever was written */
	{
		size_t runs0 = fk.st.nruns;
		CHECK_RC(write_file(fa, "computations/overlap/run", "a\nb\nc\n", 2), 0);
		CHECK_RC(fk.st.nruns, runs0 + 1);
		fs_file *h;
		CHECK_RC(fs_open(fa, walk(fa, "computations/overlap/run"), O_WRONLY | O_TRUNC, &h), 0);
		CHECK_RC(fs_flush(fa, h, 0, false), 0);
		fs_release(fa, h);
		CHECK_RC(fk.st.nruns, runs0 + 1); /* : > run */
	}

	/* rm of the provisioned file deprovisions (owner only), after the grace */
	{
		const char *leaf;
		uint64_t dir = parent_of(fa, "datasets/bank_customers/bank.csv", &leaf);
		CHECK_RC(fs_unlink(fa, dir, leaf), 0);
		usleep(1100 * 1000);
		CHECK(
		    file_contains(fa, "datasets/bank_customers/status", "state: not provisioned"));
		CHECK(walk(fa, "datasets/bank_customers/bank.csv") == 0);
		dir = walk(fi, "datasets");
		CHECK_RC(fs_unlink(fi, dir, "bank_customers"), -EISDIR);
	}

	test_requests(fa, fi, fe);

	/* stop: nothing advertises writing any more */
	CHECK_RC(write_file(fa, "ctl", "stop\n", 100), 0);
	CHECK(file_contains(fa, "status", "status: stopped"));
	CHECK_RC(fs_getattr(fa, walk(fa, "computations/overlap/run"), &a), 0);
	CHECK((a.mode & 0222) == 0);
	CHECK_RC(fs_getattr(fa, walk(fa, "datasets/bank_customers"), &a), 0);
	CHECK((a.mode & 0222) == 0);
	CHECK_RC(fs_getattr(fa, walk(fa, "ctl"), &a), 0);
	CHECK((a.mode & 0222) == 0);
	CHECK(read_all(fa, "README", &s) == 0 && strstr(s, "The room is stopped") &&
	      !strstr(s, "provision bank_customers"));
	free(s);

	/* Files still open when the mount goes away (FUSE sends no release
	 * for them): fs_free releases them (the ASan pass checks for leaks). */
	{
		fs_file *h1, *h2;
		CHECK_RC(fs_open(fa, walk(fa, "status"), O_RDONLY, &h1), 0);
		CHECK_RC(fs_open(fa, walk(fa, "computations/overlap/status"), O_RDONLY, &h2), 0);
	}

	fs_free(fa);
	fs_free(fi);
	fs_free(fe);
	for (size_t i = 0; i < fk.n; i++)
		dcr_buf_release(&fk.entries[i]);
	free(fk.entries);
	for (size_t i = 0; i < fk.nresults; i++)
		free(fk.results[i].csv);
	for (size_t i = 0; i < fk.nfiles; i++) {
		free(fk.files[i].dataset);
		free(fk.files[i].file);
		dcr_buf_release(&fk.files[i].bytes);
	}
	rm_state_release(&fk.st);
	dcr_key_free(fk.daemon);
	dcr_key_free(anna.key);
	dcr_key_free(ian.key);
	dcr_key_free(eve.key);
	if (t_failures) {
		fprintf(stderr, "test_fs_core: %d failures\n", t_failures);
		return 1;
	}
	printf("test_fs_core: ok\n");
	return 0;
}
