/* rooms.c: the room service. Every room's state is fold(rm_apply, log),
 * kept in memory; the log is the truth.
 *
 * dmn__submit is the only way an event enters the log, for user events and
 * the daemon's own alike: decode, verify, check the actor and clock, then
 * under the room's mutex check the sequence, check what only the daemon
 * can know (that a provisioned blob is the upload this actor just
 * finished), apply the room's rules and queue the append
 * (es_append_start), so the order of a room's appends is fixed under its
 * mutex; the wait for durability happens outside it, so appends of one room
 * share commits. The in-memory state may thus include appends in flight,
 * never more: nothing is acknowledged or acted upon (jobs, waiters) before
 * it is durable, and if an append fails (the ones queued after it fail
 * too) the room is rebuilt from the log once the last one is back. */
#include "dmn_int.h"

/* ---- registry ------------------------------------------------------------------ */

static dmn_room *room_new(dmn *d, const uint8_t id[ES_ROOM_ID_BYTES])
{
	dmn_room *r = dcr_calloc(1, sizeof *r);

	memcpy(r->id, id, ES_ROOM_ID_BYTES);
	es_room_format(id, r->hex);
	dmn__mutex_init(&r->mu);
	rm_state_init(&r->st, d->pub);
	return r;
}

static void room_free(dmn_room *r)
{
	if (!r)
		return;
	rm_state_release(&r->st);
	dmn__mutex_destroy(&r->mu);
	free(r);
}

/* rooms.lock is held (read or write). A rwlock does not know its readers:
 * the assertion checks that somebody holds it, which catches a caller
 * that forgot to lock on every uncontended path. */
#define ROOMS_ASSERT_LOCKED(d) DCR_ASSERT(pthread_rwlock_trywrlock(&(d)->rooms.lock) == EBUSY)

static dmn_room *find_locked(dmn *d, const uint8_t id[ES_ROOM_ID_BYTES])
{
	size_t i;

	ROOMS_ASSERT_LOCKED(d);
	for (i = 0; i < d->rooms.n; i++)
		if (memcmp(d->rooms.list[i]->id, id, ES_ROOM_ID_BYTES) == 0)
			return d->rooms.list[i];
	return NULL;
}

dmn_room *dmn__room_find(dmn *d, const uint8_t id[ES_ROOM_ID_BYTES])
{
	dmn_room *r;

	pthread_rwlock_rdlock(&d->rooms.lock);
	r = find_locked(d, id);
	pthread_rwlock_unlock(&d->rooms.lock);
	return r;
}

static void insert_locked(dmn *d, dmn_room *r)
{
	ROOMS_ASSERT_LOCKED(d);
	if (d->rooms.n == d->rooms.cap) {
		d->rooms.cap = d->rooms.cap ? 2 * d->rooms.cap : 16;
		d->rooms.list = dcr_realloc(d->rooms.list, d->rooms.cap * sizeof *d->rooms.list);
	}
	d->rooms.list[d->rooms.n++] = r;
}

dmn_room **dmn__rooms_list(dmn *d, size_t *n)
{
	dmn_room **out;

	pthread_rwlock_rdlock(&d->rooms.lock);
	*n = d->rooms.n;
	out = dcr_malloc((d->rooms.n ? d->rooms.n : 1) * sizeof *out);
	if (d->rooms.n)
		memcpy(out, d->rooms.list, d->rooms.n * sizeof *out);
	pthread_rwlock_unlock(&d->rooms.lock);
	return out;
}

void dmn__rooms_init(dmn *d)
{
	pthread_rwlock_init(&d->rooms.lock, NULL);
}

void dmn__rooms_free(dmn *d)
{
	size_t i;

	for (i = 0; i < d->rooms.n; i++)
		room_free(d->rooms.list[i]);
	free(d->rooms.list);
	d->rooms.list = NULL;
	d->rooms.n = d->rooms.cap = 0;
	pthread_rwlock_destroy(&d->rooms.lock);
}

/* ---- replay ----------------------------------------------------------------------- */

struct replay_ctx {
	dmn_room *r;
	dcr_err *err;
	bool refused; /* err is set: an event did not apply */
	dmn *count;   /* at start: the quotas count each event (admit.c) */
};

static int replay_one(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	struct replay_ctx *rc = ctx;
	rm_step step;
	int e = rm_replay_step(&rc->r->st, entry, n, rc->count ? dmn__quota_replay : NULL,
	                       rc->count, &step);

	(void)seq;
	if (e < 0) {
		rm_step_err(&step, rc->err);
		dcr_err_prefix(rc->err, "room %s", rc->r->hex);
		rc->refused = true;
	}
	return e;
}

/* (Re)computes r->st from the log; count: at start, for the quotas.
 * Replay never runs admission checks (rm_apply has none). */
static int room_replay(dmn *d, dmn_room *r, bool count, dcr_err *err)
{
	struct replay_ctx c = {r, err, false, count ? d : NULL};
	int rc;

	DMN_ASSERT_HELD(&r->mu);
	rm_state_release(&r->st);
	rm_state_init(&r->st, d->pub);
	rc = es_fold(d->store, r->id, 0, ES_SEQ_ANY, replay_one, &c);
	if (rc < 0 && !c.refused) /* the store failed, not an event */
		dcr_err_set(err, rc, "room %s: reading the log: %s", r->hex, dcr_strerror(rc));
	r->durable = r->st.size;
	return rc;
}

/* Tells every hook that an event is durable (ev NULL: the room was
 * replayed at start). */
static void publish_durable(dmn *d, dmn_room *r, const es_event *ev, uint64_t seq)
{
	DMN_ASSERT_HELD(&r->mu);
	for (size_t i = 0; i < d->rooms.nhooks; i++)
		d->rooms.hooks[i].fn(d->rooms.hooks[i].ctx, r, ev, seq);
}

void dmn__rooms_on_durable(dmn *d, dmn_durable_fn fn, void *ctx)
{
	DCR_ASSERT(d->rooms.nhooks < DMN_DURABLE_HOOKS_MAX);
	DCR_ASSERT(d->rooms.n == 0); /* before dmn__rooms_load: read-only after */
	d->rooms.hooks[d->rooms.nhooks].fn = fn;
	d->rooms.hooks[d->rooms.nhooks].ctx = ctx;
	d->rooms.nhooks++;
}

struct load_ctx {
	dmn *d;
	dcr_err *err;
	int rc;
	uint64_t events;
};

static int load_room(void *ctx, const uint8_t id[ES_ROOM_ID_BYTES])
{
	struct load_ctx *lc = ctx;
	dmn_room *r = room_new(lc->d, id);
	int rc;

	dmn__mutex_lock(&r->mu); /* nobody else sees r yet: for the assertion */
	rc = room_replay(lc->d, r, true, lc->err);
	dmn__mutex_unlock(&r->mu);
	if (rc < 0) {
		room_free(r);
		lc->rc = rc;
		return rc;
	}
	lc->events += r->st.size;
	pthread_rwlock_wrlock(&lc->d->rooms.lock); /* taken last (lock order) */
	insert_locked(lc->d, r);
	pthread_rwlock_unlock(&lc->d->rooms.lock);
	return 0;
}

int dmn__rooms_load(dmn *d, dcr_err *err)
{
	struct load_ctx lc = {d, err, 0, 0};
	uint64_t t0 = dcr_mono_ms();
	int rc;
	size_t i;

	rc = es_rooms(d->store, load_room, &lc);
	if (lc.rc < 0)
		return lc.rc;
	if (rc < 0)
		return dcr_err_set(err, rc, "listing rooms: %s", dcr_strerror(rc));
	dmn__log(d, DMN_LOG_INFO, "replayed %zu rooms, %llu events in %llu ms", d->rooms.n,
	         (unsigned long long)lc.events, (unsigned long long)(dcr_mono_ms() - t0));
	for (i = 0; i < d->rooms.n; i++) {
		dmn_room *r = d->rooms.list[i];
		dmn__mutex_lock(&r->mu);
		publish_durable(d, r, NULL, 0);
		dmn__mutex_unlock(&r->mu);
	}
	return 0;
}

/* ---- helpers ------------------------------------------------------------------------- */

int dmn__schema_of(const rm_dataset *ds, cmp_column **cols, size_t *n)
{
	cmp_column *c = dcr_calloc(ds->ncolumns ? ds->ncolumns : 1, sizeof *c);
	size_t i;

	for (i = 0; i < ds->ncolumns; i++) {
		const rm_column *rc = &ds->columns[i];
		c[i].name = dcr_strdup(rc->name);
		c[i].nullable = rc->nullable;
		c[i].type = rc->type;
		c[i].format = rc->format;
	}
	*cols = c;
	*n = ds->ncolumns;
	return 0;
}

void dmn__schema_free(cmp_column *cols, size_t n)
{
	size_t i;

	if (!cols)
		return;
	for (i = 0; i < n; i++)
		free((char *)cols[i].name);
	free(cols);
}

char *dmn__who(dmn_room *r, const uint8_t key[32])
{
	char name[RM_ACTOR_NAME_BYTES];

	if (!r)
		return dcr_strdup(rm_actor_name(NULL, NULL, key, RM_ACTOR_SHORT, name, sizeof name));
	dmn__mutex_lock(&r->mu);
	rm_actor_name(r->st.def, r->st.daemon_key, key, RM_ACTOR_SHORT, name, sizeof name);
	dmn__mutex_unlock(&r->mu);
	return dcr_strdup(name);
}

/* Deep equality of two canonical msgpack values. */
static bool mpv_equal(const dcr_mpv *a, const dcr_mpv *b)
{
	enum dcr_mp_type t = dcr_mp_type(a);
	uint32_t i, n;

	if (t != dcr_mp_type(b))
		return false;
	switch (t) {
	case DCR_MP_NIL:
		return true;
	case DCR_MP_BOOL: {
		bool x, y;
		return dcr_mp_bool(a, &x) == 0 && dcr_mp_bool(b, &y) == 0 && x == y;
	}
	case DCR_MP_UINT: {
		uint64_t x, y;
		return dcr_mp_u64(a, &x) == 0 && dcr_mp_u64(b, &y) == 0 && x == y;
	}
	case DCR_MP_INT: {
		int64_t x, y;
		return dcr_mp_i64(a, &x) == 0 && dcr_mp_i64(b, &y) == 0 && x == y;
	}
	case DCR_MP_FLOAT: {
		double x, y;
		return dcr_mp_f64(a, &x) == 0 && dcr_mp_f64(b, &y) == 0 &&
		       memcmp(&x, &y, sizeof x) == 0;
	}
	case DCR_MP_STR: {
		const char *x, *y;
		size_t xn, yn;
		return dcr_mp_str(a, &x, &xn) == 0 && dcr_mp_str(b, &y, &yn) == 0 && xn == yn &&
		       memcmp(x, y, xn) == 0;
	}
	case DCR_MP_BIN: {
		const uint8_t *x, *y;
		size_t xn, yn;
		return dcr_mp_bin(a, &x, &xn) == 0 && dcr_mp_bin(b, &y, &yn) == 0 && xn == yn &&
		       memcmp(x, y, xn) == 0;
	}
	case DCR_MP_ARRAY:
		n = dcr_mp_len(a);
		if (n != dcr_mp_len(b))
			return false;
		for (i = 0; i < n; i++)
			if (!mpv_equal(dcr_mp_at(a, i), dcr_mp_at(b, i)))
				return false;
		return true;
	case DCR_MP_MAP:
		n = dcr_mp_len(a);
		if (n != dcr_mp_len(b))
			return false;
		for (i = 0; i < n; i++) {
			const char *ka, *kb;
			size_t kan, kbn;
			const dcr_mpv *va = dcr_mp_map_at(a, i, &ka, &kan);
			const dcr_mpv *vb = dcr_mp_map_at(b, i, &kb, &kbn);
			if (kan != kbn || memcmp(ka, kb, kan) != 0 || !mpv_equal(va, vb))
				return false;
		}
		return true;
	}
	return false;
}

/* Finds (and unlinks, if take) the finished upload whose provisioned body
 * is exactly ev's body. */
static dmn_done_upload *match_upload(dmn *d, const es_event *ev, bool take)
{
	dmn_done_upload **pp, *hit = NULL;

	dmn__mutex_lock(&d->up.mu);
	for (pp = &d->up.done; *pp; pp = &(*pp)->next) {
		dmn_done_upload *u = *pp;
		dcr_buf body;
		dcr_mp_doc *doc = NULL;
		bool eq = false;

		if (memcmp(u->actor, ev->actor, 32) != 0 ||
		    memcmp(u->room, ev->room, ES_ROOM_ID_BYTES) != 0)
			continue;
		dcr_buf_init(&body);
		rm_body_provisioned(&body, &u->p);
		if (dcr_mp_parse(body.data, body.len, &dcr_mp_limits_default, &doc, NULL) == 0)
			eq = mpv_equal(dcr_mp_root(doc), ev->body);
		dcr_mp_doc_free(doc);
		dcr_buf_release(&body);
		if (eq) {
			hit = u;
			if (take)
				*pp = u->next;
			break;
		}
	}
	dmn__mutex_unlock(&d->up.mu);
	return hit;
}

void dmn__done_upload_free(dmn_done_upload *u)
{
	if (!u)
		return;
	free(u->p.dataset);
	free(u->p.blob);
	free(u->p.file);
	free(u);
}

void dmn__waiters_init(dmn *d)
{
	pthread_condattr_t ca;

	dmn__mutex_init(&d->wait.mu);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* op_wait's deadline */
	pthread_cond_init(&d->wait.cv, &ca);
	pthread_condattr_destroy(&ca);
}

void dmn__waiters_release(dmn *d)
{
	DCR_ASSERT(d->wait.n == 0);
	dmn__mutex_destroy(&d->wait.mu);
	pthread_cond_destroy(&d->wait.cv);
}

void dmn__uploads_init(dmn *d)
{
	dmn__mutex_init(&d->up.mu);
	atomic_init(&d->up.open, 0);
	dmn__mutex_init(&d->up.rows_mu);
	atomic_init(&d->up.rows_bytes, 0);
	d->up.rows_budget = d->opt.upload_rows_bytes == DMN_UPLOAD_ROWS_OFF ? 0
	                    : d->opt.upload_rows_bytes       ? d->opt.upload_rows_bytes
	                                                     : DMN_UPLOAD_ROWS_BYTES;
}

/* Rows held for a prepared table's build: those of data blob `blob`,
 * validated under the schema cols. */
struct dmn_held_rows {
	struct dmn_held_rows *next;
	char blob[DMN_BLOB_HEX_BYTES];
	cmp_column *cols;
	size_t ncols;
	cmp_rows *rows;
	uint64_t charged, csv_bytes;
};

static void held_free(dmn *d, struct dmn_held_rows *h)
{
	dmn__rows_uncharge(d, h->charged);
	cmp_rows_free(h->rows); /* wipes */
	dmn__schema_free(h->cols, h->ncols);
	free(h);
}

void dmn__uploads_release(dmn *d)
{
	DCR_ASSERT(atomic_load(&d->up.open) == 0);
	while (d->up.done) {
		dmn_done_upload *u = d->up.done;
		d->up.done = u->next;
		dmn__done_upload_free(u);
	}
	while (d->up.rows) {
		struct dmn_held_rows *h = d->up.rows;
		d->up.rows = h->next;
		held_free(d, h);
	}
	DCR_ASSERT(atomic_load(&d->up.rows_bytes) == 0);
	dmn__mutex_destroy(&d->up.rows_mu);
	dmn__mutex_destroy(&d->up.mu);
}

bool dmn__rows_charge(dmn *d, uint64_t *charged, uint64_t now)
{
	uint64_t delta, total;

	if (now <= *charged)
		return true;
	delta = now - *charged;
	total = atomic_fetch_add(&d->up.rows_bytes, delta) + delta;
	if (total > d->up.rows_budget) {
		atomic_fetch_sub(&d->up.rows_bytes, delta);
		return false;
	}
	*charged = now;
	return true;
}

void dmn__rows_uncharge(dmn *d, uint64_t n)
{
	uint64_t before = n ? atomic_fetch_sub(&d->up.rows_bytes, n) : n;
	DCR_ASSERT(before >= n);
}

void dmn__rows_put(dmn *d, const char *data_blob, const cmp_column *cols, size_t ncols,
                   cmp_rows *rows, uint64_t charged, uint64_t csv_bytes)
{
	struct dmn_held_rows *h = dcr_calloc(1, sizeof *h);

	snprintf(h->blob, sizeof h->blob, "%s", data_blob);
	h->cols = dcr_calloc(ncols ? ncols : 1, sizeof *h->cols);
	for (size_t i = 0; i < ncols; i++) {
		h->cols[i] = cols[i];
		h->cols[i].name = dcr_strdup(cols[i].name);
	}
	h->ncols = ncols;
	h->rows = rows;
	h->charged = charged;
	h->csv_bytes = csv_bytes;
	dmn__mutex_lock(&d->up.rows_mu);
	h->next = d->up.rows;
	d->up.rows = h;
	dmn__mutex_unlock(&d->up.rows_mu);
}

/* Unlinks the rows of data_blob (NULL: none). */
static struct dmn_held_rows *held_unlink(dmn *d, const char *data_blob)
{
	struct dmn_held_rows *h = NULL, **pp;

	dmn__mutex_lock(&d->up.rows_mu);
	for (pp = &d->up.rows; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->blob, data_blob) == 0) {
			h = *pp;
			*pp = h->next;
			break;
		}
	dmn__mutex_unlock(&d->up.rows_mu);
	return h;
}

cmp_rows *dmn__rows_take(dmn *d, const char *data_blob, const cmp_column *cols, size_t ncols,
                         uint64_t *csv_bytes)
{
	struct dmn_held_rows *h = held_unlink(d, data_blob);
	cmp_rows *rows = NULL;
	bool same;

	if (!h)
		return NULL;
	/* the rows are the file's only under the schema they were checked
	 * with (a later definition may type a column differently) */
	same = h->ncols == ncols;
	for (size_t i = 0; same && i < ncols; i++)
		same = strcmp(h->cols[i].name, cols[i].name) == 0 && h->cols[i].type == cols[i].type &&
		       h->cols[i].format == cols[i].format && h->cols[i].nullable == cols[i].nullable;
	if (same) {
		rows = h->rows;
		h->rows = NULL;
		*csv_bytes = h->csv_bytes;
	}
	held_free(d, h);
	return rows;
}

void dmn__rows_drop(dmn *d, const char *data_blob)
{
	struct dmn_held_rows *h = held_unlink(d, data_blob);
	if (h)
		held_free(d, h);
}

void dmn__wake_waiters(dmn *d, bool closing)
{
	dmn__mutex_lock(&d->wait.mu);
	d->wait.appends++;
	if (closing)
		d->wait.closing = true;
	pthread_cond_broadcast(&d->wait.cv);
	dmn__mutex_unlock(&d->wait.mu);
}

/* ---- submit --------------------------------------------------------------------------- */

/* The blobs of the datasets' current provisions (heap copies), with the
 * drops of append datasets and their unions' ids. */
static char **current_blobs(const rm_state *st, size_t *n)
{
	char **v = dcr_calloc(st->nprovisions ? st->nprovisions : 1, sizeof *v);
	*n = 0;
	for (size_t i = 0; i < st->nprovisions; i++) {
		const rm_provision *p = &st->provisions[i];
		if (p->present && p->blob && rm_state_provision(st, p->dataset) == p)
			v[(*n)++] = dcr_strdup(p->blob);
		if (p->present && p->ndrops) {
			/* each drop, and the union's prepared table (its id) */
			char u[DMN_UNION_ID_BYTES];
			v = dcr_realloc(v, (*n + p->ndrops + 1 + (st->nprovisions - i)) * sizeof *v);
			for (size_t k = 0; k < p->ndrops; k++)
				v[(*n)++] = dcr_strdup(p->drops[k].blob);
			dmn__union_id(p->sha256, u);
			v[(*n)++] = dcr_strdup(u);
		}
	}
	return v;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* Whether a provision current before this event no longer is (its data
 * withdrawn or replaced); removes the blobs of each such one; frees old. */
static bool blobs_withdrawn(dmn *d, const rm_state *st, char **old, size_t n)
{
	size_t m = 0;
	char **now = current_blobs(st, &m);
	bool gone = false;

	for (size_t i = 0; i < n; i++) {
		bool found = false;
		for (size_t k = 0; k < m && !found; k++)
			found = strcmp(now[k], old[i]) == 0;
		if (!found)
			dmn__blobs_drop_withdrawn(d, old[i]);
		gone = gone || !found;
	}
	strv_free(now, m);
	strv_free(old, n);
	return gone;
}

int dmn__submit(dmn *d, const uint8_t room[ES_ROOM_ID_BYTES], const void *entry, size_t n,
                const uint8_t *conn_key, uint64_t *seq_out, char type_out[ES_TYPE_BYTES_MAX],
                dcr_err *err)
{
	char **old_blobs = NULL;
	size_t nold = 0;
	es_event ev;
	dmn_room *r = NULL, *fresh = NULL;
	dmn_done_upload *up = NULL;
	rm_step step;
	dmn_admit_snap snap = {0};
	bool decoded = false, locked = false, provisioned, woke = false, checked = false,
	     quota_taken = false;
	uint64_t now = dcr_now_ms(), seq = 0;
	int rc;

	rc = es_event_decode(entry, n, &ev, err);
	if (rc < 0) {
		dcr_err_prefix(err, "event");
		goto out;
	}
	decoded = true;
	if (type_out)
		memcpy(type_out, ev.type, ES_TYPE_BYTES_MAX);
	if (memcmp(ev.room, room, ES_ROOM_ID_BYTES) != 0) {
		rc = dcr_err_set(err, DCR_EINVALID, "event is for room %s, not this room",
		                 ev.room_hex);
		goto out;
	}
	if (conn_key) {
		/* A stale position costs no signature check (the most expensive
		 * step): a key that may read the room learns its size, as the
		 * size op would tell it, re-signs and submits again. The check
		 * under the lock below stays the one that decides. */
		dmn_room *q = dmn__room_find(d, room);
		bool stale = false;
		if (q) {
			dmn__mutex_lock(&q->mu);
			stale = !q->broken && ev.seq != q->st.size &&
			        rm_may_read_room(&q->st, conn_key);
			seq = q->st.size;
			dmn__mutex_unlock(&q->mu);
		}
		if (stale) {
			rc = dcr_err_set(err, DCR_ESEQ,
			                 "event seq %llu but the room is at %llu (replayed event, or "
			                 "another event was appended first)",
			                 (unsigned long long)ev.seq, (unsigned long long)seq);
			goto out;
		}
		seq = 0;
	}
	rc = es_event_verify(&ev, err);
	if (rc < 0)
		goto out;
	if (conn_key) {
		if (memcmp(ev.actor, conn_key, 32) != 0) {
			rc = dcr_err_set(err, DCR_EDENIED,
			                 "signed by another key than this connection's");
			goto out;
		}
		if (memcmp(ev.actor, d->pub, 32) == 0) {
			rc = dcr_err_set(err, DCR_EDENIED, "clients cannot sign as the daemon");
			goto out;
		}
		if ((ev.ts_ms > now ? ev.ts_ms - now : now - ev.ts_ms) > DMN_EVENT_CLOCK_SKEW_MS) {
			rc = dcr_err_set(
			    err, DCR_EINVALID,
			    "event time %llu is more than %u s from the daemon's clock %llu",
			    (unsigned long long)ev.ts_ms,
			    (unsigned)(DMN_EVENT_CLOCK_SKEW_MS / 1000), (unsigned long long)now);
			goto out;
		}
	} else if (memcmp(ev.actor, d->pub, 32) != 0) {
		rc = dcr_err_set(err, DCR_EINTERNAL, "daemon event not signed by the daemon key");
		goto out;
	}

	r = dmn__room_find(d, room);
	if (!r) {
		uint64_t size = 0;
		if (ev.seq != 0 || strcmp(ev.type, RM_EV_CREATED) != 0) {
			rc = dcr_err_set(err, DCR_ENOTFOUND, "no room %s", ev.room_hex);
			goto out;
		}
		rc = es_room_size(d->store, room, &size);
		if (rc == 0 && size != 0)
			rc = DCR_EEXIST;
		if (rc < 0) {
			dcr_err_set(err, rc, "room %s: %s", ev.room_hex, dcr_strerror(rc));
			goto out;
		}
		/* Not visible to others until its first event is durable. */
		fresh = r = room_new(d, room);
	}
	/* Host quotas (not rules: docs/daemon.md "Limits and quotas"),
	 * first without counting, so a key past one costs no check. */
	if (conn_key) {
		rc = dmn__quota_take(d, &ev, false, err);
		if (rc < 0)
			goto out;
	}
	/* The admission check (docs/rules.md "Admission checks"), on the
	 * check threads, without the room's lock: what it reads of the room
	 * is copied under the lock, and the event goes on only if the room is
	 * still at the size it was copied at. */
	dmn__mutex_lock(&r->mu);
	if (!r->broken && ev.seq == r->st.size) {
		checked = true;
		dmn__admit_prepare(&r->st, &ev, &snap);
	}
	dmn__mutex_unlock(&r->mu);
	rc = dmn__admit_event(d, &ev, &snap, err);
	if (rc < 0)
		goto out;
	dmn__mutex_lock(&r->mu);
	locked = true;
	if (conn_key && !fresh && !rm_may_read_room(&r->st, conn_key)) {
		/* Neither its creator nor a participant: the answer for a room
		 * that does not exist, whatever the event (docs/protocol.md). A
		 * room.created at seq 0 would create a missing room, so the only
		 * difference left is that one: it is refused for an id in use. */
		if (ev.seq == 0 && strcmp(ev.type, RM_EV_CREATED) == 0)
			rc = dcr_err_set(err, DCR_EEXIST,
			                 "room id %s is in use: create the room under a new id",
			                 ev.room_hex);
		else
			rc = dcr_err_set(err, DCR_ENOTFOUND, "no room %s", ev.room_hex);
		goto out;
	}
	if (r->broken) {
		rc = dcr_err_set(err, DCR_ESTORE,
		                 "room %s: an append failed and the room is being rebuilt from "
		                 "the log; retry",
		                 r->hex);
		goto out;
	}
	if (ev.seq != r->st.size) {
		rc = dcr_err_set(err, DCR_ESEQ,
		                 "event seq %llu but the room is at %llu (replayed event, or "
		                 "another event was appended first)",
		                 (unsigned long long)ev.seq, (unsigned long long)r->st.size);
		goto out;
	}
	/* Host policy (not a rule): runs queued per room. Participants only,
	 * so a stranger learns nothing of the room from it. */
	if (conn_key && rm_state_is_participant(&r->st, ev.actor)) {
		rc = dmn__jobs_admit(d, r, ev.type, err);
		if (rc < 0)
			goto out;
	}
	if (!checked || !dmn__admit_snap_current(&snap, &r->st)) {
		rc = dcr_err_set(err, DCR_ESEQ,
		                 "the room changed while this event was checked; retry");
		goto out;
	}
	provisioned = strcmp(ev.type, RM_EV_PROVISIONED) == 0;
	if (provisioned) {
		/* Taken now, so one upload backs at most one event; a refused or
		 * failed event forgets it (the client uploads again). */
		up = match_upload(d, &ev, true);
		if (!up) {
			rc = dcr_err_set(err, DCR_EINVALID,
			                 "does not match an upload this key completed in this "
			                 "room (upload the file first; sign exactly the values "
			                 "upload.end returned)");
			goto out;
		}
	}
	if (provisioned || strcmp(ev.type, RM_EV_DEPROVISIONED) == 0)
		old_blobs = current_blobs(&r->st, &nold);
	if (conn_key) {
		rc = dmn__quota_take(d, &ev, true, err);
		if (rc < 0)
			goto out;
		quota_taken = true;
	}
	/* The rules; the reason alone: the client knows what it submitted. */
	rc = rm_apply_at(&r->st, &ev, &step);
	if (rc < 0) {
		dcr_err_set(err, rc, "%s", step.reason.msg);
		goto out;
	}
	if (fresh) {
		/* Nobody else can see this room yet: append synchronously. */
		rc = es_append(d->store, room, ev.seq, entry, n, &seq, NULL, err);
		if (rc < 0) {
			dcr_err_prefix(err, "appending seq %llu", (unsigned long long)ev.seq);
			goto out;
		}
		fresh->durable = seq + 1;
		pthread_rwlock_wrlock(&d->rooms.lock);
		insert_locked(d, fresh);
		pthread_rwlock_unlock(&d->rooms.lock);
		fresh = NULL;
	} else {
		/* Fix the order of this room's appends under its lock, wait for
		 * durability outside it: events of one room share commits.
		 * Memory runs ahead of the log only by appends in flight, and
		 * nothing is acknowledged or acted on before it is durable. */
		es_pending *pend = NULL;
		rc = es_append_start(d->store, room, ev.seq, entry, n, &pend, err);
		if (rc == 0) {
			r->inflight++;
			dmn__mutex_unlock(&r->mu);
			rc = es_append_wait(pend, &seq, NULL, err);
			dmn__mutex_lock(&r->mu);
			r->inflight--;
			/* The writer commits a room's appends in order: all before
			 * this one are durable too. */
			if (rc == 0 && seq + 1 > r->durable)
				r->durable = seq + 1;
		}
		if (rc < 0) {
			dcr_err_prefix(err, "appending seq %llu", (unsigned long long)ev.seq);
			dmn__log(d, DMN_LOG_ERROR, "room %s: append failed (%s); rebuilding from "
			                           "the log",
			         r->hex, err ? err->msg : dcr_strerror(rc));
			r->broken = true;
		}
		if (r->broken && r->inflight == 0) {
			/* The last append in flight is back: the log is final. */
			dcr_err e2;
			dcr_err_clear(&e2);
			if (room_replay(d, r, false, &e2) < 0)
				dmn__log(d, DMN_LOG_ERROR, "room %s: rebuild failed: %s", r->hex,
				         e2.msg);
			else
				r->broken = false;
		}
		if (rc < 0)
			goto out;
	}
	DCR_ASSERT(seq == ev.seq);
	publish_durable(d, r, &ev, seq);
	if (old_blobs) {
		/* Withdrawn or replaced data leaves the daemon's memory too: the
		 * image cache drops what it decrypted (tables and results alike). */
		if (blobs_withdrawn(d, &r->st, old_blobs, nold)) {
			unsigned freed, held;
			uint64_t bytes;
			dmn__image_forget_all(d, &freed, &held, &bytes);
			dmn__log(d, DMN_LOG_INFO,
			         "room %s: data withdrawn or replaced: image cache cleared (%u "
			         "images, %llu bytes freed; %u in use freed after their runs)",
			         r->hex, freed, (unsigned long long)bytes, held);
		}
		old_blobs = NULL;
	}
	woke = true;
	if (seq_out)
		*seq_out = seq;
out:
	if (quota_taken && rc < 0)
		dmn__quota_give(d, &ev); /* not appended */
	if (locked)
		dmn__mutex_unlock(&r->mu);
	dmn__admit_snap_release(&snap);
	if (woke)
		dmn__wake_waiters(d, false); /* after unlocking: waiters take r->mu */
	strv_free(old_blobs, nold);
	room_free(fresh);
	/* signed: its bytes are the room's now; refused or failed: its blobs
	 * go at once (quota.c) */
	dmn__upload_settle(d, up, rc == 0);
	if (decoded)
		es_event_release(&ev);
	return rc;
}

int dmn__submit_daemon(dmn *d, const uint8_t room[ES_ROOM_ID_BYTES], const char *type,
                       const dcr_buf *body, dcr_err *err)
{
	dcr_buf entry;
	unsigned attempt;
	int rc = 0;

	dcr_buf_init(&entry);
	for (attempt = 0; attempt <= DMN_SUBMIT_RETRIES; attempt++) {
		uint64_t size = 0;
		dmn_room *r = dmn__room_find(d, room);
		if (!r) {
			rc = dcr_err_set(err, DCR_ENOTFOUND, "no such room");
			break;
		}
		dmn__mutex_lock(&r->mu);
		size = r->st.size;
		dmn__mutex_unlock(&r->mu);
		dcr_buf_reset(&entry);
		rc = es_event_build(d->key, room, size, dcr_now_ms(), type, body->data, body->len,
		                    &entry, err);
		if (rc < 0)
			break;
		rc = dmn__submit(d, room, entry.data, entry.len, NULL, NULL, NULL, err);
		if (rc != DCR_ESEQ)
			break;
	}
	dcr_buf_release(&entry);
	return rc;
}

/* ---- automatic approvals (docs/rules.md "Auto-approval") --------------------------- */

typedef struct auto_vote {
	char id[33];
	uint8_t sha256[32], owner[32];
} auto_vote;

void dmn__auto_approve(dmn *d, const uint8_t room[ES_ROOM_ID_BYTES])
{
	auto_vote *v = NULL;
	size_t n = 0;
	dmn_room *r = dmn__room_find(d, room);

	if (!r || d->opt.hold_auto_approvals)
		return;
	dmn__mutex_lock(&r->mu);
	for (size_t i = 0; i < r->st.nrequests; i++) {
		const rm_request *q = &r->st.requests[i];
		for (size_t k = 0; q->state == RM_REQ_OPEN && k < q->nowners; k++) {
			if (q->owners[k].vote != RM_VOTE_NONE ||
			    rm_check_policy(&r->st, q, q->owners[k].key, NULL) != 0)
				continue;
			v = dcr_realloc(v, (n + 1) * sizeof *v);
			snprintf(v[n].id, sizeof v[n].id, "%s", q->id);
			memcpy(v[n].sha256, q->sha256, 32);
			memcpy(v[n].owner, q->owners[k].key, 32);
			n++;
		}
	}
	dmn__mutex_unlock(&r->mu);
	for (size_t i = 0; i < n; i++) {
		dcr_buf body;
		dcr_err e;
		dcr_buf_init(&body);
		rm_body_req_auto(&body, v[i].id, v[i].sha256, v[i].owner);
		if (dmn__submit_daemon(d, room, RM_EV_REQ_AUTO, &body, &e) < 0)
			dmn__log(d, DMN_LOG_WARN, "room %s: request %.8s: automatic approval not "
			                          "recorded: %s",
			         r->hex, v[i].id, e.msg);
		else
			dmn__log(d, DMN_LOG_INFO, "room %s: request %.8s approved by an owner's "
			                          "auto_approve policy",
			         r->hex, v[i].id);
		dcr_buf_release(&body);
	}
	free(v);
}
