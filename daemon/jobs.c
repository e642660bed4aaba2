/* jobs.c: background work of dcrd: prepared tables and runs.
 *
 * Worker threads (--job-workers) take jobs from a FIFO per room, the rooms
 * in turn (round robin), within a cap on the jobs one room and one
 * requesting key may have running at once, so one room or one key never
 * holds every worker (docs/daemon.md, "Scheduling"); runs queued per room
 * are capped at submit (dmn__jobs_admit). A job never holds a
 * room's mutex while computing: it copies what it needs from the state (a
 * plan), computes, then appends its outcome through dmn__submit like any
 * other event, signed by the daemon key. Jobs are idempotent and derived
 * from the log (a run is pending while the log says run.requested without
 * run.completed/failed; a prepared table is missing while es_meta has no
 * "image:<blob>"), so a restart simply re-queues them.
 *
 * Runs evaluate the upstream SQL computations they read in dependency
 * order, reusing a cached result when the inputs' hashes did not change
 * (es_meta "cache:<key>", key = SHA-256 over name, query, min_rows and the
 * inputs' hashes), then run the requested computation itself.
 *
 * Python and r computations (script_eval) run in the sandbox of
 * compute_sandbox.h over the /input layout of docs/compute.md built from
 * their input nodes: datasets streamed from their blobs, upstream SQL
 * results as CSV, upstream scripts' output files. Their result is the
 * archive of their output files (base/archive.c); one that declares
 * "columns" also gets a table (its /output/dataset.csv, validated), which
 * downstream SQL reads like any result. Their stdout and stderr are kept
 * as a blob for the analysts, as the definition's "logs" allows; nothing
 * of them reaches dcrd's log or an event but their hash. */
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "dmn_int.h"
#include "../compute/compute_sandbox.h"

enum job_kind { JOB_IMAGE, JOB_RUN, JOB_DEV };

struct dmn_job {
	struct dmn_job *next;
	enum job_kind kind;
	uint8_t room[ES_ROOM_ID_BYTES];
	uint8_t key[32]; /* run, dev: the requester (counted against its cap);
	                    image: zero, no requester */
	dmn_jobq *q;     /* its room's queue, set when queued */
	char *blob;    /* image: data blob */
	char *dataset; /* image */
	char *run_id;  /* run */
	bool storing;  /* image: ready for runs, its blob being stored (job_storing) */
};

static void job_free(dmn_job *j)
{
	if (!j)
		return;
	free(j->blob);
	free(j->dataset);
	free(j->run_id);
	free(j);
}

static bool job_is_run(const dmn_job *j)
{
	return j->kind == JOB_RUN || j->kind == JOB_DEV;
}

static bool key_set(const uint8_t key[32])
{
	static const uint8_t zero[32];
	return memcmp(key, zero, 32) != 0;
}

/* The room's queue, created at its first job. jobs.mu held. */
static dmn_jobq *jobq_of(dmn *d, const uint8_t room[ES_ROOM_ID_BYTES], bool create)
{
	dmn_jobq *q;

	DMN_ASSERT_HELD(&d->jobs.mu);
	for (size_t i = 0; i < d->jobs.nq; i++)
		if (memcmp(d->jobs.q[i]->room, room, ES_ROOM_ID_BYTES) == 0)
			return d->jobs.q[i];
	if (!create)
		return NULL;
	q = dcr_calloc(1, sizeof *q);
	memcpy(q->room, room, ES_ROOM_ID_BYTES);
	d->jobs.q = dcr_realloc(d->jobs.q, (d->jobs.nq + 1) * sizeof *d->jobs.q);
	d->jobs.q[d->jobs.nq++] = q;
	return q;
}

/* Jobs of the requester being computed. jobs.mu held. */
static struct dmn_keyrun *keyrun(dmn *d, const uint8_t key[32])
{
	for (size_t i = 0; i < d->jobs.nkeys; i++)
		if (memcmp(d->jobs.keys[i].key, key, 32) == 0)
			return &d->jobs.keys[i];
	return NULL;
}

/* Queues j at the end of its room's FIFO. Never refused: what a room may
 * queue is capped at submit (dmn__jobs_admit), and the jobs of a replayed
 * room are what its log already holds. */
static void push(dmn *d, dmn_job *j)
{
	dmn__mutex_lock(&d->jobs.mu);
	if (atomic_load(&d->jobs.stopping)) {
		dmn__mutex_unlock(&d->jobs.mu);
		job_free(j); /* the next start queues it again */
		return;
	}
	j->q = jobq_of(d, j->room, true);
	if (j->q->tail)
		j->q->tail->next = j;
	else
		j->q->head = j;
	j->q->tail = j;
	j->q->queued++;
	d->jobs.nqueued++;
	if (job_is_run(j)) {
		j->q->runs++;
		d->jobs.nruns++;
	}
	pthread_cond_signal(&d->jobs.cv);
	dmn__mutex_unlock(&d->jobs.mu);
}

/* The next job to compute, or NULL: the rooms in turn, starting after the
 * last one served, skipping a room with room_running_max jobs running;
 * in a room, the oldest job whose requester has fewer than
 * key_running_max running, preferring one of another requester than the
 * room's last (so two analysts of one room take turns). jobs.mu held. */
static dmn_job *take(dmn *d)
{
	unsigned busy = 0;
	bool keep_last;

	DMN_ASSERT_HELD(&d->jobs.mu);
	for (size_t i = 0; i < d->jobs.nq; i++)
		busy += d->jobs.q[i]->running + d->jobs.q[i]->storing;
	/* With 3 workers or more, the last free one is kept for a room, and a
	 * requester, with nothing running: rooms or keys that fill the others
	 * with long runs never hold every worker (docs/daemon.md,
	 * "Scheduling"). */
	keep_last = d->jobs.workers_n > 2 && busy + 1 >= d->jobs.workers_n;
	for (size_t i = 0; i < d->jobs.nq; i++) {
		size_t at = (d->jobs.rr + i) % d->jobs.nq;
		dmn_jobq *q = d->jobs.q[at];
		dmn_job *j, *prev, *pick = NULL, *pick_prev = NULL;
		if (!q->head || q->running >= d->jobs.room_running_max ||
		    (keep_last && q->running + q->storing > 0))
			continue;
		/* A room's builds that store their blob are not under its cap:
		 * they never leave it every worker while another room has a
		 * job waiting (keep_last says so from 3 workers; this for 2). */
		if (q->storing > 0 && busy + 1 >= d->jobs.workers_n && d->jobs.nqueued > q->queued)
			continue;
		for (prev = NULL, j = q->head; j; prev = j, j = j->next) {
			const struct dmn_keyrun *k = key_set(j->key) ? keyrun(d, j->key) : NULL;
			if (k && (k->running >= d->jobs.key_running_max || (keep_last && k->running > 0)))
				continue;
			if (!pick) {
				pick = j;
				pick_prev = prev;
			}
			if (memcmp(j->key, q->last_key, 32) != 0) {
				pick = j;
				pick_prev = prev;
				break;
			}
		}
		if (!pick)
			continue;
		if (pick_prev)
			pick_prev->next = pick->next;
		else
			q->head = pick->next;
		if (q->tail == pick)
			q->tail = pick_prev;
		pick->next = NULL;
		q->queued--;
		d->jobs.nqueued--;
		q->running++;
		memcpy(q->last_key, pick->key, 32);
		if (key_set(pick->key)) {
			struct dmn_keyrun *k = keyrun(d, pick->key);
			if (!k) {
				d->jobs.keys = dcr_realloc(d->jobs.keys,
				                           (d->jobs.nkeys + 1) * sizeof *d->jobs.keys);
				k = &d->jobs.keys[d->jobs.nkeys++];
				memcpy(k->key, pick->key, 32);
				k->running = 0;
			}
			k->running++;
		}
		d->jobs.rr = (at + 1) % d->jobs.nq;
		return pick;
	}
	return NULL;
}

/* j was computed: its room and requester have one job less running (and
 * other workers may now take a job that was over a cap). jobs.mu held. */
static void finish(dmn *d, dmn_job *j)
{
	DMN_ASSERT_HELD(&d->jobs.mu);
	if (j->storing) {
		DCR_ASSERT(j->q && j->q->storing > 0);
		j->q->storing--;
	} else {
		DCR_ASSERT(j->q && j->q->running > 0);
		j->q->running--;
	}
	if (job_is_run(j)) {
		DCR_ASSERT(j->q->runs > 0 && d->jobs.nruns > 0);
		j->q->runs--;
		d->jobs.nruns--;
	}
	if (key_set(j->key)) {
		struct dmn_keyrun *k = keyrun(d, j->key);
		DCR_ASSERT(k && k->running > 0);
		if (--k->running == 0)
			*k = d->jobs.keys[--d->jobs.nkeys];
	}
	pthread_cond_broadcast(&d->jobs.cv);
}

/* The table build j is ready for runs and only stores its blob now: it
 * still holds its worker, but no longer its room's slot, so a run of the
 * room that waited for the table starts at once instead of after the
 * store (docs/daemon.md, "Scheduling"). */
static void job_storing(dmn *d, dmn_job *j)
{
	dmn__mutex_lock(&d->jobs.mu);
	if (!j->storing && j->q) {
		DCR_ASSERT(j->q->running > 0);
		j->q->running--;
		j->q->storing++;
		j->storing = true;
		pthread_cond_broadcast(&d->jobs.cv);
	}
	dmn__mutex_unlock(&d->jobs.mu);
}

int dmn__jobs_admit(dmn *d, dmn_room *r, const char *type, dcr_err *err)
{
	const dmn_jobq *q;
	size_t room_n, host_n;
	int rc = 0;

	DMN_ASSERT_HELD(&r->mu);
	if (strcmp(type, RM_EV_RUN_REQUESTED) != 0 && strcmp(type, RM_EV_REQ_PREVIEW) != 0 &&
	    strcmp(type, RM_EV_DEV_REQUESTED) != 0)
		return 0;
	dmn__mutex_lock(&d->jobs.mu);
	q = jobq_of(d, r->id, false);
	/* appends in flight may be run requests not yet queued: count them */
	room_n = (q ? q->runs : 0) + r->inflight;
	host_n = d->jobs.nruns + r->inflight;
	if (room_n >= d->jobs.room_queued_max)
		rc = dcr_err_set(err, DCR_ELIMIT,
		                 "this room has %zu runs queued or running, the most this host "
		                 "allows per room (dcrd --max-queued-runs %u); wait until one "
		                 "finishes",
		                 room_n, d->jobs.room_queued_max);
	else if (host_n >= DMN_RUN_QUEUE_MAX)
		rc = dcr_err_set(err, DCR_ELIMIT,
		                 "this host has %zu runs queued or running, the most it allows "
		                 "(DMN_RUN_QUEUE_MAX %u); try again later",
		                 host_n, (unsigned)DMN_RUN_QUEUE_MAX);
	dmn__mutex_unlock(&d->jobs.mu);
	return rc;
}

static void queue_image(dmn *d, const char *data_blob, const uint8_t room[ES_ROOM_ID_BYTES],
                        const char *dataset)
{
	dmn_job *j = dcr_calloc(1, sizeof *j);

	j->kind = JOB_IMAGE;
	memcpy(j->room, room, ES_ROOM_ID_BYTES);
	j->blob = dcr_strdup(data_blob);
	j->dataset = dcr_strdup(dataset);
	push(d, j);
}

static void queue_run(dmn *d, const uint8_t room[ES_ROOM_ID_BYTES], const char *run_id,
                      const uint8_t by[32])
{
	dmn_job *j = dcr_calloc(1, sizeof *j);

	j->kind = JOB_RUN;
	memcpy(j->room, room, ES_ROOM_ID_BYTES);
	memcpy(j->key, by, 32);
	j->run_id = dcr_strdup(run_id);
	push(d, j);
}

static void queue_dev(dmn *d, const uint8_t room[ES_ROOM_ID_BYTES], const char *run_id,
                      const uint8_t by[32])
{
	dmn_job *j = dcr_calloc(1, sizeof *j);

	j->kind = JOB_DEV;
	memcpy(j->room, room, ES_ROOM_ID_BYTES);
	memcpy(j->key, by, 32);
	j->run_id = dcr_strdup(run_id);
	push(d, j);
}

/* Error details of failed runs of unfiltered computations: the last
 * DETAILS_MAX, in memory only (lost at restart). Run ids are random and
 * unique per daemon, so one table serves every daemon in the process. */
#define DETAILS_MAX 256
static pthread_mutex_t details_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char run[33];
	char msg[DCR_ERR_MSG_BYTES];
} details[DETAILS_MAX];
static size_t details_next;

static void detail_put(const char *run_id, const char *msg)
{
	pthread_mutex_lock(&details_mu);
	snprintf(details[details_next].run, sizeof details[0].run, "%s", run_id);
	snprintf(details[details_next].msg, sizeof details[0].msg, "%s", msg);
	details_next = (details_next + 1) % DETAILS_MAX;
	pthread_mutex_unlock(&details_mu);
}

bool dmn__run_detail(const char *run_id, char *out, size_t cap)
{
	bool hit = false;
	pthread_mutex_lock(&details_mu);
	for (size_t i = 0; i < DETAILS_MAX && !hit; i++)
		if (details[i].run[0] && strcmp(details[i].run, run_id) == 0) {
			snprintf(out, cap, "%s", details[i].msg);
			hit = true;
		}
	pthread_mutex_unlock(&details_mu);
	return hit;
}

static bool is_table(const rm_state *st, const char *dataset)
{
	const rm_dataset *ds = st->def ? rm_def_dataset(st->def, dataset) : NULL;

	return ds && ds->kind == RM_DS_TABLE;
}

/* The prepared table of a provision: of its blob, or of the union of its
 * drops. */
static void queue_provision_image(dmn *d, dmn_room *r, const rm_provision *p)
{
	char u[DMN_UNION_ID_BYTES];
	if (p->ndrops) {
		dmn__union_id(p->sha256, u);
		queue_image(d, u, r->id, p->dataset);
	} else {
		queue_image(d, p->blob, r->id, p->dataset);
	}
}

/* The rooms' durable-event hook: queues the work an event calls for once
 * it is durable (a prepared table for a provisioned table, a run for a
 * run.requested); ev NULL (a room replayed at start): every present
 * table without its prepared table and every run requested but not
 * finished. r->mu held. */
static void on_durable(void *ctx, dmn_room *r, const es_event *ev, uint64_t seq)
{
	dmn *d = ctx;
	size_t i;

	DMN_ASSERT_HELD(&r->mu);
	if (!ev) {
		for (i = 0; i < r->st.nprovisions; i++) {
			const rm_provision *p = &r->st.provisions[i];
			if (p->present && (p->blob || p->ndrops) && is_table(&r->st, p->dataset))
				queue_provision_image(d, r, p);
		}
		for (i = 0; i < r->st.nruns; i++)
			if (r->st.runs[i].state == RM_RUN_QUEUED)
				queue_run(d, r->id, r->st.runs[i].id, r->st.runs[i].by);
		for (i = 0; i < r->st.ndevs; i++)
			if (r->st.devs[i].state == RM_RUN_QUEUED)
				queue_dev(d, r->id, r->st.devs[i].id, r->st.devs[i].by);
	} else if (strcmp(ev->type, RM_EV_DEV_REQUESTED) == 0) {
		for (i = r->st.ndevs; i-- > 0;)
			if (r->st.devs[i].requested_seq == seq) {
				queue_dev(d, r->id, r->st.devs[i].id, r->st.devs[i].by);
				break;
			}
	} else if (strcmp(ev->type, RM_EV_PROVISIONED) == 0 ||
	           strcmp(ev->type, RM_EV_DEPROVISIONED) == 0) {
		/* a withdrawn drop leaves a new union of the others */
		for (i = 0; i < r->st.nprovisions; i++) {
			const rm_provision *p = &r->st.provisions[i];
			if (p->seq == seq && p->present && (p->blob || p->ndrops) &&
			    is_table(&r->st, p->dataset))
				queue_provision_image(d, r, p);
		}
	} else if (strcmp(ev->type, RM_EV_RUN_REQUESTED) == 0 ||
	           strcmp(ev->type, RM_EV_REQ_PREVIEW) == 0) { /* a preview is a run too */
		for (i = 0; i < r->st.nruns; i++)
			if (r->st.runs[i].requested_seq == seq)
				queue_run(d, r->id, r->st.runs[i].id, r->st.runs[i].by);
	}
}

bool dmn__run_is_running(dmn *d, const char *run_id)
{
	bool hit = false;
	size_t i;

	dmn__mutex_lock(&d->jobs.mu);
	for (i = 0; i < d->jobs.nactive && !hit; i++)
		hit = strcmp(d->jobs.active[i].run_id, run_id) == 0;
	dmn__mutex_unlock(&d->jobs.mu);
	return hit;
}

/* Registers the run being computed with the way to stop it; false (and
 * nothing registered) once the daemon is stopping. */
static bool active_enter(dmn *d, const char *run_id, dmn_cancel_fn cancel, void *ctx)
{
	bool ok;

	dmn__mutex_lock(&d->jobs.mu);
	ok = !atomic_load(&d->jobs.stopping);
	if (ok) {
		d->jobs.active = dcr_realloc(d->jobs.active,
		                             (d->jobs.nactive + 1) * sizeof *d->jobs.active);
		d->jobs.active[d->jobs.nactive].run_id = dcr_strdup(run_id);
		d->jobs.active[d->jobs.nactive].cancel = cancel;
		d->jobs.active[d->jobs.nactive].ctx = ctx;
		d->jobs.nactive++;
	}
	dmn__mutex_unlock(&d->jobs.mu);
	return ok;
}

/* After this returns, the job's cancel function is no longer called. */
static void active_leave(dmn *d, const char *run_id)
{
	size_t i;

	dmn__mutex_lock(&d->jobs.mu);
	for (i = 0; i < d->jobs.nactive; i++)
		if (strcmp(d->jobs.active[i].run_id, run_id) == 0) {
			free(d->jobs.active[i].run_id);
			d->jobs.active[i] = d->jobs.active[--d->jobs.nactive];
			break;
		}
	dmn__mutex_unlock(&d->jobs.mu);
}

/* A run's cancel function: fires its cmp_cancel, which stops its SQL
 * (sqlite3_interrupt) and its sandboxed scripts (the sandbox kills their
 * process group within 100 ms). Called under jobs.mu. */
static void cancel_sql(void *ctx)
{
	cmp_cancel_fire(ctx);
}

bool dmn__append_enter(dmn *d)
{
	bool ok;

	dmn__mutex_lock(&d->jobs.mu);
	ok = !atomic_load(&d->jobs.stopping);
	if (ok)
		d->jobs.appends_active++;
	dmn__mutex_unlock(&d->jobs.mu);
	return ok;
}

void dmn__append_leave(dmn *d)
{
	dmn__mutex_lock(&d->jobs.mu);
	d->jobs.appends_active--;
	pthread_cond_broadcast(&d->jobs.append_cv);
	dmn__mutex_unlock(&d->jobs.mu);
}

/* ---- prepared tables --------------------------------------------------------- */

struct blob_src {
	dmn_blob_reader *r;
	uint64_t off;
	/* The union of an append dataset's drops: the blobs read one after
	 * the other (CMP_READ_NEXT_FILE between them); r reads drops[at]. */
	char **drops;
	size_t ndrops, at;
	dcr_err err;
	dmn *d;          /* set for background builds: */
	bool background; /* pause while uploads are open */
	bool boosted;    /* back to nice 0: a run waits */
};

/* A background build's thread (image_bg_main): niced, and dcrd's nice
 * value before. */
static __thread bool build_niced;
static __thread int build_base_nice;

/* Uploads come first: a background build waits while any upload is open,
 * unless a run waits for a table or the daemon stops. A build that has
 * to wait is merely slower; the run that needs it then waits for it. */
static void background_yield(struct blob_src *s)
{
	dmn *d = s->d;

	while (atomic_load_explicit(&d->up.open, memory_order_relaxed) > 0 &&
	       atomic_load_explicit(&d->jobs.image_waiting_runs, memory_order_relaxed) == 0 &&
	       !atomic_load(&d->jobs.stopping))
		usleep(20 * 1000);
}

/* A run waits for a table: derived work is no longer in the background;
 * the build's thread goes back to dcrd's own nice value where the system
 * allows it (root, or RLIMIT_NICE; otherwise it stays at DMN_IMAGE_NICE). */
static void build_boost(dmn *d, bool *boosted)
{
	if (!*boosted && build_niced &&
	    atomic_load_explicit(&d->jobs.image_waiting_runs, memory_order_relaxed) > 0) {
		*boosted = true;
		(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), build_base_nice);
	}
}

static int blob_src_read(void *ctx, void *buf, size_t cap)
{
	struct blob_src *s = ctx;
	size_t got = 0;
	int rc;

	if (s->background) {
		background_yield(s);
		build_boost(s->d, &s->boosted);
	}
	/* A build stops at its next read once the daemon stops (its table is
	 * built again at the next start). */
	if (atomic_load(&s->d->jobs.stopping))
		return dcr_err_set(&s->err, DCR_ECANCELED, "dcrd is shutting down");

	if (cap > INT32_MAX - 1)
		cap = INT32_MAX - 1; /* below CMP_READ_NEXT_FILE */
	rc = dmn__blob_pread(s->r, s->off, buf, cap, &got, &s->err);
	if (rc < 0)
		return rc;
	if (got == 0 && s->at + 1 < s->ndrops) {
		dmn__blob_close(s->r);
		s->r = NULL;
		s->off = 0;
		rc = dmn__blob_open(s->d->blobs, s->drops[++s->at], &s->r, &s->err);
		return rc < 0 ? rc : CMP_READ_NEXT_FILE;
	}
	s->off += got;
	return (int)got;
}

/* Is data_blob the current provision of dataset (or, for a union id, the
 * current union of its drops)? Caller holds r->mu. */
static bool blob_current(dmn_room *r, const char *dataset, const char *data_blob)
{
	const rm_provision *p = rm_state_provision(&r->st, dataset);
	if (p && p->ndrops) {
		char u[DMN_UNION_ID_BYTES];
		dmn__union_id(p->sha256, u);
		return strcmp(u, data_blob) == 0;
	}
	return p && p->blob && strcmp(p->blob, data_blob) == 0;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* cmp_prepare_stream's writer: the blob being written. Asked whether to
 * go on (no bytes) or given bytes, it stops the build once the daemon
 * stops (built again at the next start), as blob_src_read does while the
 * data is read. */
struct image_sink {
	dmn *d;
	dmn_blob_writer *w;
	dcr_err err;
	struct blob_src *src; /* its background and boosted */
};

static int image_sink(void *ctx, const void *p, size_t n)
{
	struct image_sink *k = ctx;
	if (k->src->background) /* a build from held rows reads nothing */
		build_boost(k->d, &k->src->boosted);
	if (atomic_load(&k->d->jobs.stopping))
		return dcr_err_set(&k->err, DCR_ECANCELED, "dcrd is shutting down");
	if (!n)
		return 0;
	return dmn__blob_write(k->w, p, n, &k->err);
}

/* The build of table key under way, if any. */
static struct dmn_building *building_find(dmn *d, const char *key)
{
	DMN_ASSERT_HELD(&d->jobs.image_mu);
	for (size_t i = 0; i < d->jobs.nimage_building; i++)
		if (strcmp(d->jobs.image_building[i].key, key) == 0)
			return &d->jobs.image_building[i];
	return NULL;
}

/* The table build job this thread runs (image_build), so that ensure_image
 * can give its room's slot back once the table is ready (job_storing). */
static __thread dmn_job *build_job;

/* Makes sure the prepared table of data_blob exists; *image_id (may be
 * NULL) gets its blob id. The dataset's schema is taken from the room's
 * current definition. A table kept in the image cache is there for runs
 * as soon as it is built; its blob is stored after (its image_id is then
 * that of a blob still being written: the cache holds it until then). */
static int ensure_image(dmn *d, const uint8_t room[ES_ROOM_ID_BYTES], const char *dataset,
                        const char *data_blob, char *const *drops, size_t ndrops,
                        bool background, char image_id[DMN_BLOB_HEX_BYTES], dcr_err *err)
{
	char *key = dcr_asprintf("image:%s", data_blob);
	cmp_column *cols = NULL;
	size_t ncols = 0, nindex = 0;
	const char **index = NULL;
	bool *join = NULL;
	struct blob_src src = {0};
	cmp_rows *held = NULL; /* validated at upload (dmn__rows_take) */
	uint64_t held_csv = 0;
	bool from_held = false;
	dcr_buf v;
	void *image = NULL;
	size_t image_n = 0, total_n = 0;
	dmn_blob_writer *w = NULL;
	dmn_room *r;
	dmn_image *img = NULL; /* the image in the cache, held until its blob is stored */
	bool claimed = false, counted = false;
	uint64_t t0 = dcr_mono_ms(), est = 0, csv_rows = 0, mem_wait_ms = 0;
	size_t image_bytes = 0;
	char id[DMN_BLOB_HEX_BYTES] = "";
	int rc;

	dcr_buf_init(&v);
	rc = es_meta_get(d->store, key, &v);
	if (rc == 0)
		goto found;
	if (rc != DCR_ENOTFOUND) {
		dcr_err_set(err, rc, "reading %s: %s", key, dcr_strerror(rc));
		goto out;
	}
	src.d = d;
	src.background = background;
	if (!background) { /* a run waits: background builds stop yielding */
		atomic_fetch_add_explicit(&d->jobs.image_waiting_runs, 1, memory_order_relaxed);
		counted = true;
	}
	/* One build per table at a time (a second caller waits for the
	 * first, then finds its image); different tables build in parallel. */
	dmn__mutex_lock(&d->jobs.image_mu);
	for (;;) {
		struct dmn_building *b = building_find(d, key);
		if (b && b->ready[0]) {
			/* in the image cache, its blob being stored: use it */
			memcpy(id, b->ready, DMN_BLOB_HEX_BYTES);
			break;
		}
		if (!b)
			break;
		dmn__cond_wait(&d->jobs.image_cv, &d->jobs.image_mu);
	}
	rc = id[0] ? 0 : es_meta_get(d->store, key, &v);
	if (rc == DCR_ENOTFOUND) {
		d->jobs.image_building =
		    dcr_realloc(d->jobs.image_building,
		                (d->jobs.nimage_building + 1) * sizeof *d->jobs.image_building);
		d->jobs.image_building[d->jobs.nimage_building++] =
		    (struct dmn_building){dcr_strdup(key), ""};
		claimed = true;
	}
	dmn__mutex_unlock(&d->jobs.image_mu);
	if (rc == 0 && id[0]) {
		if (image_id)
			memcpy(image_id, id, DMN_BLOB_HEX_BYTES);
		goto out;
	}
	if (rc == 0)
		goto found;
	if (rc != DCR_ENOTFOUND) {
		dcr_err_set(err, rc, "reading %s: %s", key, dcr_strerror(rc));
		goto out;
	}
	rc = 0;
	r = dmn__room_find(d, room);
	if (!r) {
		rc = dcr_err_set(err, DCR_ENOTFOUND, "no such room");
		goto out;
	}
	dmn__mutex_lock(&r->mu);
	if (background && !blob_current(r, dataset, data_blob)) {
		/* Replaced or withdrawn before its table was built: its blobs
		 * are gone (dmn__blobs_drop_withdrawn), nothing to build. */
		dmn__mutex_unlock(&r->mu);
		goto out;
	}
	if (dmn__is_union_id(data_blob)) {
		/* The drops, in drop order: the run's (as requested) or now. */
		const rm_provision *p = rm_state_provision(&r->st, dataset);
		src.ndrops = drops ? ndrops : p ? p->ndrops : 0;
		src.drops = dcr_calloc(src.ndrops + 1, sizeof *src.drops);
		for (size_t i = 0; i < src.ndrops; i++)
			src.drops[i] = dcr_strdup(drops ? drops[i] : p->drops[i].blob);
		if (!src.ndrops)
			rc = dcr_err_set(err, DCR_ENOTFOUND, "dataset %s has no drops", dataset);
		est = p ? p->bytes : 0; /* the union's CSV bytes, for the memory estimate */
		csv_rows = p ? p->rows : 0;
	} else {
		const rm_provision *p = rm_state_provision(&r->st, dataset);
		if (p && p->blob && strcmp(p->blob, data_blob) == 0) {
			est = p->bytes;
			csv_rows = p->rows;
		}
	}
	{
		const rm_dataset *ds = r->st.def ? rm_def_dataset(r->st.def, dataset) : NULL;
		if (!ds || ds->kind != RM_DS_TABLE)
			rc = dcr_err_set(err, DCR_ENOTFOUND,
			                 "dataset %s is not a table of the room", dataset);
		else
			dmn__schema_of(ds, &cols, &ncols);
		if (rc == 0 && ncols > 0) {
			/* Index the columns that the room's SQL computations
			 * reading this dataset join on (cmp_sql_join_columns):
			 * a run then looks rows up instead of indexing. */
			cmp_schema schema = {cols, ncols};
			const rm_def *def = r->st.def;
			join = dcr_calloc(ncols, sizeof *join);
			index = dcr_calloc(ncols, sizeof *index);
			for (size_t i = 0; i < def->ncomputations; i++) {
				const rm_computation *c = &def->computations[i];
				bool reads = false, used[DCR_RM_COLUMNS_MAX];
				dcr_err e2;
				if (c->kind != RM_COMP_SQL || !c->query || ncols > DCR_RM_COLUMNS_MAX)
					continue;
				for (size_t k = 0; k < c->ninputs; k++)
					reads = reads || strcmp(c->inputs[k], dataset) == 0;
				memset(used, 0, sizeof used);
				if (reads && cmp_sql_join_columns(c->query, &schema, used, &e2) == 0)
					for (size_t k = 0; k < ncols; k++)
						join[k] = join[k] || used[k];
			}
			for (size_t k = 0; k < ncols; k++)
				if (join[k])
					index[nindex++] = cols[k].name;
		}
	}
	dmn__mutex_unlock(&r->mu);
	if (rc < 0)
		goto out;
	/* The rows its upload validated, if still held: no reading,
	 * decrypting and parsing the file again. */
	if (!src.ndrops)
		held = dmn__rows_take(d, data_blob, cols, ncols, &held_csv);
	if (held) {
		from_held = true;
		if (!est)
			est = held_csv;
	} else {
		rc = dmn__blob_open(d->blobs, src.ndrops ? src.drops[0] : data_blob, &src.r, err);
		if (rc < 0)
			goto out;
	}
	/* Builds run in parallel while their memory estimates fit the build
	 * budget together (--build-memory-mb); a build always starts when no
	 * other runs. A build holds its rows (about 1.1x the CSV) and, while
	 * it sorts them, up to 48 bytes a row with their offsets
	 * (docs/daemon.md, "Uploads and prepared tables"); the row count is
	 * the provision's. */
	if (!est)
		est = dmn__blob_size(src.r);
	est = csv_rows ? est + est / 4 + DMN_BUILD_BYTES_PER_ROW * csv_rows
	               : est * DMN_BUILD_MEMORY_PER_BYTE;
	{
		uint64_t tw = dcr_mono_ms();
		dmn__mutex_lock(&d->jobs.image_mu);
		while (d->jobs.image_build_bytes > 0 &&
		       d->jobs.image_build_bytes + est > d->jobs.build_budget)
			dmn__cond_wait(&d->jobs.image_cv, &d->jobs.image_mu);
		d->jobs.image_build_bytes += est;
		dmn__mutex_unlock(&d->jobs.image_mu);
		mem_wait_ms = dcr_mono_ms() - tw;
	}
	/* An image of at most half the image cache is built in memory, put
	 * in the cache for runs at once, and stored as a blob after; a larger
	 * one goes to the blob store as it is written (the first run reads
	 * it back). */
	rc = dmn__blob_create(d->blobs, &w, err);
	if (rc == 0) {
		cmp_schema schema = {cols, ncols};
		/* nothing records an image's hash (its GCM tags authenticate
		 * it): ~50 ms less per 1M-row table */
		dmn__blob_no_hash(w);
		dmn__blob_writer_id(w, id);
		struct image_sink sink = {d, w, {0}, &src};
		if (held)
			rc = cmp_prepare_rows(&schema, dataset, index, nindex, held, image_sink, &sink,
			                      (size_t)(d->imgc.budget / 2), &image, &image_n,
			                      &total_n, err);
		else
			rc = cmp_prepare_stream(&schema, dataset, index, nindex, blob_src_read,
			                        &src, image_sink, &sink,
			                        (size_t)(d->imgc.budget / 2), &image, &image_n,
			                        &total_n, err);
		held = NULL; /* consumed */
		if (rc < 0 && sink.err.code)
			*err = sink.err;
	}
	/* The build's working memory is gone; its image is what is left. */
	dmn__mutex_lock(&d->jobs.image_mu);
	d->jobs.image_build_bytes -= est;
	pthread_cond_broadcast(&d->jobs.image_cv);
	dmn__mutex_unlock(&d->jobs.image_mu);
	if (rc < 0) {
		if (src.err.code)
			*err = src.err;
		dcr_err_prefix(err, "preparing table %s", dataset);
		goto out;
	}
	image_bytes = total_n;
	if (image) {
		/* Into the image cache under the blob's id, held until the
		 * blob exists, and ready for runs now (a run waiting in this
		 * function takes the id from the building entry). Under the
		 * room's lock, as dmn__image_forget_all runs under it when data
		 * is withdrawn: then the image is not put in. */
		dmn__mutex_lock(&r->mu);
		if (blob_current(r, dataset, data_blob))
			img = dmn__image_adopt(d, id, &image, image_n);
		dmn__mutex_unlock(&r->mu);
		if (img) {
			dmn__mutex_lock(&d->jobs.image_mu);
			memcpy(building_find(d, key)->ready, id, DMN_BLOB_HEX_BYTES);
			pthread_cond_broadcast(&d->jobs.image_cv);
			dmn__mutex_unlock(&d->jobs.image_mu);
			dmn__log(d, DMN_LOG_INFO,
			         "table of %s (blob %s) ready for runs after %llu ms, in the image "
			         "cache; storing it",
			         dataset, data_blob, (unsigned long long)(dcr_mono_ms() - t0));
			if (background && build_job)
				job_storing(d, build_job);
		}
		{
			size_t n;
			const uint8_t *p = img ? dmn__image_data(img, &n) : image;
			struct image_sink sink = {d, w, {0}, &src};
			/* in pieces: a daemon that stops does not wait for it all
			 * (image_sink asks before each) */
			for (size_t off = 0; off < image_bytes && rc == 0;) {
				size_t k = image_bytes - off < DMN_IMAGE_STORE_PIECE
				               ? image_bytes - off
				               : DMN_IMAGE_STORE_PIECE;
				rc = image_sink(&sink, p + off, k);
				off += k;
			}
			if (rc < 0) {
				*err = sink.err;
				dcr_err_prefix(err, "storing the prepared table %s", dataset);
				goto out;
			}
		}
	}
	rc = dmn__blob_commit(w, id, NULL, NULL, err);
	w = NULL;
	if (rc < 0)
		goto out;
	rc = es_meta_put(d->store, key, id, strlen(id));
	if (rc < 0) {
		dcr_err_set(err, rc, "storing %s: %s", key, dcr_strerror(rc));
		goto out;
	}
	{
		/* The data may have been replaced while the table was built: then
		 * dmn__blobs_drop_withdrawn ran before the table existed, and the
		 * table goes now (both under the room's lock, so one of the two
		 * sees it). */
		bool current;
		dmn__mutex_lock(&r->mu);
		current = blob_current(r, dataset, data_blob);
		dmn__mutex_unlock(&r->mu);
		if (background && !current) {
			dmn__blobs_drop_withdrawn(d, data_blob);
			goto out;
		}
	}
	dmn__log(d, DMN_LOG_INFO,
	         "prepared table %s (blob %s, %zu bytes, %zu indexes) in %llu ms%s%s%s",
	         dataset, data_blob, image_bytes, nindex, (unsigned long long)(dcr_mono_ms() - t0),
	         from_held ? "; from the rows checked at upload" : "; from the file",
	         img ? "; kept in the image cache" : "",
	         mem_wait_ms >= 10 ? "; waited for another build's memory" : "");
	if (image_id)
		memcpy(image_id, id, DMN_BLOB_HEX_BYTES);
	goto out;
found:
	if (v.len != DMN_BLOB_HEX_BYTES - 1) {
		rc = dcr_err_set(err, DCR_EINTEGRITY, "%s: bad value", key);
		goto out;
	}
	if (image_id) {
		memcpy(image_id, v.data, v.len);
		image_id[v.len] = 0;
	}
out:
	if (claimed) {
		struct dmn_building *b;
		dmn__mutex_lock(&d->jobs.image_mu);
		b = building_find(d, key);
		DCR_ASSERT(b); /* only its claimer removes it */
		free(b->key);
		*b = d->jobs.image_building[--d->jobs.nimage_building];
		pthread_cond_broadcast(&d->jobs.image_cv);
		dmn__mutex_unlock(&d->jobs.image_mu);
	}
	if (counted)
		atomic_fetch_sub_explicit(&d->jobs.image_waiting_runs, 1, memory_order_relaxed);
	dmn__blob_close(src.r);
	cmp_rows_free(held);
	strv_free(src.drops, src.ndrops);
	free(index);
	free(join);
	dmn__schema_free(cols, ncols);
	cmp_image_free(image, image_n);
	if (rc < 0)
		dmn__image_discard(d, img); /* its blob will not exist */
	else
		dmn__image_put(d, img);
	if (w)
		dmn__blob_abort(w);
	dcr_buf_release(&v);
	free(key);
	return rc;
}

/* Nice value of background prepared-table builds (derived work yields
 * to uploads and runs; a run that needs the table waits for it). */
#define DMN_IMAGE_NICE 10

static void image_build(dmn *d, dmn_job *j)
{
	dcr_err err;
	int rc;

	dcr_err_clear(&err);
	build_job = j;
	rc = ensure_image(d, j->room, j->dataset, j->blob, NULL, 0, true, NULL, &err);
	build_job = NULL;
	if (rc == DCR_ECANCELED) /* shutdown: built again at the next start */
		dmn__log(d, DMN_LOG_INFO, "prepared table of %s (blob %s): cancelled at shutdown",
		         j->dataset, j->blob);
	else if (rc < 0)
		dmn__log(d, DMN_LOG_ERROR, "prepared table of %s (blob %s): %s", j->dataset,
		         j->blob, err.msg);
}

struct image_bg {
	dmn *d;
	dmn_job *j;
};

static void *image_bg_main(void *arg)
{
	struct image_bg *a = arg;

	/* Nice is per thread on Linux: this short-lived thread is niced, so
	 * the worker keeps its priority for the runs it takes next. */
	errno = 0;
	build_base_nice = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
	build_niced = errno == 0 &&
	              setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), DMN_IMAGE_NICE) == 0;
	image_build(a->d, a->j);
	return NULL;
}

static void image_job(dmn *d, dmn_job *j)
{
	struct image_bg a = {d, j};
	pthread_t t;

	if (pthread_create(&t, NULL, image_bg_main, &a) == 0)
		pthread_join(t, NULL);
	else
		image_build(d, j);
}

/* ---- runs ---------------------------------------------------------------------- */

/* One table a computation reads: a dataset or an upstream computation. */
typedef struct plan_node {
	char *name;
	bool is_dataset;
	bool needed;
	/* dataset */
	bool is_table;
	char *blob; /* NULL: not provisioned (an empty table); append: its union id */
	char **drops; /* append datasets: the drops' blobs, in drop order */
	size_t ndrops;
	char *file; /* file dataset: the provisioned file name (NULL: none) */
	/* computation */
	enum rm_compkind kind;
	char *query;
	char *script;       /* python, r */
	cmp_column *decl;   /* python, r: declared columns (names owned) */
	size_t ndecl;
	enum rm_logs logs;  /* python, r */
	rm_limits limits;   /* python, r */
	dcr_buf archive;    /* python, r: the output files (base/archive.c) */
	char archive_id[DMN_BLOB_HEX_BYTES]; /* its blob, once stored ("" before) */
	long long min_rows;
	cmp_dp dp;               /* dp.epsilon > 0: differentially private */
	cmp_dp_bound *dp_bounds; /* its bounds (column names owned) */
	size_t *inputs; /* indices into plan nodes */
	size_t ninputs;
	cmp_psource priv; /* what a filtered reader knows of this table (a copy) */
	rm_computation synth; /* synthetic: copies of mask, mask_fmt, synth_cols only */
	uint64_t synth_epsilon; /* synthetic: millionths */
	uint64_t synth_rows;    /* synthetic: rows to write, 0: the noisy count */
	/* evaluated */
	bool ready;
	cmp_column *cols;
	size_t ncols;
	dcr_buf image;    /* a result computed in this run */
	dmn_image *img;   /* or a stored image, shared through the cache */
	bool img_hit;     /* img was in memory already */
	uint8_t hash[32]; /* dataset: plaintext sha256; computation: cache key */
	uint8_t result_sha[32];
} plan_node;

typedef struct plan {
	plan_node *n;
	size_t nn;
	size_t *order; /* computations' node indices in dependency order */
	size_t norder;
	size_t target;
	char *computation;
	cmp_cancel *cancel; /* stops the run's SQL (not owned) */
} plan;

static void plan_synth_free(rm_computation *t);

static void plan_free(dmn *d, plan *p)
{
	size_t i;

	for (i = 0; i < p->nn; i++) {
		plan_node *n = &p->n[i];
		free(n->name);
		free(n->blob);
		free(n->file);
		free(n->query);
		free(n->script);
		dmn__schema_free(n->decl, n->ndecl);
		dcr_buf_release(&n->archive);
		for (size_t k = 0; k < n->dp.nbounds; k++)
			free((char *)n->dp_bounds[k].column);
		free(n->dp_bounds);
		plan_synth_free(&n->synth);
		free(n->inputs);
		strv_free(n->drops, n->ndrops);
		dmn__schema_free(n->cols, n->ncols);
		dcr_buf_release(&n->image);
		dmn__image_put(d, n->img);
		cmp_psource_release(&n->priv);
	}
	free(p->n);
	free(p->order);
	free(p->computation);
	memset(p, 0, sizeof *p);
}

/* A synthetic computation's settings, copied out of the definition; they
 * are matched to the input's columns when it runs (the input may be an
 * upstream result). */
static void plan_synth(const rm_computation *c, plan_node *n)
{
	rm_computation *t = &n->synth;
	t->nmask = c->nmask;
	t->mask = dcr_calloc(c->nmask + 1, sizeof *t->mask);
	t->mask_fmt = dcr_calloc(c->nmask + 1, sizeof *t->mask_fmt);
	for (size_t k = 0; k < c->nmask; k++) {
		t->mask[k] = dcr_strdup(c->mask[k]);
		t->mask_fmt[k] = c->mask_fmt[k];
	}
	t->nsynth_cols = c->nsynth_cols;
	t->synth_cols = dcr_calloc(c->nsynth_cols + 1, sizeof *t->synth_cols);
	for (size_t k = 0; k < c->nsynth_cols; k++) {
		t->synth_cols[k] = c->synth_cols[k];
		t->synth_cols[k].column = dcr_strdup(c->synth_cols[k].column);
	}
	n->synth_epsilon = (uint64_t)(c->epsilon * DCR_DP_EPSILON_SCALE + 0.5);
	if (n->synth_epsilon == 0)
		n->synth_epsilon = 1;
	n->synth_rows = c->synth_rows;
}

static void plan_synth_free(rm_computation *t)
{
	for (size_t k = 0; k < t->nmask; k++)
		free(t->mask[k]);
	free(t->mask);
	free(t->mask_fmt);
	for (size_t k = 0; k < t->nsynth_cols; k++)
		free(t->synth_cols[k].column);
	free(t->synth_cols);
	memset(t, 0, sizeof *t);
}

static size_t node_find(const plan *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->nn; i++)
		if (strcmp(p->n[i].name, name) == 0)
			return i;
	return SIZE_MAX;
}

/* Copies what a run needs from the state; r->mu held. */
static int plan_build(const rm_state *st, const rm_run *run, plan *p, dcr_err *err)
{
	const rm_def *def = rm_state_run_def(st, run); /* a preview's: the request merged */
	size_t *topo = NULL, i, k;
	int rc = 0;

	memset(p, 0, sizeof *p);
	if (!def)
		return dcr_err_set(err, DCR_ESTATE, "room has no definition");
	p->nn = def->ndatasets + def->ncomputations;
	p->n = dcr_calloc(p->nn ? p->nn : 1, sizeof *p->n);
	for (i = 0; i < def->ndatasets; i++) {
		const rm_dataset *ds = &def->datasets[i];
		const rm_provision *pv = rm_state_provision(st, ds->name);
		plan_node *n = &p->n[i];
		n->name = dcr_strdup(ds->name);
		n->is_dataset = true;
		n->is_table = ds->kind == RM_DS_TABLE;
		dcr_buf_init(&n->image);
		if (n->is_table) {
			dmn__schema_of(ds, &n->cols, &n->ncols);
			cmp_psource_copy(&n->priv, &ds->psrc);
		}
		if (pv && pv->ndrops) {
			char u[DMN_UNION_ID_BYTES];
			dmn__union_id(pv->sha256, u);
			n->blob = dcr_strdup(u);
			n->drops = dcr_calloc(pv->ndrops + 1, sizeof *n->drops);
			for (k = 0; k < pv->ndrops; k++)
				n->drops[n->ndrops++] = dcr_strdup(pv->drops[k].blob);
			memcpy(n->hash, pv->sha256, 32);
		} else if (pv && pv->blob) {
			n->blob = dcr_strdup(pv->blob);
			memcpy(n->hash, pv->sha256, 32);
		}
		if (!n->is_table && pv && pv->file && *pv->file)
			n->file = dcr_strdup(pv->file);
		/* A requested run reads what was provisioned when it was
		 * requested, the inputs run.completed must report. */
		for (k = 0; k < run->ninputs; k++) {
			const rm_run_input *in = &run->inputs[k];
			if (strcmp(in->dataset, ds->name) != 0)
				continue;
			free(n->blob);
			strv_free(n->drops, n->ndrops);
			n->drops = NULL;
			n->ndrops = 0;
			n->blob = in->present && in->blob ? dcr_strdup(in->blob) : NULL;
			if (in->present && in->ndrop_blobs) {
				char u[DMN_UNION_ID_BYTES];
				dmn__union_id(in->sha256, u);
				n->blob = dcr_strdup(u);
				n->drops = dcr_calloc(in->ndrop_blobs + 1, sizeof *n->drops);
				for (size_t m = 0; m < in->ndrop_blobs; m++)
					n->drops[n->ndrops++] = dcr_strdup(in->drop_blobs[m]);
			}
			memcpy(n->hash, in->sha256, 32);
		}
	}
	for (i = 0; i < def->ncomputations; i++) {
		const rm_computation *c = &def->computations[i];
		plan_node *n = &p->n[def->ndatasets + i];
		n->name = dcr_strdup(c->name);
		n->kind = c->kind;
		n->query = c->query ? dcr_strdup(c->query) : NULL;
		n->min_rows = c->min_rows_aggregated;
		if (c->dp_epsilon) {
			n->dp_bounds = dcr_calloc(c->ndp_bounds + 1, sizeof *n->dp_bounds);
			rm_computation_dp(c, &n->dp, n->dp_bounds);
			for (k = 0; k < c->ndp_bounds; k++)
				n->dp_bounds[k].column = dcr_strdup(c->dp_bounds[k].column);
		}
		cmp_psource_copy(&n->priv, &c->psrc);
		dcr_buf_init(&n->image);
		dcr_buf_init(&n->archive);
		if (c->kind == RM_COMP_PYTHON || c->kind == RM_COMP_R) {
			n->script = dcr_strdup(c->script);
			n->logs = c->logs;
			n->limits = c->limits;
			n->ndecl = c->ncolumns;
			n->decl = dcr_calloc(c->ncolumns + 1, sizeof *n->decl);
			for (k = 0; k < c->ncolumns; k++) {
				n->decl[k].name = dcr_strdup(c->columns[k].name);
				n->decl[k].type = c->columns[k].type;
				n->decl[k].format = c->columns[k].format;
				n->decl[k].nullable = c->columns[k].nullable;
			}
		}
		if (c->kind == RM_COMP_SYNTHETIC)
			plan_synth(c, n);
	}
	for (i = 0; i < def->ncomputations; i++) {
		const rm_computation *c = &def->computations[i];
		plan_node *n = &p->n[def->ndatasets + i];
		n->inputs = dcr_calloc(c->ninputs ? c->ninputs : 1, sizeof *n->inputs);
		for (k = 0; k < c->ninputs; k++) {
			size_t at = node_find(p, c->inputs[k]);
			if (at == SIZE_MAX)
				return dcr_err_set(err, DCR_EINVALID,
				                   "computation %s reads unknown %s", c->name,
				                   c->inputs[k]);
			n->inputs[n->ninputs++] = at;
		}
	}
	p->target = node_find(p, run->computation);
	if (p->target == SIZE_MAX || p->n[p->target].is_dataset)
		return dcr_err_set(err, DCR_ENOTFOUND, "no computation %s", run->computation);
	p->computation = dcr_strdup(run->computation);
	topo = dcr_calloc(def->ncomputations ? def->ncomputations : 1, sizeof *topo);
	rc = rm_def_topo(def, topo);
	if (rc < 0) {
		free(topo);
		return dcr_err_set(err, rc, "computations form a cycle");
	}
	/* Mark what the target needs, walking the order backwards. */
	p->n[p->target].needed = true;
	for (i = def->ncomputations; i-- > 0;) {
		plan_node *n = &p->n[def->ndatasets + topo[i]];
		if (!n->needed)
			continue;
		for (k = 0; k < n->ninputs; k++)
			p->n[n->inputs[k]].needed = true;
	}
	p->order = dcr_calloc(def->ncomputations ? def->ncomputations : 1, sizeof *p->order);
	for (i = 0; i < def->ncomputations; i++)
		if (p->n[def->ndatasets + topo[i]].needed)
			p->order[p->norder++] = def->ndatasets + topo[i];
	free(topo);
	return 0;
}

static void cache_key(const plan *p, const plan_node *n, uint8_t out[32])
{
	dcr_buf b;
	size_t k;

	/* NUL-separated fields: names and queries contain no NUL. */
	dcr_buf_init(&b);
	dcr_buf_append(&b, "dcr.cache.v1", sizeof "dcr.cache.v1");
	dcr_buf_append(&b, n->name, strlen(n->name) + 1);
	dcr_buf_append(&b, n->query ? n->query : "", strlen(n->query ? n->query : "") + 1);
	dcr_buf_printf(&b, "%lld", n->min_rows);
	dcr_buf_append_u8(&b, 0);
	for (k = 0; k < n->ninputs; k++) {
		const plan_node *in = &p->n[n->inputs[k]];
		size_t c;
		dcr_buf_append(&b, in->name, strlen(in->name) + 1);
		dcr_buf_append(&b, in->hash, 32);
		/* the privacy filter's view (permissions, units) changes results */
		dcr_buf_printf(&b, "%d", (int)in->priv.kind);
		for (c = 0; c < in->priv.ncols; c++)
			dcr_buf_printf(&b, "%s=%u", in->priv.cols[c].name, in->priv.cols[c].allow);
		dcr_buf_append_u8(&b, 0);
		for (c = 0; c < in->priv.nunits; c++)
			dcr_buf_append(&b, in->priv.units[c], strlen(in->priv.units[c]) + 1);
		dcr_buf_append_u8(&b, 0);
	}
	dcr_sha256(b.data, b.len, out);
	dcr_buf_release(&b);
}

/* Loads a cached upstream result into n; DCR_ENOTFOUND on a miss. */
static int cache_load(dmn *d, plan_node *n, dcr_err *err)
{
	char hex[65], *key;
	dcr_buf v;
	dcr_mp_doc *doc = NULL;
	const dcr_mpv *cols;
	const char *img;
	size_t img_n;
	char img_id[DMN_BLOB_HEX_BYTES];
	uint32_t i;
	int rc;

	dcr_hex_encode(n->hash, 32, hex);
	key = dcr_asprintf("cache:%s", hex);
	dcr_buf_init(&v);
	rc = es_meta_get(d->store, key, &v);
	if (rc < 0)
		goto out;
	rc = dcr_mp_parse(v.data, v.len, &dcr_mp_limits_default, &doc, err);
	if (rc < 0)
		goto out;
	rc = dcr_mp_get_str(dcr_mp_root(doc), "image", &img, &img_n, err);
	if (rc == 0 && img_n != DMN_BLOB_HEX_BYTES - 1)
		rc = dcr_err_set(err, DCR_EINTEGRITY, "%s: bad image id", key);
	if (rc == 0)
		rc = dcr_mp_get_binn(dcr_mp_root(doc), "sha256", n->result_sha, 32, err);
	cols = dcr_mp_get(dcr_mp_root(doc), "cols");
	if (rc == 0 && dcr_mp_type(cols) != DCR_MP_ARRAY)
		rc = dcr_err_set(err, DCR_EINTEGRITY, "%s: bad cols", key);
	if (rc < 0)
		goto out;
	memcpy(img_id, img, img_n);
	img_id[img_n] = 0;
	n->ncols = dcr_mp_len(cols);
	n->cols = dcr_calloc(n->ncols ? n->ncols : 1, sizeof *n->cols);
	for (i = 0; i < n->ncols; i++) {
		const dcr_mpv *c = dcr_mp_at(cols, i);
		const char *t;
		size_t tn;
		char *name = NULL;
		if (dcr_mp_strdup(dcr_mp_at(c, 0), &name) < 0 ||
		    dcr_mp_str(dcr_mp_at(c, 1), &t, &tn) < 0) {
			free(name);
			rc = dcr_err_set(err, DCR_EINTEGRITY, "%s: bad column %u", key, i);
			goto out;
		}
		n->cols[i].name = name;
		if (!cmp_type_parse(t, tn, &n->cols[i].type))
			n->cols[i].type = CMP_STRING;
		n->cols[i].nullable = true;
	}
	rc = dmn__image_get(d, img_id, &n->img, &n->img_hit, err);
out:
	if (rc < 0 && n->cols) {
		dmn__schema_free(n->cols, n->ncols);
		n->cols = NULL;
		n->ncols = 0;
	}
	dcr_mp_doc_free(doc);
	dcr_buf_release(&v);
	free(key);
	return rc;
}

static void cache_store(dmn *d, const plan_node *n, const char *image_id)
{
	char hex[65], *key;
	dcr_buf v;
	dcr_mpw w;
	size_t i;
	int rc;

	dcr_hex_encode(n->hash, 32, hex);
	key = dcr_asprintf("cache:%s", hex);
	dcr_buf_init(&v);
	dcr_mpw_init(&w, &v);
	dcr_mpw_map(&w, 3);
	dcr_mpw_str(&w, "cols");
	dcr_mpw_array(&w, (uint32_t)n->ncols);
	for (i = 0; i < n->ncols; i++) {
		dcr_mpw_array(&w, 2);
		dcr_mpw_str(&w, n->cols[i].name);
		dcr_mpw_str(&w, cmp_type_name(n->cols[i].type));
	}
	dcr_mpw_str(&w, "image");
	dcr_mpw_str(&w, image_id);
	dcr_mpw_str(&w, "sha256");
	dcr_mpw_bin(&w, n->result_sha, 32);
	rc = es_meta_put(d->store, key, v.data, v.len);
	if (rc < 0)
		dmn__log(d, DMN_LOG_WARN, "could not store %s: %s", key, dcr_strerror(rc));
	dcr_buf_release(&v);
	free(key);
}

/* A synthetic computation over its one input (docs/privacy.md,
 * "Synthetic data"): the input's rows are read back from its table image
 * as CSV (in memory, wiped after), then cmp_synth_run draws from the
 * CSPRNG (rng NULL). n->archive gets the result archive a run stores
 * (docs/compute.md, "Synthetic data"): dataset.csv, the table, and
 * report.json, the privacy and quality report. */
static int eval_synth(plan_node *n, const cmp_input *in, const cmp_sql_limits *lim,
                      cmp_result *res, dcr_err *err)
{
	cmp_result rows;
	cmp_input all = in[0];
	cmp_sql_limits l = *lim;
	dcr_buf report;
	int rc;

	if (n->ninputs != 1)
		return dcr_err_set(err, DCR_EINTERNAL, "synthetic %s: %zu inputs, not one", n->name,
		                   n->ninputs);
	cmp_result_init(&rows);
	dcr_buf_init(&report);
	all.priv = NULL; /* every column, every row: nothing of it leaves this function */
	l.rows_max = DCR_SYNTH_ROWS_MAX;
	l.bytes_max = (uint64_t)1 << 40;
	char *q = dcr_asprintf("SELECT * FROM \"%s\"", all.name);
	rc = cmp_sql_run(q, &all, 1, 0, &l, &rows, err);
	free(q);
	cmp_synth_col *cols = dcr_calloc(all.schema.ncols + 1, sizeof *cols);
	rm_computation_synth(&n->synth, all.schema.cols, all.schema.ncols, cols);
	if (rc == 0) {
		cmp_synth s = {.schema = all.schema,
		               .cols = cols,
		               .epsilon = n->synth_epsilon,
		               .rows = n->synth_rows,
		               .label = all.name};
		dcr_mem src = {rows.csv.data, rows.csv.len, 0};
		rc = cmp_synth_run(&s, dcr_mem_read, &src, res, &report, err);
	}
	if (rc == 0) {
		dcr_archive_entry e[2] = {
		    {"dataset.csv", 11, res->csv.data, res->csv.len},
		    {"report.json", 11, report.data, report.len},
		};
		dcr_buf_reset(&n->archive);
		dcr_archive_write(&n->archive, e, 2);
	}
	free(cols);
	dcr_wipe(rows.csv.data, rows.csv.len);
	dcr_wipe(rows.image.data, rows.image.len);
	cmp_result_release(&rows);
	dcr_buf_release(&report);
	return rc;
}

/* Evaluates computation node n (inputs ready). For the target, res keeps
 * the full result (CSV). */
static int eval_node(dmn *d, plan *p, plan_node *n, bool target, cmp_result *res, dcr_err *err)
{
	cmp_input *in = NULL;
	cmp_sql_limits lim = {.time_ms = DMN_RUN_TIME_MS, .cancel = p->cancel};
	char image_id[DMN_BLOB_HEX_BYTES];
	uint8_t sha[32];
	size_t k;
	int rc;

	if (n->kind != RM_COMP_SQL && n->kind != RM_COMP_SYNTHETIC)
		return dcr_err_set(err, DCR_ESTATE, "computation kind %s is not supported yet",
		                   rm_compkind_name(n->kind));
	cache_key(p, n, n->hash);
	if (!target) {
		rc = cache_load(d, n, err);
		if (rc == 0) {
			n->ready = true;
			return 0;
		}
		if (rc != DCR_ENOTFOUND)
			dmn__log(d, DMN_LOG_WARN, "cache of %s unusable (%s): recomputing", n->name,
			         err ? err->msg : "");
	}
	in = dcr_calloc(n->ninputs ? n->ninputs : 1, sizeof *in);
	for (k = 0; k < n->ninputs; k++) {
		plan_node *x = &p->n[n->inputs[k]];
		if (x->is_dataset && !x->is_table) {
			rc = dcr_err_set(err, DCR_EINVALID,
			                 "%s reads file dataset %s: SQL reads "
			                 "tables only",
			                 n->name, x->name);
			goto out;
		}
		if (!x->ready) {
			rc = dcr_err_set(err, DCR_EINTERNAL, "input %s of %s not ready", x->name,
			                 n->name);
			goto out;
		}
		in[k].name = x->name;
		in[k].schema.cols = x->cols;
		in[k].schema.ncols = x->ncols;
		in[k].priv = &x->priv;
		if (x->img) {
			in[k].image = dmn__image_data(x->img, &in[k].image_n);
		} else {
			in[k].image = x->image.len ? x->image.data : NULL;
			in[k].image_n = x->image.len;
		}
	}
	/* a DP computation draws fresh noise from the CSPRNG (dp.rng NULL) */
	if (n->kind == RM_COMP_SYNTHETIC)
		rc = eval_synth(n, in, &lim, res, err);
	else
		rc = n->dp.epsilon
		         ? cmp_dp_run(n->query, in, n->ninputs, &n->dp, &lim, res, err)
		         : cmp_sql_run(n->query, in, n->ninputs, n->min_rows, &lim, res, err);
	if (rc < 0) {
		dcr_err_prefix(err, "computation %s", n->name);
		goto out;
	}
	dcr_sha256(res->csv.data, res->csv.len, n->result_sha);
	/* Keep the result as a table for downstream computations. */
	n->ncols = res->ncols;
	n->cols = dcr_calloc(res->ncols ? res->ncols : 1, sizeof *n->cols);
	for (k = 0; k < res->ncols; k++) {
		n->cols[k] = res->cols[k];
		n->cols[k].name = dcr_strdup(res->cols[k].name);
	}
	dcr_buf_append(&n->image, res->image.data, res->image.len);
	n->ready = true;
	{
		/* The cache is an optimization: a failure only costs a recompute. */
		dcr_err e2;
		if (dmn__blob_put(d->blobs, res->image.data, res->image.len, image_id, sha,
		                  &e2) == 0)
			cache_store(d, n, image_id);
		else
			dmn__log(d, DMN_LOG_WARN, "could not store the result of %s as a table: %s",
			         n->name, e2.msg);
	}
	rc = 0;
out:
	free(in);
	return rc;
}

/* ---- python and r ----------------------------------------------------------------- */

/* The limits of a script run: the definition's, else the sandbox's
 * defaults, each within the host's maximum (dcrd's --script-max-*). A
 * definition asking for more than the host allows fails the run with a
 * message naming the limit and the maximum. */
static int script_limits(const dmn *d, const rm_limits *def, cmp_sandbox_limits *out,
                         dcr_err *err)
{
	static const char *const names[] = {"wall_seconds", "cpu_seconds", "memory_mb",
	                                    "processes",    "output_mb",   "tmp_mb"};
	static const char *const opts[] = {"--script-max-wall-s",    "--script-max-cpu-s",
	                                   "--script-max-memory-mb", "--script-max-processes",
	                                   "--script-max-output-mb", "--script-max-tmp-mb"};
	static const uint64_t caps[] = {DCR_RM_LIMIT_WALL_SECONDS_MAX, DCR_RM_LIMIT_CPU_SECONDS_MAX,
	                                DCR_RM_LIMIT_MEMORY_MB_MAX,    DCR_RM_LIMIT_PROCESSES_MAX,
	                                DCR_RM_LIMIT_OUTPUT_MB_MAX,    DCR_RM_LIMIT_TMP_MB_MAX};
	/* units of each field in the sandbox's struct */
	static const uint64_t unit[] = {1000, 1000, 1u << 20, 1, 1u << 20, 1u << 20};
	const uint64_t want[] = {def->wall_seconds, def->cpu_seconds, def->memory_mb,
	                         def->processes,    def->output_mb,   def->tmp_mb};
	const uint64_t host[] = {d->opt.script_max_wall_s,    d->opt.script_max_cpu_s,
	                         d->opt.script_max_memory_mb, d->opt.script_max_processes,
	                         d->opt.script_max_output_mb, d->opt.script_max_tmp_mb};
	uint64_t dflt[6];
	uint64_t *dst[6];
	size_t i;

	memset(out, 0, sizeof *out);
	cmp_sandbox_limits_default(out);
	dflt[0] = out->wall_ms, dflt[1] = out->cpu_ms, dflt[2] = out->memory_bytes;
	dflt[3] = out->procs, dflt[4] = out->output_bytes, dflt[5] = out->tmp_bytes;
	for (i = 0; i < 6; i++) {
		uint64_t max = host[i] ? host[i] : caps[i];
		uint64_t v;
		if (want[i] > max)
			return dcr_err_set(err, DCR_ELIMIT,
			                   "limits.%s of %llu is past this host's maximum of %llu "
			                   "(dcrd %s)",
			                   names[i], (unsigned long long)want[i],
			                   (unsigned long long)max, opts[i]);
		v = want[i] ? want[i] * unit[i] : dflt[i];
		if (v > max * unit[i])
			v = max * unit[i];
		dflt[i] = v;
	}
	dst[0] = &out->wall_ms, dst[1] = &out->cpu_ms, dst[2] = &out->memory_bytes;
	for (i = 0; i < 3; i++)
		*dst[i] = dflt[i];
	out->procs = (uint32_t)dflt[3];
	out->output_bytes = dflt[4];
	out->tmp_bytes = dflt[5];
	return 0;
}

/* One file under /input: bytes in memory (a header-only CSV, an SQL
 * result as CSV), bytes of an upstream archive, or a blob streamed
 * decrypted (never written to disk). */
typedef struct script_file {
	char *path;
	dcr_buf mem;
	const uint8_t *ext; /* borrowed (an upstream node's archive) */
	size_t ext_n;
	dcr_mem m;
	struct blob_src src; /* src.r set: a blob */
} script_file;

typedef struct script_files {
	script_file *f;
	size_t n;
} script_files;

static script_file *files_add(script_files *fs, char *path)
{
	script_file *f;

	fs->f = dcr_realloc(fs->f, (fs->n + 1) * sizeof *fs->f);
	f = &fs->f[fs->n++];
	memset(f, 0, sizeof *f);
	f->path = path;
	dcr_buf_init(&f->mem);
	return f;
}

static void files_release(script_files *fs)
{
	for (size_t i = 0; i < fs->n; i++) {
		free(fs->f[i].path);
		dcr_buf_release(&fs->f[i].mem);
		dmn__blob_close(fs->f[i].src.r);
	}
	free(fs->f);
	memset(fs, 0, sizeof *fs);
}

static void header_csv(const cmp_column *cols, size_t n, dcr_buf *out)
{
	for (size_t i = 0; i < n; i++)
		dcr_buf_printf(out, "%s%s", i ? "," : "", cols[i].name);
	dcr_buf_append_str(out, "\n");
}

/* An evaluated result table (an upstream SQL or tabular script node) as
 * CSV with a header row. */
static int node_csv(plan *p, plan_node *x, dcr_buf *csv, dcr_err *err)
{
	cmp_sql_limits lim = {.time_ms = DMN_RUN_TIME_MS, .cancel = p->cancel};
	cmp_input in;
	cmp_result res;
	char *q;
	int rc;

	memset(&in, 0, sizeof in);
	in.name = x->name;
	in.schema.cols = x->cols;
	in.schema.ncols = x->ncols;
	in.priv = &x->priv;
	if (x->img) {
		in.image = dmn__image_data(x->img, &in.image_n);
	} else {
		in.image = x->image.len ? x->image.data : NULL;
		in.image_n = x->image.len;
	}
	q = dcr_asprintf("SELECT * FROM \"%s\"", x->name);
	cmp_result_init(&res);
	rc = cmp_sql_run(q, &in, 1, 0, &lim, &res, err);
	if (rc == 0)
		dcr_buf_append(csv, res.csv.data, res.csv.len);
	else
		dcr_err_prefix(err, "reading the result of %s as CSV", x->name);
	cmp_result_release(&res);
	free(q);
	return rc;
}

/* The /input files of a script over input nodes in (indices into p):
 * docs/compute.md, "Input layout". */
static int script_inputs(dmn *d, plan *p, const size_t *in, size_t nin, script_files *fs,
                         dcr_err *err)
{
	int rc = 0;

	for (size_t k = 0; rc == 0 && k < nin; k++) {
		plan_node *x = &p->n[in[k]];
		script_file *f;
		if (x->is_dataset && x->is_table) {
			f = files_add(fs, dcr_asprintf("%s/dataset.csv", x->name));
			if (!x->blob) { /* not provisioned: present and empty */
				header_csv(x->cols, x->ncols, &f->mem);
				continue;
			}
			if (x->ndrops) { /* append: the union of the drops, one CSV */
				if (!x->img && !x->image.len)
					rc = dcr_err_set(err, DCR_EINTERNAL,
					                 "input %s: its table is not loaded", x->name);
				else
					rc = node_csv(p, x, &f->mem, err);
				continue;
			}
		} else if (x->is_dataset) {
			if (!x->blob) { /* not provisioned: an empty directory */
				files_add(fs, dcr_asprintf("%s/", x->name));
				continue;
			}
			/* under its provisioned name, when that is one plain name */
			const char *nm = x->file && dcr_archive_name_valid(x->file, strlen(x->file)) &&
			                         !strchr(x->file, '/')
			                     ? x->file
			                     : "data";
			f = files_add(fs, dcr_asprintf("%s/%s", x->name, nm));
		} else if (x->script) {
			dcr_archive a;
			rc = dcr_archive_read(x->archive.data, x->archive.len, &a, err);
			for (size_t i = 0; rc == 0 && i < a.n; i++) {
				f = files_add(fs, dcr_asprintf("%s/%.*s", x->name, (int)a.e[i].name_len,
				                               a.e[i].name));
				f->ext = a.e[i].data;
				f->ext_n = a.e[i].len;
			}
			if (rc == 0)
				dcr_archive_release(&a);
			continue;
		} else {
			f = files_add(fs, dcr_asprintf("%s/dataset.csv", x->name));
			rc = node_csv(p, x, &f->mem, err);
			continue;
		}
		f->src.d = d;
		rc = dmn__blob_open(d->blobs, x->blob, &f->src.r, err);
		if (rc < 0)
			dcr_err_prefix(err, "input %s", x->name);
	}
	return rc;
}

/* What a script run left: the sandbox's outcome, its output files as an
 * archive and its logs as an archive (stdout, stderr). */
typedef struct script_out {
	cmp_sandbox_out sb;
	bool started; /* the sandbox ran: logs exists */
	dcr_buf archive, logs;
} script_out;

static void script_out_init(script_out *o)
{
	memset(o, 0, sizeof *o);
	cmp_sandbox_out_init(&o->sb);
	dcr_buf_init(&o->archive);
	dcr_buf_init(&o->logs);
}

static void script_out_release(script_out *o)
{
	cmp_sandbox_out_release(&o->sb);
	dcr_buf_release(&o->archive);
	dcr_buf_release(&o->logs);
}

/* Runs a python or r script over the input plan nodes in (evaluated
 * already) with the definition's limits, in the sandbox. On return
 * out->started says whether logs were captured (out->logs holds them
 * then, whatever the outcome); on success out->archive holds the output
 * files. The entry point for every script run of dcrd (runs of a room's
 * computations, test all, development runs). */
static int script_eval(dmn *d, plan *p, enum rm_compkind lang, const char *script,
                       const size_t *in, size_t nin, const rm_limits *limits, script_out *out,
                       dcr_err *err)
{
	script_files fs = {0};
	cmp_sandbox_input *inputs = NULL;
	cmp_sandbox_spec spec;
	int rc;

	DCR_ASSERT(lang == RM_COMP_PYTHON || lang == RM_COMP_R);
	memset(&spec, 0, sizeof spec);
	rc = script_limits(d, limits, &spec.limits, err);
	if (rc == 0)
		rc = script_inputs(d, p, in, nin, &fs, err);
	if (rc < 0)
		goto out;
	inputs = dcr_calloc(fs.n + 1, sizeof *inputs);
	for (size_t i = 0; i < fs.n; i++) {
		script_file *f = &fs.f[i];
		inputs[i].path = f->path;
		if (f->src.r) {
			inputs[i].size = dmn__blob_size(f->src.r);
			inputs[i].read = blob_src_read;
			inputs[i].ctx = &f->src;
		} else {
			f->m.p = f->ext ? f->ext : f->mem.data;
			f->m.n = f->ext ? f->ext_n : f->mem.len;
			inputs[i].size = f->m.n;
			inputs[i].read = dcr_mem_read;
			inputs[i].ctx = &f->m;
		}
	}
	spec.lang = lang == RM_COMP_PYTHON ? CMP_LANG_PYTHON : CMP_LANG_R;
	spec.script = script;
	spec.script_len = strlen(script);
	spec.inputs = inputs;
	spec.ninputs = fs.n;
	spec.cancel = p->cancel;
	spec.self_exe = d->opt.sandbox_exe;
	rc = cmp_sandbox_run(&spec, &out->sb, err);
	/* a reader's own error (a blob that cannot be read) is the cause */
	for (size_t i = 0; rc < 0 && i < fs.n; i++)
		if (fs.f[i].src.err.code) {
			*err = fs.f[i].src.err;
			dcr_err_prefix(err, "reading input %s", fs.f[i].path);
			break;
		}
	out->started = rc == 0 || rc == DCR_ESCRIPT || rc == DCR_ELIMIT || rc == DCR_ETIMEOUT ||
	               rc == DCR_EOUTPUT || out->sb.out_log.len || out->sb.err_log.len;
	if (out->started) {
		dcr_archive_entry e[2] = {
		    {"stderr", 6, out->sb.err_log.data, out->sb.err_log.len},
		    {"stdout", 6, out->sb.out_log.data, out->sb.out_log.len},
		};
		dcr_archive_write(&out->logs, e, 2);
	}
	if (rc == 0) {
		dcr_archive_entry *e = dcr_calloc(out->sb.nfiles + 1, sizeof *e);
		for (size_t i = 0; i < out->sb.nfiles; i++) {
			e[i].name = out->sb.files[i].name;
			e[i].name_len = strlen(out->sb.files[i].name);
			e[i].data = out->sb.files[i].data;
			e[i].len = out->sb.files[i].len;
			if (!dcr_archive_name_valid(e[i].name, e[i].name_len)) {
				rc = dcr_err_set(err, DCR_EOUTPUT,
				                 "an output file name is not a plain relative path");
				break;
			}
		}
		if (rc == 0)
			dcr_archive_write(&out->archive, e, out->sb.nfiles);
		free(e);
	}
out:
	free(inputs);
	files_release(&fs);
	return rc;
}

/* The tabular result of a script that declares columns: /output/dataset.csv
 * validated against them (the CSV ingest), then as a table. Errors are
 * DCR_EOUTPUT with a message starting "the tabular result" (class
 * "script result invalid"; it may quote a value: shown only where the
 * computation's logs are). */
static int script_table(plan_node *n, const dcr_archive *a, uint64_t *rows, dcr_err *err)
{
	const dcr_archive_entry *e = dcr_archive_find(a, "dataset.csv");
	cmp_schema schema = {n->decl, n->ndecl};
	cmp_ingest *ing = NULL;
	dcr_mem m;
	int rc;

	if (!e)
		return dcr_err_set(err, DCR_EOUTPUT,
		                   "the tabular result: /output/dataset.csv is missing (computation "
		                   "%s declares columns, so the script must write it)",
		                   n->name);
	rc = cmp_ingest_new(&schema, "/output/dataset.csv", &ing);
	if (rc == 0)
		rc = cmp_ingest_feed(ing, e->data, e->len, err);
	if (rc == 0)
		rc = cmp_ingest_finish(ing, rows, NULL, err);
	cmp_ingest_free(ing);
	if (rc == 0) {
		m.p = e->data;
		m.n = e->len;
		m.off = 0;
		dcr_buf_reset(&n->image);
		rc = cmp_prepare(&schema, n->name, dcr_mem_read, &m, &n->image, err);
	}
	if (rc < 0) {
		dcr_err_prefix(err, "the tabular result");
		err->code = DCR_EOUTPUT;
		return DCR_EOUTPUT;
	}
	return 0;
}

/* Cache key of a script node: kind, script, declared columns and the
 * inputs (their hashes, and a file dataset's name, which is its path
 * under /input). The limits are not in it: a result computed under other
 * limits is the same result. */
static void script_cache_key(const plan *p, const plan_node *n, uint8_t out[32])
{
	dcr_buf b;

	dcr_buf_init(&b);
	dcr_buf_append(&b, "dcr.cache.script.v1", sizeof "dcr.cache.script.v1");
	dcr_buf_append(&b, n->name, strlen(n->name) + 1);
	dcr_buf_append_str(&b, rm_compkind_name(n->kind));
	dcr_buf_append_u8(&b, 0);
	dcr_buf_append(&b, n->script, strlen(n->script) + 1);
	for (size_t k = 0; k < n->ndecl; k++)
		dcr_buf_printf(&b, "%s:%s:%d:%d", n->decl[k].name, cmp_type_name(n->decl[k].type),
		               (int)n->decl[k].format, (int)n->decl[k].nullable);
	dcr_buf_append_u8(&b, 0);
	for (size_t k = 0; k < n->ninputs; k++) {
		const plan_node *in = &p->n[n->inputs[k]];
		dcr_buf_append(&b, in->name, strlen(in->name) + 1);
		dcr_buf_append(&b, in->hash, 32);
		dcr_buf_append(&b, in->blob ? "1" : "0", 1);
		if (in->file)
			dcr_buf_append_str(&b, in->file);
		dcr_buf_append_u8(&b, 0);
	}
	dcr_sha256(b.data, b.len, out);
	dcr_buf_release(&b);
}

/* es_meta "cache:<key>" of a script node: {archive, image ("" without
 * columns), sha256 of the archive}. */
static void script_cache_store(dmn *d, const plan_node *n, const char *archive_id,
                               const char *image_id)
{
	char hex[65], *key;
	dcr_buf v;
	dcr_mpw w;
	int rc;

	dcr_hex_encode(n->hash, 32, hex);
	key = dcr_asprintf("cache:%s", hex);
	dcr_buf_init(&v);
	dcr_mpw_init(&w, &v);
	dcr_mpw_map(&w, 3);
	dcr_mpw_str(&w, "archive");
	dcr_mpw_str(&w, archive_id);
	dcr_mpw_str(&w, "image");
	dcr_mpw_str(&w, image_id);
	dcr_mpw_str(&w, "sha256");
	dcr_mpw_bin(&w, n->result_sha, 32);
	rc = es_meta_put(d->store, key, v.data, v.len);
	if (rc < 0)
		dmn__log(d, DMN_LOG_WARN, "could not store %s: %s", key, dcr_strerror(rc));
	dcr_buf_release(&v);
	free(key);
}

/* Reads a whole blob into out. */
static int blob_read_all(dmn *d, const char *id, dcr_buf *out, dcr_err *err)
{
	dmn_blob_reader *r = NULL;
	size_t got = 0;
	uint64_t size;
	int rc = dmn__blob_open(d->blobs, id, &r, err);

	if (rc < 0)
		return rc;
	size = dmn__blob_size(r);
	if (size > DCR_ARCHIVE_BYTES_MAX) {
		rc = dcr_err_set(err, DCR_ELIMIT, "blob %s: %llu bytes", id,
		                 (unsigned long long)size);
		goto out;
	}
	dcr_buf_reset(out);
	dcr_buf_reserve(out, (size_t)size + 1);
	rc = dmn__blob_pread(r, 0, out->data, (size_t)size, &got, err);
	if (rc == 0 && got != size)
		rc = dcr_err_set(err, DCR_EINTEGRITY, "blob %s: short read", id);
	if (rc == 0)
		out->len = got;
out:
	dmn__blob_close(r);
	return rc;
}

static int script_cache_load(dmn *d, plan_node *n, dcr_err *err)
{
	char hex[65], *key;
	dcr_buf v;
	dcr_mp_doc *doc = NULL;
	const char *arch, *img;
	size_t arch_n, img_n;
	char id[DMN_BLOB_HEX_BYTES];
	uint8_t sha[32];
	int rc;

	dcr_hex_encode(n->hash, 32, hex);
	key = dcr_asprintf("cache:%s", hex);
	dcr_buf_init(&v);
	rc = es_meta_get(d->store, key, &v);
	if (rc < 0)
		goto out;
	rc = dcr_mp_parse(v.data, v.len, &dcr_mp_limits_default, &doc, err);
	if (rc == 0)
		rc = dcr_mp_get_str(dcr_mp_root(doc), "archive", &arch, &arch_n, err);
	if (rc == 0)
		rc = dcr_mp_get_str(dcr_mp_root(doc), "image", &img, &img_n, err);
	if (rc == 0)
		rc = dcr_mp_get_binn(dcr_mp_root(doc), "sha256", n->result_sha, 32, err);
	if (rc == 0 && (arch_n != DMN_BLOB_HEX_BYTES - 1 ||
	                (img_n != 0 && img_n != DMN_BLOB_HEX_BYTES - 1) ||
	                (img_n == 0) != (n->ndecl == 0)))
		rc = dcr_err_set(err, DCR_EINTEGRITY, "%s: bad value", key);
	if (rc < 0)
		goto out;
	memcpy(id, arch, arch_n);
	id[arch_n] = 0;
	rc = blob_read_all(d, id, &n->archive, err);
	if (rc == 0) {
		dcr_sha256(n->archive.data, n->archive.len, sha);
		if (memcmp(sha, n->result_sha, 32) != 0)
			rc = dcr_err_set(err, DCR_EINTEGRITY, "%s: the archive's hash differs", key);
	}
	if (rc == 0 && img_n) {
		memcpy(id, img, img_n);
		id[img_n] = 0;
		rc = dmn__image_get(d, id, &n->img, &n->img_hit, err);
	}
	if (rc < 0)
		dcr_buf_reset(&n->archive);
out:
	dcr_mp_doc_free(doc);
	dcr_buf_release(&v);
	free(key);
	return rc;
}

/* The result columns of a script node for downstream SQL: its declared
 * columns. */
static void script_node_cols(plan_node *n)
{
	n->ncols = n->ndecl;
	n->cols = dcr_calloc(n->ndecl + 1, sizeof *n->cols);
	for (size_t k = 0; k < n->ndecl; k++) {
		n->cols[k] = n->decl[k];
		n->cols[k].name = dcr_strdup(n->decl[k].name);
	}
}

/* Evaluates script node n (inputs ready): from the cache when it is
 * upstream and its inputs did not change, else in the sandbox. out gets
 * the sandbox's outcome (logs) for the target; *rows the rows of its
 * table. */
static int eval_script_node(dmn *d, plan *p, plan_node *n, bool target, script_out *out,
                            uint64_t *rows, dcr_err *err)
{
	char archive_id[DMN_BLOB_HEX_BYTES], image_id[DMN_BLOB_HEX_BYTES] = "";
	uint8_t sha[32];
	dcr_archive a;
	bool have_a = false;
	int rc;

	*rows = 0;
	script_cache_key(p, n, n->hash);
	if (!target) {
		rc = script_cache_load(d, n, err);
		if (rc == 0) {
			script_node_cols(n);
			n->ready = true;
			return 0;
		}
		if (rc != DCR_ENOTFOUND)
			dmn__log(d, DMN_LOG_WARN, "cache of %s unusable (%s): recomputing", n->name,
			         err->msg);
	}
	for (size_t k = 0; k < n->ninputs; k++)
		if (!p->n[n->inputs[k]].is_dataset && !p->n[n->inputs[k]].ready)
			return dcr_err_set(err, DCR_EINTERNAL, "input %s of %s not ready",
			                   p->n[n->inputs[k]].name, n->name);
	rc = script_eval(d, p, n->kind, n->script, n->inputs, n->ninputs, &n->limits, out, err);
	if (rc < 0)
		goto fail;
	dcr_buf_reset(&n->archive);
	dcr_buf_append(&n->archive, out->archive.data, out->archive.len);
	dcr_sha256(n->archive.data, n->archive.len, n->result_sha);
	if (n->ndecl) {
		rc = dcr_archive_read(n->archive.data, n->archive.len, &a, err);
		have_a = rc == 0;
		if (rc == 0)
			rc = script_table(n, &a, rows, err);
		if (rc < 0)
			goto fail;
	}
	script_node_cols(n);
	n->ready = true;
	{
		/* The cache is an optimization: a failure only costs a rerun. */
		dcr_err e2;
		if (dmn__blob_put(d->blobs, n->archive.data, n->archive.len, archive_id, sha, &e2) ==
		        0 &&
		    (memcpy(n->archive_id, archive_id, sizeof archive_id), !n->ndecl ||
		     dmn__blob_put(d->blobs, n->image.data, n->image.len, image_id, sha, &e2) == 0))
			script_cache_store(d, n, archive_id, image_id);
		else
			dmn__log(d, DMN_LOG_WARN, "could not keep the result of %s: %s", n->name,
			         e2.msg);
	}
	rc = 0;
	goto out;
fail:
	dcr_err_prefix(err, "computation %s", n->name);
out:
	if (have_a)
		dcr_archive_release(&a);
	return rc;
}

static int load_dataset(dmn *d, const uint8_t room[ES_ROOM_ID_BYTES], plan_node *n, dcr_err *err)
{
	char image_id[DMN_BLOB_HEX_BYTES];
	int rc;

	if (n->ready)
		return 0;
	if (n->is_table && n->blob) {
		rc = ensure_image(d, room, n->name, n->blob, n->drops, n->ndrops, false, image_id,
		                  err);
		if (rc == 0)
			rc = dmn__image_get(d, image_id, &n->img, &n->img_hit, err);
		if (rc < 0)
			return rc;
	}
	n->ready = true;
	return 0;
}

/* Whether the detail of a failed run (its message, which may quote a
 * value) may go to the analysts of its computation: no evaluated
 * computation is filtered or differentially private (their analysts may
 * not read rows, docs/privacy.md), no upstream is a script (its logs
 * policy is its own analysts'), and a script target allows its logs. */
static bool detail_allowed(const plan *p)
{
	for (size_t k = 0; k < p->norder; k++) {
		const plan_node *n = &p->n[p->order[k]];
		if (n->min_rows > 0 || n->dp.epsilon > 0)
			return false;
		if (n->script && (p->order[k] != p->target || n->logs == RM_LOGS_NEVER))
			return false;
	}
	return true;
}

static void run_job(dmn *d, dmn_job *j)
{
	dmn_room *r = dmn__room_find(d, j->room);
	cmp_result res;
	plan p;
	dcr_err err;
	const char *cls = "";
	dcr_buf body;
	rm_run out;
	rm_run_input *run_inputs = NULL;
	size_t nrun_inputs = 0;
	uint64_t t0 = dcr_mono_ms(), script_rows = 0;
	char blob_id[DMN_BLOB_HEX_BYTES], logs_id[DMN_BLOB_HEX_BYTES];
	plan_node *script = NULL; /* the target, when it is a script */
	script_out sout;
	uint8_t by[32]; /* the requester: its temp files count in its disk quota */
	cmp_tmp_budget *tmp_prev;
	size_t i, k;
	int rc;

	memset(&p, 0, sizeof p);
	memset(&out, 0, sizeof out);
	dcr_err_clear(&err);
	cmp_result_init(&res);
	script_out_init(&sout);
	dcr_buf_init(&body);
	if (!r)
		goto done;
	dmn__mutex_lock(&r->mu);
	{
		const rm_run *run = rm_state_run(&r->st, j->run_id);
		if (!run || run->state != RM_RUN_QUEUED) {
			dmn__mutex_unlock(&r->mu);
			goto done; /* finished meanwhile (duplicate job) */
		}
		rc = plan_build(&r->st, run, &p, &err);
		memcpy(by, run->by, 32);
		if (!p.computation)
			p.computation = dcr_strdup(run->computation);
		nrun_inputs = run->ninputs;
		run_inputs = dcr_calloc(nrun_inputs + 1, sizeof *run_inputs);
		for (k = 0; k < nrun_inputs; k++) {
			run_inputs[k] = run->inputs[k];
			run_inputs[k].dataset = dcr_strdup(run->inputs[k].dataset);
			run_inputs[k].blob = NULL; /* not needed for the body */
			run_inputs[k].drop_blobs = NULL;
			run_inputs[k].ndrop_blobs = 0;
		}
	}
	dmn__mutex_unlock(&r->mu);
	p.cancel = cmp_cancel_new();
	if (!active_enter(d, j->run_id, cancel_sql, p.cancel))
		goto done; /* stopping: the run stays queued */
	tmp_prev = cmp_tmp_budget_enter(dmn__quota_run_enter(d, by));
	dmn__log(d, DMN_LOG_INFO, "run %s (%s) in room %s: started", j->run_id, p.computation,
	         r->hex);
	for (i = 0; rc == 0 && i < p.norder; i++) {
		plan_node *n = &p.n[p.order[i]];
		bool target = p.order[i] == p.target;
		/* SQL reads prepared tables; a script streams its datasets,
		 * except an append dataset's union, read back from its table */
		for (k = 0; rc == 0 && k < n->ninputs; k++)
			if (p.n[n->inputs[k]].is_dataset &&
			    (!n->script || p.n[n->inputs[k]].ndrops))
				rc = load_dataset(d, j->room, &p.n[n->inputs[k]], &err);
		if (rc < 0)
			break;
		if (target && n->script) {
			script = n;
			rc = eval_script_node(d, &p, n, true, &sout, &script_rows, &err);
			if (sout.started) /* measures only: nothing the script chose */
				dmn__log(d, DMN_LOG_INFO,
				         "run %s (%s): script wall %llu ms, cpu %llu ms, peak RSS "
				         "%llu KiB",
				         j->run_id, n->name, (unsigned long long)sout.sb.wall_ms,
				         (unsigned long long)sout.sb.cpu_ms,
				         (unsigned long long)(sout.sb.peak_rss_bytes >> 10));
		} else if (target) {
			rc = eval_node(d, &p, n, true, &res, &err);
		} else if (n->script) {
			script_out tmp;
			uint64_t rows;
			script_out_init(&tmp);
			rc = eval_script_node(d, &p, n, false, &tmp, &rows, &err);
			script_out_release(&tmp);
		} else {
			cmp_result tmp;
			cmp_result_init(&tmp);
			rc = eval_node(d, &p, n, false, &tmp, &err);
			cmp_result_release(&tmp);
		}
	}
	if (rc == 0 && script && script->archive_id[0]) {
		/* the blob the cache keeps is the result (content, not copy) */
		memcpy(blob_id, script->archive_id, sizeof blob_id);
		memcpy(out.result_sha256, script->result_sha, 32);
	} else if (rc == 0 && script) {
		rc = dmn__blob_put(d->blobs, script->archive.data, script->archive.len, blob_id,
		                   out.result_sha256, &err);
	}
	else if (rc == 0 && p.n[p.target].kind == RM_COMP_SYNTHETIC) /* its archive */
		rc = dmn__blob_put(d->blobs, p.n[p.target].archive.data, p.n[p.target].archive.len,
		                   blob_id, out.result_sha256, &err);
	else if (rc == 0)
		rc = dmn__blob_put(d->blobs, res.csv.data, res.csv.len, blob_id, out.result_sha256,
		                   &err);
	if (script && sout.started) {
		/* the logs, kept for the analysts as "logs" allows; a failure
		 * to store them fails a completed run, and a failed run is
		 * recorded without them */
		dcr_err e2;
		int lrc = dmn__blob_put(d->blobs, sout.logs.data, sout.logs.len, logs_id,
		                        out.logs_sha256, &e2);
		if (lrc == 0)
			out.logs_blob = logs_id;
		else if (rc == 0) {
			rc = lrc;
			err = e2;
		}
	}
	out.id = j->run_id;
	out.computation = p.computation;
	out.duration_ms = dcr_mono_ms() - t0;
	if (rc == 0 && script) {
		out.state = RM_RUN_DONE;
		out.result_blob = blob_id;
		out.rows = script_rows;
		out.result_bytes = script->archive.len;
		out.files = sout.sb.nfiles;
		out.inputs = run_inputs;
		out.ninputs = nrun_inputs;
		out.ncols = script->ndecl;
		out.cols = dcr_calloc(script->ndecl + 1, sizeof *out.cols);
		for (k = 0; k < script->ndecl; k++) {
			out.cols[k].name = (char *)script->decl[k].name;
			out.cols[k].type = script->decl[k].type;
		}
		rm_body_run_completed_script(&body, &out);
	} else if (rc == 0) {
		out.state = RM_RUN_DONE;
		out.result_blob = blob_id;
		out.rows = res.rows;
		out.suppressed = res.suppressed;
		out.result_bytes = p.n[p.target].kind == RM_COMP_SYNTHETIC
		                       ? p.n[p.target].archive.len
		                       : res.csv.len;
		out.inputs = run_inputs;
		out.ninputs = nrun_inputs;
		out.ncols = res.ncols;
		out.cols = dcr_calloc(res.ncols + 1, sizeof *out.cols);
		for (k = 0; k < res.ncols; k++) {
			out.cols[k].name = (char *)res.cols[k].name;
			out.cols[k].type = res.cols[k].type;
		}
		rm_body_run_completed(&body, &out);
	} else {
		/* The message may quote data (docs/privacy.md, "Errors"): the
		 * event and the log get its data-free class only. */
		cls = cmp_error_class(&err);
		if (out.logs_blob)
			rm_body_run_failed_logs(&body, j->run_id, p.computation, cls, out.logs_blob,
			                        out.logs_sha256);
		else
			rm_body_run_failed(&body, j->run_id, p.computation ? p.computation : "",
			                   cls);
		if (detail_allowed(&p) && err.msg[0])
			detail_put(j->run_id, err.msg);
	}
	if (atomic_load(&d->jobs.stopping)) {
		/* Cancelled (or finished) during shutdown: nothing is recorded.
		 * The log still says run.requested without an outcome, so the
		 * next start queues the run again, as after a crash. */
		dmn__log(d, DMN_LOG_INFO,
		         "run %s (%s) in room %s: %s at shutdown after %llu ms; not recorded, it "
		         "runs again at the next start",
		         j->run_id, p.computation, r->hex,
		         rc == DCR_ECANCELED ? "cancelled" : "stopped",
		         (unsigned long long)out.duration_ms);
	} else if (dmn__append_enter(d)) {
		dcr_err e2;
		bool done = rc == 0;
		rc = dmn__submit_daemon(d, j->room, done ? RM_EV_RUN_COMPLETED : RM_EV_RUN_FAILED,
		                        &body, &e2);
		if (done && (rc == DCR_EINVALID || rc == DCR_EFORMAT || rc == DCR_ELIMIT)) {
			/* The rules refused the result (say a schema run.completed
			 * cannot carry): record the run as failed, with why. */
			out.state = RM_RUN_FAILED;
			dcr_err_set(&err, rc, "the result could not be recorded: %s", e2.msg);
			dcr_buf_reset(&body);
			cls = CMP_ERRCLASS_UNRECORDABLE;
			rm_body_run_failed(&body, j->run_id, p.computation, cls);
			if (detail_allowed(&p))
				detail_put(j->run_id, err.msg);
			rc = dmn__submit_daemon(d, j->room, RM_EV_RUN_FAILED, &body, &e2);
		}
		dmn__append_leave(d);
		if (rc < 0)
			dmn__log(d, DMN_LOG_ERROR, "run %s: recording the outcome: %s", j->run_id,
			         e2.msg);
		else {
			unsigned imgs = 0, hits = 0;
			for (k = 0; k < p.nn; k++)
				if (p.n[k].img) {
					imgs++;
					hits += p.n[k].img_hit;
				}
			dmn__log(d, DMN_LOG_INFO,
			         "run %s (%s) in room %s: %s in %llu ms (%u stored images, %u "
			         "already in memory)%s%s",
			         j->run_id, p.computation, r->hex,
			         out.state == RM_RUN_DONE ? "done" : "failed",
			         (unsigned long long)out.duration_ms, imgs, hits,
			         out.state == RM_RUN_DONE ? "" : ": ",
			         out.state == RM_RUN_DONE ? "" : cls);
		}
	}
	cmp_tmp_budget_enter(tmp_prev);
	dmn__quota_run_leave(d, by);
	active_leave(d, j->run_id);
done:
	cmp_result_release(&res);
	script_out_release(&sout);
	dcr_buf_release(&body);
	for (k = 0; k < nrun_inputs; k++)
		free(run_inputs[k].dataset);
	free(run_inputs);
	free(out.cols);
	cmp_cancel_free(p.cancel); /* after active_leave: nobody fires it now */
	plan_free(d, &p);
}

/* ---- development runs ------------------------------------------------------------ */

/* One input of a development run, copied out of the state. */
typedef struct dev_in {
	char *name;
	bool is_dataset, is_table;
	enum rm_compkind kind; /* computation */
	char *blob; /* the provision's file, or the computation run's result */
	char *file; /* dataset: the provisioned file name */
	char **drops; /* append dataset: its drops' blobs; blob is the union id */
	size_t ndrops;
	cmp_column *cols; /* a table's columns, or a result's schema */
	size_t ncols;
	dmn_image *img; /* a dataset's prepared table */
	dcr_buf image;  /* a computation result prepared in this run */
} dev_in;

/* Makes a SQL table of input x: a dataset's prepared table, or the result
 * of the computation run it pins (an SQL result's CSV, or a python/r
 * result's dataset.csv when it declares columns), prepared here. */
static int dev_table(dmn *d, const uint8_t room[ES_ROOM_ID_BYTES], dev_in *x, dcr_err *err)
{
	char image_id[DMN_BLOB_HEX_BYTES];
	dcr_archive a = {0};
	bool have_a = false;
	dcr_buf blob;
	dcr_mem src = {0};
	int rc;

	if (x->is_dataset) {
		bool hit;
		if (!x->is_table)
			return dcr_err_set(err, DCR_ESTATE,
			                   "not supported: %s is a file dataset; SQL reads tables "
			                   "only",
			                   x->name);
		rc = ensure_image(d, room, x->name, x->blob, x->drops, x->ndrops, false, image_id,
		                  err);
		if (rc == 0)
			rc = dmn__image_get(d, image_id, &x->img, &hit, err);
		return rc;
	}
	if (x->kind != RM_COMP_SQL && x->ncols == 0)
		return dcr_err_set(err, DCR_ESTATE,
		                   "not supported: computation %s declares no columns, so SQL "
		                   "cannot read its result",
		                   x->name);
	dcr_buf_init(&blob);
	rc = dmn__blob_read_all(d->blobs, x->blob, DMN_DEV_RESULT_INPUT_BYTES_MAX, &blob, err);
	if (rc == 0 && x->kind == RM_COMP_SQL) {
		src.p = blob.data;
		src.n = blob.len;
	} else if (rc == 0) {
		const dcr_archive_entry *e;
		rc = dcr_archive_read(blob.data, blob.len, &a, err);
		have_a = rc == 0;
		e = have_a ? dcr_archive_find(&a, "dataset.csv") : NULL;
		if (rc == 0 && !e)
			rc = dcr_err_set(err, DCR_EINTEGRITY, "no dataset.csv in the result");
		if (e) {
			src.p = e->data;
			src.n = e->len;
		}
	}
	if (rc == 0) {
		cmp_schema schema = {x->cols, x->ncols};
		rc = cmp_prepare(&schema, x->name, dcr_mem_read, &src, &x->image, err);
	}
	if (rc < 0)
		dcr_err_prefix(err, "the result of %s", x->name);
	if (have_a)
		dcr_archive_release(&a);
	dcr_buf_release(&blob);
	return rc;
}

/* An SQL development run: the query over the inputs as tables, without
 * the privacy filter (priv NULL, min_rows 0): the requester may read every
 * input in full already. The result is its CSV. */
static int dev_sql(dmn *d, const uint8_t room[ES_ROOM_ID_BYTES], const char *query, dev_in *xs,
                   size_t nx, cmp_cancel *cancel, dcr_buf *result, dcr_err *err)
{
	cmp_input *in = dcr_calloc(nx + 1, sizeof *in);
	cmp_sql_limits lim = {.time_ms = DMN_RUN_TIME_MS, .cancel = cancel};
	cmp_result res;
	int rc = 0;

	cmp_result_init(&res);
	for (size_t k = 0; rc == 0 && k < nx; k++) {
		rc = dev_table(d, room, &xs[k], err);
		in[k].name = xs[k].name;
		in[k].schema.cols = xs[k].cols;
		in[k].schema.ncols = xs[k].ncols;
		in[k].priv = NULL;
		if (xs[k].img) {
			in[k].image = dmn__image_data(xs[k].img, &in[k].image_n);
		} else if (xs[k].image.len) {
			in[k].image = xs[k].image.data;
			in[k].image_n = xs[k].image.len;
		}
	}
	if (rc == 0)
		rc = cmp_sql_run(query, in, nx, 0, &lim, &res, err);
	if (rc == 0)
		dcr_buf_append(result, res.csv.data, res.csv.len);
	cmp_result_release(&res);
	free(in);
	return rc;
}

/* A python or r development run through script_eval, the entry point of
 * every script run: the inputs as plan nodes in the /input layout of
 * docs/compute.md (a dataset as provisioned, an SQL result as
 * NAME/dataset.csv, a python/r result as its output files), the sandbox's
 * default limits. result gets the archive of the output files, logs (when
 * the script started) the logs archive. */
static int dev_script(dmn *d, const uint8_t room[ES_ROOM_ID_BYTES], enum rm_dev_lang lang,
                      const char *script, dev_in *xs, size_t nx,
                      cmp_cancel *cancel, dcr_buf *result, dcr_buf *logs, bool *has_logs,
                      dcr_err *err)
{
	plan p;
	script_out out;
	rm_limits lim;
	size_t *idx = dcr_calloc(nx + 1, sizeof *idx);
	int rc = 0;

	memset(&p, 0, sizeof p);
	memset(&lim, 0, sizeof lim);
	script_out_init(&out);
	p.nn = nx;
	p.n = dcr_calloc(nx + 1, sizeof *p.n);
	p.cancel = cancel;
	for (size_t k = 0; k < nx; k++) {
		plan_node *n = &p.n[k];
		dev_in *x = &xs[k];
		idx[k] = k;
		dcr_buf_init(&n->image);
		dcr_buf_init(&n->archive);
		n->name = dcr_strdup(x->name);
		n->ready = true;
		n->blob = dcr_strdup(x->blob);
		if (x->is_dataset) {
			n->is_dataset = true;
			n->is_table = x->is_table;
			n->file = x->file ? dcr_strdup(x->file) : NULL;
			if (x->ndrops && rc == 0) {
				/* append: the union's table, read back as one CSV */
				rc = dev_table(d, room, x, err);
				n->ndrops = x->ndrops;
				n->drops = dcr_calloc(x->ndrops + 1, sizeof *n->drops);
				for (size_t m = 0; m < x->ndrops; m++)
					n->drops[m] = dcr_strdup(x->drops[m]);
				n->img = x->img;
				x->img = NULL;
			}
		} else if (x->kind == RM_COMP_SQL) {
			/* an SQL result is CSV with a header row already: stream it
			 * as NAME/dataset.csv, like a table dataset */
			n->is_dataset = true;
			n->is_table = true;
		} else {
			n->kind = x->kind;
			n->script = dcr_strdup(""); /* a script node: its files */
			if (rc == 0)
				rc = dmn__blob_read_all(d->blobs, x->blob,
				                        DMN_DEV_RESULT_INPUT_BYTES_MAX, &n->archive, err);
			if (rc < 0)
				dcr_err_prefix(err, "the result of %s", x->name);
		}
		if (x->ncols) {
			n->ncols = x->ncols;
			n->cols = dcr_calloc(x->ncols, sizeof *n->cols);
			for (size_t c = 0; c < x->ncols; c++) {
				n->cols[c] = x->cols[c];
				n->cols[c].name = dcr_strdup(x->cols[c].name);
			}
		}
	}
	if (rc == 0)
		rc = script_eval(d, &p, lang == RM_DEV_PYTHON ? RM_COMP_PYTHON : RM_COMP_R, script,
		                 idx, nx, &lim, &out, err);
	*has_logs = out.started;
	if (out.started)
		dcr_buf_append(logs, out.logs.data, out.logs.len);
	if (rc == 0)
		dcr_buf_append(result, out.archive.data, out.archive.len);
	script_out_release(&out);
	plan_free(d, &p);
	free(idx);
	return rc;
}

/* A development run's cancel function: stops its SQL or its sandbox. */
static void cancel_dev(void *ctx)
{
	cmp_cancel_fire(ctx);
}

/* Runs a development run (docs/rules.md "Development runs"): the
 * requester's script over the inputs recorded at dev.requested, then
 * records dev.completed (the result's and the logs' hashes) or dev.failed
 * (a data-free class; the message is kept for the requester only). */
static void dev_job(dmn *d, dmn_job *j)
{
	dmn_room *r = dmn__room_find(d, j->room);
	cmp_cancel *cancel = NULL;
	dev_in *xs = NULL;
	size_t nx = 0, k;
	rm_dev out;
	rm_dev_input *rec = NULL;
	char *script = NULL, blob_id[DMN_BLOB_HEX_BYTES] = "", logs_id[DMN_BLOB_HEX_BYTES] = "";
	enum rm_dev_lang lang = RM_DEV_SQL;
	uint8_t by[32];
	dcr_buf body, result, logs;
	bool has_logs = false;
	dcr_err err;
	uint64_t t0 = dcr_mono_ms();
	int rc = 0;

	memset(&out, 0, sizeof out);
	dcr_buf_init(&body);
	dcr_buf_init(&result);
	dcr_buf_init(&logs);
	dcr_err_clear(&err);
	if (!r)
		goto done;
	dmn__mutex_lock(&r->mu);
	{
		const rm_dev *dv = rm_state_dev(&r->st, j->run_id);
		if (!dv || dv->state != RM_RUN_QUEUED) {
			dmn__mutex_unlock(&r->mu);
			goto done; /* finished meanwhile (duplicate job) */
		}
		lang = dv->lang;
		memcpy(by, dv->by, 32);
		script = dcr_strdup(dv->script);
		nx = dv->ninputs;
		xs = dcr_calloc(nx + 1, sizeof *xs);
		rec = dcr_calloc(nx + 1, sizeof *rec);
		for (k = 0; k < nx; k++) {
			const rm_dev_input *di = &dv->inputs[k];
			dev_in *x = &xs[k];
			rec[k].name = dcr_strdup(di->name);
			memcpy(rec[k].sha256, di->sha256, 32);
			x->name = dcr_strdup(di->name);
			x->is_dataset = di->is_dataset;
			x->blob = di->blob ? dcr_strdup(di->blob) : NULL;
			x->file = di->file ? dcr_strdup(di->file) : NULL;
			if (di->ndrop_blobs) {
				char u[DMN_UNION_ID_BYTES];
				dmn__union_id(di->sha256, u);
				free(x->blob);
				x->blob = dcr_strdup(u);
				x->drops = dcr_calloc(di->ndrop_blobs + 1, sizeof *x->drops);
				for (size_t m = 0; m < di->ndrop_blobs; m++)
					x->drops[x->ndrops++] = dcr_strdup(di->drop_blobs[m]);
			}
			dcr_buf_init(&x->image);
			if (di->is_dataset) {
				const rm_dataset *ds = rm_def_dataset(r->st.def, di->name);
				x->is_table = ds && ds->kind == RM_DS_TABLE;
				if (x->is_table)
					dmn__schema_of(ds, &x->cols, &x->ncols);
			} else {
				const rm_run *run = rm_state_run(&r->st, di->run);
				const rm_computation *c = rm_def_computation(r->st.def, di->name);
				DCR_ASSERT(run && run->state == RM_RUN_DONE && c);
				x->kind = c->kind;
				x->ncols = run->ncols;
				x->cols = dcr_calloc(run->ncols + 1, sizeof *x->cols);
				for (size_t c2 = 0; c2 < run->ncols; c2++) {
					x->cols[c2].name = dcr_strdup(run->cols[c2].name);
					x->cols[c2].type = run->cols[c2].type;
					x->cols[c2].nullable = true;
				}
			}
		}
	}
	dmn__mutex_unlock(&r->mu);
	cancel = cmp_cancel_new();
	if (!active_enter(d, j->run_id, cancel_dev, cancel))
		goto done; /* stopping: the run stays queued */
	dmn__log(d, DMN_LOG_INFO, "development run %s (%s) in room %s: started", j->run_id,
	         rm_dev_lang_name(lang), r->hex);
	if (lang == RM_DEV_SQL) {
		/* the requester's temp files count in its disk quota */
		cmp_tmp_budget *tmp_prev = cmp_tmp_budget_enter(dmn__quota_run_enter(d, by));
		rc = dev_sql(d, j->room, script, xs, nx, cancel, &result, &err);
		cmp_tmp_budget_enter(tmp_prev);
		dmn__quota_run_leave(d, by);
	} else
		rc = dev_script(d, j->room, lang, script, xs, nx, cancel, &result, &logs, &has_logs, &err);
	if (rc == 0)
		rc = dmn__blob_put(d->blobs, result.data, result.len, blob_id, out.result_sha256,
		                   &err);
	/* The logs are the requester's own: kept whatever the outcome. */
	dcr_sha256("", 0, out.logs_sha256);
	if (has_logs) {
		dcr_err e2;
		int lrc = dmn__blob_put(d->blobs, logs.data, logs.len, logs_id, out.logs_sha256, &e2);
		if (lrc < 0 && rc == 0) {
			rc = lrc;
			err = e2;
		}
		if (lrc < 0) {
			logs_id[0] = 0;
			dcr_sha256("", 0, out.logs_sha256);
		}
	}
	out.id = j->run_id;
	out.inputs = rec;
	out.ninputs = nx;
	out.duration_ms = dcr_mono_ms() - t0;
	out.logs_blob = logs_id;
	if (rc == 0) {
		out.result_blob = blob_id;
		out.result_bytes = result.len;
		rm_body_dev_completed(&body, &out);
	} else {
		/* Only the class goes into the event; the message (which may
		 * quote the requester's own data) is theirs (dev.status). */
		out.error = (char *)cmp_error_class(&err);
		rm_body_dev_failed(&body, &out);
		if (err.msg[0])
			detail_put(j->run_id, err.msg);
	}
	if (atomic_load(&d->jobs.stopping)) {
		dmn__log(d, DMN_LOG_INFO,
		         "development run %s in room %s: stopped at shutdown; it runs again at the "
		         "next start",
		         j->run_id, r->hex);
	} else if (dmn__append_enter(d)) {
		dcr_err e2;
		bool ok = rc == 0;
		rc = dmn__submit_daemon(d, j->room, ok ? RM_EV_DEV_COMPLETED : RM_EV_DEV_FAILED,
		                        &body, &e2);
		dmn__append_leave(d);
		if (rc < 0)
			dmn__log(d, DMN_LOG_ERROR, "development run %s: recording the outcome: %s",
			         j->run_id, e2.msg);
		else
			dmn__log(d, DMN_LOG_INFO, "development run %s in room %s: %s in %llu ms%s%s",
			         j->run_id, r->hex, ok ? "done" : "failed",
			         (unsigned long long)out.duration_ms, ok ? "" : ": ",
			         ok ? "" : out.error);
	}
	active_leave(d, j->run_id);
done:
	dcr_buf_release(&body);
	dcr_buf_release(&result);
	dcr_buf_release(&logs);
	for (k = 0; k < nx; k++) {
		free(xs[k].name);
		free(xs[k].blob);
		free(xs[k].file);
		strv_free(xs[k].drops, xs[k].ndrops);
		dmn__schema_free(xs[k].cols, xs[k].ncols);
		dmn__image_put(d, xs[k].img);
		dcr_buf_release(&xs[k].image);
		free(rec[k].name);
	}
	free(xs);
	free(rec);
	free(script);
	cmp_cancel_free(cancel);
}

/* ---- test all: scripts on empty inputs ------------------------------------------- */

bool dmn__script_test(dmn *d, const rm_def *def, size_t ci, dcr_buf *tests, dcr_buf *report)
{
	const rm_computation *c = &def->computations[ci];
	plan p;
	script_out out;
	size_t *in = NULL, k;
	dcr_err err;
	uint64_t rows = 0;
	bool ok = false;
	int rc = 0;

	memset(&p, 0, sizeof p);
	dcr_err_clear(&err);
	script_out_init(&out);
	p.nn = c->ninputs + 1; /* the inputs, then c itself */
	p.n = dcr_calloc(p.nn, sizeof *p.n);
	in = dcr_calloc(c->ninputs + 1, sizeof *in);
	for (k = 0; rc == 0 && k < c->ninputs; k++) {
		const rm_dataset *ds = rm_def_dataset(def, c->inputs[k]);
		const rm_computation *up = rm_def_computation(def, c->inputs[k]);
		plan_node *n = &p.n[k];
		in[k] = k;
		n->name = dcr_strdup(c->inputs[k]);
		dcr_buf_init(&n->image);
		dcr_buf_init(&n->archive);
		if (ds) {
			n->is_dataset = true;
			n->is_table = ds->kind == RM_DS_TABLE;
			if (n->is_table)
				dmn__schema_of(ds, &n->cols, &n->ncols);
		} else if (up->kind == RM_COMP_PYTHON || up->kind == RM_COMP_R) {
			n->kind = up->kind;
			n->script = dcr_strdup(up->script);
			if (tests[up - def->computations].len == 0)
				rc = dcr_err_set(&err, DCR_ESTATE, "upstream computation %s failed its test",
				                 up->name);
			else
				dcr_buf_append(&n->archive, tests[up - def->computations].data,
				               tests[up - def->computations].len);
		} else if (!up->result_cols) {
			rc = dcr_err_set(&err, DCR_ESTATE, "upstream computation %s failed its test",
			                 up->name);
		} else { /* an sql (or synthetic) result: header only */
			n->kind = up->kind;
			n->ncols = up->nresult_cols;
			n->cols = dcr_calloc(up->nresult_cols + 1, sizeof *n->cols);
			for (size_t j = 0; j < up->nresult_cols; j++) {
				n->cols[j] = up->result_cols[j];
				n->cols[j].name = dcr_strdup(up->result_cols[j].name);
			}
		}
		n->ready = true;
	}
	{
		plan_node *self = &p.n[c->ninputs];
		self->name = dcr_strdup(c->name);
		self->kind = c->kind;
		self->script = dcr_strdup(c->script);
		dcr_buf_init(&self->image);
		dcr_buf_init(&self->archive);
		self->ndecl = c->ncolumns;
		self->decl = dcr_calloc(c->ncolumns + 1, sizeof *self->decl);
		for (k = 0; k < c->ncolumns; k++) {
			self->decl[k].name = dcr_strdup(c->columns[k].name);
			self->decl[k].type = c->columns[k].type;
			self->decl[k].format = c->columns[k].format;
			self->decl[k].nullable = c->columns[k].nullable;
		}
	}
	if (rc == 0)
		rc = script_eval(d, &p, c->kind, c->script, in, c->ninputs, &c->limits, &out, &err);
	if (rc == 0 && c->ncolumns) {
		dcr_archive a;
		rc = dcr_archive_read(out.archive.data, out.archive.len, &a, &err);
		if (rc == 0) {
			rc = script_table(&p.n[c->ninputs], &a, &rows, &err);
			dcr_archive_release(&a);
		}
	}
	if (rc == 0) {
		dcr_buf_append_str(report, "ok\n");
		for (k = 0; k < out.sb.nfiles; k++)
			dcr_buf_printf(report, "  file %s (%zu bytes)\n", out.sb.files[k].name,
			               out.sb.files[k].len);
		for (k = 0; k < c->ncolumns; k++)
			dcr_buf_printf(report, "  %s %s\n", c->columns[k].name,
			               cmp_type_name(c->columns[k].type));
		dcr_buf_reset(&tests[ci]);
		dcr_buf_append(&tests[ci], out.archive.data, out.archive.len);
		ok = true;
	} else {
		/* empty inputs hold no data: the whole message, and the end
		 * of stderr, help the author */
		dcr_buf_printf(report, "error: %s\n", err.msg);
		if (out.sb.err_log.len) {
			size_t n = out.sb.err_log.len, from = n > 2000 ? n - 2000 : 0;
			dcr_buf_append_str(report, "  stderr:\n");
			for (size_t i = from; i < n;) {
				const uint8_t *nl = memchr(out.sb.err_log.data + i, '\n', n - i);
				size_t end = nl ? (size_t)(nl - out.sb.err_log.data) : n;
				dcr_buf_printf(report, "    %.*s\n", (int)(end - i),
				               (const char *)out.sb.err_log.data + i);
				i = end + 1;
			}
		}
	}
	script_out_release(&out);
	free(in);
	plan_free(d, &p);
	return ok;
}

/* ---- garbage collection of blobs ------------------------------------------------ */

typedef struct keep_set {
	char (*ids)[DMN_BLOB_HEX_BYTES];
	size_t n, cap;
} keep_set;

static void keep_add(keep_set *k, const char *id)
{
	if (!id || !dmn__blob_id_valid(id))
		return;
	if (k->n == k->cap) {
		k->cap = k->cap ? 2 * k->cap : 64;
		k->ids = dcr_realloc(k->ids, k->cap * sizeof *k->ids);
	}
	memcpy(k->ids[k->n++], id, DMN_BLOB_HEX_BYTES);
}

/* Keeps the blob named by es_meta key (a blob id value), if any. */
static void keep_meta(dmn *d, keep_set *k, const char *key)
{
	dcr_buf v;
	char id[DMN_BLOB_HEX_BYTES];

	dcr_buf_init(&v);
	if (es_meta_get(d->store, key, &v) == 0 && v.len == DMN_BLOB_HEX_BYTES - 1) {
		memcpy(id, v.data, v.len);
		id[v.len] = 0;
		keep_add(k, id);
	}
	dcr_buf_release(&v);
}

/* An append dataset's drops (blob, statistics) and its union's table. */
static void keep_drops(dmn *d, keep_set *k, const rm_provision *p)
{
	char u[DMN_UNION_ID_BYTES], *key;
	for (size_t i = 0; i < p->ndrops; i++) {
		keep_add(k, p->drops[i].blob);
		key = dcr_asprintf("stats:%s", p->drops[i].blob);
		keep_meta(d, k, key);
		free(key);
	}
	dmn__union_id(p->sha256, u);
	key = dcr_asprintf("image:%s", u);
	keep_meta(d, k, key);
	free(key);
	key = dcr_asprintf("stats:%s", u);
	keep_meta(d, k, key);
	free(key);
}

/* The cached result tables a run would use now: the cache keys of every
 * computation under the room's current provisions. */
static void keep_cache(dmn *d, keep_set *k, const rm_state *st)
{
	size_t c, i;

	for (c = 0; st->def && c < st->def->ncomputations; c++) {
		rm_run fake;
		plan p;
		memset(&fake, 0, sizeof fake);
		fake.computation = st->def->computations[c].name;
		if (plan_build(st, &fake, &p, NULL) == 0) {
			for (i = 0; i < p.norder; i++) {
				plan_node *n = &p.n[p.order[i]];
				char hex[65], *key;
				dcr_buf v;
				dcr_mp_doc *doc = NULL;
				const char *img;
				size_t img_n;
				if (n->script)
					script_cache_key(&p, n, n->hash);
				else
					cache_key(&p, n, n->hash);
				dcr_hex_encode(n->hash, 32, hex);
				key = dcr_asprintf("cache:%s", hex);
				dcr_buf_init(&v);
				if (es_meta_get(d->store, key, &v) == 0 &&
				    dcr_mp_parse(v.data, v.len, &dcr_mp_limits_default, &doc,
				                 NULL) == 0 &&
				    dcr_mp_get_str(dcr_mp_root(doc), "image", &img, &img_n, NULL) ==
				        0 &&
				    img_n == DMN_BLOB_HEX_BYTES - 1) {
					char id[DMN_BLOB_HEX_BYTES];
					memcpy(id, img, img_n);
					id[img_n] = 0;
					keep_add(k, id);
				}
				/* a script's result: its archive (and its table, above) */
				if (doc &&
				    dcr_mp_get_str(dcr_mp_root(doc), "archive", &img, &img_n, NULL) ==
				        0 &&
				    img_n == DMN_BLOB_HEX_BYTES - 1) {
					char id[DMN_BLOB_HEX_BYTES];
					memcpy(id, img, img_n);
					id[img_n] = 0;
					keep_add(k, id);
				}
				dcr_mp_doc_free(doc);
				dcr_buf_release(&v);
				free(key);
			}
		}
		plan_free(d, &p);
	}
}

/* A development run's result and logs, and the inputs of a queued one. */
static void keep_devs(dmn *d, keep_set *k, const rm_state *st)
{
	for (size_t i = 0; i < st->ndevs; i++) {
		const rm_dev *dv = &st->devs[i];
		keep_add(k, dv->result_blob);
		keep_add(k, dv->logs_blob);
		for (size_t x = 0; dv->state == RM_RUN_QUEUED && x < dv->ninputs; x++) {
			char *key;
			keep_add(k, dv->inputs[x].blob);
			for (size_t m = 0; m < dv->inputs[x].ndrop_blobs; m++)
				keep_add(k, dv->inputs[x].drop_blobs[m]);
			if (!dv->inputs[x].is_dataset || !dv->inputs[x].blob ||
			    !dmn__blob_id_valid(dv->inputs[x].blob))
				continue;
			key = dcr_asprintf("image:%s", dv->inputs[x].blob);
			keep_meta(d, k, key);
			free(key);
		}
	}
}

static int id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DMN_BLOB_HEX_BYTES - 1);
}

struct gc_ctx {
	dmn *d;
	keep_set *keep;
	uint64_t removed, bytes, kept;
};

static int gc_one(void *ctx, const char *id, uint64_t file_bytes)
{
	struct gc_ctx *g = ctx;

	if (g->keep->n && bsearch(id, g->keep->ids, g->keep->n, sizeof *g->keep->ids, id_cmp)) {
		g->kept++;
		return 0;
	}
	if (dmn__blob_remove(g->d->blobs, id) == 0) {
		g->removed++;
		g->bytes += file_bytes;
	}
	return 0;
}

void dmn__blobs_referenced(dmn *d, char (**ids_out)[DMN_BLOB_HEX_BYTES], size_t *n_out)
{
	keep_set keep = {0};
	dmn_room **rooms;
	size_t n, i, j, w;

	rooms = dmn__rooms_list(d, &n);
	for (i = 0; i < n; i++) {
		dmn_room *r = rooms[i];
		dmn__mutex_lock(&r->mu);
		for (j = 0; j < r->st.nprovisions; j++) {
			const rm_provision *p = &r->st.provisions[j];
			char *key;
			if (p->present && p->ndrops)
				keep_drops(d, &keep, p);
			if (!p->present || !p->blob || !dmn__blob_id_valid(p->blob))
				continue;
			keep_add(&keep, p->blob);
			key = dcr_asprintf("stats:%s", p->blob);
			keep_meta(d, &keep, key);
			free(key);
			key = dcr_asprintf("image:%s", p->blob);
			keep_meta(d, &keep, key);
			free(key);
		}
		for (j = 0; j < r->st.nruns; j++) {
			const rm_run *run = &r->st.runs[j];
			keep_add(&keep, run->result_blob);
			keep_add(&keep, run->logs_blob);
			/* a queued run reads the data provisioned when it was
			 * requested, even if that was replaced since */
			for (size_t k = 0; run->state == RM_RUN_QUEUED && k < run->ninputs; k++) {
				char *key, u[DMN_UNION_ID_BYTES];
				for (size_t m = 0; m < run->inputs[k].ndrop_blobs; m++)
					keep_add(&keep, run->inputs[k].drop_blobs[m]);
				if (run->inputs[k].present && run->inputs[k].ndrop_blobs) {
					dmn__union_id(run->inputs[k].sha256, u);
					key = dcr_asprintf("image:%s", u);
					keep_meta(d, &keep, key);
					free(key);
				}
				if (!run->inputs[k].blob || !dmn__blob_id_valid(run->inputs[k].blob))
					continue;
				keep_add(&keep, run->inputs[k].blob);
				key = dcr_asprintf("image:%s", run->inputs[k].blob);
				keep_meta(d, &keep, key);
				free(key);
			}
		}
		keep_cache(d, &keep, &r->st);
		keep_devs(d, &keep, &r->st);
		dmn__mutex_unlock(&r->mu);
	}
	free(rooms);
	if (keep.n)
		qsort(keep.ids, keep.n, sizeof *keep.ids, id_cmp);
	for (i = w = 0; i < keep.n; i++) /* unique */
		if (w == 0 || id_cmp(keep.ids[w - 1], keep.ids[i]) != 0)
			memmove(keep.ids[w++], keep.ids[i], DMN_BLOB_HEX_BYTES);
	*ids_out = keep.ids;
	*n_out = w;
}

int dmn__blobs_gc(dmn *d, dcr_err *err)
{
	keep_set keep = {0};
	struct gc_ctx g = {d, &keep, 0, 0, 0};
	int rc;

	dmn__blobs_referenced(d, &keep.ids, &keep.n);
	rc = dmn__blobs_each(d->blobs, gc_one, &g);
	free(keep.ids);
	if (rc < 0)
		return dcr_err_set(err, rc, "listing blobs: %s", dcr_strerror(rc));
	if (g.removed)
		dmn__log(d, DMN_LOG_INFO, "removed %llu unreferenced blobs (%llu bytes); %llu kept",
		         (unsigned long long)g.removed, (unsigned long long)g.bytes,
		         (unsigned long long)g.kept);
	return 0;
}

void dmn__blobs_drop_withdrawn(dmn *d, const char *data_blob)
{
	static const char *const derived[] = {"stats", "image"};
	unsigned removed = 0;

	dmn__rows_drop(d, data_blob); /* rows held since its upload */
	for (size_t i = 0; i < sizeof derived / sizeof derived[0]; i++) {
		char *key = dcr_asprintf("%s:%s", derived[i], data_blob);
		dcr_buf v;
		dcr_buf_init(&v);
		if (es_meta_get(d->store, key, &v) == 0 && v.len == DMN_BLOB_HEX_BYTES - 1) {
			char id[DMN_BLOB_HEX_BYTES];
			memcpy(id, v.data, v.len);
			id[v.len] = 0;
			if (dmn__blob_remove(d->blobs, id) == 0)
				removed++;
			es_meta_del(d->store, key);
		}
		dcr_buf_release(&v);
		free(key);
	}
	if (dmn__blob_remove(d->blobs, data_blob) == 0)
		removed++;
	if (removed)
		dmn__log(d, DMN_LOG_INFO, "removed %u blobs of withdrawn data %s (file, statistics, "
		                          "prepared table)",
		         removed, data_blob);
}

/* ---- workers ---------------------------------------------------------------------- */

static void *worker(void *arg)
{
	dmn *d = arg;

	dmn__mutex_lock(&d->jobs.mu);
	for (;;) {
		dmn_job *j = NULL;
		while (!atomic_load(&d->jobs.stopping) && !(j = take(d)))
			dmn__cond_wait(&d->jobs.cv, &d->jobs.mu);
		if (atomic_load(&d->jobs.stopping)) {
			if (j) /* taken, not run: the next start queues it again */
				finish(d, j);
			job_free(j);
			break;
		}
		dmn__mutex_unlock(&d->jobs.mu);
		if (j->kind == JOB_IMAGE)
			image_job(d, j);
		else if (j->kind == JOB_DEV)
			dev_job(d, j);
		else
			run_job(d, j);
		dmn__mutex_lock(&d->jobs.mu);
		finish(d, j);
		job_free(j);
	}
	dmn__mutex_unlock(&d->jobs.mu);
	return NULL;
}

void dmn__jobs_init(dmn *d)
{
	const dmn_options *o = &d->opt;

	dmn__mutex_init(&d->jobs.mu);
	atomic_init(&d->jobs.stopping, false);
	atomic_init(&d->jobs.image_waiting_runs, 0);
	pthread_cond_init(&d->jobs.cv, NULL);
	pthread_cond_init(&d->jobs.append_cv, NULL);
	dmn__mutex_init(&d->jobs.image_mu);
	pthread_cond_init(&d->jobs.image_cv, NULL);
	d->jobs.build_budget = o->build_memory_bytes ? o->build_memory_bytes
	                                             : dmn_default_build_bytes();
	/* The options (checked by dcrd's main): a running cap left at its
	 * default stays below the worker count, so another room and another
	 * key always find a worker. */
	d->jobs.workers_n = o->job_workers ? o->job_workers : DMN_JOB_WORKERS;
	d->jobs.room_running_max = o->room_running_max ? o->room_running_max
	                                               : DMN_ROOM_RUNNING_MAX;
	d->jobs.key_running_max = o->key_running_max ? o->key_running_max : DMN_KEY_RUNNING_MAX;
	if (!o->room_running_max && d->jobs.room_running_max >= d->jobs.workers_n)
		d->jobs.room_running_max = d->jobs.workers_n > 1 ? d->jobs.workers_n - 1 : 1;
	if (!o->key_running_max && d->jobs.key_running_max >= d->jobs.workers_n)
		d->jobs.key_running_max = d->jobs.workers_n > 1 ? d->jobs.workers_n - 1 : 1;
	d->jobs.room_queued_max = o->room_queued_runs_max ? o->room_queued_runs_max
	                                                  : DMN_ROOM_QUEUED_RUNS_MAX;
	dmn__rooms_on_durable(d, on_durable, d);
}

void dmn__jobs_release(dmn *d)
{
	DCR_ASSERT(d->jobs.nworkers == 0 && d->jobs.nactive == 0);
	/* Jobs never taken (stopped, or the start failed after the replay
	 * queued them): the next start queues them again. */
	for (size_t i = 0; i < d->jobs.nq; i++) {
		dmn_jobq *q = d->jobs.q[i];
		while (q->head) {
			dmn_job *j = q->head;
			q->head = j->next;
			job_free(j);
		}
		free(q);
	}
	free(d->jobs.q);
	d->jobs.q = NULL;
	d->jobs.nq = d->jobs.nqueued = d->jobs.nruns = 0;
	free(d->jobs.keys);
	d->jobs.keys = NULL;
	d->jobs.nkeys = 0;
	free(d->jobs.workers);
	d->jobs.workers = NULL;
	free(d->jobs.active);
	d->jobs.active = NULL;
	dmn__mutex_destroy(&d->jobs.mu);
	pthread_cond_destroy(&d->jobs.cv);
	pthread_cond_destroy(&d->jobs.append_cv);
	dmn__mutex_destroy(&d->jobs.image_mu);
	pthread_cond_destroy(&d->jobs.image_cv);
	DCR_ASSERT(d->jobs.nimage_building == 0);
	free(d->jobs.image_building);
	d->jobs.image_building = NULL;
}

int dmn__jobs_start(dmn *d, dcr_err *err)
{
	size_t i;

	d->jobs.workers = dcr_calloc(d->jobs.workers_n, sizeof *d->jobs.workers);
	for (i = 0; i < d->jobs.workers_n; i++) {
		int rc = pthread_create(&d->jobs.workers[i], NULL, worker, d);
		if (rc != 0)
			return dcr_err_set(err, -rc, "starting a worker thread: %s", strerror(rc));
		d->jobs.nworkers++;
	}
	dmn__log(d, DMN_LOG_INFO,
	         "%u job workers; per room at most %u running and %u runs queued, per key "
	         "at most %u running; memory: image cache %llu MiB, table builds %llu MiB, "
	         "rows held from uploads %llu MiB",
	         d->jobs.workers_n, d->jobs.room_running_max, d->jobs.room_queued_max,
	         d->jobs.key_running_max, (unsigned long long)(d->imgc.budget >> 20),
	         (unsigned long long)(d->jobs.build_budget >> 20),
	         (unsigned long long)(d->up.rows_budget >> 20));
	return 0;
}

void dmn__jobs_stop(dmn *d)
{
	size_t i;

	dmn__mutex_lock(&d->jobs.mu);
	atomic_store(&d->jobs.stopping, true);
	pthread_cond_broadcast(&d->jobs.cv);
	/* Stop what is computing: its outcome will not be recorded, and the
	 * run is queued again at the next start. */
	for (i = 0; i < d->jobs.nactive; i++)
		if (d->jobs.active[i].cancel)
			d->jobs.active[i].cancel(d->jobs.active[i].ctx);
	if (d->jobs.nactive)
		dmn__log(d, DMN_LOG_INFO, "shutting down: cancelled %zu running computations",
		         d->jobs.nactive);
	while (d->jobs.appends_active > 0)
		dmn__cond_wait(&d->jobs.append_cv, &d->jobs.mu);
	dmn__mutex_unlock(&d->jobs.mu);
	/* Every worker returns promptly now (a table build stops at its next
	 * read, a SQL run within 1000 VM steps): join them all, so nothing
	 * outlives the store and OpenSSL state freed after this. */
	for (i = 0; i < d->jobs.nworkers; i++)
		pthread_join(d->jobs.workers[i], NULL);
	d->jobs.nworkers = 0;
}
