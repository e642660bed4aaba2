/* es_store.c: the event store on LMDB: per-room append-only logs, their
 * RFC 6962 Merkle trees, signed checkpoints and a small metadata table.
 *
 * Layout (named databases of one environment; docs/eventstore.md):
 *   events       room(16) || be64(seq)              -> entry (envelope || sig)
 *   nodes        room(16) || be64(postorder(l, i))  -> hash of the complete
 *                subtree of level l, index i (leaves are level 0)
 *   rooms        room(16)                            -> be64(size)
 *   checkpoints  room(16)                            -> latest checkpoint (encoded)
 *   meta         key bytes                           -> value bytes
 *
 * Writes: one writer thread owns every write transaction. Callers enqueue
 * a request and sleep; the writer takes every pending request (up to
 * ES_BATCH_REQS_MAX / ES_BATCH_BYTES_MAX), applies them all in ONE write
 * transaction (events, Merkle nodes, room sizes, then one checkpoint body
 * per touched room), commits (fully synced unless no_sync), and only then
 * wakes the callers: a caller that got 0 has a durable entry. A request that
 * fails on its own (DCR_ESEQ) does not disturb the others of its batch.
 *
 * Checkpoints are stored unsigned (the daemon key's public half, a zero
 * signature) and signed when read (sign_stored): Ed25519 is deterministic,
 * so the bytes a reader gets are exactly those a signature at commit time
 * would have given, but the writer thread no longer signs one checkpoint per
 * room per commit (with many rooms that was a third of its CPU), and a
 * checkpoint nobody reads is never signed. Signed ones are cached per room
 * (cp_cache), so many readers of one state cost one signature.
 *
 * Keys of one room grow with every append in both events and nodes (nodes
 * are numbered in the post-order in which an append-only log completes
 * them), so MDB_APPEND is used whenever the new key is greater than the last
 * key of the database, i.e. always when one room is written at a time, and
 * a plain put otherwise (MDB_APPEND would fail with MDB_KEYEXIST).
 *
 * Reads run in short read-only transactions (MDB_NOTLS: any thread). The
 * map size may only change while no transaction is active in the process,
 * so every transaction holds map_lock shared and the writer takes it
 * exclusively to grow the map after MDB_MAP_FULL (then retries the whole
 * batch). No user callback is ever called while a transaction is open. */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <lmdb.h>

#include "es_int.h"

#define ES_MAP_SIZE_DEFAULT ((size_t)1 << 30)
#define ES_READERS_MAX      512
#define ES_GROW_RETRIES_MAX 48
#define ES_ROOMS_CHUNK      256
#define ES_CP_CACHE_SLOTS   256 /* signed checkpoints kept, by room (a power of 2) */

enum { REQ_APPEND, REQ_META_PUT, REQ_META_DEL };

typedef struct es_req {
	int kind;
	const uint8_t *room; /* APPEND */
	uint64_t expect_seq;
	const void *p; /* APPEND: entry; META_PUT: value */
	size_t n;
	const char *key; /* META_* */
	size_t key_n;
	/* Results, written by the writer thread before done is set. */
	int rc;
	int mdb_rc;   /* LMDB code behind a DCR_ESTORE */
	uint64_t seq; /* APPEND: the entry's seq; on DCR_ESEQ the room's size */
	size_t ridx;  /* APPEND: index into the batch's room table */
	es_checkpoint cp;
	bool done;
	pthread_cond_t cv;
	struct es_req *next;
} es_req;

typedef struct room_work {
	uint8_t room[ES_ROOM_ID_BYTES];
	uint64_t size0, size;
	es_checkpoint cp;
} room_work;

struct es_store {
	MDB_env *env;
	MDB_dbi db_events, db_nodes, db_rooms, db_cps, db_meta;
	const dcr_key *cp_key; /* borrowed: must outlive the store */
	uint8_t cp_pub[DCR_ED25519_PUB_BYTES]; /* its public key (zero without) */
	/* the last checkpoint signed per room slot (sign_stored); cp_mu guards
	 * it and is taken with no other lock of the store held */
	pthread_mutex_t cp_mu;
	es_checkpoint cp_cache[ES_CP_CACHE_SLOTS];
	bool no_sync;
	/* shared: a transaction is open; exclusive: the map is being resized */
	pthread_rwlock_t map_lock;
	/* odd while the writer is in mdb_txn_commit: +1 before, +1 after
	 * (rd_begin) */
	_Atomic uint64_t commit_seq;
	_Atomic uint64_t read_retries; /* es_stats.read_retries */
	/* queue of pending writes */
	pthread_mutex_t mu;
	pthread_cond_t work_cv, space_cv;
	es_req *head, *tail;
	size_t depth;
	bool stop;
	pthread_t writer;
	bool writer_started;
	es_stats stats; /* under mu */
	char *dir;
	/* env is NULL after a failed reopen (env_recover); env_rc says why */
	int env_rc;
	/* writer-only state */
	es_req **batch;
	room_work *rooms;
	size_t nrooms;
	uint8_t last_ev[24], last_node[24];
	bool have_last_ev, have_last_node;
	/* registry of open environments (one per directory per process) */
	dev_t dev;
	ino_t ino;
	bool registered;
	struct es_store *open_next;
};

static int mdb_to_dcr(int rc)
{
	if (rc == 0)
		return 0;
	if (rc == MDB_NOTFOUND)
		return DCR_ENOTFOUND;
	return DCR_ESTORE;
}

static void ev_key(uint8_t k[24], const uint8_t room[ES_ROOM_ID_BYTES], uint64_t seq)
{
	memcpy(k, room, ES_ROOM_ID_BYTES);
	dcr_put_be64(k + ES_ROOM_ID_BYTES, seq);
}

static void node_key(uint8_t k[24], const uint8_t room[ES_ROOM_ID_BYTES], unsigned level,
                     uint64_t index)
{
	memcpy(k, room, ES_ROOM_ID_BYTES);
	dcr_put_be64(k + ES_ROOM_ID_BYTES, es__postorder(level, index));
}

/* ---- read transactions ----------------------------------------------------- */

/* A read transaction must never see an older snapshot than one that ended
 * before it began (the daemon reads a room's size, then its events up to
 * it, in two transactions). LMDB 0.9.24 alone does not give that: a reader
 * takes the last published txnid X (mti_txnid), registers it, and only then
 * reads meta page X & 1; a commit writes its meta page before it publishes
 * its txnid. A reader delayed between the two reads (preempted) while the
 * writer commits X + 1 and writes the meta page of X + 2 (the same page)
 * gets the snapshot of X + 2 under txnid X; until X + 2 is published, the
 * next reader gets X + 1, which is older (a room's size 20, then only 19 of
 * its events). That needs a commit to end and the next to start during one
 * mdb_txn_begin, so commit_seq (odd during a commit) advancing by 2 or more
 * across the begin tells exactly when it may have happened; the transaction
 * is then begun again (a begin takes microseconds, a commit a sync, so this
 * is rare and ends). One commit in progress, or ending, during the begin is
 * harmless: it writes the other meta page. Commits by another process are
 * not covered (the daemon is the only writer of its store). */
static int rd_begin(es_store *s, MDB_txn **txn)
{
	uint64_t seq0, seq1;
	int rc;

	pthread_rwlock_rdlock(&s->map_lock);
again:
	seq0 = atomic_load(&s->commit_seq);
	if (!s->env) {
		pthread_rwlock_unlock(&s->map_lock);
		*txn = NULL;
		return DCR_ESTORE;
	}
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
	if (rc == MDB_MAP_RESIZED) { /* another process grew the map */
		pthread_rwlock_unlock(&s->map_lock);
		pthread_rwlock_wrlock(&s->map_lock);
		mdb_env_set_mapsize(s->env, 0);
		pthread_rwlock_unlock(&s->map_lock);
		pthread_rwlock_rdlock(&s->map_lock);
		rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
	}
	if (rc != 0) {
		pthread_rwlock_unlock(&s->map_lock);
		*txn = NULL;
		return DCR_ESTORE;
	}
	atomic_thread_fence(memory_order_seq_cst);
	seq1 = atomic_load(&s->commit_seq);
	if (seq1 - seq0 >= 2) {
		mdb_txn_abort(*txn);
		atomic_fetch_add(&s->read_retries, 1);
		goto again;
	}
	return 0;
}

static void rd_end(es_store *s, MDB_txn *txn)
{
	if (!txn)
		return;
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&s->map_lock);
}

static int get_size(es_store *s, MDB_txn *txn, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t *size)
{
	MDB_val k = {ES_ROOM_ID_BYTES, (void *)room}, v;
	int rc = mdb_get(txn, s->db_rooms, &k, &v);

	*size = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (v.mv_size != 8)
		return MDB_CORRUPTED;
	*size = dcr_get_be64(v.mv_data);
	return 0;
}

/* ---- Merkle nodes from the store --------------------------------------------- */

typedef struct {
	es_store *s;
	MDB_txn *txn;
	const uint8_t *room;
} range_ctx;

static int get_node(range_ctx *c, unsigned level, uint64_t index, uint8_t out[32])
{
	uint8_t key[24];
	MDB_val k = {sizeof(key), key}, v;
	int rc;

	node_key(key, c->room, level, index);
	rc = mdb_get(c->txn, c->s->db_nodes, &k, &v);
	if (rc == MDB_NOTFOUND || (rc == 0 && v.mv_size != 32))
		return DCR_EINTEGRITY; /* a complete subtree must be stored */
	if (rc != 0)
		return DCR_ESTORE;
	memcpy(out, v.mv_data, 32);
	return 0;
}

/* MTH(D[lo:hi]): one lookup for an aligned complete subtree, else the RFC
 * split; the ranges the proof recursions ask for decompose into O(log n)
 * stored subtrees. */
static int range_store(void *ctx, uint64_t lo, uint64_t hi, uint8_t out[32])
{
	uint64_t n = hi - lo, k;
	uint8_t l[32], r[32];
	int rc;

	if ((n & (n - 1)) == 0 && (lo & (n - 1)) == 0) {
		unsigned level = (unsigned)__builtin_ctzll(n);

		return get_node(ctx, level, lo >> level, out);
	}
	k = es__split(n);
	rc = range_store(ctx, lo, lo + k, l);
	if (rc == 0)
		rc = range_store(ctx, lo + k, hi, r);
	if (rc == 0)
		es_node_hash(l, r, out);
	return rc;
}

static int root_in_txn(es_store *s, MDB_txn *txn, const uint8_t *room, uint64_t size,
                       uint8_t root[32])
{
	range_ctx c = {s, txn, room};

	if (size == 0) {
		dcr_sha256("", 0, root);
		return 0;
	}
	return range_store(&c, 0, size, root);
}

/* ---- the writer ------------------------------------------------------------------ */

static int last_key(MDB_txn *txn, MDB_dbi dbi, uint8_t key[24], bool *have)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, dbi, &cur);

	if (rc != 0)
		return rc;
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	mdb_cursor_close(cur);
	*have = false;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (k.mv_size != 24)
		return MDB_CORRUPTED;
	memcpy(key, k.mv_data, 24);
	*have = true;
	return 0;
}

/* Puts key (24 bytes) with MDB_APPEND when it sorts after the last key of
 * the database, else a plain insert; both refuse to overwrite. */
static int put_ordered(MDB_txn *txn, MDB_dbi dbi, uint8_t last[24], bool *have,
                       const uint8_t key[24], const void *p, size_t n)
{
	MDB_val k = {24, (void *)key}, v = {n, (void *)p};
	bool append = !*have || memcmp(key, last, 24) > 0;
	int rc = mdb_put(txn, dbi, &k, &v, append ? MDB_APPEND : MDB_NOOVERWRITE);

	if (rc == 0 && append) {
		memcpy(last, key, 24);
		*have = true;
	}
	return rc;
}

static int room_load(es_store *s, MDB_txn *txn, const uint8_t *room, size_t *idx)
{
	size_t i;
	int rc;

	for (i = s->nrooms; i-- > 0;)
		if (memcmp(s->rooms[i].room, room, ES_ROOM_ID_BYTES) == 0) {
			*idx = i;
			return 0;
		}
	i = s->nrooms;
	DCR_ASSERT(i < ES_BATCH_REQS_MAX);
	memset(&s->rooms[i], 0, sizeof(s->rooms[i]));
	memcpy(s->rooms[i].room, room, ES_ROOM_ID_BYTES);
	rc = get_size(s, txn, room, &s->rooms[i].size0);
	if (rc != 0)
		return rc;
	s->rooms[i].size = s->rooms[i].size0;
	s->nrooms++;
	*idx = i;
	return 0;
}

/* Applies one append; returns an LMDB code that dooms the transaction, or
 * 0 (the request's own outcome is in r->rc). */
static int apply_append(es_store *s, MDB_txn *txn, es_req *r)
{
	uint8_t key[24], h[32], left[32];
	range_ctx c = {s, txn, r->room};
	room_work *w;
	uint64_t seq, idx;
	unsigned level;
	size_t ri;
	int rc;

	rc = room_load(s, txn, r->room, &ri);
	if (rc != 0)
		return rc;
	w = &s->rooms[ri];
	if (r->expect_seq != ES_SEQ_ANY && r->expect_seq != w->size) {
		r->rc = DCR_ESEQ;
		r->seq = w->size;
		return 0;
	}
	if (w->size >= ES_TREE_SIZE_MAX) {
		r->rc = DCR_ELIMIT;
		r->seq = w->size;
		return 0;
	}
	seq = w->size;
	ev_key(key, r->room, seq);
	rc = put_ordered(txn, s->db_events, s->last_ev, &s->have_last_ev, key, r->p, r->n);
	if (rc != 0)
		return rc;
	/* The new leaf completes one subtree per trailing 1 bit of seq. */
	es_leaf_hash(r->p, r->n, h);
	node_key(key, r->room, 0, seq);
	rc = put_ordered(txn, s->db_nodes, s->last_node, &s->have_last_node, key, h, 32);
	for (idx = seq, level = 0; rc == 0 && (idx & 1); level++, idx >>= 1) {
		rc = get_node(&c, level, idx - 1, left);
		if (rc != 0)
			return MDB_CORRUPTED;
		es_node_hash(left, h, h);
		node_key(key, r->room, level + 1, idx >> 1);
		rc = put_ordered(txn, s->db_nodes, s->last_node, &s->have_last_node, key, h, 32);
	}
	if (rc != 0)
		return rc;
	w->size++;
	r->rc = 0;
	r->seq = seq;
	r->ridx = ri;
	return 0;
}

static int apply_meta(es_store *s, MDB_txn *txn, es_req *r)
{
	MDB_val k = {r->key_n, (void *)r->key}, v = {r->n, (void *)r->p};
	int rc;

	if (r->kind == REQ_META_PUT)
		rc = mdb_put(txn, s->db_meta, &k, &v, 0);
	else
		rc = mdb_del(txn, s->db_meta, &k, NULL);
	if (rc == MDB_NOTFOUND)
		rc = 0; /* deleting a missing key is not an error */
	if (rc == 0)
		r->rc = 0;
	return rc;
}

/* Room sizes and one checkpoint per room touched by the batch. */
static int finish_rooms(es_store *s, MDB_txn *txn, uint64_t now_ms)
{
	dcr_buf b;
	int rc = 0;

	dcr_buf_init(&b);
	for (size_t i = 0; i < s->nrooms && rc == 0; i++) {
		room_work *w = &s->rooms[i];
		uint8_t be[8];
		MDB_val k = {ES_ROOM_ID_BYTES, w->room}, v = {8, be};

		if (w->size == w->size0)
			continue;
		dcr_put_be64(be, w->size);
		rc = mdb_put(txn, s->db_rooms, &k, &v, 0);
		if (rc != 0)
			break;
		memset(&w->cp, 0, sizeof(w->cp));
		memcpy(w->cp.room, w->room, ES_ROOM_ID_BYTES);
		w->cp.size = w->size;
		w->cp.ts_ms = now_ms;
		rc = root_in_txn(s, txn, w->room, w->size, w->cp.root);
		if (rc != 0) {
			rc = MDB_CORRUPTED;
			break;
		}
		if (!s->cp_key)
			continue;
		/* The body, to be signed by this key when read (sign_stored). */
		memcpy(w->cp.key, s->cp_pub, sizeof(w->cp.key));
		dcr_buf_reset(&b);
		es_checkpoint_encode(&w->cp, &b);
		v.mv_size = b.len;
		v.mv_data = b.data;
		rc = mdb_put(txn, s->db_cps, &k, &v, 0);
	}
	dcr_buf_release(&b);
	return rc;
}

/* Creates s->env on s->dir with a map of map_size bytes and opens the
 * databases (creating them when create). An LMDB code; *step says what
 * failed. On failure s->env may be set: the caller closes it. */
static int env_open(es_store *s, size_t map_size, bool create, const char **step)
{
	MDB_txn *txn = NULL;
	unsigned dbflags = create ? MDB_CREATE : 0;
	int rc, dead = 0;

	*step = "cannot open";
	rc = mdb_env_create(&s->env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(s->env, 8);
	if (rc == 0)
		rc = mdb_env_set_maxreaders(s->env, ES_READERS_MAX);
	if (rc == 0)
		rc = mdb_env_set_mapsize(s->env, map_size);
	if (rc == 0)
		rc = mdb_env_open(s->env, s->dir, MDB_NOTLS | (s->no_sync ? MDB_NOSYNC : 0), 0600);
	if (rc != 0)
		return rc;
	/* LMDB 0.9.24 leaves the data file descriptor inheritable: a sandboxed
	 * child (compute) must never get a writable handle on the log. */
	{
		mdb_filehandle_t fd;

		if (mdb_env_get_fd(s->env, &fd) == 0 && fd >= 0)
			fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
	}
	/* Reader slots left behind by crashed processes would pin old pages. */
	*step = "reader check";
	rc = mdb_reader_check(s->env, &dead);
	if (rc != 0)
		return rc;
	/* Existing databases open in a read-only transaction: a reopen
	 * (env_recover) writes nothing. */
	*step = "cannot create databases";
	rc = mdb_txn_begin(s->env, NULL, create ? 0 : MDB_RDONLY, &txn);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "events", dbflags, &s->db_events);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "nodes", dbflags, &s->db_nodes);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "rooms", dbflags, &s->db_rooms);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "checkpoints", dbflags, &s->db_cps);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "meta", dbflags, &s->db_meta);
	if (rc == 0) {
		rc = mdb_txn_commit(txn);
		txn = NULL;
	}
	if (txn)
		mdb_txn_abort(txn);
	return rc;
}

/* After a failed commit. When LMDB could not write the meta page it marks
 * the environment unusable (MDB_PANIC for every later transaction, reads
 * included) although the file still holds the last committed state: the
 * writer then reopens it, with no transaction open (map_lock exclusive).
 * If the reopen fails, env stays NULL (reads fail with DCR_ESTORE) and the
 * next batch tries again. */
static void env_recover(es_store *s)
{
	MDB_envinfo info;
	MDB_txn *txn;
	const char *step;
	size_t map_size = ES_MAP_SIZE_DEFAULT;
	int rc;

	if (s->env) {
		pthread_rwlock_rdlock(&s->map_lock);
		rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
		if (rc == 0)
			mdb_txn_abort(txn);
		pthread_rwlock_unlock(&s->map_lock);
		if (rc != MDB_PANIC)
			return;
	}
	pthread_rwlock_wrlock(&s->map_lock);
	if (s->env) {
		mdb_env_info(s->env, &info);
		map_size = info.me_mapsize;
		mdb_env_close(s->env);
		s->env = NULL;
	}
	rc = env_open(s, map_size, false, &step);
	if (rc != 0 && s->env) {
		mdb_env_close(s->env);
		s->env = NULL;
	}
	s->env_rc = rc;
	pthread_rwlock_unlock(&s->map_lock);
	pthread_mutex_lock(&s->mu);
	s->stats.env_reopens++;
	pthread_mutex_unlock(&s->mu);
}

static int grow_map(es_store *s, size_t need)
{
	MDB_envinfo info;
	size_t next;
	int rc;

	mdb_env_info(s->env, &info);
	next = info.me_mapsize * 2;
	if (next < info.me_mapsize + 2 * need + (1u << 20))
		next = info.me_mapsize + 2 * need + (1u << 20);
	pthread_rwlock_wrlock(&s->map_lock);
	rc = mdb_env_set_mapsize(s->env, next);
	pthread_rwlock_unlock(&s->map_lock);
	if (rc == 0) {
		pthread_mutex_lock(&s->mu);
		s->stats.map_grows++;
		pthread_mutex_unlock(&s->mu);
	}
	return rc;
}

static void run_batch(es_store *s, es_req **batch, size_t nb, size_t bytes)
{
	MDB_txn *txn = NULL;
	int rc, grows = 0;

again:
	s->nrooms = 0;
	for (size_t i = 0; i < nb; i++) {
		batch[i]->rc = DCR_EINTERNAL;
		batch[i]->mdb_rc = 0;
	}
	if (!s->env)
		env_recover(s); /* the last reopen failed: try again */
	if (!s->env) {
		rc = s->env_rc;
		goto fail;
	}
	rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc == MDB_MAP_RESIZED) {
		pthread_rwlock_wrlock(&s->map_lock);
		rc = mdb_env_set_mapsize(s->env, 0);
		pthread_rwlock_unlock(&s->map_lock);
		if (rc == 0 && grows++ < ES_GROW_RETRIES_MAX)
			goto again;
	}
	if (rc != 0) {
		txn = NULL;
		goto fail;
	}
	rc = last_key(txn, s->db_events, s->last_ev, &s->have_last_ev);
	if (rc == 0)
		rc = last_key(txn, s->db_nodes, s->last_node, &s->have_last_node);
	for (size_t i = 0; i < nb && rc == 0; i++)
		rc = batch[i]->kind == REQ_APPEND ? apply_append(s, txn, batch[i])
		                                  : apply_meta(s, txn, batch[i]);
	if (rc == 0)
		rc = finish_rooms(s, txn, dcr_now_ms());
	if (rc != 0) {
		mdb_txn_abort(txn);
		txn = NULL;
	} else {
		atomic_fetch_add(&s->commit_seq, 1); /* odd: see rd_begin */
		rc = mdb_txn_commit(txn);            /* frees txn whatever the outcome */
		atomic_fetch_add(&s->commit_seq, 1);
		txn = NULL;
	}
	if (rc == MDB_MAP_FULL && grows++ < ES_GROW_RETRIES_MAX) {
		rc = grow_map(s, bytes);
		if (rc == 0)
			goto again;
	}
	if (rc != 0)
		goto fail;
	for (size_t i = 0; i < nb; i++) {
		es_req *r = batch[i];

		if (r->kind == REQ_APPEND && r->rc == 0)
			r->cp = s->rooms[r->ridx].cp;
	}
	pthread_mutex_lock(&s->mu);
	s->stats.commits++;
	for (size_t i = 0; i < nb; i++)
		if (batch[i]->kind == REQ_APPEND && batch[i]->rc == 0)
			s->stats.appends++;
	pthread_mutex_unlock(&s->mu);
	return;
fail:
	for (size_t i = 0; i < nb; i++) {
		batch[i]->rc = DCR_ESTORE;
		batch[i]->mdb_rc = rc;
	}
	env_recover(s);
}

static void *writer_main(void *arg)
{
	es_store *s = arg;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		size_t nb = 0, bytes = 0;

		while (!s->head && !s->stop)
			pthread_cond_wait(&s->work_cv, &s->mu);
		if (!s->head)
			break; /* stopping, and drained */
		while (s->head && nb < ES_BATCH_REQS_MAX &&
		       (nb == 0 || bytes + s->head->n <= ES_BATCH_BYTES_MAX)) {
			es_req *r = s->head;

			s->head = r->next;
			if (!s->head)
				s->tail = NULL;
			s->batch[nb++] = r;
			bytes += r->n + r->key_n;
		}
		s->depth -= nb;
		pthread_cond_broadcast(&s->space_cv);
		pthread_mutex_unlock(&s->mu);

		run_batch(s, s->batch, nb, bytes);

		pthread_mutex_lock(&s->mu);
		for (size_t i = 0; i < nb; i++) {
			s->batch[i]->done = true;
			pthread_cond_signal(&s->batch[i]->cv);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Queues r and waits for the writer to finish it. */
/* Queues r (waiting while the queue is full); DCR_ESTATE when closing. On
 * success the caller must wait_done(s, r). */
static int enqueue(es_store *s, es_req *r)
{
	int rc = 0;

	pthread_cond_init(&r->cv, NULL);
	pthread_mutex_lock(&s->mu);
	while (s->depth >= ES_QUEUE_DEPTH_MAX && !s->stop)
		pthread_cond_wait(&s->space_cv, &s->mu);
	if (s->stop) {
		rc = DCR_ESTATE;
	} else {
		r->next = NULL;
		if (s->tail)
			s->tail->next = r;
		else
			s->head = r;
		s->tail = r;
		s->depth++;
		pthread_cond_signal(&s->work_cv);
	}
	pthread_mutex_unlock(&s->mu);
	if (rc != 0)
		pthread_cond_destroy(&r->cv);
	return rc;
}

static int wait_done(es_store *s, es_req *r)
{
	int rc;

	pthread_mutex_lock(&s->mu);
	while (!r->done)
		pthread_cond_wait(&r->cv, &s->mu);
	rc = r->rc;
	pthread_mutex_unlock(&s->mu);
	pthread_cond_destroy(&r->cv);
	return rc;
}

/* Queues r and waits for the writer to finish it. */
static int submit(es_store *s, es_req *r)
{
	int rc = enqueue(s, r);

	return rc != 0 ? rc : wait_done(s, r);
}

/* ---- open / close ----------------------------------------------------------------- */

/* LMDB must not open one environment twice in a process (its fcntl locks
 * are per process: closing one handle would drop the other's). Open
 * directories are registered by device and inode. */
static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;
static es_store *open_list;

static bool register_open(es_store *s)
{
	bool ok = true;

	pthread_mutex_lock(&open_mu);
	for (es_store *o = open_list; o; o = o->open_next)
		if (o->dev == s->dev && o->ino == s->ino)
			ok = false;
	if (ok) {
		s->open_next = open_list;
		open_list = s;
		s->registered = true;
	}
	pthread_mutex_unlock(&open_mu);
	return ok;
}

static void unregister_open(es_store *s)
{
	if (!s->registered)
		return;
	pthread_mutex_lock(&open_mu);
	for (es_store **p = &open_list; *p; p = &(*p)->open_next)
		if (*p == s) {
			*p = s->open_next;
			break;
		}
	pthread_mutex_unlock(&open_mu);
}

int es_open(es_store **out, const char *dir, const es_options *opt, dcr_err *err)
{
	static const es_options defaults = {0};
	struct stat st;
	es_store *s;
	pthread_rwlockattr_t ra;
	const char *step;
	int rc;

	*out = NULL;
	if (!opt)
		opt = &defaults;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return dcr_err_set(err, -errno, "event store %s: cannot create directory: %s", dir,
		                   strerror(errno));
	if (stat(dir, &st) != 0)
		return dcr_err_set(err, -errno, "event store %s: %s", dir, strerror(errno));
	s = dcr_calloc(1, sizeof(*s));
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->cp_key = opt->checkpoint_key;
	if (s->cp_key)
		dcr_key_public(s->cp_key, s->cp_pub);
	pthread_mutex_init(&s->cp_mu, NULL);
	s->no_sync = opt->no_sync;
	s->dir = dcr_strdup(dir);
	pthread_rwlockattr_init(&ra);
	/* a steady stream of readers must not starve a map resize */
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s->map_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->work_cv, NULL);
	pthread_cond_init(&s->space_cv, NULL);
	s->batch = dcr_calloc(ES_BATCH_REQS_MAX, sizeof(*s->batch));
	s->rooms = dcr_calloc(ES_BATCH_REQS_MAX, sizeof(*s->rooms));

	if (!register_open(s)) {
		rc = dcr_err_set(err, DCR_EEXIST, "event store %s: already open in this process",
		                 dir);
		goto out;
	}
	rc = env_open(s, opt->map_size_bytes ? opt->map_size_bytes : ES_MAP_SIZE_DEFAULT, true,
	              &step);
	if (rc != 0) {
		rc = dcr_err_set(err, DCR_ESTORE, "event store %s: %s: %s", dir, step,
		                 mdb_strerror(rc));
		goto out;
	}
	rc = pthread_create(&s->writer, NULL, writer_main, s);
	if (rc != 0) {
		rc = dcr_err_set(err, -rc, "event store %s: cannot start the writer thread", dir);
		goto out;
	}
	s->writer_started = true;
	{
		MDB_envinfo info;

		mdb_env_info(s->env, &info);
		s->stats.map_size_bytes = info.me_mapsize;
	}
out:
	if (rc != 0) {
		es_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void es_close(es_store *s)
{
	if (!s)
		return;
	if (s->writer_started) {
		pthread_mutex_lock(&s->mu);
		s->stop = true;
		pthread_cond_broadcast(&s->work_cv);
		pthread_cond_broadcast(&s->space_cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->writer, NULL);
	}
	if (s->env) {
		if (s->no_sync)
			mdb_env_sync(s->env, 1);
		mdb_env_close(s->env);
	}
	unregister_open(s);
	pthread_cond_destroy(&s->space_cv);
	pthread_cond_destroy(&s->work_cv);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->cp_mu);
	pthread_rwlock_destroy(&s->map_lock);
	free(s->rooms);
	free(s->batch);
	free(s->dir);
	free(s);
}

int es_copy(es_store *s, int fd, dcr_err *err)
{
	int rc;

	/* Shared, like every read transaction: a map resize waits for the
	 * copy (the writer keeps committing meanwhile, LMDB's MVCC). */
	pthread_rwlock_rdlock(&s->map_lock);
	rc = s->env ? mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT) : MDB_PANIC;
	pthread_rwlock_unlock(&s->map_lock);
	if (rc == 0)
		return 0;
	if (rc > 0) /* a system error: errno */
		return dcr_err_set(err, -rc, "copying the event store %s: %s", s->dir,
		                   strerror(rc));
	return dcr_err_set(err, DCR_ESTORE, "copying the event store %s: %s", s->dir,
	                   mdb_strerror(rc));
}

void es_stats_get(es_store *s, es_stats *out)
{
	MDB_envinfo info;

	memset(&info, 0, sizeof info);
	pthread_rwlock_rdlock(&s->map_lock);
	if (s->env)
		mdb_env_info(s->env, &info);
	pthread_rwlock_unlock(&s->map_lock);
	pthread_mutex_lock(&s->mu);
	*out = s->stats;
	pthread_mutex_unlock(&s->mu);
	out->map_size_bytes = info.me_mapsize;
	out->read_retries = atomic_load(&s->read_retries);
}

/* ---- writes ----------------------------------------------------------------------- */

static int check_entry_size(const uint8_t *room, size_t n, dcr_err *err)
{
	char room_hex[ES_ROOM_HEX_BYTES];

	if (n > DCR_ED25519_SIG_BYTES && n <= ES_ENTRY_BYTES_MAX)
		return 0;
	es_room_format(room, room_hex);
	return dcr_err_set(err, n ? DCR_ELIMIT : DCR_EINVALID,
	                   "room %s: entry of %zu bytes is outside 65..%u bytes", room_hex, n,
	                   (unsigned)ES_ENTRY_BYTES_MAX);
}

/* LMDB reports a full disk as ENOSPC, or as EIO when a write came back
 * short: say which it was when the store's filesystem is (nearly) full. */
static const char *store_failure(es_store *s, int mdb_rc, char *buf, size_t cap)
{
	const char *path = s->dir;
	struct statvfs v;

	if ((mdb_rc == EIO || mdb_rc == ENOSPC) && statvfs(path, &v) == 0 &&
	    (uint64_t)v.f_bavail * v.f_frsize < ES_DISK_FULL_BYTES) {
		snprintf(buf, cap, "No space left on device (%llu bytes free in %s; LMDB: %s)",
		         (unsigned long long)v.f_bavail * v.f_frsize, path, mdb_strerror(mdb_rc));
		return buf;
	}
	return mdb_rc ? mdb_strerror(mdb_rc) : "storage failure";
}

static bool sig_is_zero(const uint8_t sig[DCR_ED25519_SIG_BYTES])
{
	uint8_t acc = 0;

	for (size_t i = 0; i < DCR_ED25519_SIG_BYTES; i++)
		acc |= sig[i];
	return acc == 0;
}

/* Signs cp, a checkpoint body the writer stored for this store's key (its
 * public key in cp->key, a zero signature), unless the cache has the
 * signature of that very body. Ed25519 is deterministic: the result is the
 * same whenever it is signed. Any thread; no lock of the store held. */
static void sign_stored(es_store *s, es_checkpoint *cp)
{
	es_checkpoint *slot;
	size_t i = (size_t)(((uint32_t)cp->room[0] << 8 | cp->room[1]) & (ES_CP_CACHE_SLOTS - 1));
	bool hit;
	int rc;

	DCR_ASSERT(s->cp_key && memcmp(cp->key, s->cp_pub, sizeof(cp->key)) == 0);
	pthread_mutex_lock(&s->cp_mu);
	slot = &s->cp_cache[i];
	hit = memcmp(slot->room, cp->room, ES_ROOM_ID_BYTES) == 0 && slot->size == cp->size &&
	      slot->ts_ms == cp->ts_ms && memcmp(slot->root, cp->root, 32) == 0 &&
	      memcmp(slot->key, cp->key, sizeof(cp->key)) == 0 && !sig_is_zero(slot->sig);
	if (hit)
		memcpy(cp->sig, slot->sig, sizeof(cp->sig));
	pthread_mutex_unlock(&s->cp_mu);
	if (hit)
		return;
	rc = es_checkpoint_sign(cp, s->cp_key);
	DCR_ASSERT(rc == 0); /* cannot fail with a valid key */
	pthread_mutex_lock(&s->cp_mu);
	*slot = *cp;
	pthread_mutex_unlock(&s->cp_mu);
}

/* The caller's view of a finished append request. */
static int append_result(es_store *s, const es_req *r, int rc, uint64_t *seq_out,
                         es_checkpoint *cp_out, dcr_err *err)
{
	char why[512];
	char room_hex[ES_ROOM_HEX_BYTES];

	if (rc == 0) {
		if (seq_out)
			*seq_out = r->seq;
		if (cp_out) {
			*cp_out = r->cp;
			if (s->cp_key) /* signed here, on the caller's thread */
				sign_stored(s, cp_out);
		}
		return 0;
	}
	es_room_format(r->room, room_hex);
	if (rc == DCR_ESEQ)
		return dcr_err_set(err, rc,
		                   "room %s: event expects seq %" PRIu64
		                   " but the room has %" PRIu64 " events",
		                   room_hex, r->expect_seq, r->seq);
	if (rc == DCR_ELIMIT)
		return dcr_err_set(err, rc, "room %s: the log is full (%" PRIu64 " events)",
		                   room_hex, r->seq);
	if (rc == DCR_ESTORE)
		return dcr_err_set(err, rc, "room %s: append failed: %s", room_hex,
		                   store_failure(s, r->mdb_rc, why, sizeof why));
	return dcr_err_set(err, rc, "room %s: append failed: %s", room_hex, dcr_strerror(rc));
}

int es_append(es_store *s, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t expect_seq,
              const void *entry, size_t n, uint64_t *seq_out, es_checkpoint *cp_out, dcr_err *err)
{
	es_req r;
	int rc;

	rc = check_entry_size(room, n, err);
	if (rc != 0)
		return rc;
	memset(&r, 0, sizeof(r));
	r.kind = REQ_APPEND;
	r.room = room;
	r.expect_seq = expect_seq;
	r.p = entry;
	r.n = n;
	rc = submit(s, &r);
	return append_result(s, &r, rc, seq_out, cp_out, err);
}

struct es_pending {
	es_store *s;
	es_req r;
	uint8_t room[ES_ROOM_ID_BYTES];
	uint8_t entry[]; /* a copy: the caller's bytes may go at once */
};

int es_append_start(es_store *s, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t expect_seq,
                    const void *entry, size_t n, es_pending **out, dcr_err *err)
{
	es_pending *p;
	int rc;

	*out = NULL;
	rc = check_entry_size(room, n, err);
	if (rc != 0)
		return rc;
	p = dcr_calloc(1, sizeof(*p) + n);
	p->s = s;
	memcpy(p->room, room, ES_ROOM_ID_BYTES);
	memcpy(p->entry, entry, n);
	p->r.kind = REQ_APPEND;
	p->r.room = p->room;
	p->r.expect_seq = expect_seq;
	p->r.p = p->entry;
	p->r.n = n;
	rc = enqueue(s, &p->r);
	if (rc != 0) {
		rc = append_result(s, &p->r, rc, NULL, NULL, err);
		free(p);
		return rc;
	}
	*out = p;
	return 0;
}

int es_append_wait(es_pending *p, uint64_t *seq_out, es_checkpoint *cp_out, dcr_err *err)
{
	int rc;

	if (!p)
		return dcr_err_set(err, DCR_EINVALID, "no pending append");
	rc = wait_done(p->s, &p->r);
	rc = append_result(p->s, &p->r, rc, seq_out, cp_out, err);
	free(p);
	return rc;
}

static int meta_check_key(const char *key, size_t *key_n)
{
	if (!key)
		return DCR_EINVALID;
	*key_n = strnlen(key, ES_META_KEY_BYTES_MAX + 1);
	if (*key_n == 0 || *key_n > ES_META_KEY_BYTES_MAX)
		return DCR_ELIMIT;
	return 0;
}

/* A failed meta write says which I/O error it was (EIO, ENOSPC...) rather
 * than just "storage failure". */
static int meta_result(int rc, const es_req *r)
{
	if (rc == DCR_ESTORE && r->mdb_rc > 0)
		return -r->mdb_rc;
	return rc;
}

int es_meta_put(es_store *s, const char *key, const void *v, size_t n)
{
	es_req r;
	int rc;

	memset(&r, 0, sizeof(r));
	rc = meta_check_key(key, &r.key_n);
	if (rc != 0)
		return rc;
	if (n > ES_META_VALUE_BYTES_MAX || (n > 0 && !v))
		return DCR_ELIMIT;
	r.kind = REQ_META_PUT;
	r.key = key;
	r.p = n ? v : "";
	r.n = n;
	return meta_result(submit(s, &r), &r);
}

int es_meta_del(es_store *s, const char *key)
{
	es_req r;
	int rc;

	memset(&r, 0, sizeof(r));
	rc = meta_check_key(key, &r.key_n);
	if (rc != 0)
		return rc;
	r.kind = REQ_META_DEL;
	r.key = key;
	return meta_result(submit(s, &r), &r);
}

/* ---- reads ------------------------------------------------------------------------ */

int es_meta_get(es_store *s, const char *key, dcr_buf *out)
{
	MDB_txn *txn;
	MDB_val k, v;
	size_t key_n;
	int rc;

	rc = meta_check_key(key, &key_n);
	if (rc != 0)
		return rc;
	rc = rd_begin(s, &txn);
	if (rc != 0)
		return rc;
	k.mv_size = key_n;
	k.mv_data = (void *)key;
	rc = mdb_get(txn, s->db_meta, &k, &v);
	if (rc == 0)
		dcr_buf_append(out, v.mv_data, v.mv_size);
	rd_end(s, txn);
	return mdb_to_dcr(rc);
}

int es_room_size(es_store *s, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t *size)
{
	MDB_txn *txn;
	int rc;

	*size = 0;
	rc = rd_begin(s, &txn);
	if (rc != 0)
		return rc;
	rc = get_size(s, txn, room, size);
	rd_end(s, txn);
	return mdb_to_dcr(rc);
}

int es_latest_checkpoint(es_store *s, const uint8_t room[ES_ROOM_ID_BYTES], es_checkpoint *cp)
{
	MDB_val k = {ES_ROOM_ID_BYTES, (void *)room}, v;
	MDB_txn *txn;
	int rc;

	memset(cp, 0, sizeof(*cp));
	rc = rd_begin(s, &txn);
	if (rc != 0)
		return rc;
	rc = mdb_get(txn, s->db_cps, &k, &v);
	if (rc == 0)
		rc = es_checkpoint_decode(v.mv_data, v.mv_size, cp, NULL) == 0 ? 0 : DCR_EINTEGRITY;
	else
		rc = mdb_to_dcr(rc);
	rd_end(s, txn);
	/* Stored unsigned for this store's key: sign it now (outside the
	 * transaction). A store opened without that key returns it unsigned. */
	if (rc == 0 && s->cp_key && sig_is_zero(cp->sig) &&
	    memcmp(cp->key, s->cp_pub, sizeof(cp->key)) == 0)
		sign_stored(s, cp);
	return rc;
}

int es_rooms(es_store *s, int (*fn)(void *ctx, const uint8_t room[ES_ROOM_ID_BYTES]), void *ctx)
{
	uint8_t ids[ES_ROOMS_CHUNK][ES_ROOM_ID_BYTES], next[ES_ROOM_ID_BYTES];
	bool first = true;
	int rc = 0;

	/* Room ids are copied a chunk at a time so fn runs outside any txn. */
	for (;;) {
		MDB_txn *txn;
		MDB_cursor *cur;
		MDB_val k, v;
		size_t n = 0;

		rc = rd_begin(s, &txn);
		if (rc != 0)
			return rc;
		rc = mdb_cursor_open(txn, s->db_rooms, &cur);
		if (rc == 0) {
			k.mv_size = ES_ROOM_ID_BYTES;
			k.mv_data = next;
			rc = mdb_cursor_get(cur, &k, &v, first ? MDB_FIRST : MDB_SET_RANGE);
			if (rc == 0 && !first && memcmp(k.mv_data, next, ES_ROOM_ID_BYTES) == 0)
				rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
			while (rc == 0 && n < ES_ROOMS_CHUNK) {
				if (k.mv_size == ES_ROOM_ID_BYTES)
					memcpy(ids[n++], k.mv_data, ES_ROOM_ID_BYTES);
				rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
			}
			mdb_cursor_close(cur);
		}
		rd_end(s, txn);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return DCR_ESTORE;
		for (size_t i = 0; i < n; i++) {
			int r = fn(ctx, ids[i]);

			if (r != 0)
				return r;
		}
		if (rc == MDB_NOTFOUND || n == 0)
			return 0;
		memcpy(next, ids[n - 1], ES_ROOM_ID_BYTES);
		first = false;
	}
}

int es_get(es_store *s, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t seq, dcr_buf *out)
{
	uint8_t key[24];
	MDB_val k = {sizeof(key), key}, v;
	MDB_txn *txn;
	int rc;

	ev_key(key, room, seq);
	rc = rd_begin(s, &txn);
	if (rc != 0)
		return rc;
	rc = mdb_get(txn, s->db_events, &k, &v);
	if (rc == 0)
		dcr_buf_append(out, v.mv_data, v.mv_size);
	rd_end(s, txn);
	return mdb_to_dcr(rc);
}

/* Copies up to one chunk (max_n entries, or max_bytes, at least one entry)
 * of entries [seq, to) into b; offs[i] is where entry i starts, offs[*n]
 * the end. *more is false at the end of the room. */
static int fold_chunk(es_store *s, const uint8_t *room, uint64_t seq, uint64_t to, size_t max_n,
                      size_t max_bytes, dcr_buf *b, size_t *offs, size_t *n, bool *more)
{
	uint8_t key[24];
	MDB_val k = {sizeof(key), key}, v;
	MDB_cursor *cur = NULL;
	MDB_txn *txn;
	int rc;

	*n = 0;
	*more = false;
	dcr_buf_reset(b);
	rc = rd_begin(s, &txn);
	if (rc != 0)
		return rc;
	rc = mdb_cursor_open(txn, s->db_events, &cur);
	if (rc != 0)
		goto out;
	ev_key(key, room, seq);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
	while (rc == 0) {
		if (k.mv_size != 24 || memcmp(k.mv_data, room, ES_ROOM_ID_BYTES) != 0)
			break; /* next room */
		if (dcr_get_be64((const uint8_t *)k.mv_data + ES_ROOM_ID_BYTES) != seq) {
			rc = DCR_EINTEGRITY; /* sequences are dense */
			goto out;
		}
		offs[*n] = b->len;
		dcr_buf_append(b, v.mv_data, v.mv_size);
		(*n)++;
		seq++;
		if (seq >= to)
			break;
		if (*n == max_n || b->len >= max_bytes) {
			*more = true;
			break;
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	offs[*n] = b->len;
	rc = (rc == 0 || rc == MDB_NOTFOUND) ? 0 : rc == DCR_EINTEGRITY ? rc : DCR_ESTORE;
	if (rc == 0 && !*more && seq < to) {
		/* The room's events ended before to: the snapshot's room size must
		 * agree, else events are missing (never a silently short fold). */
		uint64_t size;

		rc = get_size(s, txn, room, &size);
		rc = rc != 0 ? DCR_ESTORE : size > seq ? DCR_EINTEGRITY : 0;
	}
out:
	if (cur)
		mdb_cursor_close(cur);
	rd_end(s, txn);
	return rc;
}

int es_fold(es_store *s, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t from, uint64_t to,
            es_fold_fn fn, void *ctx)
{
	size_t *offs = dcr_calloc(ES_FOLD_CHUNK_EVENTS + 1, sizeof(*offs));
	/* Chunks start small (a caller reading the tail, or stopping early,
	 * copies little) and double up to the limits (replay). */
	size_t max_n = 32, max_bytes = 256 * 1024;
	uint64_t seq = from;
	bool more = true;
	dcr_buf b;
	int rc = 0;

	dcr_buf_init(&b);
	while (more && seq < to) {
		size_t n;

		rc = fold_chunk(s, room, seq, to, max_n, max_bytes, &b, offs, &n, &more);
		if (max_n < ES_FOLD_CHUNK_EVENTS)
			max_n *= 2;
		if (max_bytes < ES_FOLD_CHUNK_BYTES)
			max_bytes *= 2;
		if (rc != 0)
			break;
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = fn(ctx, seq + i, b.data + offs[i], offs[i + 1] - offs[i]);
		if (rc != 0)
			break;
		seq += n;
	}
	dcr_buf_release(&b);
	free(offs);
	return rc;
}

/* ---- roots and proofs ------------------------------------------------------------- */

int es_root(es_store *s, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t size, uint8_t root[32])
{
	MDB_txn *txn;
	uint64_t have;
	int rc;

	rc = rd_begin(s, &txn);
	if (rc != 0)
		return rc;
	rc = mdb_to_dcr(get_size(s, txn, room, &have));
	if (rc == 0 && size > have)
		rc = DCR_EINVALID;
	if (rc == 0)
		rc = root_in_txn(s, txn, room, size, root);
	rd_end(s, txn);
	return rc;
}

int es_inclusion_proof(es_store *s, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t index,
                       uint64_t size, uint8_t (*proof)[32], size_t *proof_n)
{
	MDB_txn *txn;
	range_ctx c;
	uint64_t have;
	int rc;

	*proof_n = 0;
	rc = rd_begin(s, &txn);
	if (rc != 0)
		return rc;
	rc = mdb_to_dcr(get_size(s, txn, room, &have));
	if (rc == 0 && (size > have || index >= size))
		rc = DCR_EINVALID;
	if (rc == 0) {
		c.s = s;
		c.txn = txn;
		c.room = room;
		rc = es__inclusion(range_store, &c, index, size, proof, proof_n);
	}
	rd_end(s, txn);
	return rc;
}

int es_consistency_proof(es_store *s, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t size_old,
                         uint64_t size_new, uint8_t (*proof)[32], size_t *proof_n)
{
	MDB_txn *txn;
	range_ctx c;
	uint64_t have;
	int rc;

	*proof_n = 0;
	rc = rd_begin(s, &txn);
	if (rc != 0)
		return rc;
	rc = mdb_to_dcr(get_size(s, txn, room, &have));
	if (rc == 0 && (size_new > have || size_old > size_new))
		rc = DCR_EINVALID;
	if (rc == 0) {
		c.s = s;
		c.txn = txn;
		c.room = room;
		rc = es__consistency(range_store, &c, size_old, size_new, proof, proof_n);
	}
	rd_end(s, txn);
	return rc;
}
