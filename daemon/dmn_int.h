/* dmn_int.h: the pieces of dcrd shared between its source files.
 *
 * Room states live in memory (rooms.c), one mutex each; every append to a
 * room happens under that mutex after rm_apply accepted the event, so the
 * in-memory state and the log never disagree (if an append fails, the room
 * is rebuilt from the log). Only this module includes uv.h, and only
 * server.c does.
 *
 * Parts, their locks and the fields each lock guards:
 *
 *   part              lock               guards
 *   rooms (rooms.c)   rooms.lock (rw)    rooms.list, n, cap (rooms are never removed)
 *   a room            room->mu           st, inflight, durable, broken; the order of
 *                                        the room's appends
 *   uploads (ops.c)   up.mu              up.done, up.next_id   (up.open: atomic)
 *                     up.rows_mu (leaf)  up.rows   (up.rows_bytes: atomic)
 *   jobs (jobs.c)     jobs.mu            jobs.q, nq, rr, nqueued, nruns, running, storing,
 *                                        keys, nkeys, appends_active, active, nactive
 *                                        (jobs.stopping: atomic, set under mu)
 *                     jobs.image_mu      jobs.image_building: one build per table at a
 *                                        time, tables in parallel within
 *                                        jobs.image_build_bytes; held briefly, no
 *                                        other lock taken under it
 *                                        (jobs.image_waiting_runs: atomic)
 *   image cache       imgc.mu            imgc.list, bytes, tick and each entry's refs
 *   waiters           wait.mu            wait.appends, n, closing
 *   blobs (blob.c)    its own mu         the helpers' queue and each writer's job
 *   quota (quota.c)   quota.mu           quota.ents, n, cap, budgets, nbudgets, stop
 *   store             eventstore's own   (thread-safe, eventstore.h)
 *   keys in rooms     members.mu (leaf)  server.c's set of keys in some room
 *   set at start      none               opt, dir, key, pub, store, blobs,
 *                                        imgc.budget, rooms.hooks (read-only after)
 *
 * Lock order: a thread holding a lock takes only locks further down:
 *
 *   jobs.image_mu -> room->mu -> rooms.lock -> up.mu -> jobs.mu -> imgc.mu
 *   -> wait.mu -> adm->mu -> quota.mu -> leaves (blobs' mu, a cmp_cancel's mu,
 *   the store's locks, members.mu)
 *
 * (rooms.lock is taken after room->mu only to insert a new room, which
 * nobody else can see yet; dmn__room_find takes and drops it alone.) Never
 * two rooms' mutexes at once. "Caller holds X" is DMN_ASSERT_HELD(X).
 *
 * Threads, and what each may call:
 *   main (= the libuv loop, server.c): start-up (replay, GC, start the
 *     workers), then sockets, framing and authentication, never blocking;
 *     at shutdown it stops the jobs and joins every thread below.
 *   libuv's pool (ops.c): one request at a time per connection (so a
 *     connection's session needs no lock): anything in this header but the
 *     start/stop functions.
 *   job workers (jobs.c, --job-workers, 4 by default): prepared tables,
 *     runs and development runs, taken from a queue per room in turn
 *     (docs/daemon.md, "Scheduling"); each background
 *     build runs on a short-lived niced thread the worker joins.
 *   blob helpers (blob.c, 2): dmn__blob_write_start's work; joined by
 *     dmn__blobs_close.
 *   upload reaper (quota.c, 1): expires unsigned uploads; started by
 *     dmn__quota_start, joined by dmn__quota_stop (main).
 *   ingest validators (compute, one per open table upload): joined by the
 *     pool thread that ends or releases the upload. */
#ifndef DCR_DMN_INT_H
#define DCR_DMN_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "daemon.h"
#include "../eventstore/eventstore.h"
#include "../compute/compute.h"
#include "../room/room.h"
#include "../proto/proto.h"

#define DMN_BLOB_ID_BYTES  16
#define DMN_BLOB_HEX_BYTES 33

/* ---- blob store (blob.c, format in docs/daemon.md) ---------------------- */

typedef struct dmn_blobs dmn_blobs;
typedef struct dmn_blob_writer dmn_blob_writer;
typedef struct dmn_blob_reader dmn_blob_reader;

/* dir is the data directory; blobs live in dir/blobs, temp files in
 * dir/tmp (emptied here: leftovers of a crash). */
int dmn__blobs_open(dmn_blobs **out, const char *dir, const uint8_t master[DCR_AES_KEY_BYTES],
                    dcr_err *err);
void dmn__blobs_close(dmn_blobs *b);

/* Streaming write to a temp file; commit encrypts the tail, fsyncs and
 * renames into place, giving the new blob's id, the SHA-256 of the
 * plaintext and its size. abort (also after a failed write) removes the
 * temp file. Both free w. */
int dmn__blob_create(dmn_blobs *b, dmn_blob_writer **out, dcr_err *err);
int dmn__blob_write(dmn_blob_writer *w, const void *p, size_t n, dcr_err *err);
/* dmn__blob_write on a helper thread: p must stay valid and untouched
 * until dmn__blob_write_wait, which returns its result. Call the wait
 * before any other use of the writer. */
void dmn__blob_write_start(dmn_blob_writer *w, const void *p, size_t n);
int dmn__blob_write_wait(dmn_blob_writer *w, dcr_err *err);
int dmn__blob_commit(dmn_blob_writer *w, char id[DMN_BLOB_HEX_BYTES], uint8_t sha[32],
                     uint64_t *bytes, dcr_err *err);
/* Before the first write: the blob's SHA-256 is not wanted (derived blobs
 * whose hash nothing records, such as prepared tables: each chunk's GCM
 * tag still authenticates it); dmn__blob_commit then takes sha NULL. */
void dmn__blob_no_hash(dmn_blob_writer *w);
/* The id the blob will have once committed (known from its creation). */
void dmn__blob_writer_id(const dmn_blob_writer *w, char id[DMN_BLOB_HEX_BYTES]);
void dmn__blob_abort(dmn_blob_writer *w);
int dmn__blob_put(dmn_blobs *b, const void *p, size_t n, char id[DMN_BLOB_HEX_BYTES],
                  uint8_t sha[32], dcr_err *err);

/* Random access reads; every chunk touched is authenticated. */
int dmn__blob_open(dmn_blobs *b, const char *id, dmn_blob_reader **out, dcr_err *err);
uint64_t dmn__blob_size(const dmn_blob_reader *r);
/* Reads up to n bytes at off; *got is 0 at the end. */
int dmn__blob_pread(dmn_blob_reader *r, uint64_t off, void *buf, size_t n, size_t *got,
                    dcr_err *err);
void dmn__blob_close(dmn_blob_reader *r);
/* Whole blob into out (appends), refusing blobs larger than max. */
int dmn__blob_read_all(dmn_blobs *b, const char *id, size_t max, dcr_buf *out, dcr_err *err);
bool dmn__blob_id_valid(const char *id);
/* Calls fn for every committed blob (id, file size); stops early if fn
 * returns non-zero. Removing a blob deletes its file. */
int dmn__blobs_each(dmn_blobs *b, int (*fn)(void *ctx, const char *id, uint64_t file_bytes),
                    void *ctx);
int dmn__blob_remove(dmn_blobs *b, const char *id);
/* While a hold is taken (a backup in progress, admin.c), dmn__blob_remove
 * only notes the id; the last unhold removes them. So every blob that
 * existed when a hold was taken stays readable until it is released. */
void dmn__blobs_hold(dmn_blobs *b);
void dmn__blobs_unhold(dmn_blobs *b);
/* The file of blob id (heap; it may not exist). */
char *dmn__blob_path(const dmn_blobs *b, const char *id);

/* ---- locks (lock.c) ------------------------------------------------------ */

/* A mutex that knows its holder: "caller holds X" is DMN_ASSERT_HELD(X),
 * on in every build. Relocking a held mutex or unlocking one not held
 * fails an assertion too. */
typedef struct dmn_mutex {
	pthread_mutex_t mu;
	_Atomic uintptr_t owner; /* the holder's tag (lock.c), 0 when free */
} dmn_mutex;

void dmn__mutex_init(dmn_mutex *m);
void dmn__mutex_destroy(dmn_mutex *m);
void dmn__mutex_lock(dmn_mutex *m);
void dmn__mutex_unlock(dmn_mutex *m);
/* Whether the calling thread holds m. */
bool dmn__mutex_held(const dmn_mutex *m);
void dmn__cond_wait(pthread_cond_t *cv, dmn_mutex *m);
int dmn__cond_timedwait(pthread_cond_t *cv, dmn_mutex *m, const struct timespec *abstime);
#define DMN_ASSERT_HELD(m) DCR_ASSERT(dmn__mutex_held(m))

/* ---- the daemon --------------------------------------------------------- */

typedef struct dmn_room {
	uint8_t id[ES_ROOM_ID_BYTES];
	char hex[ES_ROOM_HEX_BYTES];
	dmn_mutex mu;       /* guards st, inflight, durable, broken and the order of the appends */
	rm_state st;        /* may include appends in flight (see inflight) */
	unsigned inflight;  /* appends queued, not yet durable */
	uint64_t durable;   /* events [0, durable) are durable in the log */
	bool broken;        /* an append failed: rebuild once inflight is 0 */
} dmn_room;

/* A finished upload waiting for its dataset.provisioned event. */
typedef struct dmn_done_upload {
	struct dmn_done_upload *next;
	uint8_t actor[32];
	uint8_t room[ES_ROOM_ID_BYTES];
	rm_provision p; /* dataset, blob, file heap-owned */
	uint64_t done_ms;
} dmn_done_upload;
/* Frees u and what it owns (rooms.c); NULL is fine. */
void dmn__done_upload_free(dmn_done_upload *u);

typedef struct dmn_job dmn_job;

/* The daemon's parts. Each owns its fields and its lock; the table in
 * "Locks" above dmn__log says which lock guards which field. */

/* Called once an event is durable, under the room's mutex (read r->st,
 * take no room's mutex, do not block); ev NULL: the room was replayed at
 * start (once per room, before any request). How jobs learn of work
 * without rooms.c calling jobs.c. */
typedef void (*dmn_durable_fn)(void *ctx, dmn_room *r, const es_event *ev, uint64_t seq);
#define DMN_DURABLE_HOOKS_MAX 4

/* Rooms (rooms.c): the registry; each room's own fields are under its mu. */
typedef struct dmn_rooms {
	pthread_rwlock_t lock; /* guards list, n, cap */
	dmn_room **list;       /* rooms are never removed */
	size_t n, cap;
	struct {
		dmn_durable_fn fn;
		void *ctx;
	} hooks[DMN_DURABLE_HOOKS_MAX]; /* set before the load, read-only after */
	size_t nhooks;
} dmn_rooms;

/* Uploads finished and waiting for their event (ops.c, rooms.c). */
typedef struct dmn_uploads {
	dmn_mutex mu;    /* guards done, next_id */
	dmn_done_upload *done; /* newest first */
	uint64_t next_id;
	/* Background table builds pause while uploads are open (uploads
	 * first), unless a run waits for a table. */
	atomic_uint open;
	/* Rows validated at upload, held until their prepared table's build
	 * takes them (dmn__rows_*, rooms.c): the list under rows_mu (a leaf
	 * lock), the bytes of every upload's rows (held or still being
	 * validated) in rows_bytes, within rows_budget (--upload-rows-mb, set
	 * at start; 0: none held). */
	dmn_mutex rows_mu;
	struct dmn_held_rows *rows;
	atomic_uint_fast64_t rows_bytes;
	uint64_t rows_budget;
} dmn_uploads;

/* Stops a job's computation from another thread (a SQL run: cmp_cancel;
 * a sandboxed script, later: killing its process group). Called under
 * jobs.mu: it must not block or take another daemon lock. */
typedef void (*dmn_cancel_fn)(void *ctx);

/* One room's jobs (jobs.c): its FIFO, and what it has running. Created at
 * its first job, kept (rooms are never removed). */
typedef struct dmn_jobq {
	uint8_t room[ES_ROOM_ID_BYTES];
	dmn_job *head, *tail;
	size_t queued;    /* jobs in the FIFO */
	size_t runs;      /* run and development jobs queued or running: the
	                     per-room cap on queued runs counts these */
	unsigned running; /* jobs of this room being computed */
	unsigned storing; /* its table builds past ready, storing their blob:
	                     busy workers, not counted against the room's cap */
	uint8_t last_key[32]; /* requester of the last job taken (turns) */
} dmn_jobq;

/* Background jobs (jobs.c). */
typedef struct dmn_jobs {
	dmn_mutex mu; /* guards q, nq, rr, nqueued, nruns, running, storing, keys,
	                 nkeys, appends_active, active, nactive */
	pthread_cond_t cv;        /* a job was queued or finished, or stopping */
	pthread_cond_t append_cv; /* appends_active went down */
	dmn_jobq **q;   /* a queue per room that ever had a job */
	size_t nq, rr;  /* rr: the queue whose turn is next */
	size_t nqueued; /* jobs in all the FIFOs */
	size_t nruns;   /* run and development jobs queued or running */
	struct dmn_keyrun {
		uint8_t key[32];
		unsigned running;
	} *keys;        /* requesters with jobs being computed */
	size_t nkeys;
	atomic_bool stopping; /* set once, under mu (waiters on cv see it) */
	unsigned appends_active;
	struct dmn_active {
		char *run_id;
		dmn_cancel_fn cancel;
		void *ctx;
	} *active; /* runs being computed, with how to stop each */
	size_t nactive;
	pthread_t *workers; /* started and joined by the main thread only */
	size_t nworkers;
	/* set at start: --job-workers, --max-running-per-room,
	 * --max-running-per-key, --max-queued-runs (defaults resolved) */
	unsigned workers_n, room_running_max, key_running_max, room_queued_max;
	dmn_mutex image_mu;       /* guards image_building */
	pthread_cond_t image_cv;  /* a build ended, or its image is ready */
	struct dmn_building {
		char *key; /* "image:<blob>" */
		/* the image's blob id once the image is in the cache, before
		 * its blob is stored: runs use it from there ("" before) */
		char ready[DMN_BLOB_HEX_BYTES];
	} *image_building; /* tables being built */
	size_t nimage_building;
	uint64_t image_build_bytes; /* memory estimates of the builds running */
	uint64_t build_budget;      /* their sum at most (set at start) */
	atomic_uint image_waiting_runs;
} dmn_jobs;

/* Decrypted images shared by runs (imgcache.c). */
typedef struct dmn_imgcache {
	dmn_mutex mu;     /* guards list, bytes, tick */
	struct dmn_image *list; /* most recent anywhere */
	size_t bytes;
	uint64_t budget; /* bytes; 0: keep nothing (set at start) */
	uint64_t tick;
} dmn_imgcache;

/* Long polls (`wait`): woken by every append and by shutdown (rooms.c
 * wakes, ops.c waits). */
typedef struct dmn_waiters {
	dmn_mutex mu; /* guards appends, n, closing */
	pthread_cond_t cv;
	uint64_t appends; /* total appended since start */
	unsigned n;
	bool closing; /* shutdown began: waits return at once */
} dmn_waiters;

/* Disk quotas (quota.c): bytes of uploads in flight per key and room,
 * the per-key budgets of runs' temporary files, the upload reaper. */
typedef struct dmn_quota {
	dmn_mutex mu; /* guards ents, n, cap, budgets, nbudgets, capbudgets, stop */
	pthread_cond_t cv; /* stop */
	struct dmn_quota_ent *ents;
	size_t n, cap;
	struct dmn_quota_budget *budgets;
	size_t nbudgets, capbudgets;
	bool stop;
	pthread_t reaper; /* main thread only */
	bool reaper_started;
} dmn_quota;

typedef struct dmn {
	/* set at start, read-only while serving */
	dmn_options opt;
	char *dir;
	dcr_key *key;
	uint8_t pub[32];
	es_store *store;  /* thread-safe (eventstore.h) */
	dmn_blobs *blobs; /* thread-safe (blob.c) */

	dmn_rooms rooms;
	dmn_uploads up;
	dmn_jobs jobs;
	dmn_imgcache imgc;
	dmn_waiters wait;
	uint64_t start_mono_ms;     /* set at start (admin.status's uptime) */
	atomic_uint backups;        /* backups in progress (admin.c) */
	dmn_quota quota;
	struct dmn_admit *adm; /* admission checks and definition quotas (admit.c) */
} dmn;

void dmn__log(const dmn *d, enum dmn_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- rooms (rooms.c) ------------------------------------------------------ */

/* Set up and free the rooms part (free: after every thread is joined). */
void dmn__rooms_init(dmn *d);
/* Registers a durable-event hook; before dmn__rooms_load only. */
void dmn__rooms_on_durable(dmn *d, dmn_durable_fn fn, void *ctx);
/* Replays every room of the store into memory, then calls the hooks with
 * ev NULL for each room. */
int dmn__rooms_load(dmn *d, dcr_err *err);
void dmn__rooms_free(dmn *d);
/* The waiters and uploads parts (their functions live in rooms.c, next to
 * their use in dmn__submit; release after every thread is joined). */
void dmn__waiters_init(dmn *d);
void dmn__waiters_release(dmn *d);
void dmn__uploads_init(dmn *d);
void dmn__uploads_release(dmn *d);
/* The room, or NULL. Rooms are never removed, so the pointer stays valid. */
dmn_room *dmn__room_find(dmn *d, const uint8_t id[ES_ROOM_ID_BYTES]);
/* Snapshot of the room list (free the array only). */
dmn_room **dmn__rooms_list(dmn *d, size_t *n);

/* The one path into the log. Decodes the entry, verifies its signature,
 * checks that a user event's actor is `conn_key` and its clock is close to
 * ours (conn_key NULL: a daemon event, actor must be the daemon key), then
 * under the room's lock: seq, the daemon's own checks (provisioning
 * matches an upload), rm_apply, es_append_start; waits for durability
 * outside the lock; then schedules follow-up work (prepared tables, runs).
 * Returns only once the event is durable (or refused). type_out (may be NULL) gets the event's
 * type once decoded. */
int dmn__submit(dmn *d, const uint8_t room[ES_ROOM_ID_BYTES], const void *entry, size_t n,
                const uint8_t *conn_key, uint64_t *seq_out, char type_out[ES_TYPE_BYTES_MAX],
                dcr_err *err);
/* Builds, signs (daemon key) and submits a daemon event at the room's
 * current size. */
/* Records request.auto_approved for every open request of the room and
 * every affected owner who has not voted and whose auto_approve policies
 * the request satisfies (rm_check_policy); called after a request event
 * is appended and for every room at start. Failures are logged. Nothing
 * with --hold-auto-approvals. */
void dmn__auto_approve(dmn *d, const uint8_t room[ES_ROOM_ID_BYTES]);
int dmn__submit_daemon(dmn *d, const uint8_t room[ES_ROOM_ID_BYTES], const char *type,
                       const dcr_buf *body, dcr_err *err);

/* Schema of a table dataset as compute columns (names heap-owned). */
int dmn__schema_of(const rm_dataset *ds, cmp_column **cols, size_t *n);
void dmn__schema_free(cmp_column *cols, size_t n);

/* Wakes every `wait` (after an append, or at shutdown with closing). */
void dmn__wake_waiters(dmn *d, bool closing);

/* rm_actor_name(RM_ACTOR_SHORT) of key in the room (r may be NULL), on the heap. */
char *dmn__who(dmn_room *r, const uint8_t key[32]);

/* ---- admission checks and definition quotas (admit.c) ------------------- */

/* Set up (before dmn__rooms_load: the quotas count the replay), start the
 * check threads, stop them (after the last request: a waiting request
 * gets its verdict first) and log their figures, free. */
void dmn__admit_init(dmn *d);
int dmn__admit_start(dmn *d, dcr_err *err);
void dmn__admit_stop(dmn *d);
void dmn__admit_release(dmn *d);
/* rm_def_admit of def on the check threads, charged to key's budget of
 * check CPU time; blocks for the verdict. all: check every computation
 * (room.test), else stop at the first error. ELIMIT when the key is past its
 * budget (or stops being during the check) or too many checks wait. */
int dmn__admit_check(dmn *d, const uint8_t key[32], rm_def *def, bool all, dcr_err *err);
/* What dmn__submit's admission check of one event needs from the room's
 * state, copied under the room's lock by dmn__admit_prepare (false: the
 * event needs no check, or rm_apply refuses its actor anyway). The check
 * (dmn__admit_event) runs without the lock; under it again,
 * dmn__admit_snap_current says whether the state it read is unchanged. */
typedef struct dmn_admit_snap {
	bool needed;
	char *def_json; /* publish, request: the current definition (heap) */
	uint8_t def_sha256[32];
} dmn_admit_snap;
bool dmn__admit_prepare(const rm_state *st, const es_event *ev, dmn_admit_snap *snap);
int dmn__admit_event(dmn *d, const es_event *ev, const dmn_admit_snap *snap, dcr_err *err);
bool dmn__admit_snap_current(const dmn_admit_snap *snap, const rm_state *st);
void dmn__admit_snap_release(dmn_admit_snap *snap);
/* The quotas of definition bytes and rooms created per key: ELIMIT if ev
 * would pass one; with reserve, ev's usage is counted (give it back with
 * dmn__quota_give if ev is not appended). dmn__quota_replay (an
 * rm_step_fn, ctx the dmn) counts the log at start. */
int dmn__quota_take(dmn *d, const es_event *ev, bool reserve, dcr_err *err);
void dmn__quota_give(dmn *d, const es_event *ev);
int dmn__quota_replay(void *ctx, const rm_state *before, const es_event *ev, dcr_err *err);

/* ---- jobs (jobs.c) ------------------------------------------------------ */
/* room.test of python/r computation def->computations[ci] (jobs.c): runs
 * its script in the sandbox on empty inputs (header-only CSVs, upstream
 * scripts' test outputs from tests[], one buffer per computation, empty
 * for none) and appends to report "ok" with its output files and columns,
 * or "error: ..." with the end of its stderr. On success tests[ci] gets
 * its output archive. Blocks for the script's run. */
bool dmn__script_test(dmn *d, const rm_def *def, size_t ci, dcr_buf *tests, dcr_buf *report);

/* Sets up the queue and subscribes to durable events (before
 * dmn__rooms_load, which queues the work left over from the last run);
 * start starts the workers; release frees what stop left (after it). */
void dmn__jobs_init(dmn *d);
int dmn__jobs_start(dmn *d, dcr_err *err);
void dmn__jobs_release(dmn *d);
/* At start, before any request or job: removes every blob that nothing
 * references (uploads never signed, superseded or withdrawn datasets and
 * their tables, cached results of old inputs). */
int dmn__blobs_gc(dmn *d, dcr_err *err);
/* The blobs the rooms of d reference, the set dmn__blobs_gc keeps: sorted,
 * unique ids in a heap array (free it). Reads the rooms and d->store's
 * es_meta only. */
void dmn__blobs_referenced(dmn *d, char (**ids)[DMN_BLOB_HEX_BYTES], size_t *n);
/* While running, once the event that withdrew or replaced a provision is
 * durable: removes its blobs (the file, its statistics, its prepared
 * table) at once rather than at the next start. Blob ids are random per
 * upload, so nothing current refers to them; a reader that has one open
 * keeps reading it. Cached results of the old data wait for the next
 * start's dmn__blobs_gc. */
void dmn__blobs_drop_withdrawn(dmn *d, const char *data_blob);

/* Rows held from uploads (rooms.c; docs/daemon.md "Prepared tables").
 * dmn__rows_charge grows an upload's charge (*charged) to now bytes within
 * the budget: false if they do not fit (nothing charged: the upload stops
 * holding rows). dmn__rows_put keeps rows (with their charge) for the
 * build of data_blob, under the schema they were validated with;
 * dmn__rows_take hands them to that build, uncharged, if the schema is
 * still cols (else frees them: NULL); dmn__rows_drop frees those of a
 * blob that goes (dmn__blobs_drop_withdrawn). */
bool dmn__rows_charge(dmn *d, uint64_t *charged, uint64_t now);
void dmn__rows_uncharge(dmn *d, uint64_t n);
void dmn__rows_put(dmn *d, const char *data_blob, const cmp_column *cols, size_t ncols,
                   cmp_rows *rows, uint64_t charged, uint64_t csv_bytes);
cmp_rows *dmn__rows_take(dmn *d, const char *data_blob, const cmp_column *cols, size_t ncols,
                         uint64_t *csv_bytes);
void dmn__rows_drop(dmn *d, const char *data_blob);

/* The id of the prepared table over an append dataset's drops: "drops:"
 * and the union hash in hex; the table's blob is under the es_meta key
 * "image:" + this id, like a single blob's (docs/daemon.md). */
#define DMN_UNION_ID_BYTES (sizeof "drops:" + 64)
static inline void dmn__union_id(const uint8_t sha[32], char out[DMN_UNION_ID_BYTES])
{
	char hex[65];
	dcr_hex_encode(sha, 32, hex);
	snprintf(out, DMN_UNION_ID_BYTES, "drops:%s", hex);
}

static inline bool dmn__is_union_id(const char *id)
{
	return strncmp(id, "drops:", 6) == 0;
}
/* Stops taking jobs, cancels what is computing (its run stays queued in
 * the log), waits for appends in progress and joins every worker. */
void dmn__jobs_stop(dmn *d);
bool dmn__run_is_running(dmn *d, const char *run_id);
/* Host policy on queued runs, before an event is appended (dmn__submit,
 * r->mu held): a run.requested, request.preview_requested or
 * dev.requested is refused with DCR_ELIMIT, naming the limit, while the
 * room has --max-queued-runs runs and development runs queued or running
 * (appends of the room still in flight count too), or the host
 * DMN_RUN_QUEUE_MAX. Other events pass. */
int dmn__jobs_admit(dmn *d, dmn_room *r, const char *type, dcr_err *err);
/* The detailed error message of a failed run, kept in memory only (never
 * logged, never in an event) and only for a run in which no filtered
 * computation was evaluated (docs/privacy.md, "Errors"); false if none. */
bool dmn__run_detail(const char *run_id, char *out, size_t cap);
/* Enters/leaves an append made by a background job; enter fails once the
 * daemon is stopping. */
bool dmn__append_enter(dmn *d);
void dmn__append_leave(dmn *d);

/* ---- decrypted images shared by runs (imgcache.c) ------------------------- */

typedef struct dmn_image dmn_image;
/* The decrypted contents of blob id (a prepared table or a cached result),
 * read from the blob store on a miss (*hit false); hold it until
 * dmn__image_put. */
int dmn__image_get(dmn *d, const char *id, dmn_image **out, bool *hit, dcr_err *err);
void dmn__image_put(dmn *d, dmn_image *im); /* NULL is fine */
const void *dmn__image_data(const dmn_image *im, size_t *n);
/* A table just built (an image of cmp_prepare_stream, to be stored as
 * blob id) into the cache, held for the caller (dmn__image_put) so that it
 * stays until its blob exists: on adoption *image becomes NULL (the cache
 * frees it with cmp_image_free) and the entry is returned; otherwise (too
 * large, or already there) NULL, and *image stays the caller's. */
dmn_image *dmn__image_adopt(dmn *d, const char *id, void **image, size_t n);
/* As dmn__image_put, and the entry goes with its last run: its blob will
 * not exist (a build that failed to store it). */
void dmn__image_discard(dmn *d, dmn_image *im);
/* Data was withdrawn or replaced: drop every entry; *freed entries (of
 * *bytes) go now, *held ones once their runs let go. */
void dmn__image_forget_all(dmn *d, unsigned *freed, unsigned *held, uint64_t *bytes);
void dmn__image_cache_init(dmn *d, uint64_t budget); /* bytes; 0: keep nothing */
void dmn__image_cache_free(dmn *d); /* at shutdown, no run left */

/* ---- quotas (quota.c, docs/daemon.md "Limits and quotas") ---------------- */

/* Set up (before dmn__rooms_load), start (after the blob GC: the SQL temp
 * directory DIR/sqltmp, emptied, and the upload reaper thread), stop
 * (joins the reaper; before the store and blobs close), release. */
void dmn__quota_init(dmn *d);
int dmn__quota_start(dmn *d, dcr_err *err);
void dmn__quota_stop(dmn *d);
void dmn__quota_release_all(dmn *d);
/* Bytes of present uploaded files of key (any room) and of room (may be
 * NULL, room_bytes too); takes each room's mutex in turn. */
void dmn__quota_stored(dmn *d, const uint8_t key[32], const uint8_t room[ES_ROOM_ID_BYTES],
                       uint64_t *key_bytes, uint64_t *room_bytes);
/* Checks that n more bytes uploaded by key into room fit the room, key
 * and key disk quotas over the stored bases (dmn__quota_stored) plus what
 * is in flight; DCR_ELIMIT naming the quota if not. Unless dry, charges
 * them as in flight until dmn__quota_release. */
int dmn__quota_charge(dmn *d, const uint8_t key[32], const uint8_t room[ES_ROOM_ID_BYTES],
                      uint64_t key_base, uint64_t room_base, uint64_t n, bool dry,
                      dcr_err *err);
void dmn__quota_release(dmn *d, const uint8_t key[32], const uint8_t room[ES_ROOM_ID_BYTES],
                        uint64_t n);
/* A finished upload leaves the list: signed (its event is durable) or not
 * (refused, expired: its blobs are deleted); releases its charge, frees u
 * (NULL is fine). Call without up.mu. */
void dmn__upload_settle(dmn *d, dmn_done_upload *u, bool signed_);
/* Settles the unsigned uploads older than --upload-expiry-s or beyond
 * DMN_UPLOADS_PENDING_MAX. Call without up.mu. */
void dmn__uploads_expire(dmn *d);
/* Around a run or development run of key on this thread: its temporary
 * files count against the key's budget (what the key's uploads leave of
 * its disk quota); enter returns the budget to cmp_tmp_budget_enter. */
cmp_tmp_budget *dmn__quota_run_enter(dmn *d, const uint8_t key[32]);
void dmn__quota_run_leave(dmn *d, const uint8_t key[32]);

/* ---- requests (ops.c) ------------------------------------------------------ */

typedef struct dmn_upload dmn_upload;

/* Per-connection state touched by requests (one request at a time). */
typedef struct dmn_session {
	uint8_t key[32];
	dmn_upload *uploads;
	size_t nuploads;
	dmn_blob_reader *rd; /* last result blob read (sequential reads) */
	char rd_blob[DMN_BLOB_HEX_BYTES];
	/* filled by dmn__handle for the request log line */
	char op[96]; /* "submit <type>" */
	char room[ES_ROOM_HEX_BYTES];
	char *who;
	/* the peer's uid from SO_PEERCRED at accept (server.c); admin
	 * operations need 0 or dcrd's own uid (admin.c) */
	bool peer_known;
	uint32_t peer_uid;
	struct dmn_backup *backup; /* the backup this connection streams (admin.c) */
} dmn_session;

/* Handles one request frame body; appends the response frame (header +
 * body) to resp. Returns 0, or a negative code when the connection must be
 * closed after sending resp (protocol violation). log_outcome gets "ok" or
 * "CODE: message" for the log. */
int dmn__handle(dmn *d, dmn_session *s, const void *frame, size_t n, dcr_buf *resp,
                dcr_buf *log_outcome);
/* Drops the session's unfinished uploads (temp files removed, logged). */
void dmn__session_release(dmn *d, dmn_session *s);
/* ---- the host operator's operations (admin.c) ------------------------------ */

/* admin.status, admin.backup.begin|read|end (docs/protocol.md); each
 * refuses a connection that is not the operator's (EDENIED). */
int dmn__op_admin_status(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res,
                         dcr_err *err);
int dmn__op_admin_backup_begin(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res,
                               dcr_err *err);
int dmn__op_admin_backup_read(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res,
                              dcr_err *err);
int dmn__op_admin_backup_end(dmn *d, dmn_session *s, const dcr_mpv *args, proto_map *res,
                             dcr_err *err);
/* Ends the session's backup, if any (the connection closed). */
void dmn__admin_session_release(dmn *d, dmn_session *s);

/* An error frame {code, error, id, ok: false}. */
void dmn__error_frame(dcr_buf *out, uint64_t id, int code, const char *msg);

#endif
