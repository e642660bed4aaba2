/* admit.c: admission checks off the request path, and the definition
 * quotas (docs/daemon.md "Limits and quotas", docs/rules.md "Admission
 * checks (not rules)").
 *
 * A definition's admission check (rm_def_admit: SQLite compiles and runs
 * every sql query on empty tables, up to DCR_SQL_CHECK_TIME_MS each) costs
 * CPU that any key can ask for. So checks run on DMN_ADMIT_THREADS threads
 * of their own, one computation at a time, taking turns between keys (a
 * queue per key; the key with the most budget left goes next, first come
 * among equals), and each key has a budget of
 * check CPU time (a token bucket: --max-check-cpu-s, refilled in full over
 * DMN_ADMIT_REFILL_S): a key past it is refused with ELIMIT and the time to
 * wait, and a check that overdraws it is stopped at the end of the
 * computation that did. A request thread waiting for a verdict holds no
 * lock, and at most DMN_ADMIT_PENDING_MAX of them wait (at most
 * DMN_ADMIT_PENDING_PER_KEY per key, DMN_ADMIT_PENDING_NEW for keys that
 * created no room here, so fresh keys cannot take every place), so other
 * requests always find threads. A submitted event's check stops at the
 * first failing computation (its verdict): a refused definition costs one. Passing verdicts are kept by the SHA-256 of what was checked,
 * so a publish of a draft admitted before, or a client's retry, costs no
 * check.
 *
 * The quotas (definition bytes and rooms created per key) count what the
 * log holds, from the replay at start (dmn__quota_replay), plus the events
 * being appended (taken before rm_apply, given back if the event fails).
 *
 * Lock order: room mutex, then adm->mu (quota calls under a room's lock);
 * nothing is locked while a check runs. */
#include <time.h>

#include "dmn_int.h"

#define KEY_BUCKETS 1024u

typedef struct adm_job adm_job;

typedef struct adm_key {
	uint8_t key[32];
	struct adm_key *next; /* hash chain */
	/* check budget: microseconds of thread CPU time, refilled lazily */
	int64_t tokens_us;
	uint64_t refill_ms;
	unsigned pending;     /* definitions queued or being checked */
	adm_job *head, *tail; /* their queue: one computation per turn */
	struct adm_key *ring_next;
	bool in_ring;
	/* quotas: what the log holds plus the events being appended */
	uint64_t def_bytes, rooms;
} adm_key;

struct adm_job {
	rm_admit a;
	adm_key *k;
	adm_job *next;
	bool done;
	bool is_new; /* its key had created no room: counted in pending_new */
	int rc;
	dcr_err err;
};

typedef struct adm_verdict {
	uint8_t h[32];
	uint64_t used; /* 0: empty slot */
} adm_verdict;

struct dmn_admit {
	pthread_mutex_t mu;
	pthread_cond_t work; /* a job was queued, or stopping */
	pthread_cond_t done; /* a job finished */
	pthread_t threads[DMN_ADMIT_THREADS];
	unsigned nthreads;
	bool stopping;
	adm_key *buckets[KEY_BUCKETS];
	adm_key *ring_head, *ring_tail; /* keys with queued jobs, in turn */
	unsigned pending, pending_new;
	int64_t cap_us;        /* a key's full budget */
	uint64_t def_bytes_max, rooms_max;
	size_t keys; /* entries in buckets */
	adm_verdict cache[DMN_ADMIT_CACHE_ENTRIES];
	uint64_t clock;
	/* statistics, logged at shutdown */
	uint64_t checks, steps, cpu_us, hits, refused;
};

static uint64_t thread_cpu_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int64_t refill_rate(const struct dmn_admit *A);

/* A key that holds nothing: no check waiting, no quota usage, its budget
 * full again. Forgetting it loses nothing (it would come back full), so
 * fresh keys that only asked for checks do not pile up. */
static bool key_idle(const struct dmn_admit *A, const adm_key *k, uint64_t now)
{
	uint64_t dt = now - k->refill_ms;

	if (k->pending || k->in_ring || k->rooms || k->def_bytes)
		return false;
	return dt >= DMN_ADMIT_REFILL_S * 1000ull ||
	       k->tokens_us + (int64_t)dt * refill_rate(A) >= A->cap_us;
}

/* The key's entry (made, with a full budget, if new); forgets the idle
 * entries of its hash chain on the way. */
static adm_key *key_get(struct dmn_admit *A, const uint8_t key[32])
{
	unsigned b = ((unsigned)key[0] << 8 | key[1]) % KEY_BUCKETS;
	uint64_t now = dcr_mono_ms();
	adm_key *k, **pp = &A->buckets[b];

	while ((k = *pp) != NULL) {
		if (memcmp(k->key, key, 32) == 0)
			return k;
		if (key_idle(A, k, now)) {
			*pp = k->next;
			free(k);
			A->keys--;
			continue;
		}
		pp = &k->next;
	}
	A->keys++;
	k = dcr_calloc(1, sizeof *k);
	memcpy(k->key, key, 32);
	k->tokens_us = A->cap_us;
	k->refill_ms = now;
	k->next = A->buckets[b];
	A->buckets[b] = k;
	return k;
}

/* Microseconds of budget a key gets back per ms. */
static int64_t refill_rate(const struct dmn_admit *A)
{
	int64_t r = A->cap_us / (DMN_ADMIT_REFILL_S * 1000);
	return r > 0 ? r : 1;
}

static void refill(struct dmn_admit *A, adm_key *k)
{
	uint64_t now = dcr_mono_ms();
	uint64_t dt = now - k->refill_ms;

	k->refill_ms = now;
	if (k->tokens_us < A->cap_us) {
		int64_t add = dt >= DMN_ADMIT_REFILL_S * 1000ull ? A->cap_us
		                                                 : (int64_t)dt * refill_rate(A);
		k->tokens_us = k->tokens_us + add > A->cap_us ? A->cap_us : k->tokens_us + add;
	}
}

static int budget_refusal(const struct dmn_admit *A, const adm_key *k, dcr_err *err)
{
	int64_t owed_ms = (-k->tokens_us) / refill_rate(A) + 1;
	uint64_t wait_s = (uint64_t)(owed_ms + 999) / 1000;

	return dcr_err_set(err, DCR_ELIMIT,
	                   "admission checks: this key used its budget of check CPU time "
	                   "(%llu s, refilled over %u s; dcrd --max-check-cpu-s); retry in %llu s",
	                   (unsigned long long)(A->cap_us / 1000000), (unsigned)DMN_ADMIT_REFILL_S,
	                   (unsigned long long)(wait_s ? wait_s : 1));
}

static void ring_push(struct dmn_admit *A, adm_key *k)
{
	if (k->in_ring)
		return;
	k->in_ring = true;
	k->ring_next = NULL;
	if (A->ring_tail)
		A->ring_tail->ring_next = k;
	else
		A->ring_head = k;
	A->ring_tail = k;
}

/* The next key to serve: of the keys with checks waiting, the one with
 * the most budget left (it used the least check CPU lately), the first in
 * line among equals; unlinked. A key that floods checks spends its budget
 * and lets the others pass; one that asks rarely is served next. */
static adm_key *ring_pop(struct dmn_admit *A)
{
	adm_key *k, *best = NULL, *prev = NULL, *best_prev = NULL;

	for (k = A->ring_head; k; prev = k, k = k->ring_next) {
		refill(A, k);
		if (!best || k->tokens_us > best->tokens_us) {
			best = k;
			best_prev = prev;
		}
	}
	if (!best)
		return NULL;
	if (best_prev)
		best_prev->ring_next = best->ring_next;
	else
		A->ring_head = best->ring_next;
	if (A->ring_tail == best)
		A->ring_tail = best_prev;
	best->in_ring = false;
	best->ring_next = NULL;
	return best;
}

static void job_push(struct dmn_admit *A, adm_job *j)
{
	adm_key *k = j->k;

	j->next = NULL;
	if (k->tail)
		k->tail->next = j;
	else
		k->head = j;
	k->tail = j;
	ring_push(A, k);
}

/* A->mu held. rc/err (rc < 0) override the check's verdict (it was
 * stopped early). */
static void job_finish(struct dmn_admit *A, adm_job *j, int rc, const dcr_err *err)
{
	j->rc = rm_admit_end(&j->a, &j->err);
	if (rc < 0) {
		j->rc = rc;
		j->err = *err;
	}
	j->done = true;
	j->k->pending--;
	A->pending--;
	A->pending_new -= j->is_new;
	A->checks++;
	pthread_cond_broadcast(&A->done);
}

static void *worker(void *arg)
{
	dmn *d = arg;
	struct dmn_admit *A = d->adm;

	pthread_mutex_lock(&A->mu);
	for (;;) {
		adm_key *k;
		adm_job *j;
		bool fin;
		dcr_err e;

		while (!A->ring_head && !A->stopping)
			pthread_cond_wait(&A->work, &A->mu);
		k = ring_pop(A);
		if (!k)
			break; /* stopping, nothing queued */
		j = k->head;
		k->head = j->next;
		if (!k->head)
			k->tail = NULL;
		else
			ring_push(A, k); /* its next job, after the other keys' turns */
		if (A->stopping) {
			dcr_err_set(&e, DCR_ECANCELED, "admission check stopped: dcrd is shutting down");
			job_finish(A, j, e.code, &e);
			continue;
		}
		pthread_mutex_unlock(&A->mu);
		uint64_t t0 = thread_cpu_us();
		fin = rm_admit_step(&j->a);
		uint64_t used = thread_cpu_us() - t0;
		pthread_mutex_lock(&A->mu);
		A->steps++;
		A->cpu_us += used;
		refill(A, k);
		k->tokens_us -= (int64_t)used;
		if (fin) {
			job_finish(A, j, 0, NULL);
		} else if (k->tokens_us <= 0) {
			budget_refusal(A, k, &e);
			A->refused++;
			job_finish(A, j, e.code, &e);
		} else {
			job_push(A, j);
		}
	}
	pthread_mutex_unlock(&A->mu);
	return NULL;
}

void dmn__admit_init(dmn *d)
{
	struct dmn_admit *A = dcr_calloc(1, sizeof *A);
	pthread_condattr_t ca;
	uint64_t cpu_s = d->opt.max_check_cpu_s ? d->opt.max_check_cpu_s : DMN_ADMIT_CPU_S;

	pthread_mutex_init(&A->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&A->work, &ca);
	pthread_cond_init(&A->done, &ca);
	pthread_condattr_destroy(&ca);
	A->cap_us = (int64_t)cpu_s * 1000000;
	A->def_bytes_max = d->opt.max_definition_kb ? d->opt.max_definition_kb << 10
	                                            : DMN_DEF_BYTES_PER_KEY;
	A->rooms_max = d->opt.max_rooms_per_key ? d->opt.max_rooms_per_key : DMN_ROOMS_PER_KEY;
	d->adm = A;
}

int dmn__admit_start(dmn *d, dcr_err *err)
{
	struct dmn_admit *A = d->adm;

	for (unsigned i = 0; i < DMN_ADMIT_THREADS; i++) {
		int e = pthread_create(&A->threads[i], NULL, worker, d);
		if (e)
			return dcr_err_set(err, DCR_EINTERNAL, "starting admission thread: %s",
			                   strerror(e));
		A->nthreads++;
	}
	return 0;
}

void dmn__admit_stop(dmn *d)
{
	struct dmn_admit *A = d->adm;

	if (!A)
		return;
	pthread_mutex_lock(&A->mu);
	A->stopping = true;
	pthread_cond_broadcast(&A->work);
	pthread_mutex_unlock(&A->mu);
	for (unsigned i = 0; i < A->nthreads; i++)
		pthread_join(A->threads[i], NULL);
	A->nthreads = 0;
	dmn__log(d, DMN_LOG_INFO,
	         "admission checks: %llu definitions checked (%llu computations, %llu ms of "
	         "CPU), %llu verdicts from the cache, %llu stopped by a key's budget; %zu keys "
	         "tracked",
	         (unsigned long long)A->checks, (unsigned long long)A->steps,
	         (unsigned long long)(A->cpu_us / 1000), (unsigned long long)A->hits,
	         (unsigned long long)A->refused, A->keys);
}

void dmn__admit_release(dmn *d)
{
	struct dmn_admit *A = d->adm;

	if (!A)
		return;
	DCR_ASSERT(A->nthreads == 0 && A->pending == 0);
	for (unsigned b = 0; b < KEY_BUCKETS; b++)
		while (A->buckets[b]) {
			adm_key *k = A->buckets[b];
			A->buckets[b] = k->next;
			free(k);
		}
	pthread_mutex_destroy(&A->mu);
	pthread_cond_destroy(&A->work);
	pthread_cond_destroy(&A->done);
	free(A);
	d->adm = NULL;
}

int dmn__admit_check(dmn *d, const uint8_t key[32], rm_def *def, bool all, dcr_err *err)
{
	struct dmn_admit *A = d->adm;
	adm_job j;
	adm_key *k;
	int rc = 0;

	memset(&j, 0, sizeof j);
	pthread_mutex_lock(&A->mu);
	k = key_get(A, key);
	refill(A, k);
	if (A->stopping)
		rc = dcr_err_set(err, DCR_ECANCELED, "dcrd is shutting down");
	else if (k->tokens_us <= 0)
		rc = budget_refusal(A, k, err);
	else if (k->pending >= DMN_ADMIT_PENDING_PER_KEY)
		rc = dcr_err_set(err, DCR_ELIMIT,
		                 "admission checks: %u definitions of this key are being checked "
		                 "(limit %u); retry when one is done",
		                 k->pending, (unsigned)DMN_ADMIT_PENDING_PER_KEY);
	else if (A->pending >= DMN_ADMIT_PENDING_MAX ||
	         (!k->rooms && A->pending_new >= DMN_ADMIT_PENDING_NEW))
		rc = dcr_err_set(err, DCR_ELIMIT,
		                 "admission checks: %u definitions are being checked (limit %u, %u "
		                 "of keys that created no room here); retry in a few seconds",
		                 A->pending, (unsigned)DMN_ADMIT_PENDING_MAX,
		                 (unsigned)DMN_ADMIT_PENDING_NEW);
	if (rc == 0) {
		k->pending++;
		A->pending++;
		j.is_new = !k->rooms;
		A->pending_new += j.is_new;
	}
	pthread_mutex_unlock(&A->mu);
	if (rc < 0)
		return rc;
	rc = rm_admit_begin(&j.a, def, all, err);
	pthread_mutex_lock(&A->mu);
	if (rc < 0) { /* a cycle: nothing to check */
		k->pending--;
		A->pending--;
		A->pending_new -= j.is_new;
		pthread_mutex_unlock(&A->mu);
		return rc;
	}
	j.k = k;
	job_push(A, &j);
	pthread_cond_signal(&A->work);
	while (!j.done)
		pthread_cond_wait(&A->done, &A->mu);
	pthread_mutex_unlock(&A->mu);
	if (j.rc < 0)
		return dcr_err_set(err, j.rc, "%s", j.err.msg);
	return 0;
}

/* ---- the checks of events ------------------------------------------------------ */

static bool cache_find(struct dmn_admit *A, const uint8_t h[32])
{
	bool hit = false;

	pthread_mutex_lock(&A->mu);
	for (size_t i = 0; i < DMN_ADMIT_CACHE_ENTRIES && !hit; i++)
		if (A->cache[i].used && memcmp(A->cache[i].h, h, 32) == 0) {
			A->cache[i].used = ++A->clock;
			hit = true;
		}
	if (hit)
		A->hits++;
	pthread_mutex_unlock(&A->mu);
	return hit;
}

static void cache_put(struct dmn_admit *A, const uint8_t h[32])
{
	size_t lru = 0;

	pthread_mutex_lock(&A->mu);
	for (size_t i = 0; i < DMN_ADMIT_CACHE_ENTRIES; i++) {
		if (A->cache[i].used && memcmp(A->cache[i].h, h, 32) == 0) {
			lru = i;
			break;
		}
		if (A->cache[i].used < A->cache[lru].used)
			lru = i;
	}
	memcpy(A->cache[lru].h, h, 32);
	A->cache[lru].used = ++A->clock;
	pthread_mutex_unlock(&A->mu);
}

/* SHA-256 of a tag and NUL-separated parts: what a verdict is about. */
static void verdict_hash(const char *tag, const char *a, size_t an, const char *b, size_t bn,
                         uint8_t h[32])
{
	dcr_sha256_ctx *c = dcr_sha256_new();

	dcr_sha256_update(c, tag, strlen(tag) + 1);
	dcr_sha256_update(c, a, an);
	if (b) {
		dcr_sha256_update(c, "", 1);
		dcr_sha256_update(c, b, bn);
	}
	dcr_sha256_final(c, h);
	dcr_sha256_free(c);
}

static bool is_type(const es_event *ev, const char *t)
{
	return strcmp(ev->type, t) == 0;
}

bool dmn__admit_prepare(const rm_state *st, const es_event *ev, dmn_admit_snap *snap)
{
	const char *text;
	size_t n;

	memset(snap, 0, sizeof *snap);
	if (is_type(ev, RM_EV_CREATED) || is_type(ev, RM_EV_SAVED)) {
		/* The text is the event's own; a save by a key that may not edit
		 * is left to rm_apply, unchecked. */
		if (dcr_mp_str(dcr_mp_get(ev->body, "definition"), &text, &n) != 0)
			return false;
		snap->needed = is_type(ev, RM_EV_CREATED) || rm_check_edit(st, ev->actor, NULL) == 0;
		return snap->needed;
	}
	if (is_type(ev, RM_EV_PUBLISHED) && st->def_json && rm_check_edit(st, ev->actor, NULL) == 0)
		snap->needed = true;
	else if (is_type(ev, RM_EV_REQ_SUBMITTED) && st->def_json &&
	         rm_check_request(st, ev->actor, NULL) == 0)
		snap->needed = true;
	if (snap->needed) {
		snap->def_json = dcr_strdup(st->def_json);
		memcpy(snap->def_sha256, st->def_sha256, 32);
	}
	return snap->needed;
}

void dmn__admit_snap_release(dmn_admit_snap *snap)
{
	free(snap->def_json);
	memset(snap, 0, sizeof *snap);
}

bool dmn__admit_snap_current(const dmn_admit_snap *snap, const rm_state *st)
{
	if (!snap->def_json)
		return true; /* the check read the event only */
	return st->def_json && memcmp(snap->def_sha256, st->def_sha256, 32) == 0;
}

/* The definition with a request merged (docs/rules.md "Requests"); a
 * request rm_apply refuses anyway is left to rm_apply's message. */
static int admit_request(dmn *d, const es_event *ev, const dmn_admit_snap *snap, dcr_err *err)
{
	const char *text;
	size_t n;
	rm_request_doc doc;
	uint8_t h[32];
	dcr_err e;
	int rc;

	if (dcr_mp_str(dcr_mp_get(ev->body, "text"), &text, &n) != 0 || memchr(text, 0, n))
		return 0;
	verdict_hash("request", snap->def_json, strlen(snap->def_json), text, n, h);
	if (cache_find(d->adm, h))
		return 0;
	if (rm_request_merge(snap->def_json, text, n, &doc, &e) != 0)
		return 0;
	rc = dmn__admit_check(d, ev->actor, doc.merged, false, err);
	if (rc == 0)
		cache_put(d->adm, h);
	else if (rc != DCR_ELIMIT && rc != DCR_ECANCELED)
		dcr_err_prefix(err, "request: the definition with this request");
	rm_request_doc_release(&doc);
	return rc;
}

int dmn__admit_event(dmn *d, const es_event *ev, const dmn_admit_snap *snap, dcr_err *err)
{
	const char *text = NULL;
	size_t n = 0;
	rm_def *def = NULL;
	uint8_t h[32];
	dcr_err e;
	int rc;

	if (!snap->needed)
		return 0;
	if (is_type(ev, RM_EV_REQ_SUBMITTED))
		return admit_request(d, ev, snap, err);
	if (snap->def_json) {
		text = snap->def_json; /* a publish: the current draft */
		n = strlen(text);
	} else if (dcr_mp_str(dcr_mp_get(ev->body, "definition"), &text, &n) != 0) {
		return 0;
	}
	verdict_hash("definition", text, n, NULL, 0, h);
	if (cache_find(d->adm, h))
		return 0;
	if (rm_def_parse(text, n, &def, &e) != 0)
		return 0; /* left to rm_apply's message */
	rc = dmn__admit_check(d, ev->actor, def, false, err);
	if (rc == 0)
		cache_put(d->adm, h);
	else if (rc != DCR_ELIMIT && rc != DCR_ECANCELED)
		dcr_err_prefix(err, "definition"); /* as rm_apply words it */
	rm_def_free(def);
	return rc;
}

/* ---- quotas ---------------------------------------------------------------------- */

/* The definition bytes and the room an event adds to its actor's usage. */
static void usage_of(const es_event *ev, uint64_t *bytes, uint64_t *rooms)
{
	const char *text;
	size_t n;

	*bytes = *rooms = 0;
	if (!is_type(ev, RM_EV_CREATED) && !is_type(ev, RM_EV_SAVED))
		return;
	if (dcr_mp_str(dcr_mp_get(ev->body, "definition"), &text, &n) == 0)
		*bytes = n;
	*rooms = is_type(ev, RM_EV_CREATED);
}

int dmn__quota_take(dmn *d, const es_event *ev, bool reserve, dcr_err *err)
{
	struct dmn_admit *A = d->adm;
	uint64_t bytes, rooms;
	adm_key *k;
	int rc = 0;

	usage_of(ev, &bytes, &rooms);
	if (!bytes && !rooms)
		return 0;
	pthread_mutex_lock(&A->mu);
	k = key_get(A, ev->actor);
	if (rooms && k->rooms + rooms > A->rooms_max)
		rc = dcr_err_set(err, DCR_ELIMIT,
		                 "quota: this key created %llu rooms, the limit of this host "
		                 "(dcrd --max-rooms-per-key %llu); ask its operator to raise it",
		                 (unsigned long long)k->rooms, (unsigned long long)A->rooms_max);
	else if (k->def_bytes + bytes > A->def_bytes_max)
		rc = dcr_err_set(err, DCR_ELIMIT,
		                 "quota: definitions stored by this key take %llu bytes, this one "
		                 "%llu more, past the limit of this host (dcrd --max-definition-kb "
		                 "%llu); ask its operator to raise it",
		                 (unsigned long long)k->def_bytes, (unsigned long long)bytes,
		                 (unsigned long long)(A->def_bytes_max >> 10));
	else if (reserve) {
		k->def_bytes += bytes;
		k->rooms += rooms;
	}
	pthread_mutex_unlock(&A->mu);
	return rc;
}

void dmn__quota_give(dmn *d, const es_event *ev)
{
	struct dmn_admit *A = d->adm;
	uint64_t bytes, rooms;
	adm_key *k;

	usage_of(ev, &bytes, &rooms);
	if (!bytes && !rooms)
		return;
	pthread_mutex_lock(&A->mu);
	k = key_get(A, ev->actor);
	DCR_ASSERT(k->def_bytes >= bytes && k->rooms >= rooms);
	k->def_bytes -= bytes;
	k->rooms -= rooms;
	pthread_mutex_unlock(&A->mu);
}

int dmn__quota_replay(void *ctx, const rm_state *before, const es_event *ev, dcr_err *err)
{
	dmn *d = ctx;
	struct dmn_admit *A = d->adm;
	uint64_t bytes, rooms;

	(void)before;
	(void)err;
	if (!A) /* a replay with no admission service (a backup's snapshot, admin.c) */
		return 0;
	usage_of(ev, &bytes, &rooms);
	if (bytes || rooms) {
		pthread_mutex_lock(&A->mu);
		adm_key *k = key_get(A, ev->actor);
		k->def_bytes += bytes; /* the log is the truth: no limit here */
		k->rooms += rooms;
		pthread_mutex_unlock(&A->mu);
	}
	return 0;
}
