/* test_es_store.c: the LMDB event store.
 *
 * - basics: append/get/size, DCR_ESEQ on a wrong expect_seq, checkpoints
 *   returned and stored, room listing, the meta table;
 * - proofs from the store equal the reference ones (es_merkle_*) and
 *   verify, for every size up to 80 and samples beyond;
 * - es_fold across chunk boundaries (by count and by bytes), early stop,
 *   and appending from inside the callback;
 * - fold_missing: a fold over an event deleted behind the store's back is
 *   DCR_EINTEGRITY, never a short fold with rc 0;
 * - concurrency: 8 threads append to 4 rooms at once (some with
 *   expect_seq and retries) while readers fold and prove: per-room
 *   sequences dense, each thread's ordered, contents and roots right, and
 *   commits shared (group commit); the reader reads a room's size, then in
 *   a new transaction all events up to it (a snapshot must never go back;
 *   each failing call is reported with its rc);
 * - copy: es_copy while a thread appends opens as one commit's state, a
 *   prefix of the original (sizes, roots, checkpoints); a bad fd fails;
 * - map growth from a 64 KiB map;
 * - durability: a child appends with full sync and reports each
 *   acknowledged seq through a pipe; it is SIGKILLed at random points; after
 *   each kill the store is reopened and every acknowledged event must be
 *   there, byte-identical, sequences dense, roots and checkpoint right.
 * Temporary directories live under /tmp/dcr-test-XXXXXX and are removed. */
#include <dirent.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "../../eventstore/eventstore.h"

#include "test.h"

static char tmp_root[64];
static dcr_key *daemon_key, *user_key;
static uint8_t daemon_pub[32];
static bool sanitized;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void cleanup(void)
{
	if (tmp_root[0])
		nftw(tmp_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	tmp_root[0] = '\0';
}

static char *subdir(const char *name)
{
	return dcr_asprintf("%s/%s", tmp_root, name);
}

/* A deterministic entry for (room, seq): Ed25519 signatures are
 * deterministic, so the parent can rebuild what a child appended. */
static void make_entry(const dcr_key *k, const uint8_t room[16], uint64_t seq, size_t pad,
                       dcr_buf *out)
{
	dcr_buf body;
	dcr_mpw w;
	dcr_err err;
	uint8_t *p = dcr_malloc(pad + 1);

	for (size_t i = 0; i < pad; i++)
		p[i] = (uint8_t)(seq * 131 + i * 7 + room[0]);
	dcr_buf_init(&body);
	dcr_mpw_init(&w, &body);
	dcr_mpw_map(&w, 2);
	dcr_mpw_str(&w, "pad");
	dcr_mpw_bin(&w, p, pad);
	dcr_mpw_str(&w, "seq");
	dcr_mpw_uint(&w, seq);
	dcr_buf_reset(out);
	if (es_event_build(k, room, seq, 1764072000000ull + seq, "test.event", body.data, body.len,
	                   out, &err) != 0) {
		fprintf(stderr, "build: %s\n", err.msg);
		abort();
	}
	dcr_buf_release(&body);
	free(p);
}

/* ---- whole-room check ------------------------------------------------------------ */

typedef struct {
	uint8_t (*leaves)[32];
	uint64_t n, cap;
	uint64_t next;
	bool dense;
	const uint8_t *room;
	int verify; /* 1: decode + signature; 2: also the room and seq fields */
	int bad;
} collect;

static int collect_fn(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	collect *c = ctx;

	if (seq != c->next)
		c->dense = false;
	c->next = seq + 1;
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 1024;
		c->leaves = dcr_realloc(c->leaves, c->cap * 32);
	}
	es_leaf_hash(entry, n, c->leaves[c->n++]);
	if (c->verify) {
		es_event ev;
		dcr_err err;

		if (es_event_decode(entry, n, &ev, &err) != 0 || es_event_verify(&ev, &err) != 0 ||
		    (c->verify > 1 && (ev.seq != seq || memcmp(ev.room, c->room, 16) != 0)))
			c->bad++;
		es_event_release(&ev);
	}
	return 0;
}

/* Folds the room, checks density, root vs reference, latest checkpoint.
 * Returns the room size. */
static uint64_t check_room_leaves(es_store *s, const uint8_t room[16], int verify, bool want_cp,
                                  uint8_t (**leaves_out)[32])
{
	collect c = {.dense = true, .room = room, .verify = verify};
	uint8_t root[32], ref[32];
	uint64_t size;
	es_checkpoint cp;
	dcr_err err;
	int rc;

	CHECK(es_room_size(s, room, &size) == 0, "size");
	rc = es_fold(s, room, 0, ES_SEQ_ANY, collect_fn, &c);
	CHECK(rc == 0, "fold: %d", rc);
	CHECK(c.dense, "sequences dense");
	CHECK(c.n == size, "fold saw %" PRIu64 " events, size %" PRIu64, c.n, size);
	CHECK(c.bad == 0, "%d entries do not decode/verify", c.bad);
	CHECK(es_root(s, room, size, root) == 0, "root");
	es_merkle_root((const uint8_t(*)[32])c.leaves, c.n, ref);
	CHECK(memcmp(root, ref, 32) == 0,
	      "stored root equals the recomputed one (size %" PRIu64 ")", size);
	if (want_cp && size > 0) {
		rc = es_latest_checkpoint(s, room, &cp);
		CHECK(rc == 0, "latest checkpoint: %d", rc);
		CHECK(es_checkpoint_verify(&cp, &err) == 0, "checkpoint verifies: %s", err.msg);
		CHECK(memcmp(cp.key, daemon_pub, 32) == 0, "signed by the daemon");
		CHECK(memcmp(cp.room, room, 16) == 0, "checkpoint room");
		CHECK(cp.size == size, "checkpoint size %" PRIu64 " vs %" PRIu64, cp.size, size);
		CHECK(memcmp(cp.root, root, 32) == 0, "checkpoint root");
	}
	if (leaves_out)
		*leaves_out = c.leaves;
	else
		free(c.leaves);
	return size;
}

static uint64_t check_room(es_store *s, const uint8_t room[16], int verify, bool want_cp)
{
	return check_room_leaves(s, room, verify, want_cp, NULL);
}

/* Counts descriptors open on files under dir that a child would inherit
 * across exec (compute sandboxes must never get the log). */
static int inheritable_fds(const char *dir)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0, found = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char path[300], target[512];
		ssize_t len;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		fd = (int)strtol(de->d_name, NULL, 10);
		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		len = readlink(path, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (strncmp(target, dir, strlen(dir)) != 0)
			continue;
		found++;
		if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC))
			n++;
	}
	closedir(d);
	return found > 0 ? n : -1;
}

/* ---- basics ------------------------------------------------------------------------ */

typedef struct {
	uint8_t ids[8][16];
	int n, stop_after;
} room_list;

static int list_fn(void *ctx, const uint8_t room[16])
{
	room_list *l = ctx;

	if (l->n < 8)
		memcpy(l->ids[l->n], room, 16);
	l->n++;
	return l->n == l->stop_after ? 99 : 0;
}

static void test_basics(void)
{
	char *dir = subdir("basics");
	es_options opt = {.no_sync = true, .checkpoint_key = daemon_key};
	uint8_t r1[16], r2[16], root[32];
	es_store *s;
	dcr_buf e, got;
	dcr_err err;
	uint64_t seq, size;
	es_checkpoint cp, latest;
	int rc;

	dcr_buf_init(&e);
	dcr_buf_init(&got);
	memset(r1, 0x11, 16);
	memset(r2, 0x22, 16);
	rc = es_open(&s, dir, &opt, &err);
	CHECK(rc == 0, "open: %s", err.msg);
	if (rc != 0)
		goto out;
	CHECK(inheritable_fds(dir) == 0, "store descriptors are close-on-exec (%d)",
	      inheritable_fds(dir));
	{
		es_store *s2 = NULL;
		char *alias = dcr_asprintf("%s/../basics", dir);

		CHECK(es_open(&s2, alias, &opt, &err) == DCR_EEXIST && s2 == NULL,
		      "second open of one directory refused: %s", err.msg);
		free(alias);
	}
	CHECK(es_room_size(s, r1, &size) == 0 && size == 0, "unknown room is empty");
	CHECK(es_latest_checkpoint(s, r1, &cp) == DCR_ENOTFOUND, "no checkpoint yet");
	CHECK(es_get(s, r1, 0, &got) == DCR_ENOTFOUND, "no entry yet");
	CHECK(es_root(s, r1, 0, root) == 0, "empty root");
	CHECK(es_root(s, r1, 1, root) == DCR_EINVALID, "root beyond size");

	for (uint64_t i = 0; i < 5; i++) {
		make_entry(user_key, r1, i, 10, &e);
		rc = es_append(s, r1, i, e.data, e.len, &seq, &cp, &err);
		CHECK(rc == 0 && seq == i, "append %" PRIu64 ": %s", i, err.msg);
		CHECK(cp.size == i + 1 && memcmp(cp.room, r1, 16) == 0, "cp for the commit");
		CHECK(es_checkpoint_verify(&cp, &err) == 0, "cp verifies");
		CHECK(es_root(s, r1, i + 1, root) == 0 && memcmp(root, cp.root, 32) == 0,
		      "cp root");
		CHECK(es_latest_checkpoint(s, r1, &latest) == 0 &&
		          memcmp(&latest, &cp, sizeof(cp)) == 0,
		      "latest checkpoint is the one returned");
	}
	/* Wrong expect_seq: too small, too big; nothing appended. */
	make_entry(user_key, r1, 5, 10, &e);
	rc = es_append(s, r1, 4, e.data, e.len, &seq, NULL, &err);
	CHECK(rc == DCR_ESEQ, "stale expect_seq: %d", rc);
	CHECK(strstr(err.msg, "expects seq 4 but the room has 5 events") != NULL, "msg: %s",
	      err.msg);
	CHECK(es_append(s, r1, 6, e.data, e.len, &seq, NULL, &err) == DCR_ESEQ, "future seq");
	CHECK(es_room_size(s, r1, &size) == 0 && size == 5, "nothing appended");
	CHECK(es_append(s, r1, ES_SEQ_ANY, e.data, e.len, &seq, NULL, &err) == 0 && seq == 5,
	      "ES_SEQ_ANY");
	/* Entries must be plausible in size. */
	CHECK(es_append(s, r1, ES_SEQ_ANY, e.data, 64, &seq, NULL, &err) == DCR_ELIMIT,
	      "64-byte entry");
	CHECK(es_append(s, r1, ES_SEQ_ANY, e.data, 0, &seq, NULL, &err) == DCR_EINVALID, "empty");
	/* A second room; bytes come back identical. */
	make_entry(user_key, r2, 0, 3000, &e);
	CHECK(es_append(s, r2, 0, e.data, e.len, &seq, NULL, &err) == 0 && seq == 0, "room 2");
	CHECK(es_get(s, r2, 0, &got) == 0 && got.len == e.len &&
	          memcmp(got.data, e.data, e.len) == 0,
	      "es_get identical");
	CHECK(es_get(s, r2, 1, &got) == DCR_ENOTFOUND, "beyond the end");
	check_room(s, r1, 2, true);
	check_room(s, r2, 2, true);

	/* Rooms are listed once each; fn's non-zero return stops and is returned. */
	{
		room_list l = {.stop_after = -1};

		CHECK(es_rooms(s, list_fn, &l) == 0 && l.n == 2, "two rooms, got %d", l.n);
		CHECK(memcmp(l.ids[0], r1, 16) == 0 && memcmp(l.ids[1], r2, 16) == 0, "sorted");
		memset(&l, 0, sizeof(l));
		l.stop_after = 1;
		CHECK(es_rooms(s, list_fn, &l) == 99 && l.n == 1, "early stop");
	}

	/* meta */
	dcr_buf_reset(&got);
	CHECK(es_meta_get(s, "blob/abc", &got) == DCR_ENOTFOUND, "meta absent");
	CHECK(es_meta_put(s, "blob/abc", "v1", 2) == 0, "meta put");
	CHECK(es_meta_get(s, "blob/abc", &got) == 0 && got.len == 2 &&
	          memcmp(got.data, "v1", 2) == 0,
	      "meta get");
	CHECK(es_meta_put(s, "blob/abc", "value2", 6) == 0, "meta overwrite");
	dcr_buf_reset(&got);
	CHECK(es_meta_get(s, "blob/abc", &got) == 0 && got.len == 6, "meta overwritten");
	CHECK(es_meta_put(s, "empty", NULL, 0) == 0, "empty value");
	dcr_buf_reset(&got);
	CHECK(es_meta_get(s, "empty", &got) == 0 && got.len == 0, "empty value back");
	CHECK(es_meta_del(s, "blob/abc") == 0, "meta del");
	CHECK(es_meta_get(s, "blob/abc", &got) == DCR_ENOTFOUND, "meta deleted");
	CHECK(es_meta_del(s, "blob/abc") == 0, "deleting twice is fine");
	CHECK(es_meta_put(s, "", "x", 1) == DCR_ELIMIT, "empty key");
	{
		char longkey[ES_META_KEY_BYTES_MAX + 2];

		memset(longkey, 'k', sizeof(longkey) - 1);
		longkey[sizeof(longkey) - 1] = '\0';
		CHECK(es_meta_put(s, longkey, "x", 1) == DCR_ELIMIT, "long key");
		longkey[ES_META_KEY_BYTES_MAX] = '\0';
		CHECK(es_meta_put(s, longkey, "x", 1) == 0, "longest key");
	}
	CHECK(es_meta_put(s, "big", e.data, ES_META_VALUE_BYTES_MAX + 1) == DCR_ELIMIT,
	      "big value");
	es_close(s);

	/* Everything is still there after reopening, without a checkpoint key. */
	opt.checkpoint_key = NULL;
	rc = es_open(&s, dir, &opt, &err);
	CHECK(rc == 0, "reopen: %s", err.msg);
	if (rc != 0)
		goto out;
	CHECK(es_room_size(s, r1, &size) == 0 && size == 6, "size after reopen");
	dcr_buf_reset(&got);
	CHECK(es_meta_get(s, "empty", &got) == 0, "meta after reopen");
	make_entry(user_key, r1, 6, 10, &e);
	CHECK(es_append(s, r1, 6, e.data, e.len, &seq, &cp, &err) == 0, "append without key");
	CHECK(cp.size == 7 && es_checkpoint_verify(&cp, &err) != 0, "unsigned checkpoint");
	CHECK(es_root(s, r1, 7, root) == 0 && memcmp(root, cp.root, 32) == 0, "root still set");
	CHECK(es_latest_checkpoint(s, r1, &latest) == 0 && latest.size == 6 &&
	          memcmp(latest.key, daemon_pub, 32) == 0 && es_checkpoint_verify(&latest, NULL) != 0,
	      "the stored checkpoint stays the last one of the key, unsigned without it");
	es_close(s);

	/* Commits store checkpoints unsigned; a read with the key signs them:
	 * byte for byte what signing at commit time gives (deterministic),
	 * the same on every read. Another key signs nothing of them. */
	opt.checkpoint_key = daemon_key;
	rc = es_open(&s, dir, &opt, &err);
	CHECK(rc == 0, "reopen with the key: %s", err.msg);
	if (rc != 0)
		goto out;
	{
		es_checkpoint fresh, again;
		CHECK(es_latest_checkpoint(s, r1, &latest) == 0 && latest.size == 6 &&
		          es_checkpoint_verify(&latest, &err) == 0,
		      "signed when read with the key: %s", err.msg);
		fresh = latest;
		memset(fresh.sig, 0, sizeof fresh.sig);
		CHECK(es_checkpoint_sign(&fresh, daemon_key) == 0 &&
		          memcmp(&fresh, &latest, sizeof fresh) == 0,
		      "the signature of the stored body");
		CHECK(es_latest_checkpoint(s, r1, &again) == 0 &&
		          memcmp(&again, &latest, sizeof again) == 0,
		      "the same on the next read");
	}
	es_close(s);
	opt.checkpoint_key = user_key;
	rc = es_open(&s, dir, &opt, &err);
	CHECK(rc == 0, "reopen with another key: %s", err.msg);
	if (rc != 0)
		goto out;
	CHECK(es_latest_checkpoint(s, r1, &latest) == 0 && latest.size == 6 &&
	          memcmp(latest.key, daemon_pub, 32) == 0 &&
	          es_checkpoint_verify(&latest, NULL) != 0,
	      "another key does not sign the daemon's checkpoints");
	es_close(s);
	es_close(NULL);
out:
	dcr_buf_release(&e);
	dcr_buf_release(&got);
	free(dir);
}

/* ---- es_append_start / es_append_wait ---------------------------------------------- */

static void test_pipeline(void)
{
	char *dir = subdir("pipeline");
	es_options opt = {.checkpoint_key = daemon_key}; /* full sync */
	enum { N = 50 };
	uint8_t room[16];
	es_pending *p[N + 3];
	dcr_buf e[N], scratch, got;
	es_store *s;
	es_stats st;
	dcr_err err;
	uint64_t seq, size;
	es_checkpoint cp;
	int rc;

	dcr_buf_init(&scratch);
	dcr_buf_init(&got);
	memset(room, 0x77, 16);
	rc = es_open(&s, dir, &opt, &err);
	CHECK(rc == 0, "open: %s", err.msg);
	if (rc != 0) {
		free(dir);
		return;
	}
	/* N appends queued back to back, the source bytes overwritten at once.
	 * The entries are signed beforehand, so queuing takes microseconds
	 * and the writer's commits must be shared even on a loaded machine. */
	for (int i = 0; i < N; i++) {
		dcr_buf_init(&e[i]);
		make_entry(user_key, room, (uint64_t)i, 40, &e[i]);
	}
	for (int i = 0; i < N; i++) {
		dcr_buf_reset(&scratch);
		dcr_buf_append(&scratch, e[i].data, e[i].len);
		rc = es_append_start(s, room, (uint64_t)i, scratch.data, scratch.len, &p[i], &err);
		CHECK(rc == 0 && p[i], "start %d: %s", i, err.msg);
		memset(scratch.data, 0xee, scratch.len);
	}
	for (int i = 0; i < N; i++) {
		rc = es_append_wait(p[i], &seq, &cp, &err);
		CHECK(rc == 0 && seq == (uint64_t)i, "wait %d: %s", i, err.msg);
		CHECK(cp.size > seq && es_checkpoint_verify(&cp, &err) == 0, "checkpoint %d", i);
	}
	es_stats_get(s, &st);
	CHECK(st.commits < N, "%" PRIu64 " commits for %d queued appends", st.commits, N);
	for (int i = 0; i < N; i++) {
		dcr_buf_reset(&got);
		CHECK(es_get(s, room, (uint64_t)i, &got) == 0 && got.len == e[i].len &&
		          memcmp(got.data, e[i].data, got.len) == 0,
		      "entry %d is the copy taken at start", i);
		dcr_buf_release(&e[i]);
	}
	check_room(s, room, 2, true);

	/* A wrong expect_seq fails, and so does every append queued after it. */
	make_entry(user_key, room, N + 10, 40, &scratch);
	for (int i = 0; i < 3; i++)
		CHECK(es_append_start(s, room, (uint64_t)(N + 10 + i), scratch.data, scratch.len,
		                      &p[i], &err) == 0,
		      "start");
	for (int i = 0; i < 3; i++)
		CHECK(es_append_wait(p[i], &seq, NULL, &err) == DCR_ESEQ, "cascade %d", i);
	CHECK(es_room_size(s, room, &size) == 0 && size == N, "nothing appended");

	CHECK(es_append_start(s, room, ES_SEQ_ANY, scratch.data, 0, &p[0], &err) == DCR_EINVALID &&
	          p[0] == NULL,
	      "empty entry refused at start");
	CHECK(es_append_wait(NULL, &seq, NULL, &err) == DCR_EINVALID, "wait(NULL)");
	es_close(s);
	dcr_buf_release(&scratch);
	dcr_buf_release(&got);
	free(dir);
}

/* ---- copies (es_copy) ------------------------------------------------------------------ */

struct copy_writer {
	es_store *s;
	uint8_t room[16];
	atomic_bool stop;
	uint64_t appended;
};

static void *copy_writer_main(void *arg)
{
	struct copy_writer *w = arg;
	dcr_buf e;
	dcr_err err;

	dcr_buf_init(&e);
	while (!atomic_load(&w->stop) && w->appended < 20000) {
		make_entry(user_key, w->room, w->appended, 30, &e);
		if (es_append(w->s, w->room, w->appended, e.data, e.len, NULL, NULL, &err) != 0)
			break;
		w->appended++;
	}
	dcr_buf_release(&e);
	return NULL;
}

/* es_copy while a thread appends: the copy opens as one commit's state
 * (each room dense, its stored root that of the original's first `size`
 * events, its checkpoint for exactly that size), a prefix of the
 * original; a copy into a bad descriptor fails with the system's reason. */
static void test_copy(void)
{
	char *dir = subdir("copy"), *cdir = subdir("copy.out"), *cpath = NULL;
	es_options opt = {.no_sync = true, .checkpoint_key = daemon_key};
	struct copy_writer w;
	uint8_t other[16], r1[32], r2[32];
	uint64_t size = 0, osize = 0;
	es_checkpoint cp;
	pthread_t th;
	es_store *s = NULL, *c = NULL;
	dcr_buf e;
	dcr_err err;
	int fd, rc;

	memset(&w, 0, sizeof w);
	dcr_buf_init(&e);
	memset(w.room, 0x51, 16);
	memset(other, 0x52, 16);
	rc = es_open(&s, dir, &opt, &err);
	CHECK(rc == 0, "open: %s", err.msg);
	if (rc != 0)
		goto out;
	for (uint64_t i = 0; i < 50; i++) {
		make_entry(user_key, other, i, 100, &e);
		CHECK(es_append(s, other, i, e.data, e.len, NULL, NULL, &err) == 0, "append");
	}
	w.s = s;
	for (; w.appended < 100; w.appended++) {
		make_entry(user_key, w.room, w.appended, 30, &e);
		CHECK(es_append(s, w.room, w.appended, e.data, e.len, NULL, NULL, &err) == 0,
		      "append");
	}
	pthread_create(&th, NULL, copy_writer_main, &w);
	mkdir(cdir, 0700);
	cpath = dcr_asprintf("%s/data.mdb", cdir);
	fd = open(cpath, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0, "create %s", cpath);
	rc = es_copy(s, fd, &err);
	CHECK(rc == 0, "es_copy: %s", err.msg);
	close(fd);
	atomic_store(&w.stop, true);
	pthread_join(th, NULL);

	rc = es_open(&c, cdir, &opt, &err);
	CHECK(rc == 0, "open the copy: %s", err.msg);
	if (rc != 0)
		goto out;
	CHECK(es_room_size(c, other, &osize) == 0 && osize == 50, "other room in the copy: %" PRIu64,
	      osize);
	CHECK(es_room_size(c, w.room, &size) == 0 && size >= 100 && size <= w.appended,
	      "copied room: %" PRIu64 " of %" PRIu64, size, w.appended);
	CHECK(es_root(c, w.room, size, r1) == 0 && es_root(s, w.room, size, r2) == 0 &&
	          memcmp(r1, r2, 32) == 0,
	      "the copy's root is the original's at size %" PRIu64, size);
	CHECK(es_latest_checkpoint(c, w.room, &cp) == 0 && cp.size == size &&
	          memcmp(cp.root, r1, 32) == 0,
	      "the copy's checkpoint is for its size");
	check_room(c, w.room, 2, true);
	check_room(c, other, 2, true);
	/* a descriptor that cannot be written */
	fd = open(cpath, O_RDONLY);
	rc = es_copy(s, fd, &err);
	CHECK(rc < 0 && strstr(err.msg, "copying the event store") != NULL,
	      "copy to a read-only descriptor: rc %d %s", rc, err.msg);
	close(fd);
	printf("  copy: %" PRIu64 " of %" PRIu64 " events of the appended room\n", size,
	       w.appended);
out:
	es_close(c);
	es_close(s);
	dcr_buf_release(&e);
	free(cpath);
	free(cdir);
	free(dir);
}

/* ---- proofs ------------------------------------------------------------------------ */

static void test_proofs(void)
{
	char *dir = subdir("proofs");
	es_options opt = {.no_sync = true, .checkpoint_key = daemon_key};
	const uint64_t N = 300, FULL = sanitized ? 40 : 80;
	uint8_t room[16], (*leaves)[32] = dcr_calloc(N, 32);
	uint8_t p1[ES_PROOF_HASHES_MAX][32], p2[ES_PROOF_HASHES_MAX][32], r[32], ref[32];
	size_t n1, n2;
	es_store *s;
	dcr_buf e;
	dcr_err err;
	int rc;

	dcr_buf_init(&e);
	memset(room, 0x33, 16);
	rc = es_open(&s, dir, &opt, &err);
	CHECK(rc == 0, "open: %s", err.msg);
	if (rc != 0)
		goto out;
	for (uint64_t i = 0; i < N; i++) {
		make_entry(user_key, room, i, i % 50, &e);
		es_leaf_hash(e.data, e.len, leaves[i]);
		CHECK(es_append(s, room, i, e.data, e.len, NULL, NULL, &err) == 0, "append");
	}
	for (uint64_t n = 0; n <= N; n++) {
		es_merkle_root((const uint8_t(*)[32])leaves, n, ref);
		CHECK(es_root(s, room, n, r) == 0 && memcmp(r, ref, 32) == 0,
		      "root of size %" PRIu64, n);
	}
	for (uint64_t n = 1; n <= N; n++) {
		bool full = n <= FULL || n == N || (n & (n - 1)) == 0;

		for (uint64_t i = 0; i < n; i++) {
			if (!full && dcr_random_below(n) >= 3)
				continue;
			CHECK(es_inclusion_proof(s, room, i, n, p1, &n1) == 0, "store inclusion");
			CHECK(es_merkle_inclusion((const uint8_t(*)[32])leaves, n, i, p2, &n2) == 0,
			      "ref inclusion");
			CHECK(n1 == n2 && memcmp(p1, p2, n1 * 32) == 0,
			      "inclusion %" PRIu64 "/%" PRIu64 " equals the reference", i, n);
			es_merkle_root((const uint8_t(*)[32])leaves, n, ref);
			CHECK(es_verify_inclusion(i, n, leaves[i], (const uint8_t(*)[32])p1, n1,
			                          ref) == 0,
			      "verifies");
		}
		for (uint64_t m = 0; m <= n; m++) {
			uint8_t ro[32];

			if (!full && dcr_random_below(n) >= 3)
				continue;
			CHECK(es_consistency_proof(s, room, m, n, p1, &n1) == 0,
			      "store consistency");
			CHECK(es_merkle_consistency((const uint8_t(*)[32])leaves, m, n, p2, &n2) ==
			          0,
			      "ref consistency");
			CHECK(n1 == n2 && memcmp(p1, p2, n1 * 32) == 0,
			      "consistency %" PRIu64 "->%" PRIu64 " equals the reference", m, n);
			es_merkle_root((const uint8_t(*)[32])leaves, m, ro);
			es_merkle_root((const uint8_t(*)[32])leaves, n, ref);
			CHECK(es_verify_consistency(m, n, ro, ref, (const uint8_t(*)[32])p1, n1) ==
			          0,
			      "verifies");
		}
	}
	CHECK(es_inclusion_proof(s, room, 5, N + 1, p1, &n1) == DCR_EINVALID, "size > room");
	CHECK(es_inclusion_proof(s, room, N, N, p1, &n1) == DCR_EINVALID, "index == size");
	CHECK(es_consistency_proof(s, room, 10, N + 1, p1, &n1) == DCR_EINVALID, "new > room");
	CHECK(es_consistency_proof(s, room, 11, 10, p1, &n1) == DCR_EINVALID, "old > new");
	es_close(s);
out:
	dcr_buf_release(&e);
	free(leaves);
	free(dir);
}

/* ---- fold -------------------------------------------------------------------------- */

typedef struct {
	es_store *s;
	const uint8_t *room, *other;
	uint64_t first, next, stop_at;
	uint64_t count;
	bool dense, same;
	bool append_inside;
	size_t pad;
} fold_ctx;

static int fold_check(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	fold_ctx *f = ctx;
	dcr_buf want;

	if (f->count == 0)
		f->first = seq;
	else if (seq != f->next)
		f->dense = false;
	f->next = seq + 1;
	f->count++;
	dcr_buf_init(&want);
	make_entry(user_key, f->room, seq, f->pad, &want);
	if (want.len != n || memcmp(want.data, entry, n) != 0)
		f->same = false;
	if (f->append_inside && seq % 500 == 0) {
		dcr_err err;

		/* The callback runs outside any transaction: writing is fine. */
		make_entry(user_key, f->other, ES_SEQ_ANY - 1, 1, &want);
		if (es_append(f->s, f->other, ES_SEQ_ANY, want.data, want.len, NULL, NULL, &err) !=
		    0)
			f->same = false;
	}
	dcr_buf_release(&want);
	return seq == f->stop_at ? 42 : 0;
}

static void test_fold(void)
{
	char *dir = subdir("fold");
	es_options opt = {.no_sync = true};
	const uint64_t N = 2600, NBIG = 120;
	uint8_t room[16], other[16], big[16];
	es_store *s;
	dcr_buf e;
	dcr_err err;
	uint64_t size;
	int rc;

	dcr_buf_init(&e);
	memset(room, 0x44, 16);
	memset(other, 0x45, 16);
	memset(big, 0x46, 16);
	rc = es_open(&s, dir, &opt, &err);
	CHECK(rc == 0, "open: %s", err.msg);
	if (rc != 0)
		goto out;
	for (uint64_t i = 0; i < N; i++) {
		make_entry(user_key, room, i, 5, &e);
		CHECK(es_append(s, room, i, e.data, e.len, NULL, NULL, &err) == 0, "append");
	}
	/* 120 entries of ~100 KB: several chunks by bytes (8 MiB each). */
	for (uint64_t i = 0; i < NBIG; i++) {
		make_entry(user_key, big, i, 100000, &e);
		CHECK(es_append(s, big, i, e.data, e.len, NULL, NULL, &err) == 0, "append big");
	}
	static const struct {
		uint64_t from, to;
	} ranges[] = {{0, ES_SEQ_ANY}, {0, N},       {1000, 2100}, {1023, 1025},
	              {1024, 1025},    {2047, 2049}, {5, 5},       {2599, 5000},
	              {N, ES_SEQ_ANY}, {7000, 8000}, {0, 1},       {1, 1024 + 1}};
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		fold_ctx f = {.s = s,
		              .room = room,
		              .dense = true,
		              .same = true,
		              .pad = 5,
		              .stop_at = UINT64_MAX};
		uint64_t to = ranges[i].to > N ? N : ranges[i].to;
		uint64_t want = to > ranges[i].from ? to - ranges[i].from : 0;

		CHECK(es_fold(s, room, ranges[i].from, ranges[i].to, fold_check, &f) == 0, "fold");
		CHECK(f.count == want,
		      "[%" PRIu64 ", %" PRIu64 "): %" PRIu64 " events, want %" PRIu64,
		      ranges[i].from, ranges[i].to, f.count, want);
		CHECK(want == 0 || f.first == ranges[i].from, "first");
		CHECK(f.dense && f.same, "dense and identical");
	}
	{
		fold_ctx f = {
		    .s = s, .room = room, .dense = true, .same = true, .pad = 5, .stop_at = 1500};

		CHECK(es_fold(s, room, 0, ES_SEQ_ANY, fold_check, &f) == 42, "stopped by fn");
		CHECK(f.count == 1501, "stopped at 1500");
	}
	{
		fold_ctx f = {.s = s,
		              .room = big,
		              .dense = true,
		              .same = true,
		              .pad = 100000,
		              .stop_at = UINT64_MAX};

		CHECK(es_fold(s, big, 0, ES_SEQ_ANY, fold_check, &f) == 0, "fold big");
		CHECK(f.count == NBIG && f.dense && f.same, "big entries across byte chunks");
	}
	{
		fold_ctx f = {.s = s,
		              .room = room,
		              .other = other,
		              .dense = true,
		              .same = true,
		              .pad = 5,
		              .stop_at = UINT64_MAX,
		              .append_inside = true};

		CHECK(es_fold(s, room, 0, ES_SEQ_ANY, fold_check, &f) == 0, "fold + append");
		CHECK(f.count == N && f.same, "appends from inside the fold");
		CHECK(es_room_size(s, other, &size) == 0 && size == (N + 499) / 500,
		      "other room got %" PRIu64, size);
	}
	check_room(s, room, 2, false);
	check_room(s, big, 0, false);
	es_close(s);
out:
	dcr_buf_release(&e);
	free(dir);
}

/* A fold must never stop short silently: with the last event of a room
 * deleted behind the store's back (the room's size still says 5), a fold up
 * to the size, or to the end, is DCR_EINTEGRITY; a fold of the events that
 * are there still works. */
static int count_fn(void *ctx, uint64_t seq, const void *entry, size_t n);

static void test_fold_missing(void)
{
	char *dir = subdir("fold-missing");
	es_options opt = {.no_sync = true};
	uint8_t room[16], key[24];
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_val k = {sizeof(key), key};
	uint64_t size = 0, count;
	es_store *s;
	dcr_buf e;
	dcr_err err;
	int rc;

	dcr_buf_init(&e);
	memset(room, 0x47, 16);
	rc = es_open(&s, dir, &opt, &err);
	CHECK(rc == 0, "open: %s", err.msg);
	if (rc != 0)
		goto out;
	for (uint64_t i = 0; i < 5; i++) {
		make_entry(user_key, room, i, 5, &e);
		CHECK(es_append(s, room, i, e.data, e.len, NULL, NULL, &err) == 0, "append");
	}
	es_close(s);
	memcpy(key, room, 16);
	dcr_put_be64(key + 16, 4);
	rc = mdb_env_create(&env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(env, 8);
	if (rc == 0)
		rc = mdb_env_open(env, dir, 0, 0600);
	if (rc == 0)
		rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "events", 0, &dbi);
	if (rc == 0)
		rc = mdb_del(txn, dbi, &k, NULL);
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else if (txn)
		mdb_txn_abort(txn);
	CHECK(rc == 0, "delete event 4 with lmdb: %s", mdb_strerror(rc));
	mdb_env_close(env);
	rc = es_open(&s, dir, &opt, &err);
	CHECK(rc == 0, "reopen: %s", err.msg);
	if (rc != 0)
		goto out;
	CHECK(es_room_size(s, room, &size) == 0 && size == 5, "size %" PRIu64, size);
	count = 0;
	rc = es_fold(s, room, 0, 5, count_fn, &count);
	CHECK(rc == DCR_EINTEGRITY, "fold to the size: rc %d after %" PRIu64 " events", rc, count);
	count = 0;
	rc = es_fold(s, room, 0, ES_SEQ_ANY, count_fn, &count);
	CHECK(rc == DCR_EINTEGRITY, "fold to the end: rc %d after %" PRIu64 " events", rc, count);
	count = 0;
	rc = es_fold(s, room, 0, 4, count_fn, &count);
	CHECK(rc == 0 && count == 4, "fold of the 4 left: rc %d, %" PRIu64 " events", rc, count);
	es_close(s);
out:
	dcr_buf_release(&e);
	free(dir);
}

/* ---- concurrency ------------------------------------------------------------------- */

#define THREADS 8
#define ROOMS   4

typedef struct {
	es_store *s;
	int id;
	uint8_t room[16];
	int n;
	uint64_t *seqs;
	int errors;
	bool use_expect;
	size_t pad;
} writer_arg;

static void thread_entry(int id, int i, const uint8_t room[16], uint64_t seq_field, size_t pad,
                         dcr_buf *out)
{
	static const uint8_t zeros[4096];
	dcr_buf body;
	dcr_mpw w;
	dcr_err err;

	DCR_ASSERT(pad <= sizeof(zeros));
	dcr_buf_init(&body);
	dcr_mpw_init(&w, &body);
	dcr_mpw_map(&w, 3);
	dcr_mpw_str(&w, "i");
	dcr_mpw_uint(&w, (uint64_t)i);
	dcr_mpw_str(&w, "p");
	dcr_mpw_bin(&w, zeros, pad);
	dcr_mpw_str(&w, "t");
	dcr_mpw_uint(&w, (uint64_t)id);
	dcr_buf_reset(out);
	DCR_ASSERT(es_event_build(user_key, room, seq_field, 1, "test.concurrent", body.data,
	                          body.len, out, &err) == 0);
	dcr_buf_release(&body);
}

static void *writer_main(void *p)
{
	writer_arg *a = p;
	dcr_buf e;
	dcr_err err;

	dcr_buf_init(&e);
	for (int i = 0; i < a->n; i++) {
		uint64_t seq = 0;
		int rc, tries = 0;

		if (!a->use_expect) {
			thread_entry(a->id, i, a->room, 0, a->pad, &e);
			rc = es_append(a->s, a->room, ES_SEQ_ANY, e.data, e.len, &seq, NULL, &err);
		} else {
			/* Optimistic: read the size, sign for it, retry on ESEQ
			 * (what the daemon's clients do). */
			do {
				uint64_t size;

				es_room_size(a->s, a->room, &size);
				thread_entry(a->id, i, a->room, size, a->pad, &e);
				rc =
				    es_append(a->s, a->room, size, e.data, e.len, &seq, NULL, &err);
			} while (rc == DCR_ESEQ && ++tries < 1000);
		}
		if (rc != 0)
			a->errors++;
		a->seqs[i] = seq;
	}
	dcr_buf_release(&e);
	return NULL;
}

typedef struct {
	es_store *s;
	const uint8_t (*rooms)[16];
	atomic_bool stop; /* set by the main thread: C11 atomic, not volatile (TSan) */
	int errors;
	uint64_t rounds;
} reader_arg;

static int count_fn(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	(void)seq;
	(void)entry;
	(*(uint64_t *)ctx) += n > 0;
	return 0;
}

/* One reader failure, saying which call failed and how (a flaky failure
 * must be diagnosable from the log of the run that hit it). */
static void reader_fail(reader_arg *a, int room, const char *fmt, ...)
{
	va_list ap;

	a->errors++;
	fprintf(stderr, "reader round %" PRIu64 " room %d: ", a->rounds, room);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void *reader_main(void *p)
{
	reader_arg *a = p;
	uint8_t proof[ES_PROOF_HASHES_MAX][32], root[32], leaf[32];
	size_t pn;
	dcr_buf e;

	dcr_buf_init(&e);
	while (!atomic_load(&a->stop)) {
		for (int r = 0; r < ROOMS; r++) {
			uint64_t size, count = 0, size2, count2 = 0;
			int rc;

			rc = es_room_size(a->s, a->rooms[r], &size);
			if (rc != 0) {
				reader_fail(a, r, "es_room_size: rc %d (%s)", rc, dcr_strerror(rc));
				continue;
			}
			/* A later transaction sees at least that size: all of [0, size). */
			rc = es_fold(a->s, a->rooms[r], 0, size, count_fn, &count);
			if (rc != 0 || count != size) {
				/* Which: a size that went back, or a fold that stopped early? */
				int rc2 = es_room_size(a->s, a->rooms[r], &size2);
				int rc3 = es_fold(a->s, a->rooms[r], 0, size, count_fn, &count2);

				reader_fail(a, r,
				            "es_fold(0, %" PRIu64 ") after es_room_size -> %" PRIu64
				            ": rc %d (%s), %" PRIu64
				            " events; then es_room_size rc %d -> %" PRIu64
				            ", es_fold again rc %d, %" PRIu64 " events",
				            size, size, rc, dcr_strerror(rc), count, rc2, size2,
				            rc3, count2);
				continue;
			}
			if (size == 0)
				continue;
			/* A proof for the last entry against the root of that size. */
			dcr_buf_reset(&e);
			if ((rc = es_get(a->s, a->rooms[r], size - 1, &e)) != 0) {
				reader_fail(a, r, "es_get(%" PRIu64 "): rc %d (%s)", size - 1, rc,
				            dcr_strerror(rc));
				continue;
			}
			if ((rc = es_root(a->s, a->rooms[r], size, root)) != 0) {
				reader_fail(a, r, "es_root(%" PRIu64 "): rc %d (%s)", size, rc,
				            dcr_strerror(rc));
				continue;
			}
			rc = es_inclusion_proof(a->s, a->rooms[r], size - 1, size, proof, &pn);
			if (rc != 0) {
				reader_fail(a, r,
				            "es_inclusion_proof(%" PRIu64 ", %" PRIu64
				            "): rc %d (%s)",
				            size - 1, size, rc, dcr_strerror(rc));
				continue;
			}
			es_leaf_hash(e.data, e.len, leaf);
			rc = es_verify_inclusion(size - 1, size, leaf, (const uint8_t(*)[32])proof,
			                         pn, root);
			if (rc != 0)
				reader_fail(a, r,
				            "es_verify_inclusion(%" PRIu64 ", %" PRIu64 "): rc %d",
				            size - 1, size, rc);
		}
		a->rounds++;
	}
	dcr_buf_release(&e);
	return NULL;
}

typedef struct {
	int tid, i;
} origin;

static int origin_fn(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	origin *o = ctx;
	es_event ev;
	uint64_t t, i;

	if (es_event_decode(entry, n, &ev, NULL) != 0)
		return -1;
	if (dcr_mp_u64(dcr_mp_get(ev.body, "t"), &t) != 0 ||
	    dcr_mp_u64(dcr_mp_get(ev.body, "i"), &i) != 0) {
		es_event_release(&ev);
		return -1;
	}
	o[seq].tid = (int)t;
	o[seq].i = (int)i;
	es_event_release(&ev);
	return 0;
}

/* grow: start from a 64 KiB map, so the map is resized (exclusive lock)
 * while readers and writers run; entries are padded to ~3 KB. */
static void concurrency(bool grow)
{
	char *dir = subdir(grow ? "concurrency-grow" : "concurrency");
	/* full sync: commits are shared */
	es_options opt = {.checkpoint_key = daemon_key, .map_size_bytes = grow ? 65536 : 0};
	const int per_thread = sanitized ? 60 : 150;
	uint8_t rooms[ROOMS][16];
	writer_arg wa[THREADS];
	reader_arg ra;
	pthread_t wt[THREADS], rt;
	es_store *s;
	es_stats st;
	dcr_err err;
	int rc;

	for (int r = 0; r < ROOMS; r++)
		memset(rooms[r], 0x50 + r, 16);
	rc = es_open(&s, dir, &opt, &err);
	CHECK(rc == 0, "open: %s", err.msg);
	if (rc != 0) {
		free(dir);
		return;
	}
	ra = (reader_arg){.s = s, .rooms = (const uint8_t(*)[16])rooms};
	pthread_create(&rt, NULL, reader_main, &ra);
	for (int t = 0; t < THREADS; t++) {
		wa[t] = (writer_arg){
		    .s = s, .id = t, .n = per_thread, .use_expect = t >= 4, .pad = grow ? 3000 : 0};
		memcpy(wa[t].room, rooms[t % ROOMS], 16);
		wa[t].seqs = dcr_calloc((size_t)per_thread, sizeof(uint64_t));
		pthread_create(&wt[t], NULL, writer_main, &wa[t]);
	}
	for (int t = 0; t < THREADS; t++)
		pthread_join(wt[t], NULL);
	atomic_store(&ra.stop, true);
	pthread_join(rt, NULL);
	CHECK(ra.errors == 0, "reader saw %d errors in %" PRIu64 " rounds", ra.errors, ra.rounds);

	for (int t = 0; t < THREADS; t++) {
		CHECK(wa[t].errors == 0, "thread %d: %d errors", t, wa[t].errors);
		for (int i = 1; i < per_thread; i++)
			CHECK(wa[t].seqs[i] > wa[t].seqs[i - 1], "thread %d ordered", t);
	}
	for (int r = 0; r < ROOMS; r++) {
		/* writers with ES_SEQ_ANY cannot know their seq when signing */
		uint64_t size = check_room(s, rooms[r], 1, true);
		int total = per_thread * (THREADS / ROOMS);
		origin *o = dcr_calloc((size_t)total, sizeof(*o));

		CHECK(size == (uint64_t)total, "room %d has %" PRIu64 " events", r, size);
		/* Each seq a thread was told holds exactly that thread's entry. */
		CHECK(es_fold(s, rooms[r], 0, (uint64_t)total, origin_fn, o) == 0, "origins");
		for (int t = r; t < THREADS; t += ROOMS)
			for (int i = 0; i < per_thread; i++) {
				uint64_t q = wa[t].seqs[i];

				CHECK(q < (uint64_t)total && o[q].tid == t && o[q].i == i,
				      "seq %" PRIu64 " of room %d holds thread %d entry %d", q, r,
				      t, i);
			}
		free(o);
	}
	es_stats_get(s, &st);
	if (grow)
		CHECK(st.map_grows > 0, "the map grew during the run");
	CHECK(st.appends == (uint64_t)(per_thread * THREADS), "appends %" PRIu64, st.appends);
	CHECK(st.commits < st.appends, "group commit: %" PRIu64 " commits for %" PRIu64 " appends",
	      st.commits, st.appends);
	printf("concurrency%s: %" PRIu64 " appends in %" PRIu64 " commits, %" PRIu64
	       " reader rounds, %" PRIu64 " map grows, %" PRIu64 " read retries\n",
	       grow ? " (growing map)" : "", st.appends, st.commits, ra.rounds, st.map_grows,
	       st.read_retries);
	for (int t = 0; t < THREADS; t++)
		free(wa[t].seqs);
	es_close(s);
	free(dir);
}

static void test_concurrency(void)
{
	concurrency(false);
}

static void test_concurrency_grow(void)
{
	concurrency(true);
}

/* ---- map growth -------------------------------------------------------------------- */

static void test_map_growth(void)
{
	char *dir = subdir("growth");
	es_options opt = {
	    .no_sync = true, .checkpoint_key = daemon_key, .map_size_bytes = 64 * 1024};
	uint8_t room[16], room2[16];
	es_store *s;
	es_stats st;
	dcr_buf e, got;
	dcr_err err;
	int rc;

	dcr_buf_init(&e);
	dcr_buf_init(&got);
	memset(room, 0x60, 16);
	memset(room2, 0x61, 16);
	rc = es_open(&s, dir, &opt, &err);
	CHECK(rc == 0, "open: %s", err.msg);
	if (rc != 0)
		goto out;
	/* ~4 MB in 10 KB entries, then one 1.5 MB entry, then meta. */
	for (uint64_t i = 0; i < 400; i++) {
		make_entry(user_key, room, i, 10000, &e);
		rc = es_append(s, room, i, e.data, e.len, NULL, NULL, &err);
		CHECK(rc == 0, "append %" PRIu64 ": %s", i, err.msg);
	}
	make_entry(user_key, room2, 0, 1500000, &e);
	CHECK(es_append(s, room2, 0, e.data, e.len, NULL, NULL, &err) == 0, "big: %s", err.msg);
	CHECK(es_meta_put(s, "m", e.data, 900000) == 0, "big meta");
	es_stats_get(s, &st);
	CHECK(st.map_grows > 0 && st.map_size_bytes > 5u * 1024 * 1024,
	      "map grew %" PRIu64 " times to %" PRIu64, st.map_grows, st.map_size_bytes);
	es_close(s);

	rc = es_open(&s, dir, &opt, &err); /* the tiny size again: LMDB keeps the file's */
	CHECK(rc == 0, "reopen: %s", err.msg);
	if (rc != 0)
		goto out;
	for (uint64_t i = 0; i < 400; i += 37) {
		make_entry(user_key, room, i, 10000, &e);
		dcr_buf_reset(&got);
		CHECK(es_get(s, room, i, &got) == 0 && got.len == e.len &&
		          memcmp(got.data, e.data, e.len) == 0,
		      "entry %" PRIu64 " after growth", i);
	}
	CHECK(check_room(s, room, 2, true) == 400, "all 400");
	CHECK(check_room(s, room2, 2, true) == 1, "the big one");
	/* And it keeps growing after a reopen. */
	for (uint64_t i = 400; i < 500; i++) {
		make_entry(user_key, room, i, 10000, &e);
		CHECK(es_append(s, room, i, e.data, e.len, NULL, NULL, &err) == 0, "append: %s",
		      err.msg);
	}
	CHECK(check_room(s, room, 0, true) == 500, "all 500");
	es_close(s);
out:
	dcr_buf_release(&e);
	dcr_buf_release(&got);
	free(dir);
}

/* ---- durability -------------------------------------------------------------------- */

typedef struct {
	uint8_t room;
	uint8_t pad[7];
	uint64_t seq;
} ack;

#define DUR_ROOMS 2

static void dur_room(int r, uint8_t room[16])
{
	memset(room, 0x70 + r, 16);
}

typedef struct {
	es_store *s;
	int r, fd;
} dur_arg;

static void *dur_writer(void *p)
{
	dur_arg *a = p;
	uint8_t room[16];
	dcr_buf e;
	dcr_err err;

	dur_room(a->r, room);
	dcr_buf_init(&e);
	for (;;) {
		uint64_t size, seq;
		ack k = {.room = (uint8_t)a->r};

		if (es_room_size(a->s, room, &size) != 0)
			_exit(3);
		make_entry(user_key, room, size, 200 + (size % 7) * 100, &e);
		if (es_append(a->s, room, size, e.data, e.len, &seq, NULL, &err) != 0)
			_exit(4);
		k.seq = seq;
		if (write(a->fd, &k, sizeof(k)) != (ssize_t)sizeof(k))
			_exit(5);
	}
	return NULL;
}

static _Noreturn void dur_child(const char *dir, int fd)
{
	es_options opt = {.checkpoint_key = daemon_key}; /* full sync */
	pthread_t t[DUR_ROOMS];
	dur_arg a[DUR_ROOMS];
	es_store *s;
	dcr_err err;

	if (es_open(&s, dir, &opt, &err) != 0) {
		fprintf(stderr, "child open: %s\n", err.msg);
		_exit(2);
	}
	for (int r = 0; r < DUR_ROOMS; r++) {
		a[r] = (dur_arg){s, r, fd};
		pthread_create(&t[r], NULL, dur_writer, &a[r]);
	}
	for (;;)
		pause();
}

static void test_durability(void)
{
	char *dir = subdir("durability");
	const int kills = 24;
	uint64_t acked[DUR_ROOMS] = {0}; /* highest acknowledged seq + 1 */
	uint64_t total_acks = 0;
	uint8_t(*known[DUR_ROOMS])[32] = {NULL};
	uint64_t known_n[DUR_ROOMS] = {0};
	dcr_buf e, got;

	dcr_buf_init(&e);
	dcr_buf_init(&got);
	for (int k = 0; k < kills; k++) {
		int fds[2];
		pid_t pid;
		ack a;
		ssize_t n;
		es_store *s;
		dcr_err err;
		int status, rc;
		/* A fresh child spends a few ms opening; kill between 1 and 120 ms. */
		struct timespec ts = {0, (long)(1 + dcr_random_below(120)) * 1000000L};

		DCR_ASSERT(pipe(fds) == 0);
		fflush(NULL);
		pid = fork();
		DCR_ASSERT(pid >= 0);
		if (pid == 0) {
			close(fds[0]);
			dur_child(dir, fds[1]);
		}
		close(fds[1]);
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		DCR_ASSERT(waitpid(pid, &status, 0) == pid);
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		      "child died of SIGKILL (status 0x%x)", status);
		/* One writer per room, appending at the room's size: the
		 * acknowledgements of a room are exactly size, size+1, ... */
		while ((n = read(fds[0], &a, sizeof(a))) == (ssize_t)sizeof(a)) {
			CHECK(a.room < DUR_ROOMS, "ack room");
			if (a.room >= DUR_ROOMS)
				break;
			CHECK(a.seq == acked[a.room],
			      "kill %d room %d: ack %" PRIu64 ", expected %" PRIu64, k, a.room,
			      a.seq, acked[a.room]);
			acked[a.room] = a.seq + 1;
			total_acks++;
		}
		CHECK(n == 0, "pipe ends on a record boundary");
		close(fds[0]);

		/* Reopen: everything acknowledged is there, byte for byte. */
		{
			es_options opt = {.checkpoint_key = daemon_key};

			rc = es_open(&s, dir, &opt, &err);
		}
		CHECK(rc == 0, "reopen after kill %d: %s", k, err.msg);
		if (rc != 0)
			break;
		for (int r = 0; r < DUR_ROOMS; r++) {
			uint8_t room[16], (*leaves)[32] = NULL;
			uint64_t size;

			dur_room(r, room);
			/* dense, root = recomputed root, checkpoint signed and matching */
			size = check_room_leaves(s, room, 0, true, &leaves);
			CHECK(size >= acked[r],
			      "kill %d room %d: size %" PRIu64 " < acknowledged %" PRIu64, k, r,
			      size, acked[r]);
			/* Entries checked after earlier kills must not have changed
			 * (their leaf hashes); every new entry, acknowledged or not,
			 * is byte for byte the one the child built. */
			for (uint64_t q = 0; q < known_n[r] && q < size; q++)
				CHECK(memcmp(leaves[q], known[r][q], 32) == 0,
				      "kill %d room %d seq %" PRIu64 " changed", k, r, q);
			for (uint64_t q = known_n[r]; q < size; q++) {
				make_entry(user_key, room, q, 200 + (q % 7) * 100, &e);
				dcr_buf_reset(&got);
				rc = es_get(s, room, q, &got);
				CHECK(rc == 0 && got.len == e.len &&
				          memcmp(got.data, e.data, e.len) == 0,
				      "kill %d room %d seq %" PRIu64 " byte-identical", k, r, q);
			}
			free(known[r]);
			known[r] = leaves;
			known_n[r] = size;
			acked[r] = size; /* the next child continues from here */
		}
		es_close(s);
	}
	printf("durability: %d kills, %" PRIu64 " acknowledged appends, sizes %" PRIu64
	       " and %" PRIu64 "\n",
	       kills, total_acks, acked[0], acked[1]);
	CHECK(total_acks > 0, "the children appended something");
	for (int r = 0; r < DUR_ROOMS; r++)
		free(known[r]);
	dcr_buf_release(&e);
	dcr_buf_release(&got);
	free(dir);
}

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : NULL;

	sanitized = getenv("DCR_SANITIZED") != NULL;
	snprintf(tmp_root, sizeof(tmp_root), "/tmp/dcr-test-XXXXXX");
	if (!mkdtemp(tmp_root)) {
		perror("mkdtemp");
		return 1;
	}
	atexit(cleanup);
	DCR_ASSERT(dcr_key_generate(&daemon_key) == 0);
	DCR_ASSERT(dcr_key_generate(&user_key) == 0);
	dcr_key_public(daemon_key, daemon_pub);

#define RUN(name)                                                                                  \
	do {                                                                                       \
		if (!only || strcmp(only, #name) == 0) {                                           \
			uint64_t t0 = dcr_mono_ms();                                               \
			test_##name();                                                             \
			printf("%s: %" PRIu64 " ms\n", #name, dcr_mono_ms() - t0);                 \
		}                                                                                  \
	} while (0)
	RUN(basics);
	RUN(pipeline);
	RUN(proofs);
	RUN(copy);
	RUN(fold);
	RUN(fold_missing);
	RUN(concurrency);
	RUN(concurrency_grow);
	RUN(map_growth);
	RUN(durability);

	dcr_key_free(daemon_key);
	dcr_key_free(user_key);
	cleanup();
	if (t_failures) {
		fprintf(stderr, "%d failures\n", t_failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
