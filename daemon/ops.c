/* ops.c: the request handlers of dcrd (docs/protocol.md, "Operations").
 *
 * Runs on libuv's thread pool, one request at a time per connection, so a
 * session's uploads and reader cache need no lock. Every read is checked
 * with the room module's predicates (rm_may_*, rm_check_*): no rule is
 * written here. A caller who may not see a room gets the same ENOTFOUND as
 * for a room that does not exist. Uploads stream: each chunk goes through
 * the CSV validator, SHA-256 and encryption to a temp file; nothing is kept
 * in memory beyond one chunk. */
#include <time.h>

#include "dmn_int.h"

struct dmn_upload {
	dmn_upload *next;
	uint64_t id;
	uint8_t room[ES_ROOM_ID_BYTES];
	char *dataset;
	char *file;
	bool table;
	cmp_column *cols;
	size_t ncols;
	cmp_ingest *ing;
	dmn_blob_writer *w;
	uint64_t bytes;
	uint64_t t0_ms;
	dmn *d; /* set once counted in d->up.open */
	/* quotas (quota.c): the uploader, the stored bytes of the key and
	 * the room at upload.begin, the bytes charged as in flight */
	uint8_t key[32];
	uint64_t key_base, room_base, charged;
	/* the rows its validation holds for the prepared table
	 * (cmp_ingest_keep_rows), charged to up.rows_bytes, up to rows_max */
	uint64_t rows_charged, rows_max;
};

typedef int (*op_fn)(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err);

/* ---- helpers ------------------------------------------------------------------- */

static int arg_str(const dcr_mpv *args, const char *key, char **out, dcr_err *err)
{
	const dcr_mpv *v = dcr_mp_get(args, key);

	*out = NULL;
	if (!v)
		return dcr_err_set(err, DCR_EINVALID, "missing argument %s", key);
	if (dcr_mp_strdup(v, out) < 0)
		return dcr_err_set(err, DCR_EINVALID, "argument %s: not a string", key);
	return 0;
}

static int arg_u64(const dcr_mpv *args, const char *key, uint64_t *out, dcr_err *err)
{
	const dcr_mpv *v = dcr_mp_get(args, key);

	if (!v)
		return dcr_err_set(err, DCR_EINVALID, "missing argument %s", key);
	if (dcr_mp_u64(v, out) < 0)
		return dcr_err_set(err, DCR_EINVALID, "argument %s: not an unsigned integer", key);
	return 0;
}

/* The offset and len of a ranged read (result.read, logs.read, data.read,
 * dev.read); len is capped at DMN_RESULT_READ_BYTES_MAX per call. */
static int arg_range(const dcr_mpv *args, uint64_t *off, uint64_t *len, dcr_err *err)
{
	int rc = arg_u64(args, "offset", off, err);
	if (rc == 0)
		rc = arg_u64(args, "len", len, err);
	if (rc == 0 && *len > DMN_RESULT_READ_BYTES_MAX)
		*len = DMN_RESULT_READ_BYTES_MAX;
	return rc;
}

/* Resolves args.room to a room the caller may read; the room's mutex is
 * NOT held on return. */
static int arg_room(dmn *d, dmn_session *s, const dcr_mpv *args, dmn_room **out, dcr_err *err)
{
	const char *p;
	size_t n;
	uint8_t id[ES_ROOM_ID_BYTES];
	char hex[ES_ROOM_HEX_BYTES];
	dmn_room *r;
	bool ok;

	*out = NULL;
	if (dcr_mp_str(dcr_mp_get(args, "room"), &p, &n) < 0)
		return dcr_err_set(err, DCR_EINVALID, "missing argument room");
	if (n != 32)
		return dcr_err_set(err, DCR_EINVALID, "room: not a room id (32 hex chars)");
	memcpy(hex, p, 32);
	hex[32] = 0;
	if (es_room_parse(hex, id) < 0)
		return dcr_err_set(err, DCR_EINVALID, "room: not a room id (32 hex chars)");
	memcpy(s->room, hex, sizeof hex);
	r = dmn__room_find(d, id);
	if (!r)
		return dcr_err_set(err, DCR_ENOTFOUND, "no room %s", hex);
	dmn__mutex_lock(&r->mu);
	ok = rm_may_read_room(&r->st, s->key);
	dmn__mutex_unlock(&r->mu);
	if (!ok)
		return dcr_err_set(err, DCR_ENOTFOUND, "no room %s", hex);
	free(s->who);
	s->who = dmn__who(r, s->key);
	*out = r;
	return 0;
}

static void json_str(dcr_buf *b, const char *s)
{
	dcr_json_str(b, s, strlen(s));
}

/* ---- rooms and events ------------------------------------------------------------ */

static int op_rooms(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err)
{
	size_t n, i, hits = 0;
	dmn_room **rooms = dmn__rooms_list(d, &n);
	dcr_buf arr;
	dcr_mpw w;

	dcr_buf_init(&arr);
	dcr_mpw_init(&w, &arr);
	for (i = 0; i < n; i++) {
		dmn_room *r = rooms[i];
		dmn__mutex_lock(&r->mu);
		if (rm_may_read_room(&r->st, s->key)) {
			dcr_mpw_map(&w, 4);
			dcr_mpw_str(&w, "id");
			dcr_mpw_str(&w, r->hex);
			dcr_mpw_str(&w, "name");
			dcr_mpw_str(&w, r->st.def && r->st.def->name ? r->st.def->name : "");
			dcr_mpw_str(&w, "size");
			dcr_mpw_uint(&w, r->durable);
			dcr_mpw_str(&w, "status");
			dcr_mpw_str(&w, rm_status_name(r->st.status));
			hits++;
		}
		dmn__mutex_unlock(&r->mu);
	}
	free(rooms);
	if (hits > DCR_MP_ELEMS_MAX || arr.len > DCR_FRAME_BYTES_MAX - 1024) {
		dcr_buf_release(&arr);
		return dcr_err_set(err, DCR_ELIMIT, "too many rooms to list");
	}
	{
		dcr_mpw *v = proto_map_key(res, "rooms");
		dcr_mpw_array(v, (uint32_t)hits);
		dcr_mpw_raw(v, arr.data, arr.len);
	}
	dcr_buf_release(&arr);
	return 0;
}

static int op_size(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err)
{
	dmn_room *r;
	uint64_t size;
	int rc = arg_room(d, s, args, &r, err);

	if (rc < 0)
		return rc;
	dmn__mutex_lock(&r->mu);
	size = r->st.size;
	dmn__mutex_unlock(&r->mu);
	dcr_mpw_uint(proto_map_key(res, "size"), size);
	return 0;
}

struct events_ctx {
	dcr_mpw *w;
	uint32_t count;
	uint64_t max;
	size_t bytes, budget;
};

#define EVENTS_STOP 1

static int events_one(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	struct events_ctx *e = ctx;

	(void)seq;
	if (e->count >= e->max || (e->count > 0 && e->bytes + n + 8 > e->budget))
		return EVENTS_STOP;
	dcr_mpw_bin(e->w, entry, n);
	e->bytes += n + 8;
	e->count++;
	return 0;
}

static int op_events(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err)
{
	struct events_ctx e = {0};
	dmn_room *r;
	uint64_t from = 0, max = DMN_EVENTS_PER_REPLY_MAX;
	dcr_buf arr;
	dcr_mpw w;
	int rc = arg_room(d, s, args, &r, err);

	if (rc < 0)
		return rc;
	rc = arg_u64(args, "from", &from, err);
	if (rc < 0)
		return rc;
	if (dcr_mp_get(args, "max")) {
		rc = arg_u64(args, "max", &max, err);
		if (rc < 0)
			return rc;
	}
	if (max > DMN_EVENTS_PER_REPLY_MAX)
		max = DMN_EVENTS_PER_REPLY_MAX;
	dcr_buf_init(&arr);
	dcr_mpw_init(&w, &arr);
	e.w = &w;
	e.max = max;
	e.budget = DCR_FRAME_BYTES_MAX - 1024;
	rc = es_fold(d->store, r->id, from, ES_SEQ_ANY, events_one, &e);
	if (rc == EVENTS_STOP)
		rc = 0;
	if (rc < 0) {
		dcr_buf_release(&arr);
		return dcr_err_set(err, rc, "reading events: %s", dcr_strerror(rc));
	}
	{
		dcr_mpw *v = proto_map_key(res, "events");
		dcr_mpw_array(v, e.count);
		dcr_mpw_raw(v, arr.data, arr.len);
	}
	dcr_buf_release(&arr);
	return 0;
}

static int op_submit(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err)
{
	const char *p;
	size_t n;
	const uint8_t *entry;
	size_t entry_n;
	uint8_t id[ES_ROOM_ID_BYTES];
	char hex[ES_ROOM_HEX_BYTES];
	uint64_t seq = 0;
	char type[ES_TYPE_BYTES_MAX];
	dmn_room *r;
	int rc;

	/* No read check here: a new room does not exist yet, and rm_apply
	 * decides what this actor may do; dmn__submit answers an actor who
	 * may not read the room as for a room that does not exist. */
	if (dcr_mp_str(dcr_mp_get(args, "room"), &p, &n) < 0 || n != 32)
		return dcr_err_set(err, DCR_EINVALID, "room: not a room id (32 hex chars)");
	memcpy(hex, p, 32);
	hex[32] = 0;
	if (es_room_parse(hex, id) < 0)
		return dcr_err_set(err, DCR_EINVALID, "room: not a room id (32 hex chars)");
	memcpy(s->room, hex, sizeof hex);
	rc = dcr_mp_get_bin(args, "entry", &entry, &entry_n, err);
	if (rc < 0)
		return dcr_err_set(err, DCR_EINVALID, "missing argument entry (bin)");
	type[0] = 0;
	rc = dmn__submit(d, id, entry, entry_n, s->key, &seq, type, err);
	if (type[0])
		snprintf(s->op, sizeof s->op, "submit %s", type);
	r = dmn__room_find(d, id);
	if (r) {
		free(s->who);
		s->who = dmn__who(r, s->key);
	}
	if (rc == DCR_ESEQ && r) {
		/* The room's size with the error (docs/protocol.md), so the
		 * client re-signs without asking for it: ESEQ is only answered
		 * to a key that may read the room. */
		dmn__mutex_lock(&r->mu);
		seq = r->st.size;
		dmn__mutex_unlock(&r->mu);
		dcr_mpw_uint(proto_map_key(res, "size"), seq);
	}
	if (rc < 0)
		return rc;
	if (strncmp(type, "request.", 8) == 0)
		dmn__auto_approve(d, id); /* docs/rules.md "Auto-approval" */
	dcr_mpw_uint(proto_map_key(res, "seq"), seq);
	return 0;
}

/* ---- uploads ------------------------------------------------------------------------ */

static void upload_free(dmn_upload *u)
{
	if (!u)
		return;
	if (u->d)
		atomic_fetch_sub_explicit(&u->d->up.open, 1, memory_order_relaxed);
	if (u->charged)
		dmn__quota_release(u->d, u->key, u->room, u->charged);
	if (u->rows_charged)
		dmn__rows_uncharge(u->d, u->rows_charged);
	cmp_ingest_free(u->ing); /* and the rows it held, wiped */
	dmn__blob_abort(u->w);
	dmn__schema_free(u->cols, u->ncols);
	free(u->dataset);
	free(u->file);
	free(u);
}

static dmn_upload *upload_find(dmn_session *s, uint64_t id, bool unlink_it)
{
	dmn_upload **pp;

	for (pp = &s->uploads; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id) {
			dmn_upload *u = *pp;
			if (unlink_it) {
				*pp = u->next;
				s->nuploads--;
			}
			return u;
		}
	return NULL;
}

static int op_upload_begin(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res,
                           dcr_err *err)
{
	dmn_room *r;
	dmn_upload *u = NULL;
	char *dataset = NULL, *file = NULL, *label = NULL;
	bool keep_rows = false;
	uint64_t size_hint = 0;
	int rc;

	rc = arg_room(d, s, args, &r, err);
	if (rc == 0)
		rc = arg_str(args, "dataset", &dataset, err);
	if (rc == 0 && dcr_mp_get(args, "file"))
		rc = arg_str(args, "file", &file, err);
	if (rc < 0)
		goto out;
	/* the file name rule of rm_apply (which would refuse the provision),
	 * before any byte is stored */
	if ((rc = rm_file_name_check(file ? file : "", file ? strlen(file) : 0, err)) < 0)
		goto out;
	if (s->nuploads >= DMN_UPLOADS_MAX) {
		rc = dcr_err_set(err, DCR_ELIMIT, "more than %u uploads open on this connection",
		                 (unsigned)DMN_UPLOADS_MAX);
		goto out;
	}
	u = dcr_calloc(1, sizeof *u);
	dmn__mutex_lock(&r->mu);
	rc = rm_check_provision(&r->st, s->key, dataset, err);
	if (rc == 0) {
		const rm_dataset *ds = rm_def_dataset(r->st.def, dataset);
		u->table = ds->kind == RM_DS_TABLE;
		if (u->table)
			dmn__schema_of(ds, &u->cols, &u->ncols);
		/* a table replaced by each upload: its validated rows can
		 * be held for its prepared table (a drop of an append
		 * dataset is one file of a union: built from the files) */
		keep_rows = u->table && !ds->append && d->up.rows_budget > 0;
	}
	dmn__mutex_unlock(&r->mu);
	if (rc < 0)
		goto out;
	memcpy(u->room, r->id, ES_ROOM_ID_BYTES);
	memcpy(u->key, s->key, 32);
	/* Quotas: the stored bytes now; a client that says the size (bytes)
	 * is refused here rather than after sending the file. */
	dmn__quota_stored(d, s->key, r->id, &u->key_base, &u->room_base);
	if (dcr_mp_get(args, "bytes")) {
		uint64_t hint;
		rc = arg_u64(args, "bytes", &hint, err);
		if (rc == 0)
			rc = dmn__quota_charge(d, s->key, r->id, u->key_base, u->room_base, hint,
			                       true, err);
		if (rc < 0)
			goto out;
		/* A file whose rows (about its size and a quarter) would
		 * take more than half of all the memory for held rows is
		 * built from the file: holding them would cost the upload
		 * time and likely be dropped part way. */
		u->rows_max = d->up.rows_budget / 2;
		if (hint > u->rows_max / 5 * 4)
			keep_rows = false;
		size_hint = hint;
	} else {
		/* Of unknown size (the mount streams what cp writes): rows
		 * up to a small file's, so that a large file pays little
		 * for rows it would drop (docs/daemon.md). */
		u->rows_max = d->up.rows_budget / 2 < DMN_UPLOAD_ROWS_UNSIZED_BYTES
		                  ? d->up.rows_budget / 2
		                  : DMN_UPLOAD_ROWS_UNSIZED_BYTES;
	}
	u->dataset = dataset;
	dataset = NULL;
	u->file = file ? file : dcr_strdup("");
	file = NULL;
	u->t0_ms = dcr_mono_ms();
	if (u->table) {
		cmp_schema schema = {u->cols, u->ncols};
		label = dcr_strdup(*u->file ? u->file : u->dataset);
		rc = cmp_ingest_new(&schema, label, &u->ing);
		if (rc < 0) {
			dcr_err_set(err, rc, "starting validation of %s", label);
			goto out;
		}
		if (keep_rows)
			cmp_ingest_keep_rows(u->ing, size_hint);
	}
	rc = dmn__blob_create(d->blobs, &u->w, err);
	if (rc < 0)
		goto out;
	dmn__mutex_lock(&d->up.mu);
	u->id = ++d->up.next_id;
	dmn__mutex_unlock(&d->up.mu);
	u->d = d;
	atomic_fetch_add_explicit(&d->up.open, 1, memory_order_relaxed);
	u->next = s->uploads;
	s->uploads = u;
	s->nuploads++;
	dcr_mpw_uint(proto_map_key(res, "upload"), u->id);
	u = NULL;
out:
	upload_free(u);
	free(label);
	free(dataset);
	free(file);
	return rc;
}

static int arg_upload(dmn_session *s, const dcr_mpv *args, bool unlink_it, dmn_upload **out,
                      dcr_err *err)
{
	uint64_t id;
	int rc = arg_u64(args, "upload", &id, err);

	if (rc < 0)
		return rc;
	*out = upload_find(s, id, unlink_it);
	if (!*out)
		return dcr_err_set(err, DCR_ENOTFOUND, "no upload %llu on this connection",
		                   (unsigned long long)id);
	memcpy(s->room, "", 1);
	es_room_format((*out)->room, s->room);
	return 0;
}

/* Why an upload was dropped, for dcrd's log: a schema check's message
 * quotes the offending value (a row's data), so the log says only that it
 * was rejected; the uploader got the message (docs/privacy.md "File
 * names"). */
static const char *drop_reason(int rc, const dcr_err *err)
{
	if (rc == DCR_ECSV)
		return "rejected by the schema check (the uploader got the line, column and reason)";
	return err ? err->msg : dcr_strerror(rc);
}

static void upload_drop(dmn *d, dmn_session *s, dmn_upload *u, const char *why)
{
	char *who = dmn__who(dmn__room_find(d, u->room), s->key);
	char *line = dcr_asprintf("%s upload %llu of %s (%s) dropped after %llu bytes: %s", who,
	                          (unsigned long long)u->id, u->dataset, u->file,
	                          (unsigned long long)u->bytes, why);

	upload_free(u); /* removes the temp file: log only once it is gone */
	dmn__log(d, DMN_LOG_INFO, "%s", line);
	free(line);
	free(who);
}

static int op_upload_chunk(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res,
                           dcr_err *err)
{
	dmn_upload *u;
	const uint8_t *p;
	size_t n;
	int rc = arg_upload(s, args, false, &u, err);

	if (rc < 0)
		return rc;
	rc = dcr_mp_get_bin(args, "data", &p, &n, err);
	if (rc < 0)
		return dcr_err_set(err, DCR_EINVALID, "missing argument data (bin)");
	if (n > DCR_CHUNK_BYTES)
		return dcr_err_set(err, DCR_ELIMIT, "chunk of %zu bytes exceeds %u", n,
		                   (unsigned)DCR_CHUNK_BYTES);
	if (u->bytes + n > DMN_UPLOAD_BYTES_MAX)
		rc = dcr_err_set(err, DCR_ELIMIT, "%s: file larger than %llu bytes", u->file,
		                 (unsigned long long)DMN_UPLOAD_BYTES_MAX);
	if (rc == 0) {
		/* the chunk that would pass a quota is refused, nothing kept */
		rc = dmn__quota_charge(d, u->key, u->room, u->key_base, u->room_base, n, false,
		                       err);
		if (rc == 0)
			u->charged += n;
	}
	if (rc == 0) {
		/* Hashing, encryption and the write run on a blob helper
		 * while this thread validates the same bytes. */
		dcr_err werr;
		int wrc;
		dmn__blob_write_start(u->w, p, n);
		if (u->ing)
			rc = cmp_ingest_feed(u->ing, p, n, err);
		wrc = dmn__blob_write_wait(u->w, &werr);
		if (rc == 0 && wrc < 0) {
			rc = wrc;
			if (err)
				*err = werr;
		}
		/* Rows held past the budget: this upload holds none (its
		 * table is built from the file, as after a restart). */
		size_t held = u->ing ? cmp_ingest_rows_bytes(u->ing) : 0;
		if (rc == 0 && held &&
		    (held > u->rows_max || !dmn__rows_charge(d, &u->rows_charged, held))) {
			cmp_ingest_drop_rows(u->ing);
			dmn__rows_uncharge(d, u->rows_charged);
			u->rows_charged = 0;
			dmn__log(d, DMN_LOG_INFO,
			         "upload %llu of %s: its rows are no longer held for the prepared "
			         "table after %llu bytes (--upload-rows-mb); it is built from the file",
			         (unsigned long long)u->id, u->dataset,
			         (unsigned long long)(u->bytes + n));
		}
	}
	if (rc < 0) {
		/* A rejected file stores nothing. */
		upload_find(s, u->id, true);
		upload_drop(d, s, u, drop_reason(rc, err));
		return rc;
	}
	u->bytes += n;
	return 0;
}

static int op_upload_end(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err)
{
	dmn_upload *u;
	dmn_done_upload *done = NULL;
	dcr_buf stats;
	uint64_t rows = 0, bytes = 0;
	char blob[DMN_BLOB_HEX_BYTES], stats_blob[DMN_BLOB_HEX_BYTES], *key = NULL;
	uint8_t sha[32], stats_sha[32];
	int rc = arg_upload(s, args, true, &u, err);

	if (rc < 0)
		return rc;
	dcr_buf_init(&stats);
	if (u->ing) {
		rc = cmp_ingest_finish(u->ing, &rows, &stats, err);
		if (rc < 0)
			goto fail;
	} else {
		dcr_buf_printf(&stats, "{\"bytes\":%llu,\"rows\":0}", (unsigned long long)u->bytes);
	}
	rc = dmn__blob_commit(u->w, blob, sha, &bytes, err);
	u->w = NULL;
	if (rc < 0)
		goto fail;
	rc = dmn__blob_put(d->blobs, stats.data, stats.len, stats_blob, stats_sha, err);
	if (rc < 0)
		goto fail;
	/* Durable before any event can name the blob. */
	key = dcr_asprintf("stats:%s", blob);
	rc = es_meta_put(d->store, key, stats_blob, strlen(stats_blob));
	if (rc < 0) {
		dcr_err_set(err, rc, "recording statistics: %s", dcr_strerror(rc));
		goto fail;
	}
	done = dcr_calloc(1, sizeof *done);
	memcpy(done->actor, s->key, 32);
	memcpy(done->room, u->room, ES_ROOM_ID_BYTES);
	done->p.dataset = dcr_strdup(u->dataset);
	done->p.file = dcr_strdup(u->file);
	done->p.blob = dcr_strdup(blob);
	done->p.present = true;
	memcpy(done->p.by, s->key, 32);
	memcpy(done->p.sha256, sha, 32);
	memcpy(done->p.stats_sha256, stats_sha, 32);
	done->p.bytes = bytes;
	done->p.rows = rows;
	done->done_ms = dcr_now_ms();
	/* Its charge moves to the finished upload until it is signed or
	 * expires (dmn__upload_settle). */
	DCR_ASSERT(u->charged == bytes);
	u->charged = 0;
	dmn__mutex_lock(&d->up.mu);
	done->next = d->up.done;
	d->up.done = done;
	dmn__mutex_unlock(&d->up.mu);
	/* Unsigned uploads past their time or the cap go, blobs and all. */
	dmn__uploads_expire(d);
	if (u->ing) {
		/* Its rows wait for the prepared table's build (taken once the
		 * provision is signed; freed with the blob otherwise). */
		cmp_rows *held = cmp_ingest_take_rows(u->ing);
		if (held && dmn__rows_charge(d, &u->rows_charged, cmp_rows_bytes(held))) {
			dmn__rows_put(d, blob, u->cols, u->ncols, held, u->rows_charged, bytes);
			u->rows_charged = 0;
		} else {
			cmp_rows_free(held);
		}
	}
	dcr_mpw_str(proto_map_key(res, "blob"), blob);
	dcr_mpw_uint(proto_map_key(res, "bytes"), bytes);
	dcr_mpw_uint(proto_map_key(res, "rows"), rows);
	dcr_mpw_bin(proto_map_key(res, "sha256"), sha, 32);
	dcr_mpw_bin(proto_map_key(res, "stats_sha256"), stats_sha, 32);
	dmn__log(d, DMN_LOG_INFO, "upload %llu of %s: %llu bytes, %llu rows, blob %s in %llu ms",
	         (unsigned long long)u->id, u->dataset, (unsigned long long)bytes,
	         (unsigned long long)rows, blob, (unsigned long long)(dcr_mono_ms() - u->t0_ms));
	upload_free(u);
	goto out;
fail:
	upload_drop(d, s, u, drop_reason(rc, err));
out:
	free(key);
	dcr_buf_release(&stats);
	return rc;
}

static int op_upload_abort(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res,
                           dcr_err *err)
{
	dmn_upload *u;
	int rc = arg_upload(s, args, true, &u, err);

	if (rc < 0)
		return rc;
	upload_drop(d, s, u, "aborted by the client");
	return 0;
}

void dmn__session_release(dmn *d, dmn_session *s)
{
	while (s->uploads) {
		dmn_upload *u = s->uploads;
		s->uploads = u->next;
		s->nuploads--;
		upload_drop(d, s, u, "connection closed mid-upload");
	}
	dmn__blob_close(s->rd);
	s->rd = NULL;
	dmn__admin_session_release(d, s);
	free(s->who);
	s->who = NULL;
}

/* ---- runs and results ---------------------------------------------------------------- */

/* A run's outcome counts once its event is durable (r->durable): until then
 * it is still running, so a client that sees "done" finds the event in the
 * log. */
static bool run_finished(const dmn_room *r, const rm_run *run)
{
	DMN_ASSERT_HELD(&r->mu);
	return run->state != RM_RUN_QUEUED && run->finished_seq < r->durable;
}

static const char *run_state(dmn *d, const dmn_room *r, const rm_run *run)
{
	if (run->state != RM_RUN_QUEUED && !run_finished(r, run))
		return "running";
	switch (run->state) {
	case RM_RUN_QUEUED:
		return dmn__run_is_running(d, run->id) ? "running" : "queued";
	case RM_RUN_DONE:
		return "done";
	case RM_RUN_FAILED:
		return "failed";
	}
	return "none";
}

static int op_run_status(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err)
{
	dmn_room *r;
	char *comp = NULL;
	int rc = arg_room(d, s, args, &r, err);

	if (rc == 0)
		rc = arg_str(args, "computation", &comp, err);
	if (rc < 0)
		goto out;
	dmn__mutex_lock(&r->mu);
	if (!r->st.def || !rm_def_computation(r->st.def, comp)) {
		rc = dcr_err_set(err, DCR_ENOTFOUND, "no computation %s", comp);
	} else {
		const rm_run *run = rm_state_last_run(&r->st, comp);
		if (!run) {
			dcr_mpw_str(proto_map_key(res, "state"), "none");
		} else {
			/* Nothing of an outcome that is not durable yet. */
			bool fin = run_finished(r, run);
			dcr_mpw_str(proto_map_key(res, "state"), run_state(d, r, run));
			dcr_mpw_str(proto_map_key(res, "run"), run->id);
			if (fin && run->error)
				dcr_mpw_str(proto_map_key(res, "error"), run->error);
			/* The message behind the class: for analysts of an
			 * unfiltered computation only (docs/privacy.md). */
			char detail[DCR_ERR_MSG_BYTES];
			const rm_computation *c = rm_def_computation(r->st.def, comp);
			if (fin && run->state == RM_RUN_FAILED && c->min_rows_aggregated == 0 &&
			    rm_is_analyst(r->st.def, s->key, comp) &&
			    dmn__run_detail(run->id, detail, sizeof detail))
				dcr_mpw_str(proto_map_key(res, "detail"), detail);
			dcr_mpw_uint(proto_map_key(res, "rows"), fin ? run->rows : 0);
			dcr_mpw_uint(proto_map_key(res, "suppressed"), fin ? run->suppressed : 0);
			dcr_mpw_uint(proto_map_key(res, "duration_ms"), fin ? run->duration_ms : 0);
			dcr_mpw_uint(proto_map_key(res, "result_bytes"), fin ? run->result_bytes : 0);
			dcr_mpw_uint(proto_map_key(res, "requested_seq"), run->requested_seq);
		}
	}
	dmn__mutex_unlock(&r->mu);
out:
	free(comp);
	return rc;
}

static int op_result_open(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err)
{
	dmn_room *r;
	char *comp = NULL;
	int rc = arg_room(d, s, args, &r, err);

	if (rc == 0)
		rc = arg_str(args, "computation", &comp, err);
	if (rc < 0)
		goto out;
	dmn__mutex_lock(&r->mu);
	if (!rm_may_read_result(&r->st, s->key, comp)) {
		rc =
		    dcr_err_set(err, DCR_EDENIED, "you are not an analyst of computation %s", comp);
	} else {
		const rm_run *last = NULL;
		size_t i;
		for (i = r->st.nruns; i-- > 0;)
			if (r->st.runs[i].state == RM_RUN_DONE && run_finished(r, &r->st.runs[i]) &&
			    !r->st.runs[i].preview_of &&
			    strcmp(r->st.runs[i].computation, comp) == 0) {
				last = &r->st.runs[i];
				break;
			}
		if (!last) {
			rc = dcr_err_set(err, DCR_ENOTFOUND, "computation %s has no result yet",
			                 comp);
		} else {
			dcr_mpw_str(proto_map_key(res, "run"), last->id);
			dcr_mpw_uint(proto_map_key(res, "size"), last->result_bytes);
			dcr_mpw_uint(proto_map_key(res, "rows"), last->rows);
		}
	}
	dmn__mutex_unlock(&r->mu);
out:
	free(comp);
	return rc;
}

/* The ranged read of result.read and data.read: len bytes of blob at off
 * (the session keeps the last blob open), and the blob's size. */
static int read_range(dmn *d, dmn_session *s, const char blob[DMN_BLOB_HEX_BYTES], uint64_t off,
                      uint64_t len, proto_map *res, dcr_err *err)
{
	uint8_t *buf;
	size_t got = 0;
	int rc;

	if (!s->rd || strcmp(s->rd_blob, blob) != 0) {
		dmn__blob_close(s->rd);
		s->rd = NULL;
		rc = dmn__blob_open(d->blobs, blob, &s->rd, err);
		if (rc < 0)
			return rc;
		memcpy(s->rd_blob, blob, DMN_BLOB_HEX_BYTES);
	}
	buf = dcr_malloc(len ? (size_t)len : 1);
	rc = dmn__blob_pread(s->rd, off, buf, (size_t)len, &got, err);
	if (rc == 0) {
		dcr_mpw_bin(proto_map_key(res, "data"), buf, got);
		dcr_mpw_uint(proto_map_key(res, "size"), dmn__blob_size(s->rd));
	}
	free(buf);
	return rc;
}

static int op_result_read(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err)
{
	dmn_room *r;
	char *run_id = NULL, blob[DMN_BLOB_HEX_BYTES] = "";
	uint64_t off = 0, len = 0;
	int rc = arg_room(d, s, args, &r, err);

	if (rc == 0)
		rc = arg_str(args, "run", &run_id, err);
	if (rc == 0)
		rc = arg_range(args, &off, &len, err);
	if (rc < 0)
		goto out;
	dmn__mutex_lock(&r->mu);
	{
		const rm_run *run = rm_state_run(&r->st, run_id);
		if (!run || !rm_may_read_run(&r->st, s->key, run))
			rc = dcr_err_set(err, DCR_EDENIED, "you may not read the result of run %s",
			                 run_id);
		else if (run->state != RM_RUN_DONE || !run_finished(r, run) || !run->result_blob ||
		         !dmn__blob_id_valid(run->result_blob))
			rc = dcr_err_set(err, DCR_ESTATE, "run %s has no result", run_id);
		else if (run->retrieved == 0 || run->retrieved_seq >= r->durable)
			/* the retrieval must be in the log (durable) before any byte */
			rc = dcr_err_set(err, DCR_ESTATE,
			                 "run %s: record result.retrieved first (result.open)",
			                 run_id);
		else
			memcpy(blob, run->result_blob, DMN_BLOB_HEX_BYTES);
	}
	dmn__mutex_unlock(&r->mu);
	if (rc < 0)
		goto out;
	rc = read_range(d, s, blob, off, len, res, err);
out:
	free(run_id);
	return rc;
}

/* The logs of a python/r run (an archive of stdout and stderr,
 * docs/compute.md), as the computation's "logs" allows
 * (rm_check_read_logs); ranged like result.read. */
static int op_logs_read(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err)
{
	dmn_room *r;
	char *run_id = NULL, blob[DMN_BLOB_HEX_BYTES] = "";
	uint64_t off = 0, len = 0;
	int rc = arg_room(d, s, args, &r, err);

	if (rc == 0)
		rc = arg_str(args, "run", &run_id, err);
	if (rc == 0)
		rc = arg_range(args, &off, &len, err);
	if (rc < 0)
		goto out;
	dmn__mutex_lock(&r->mu);
	rc = rm_check_read_logs(&r->st, s->key, run_id, err);
	if (rc == 0) {
		const rm_run *run = rm_state_run(&r->st, run_id);
		if (!run_finished(r, run) || !dmn__blob_id_valid(run->logs_blob))
			rc = dcr_err_set(err, DCR_ESTATE, "run %s has no logs yet", run_id);
		else
			memcpy(blob, run->logs_blob, DMN_BLOB_HEX_BYTES);
	}
	dmn__mutex_unlock(&r->mu);
	if (rc == 0)
		rc = read_range(d, s, blob, off, len, res, err);
out:
	free(run_id);
	return rc;
}

/* The provisioned file itself, back to its owners (rm_may_read_data). */
static int op_data_read(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err)
{
	dmn_room *r;
	char *ds = NULL, *file = NULL, blob[DMN_BLOB_HEX_BYTES] = "";
	uint64_t off = 0, len = 0;
	uint8_t want[DCR_SHA256_BYTES];
	bool pinned = false;
	int rc = arg_room(d, s, args, &r, err);

	if (rc == 0)
		rc = arg_str(args, "dataset", &ds, err);
	if (rc == 0)
		rc = arg_range(args, &off, &len, err);
	if (rc == 0 && dcr_mp_get(args, "sha256")) {
		rc = dcr_mp_get_binn(args, "sha256", want, sizeof want, err);
		pinned = rc == 0;
	}
	if (rc == 0 && dcr_mp_get(args, "file"))
		rc = arg_str(args, "file", &file, err);
	if (rc < 0)
		goto out;
	dmn__mutex_lock(&r->mu);
	if (!rm_may_read_data(&r->st, s->key, ds)) {
		rc = dcr_err_set(err, DCR_EDENIED, "you are not an owner of dataset %s", ds);
	} else if (file) {
		/* one drop of an append dataset */
		const rm_drop *dr = rm_state_drop(&r->st, ds, file);
		if (!dr)
			rc = dcr_err_set(err, pinned ? DCR_ESTATE : DCR_ENOTFOUND,
			                 "dataset %s has no drop named \"%.255s\"", ds, file);
		else if (pinned && memcmp(dr->sha256, want, sizeof want) != 0)
			rc = dcr_err_set(err, DCR_ESTATE,
			                 "drop %s of %s was dropped again since this read began", file,
			                 ds);
		else if (!dmn__blob_id_valid(dr->blob))
			rc = dcr_err_set(err, DCR_ENOTFOUND, "drop %s of %s has no data", file, ds);
		else
			memcpy(blob, dr->blob, DMN_BLOB_HEX_BYTES);
	} else {
		const rm_provision *p = rm_state_provision(&r->st, ds);
		if (p && p->ndrops)
			rc = dcr_err_set(err, DCR_EINVALID,
			                 "dataset %s is an append dataset: read one drop at a time "
			                 "(name its file)",
			                 ds);
		else if (!p || !p->blob || !dmn__blob_id_valid(p->blob))
			rc = dcr_err_set(err, pinned ? DCR_ESTATE : DCR_ENOTFOUND,
			                 "dataset %s is not provisioned", ds);
		else if (pinned && memcmp(p->sha256, want, sizeof want) != 0)
			rc = dcr_err_set(err, DCR_ESTATE,
			                 "dataset %s was provisioned again since this read began", ds);
		else
			memcpy(blob, p->blob, DMN_BLOB_HEX_BYTES);
	}
	dmn__mutex_unlock(&r->mu);
	if (rc < 0)
		goto out;
	rc = read_range(d, s, blob, off, len, res, err);
out:
	free(ds);
	free(file);
	return rc;
}

/* The statistics of an append dataset, over the union of its drops (each
 * validated at its upload): one ingest reads every drop in drop order. */
static int union_stats(dmn *d, const char *ds, const cmp_column *cols, size_t ncols,
                       char **drops, size_t ndrops, dcr_buf *json, dcr_err *err)
{
	cmp_schema schema = {(cmp_column *)cols, ncols};
	cmp_ingest *in = NULL;
	uint8_t *buf = dcr_malloc(DCR_CHUNK_BYTES);
	int rc = cmp_ingest_new(&schema, ds, &in);

	if (rc < 0) {
		dcr_err_set(err, rc, "statistics of %s: bad schema", ds);
		goto out;
	}
	for (size_t i = 0; i < ndrops && rc == 0; i++) {
		dmn_blob_reader *rd = NULL;
		uint64_t off = 0;
		if (i)
			rc = cmp_ingest_next_file(in, NULL, err);
		if (rc == 0)
			rc = dmn__blob_open(d->blobs, drops[i], &rd, err);
		while (rc == 0) {
			size_t got = 0;
			rc = dmn__blob_pread(rd, off, buf, DCR_CHUNK_BYTES, &got, err);
			if (rc < 0 || got == 0)
				break;
			off += got;
			rc = cmp_ingest_feed(in, buf, got, err);
		}
		dmn__blob_close(rd);
	}
	if (rc == 0)
		rc = cmp_ingest_finish(in, NULL, json, err);
	if (rc < 0)
		dcr_err_prefix(err, "statistics of %s", ds);
out:
	cmp_ingest_free(in);
	free(buf);
	return rc;
}

/* union_stats, kept as a blob under "stats:" + the union's id (uid), like
 * a file's statistics: made once per union, removed with it when a drop
 * comes or goes (dmn__blobs_drop_withdrawn). */
static int union_stats_cached(dmn *d, const char *ds, const char *uid, const cmp_column *cols,
                              size_t ncols, char **drops, size_t ndrops, dcr_buf *json,
                              dcr_err *err)
{
	char *key = dcr_asprintf("stats:%s", uid);
	char id[DMN_BLOB_HEX_BYTES];
	uint8_t sha[32];
	dcr_buf v;
	dcr_err e2;
	int rc;

	dcr_buf_init(&v);
	if (es_meta_get(d->store, key, &v) == 0 && v.len == DMN_BLOB_HEX_BYTES - 1) {
		memcpy(id, v.data, v.len);
		id[v.len] = 0;
		if (dmn__blob_read_all(d->blobs, id, DMN_STATS_BYTES_MAX, json, &e2) == 0) {
			rc = 0;
			goto out;
		}
		dcr_buf_reset(json);
	}
	rc = union_stats(d, ds, cols, ncols, drops, ndrops, json, err);
	if (rc < 0)
		goto out;
	/* The cache is an optimization: a failure only costs a recompute. */
	if (dmn__blob_put(d->blobs, json->data, json->len, id, sha, &e2) == 0 &&
	    es_meta_put(d->store, key, id, strlen(id)) < 0)
		(void)dmn__blob_remove(d->blobs, id);
out:
	dcr_buf_release(&v);
	free(key);
	return rc;
}

static int op_stats(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err)
{
	dmn_room *r;
	char *ds = NULL, *key = NULL, blob[DMN_BLOB_HEX_BYTES] = "", **drops = NULL;
	char uid[DMN_UNION_ID_BYTES] = "";
	size_t ndrops = 0, ncols = 0;
	cmp_column *cols = NULL;
	dcr_buf v, json;
	int rc = arg_room(d, s, args, &r, err);

	dcr_buf_init(&v);
	dcr_buf_init(&json);
	if (rc == 0)
		rc = arg_str(args, "dataset", &ds, err);
	if (rc < 0)
		goto out;
	dmn__mutex_lock(&r->mu);
	if (!r->st.def || !rm_def_dataset(r->st.def, ds)) {
		rc = dcr_err_set(err, DCR_ENOTFOUND, "the room has no dataset %s", ds);
	} else if (!rm_may_read_stats(&r->st, s->key, ds)) {
		rc = dcr_err_set(err, DCR_EDENIED,
		                 "you may not read the statistics of %s (its owners may; the "
		                 "others only when the definition sets share_statistics)",
		                 ds);
	} else {
		const rm_provision *p = rm_state_provision(&r->st, ds);
		if (p && p->ndrops) {
			dmn__union_id(p->sha256, uid);
			ndrops = p->ndrops;
			drops = dcr_calloc(ndrops, sizeof *drops);
			for (size_t i = 0; i < ndrops; i++)
				drops[i] = dcr_strdup(p->drops[i].blob);
			dmn__schema_of(rm_def_dataset(r->st.def, ds), &cols, &ncols);
		} else if (!p || !p->blob || !dmn__blob_id_valid(p->blob)) {
			rc = dcr_err_set(err, DCR_ENOTFOUND, "dataset %s is not provisioned", ds);
		} else {
			memcpy(blob, p->blob, DMN_BLOB_HEX_BYTES);
		}
	}
	dmn__mutex_unlock(&r->mu);
	if (rc < 0)
		goto out;
	if (ndrops) {
		rc = union_stats_cached(d, ds, uid, cols, ncols, drops, ndrops, &json, err);
		if (rc == 0)
			dcr_mpw_strn(proto_map_key(res, "json"), (const char *)json.data, json.len);
		goto out;
	}
	key = dcr_asprintf("stats:%s", blob);
	rc = es_meta_get(d->store, key, &v);
	if (rc < 0 || v.len != DMN_BLOB_HEX_BYTES - 1) {
		rc = dcr_err_set(err, DCR_ENOTFOUND, "no statistics for %s", ds);
		goto out;
	}
	memcpy(blob, v.data, v.len);
	blob[v.len] = 0;
	rc = dmn__blob_read_all(d->blobs, blob, DMN_STATS_BYTES_MAX, &json, err);
	if (rc < 0)
		goto out;
	dcr_mpw_strn(proto_map_key(res, "json"), (const char *)json.data, json.len);
out:
	for (size_t i = 0; i < ndrops; i++)
		free(drops[i]);
	free(drops);
	dmn__schema_free(cols, ncols);
	free(key);
	free(ds);
	dcr_buf_release(&v);
	dcr_buf_release(&json);
	return rc;
}

/* ---- room test, datasets, integrity ------------------------------------------------------ */

static int op_room_test(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err)
{
	dmn_room *r;
	rm_def *def = NULL;
	char *text = NULL;
	bool *ok = NULL;
	size_t *order = NULL, i;
	dcr_buf report, *tests = NULL;
	dcr_err e;
	int rc = arg_room(d, s, args, &r, err);

	if (rc < 0)
		return rc;
	dcr_buf_init(&report);
	/* The admission check (rm_def_admit: every SQL computation on empty
	 * inputs, upstream first) on a private copy of the definition, outside
	 * the room's lock (on the check threads), and every python/r computation run in the sandbox
	 * on empty inputs (dmn__script_test): report each computation's
	 * columns (and a script's files) or error. */
	dmn__mutex_lock(&r->mu);
	if (r->st.def_json)
		text = dcr_strdup(r->st.def_json);
	dmn__mutex_unlock(&r->mu);
	if (!text) {
		rc = dcr_err_set(err, DCR_ESTATE, "the room has no definition");
		goto out;
	}
	rc = rm_def_parse(text, strlen(text), &def, err);
	if (rc < 0)
		goto out;
	/* on the check threads, charged to the caller's budget (admit.c);
	 * each computation keeps its own error */
	rc = dmn__admit_check(d, s->key, def, true, &e);
	if (rc == DCR_ELIMIT || rc == DCR_ECANCELED) {
		dcr_err_set(err, rc, "%s", e.msg);
		goto out;
	}
	rc = 0;
	order = dcr_calloc(def->ncomputations + 1, sizeof *order);
	ok = dcr_calloc(def->ncomputations + 1, sizeof *ok);
	tests = dcr_calloc(def->ncomputations + 1, sizeof *tests);
	rc = rm_def_topo(def, order);
	if (rc < 0) {
		dcr_err_set(err, rc, "computations form a cycle");
		goto out;
	}
	for (i = 0; i < def->ncomputations; i++) {
		const rm_computation *c = &def->computations[order[i]];
		const char *failed_up = NULL;

		dcr_buf_printf(&report, "%s (%s): ", c->name, rm_compkind_name(c->kind));
		if (c->kind != RM_COMP_SQL && c->kind != RM_COMP_PYTHON && c->kind != RM_COMP_R &&
		    c->kind != RM_COMP_SYNTHETIC) {
			dcr_buf_printf(&report, "error: computation kind %s is not supported yet\n",
			               rm_compkind_name(c->kind));
			continue;
		}
		/* what reads a computation that failed its test (or a kind that
		 * cannot run yet) fails with it; synthetic's schema is its input's */
		for (size_t k = 0; !failed_up && k < c->ninputs; k++) {
			const rm_computation *up = rm_def_computation(def, c->inputs[k]);
			if (up && !ok[up - def->computations])
				failed_up = c->inputs[k];
		}
		if (failed_up) {
			dcr_buf_printf(&report, "error: upstream computation %s failed its test\n",
			               failed_up);
			continue;
		}
		if (c->kind == RM_COMP_PYTHON || c->kind == RM_COMP_R) {
			ok[order[i]] = dmn__script_test(d, def, order[i], tests, &report);
			continue;
		}
		if (c->admit_error) {
			dcr_buf_printf(&report, "error: %s\n", c->admit_error);
			continue;
		}
		ok[order[i]] = true;
		dcr_buf_append_str(&report, "ok\n");
		for (size_t k = 0; k < c->nresult_cols; k++)
			dcr_buf_printf(&report, "  %s %s\n", c->result_cols[k].name,
			               cmp_type_name(c->result_cols[k].type));
	}
	dcr_mpw_strn(proto_map_key(res, "report"), (const char *)report.data, report.len);
	rc = 0;
out:
	for (i = 0; tests && i < def->ncomputations; i++)
		dcr_buf_release(&tests[i]);
	free(tests);
	rm_def_free(def);
	free(text);
	free(order);
	free(ok);
	dcr_buf_release(&report);
	return rc;
}

static int op_datasets(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err)
{
	size_t n, i, k, hits = 0;
	dmn_room **rooms = dmn__rooms_list(d, &n);
	dcr_buf json;

	dcr_buf_init(&json);
	dcr_buf_append_u8(&json, '[');
	for (i = 0; i < n; i++) {
		dmn_room *r = rooms[i];
		dmn__mutex_lock(&r->mu);
		for (k = 0; k < r->st.nprovisions; k++) {
			const rm_provision *p = &r->st.provisions[k];
			char sha[65];
			if (!p->present || memcmp(p->by, s->key, 32) != 0)
				continue;
			dcr_hex_encode(p->sha256, 32, sha);
			dcr_buf_append_str(&json, hits++ ? ",\n {" : "\n {");
			dcr_buf_printf(&json, "\"room\": \"%s\", \"room_name\": ", r->hex);
			json_str(&json, r->st.def && r->st.def->name ? r->st.def->name : "");
			dcr_buf_append_str(&json, ", \"dataset\": ");
			json_str(&json, p->dataset);
			dcr_buf_append_str(&json, ", \"file\": ");
			json_str(&json, p->file ? p->file : "");
			dcr_buf_printf(&json,
			               ", \"rows\": %llu, \"bytes\": %llu, \"sha256\": \"%s\", "
			               "\"seq\": %llu, \"ts_ms\": %llu}",
			               (unsigned long long)p->rows, (unsigned long long)p->bytes,
			               sha, (unsigned long long)p->seq,
			               (unsigned long long)p->ts_ms);
		}
		dmn__mutex_unlock(&r->mu);
	}
	free(rooms);
	dcr_buf_append_str(&json, hits ? "\n]\n" : "]\n");
	if (json.len > DCR_FRAME_BYTES_MAX - 1024) {
		dcr_buf_release(&json);
		return dcr_err_set(err, DCR_ELIMIT, "too many datasets to list");
	}
	dcr_mpw_strn(proto_map_key(res, "json"), (const char *)json.data, json.len);
	dcr_buf_release(&json);
	return 0;
}

static int op_checkpoint(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err)
{
	dmn_room *r;
	es_checkpoint cp;
	dcr_buf b;
	int rc = arg_room(d, s, args, &r, err);

	if (rc < 0)
		return rc;
	rc = es_latest_checkpoint(d->store, r->id, &cp);
	if (rc < 0)
		return dcr_err_set(err, rc, "no checkpoint for room %s", r->hex);
	dcr_buf_init(&b);
	es_checkpoint_encode(&cp, &b);
	dcr_mpw_bin(proto_map_key(res, "checkpoint"), b.data, b.len);
	dcr_buf_release(&b);
	return 0;
}

/* The "proof" field of a response: an array of n 32-byte hashes. */
static void put_proof(proto_map *res, const uint8_t (*proof)[32], size_t n)
{
	dcr_mpw *w = proto_map_key(res, "proof");
	dcr_mpw_array(w, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		dcr_mpw_bin(w, proof[i], 32);
}

static int op_proof(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err)
{
	dmn_room *r;
	uint64_t seq, size;
	uint8_t proof[ES_PROOF_HASHES_MAX][32];
	size_t n = 0;
	int rc = arg_room(d, s, args, &r, err);

	if (rc == 0)
		rc = arg_u64(args, "seq", &seq, err);
	if (rc == 0)
		rc = arg_u64(args, "size", &size, err);
	if (rc < 0)
		return rc;
	rc = es_inclusion_proof(d->store, r->id, seq, size, proof, &n);
	if (rc < 0)
		return dcr_err_set(err, rc, "inclusion proof of seq %llu in size %llu: %s",
		                   (unsigned long long)seq, (unsigned long long)size,
		                   dcr_strerror(rc));
	put_proof(res, proof, n);
	return 0;
}

/* Long poll: answers as soon as the room has more than `size` events, or
 * after timeout_ms (at most DMN_WAIT_MS_MAX) with the size unchanged. Holds
 * a pool thread, so at most DMN_WAITERS_MAX wait at once; beyond that the
 * answer is immediate (the client then polls). */
static int op_wait(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err)
{
	dmn_room *r;
	uint64_t size, timeout_ms = DMN_WAIT_MS_MAX, now_size;
	struct timespec deadline;
	bool waiting = false;
	int rc = arg_room(d, s, args, &r, err);

	if (rc == 0)
		rc = arg_u64(args, "size", &size, err);
	if (rc == 0 && dcr_mp_get(args, "timeout_ms"))
		rc = arg_u64(args, "timeout_ms", &timeout_ms, err);
	if (rc < 0)
		return rc;
	if (timeout_ms > DMN_WAIT_MS_MAX)
		timeout_ms = DMN_WAIT_MS_MAX;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += (time_t)(timeout_ms / 1000);
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	/* Answers with the durable size: what events returns. wait.mu comes
	 * after room->mu in the lock order (dmn_int.h): never hold it while
	 * taking the room's. The append counter read before the size closes
	 * the race with an append in between. */
	dmn__mutex_lock(&d->wait.mu);
	if (d->wait.n < DMN_WAITERS_MAX) {
		d->wait.n++;
		waiting = true;
	}
	dmn__mutex_unlock(&d->wait.mu);
	for (;;) {
		uint64_t gen;
		bool timed_out = false, closing;
		dmn__mutex_lock(&d->wait.mu);
		gen = d->wait.appends;
		closing = d->wait.closing;
		dmn__mutex_unlock(&d->wait.mu);
		dmn__mutex_lock(&r->mu);
		now_size = r->durable;
		dmn__mutex_unlock(&r->mu);
		if (!waiting || now_size > size || closing)
			break;
		dmn__mutex_lock(&d->wait.mu);
		while (d->wait.appends == gen && !d->wait.closing && !timed_out)
			timed_out = dmn__cond_timedwait(&d->wait.cv, &d->wait.mu, &deadline) ==
			            ETIMEDOUT;
		dmn__mutex_unlock(&d->wait.mu);
		if (timed_out) {
			dmn__mutex_lock(&r->mu);
			now_size = r->durable;
			dmn__mutex_unlock(&r->mu);
			break;
		}
	}
	if (waiting) {
		dmn__mutex_lock(&d->wait.mu);
		d->wait.n--;
		dmn__mutex_unlock(&d->wait.mu);
	}
	dcr_mpw_uint(proto_map_key(res, "size"), now_size);
	return 0;
}

static int op_consistency(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err)
{
	dmn_room *r;
	uint64_t old_size, new_size;
	uint8_t proof[ES_PROOF_HASHES_MAX][32];
	size_t n = 0;
	int rc = arg_room(d, s, args, &r, err);

	if (rc == 0)
		rc = arg_u64(args, "old", &old_size, err);
	if (rc == 0)
		rc = arg_u64(args, "new", &new_size, err);
	if (rc < 0)
		return rc;
	rc = es_consistency_proof(d->store, r->id, old_size, new_size, proof, &n);
	if (rc < 0)
		return dcr_err_set(err, rc, "consistency proof from size %llu to %llu: %s",
		                   (unsigned long long)old_size, (unsigned long long)new_size,
		                   dcr_strerror(rc));
	put_proof(res, proof, n);
	return 0;
}

static int op_whoami(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err)
{
	dcr_mpw_bin(proto_map_key(res, "key"), s->key, 32);
	dcr_mpw_bin(proto_map_key(res, "daemon_key"), d->pub, 32);
	return 0;
}

/* ---- development runs ------------------------------------------------------------------ */

/* The caller's development runs are theirs alone (rm_check_dev_read). */
#define DEV_STATUS_LIST_MAX 1000u

static void dev_status_item(dmn *d, const dmn_room *r, const rm_dev *dv, dcr_buf *out)
{
	proto_map m;
	bool fin = dv->state != RM_RUN_QUEUED && dv->finished_seq < r->durable;
	const char *state = !fin ? (dv->state != RM_RUN_QUEUED || dmn__run_is_running(d, dv->id)
	                                ? "running"
	                                : "queued")
	                         : dv->state == RM_RUN_DONE ? "done" : "failed";
	char detail[DCR_ERR_MSG_BYTES];
	dcr_mpw *w;

	DMN_ASSERT_HELD(&r->mu);
	proto_map_init(&m);
	dcr_mpw_str(proto_map_key(&m, "run"), dv->id);
	dcr_mpw_str(proto_map_key(&m, "state"), state);
	dcr_mpw_str(proto_map_key(&m, "language"), rm_dev_lang_name(dv->lang));
	dcr_mpw_uint(proto_map_key(&m, "requested_seq"), dv->requested_seq);
	w = proto_map_key(&m, "inputs");
	dcr_mpw_array(w, (uint32_t)dv->ninputs);
	for (size_t i = 0; i < dv->ninputs; i++)
		dcr_mpw_str(w, dv->inputs[i].name);
	if (fin) {
		dcr_mpw_uint(proto_map_key(&m, "duration_ms"), dv->duration_ms);
		dcr_mpw_uint(proto_map_key(&m, "result_bytes"), dv->result_bytes);
		dcr_mpw_bool(proto_map_key(&m, "logs"), dv->logs_blob && dv->logs_blob[0]);
	}
	if (fin && dv->error) {
		dcr_mpw_str(proto_map_key(&m, "error"), dv->error);
		/* the message behind the class: the requester's own */
		if (dmn__run_detail(dv->id, detail, sizeof detail))
			dcr_mpw_str(proto_map_key(&m, "detail"), detail);
	}
	proto_map_encode(&m, out);
	proto_map_release(&m);
}

static int op_dev_status(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err)
{
	dmn_room *r;
	char *id = NULL;
	dcr_buf arr;
	uint32_t hits = 0;
	int rc = arg_room(d, s, args, &r, err);

	dcr_buf_init(&arr);
	if (rc == 0 && dcr_mp_get(args, "run"))
		rc = arg_str(args, "run", &id, err);
	if (rc < 0)
		goto out;
	dmn__mutex_lock(&r->mu);
	if (id) {
		rc = rm_check_dev_read(&r->st, s->key, id, err);
		if (rc == 0) {
			dev_status_item(d, r, rm_state_dev(&r->st, id), &arr);
			hits = 1;
		}
	} else {
		/* the newest DEV_STATUS_LIST_MAX of the caller's, oldest first */
		size_t from = r->st.ndevs, n = 0;
		while (from > 0 && n < DEV_STATUS_LIST_MAX)
			if (memcmp(r->st.devs[--from].by, s->key, 32) == 0)
				n++;
		for (size_t i = from; i < r->st.ndevs; i++)
			if (memcmp(r->st.devs[i].by, s->key, 32) == 0) {
				dev_status_item(d, r, &r->st.devs[i], &arr);
				hits++;
			}
	}
	dmn__mutex_unlock(&r->mu);
	if (rc == 0) {
		dcr_mpw *v = proto_map_key(res, "runs");
		dcr_mpw_array(v, hits);
		dcr_mpw_raw(v, arr.data, arr.len);
	}
out:
	dcr_buf_release(&arr);
	free(id);
	return rc;
}

/* Ranged read of a development run's result CSV ("what": "result") or of
 * its logs blob ("logs"), by its requester only, once the outcome is
 * durable. No event records the read: the result is made of what the
 * requester may read already (docs/rules.md "Development runs"). */
static int op_dev_read(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res, dcr_err *err)
{
	dmn_room *r;
	char *id = NULL, *what = NULL, blob[DMN_BLOB_HEX_BYTES] = "";
	uint64_t off = 0, len = 0;
	int rc = arg_room(d, s, args, &r, err);

	if (rc == 0)
		rc = arg_str(args, "run", &id, err);
	if (rc == 0)
		rc = arg_str(args, "what", &what, err);
	if (rc == 0)
		rc = arg_range(args, &off, &len, err);
	if (rc == 0 && strcmp(what, "result") != 0 && strcmp(what, "logs") != 0)
		rc = dcr_err_set(err, DCR_EINVALID, "argument what: \"result\" or \"logs\"");
	if (rc < 0)
		goto out;
	dmn__mutex_lock(&r->mu);
	rc = rm_check_dev_read(&r->st, s->key, id, err);
	if (rc == 0) {
		const rm_dev *dv = rm_state_dev(&r->st, id);
		const char *b = strcmp(what, "result") == 0 ? dv->result_blob : dv->logs_blob;
		bool fin = dv->state != RM_RUN_QUEUED && dv->finished_seq < r->durable;
		if (!fin)
			rc = dcr_err_set(err, DCR_ESTATE, "development run %s has not finished", id);
		else if (!b || !b[0])
			rc = dcr_err_set(err, DCR_ENOTFOUND, "development run %s has no %s", id,
			                 what);
		else if (!dmn__blob_id_valid(b))
			rc = dcr_err_set(err, DCR_EINTEGRITY, "development run %s: bad blob id", id);
		else
			memcpy(blob, b, DMN_BLOB_HEX_BYTES);
	}
	dmn__mutex_unlock(&r->mu);
	if (rc == 0)
		rc = read_range(d, s, blob, off, len, res, err);
out:
	free(what);
	free(id);
	return rc;
}

/* ---- dispatch ------------------------------------------------------------------------- */

static const struct {
	const char *name;
	op_fn fn;
} ops[] = {
    {"admin.backup.begin", dmn__op_admin_backup_begin},
    {"admin.backup.end", dmn__op_admin_backup_end},
    {"admin.backup.read", dmn__op_admin_backup_read},
    {"admin.status", dmn__op_admin_status},
    {"checkpoint", op_checkpoint},
    {"consistency", op_consistency},
    {"data.read", op_data_read},
    {"datasets", op_datasets},
    {"dev.read", op_dev_read},
    {"dev.status", op_dev_status},
    {"events", op_events},
    {"logs.read", op_logs_read},
    {"proof", op_proof},
    {"result.open", op_result_open},
    {"result.read", op_result_read},
    {"room.test", op_room_test},
    {"rooms", op_rooms},
    {"run.status", op_run_status},
    {"size", op_size},
    {"stats", op_stats},
    {"submit", op_submit},
    {"upload.abort", op_upload_abort},
    {"upload.begin", op_upload_begin},
    {"upload.chunk", op_upload_chunk},
    {"upload.end", op_upload_end},
    {"wait", op_wait},
    {"whoami", op_whoami},
};

/* An error response from m, which may hold fields the op added (the
 * room's size with ESEQ); m is released. */
static void error_frame_map(proto_map *m, dcr_buf *out, uint64_t id, int code, const char *msg)
{
	dcr_buf body;

	dcr_buf_init(&body);
	dcr_mpw_str(proto_map_key(m, "code"), dcr_errname(code));
	if (code > DCR__ERR_BASE && code < DCR__ERR_END)
		; /* project code */
	else if (code < 0)
		dcr_mpw_uint(proto_map_key(m, "errno"), (uint64_t)-code);
	dcr_mpw_str(proto_map_key(m, "error"), msg && *msg ? msg : dcr_strerror(code));
	dcr_mpw_uint(proto_map_key(m, "id"), id);
	dcr_mpw_bool(proto_map_key(m, "ok"), false);
	proto_map_encode(m, &body);
	proto_map_release(m);
	proto_frame_wrap(out, body.data, body.len);
	dcr_buf_release(&body);
}

void dmn__error_frame(dcr_buf *out, uint64_t id, int code, const char *msg)
{
	proto_map m;

	proto_map_init(&m);
	error_frame_map(&m, out, id, code, msg);
}

int dmn__handle(dmn *d, dmn_session *s, const void *frame, size_t n, dcr_buf *resp,
                dcr_buf *log_outcome)
{
	static const uint8_t empty_map = 0x80;
	dcr_mp_doc *doc = NULL, *empty = NULL;
	const dcr_mpv *root, *args;
	const char *op;
	size_t op_n, i;
	uint64_t id = 0;
	proto_map res;
	dcr_err err;
	int rc, fatal = 0;

	dcr_err_clear(&err);
	proto_map_init(&res);
	s->op[0] = 0;
	s->room[0] = 0;
	rc = proto_frame_parse(frame, n, &doc, &err);
	if (rc < 0) {
		fatal = rc;
		goto out;
	}
	root = dcr_mp_root(doc);
	if (dcr_mp_u64(dcr_mp_get(root, "id"), &id) < 0 ||
	    dcr_mp_str(dcr_mp_get(root, "op"), &op, &op_n) < 0) {
		rc = fatal = dcr_err_set(&err, DCR_EPROTO, "request without id or op");
		goto out;
	}
	memcpy(s->op, op, op_n < sizeof s->op - 1 ? op_n : sizeof s->op - 1);
	s->op[op_n < sizeof s->op - 1 ? op_n : sizeof s->op - 1] = 0;
	args = dcr_mp_get(root, "args");
	if (args && dcr_mp_type(args) != DCR_MP_MAP) {
		rc = dcr_err_set(&err, DCR_EPROTO, "args must be a map");
		goto out;
	}
	if (!args) {
		rc = dcr_mp_parse(&empty_map, 1, &dcr_mp_limits_default, &empty, &err);
		if (rc < 0)
			goto out;
		args = dcr_mp_root(empty);
	}
	for (i = 0; i < sizeof ops / sizeof ops[0]; i++)
		if (strlen(ops[i].name) == op_n && memcmp(ops[i].name, op, op_n) == 0)
			break;
	if (i == sizeof ops / sizeof ops[0]) {
		rc = dcr_err_set(&err, DCR_EINVALID, "unknown op \"%s\"", s->op);
		goto out;
	}
	rc = ops[i].fn(d, s, args, &res, &err);
out:
	if (rc < 0) {
		if (err.code == 0)
			dcr_err_set(&err, rc, NULL);
		if (rc == DCR_ESEQ && fatal == 0) {
			/* with the room's size, if the op added it (op_submit) */
			error_frame_map(&res, resp, id, rc, err.msg);
			proto_map_init(&res);
		} else {
			dmn__error_frame(resp, id, rc, err.msg);
		}
		dcr_buf_printf(log_outcome, "%s: %s", dcr_errname(rc), err.msg);
	} else {
		dcr_buf body;
		dcr_buf_init(&body);
		dcr_mpw_uint(proto_map_key(&res, "id"), id);
		dcr_mpw_bool(proto_map_key(&res, "ok"), true);
		proto_map_encode(&res, &body);
		if (body.len > DCR_FRAME_BYTES_MAX) {
			dmn__error_frame(resp, id, DCR_ELIMIT, "response too large");
			dcr_buf_append_str(log_outcome, "ELIMIT: response too large");
		} else {
			proto_frame_wrap(resp, body.data, body.len);
			dcr_buf_append_str(log_outcome, "ok");
		}
		dcr_buf_release(&body);
	}
	proto_map_release(&res);
	dcr_mp_doc_free(empty);
	dcr_mp_doc_free(doc);
	return fatal;
}
