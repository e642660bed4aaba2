/* bench_evrate.c: many participants submitting durable events to one dcrd
 * at once (issue 15; docs/benchmarks.md, "Concurrent participants").
 *
 *   bench_evrate [--dcrd PATH] [--tls] [--clients N] [--per-room K]...
 *                [--seconds S] [--crash] [--no-sync] [--keep]
 *
 * Starts a real dcrd on a fresh directory (unix socket; with --tls also
 * `--listen 127.0.0.1:0`, every client then connecting over TLS 1.3 pinned
 * to dcrd's fingerprint, as remote participants do) and, for each
 * layout given by --per-room (default: 1, then 8), makes N participant
 * keys (default 64), N / K published rooms with K of them as analysts,
 * and in each room one small provisioned dataset and one finished run.
 * Then every participant, on a connection of its own (a thread of this
 * process), submits `result.retrieved` for that run through cl_submit, the
 * way `dcr result` records a retrieval, over and over for S seconds
 * (default 10): each submit is signed, checked by dcrd with rm_apply and
 * acknowledged only once fsynced.
 *
 * Why result.retrieved: it is the event a participant sends most often and
 * repeatedly in a live room (every read of a result is recorded; a
 * dashboard or a scheduled job reads results all day), it is small
 * (~300 bytes), and rm_apply's work for it is the typical rule check
 * (participant, published, analyst of the computation, run done), unlike
 * room.draft_saved, which re-parses a whole definition and is sent a few
 * times in a room's life.
 *
 * Prints acknowledged events/s, latency percentiles, ESEQ give-ups (clients
 * sharing a room race for each position: cl_submit re-signs and retries),
 * the CPU seconds of dcrd and of the clients, and the load average. Then
 * checks that nothing was lost: for every room, every acknowledged event is
 * in the log at the position acknowledged, signed by its client, each
 * client's events in the order it sent them, and the whole room verifies
 * as an auditor checks it (au_verify: every signature, rm_apply replay,
 * Merkle root against the signed checkpoint). With --crash, dcrd is killed
 * (SIGKILL) while the last layout's clients are still submitting and
 * restarted on the same directory before the check, so acknowledged means
 * durable, not merely answered. Exits 1 if an acknowledged event is missing
 * or a room does not verify; it asserts nothing about timing. */
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../proto/proto.h"
#include "../room/room.h"
#include "../tools/audit_core.h"
#include "bench_harness.h"

#define PER_ROOM_LAYOUTS_MAX 8
#define CLIENTS_MAX          1024
#define SETUP_ROWS           200

static char dir[64], sock[128], data[128], logp[128];
static const char *exe;
static bool no_sync;
/* --tls: dcrd also listens on 127.0.0.1 (a free port) and every client
 * connects there over TLS 1.3, pinned to dcrd's fingerprint */
static bool tls;
static char server[64], pin[96];
static pid_t daemon_pid;
static dcr_key *anna;
static char *anna_s;

/* ---- helpers ----------------------------------------------------------------------- */

static double self_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void loadavg(char out[64])
{
	FILE *f = fopen("/proc/loadavg", "r");
	double a = 0, b = 0, c = 0;

	if (f) {
		if (fscanf(f, "%lf %lf %lf", &a, &b, &c) != 3)
			a = b = c = 0;
		fclose(f);
	}
	snprintf(out, 64, "%.2f %.2f %.2f", a, b, c);
}

static void cleanup(void)
{
	bench_stop_pid(&daemon_pid, SIGTERM);
	if (dir[0])
		bench_rm_tree(dir);
	dir[0] = 0;
}

static void die(const char *what, const dcr_err *err)
{
	fprintf(stderr, "bench_evrate: %s: %s\n", what, err ? err->msg : "");
	if (logp[0])
		fprintf(stderr, "bench_evrate: dcrd's log: %s (kept)\n", logp);
	dir[0] = 0; /* keep the directory for a look */
	bench_stop_pid(&daemon_pid, SIGTERM);
	exit(1);
}

/* Starts dcrd on data (kept across restarts: --crash restarts it on the
 * same directory); waits until it listens. */
static void start_dcrd(void)
{
	char ready[160];
	int fd;

	fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die("cannot create dcrd's log", NULL);
	close(fd);
	daemon_pid = fork();
	if (daemon_pid == 0) {
		/* the bench's participants are 64 keys from one uid or address,
		 * connecting at once: room for them */
		const char *argv[16] = {exe,      "--data",     data, "--socket", sock,
		                        "--max-conns-per-addr", "2048"};
		int n = 7;
		if (no_sync)
			argv[n++] = "--no-sync";
		if (tls) {
			argv[n++] = "--listen";
			argv[n++] = "127.0.0.1:0";
			argv[n++] = "--max-tls-handshakes";
			argv[n++] = "1024";
		}
		argv[n] = NULL;
		fd = open(logp, O_WRONLY | O_APPEND);
		dup2(fd, 2);
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	/* the unix socket's line comes last */
	snprintf(ready, sizeof ready, "listening on %s", sock);
	if (bench_wait_log(&daemon_pid, logp, ready) < 0)
		die("dcrd did not start", NULL);
	if (tls && bench_tls_listener(logp, server, pin) < 0)
		die("dcrd printed no TLS listener", NULL);
}

static cl_conn *connect_as(const dcr_key *k)
{
	cl_conn *c;
	dcr_err err;

	if (bench_connect(sock, tls ? server : NULL, pin, k, &c, &err) < 0)
		die("connect", &err);
	return c;
}

/* ---- rooms ----------------------------------------------------------------------------- */

typedef struct client client;

typedef struct room {
	uint8_t id[ES_ROOM_ID_BYTES];
	char run[33];
	uint64_t setup_events; /* events before the timed window */
	client **members;
	size_t nmembers;
} room;

struct client {
	dcr_key *key;
	uint8_t pub[32];
	char *email;
	room *rm;
	pthread_t th;
	/* results of the timed window */
	uint64_t *seqs; /* acknowledged positions, in the order sent */
	double *lat_ms;
	size_t n, cap;
	uint64_t gave_up, failed;
};

static char *def_json(const room *r)
{
	dcr_buf b;

	dcr_buf_init(&b);
	dcr_buf_printf(&b,
	               "{\"format\": \"dcr.room/1\", \"name\": \"evrate\", \"description\": "
	               "\"participants reading results\",\n"
	               " \"settings\": {\"require_provisioned\": false},\n"
	               " \"participants\": [{\"email\": \"anna@bank.example\", \"key\": \"%s\",\n"
	               "   \"owner_of\": [\"bank\"], \"analyst_of\": [\"by_city\"]}",
	               anna_s);
	for (size_t i = 0; i < r->nmembers; i++) {
		char *k = dcr_pub_format(r->members[i]->pub);
		dcr_buf_printf(&b, ",\n  {\"email\": \"%s\", \"key\": \"%s\", \"analyst_of\": "
		                   "[\"by_city\"]}",
		               r->members[i]->email, k);
		free(k);
	}
	dcr_buf_append_str(
	    &b, "],\n"
	        " \"datasets\": [{\"name\": \"bank\", \"kind\": \"table\", \"columns\": [\n"
	        "   {\"name\": \"email\", \"type\": \"string\"},\n"
	        "   {\"name\": \"city\", \"type\": \"string\", \"allow\": [\"group\"]},\n"
	        "   {\"name\": \"age\", \"type\": \"integer\", \"allow\": [\"aggregate\"]}]}],\n"
	        " \"computations\": [{\"name\": \"by_city\", \"kind\": \"sql\",\n"
	        "   \"privacy\": {\"min_rows_aggregated\": 10},\n"
	        "   \"query\": \"SELECT city, COUNT(*) AS n, AVG(age) AS age FROM bank GROUP BY "
	        "city\"}]}\n");
	{
		char *out = dcr_strdup(dcr_buf_cstr(&b));
		dcr_buf_release(&b);
		return out;
	}
}

struct mem_reader {
	const char *p;
	size_t n, off;
};

static int mem_read(void *ctx, void *buf, size_t cap)
{
	struct mem_reader *m = ctx;
	size_t k = m->n - m->off < cap ? m->n - m->off : cap;

	memcpy(buf, m->p + m->off, k);
	m->off += k;
	return (int)k;
}

/* Creates, publishes and provisions r (as anna) and requests its run (as
 * its first member); the caller waits for the runs. */
static void room_setup(cl_conn *ca, room *r, dcr_buf *csv)
{
	char *json = def_json(r);
	uint8_t h[32];
	dcr_buf body;
	struct mem_reader m = {(const char *)csv->data, csv->len, 0};
	cl_conn *cm;
	dcr_err err;

	dcr_buf_init(&body);
	if (cl_room_create(ca, json, r->id, &err) < 0)
		die("room.created", &err);
	dcr_sha256(json, strlen(json), h);
	rm_body_published(&body, h);
	if (cl_submit(ca, r->id, RM_EV_PUBLISHED, body.data, body.len, NULL, &err) < 0)
		die("room.published", &err);
	if (cl_provision(ca, r->id, "bank", "bank.csv", 0, mem_read, &m, NULL, NULL, &err) < 0)
		die("provision", &err);
	cm = connect_as(r->members[0]->key);
	if (cl_run(cm, r->id, "by_city", r->run, &err) < 0)
		die("run.requested", &err);
	cl_close(cm);
	dcr_buf_release(&body);
	free(json);
}

static void room_wait_run(cl_conn *ca, room *r)
{
	for (;;) {
		cl_run_status st;
		dcr_err err;
		bool fin;

		if (cl_run_status(ca, r->id, "by_city", &st, &err) < 0)
			die("run.status", &err);
		fin = strcmp(st.run_id, r->run) == 0 &&
		      (strcmp(st.state, "done") == 0 || strcmp(st.state, "failed") == 0);
		if (fin && strcmp(st.state, "done") != 0)
			die("the setup run failed", NULL);
		cl_run_status_release(&st);
		if (fin)
			break;
		usleep(5000);
	}
	{
		dcr_err err;
		/* a wait that returns at once: the durable size */
		if (cl_wait(ca, r->id, UINT64_MAX - 1, 0, &r->setup_events, &err) < 0)
			die("wait", &err);
	}
}

/* ---- the timed window ------------------------------------------------------------------ */

static _Atomic bool stopping;
static _Atomic bool crashed; /* dcrd was killed on purpose */
static _Atomic double until;
static pthread_barrier_t ready; /* every client connected: the window starts */

static void push(client *c, uint64_t seq, double ms)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 1024;
		c->seqs = dcr_realloc(c->seqs, c->cap * sizeof *c->seqs);
		c->lat_ms = dcr_realloc(c->lat_ms, c->cap * sizeof *c->lat_ms);
	}
	c->seqs[c->n] = seq;
	c->lat_ms[c->n] = ms;
	c->n++;
}

static void *client_main(void *arg)
{
	client *c = arg;
	cl_conn *conn = connect_as(c->key);
	dcr_buf body;
	dcr_err err;

	dcr_buf_init(&body);
	rm_body_retrieved(&body, c->rm->run);
	pthread_barrier_wait(&ready);
	while (!atomic_load(&stopping) && bench_now_s() < atomic_load(&until)) {
		uint64_t seq = 0;
		double t0 = bench_now_s();
		int rc = cl_submit(conn, c->rm->id, RM_EV_RETRIEVED, body.data, body.len, &seq, &err);
		if (rc == 0) {
			push(c, seq, (bench_now_s() - t0) * 1000);
		} else if (rc == DCR_ESEQ) {
			c->gave_up++; /* lost every retry to the room's other writers */
		} else if (atomic_load(&crashed)) {
			break; /* dcrd was killed: this one is not acknowledged */
		} else {
			die("submit", &err);
		}
	}
	dcr_buf_release(&body);
	cl_close(conn);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* ---- the check ------------------------------------------------------------------------- */

struct collect {
	dcr_buf bytes;   /* entries back to back */
	size_t *off, *len;
	uint64_t n, cap;
};

static int collect_one(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	struct collect *c = ctx;

	(void)seq;
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 1024;
		c->off = dcr_realloc(c->off, c->cap * sizeof *c->off);
		c->len = dcr_realloc(c->len, c->cap * sizeof *c->len);
	}
	c->off[c->n] = c->bytes.len;
	c->len[c->n] = n;
	dcr_buf_append(&c->bytes, entry, n);
	c->n++;
	return 0;
}

/* Checks room r after the window: every acknowledged event of its members
 * at its position, theirs, in their order; the room verifies as an auditor
 * checks it. Returns the number of events in the log that no client saw
 * acknowledged (in flight when dcrd was killed), or -1. */
static long check_room(cl_conn *ca, const room *r, uint64_t *verify_ms)
{
	struct collect col = {0};
	const uint8_t **ents = NULL;
	uint64_t acked = 0, retrieved = 0;
	es_checkpoint cp;
	rm_state st;
	au_export x;
	au_report rep;
	au_verify_opts o = {0};
	dcr_buf file;
	dcr_err err;
	long extra = -1;
	char hex[ES_ROOM_HEX_BYTES];
	uint8_t dpub[32];

	es_room_format(r->id, hex);
	dcr_buf_init(&col.bytes);
	dcr_buf_init(&file);
	memset(&x, 0, sizeof x);
	rm_state_init(&st, cl_daemon_key(ca));
	memcpy(dpub, cl_daemon_key(ca), 32);
	if (cl_events(ca, r->id, 0, ES_SEQ_ANY, collect_one, &col, &err) < 0) {
		fprintf(stderr, "room %s: events: %s\n", hex, err.msg);
		goto out;
	}
	if (cl_checkpoint(ca, r->id, &cp, &err) < 0) {
		fprintf(stderr, "room %s: checkpoint: %s\n", hex, err.msg);
		goto out;
	}
	ents = dcr_calloc(col.n ? col.n : 1, sizeof *ents);
	for (uint64_t i = 0; i < col.n; i++)
		ents[i] = col.bytes.data + col.off[i];
	/* every acknowledged event: at its position, by its client, in order */
	for (size_t m = 0; m < r->nmembers; m++) {
		const client *c = r->members[m];
		for (size_t k = 0; k < c->n; k++) {
			es_event ev;
			uint64_t s = c->seqs[k];
			if (s >= col.n) {
				fprintf(stderr, "room %s: LOST: %s's event acknowledged at seq %llu, "
				                "the log has %llu events\n",
				        hex, c->email, (unsigned long long)s, (unsigned long long)col.n);
				goto out;
			}
			if (k > 0 && s <= c->seqs[k - 1]) {
				fprintf(stderr, "room %s: %s's events out of order: seq %llu after %llu\n",
				        hex, c->email, (unsigned long long)s,
				        (unsigned long long)c->seqs[k - 1]);
				goto out;
			}
			if (es_event_decode(ents[s], col.len[s], &ev, &err) < 0) {
				fprintf(stderr, "room %s: seq %llu: %s\n", hex, (unsigned long long)s,
				        err.msg);
				goto out;
			}
			bool ok = memcmp(ev.actor, c->pub, 32) == 0 && ev.seq == s &&
			          strcmp(ev.type, RM_EV_RETRIEVED) == 0;
			es_event_release(&ev);
			if (!ok) {
				fprintf(stderr, "room %s: LOST: seq %llu, acknowledged to %s, holds "
				                "another event\n",
				        hex, (unsigned long long)s, c->email);
				goto out;
			}
			acked++;
		}
	}
	/* the final state (signatures are au_verify's), for the export */
	for (uint64_t i = 0; i < col.n; i++) {
		es_event ev;
		if (es_event_decode(ents[i], col.len[i], &ev, &err) < 0 ||
		    rm_apply(&st, &ev, &err) < 0) {
			fprintf(stderr, "room %s: seq %llu does not replay: %s\n", hex,
			        (unsigned long long)i, err.msg);
			es_event_release(&ev);
			goto out;
		}
		retrieved += i >= r->setup_events;
		es_event_release(&ev);
	}
	au_export_encode(&file, r->id, dpub, &cp, ents, col.len, col.n, &st);
	if (au_export_decode(file.data, file.len, &x, &err) < 0) {
		fprintf(stderr, "room %s: export: %s\n", hex, err.msg);
		goto out;
	}
	o.daemon_key = dpub;
	o.threads = 2;
	if (au_verify(&x, &o, &rep, &err) < 0) {
		fprintf(stderr, "room %s: does not verify: %s\n", hex, err.msg);
		goto out;
	}
	*verify_ms += rep.verify_ms;
	if (cp.size != col.n) {
		fprintf(stderr, "room %s: checkpoint of size %llu, log of %llu\n", hex,
		        (unsigned long long)cp.size, (unsigned long long)col.n);
		goto out;
	}
	if (retrieved < acked) {
		fprintf(stderr, "room %s: %llu events acknowledged, %llu in the log\n", hex,
		        (unsigned long long)acked, (unsigned long long)retrieved);
		goto out;
	}
	extra = (long)(retrieved - acked);
out:
	au_export_release(&x);
	dcr_buf_release(&file);
	rm_state_release(&st);
	free(ents);
	free(col.off);
	free(col.len);
	dcr_buf_release(&col.bytes);
	return extra;
}

/* ---- one layout ------------------------------------------------------------------------ */

static int layout(client *cl, size_t n, size_t per_room, double seconds, bool crash)
{
	size_t nrooms = (n + per_room - 1) / per_room;
	room *rooms = dcr_calloc(nrooms, sizeof *rooms);
	cl_conn *ca = connect_as(anna);
	dcr_buf csv;
	uint64_t total = 0, gave_up = 0, vms = 0;
	double t0, t1, cpu0, cpu1, self0, self1, *lat;
	size_t nlat = 0;
	long unacked = 0;
	char la0[64], la1[64];
	int bad = 0;

	printf("\n%zu participants, %zu per room (%zu rooms), %.0f s%s\n", n, per_room, nrooms,
	       seconds, crash ? ", dcrd killed (SIGKILL) at the end and restarted" : "");
	dcr_buf_init(&csv);
	dcr_buf_append_str(&csv, "email,city,age\n");
	for (int i = 0; i < SETUP_ROWS; i++)
		dcr_buf_printf(&csv, "u%d@example.org,%s,%d\n", i, i % 2 ? "Paris" : "Lyon", 20 + i % 50);
	for (size_t i = 0; i < n; i++) {
		room *r = &rooms[i / per_room];
		cl[i].rm = r;
		cl[i].n = 0;
		cl[i].gave_up = 0;
		r->members = dcr_realloc(r->members, (r->nmembers + 1) * sizeof *r->members);
		r->members[r->nmembers++] = &cl[i];
	}
	t0 = bench_now_s();
	for (size_t i = 0; i < nrooms; i++)
		room_setup(ca, &rooms[i], &csv);
	for (size_t i = 0; i < nrooms; i++)
		room_wait_run(ca, &rooms[i]);
	printf("  setup: %zu rooms created, published, provisioned, run: %.1f s\n", nrooms,
	       bench_now_s() - t0);

	atomic_store(&stopping, false);
	atomic_store(&crashed, false);
	until = bench_now_s() + 3600;
	pthread_barrier_init(&ready, NULL, (unsigned)n + 1);
	for (size_t i = 0; i < n; i++)
		pthread_create(&cl[i].th, NULL, client_main, &cl[i]);
	pthread_barrier_wait(&ready); /* all connected and authenticated */
	loadavg(la0);
	cpu0 = bench_cpu_of(daemon_pid);
	self0 = self_cpu();
	t0 = bench_now_s();
	until = t0 + seconds + (crash ? 3600 : 0);
	if (crash) {
		usleep((useconds_t)(seconds * 1e6));
		cpu1 = bench_cpu_of(daemon_pid);
		atomic_store(&crashed, true);
		kill(daemon_pid, SIGKILL); /* mid-flight: appends queued, commits under way */
		t1 = bench_now_s();
	}
	for (size_t i = 0; i < n; i++)
		pthread_join(cl[i].th, NULL);
	pthread_barrier_destroy(&ready);
	if (!crash) {
		t1 = bench_now_s();
		cpu1 = bench_cpu_of(daemon_pid);
	}
	self1 = self_cpu();
	loadavg(la1);
	lat = dcr_malloc((n ? n : 1) * sizeof *lat);
	for (size_t i = 0; i < n; i++) {
		total += cl[i].n;
		gave_up += cl[i].gave_up;
	}
	lat = dcr_realloc(lat, (total ? total : 1) * sizeof *lat);
	for (size_t i = 0; i < n; i++) {
		memcpy(lat + nlat, cl[i].lat_ms, cl[i].n * sizeof *lat);
		nlat += cl[i].n;
	}
	qsort(lat, nlat, sizeof *lat, cmp_double);
	printf("  %llu events acknowledged in %.2f s: %.0f durable events/s\n",
	       (unsigned long long)total, t1 - t0, (double)total / (t1 - t0));
	if (nlat)
		printf("  latency per event (cl_submit): p50 %.2f ms, p90 "
		       "%.2f ms, p99 %.2f ms, max %.1f ms\n",
		       lat[nlat / 2], lat[nlat * 9 / 10], lat[nlat * 99 / 100], lat[nlat - 1]);
	if (gave_up)
		printf("  %llu submits gave up after %u ESEQ retries (room shared by %zu)\n",
		       (unsigned long long)gave_up, (unsigned)DMN_SUBMIT_RETRIES, per_room);
	printf("  CPU: dcrd %.2f s (%.0f us per event), clients %.2f s; load average %s -> %s\n",
	       cpu1 - cpu0, total ? (cpu1 - cpu0) * 1e6 / (double)total : 0.0, self1 - self0,
	       la0, la1);
	free(lat);

	cl_close(ca);
	if (crash) {
		daemon_pid = 0;
		{
			int st;
			waitpid(-1, &st, WNOHANG);
		}
		t0 = bench_now_s();
		start_dcrd();
		printf("  dcrd restarted on the same directory (replayed) in %.2f s\n",
		       bench_now_s() - t0);
	}
	ca = connect_as(anna);
	t0 = bench_now_s();
	for (size_t i = 0; i < nrooms; i++) {
		long e = check_room(ca, &rooms[i], &vms);
		if (e < 0)
			bad++;
		else
			unacked += e;
	}
	if (bad)
		printf("  CHECK FAILED: %d of %zu rooms (above)\n", bad, nrooms);
	else
		printf("  check: all %llu acknowledged events in the logs at their positions, in "
		       "order; %zu rooms verify (signatures, rm_apply replay, Merkle root = "
		       "signed checkpoint); %ld events durable but not acknowledged (in "
		       "flight at the kill); %.1f s\n",
		       (unsigned long long)total, nrooms, unacked, bench_now_s() - t0);
	cl_close(ca);
	for (size_t i = 0; i < nrooms; i++)
		free(rooms[i].members);
	free(rooms);
	dcr_buf_release(&csv);
	return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
	const char *b = getenv("DCR_BUILD_DIR");
	size_t n = 64, per_room[PER_ROOM_LAYOUTS_MAX], nlayouts = 0;
	double seconds = 10;
	bool crash = false, keep = false;
	char *exe_buf = NULL;
	client *cl;
	uint8_t pub[32];
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dcrd") == 0 && i + 1 < argc)
			exe = argv[++i];
		else if (strcmp(argv[i], "--clients") == 0 && i + 1 < argc)
			n = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--per-room") == 0 && i + 1 < argc &&
		         nlayouts < PER_ROOM_LAYOUTS_MAX)
			per_room[nlayouts++] = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			seconds = strtod(argv[++i], NULL);
		else if (strcmp(argv[i], "--crash") == 0)
			crash = true;
		else if (strcmp(argv[i], "--no-sync") == 0)
			no_sync = true;
		else if (strcmp(argv[i], "--keep") == 0)
			keep = true;
		else if (strcmp(argv[i], "--tls") == 0)
			tls = true;
		else {
			fprintf(stderr, "usage: bench_evrate [--dcrd PATH] [--tls] [--clients N] "
			                "[--per-room K]... [--seconds S] [--crash] [--no-sync] "
			                "[--keep]\n");
			return 2;
		}
	}
	if (n == 0 || n > CLIENTS_MAX) {
		fprintf(stderr, "bench_evrate: --clients 1..%u\n", CLIENTS_MAX);
		return 2;
	}
	if (nlayouts == 0) {
		per_room[nlayouts++] = 1;
		per_room[nlayouts++] = 8;
	}
	for (size_t i = 0; i < nlayouts; i++)
		if (per_room[i] == 0 || per_room[i] > n) {
			fprintf(stderr, "bench_evrate: --per-room 1..%zu\n", n);
			return 2;
		}
	if (!exe)
		exe = exe_buf = dcr_asprintf("%s/daemon/dcrd", b && *b ? b : ".");
	snprintf(dir, sizeof dir, "/tmp/dcr-evrate-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(sock, sizeof sock, "%s/sock", dir);
	snprintf(data, sizeof data, "%s/data", dir);
	snprintf(logp, sizeof logp, "%s/log", dir);
	atexit(cleanup);
	signal(SIGPIPE, SIG_IGN);
	dcr_key_generate(&anna);
	dcr_key_public(anna, pub);
	anna_s = dcr_pub_format(pub);
	cl = dcr_calloc(n, sizeof *cl);
	for (size_t i = 0; i < n; i++) {
		dcr_key_generate(&cl[i].key);
		dcr_key_public(cl[i].key, cl[i].pub);
		cl[i].email = dcr_asprintf("p%zu@evrate.example", i);
	}
	start_dcrd();
	printf("bench_evrate: dcrd %s (%s), %zu participants, each its own key and connection, "
	       "over %s%s\n",
	       exe, no_sync ? "--no-sync: NOT durable" : "durable: fsync", n,
	       tls ? "TLS 1.3 to " : "the unix socket", tls ? server : "");
	for (size_t i = 0; i < nlayouts && rc == 0; i++)
		rc = layout(cl, n, per_room[i], seconds, crash && i + 1 == nlayouts);
	if (keep) {
		printf("kept %s (dcrd's log: %s)\n", dir, logp);
		bench_stop_pid(&daemon_pid, SIGTERM);
		dir[0] = 0;
	}
	cleanup();
	for (size_t i = 0; i < n; i++) {
		dcr_key_free(cl[i].key);
		free(cl[i].email);
		free(cl[i].seqs);
		free(cl[i].lat_ms);
	}
	free(cl);
	dcr_key_free(anna);
	free(anna_s);
	free(exe_buf);
	return rc == 0 ? 0 : 1;
}
