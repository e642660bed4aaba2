/* bench_es.c: event store figures (see docs/benchmarks.md, "Event store").
 *
 *   bench_es [--events N] [--seconds S] [--dir DIR] [--only limits|durable|replay|verify]
 *            [--no-sync]
 *
 * 1. Machine limits: Ed25519 verifications/s on one core (tight dcr_verify
 *    loop) and on two threads; SHA-256 GB/s; leaf hashes/s of 300-byte
 *    entries.
 * 2. Durable appends/s (full sync) with 1, 8 and 64 concurrent writers,
 *    all on one room and one room per writer. Each append decodes and
 *    verifies the event first, as the daemon does at ingest. Events are
 *    ~300 bytes, signed before the clock starts.
 * 3. Replay: a room of N events (default 1,000,000, loaded without sync)
 *    read back with es_fold alone, and with es_fold + es_event_decode.
 * 4. Verification of the same room (also alone: --only verify): every
 *    event read back with es_fold, decoded and its signature checked
 *    (es_event_verify), with 1 thread and with 2 (each folds one half of
 *    the sequence), against the raw Ed25519 rate measured just before.
 * The store lives in a fresh directory under DIR (default /tmp) and is
 * removed at the end. */
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <unistd.h>

#include "../eventstore/eventstore.h"
#include "bench_harness.h"

#define POOL 1024 /* distinct signed entries reused by writers */

static dcr_key *user_key, *daemon_key;
static dcr_buf pool[POOL];
static double seconds = 3.0;
static bool no_sync; /* --no-sync: diagnostics only, not durable */

/* ~300-byte entries: a body like a dataset.provisioned one. */
static void build_pool(const uint8_t room[16])
{
	for (int i = 0; i < POOL; i++) {
		dcr_buf body;
		dcr_mpw w;
		dcr_err err;
		uint8_t h[32];

		dcr_random(h, sizeof(h));
		dcr_buf_init(&body);
		dcr_buf_init(&pool[i]);
		dcr_mpw_init(&w, &body);
		dcr_mpw_map(&w, 6);
		dcr_mpw_str(&w, "blob");
		dcr_mpw_str(&w, "b3f1c2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718");
		dcr_mpw_str(&w, "bytes");
		dcr_mpw_uint(&w, 1048576 + (uint64_t)i);
		dcr_mpw_str(&w, "dataset");
		dcr_mpw_str(&w, "bank_customers");
		dcr_mpw_str(&w, "file");
		dcr_mpw_str(&w, "customers-2026-11.csv");
		dcr_mpw_str(&w, "rows");
		dcr_mpw_uint(&w, 10000 + (uint64_t)i);
		dcr_mpw_str(&w, "sha256");
		dcr_mpw_bin(&w, h, 32);
		DCR_ASSERT(es_event_build(user_key, room, (uint64_t)i, dcr_now_ms(),
		                          "dataset.provisioned", body.data, body.len, &pool[i],
		                          &err) == 0);
		dcr_buf_release(&body);
	}
}

/* ---- machine limits ------------------------------------------------------------ */

typedef struct {
	double until;
	uint64_t n;
} verify_arg;

static void *verify_loop(void *p)
{
	verify_arg *a = p;
	es_event ev;

	DCR_ASSERT(es_event_decode(pool[0].data, pool[0].len, &ev, NULL) == 0);
	while (bench_now_s() < a->until)
		for (int i = 0; i < 100; i++) {
			DCR_ASSERT(
			    dcr_verify(ev.actor, DCR_DOMAIN_EVENT, ev.env, ev.env_n, ev.sig) == 0);
			a->n++;
		}
	es_event_release(&ev);
	return NULL;
}

static double verify_rate(int threads)
{
	pthread_t t[8];
	verify_arg a[8];
	double t0 = bench_now_s(), dt;
	uint64_t total = 0;

	for (int i = 0; i < threads; i++) {
		a[i] = (verify_arg){t0 + seconds / 2, 0};
		pthread_create(&t[i], NULL, verify_loop, &a[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		total += a[i].n;
	}
	dt = bench_now_s() - t0;
	return (double)total / dt;
}

/* fdatasync latency of a 4 KiB overwrite in dir: a durable LMDB commit
 * does two (data pages, then the meta page). */
static void fsync_rate(const char *dir)
{
	char *path = dcr_asprintf("%s/fsync-probe", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	uint8_t page[4096];
	uint64_t n = 0;
	double t0, dt;

	memset(page, 0xa5, sizeof(page));
	if (fd < 0) {
		perror(path);
		free(path);
		return;
	}
	t0 = bench_now_s();
	while ((dt = bench_now_s() - t0) < seconds / 2) {
		if (pwrite(fd, page, sizeof(page), (off_t)((n % 16) * sizeof(page))) !=
		        (ssize_t)sizeof(page) ||
		    fdatasync(fd) != 0) {
			perror("fsync probe");
			break;
		}
		n++;
	}
	printf("4 KiB write + fdatasync:    %9.0f /s (%.2f ms each)\n", (double)n / dt,
	       dt * 1e3 / (double)(n ? n : 1));
	close(fd);
	unlink(path);
	free(path);
}

static void machine_limits(void)
{
	size_t n = 1u << 20;
	uint8_t *buf = dcr_malloc(n), h[32];
	double t0, dt;
	uint64_t bytes = 0, leaves = 0;

	memset(buf, 0x5a, n);
	printf("machine: %ld cores online\n", sysconf(_SC_NPROCESSORS_ONLN));
	printf("ed25519 verify, 1 thread:   %9.0f /s\n", verify_rate(1));
	printf("ed25519 verify, 2 threads:  %9.0f /s\n", verify_rate(2));
	{
		es_checkpoint cp = {.size = 1};
		uint64_t signs = 0;

		t0 = bench_now_s();
		while ((dt = bench_now_s() - t0) < seconds / 2)
			for (int i = 0; i < 100; i++) {
				cp.size++;
				DCR_ASSERT(es_checkpoint_sign(&cp, daemon_key) == 0);
				signs++;
			}
		printf("checkpoint sign, 1 thread:  %9.0f /s\n", (double)signs / dt);
	}
	t0 = bench_now_s();
	while ((dt = bench_now_s() - t0) < seconds / 2) {
		dcr_sha256(buf, n, h);
		bytes += n;
	}
	printf("sha-256, 1 MiB blocks:      %9.2f GB/s\n", (double)bytes / dt / 1e9);
	t0 = bench_now_s();
	while ((dt = bench_now_s() - t0) < seconds / 2)
		for (int i = 0; i < 1000; i++) {
			es_leaf_hash(pool[i].data, pool[i].len, h);
			leaves++;
		}
	printf("leaf hash, %zu-byte entry: %9.0f /s\n", pool[0].len, (double)leaves / dt);
	{
		es_event ev;

		t0 = bench_now_s();
		leaves = 0;
		while ((dt = bench_now_s() - t0) < seconds / 2)
			for (int i = 0; i < 1000; i++) {
				DCR_ASSERT(es_event_decode(pool[i].data, pool[i].len, &ev, NULL) ==
				           0);
				es_event_release(&ev);
				leaves++;
			}
		printf("envelope decode:            %9.0f /s\n", (double)leaves / dt);
	}
	free(buf);
}

/* ---- durable appends ------------------------------------------------------------- */

typedef struct {
	es_store *s;
	uint8_t room[16];
	double until;
	uint64_t n;
	int id;
} app_arg;

static void *append_loop(void *p)
{
	app_arg *a = p;
	dcr_err err;

	for (int i = a->id;; i++) {
		const dcr_buf *e = &pool[i % POOL];
		es_event ev;

		if (bench_now_s() >= a->until)
			break;
		/* ingest: decode + verify, then the durable append */
		DCR_ASSERT(es_event_decode(e->data, e->len, &ev, &err) == 0);
		DCR_ASSERT(es_event_verify(&ev, &err) == 0);
		es_event_release(&ev);
		if (es_append(a->s, a->room, ES_SEQ_ANY, e->data, e->len, NULL, NULL, &err) != 0) {
			fprintf(stderr, "append: %s\n", err.msg);
			exit(1);
		}
		a->n++;
	}
	return NULL;
}

static void durable(const char *base, int writers, bool one_room)
{
	char *dir = dcr_asprintf("%s/durable-%d-%d", base, writers, one_room);
	es_options opt = {.checkpoint_key = daemon_key, .no_sync = no_sync};
	pthread_t *t = dcr_calloc((size_t)writers, sizeof(*t));
	app_arg *a = dcr_calloc((size_t)writers, sizeof(*a));
	es_store *s;
	es_stats st;
	dcr_err err;
	uint64_t total = 0;
	double t0, dt;

	if (es_open(&s, dir, &opt, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		exit(1);
	}
	t0 = bench_now_s();
	for (int i = 0; i < writers; i++) {
		a[i].s = s;
		a[i].id = i;
		a[i].until = t0 + seconds;
		memset(a[i].room, 0, 16);
		if (!one_room)
			dcr_put_be32(a[i].room, (uint32_t)i + 1);
		pthread_create(&t[i], NULL, append_loop, &a[i]);
	}
	for (int i = 0; i < writers; i++) {
		pthread_join(t[i], NULL);
		total += a[i].n;
	}
	dt = bench_now_s() - t0;
	es_stats_get(s, &st);
	printf("%s appends, %2d writer%s %-17s %8.0f /s  (%" PRIu64 " commits, %.1f "
	       "appends/commit, %.2f ms/commit)\n",
	       no_sync ? "NO-SYNC" : "durable", writers, writers == 1 ? ", " : "s,",
	       one_room ? "1 room:" : "room per writer:", (double)total / dt, st.commits,
	       (double)st.appends / (double)st.commits, dt * 1e3 / (double)st.commits);
	es_close(s);
	free(t);
	free(a);
	free(dir);
}

/* One thread, one room, up to `window` appends in flight (es_append_start
 * under what would be the room's lock, es_append_wait outside it), each
 * verified at ingest first. */
static void pipelined(const char *base, int window)
{
	char *dir = dcr_asprintf("%s/pipelined-%d", base, window);
	es_options opt = {.checkpoint_key = daemon_key, .no_sync = no_sync};
	es_pending **p = dcr_calloc((size_t)window, sizeof(*p));
	uint8_t room[16] = {0xab};
	uint64_t n = 0, done = 0;
	es_store *s;
	es_stats st;
	dcr_err err;
	double t0, dt;

	if (es_open(&s, dir, &opt, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		exit(1);
	}
	t0 = bench_now_s();
	while (bench_now_s() - t0 < seconds) {
		const dcr_buf *e = &pool[n % POOL];
		es_event ev;

		if (n - done == (uint64_t)window) {
			DCR_ASSERT(es_append_wait(p[done % (uint64_t)window], NULL, NULL, &err) ==
			           0);
			done++;
		}
		DCR_ASSERT(es_event_decode(e->data, e->len, &ev, &err) == 0);
		DCR_ASSERT(es_event_verify(&ev, &err) == 0);
		es_event_release(&ev);
		DCR_ASSERT(es_append_start(s, room, n, e->data, e->len, &p[n % (uint64_t)window],
		                           &err) == 0);
		n++;
	}
	while (done < n) {
		DCR_ASSERT(es_append_wait(p[done % (uint64_t)window], NULL, NULL, &err) == 0);
		done++;
	}
	dt = bench_now_s() - t0;
	es_stats_get(s, &st);
	printf("%s appends, 1 thread pipelined (window %d), 1 room: %8.0f /s  (%" PRIu64
	       " commits, %.1f appends/commit)\n",
	       no_sync ? "NO-SYNC" : "durable", window, (double)n / dt, st.commits,
	       (double)st.appends / (double)st.commits);
	es_close(s);
	free(p);
	free(dir);
}

/* ---- verification of a stored room ---------------------------------------------- */

/* What an auditor of the room does per event: read it back (es_fold),
 * decode the envelope and check its Ed25519 signature. */
typedef struct {
	es_store *s;
	const uint8_t *room;
	uint64_t from, to, n;
	double cpu_s;
} verify_range;

static int verify_fn(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	verify_range *v = ctx;
	es_event ev;
	dcr_err err;
	int rc = es_event_decode(entry, n, &ev, &err);

	if (rc == 0)
		rc = es_event_verify(&ev, &err);
	es_event_release(&ev);
	if (rc != 0) {
		fprintf(stderr, "verify: seq %" PRIu64 ": %s\n", seq, err.msg);
		return rc;
	}
	v->n++;
	return 0;
}

static void *verify_range_main(void *p)
{
	verify_range *v = p;
	struct timespec ts;

	DCR_ASSERT(es_fold(v->s, v->room, v->from, v->to, verify_fn, v) == 0);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	v->cpu_s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	return NULL;
}

/* Re-verifies every event of room with 1 and with 2 threads, each thread
 * folding its own contiguous half of the sequence, against the raw
 * signature rate measured just before with as many threads. */
static void verify_all(es_store *s, const uint8_t room[16], uint64_t events)
{
	double raw[3];

	raw[1] = verify_rate(1);
	raw[2] = verify_rate(2);
	printf("raw ed25519 verify (dcr_verify loop) now: %.0f /s on 1 thread, %.0f /s on 2\n",
	       raw[1], raw[2]);
	fflush(stdout);
	for (int threads = 1; threads <= 2; threads++) {
		pthread_t t[2];
		verify_range v[2];
		uint64_t total = 0;
		double t0 = bench_now_s(), dt, cpu = 0;

		for (int i = 0; i < threads; i++) {
			v[i] = (verify_range){.s = s,
			                      .room = room,
			                      .from = events * (uint64_t)i / (uint64_t)threads,
			                      .to = events * (uint64_t)(i + 1) / (uint64_t)threads};
			pthread_create(&t[i], NULL, verify_range_main, &v[i]);
		}
		for (int i = 0; i < threads; i++) {
			pthread_join(t[i], NULL);
			total += v[i].n;
			cpu += v[i].cpu_s;
		}
		dt = bench_now_s() - t0;
		DCR_ASSERT(total == events);
		printf(
		    "verify every event (es_fold + decode + es_event_verify), %d thread%s %" PRIu64
		    " events in %.1f s: %.0f events/s (%.2f of the raw %d-thread rate; %.0f "
		    "events per CPU-second)\n",
		    threads, threads == 1 ? ": " : "s:", total, dt, (double)total / dt,
		    (double)total / dt / raw[threads], threads, (double)total / cpu);
		fflush(stdout);
	}
}

/* ---- replay ------------------------------------------------------------------------- */

typedef struct {
	es_store *s;
	uint8_t room[16];
	uint64_t n;
	int id, stride;
} load_arg;

static void *load_loop(void *p)
{
	load_arg *a = p;
	dcr_err err;

	for (uint64_t i = (uint64_t)a->id; i < a->n; i += (uint64_t)a->stride) {
		const dcr_buf *e = &pool[i % POOL];

		if (es_append(a->s, a->room, ES_SEQ_ANY, e->data, e->len, NULL, NULL, &err) != 0) {
			fprintf(stderr, "load: %s\n", err.msg);
			exit(1);
		}
	}
	return NULL;
}

typedef struct {
	uint64_t n, bytes;
	bool decode;
} replay_ctx;

static int replay_fn(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	replay_ctx *r = ctx;

	(void)seq;
	if (r->decode) {
		es_event ev;
		dcr_err err;

		if (es_event_decode(entry, n, &ev, &err) != 0) {
			fprintf(stderr, "seq %" PRIu64 ": %s\n", seq, err.msg);
			return -1;
		}
		es_event_release(&ev);
	}
	r->n++;
	r->bytes += n;
	return 0;
}

static void replay(const char *base, uint64_t events, bool do_replay, bool do_verify)
{
	char *dir = dcr_asprintf("%s/replay", base);
	es_options opt = {.no_sync = true, .checkpoint_key = daemon_key};
	enum { LOADERS = 16 };
	pthread_t t[LOADERS];
	load_arg a[LOADERS];
	uint8_t room[16], root[32];
	es_store *s;
	dcr_err err;
	double t0, dt;

	memset(room, 0xee, 16);
	if (es_open(&s, dir, &opt, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		exit(1);
	}
	t0 = bench_now_s();
	for (int i = 0; i < LOADERS; i++) {
		a[i] = (load_arg){s, {0}, events, i, LOADERS};
		memcpy(a[i].room, room, 16);
		pthread_create(&t[i], NULL, load_loop, &a[i]);
	}
	for (int i = 0; i < LOADERS; i++)
		pthread_join(t[i], NULL);
	dt = bench_now_s() - t0;
	printf("load (no sync, 16 appenders): %" PRIu64 " events in %.1f s, %.0f /s\n", events, dt,
	       (double)events / dt);
	es_close(s);
	opt.no_sync = false;
	if (es_open(&s, dir, &opt, &err) != 0) { /* cold-ish: a fresh environment */
		fprintf(stderr, "%s\n", err.msg);
		exit(1);
	}
	for (int decode = 0; decode < 2 && do_replay; decode++) {
		replay_ctx r = {.decode = decode};

		t0 = bench_now_s();
		DCR_ASSERT(es_fold(s, room, 0, ES_SEQ_ANY, replay_fn, &r) == 0);
		dt = bench_now_s() - t0;
		DCR_ASSERT(r.n == events);
		printf("replay %s %" PRIu64 " events in %.2f s: %.0f events/s, %.0f MB/s\n",
		       decode ? "es_fold + decode:" : "es_fold alone:   ", r.n, dt,
		       (double)r.n / dt, (double)r.bytes / dt / 1e6);
	}
	if (do_replay) {
		uint8_t proof[ES_PROOF_HASHES_MAX][32];
		size_t pn;

		t0 = bench_now_s();
		for (int i = 0; i < 1000; i++)
			DCR_ASSERT(es_root(s, room, events - (uint64_t)i, root) == 0);
		printf("es_root at %" PRIu64 " events: %.1f us\n", events,
		       (bench_now_s() - t0) * 1e3);
		t0 = bench_now_s();
		for (uint64_t i = 0; i < 1000; i++)
			DCR_ASSERT(es_consistency_proof(s, room,
			                                events / 3 + i * 7 % (events - events / 3),
			                                events, proof, &pn) == 0);
		printf("es_consistency_proof at %" PRIu64 " events: %.1f us\n", events,
		       (bench_now_s() - t0) * 1e3);
	}
	if (do_verify)
		verify_all(s, room, events);
	es_close(s);
	free(dir);
}

int main(int argc, char **argv)
{
	uint64_t events = 1000000;
	const char *base_dir = "/tmp", *only = NULL;
	char tmp[256];
	uint8_t room[16] = {0};

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--events") == 0 && i + 1 < argc)
			events = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			seconds = strtod(argv[++i], NULL);
		else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			base_dir = argv[++i];
		else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
			only = argv[++i];
		else if (strcmp(argv[i], "--no-sync") == 0)
			no_sync = true;
		else {
			fprintf(stderr, "usage: bench_es [--events N] [--seconds S] [--dir DIR] "
			                "[--only limits|durable|replay|verify] [--no-sync]\n");
			return 2;
		}
	}
	if (events < 1000)
		events = 1000;
	snprintf(tmp, sizeof(tmp), "%s/dcr-bench-es-XXXXXX", base_dir);
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	DCR_ASSERT(dcr_key_generate(&user_key) == 0);
	DCR_ASSERT(dcr_key_generate(&daemon_key) == 0);
	build_pool(room);

	if (!only || strcmp(only, "limits") == 0) {
		machine_limits();
		fsync_rate(tmp);
	}
	if (!only || strcmp(only, "durable") == 0) {
		durable(tmp, 1, true);
		durable(tmp, 8, true);
		durable(tmp, 8, false);
		durable(tmp, 64, true);
		durable(tmp, 64, false);
		pipelined(tmp, 32);
	}
	if (!only || strcmp(only, "replay") == 0 || strcmp(only, "verify") == 0)
		replay(tmp, events, !only || strcmp(only, "replay") == 0,
		       !only || strcmp(only, "verify") == 0);

	bench_rm_tree(tmp);
	for (int i = 0; i < POOL; i++)
		dcr_buf_release(&pool[i]);
	dcr_key_free(user_key);
	dcr_key_free(daemon_key);
	return 0;
}
