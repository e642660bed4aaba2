/* bench_tenants.c: many tenants on one dcrd (issue 14; docs/benchmarks.md,
 * "Many tenants").
 *
 *   bench_tenants [--dcrd PATH] [--seconds S] [--rooms R] [--clients N]
 *                 [--hostile H] [--rows N] [--no-sync]
 *
 * Starts a real dcrd (default $DCR_BUILD_DIR/daemon/dcrd, else
 * ./daemon/dcrd) on a fresh directory under /tmp, creates R rooms
 * (default 16) of N/R participants each (N legitimate clients, default 64,
 * each its own key; participant j owns dataset d_j and is an analyst of
 * every computation c_* of its room), publishes them and provisions every
 * dataset once. Then, for S seconds (default 60), every legitimate client
 * loops over: provision its dataset again (a CSV of --rows rows, default
 * 500), request a run of its computation and wait until it is done, read
 * the status and the result of the last run, read the room's last events,
 * list its rooms; one operation in ten is preceded by a new connection (a
 * CLI call connects each time). Meanwhile H hostile clients (default 8,
 * each a fresh key in no legitimate room) run the attacks of issue 14, one
 * each, round robin over:
 *   flood     authenticated idle connections, as many as dcrd lets it hold
 *   defcheck  rooms whose 8 computations each keep the admission check busy
 *             for its whole time limit (LIKE over a 4 MB string per row)
 *   runaway   in its own room, runs that never finish (the same CTE)
 *   spill     in its own room, runs that sort a 3-way cross join (temp disk)
 *   bigdef    rooms of 1 MB definitions, as often as it can
 *   names     provisions under names with a newline, an escape, "status",
 *             "..": through the client library and by a raw upload.begin
 *   oracle    submits to the legitimate rooms (existence oracle)
 *   unsigned  uploads finished and never signed (upload.begin, one chunk,
 *             upload.end, no dataset.provisioned)
 * Reported: the operations of the legitimate clients per second and the
 * p50/p95/p99/max latency of each kind (failures counted, first message
 * kept), what each hostile client achieved, dcrd's peak RSS (VmHWM) and
 * CPU seconds; then that no acknowledged event was lost: every room is
 * read back and replayed with rm_replay_step (signatures and rules), the
 * provisions and run requests of each legitimate key counted against the
 * ones it had acknowledged, dcrd killed with SIGKILL, started again on the
 * same directory, and the rooms read and counted again. Exits 1 if an
 * acknowledged event is missing or a room does not replay.
 * The directory is removed at the end. */
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../proto/proto.h"
#include "../room/room.h"
#include "bench_harness.h"

#define PER_ROOM_MAX 16
#define FLOOD_MAX 4096
#define RUN_GRACE_S 10.0 /* a run requested in the load may finish this much after it */

enum op { OP_PROVISION, OP_RUN_REQUEST, OP_RUN_DONE, OP_RESULT, OP_EVENTS, OP_ROOMS, OP_CONNECT, NOPS };
static const char *const op_names[NOPS] = {
    "provision (500 rows)", "run.requested", "run: request to done", "status + result read",
    "events read (last 64)", "rooms", "connect + auth"};

static char dir[64], sock[128], data[128], logp[128];
static const char *exe;
static bool no_sync;
static pid_t daemon_pid;
static double seconds = 60, t_end;
static int nrooms = 16, nclients = 64, nhostile = 8;
static uint64_t rows = 500;
static uint64_t peak_rss_kb;

/* sig, and SIGKILL if dcrd is still there 10 s later (it may wait for
 * runaway runs). */
static void stop_daemon(int sig)
{
	if (daemon_pid > 0) {
		int st;
		kill(daemon_pid, sig);
		for (int i = 0; i < 1000 && waitpid(daemon_pid, &st, WNOHANG) == 0; i++)
			usleep(10000);
		if (kill(daemon_pid, 0) == 0) {
			kill(daemon_pid, SIGKILL);
			waitpid(daemon_pid, &st, 0);
		}
		daemon_pid = 0;
	}
}

static void cleanup(void)
{
	stop_daemon(SIGTERM);
	if (dir[0])
		bench_rm_tree(dir);
}

static void die(const char *what, const dcr_err *err)
{
	fprintf(stderr, "bench_tenants: %s: %s\n", what, err ? err->msg : "");
	exit(1);
}

static void start_daemon(void)
{
	int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die("dcrd log", NULL);
	daemon_pid = fork();
	if (daemon_pid == 0) {
		dup2(fd, 2);
		if (no_sync)
			execl(exe, exe, "--data", data, "--socket", sock, "--no-sync", (char *)NULL);
		else
			execl(exe, exe, "--data", data, "--socket", sock, (char *)NULL);
		_exit(127);
	}
	close(fd);
	if (bench_wait_log(&daemon_pid, logp, "listening on") < 0) {
		fprintf(stderr, "bench_tenants: dcrd (%s) did not start\n", exe);
		exit(1);
	}
}

static cl_conn *conn_or_die(const dcr_key *k)
{
	cl_conn *c;
	dcr_err err;
	if (cl_connect(sock, k, &c, &err) < 0)
		die("connect", &err);
	return c;
}

/* ---- latencies -------------------------------------------------------------------- */

typedef struct lat {
	double *v; /* ms */
	size_t n, cap;
	uint64_t fail;
	char first_err[DCR_ERR_MSG_BYTES];
} lat;

static void lat_add(lat *l, double ms)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 256;
		l->v = dcr_realloc(l->v, l->cap * sizeof *l->v);
	}
	l->v[l->n++] = ms;
}

static void lat_fail(lat *l, const dcr_err *err)
{
	if (l->fail++ == 0)
		snprintf(l->first_err, sizeof l->first_err, "%s", err->msg);
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const lat *l, double p)
{
	if (!l->n)
		return 0;
	size_t i = (size_t)(p * (double)(l->n - 1) + 0.5);
	return l->v[i];
}

/* ---- rooms ------------------------------------------------------------------------ */

typedef struct troom {
	uint8_t id[ES_ROOM_ID_BYTES];
	int first, n; /* legit clients first .. first+n-1 */
} troom;

typedef struct legit {
	int room, j;
	dcr_key *k;
	uint8_t pub[32];
	uint64_t seed;
	lat l[NOPS];
	uint64_t acked_prov, acked_runs; /* acknowledged events of this key */
	pthread_t th;
} legit;

static troom *rooms;
static legit *cl;

static char *legit_def(int r)
{
	dcr_buf b;
	const troom *t = &rooms[r];
	dcr_buf_init(&b);
	dcr_buf_printf(&b,
	               "{\"format\": \"dcr.room/1\", \"name\": \"tenant-%02d\",\n"
	               " \"settings\": {\"require_provisioned\": true},\n \"participants\": [\n",
	               r);
	for (int j = 0; j < t->n; j++) {
		char *ks = dcr_pub_format(cl[t->first + j].pub);
		dcr_buf_printf(&b,
		               "%s  {\"email\": \"u%d@r%d.example\", \"key\": \"%s\", "
		               "\"owner_of\": [\"d%d\"], \"analyst_of\": [",
		               j ? ",\n" : "", j, r, ks, j);
		for (int m = 0; m < t->n; m++)
			dcr_buf_printf(&b, "%s\"c%d\"", m ? ", " : "", m);
		dcr_buf_append_str(&b, "]}");
		free(ks);
	}
	dcr_buf_append_str(&b, "],\n \"datasets\": [");
	for (int j = 0; j < t->n; j++)
		dcr_buf_printf(&b,
		               "%s\n  {\"name\": \"d%d\", \"kind\": \"table\", \"columns\": [\n"
		               "   {\"name\": \"email\", \"type\": \"string\"},\n"
		               "   {\"name\": \"city\", \"type\": \"string\", \"allow\": "
		               "[\"group\"]},\n"
		               "   {\"name\": \"age\", \"type\": \"integer\", \"allow\": "
		               "[\"aggregate\"]}]}",
		               j ? "," : "", j);
	dcr_buf_append_str(&b, "],\n \"computations\": [");
	for (int j = 0; j < t->n; j++)
		dcr_buf_printf(&b,
		               "%s\n  {\"name\": \"c%d\", \"kind\": \"sql\", \"privacy\": "
		               "{\"min_rows_aggregated\": 10}, \"query\": \"SELECT city, COUNT(*) "
		               "AS n, AVG(age) AS age FROM d%d GROUP BY city\"}",
		               j ? "," : "", j, j);
	dcr_buf_append_str(&b, "]}\n");
	char *s = dcr_strdup(dcr_buf_cstr(&b));
	dcr_buf_release(&b);
	return s;
}

struct gen {
	uint64_t rows, next, seed;
	char line[128];
	size_t len, off;
	bool header;
};

static int gen_read(void *ctx, void *buf, size_t cap)
{
	static const char *cities[] = {"Paris", "Lyon", "Nice", "Lille", "Metz", "Brest"};
	struct gen *g = ctx;
	size_t out = 0;
	while (out < cap) {
		if (g->off == g->len) {
			g->off = 0;
			if (!g->header) {
				g->len = (size_t)snprintf(g->line, sizeof g->line, "email,city,age\n");
				g->header = true;
			} else if (g->next < g->rows) {
				uint64_t i = g->next++;
				g->len = (size_t)snprintf(g->line, sizeof g->line,
				                          "u%llu.%llu@example.org,%s,%llu\n",
				                          (unsigned long long)g->seed,
				                          (unsigned long long)i, cities[i % 6],
				                          (unsigned long long)(18 + (i + g->seed) % 70));
			} else {
				g->len = 0;
				break;
			}
		}
		size_t k = g->len - g->off;
		if (k > cap - out)
			k = cap - out;
		memcpy((uint8_t *)buf + out, g->line + g->off, k);
		g->off += k;
		out += k;
	}
	return (int)out;
}

static int provision(cl_conn *c, const uint8_t room[16], const char *ds, const char *file,
                     uint64_t n, uint64_t seed, dcr_err *err)
{
	struct gen g;
	memset(&g, 0, sizeof g);
	g.rows = n;
	g.seed = seed;
	return cl_provision(c, room, ds, file, 0, gen_read, &g, NULL, NULL, err);
}

static int publish(cl_conn *c, const uint8_t room[16], const char *json, dcr_err *err)
{
	uint8_t h[32];
	dcr_buf body;
	dcr_buf_init(&body);
	dcr_sha256(json, strlen(json), h);
	rm_body_published(&body, h);
	int rc = cl_submit(c, room, RM_EV_PUBLISHED, body.data, body.len, NULL, err);
	dcr_buf_release(&body);
	return rc;
}

/* ---- legitimate clients -------------------------------------------------------------- */

static int on_event(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	(void)seq;
	(void)entry;
	(*(uint64_t *)ctx) += n;
	return 0;
}

static void *legit_main(void *arg)
{
	legit *me = arg;
	const troom *t = &rooms[me->room];
	cl_conn *c = NULL;
	char comp[16], ds[16], file[32], run[33] = "";
	uint8_t *buf = dcr_malloc(DCR_CHUNK_BYTES);
	dcr_err err;
	snprintf(comp, sizeof comp, "c%d", me->j);
	snprintf(ds, sizeof ds, "d%d", me->j);
	snprintf(file, sizeof file, "d%d.csv", me->j);
	for (uint64_t i = 0; bench_now_s() < t_end; i++) {
		double t0 = bench_now_s();
		if (!c || i % 10 == 0) {
			if (c)
				cl_close(c);
			c = NULL;
			if (cl_connect(sock, me->k, &c, &err) < 0) {
				lat_fail(&me->l[OP_CONNECT], &err);
				c = NULL;
				usleep(50000);
				continue;
			}
			lat_add(&me->l[OP_CONNECT], (bench_now_s() - t0) * 1000);
			t0 = bench_now_s();
		}
		int rc = 0;
		enum op op;
		switch (i % 5) {
		case 0:
			op = OP_PROVISION;
			rc = provision(c, t->id, ds, file, rows, me->seed++, &err);
			if (rc == 0)
				me->acked_prov++;
			break;
		case 1: {
			op = OP_RUN_REQUEST;
			rc = cl_run(c, t->id, comp, run, &err);
			if (rc < 0)
				break;
			me->acked_runs++;
			lat_add(&me->l[op], (bench_now_s() - t0) * 1000);
			/* wait until done, as `dcr run --wait` does */
			op = OP_RUN_DONE;
			for (;;) {
				cl_run_status st;
				rc = cl_run_status_get(c, t->id, comp, &st, &err);
				if (rc < 0)
					break;
				bool mine = strcmp(st.run_id, run) == 0;
				bool done = mine && strcmp(st.state, "done") == 0;
				bool failed = mine && strcmp(st.state, "failed") == 0;
				cl_run_status_release(&st);
				if (done)
					break;
				if (failed || bench_now_s() > t_end + RUN_GRACE_S) {
					rc = dcr_err_set(&err, DCR_EINTERNAL,
					                 failed ? "run %s failed"
					                        : "run %s not done %.0f s after the load ended",
					                 run, RUN_GRACE_S);
					break;
				}
				usleep(5000);
			}
			break;
		}
		case 2: {
			op = OP_RESULT;
			cl_run_status st;
			uint64_t size = 0, off = 0;
			char r2[33];
			rc = cl_run_status_get(c, t->id, comp, &st, &err);
			if (rc < 0)
				break;
			bool done = strcmp(st.state, "done") == 0;
			cl_run_status_release(&st);
			if (!done)
				break;
			rc = cl_result_open(c, t->id, comp, r2, &size, &err);
			while (rc == 0) {
				int n = cl_result_read(c, t->id, r2, off, buf, DCR_CHUNK_BYTES, &err);
				if (n <= 0) {
					rc = n;
					break;
				}
				off += (uint64_t)n;
			}
			break;
		}
		case 3: {
			op = OP_EVENTS;
			cl_room_info *ri = NULL;
			size_t nr = 0;
			uint64_t bytes = 0, size = 0;
			char hex[ES_ROOM_HEX_BYTES];
			es_room_format(t->id, hex);
			rc = cl_rooms(c, &ri, &nr, &err);
			for (size_t k = 0; rc == 0 && k < nr; k++)
				if (strcmp(ri[k].id, hex) == 0)
					size = ri[k].size;
			cl_rooms_free(ri, nr);
			if (rc == 0)
				rc = cl_events(c, t->id, size > 64 ? size - 64 : 0, ES_SEQ_ANY, on_event,
				               &bytes, &err);
			break;
		}
		default: {
			op = OP_ROOMS;
			cl_room_info *ri = NULL;
			size_t nr = 0;
			rc = cl_rooms(c, &ri, &nr, &err);
			cl_rooms_free(ri, nr);
			break;
		}
		}
		if (rc < 0) {
			lat_fail(&me->l[op], &err);
			cl_close(c);
			c = NULL;
			continue;
		}
		lat_add(&me->l[op], (bench_now_s() - t0) * 1000);
	}
	if (c)
		cl_close(c);
	free(buf);
	return NULL;
}

/* ---- hostile clients ---------------------------------------------------------------- */

typedef struct hostile {
	int kind;
	dcr_key *k;
	uint8_t pub[32];
	uint8_t room[16]; /* its own room (runaway, spill, names, unsigned) */
	uint64_t tries, ok, refused, peak;
	double busy_ms; /* time spent in its calls */
	char first_err[DCR_ERR_MSG_BYTES];
	pthread_t th;
} hostile;

enum { H_FLOOD, H_DEFCHECK, H_RUNAWAY, H_SPILL, H_BIGDEF, H_NAMES, H_ORACLE, H_UNSIGNED, NHKINDS };
static const char *const h_names[NHKINDS] = {"flood",  "defcheck", "runaway", "spill",
                                              "bigdef", "names",    "oracle",  "unsigned"};

#define EXPENSIVE                                                                          \
	"WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 100000), "   \
	"s(x) AS (SELECT 'xxxxxxxx' UNION ALL SELECT x || x FROM s WHERE length(x) < 4000000) " \
	"SELECT COUNT(*) AS n, (SELECT COUNT(*) FROM bank) AS b FROM r, "                        \
	"(SELECT x FROM s ORDER BY length(x) DESC LIMIT 1) AS t WHERE t.x LIKE '%y%'"

static char *hostile_def(const hostile *h, int ncomp, size_t pad, uint64_t salt)
{
	dcr_buf b;
	char *ks = dcr_pub_format(h->pub);
	dcr_buf_init(&b);
	dcr_buf_printf(&b,
	               "{\"format\": \"dcr.room/1\", \"name\": \"h-%s-%llu\",\n"
	               " \"participants\": [{\"email\": \"h@evil.example\", \"key\": \"%s\",\n"
	               "   \"owner_of\": [\"bank\"], \"analyst_of\": [\"spill\"",
	               h_names[h->kind], (unsigned long long)salt, ks);
	for (int i = 0; i < ncomp; i++)
		dcr_buf_printf(&b, ", \"e%d\"", i);
	dcr_buf_append_str(
	    &b, "]}],\n"
	        " \"datasets\": [{\"name\": \"bank\", \"kind\": \"table\", \"columns\": [\n"
	        "   {\"name\": \"email\", \"type\": \"string\"},\n"
	        "   {\"name\": \"city\", \"type\": \"string\"},\n"
	        "   {\"name\": \"age\", \"type\": \"integer\"}]}],\n"
	        " \"computations\": [\n"
	        "  {\"name\": \"spill\", \"kind\": \"sql\", \"query\": \"SELECT a.email || b.email "
	        "|| c.city AS x FROM bank a, bank b, bank c ORDER BY x DESC\"}");
	/* e0 of its own room: fine on the check's one-row tables, a 4-way
	 * cross join of 300 rows (8.1e9) at run time; the others: few VM
	 * steps, each a scan of a 3 MB string, for the admission check */
	for (int i = 0; i < ncomp; i++)
		dcr_buf_printf(&b,
		               ",\n  {\"name\": \"e%d\", \"kind\": \"sql\", \"query\": \"%s\"}", i,
		               i == 0 ? "SELECT COUNT(*) AS n FROM bank a, bank b, bank c, bank d"
		                      : EXPENSIVE);
	dcr_buf_append_str(&b, "]");
	for (size_t i = 0; i < pad; i++)
		dcr_buf_append_str(&b, " ");
	dcr_buf_append_str(&b, "}\n");
	char *s = dcr_strdup(dcr_buf_cstr(&b));
	dcr_buf_release(&b);
	free(ks);
	return s;
}

static void h_err(hostile *h, const dcr_err *err)
{
	h->refused++;
	if (!h->first_err[0])
		snprintf(h->first_err, sizeof h->first_err, "%s", err->msg);
}

/* upload.begin with a file name, bypassing the client library's check;
 * returns the upload id or 0. */
static uint64_t raw_upload_begin(cl_conn *c, const uint8_t room[16], const char *file,
                                 dcr_err *err)
{
	proto_map m;
	dcr_mp_doc *d = NULL;
	dcr_buf rb, args;
	char hex[ES_ROOM_HEX_BYTES];
	uint64_t up = 0;
	dcr_buf_init(&rb);
	dcr_buf_init(&args);
	proto_map_init(&m);
	es_room_format(room, hex);
	dcr_mpw_str(proto_map_key(&m, "room"), hex);
	dcr_mpw_str(proto_map_key(&m, "dataset"), "bank");
	dcr_mpw_str(proto_map_key(&m, "file"), file);
	proto_map_encode(&m, &args);
	proto_map_release(&m);
	if (cl_call(c, "upload.begin", args.data, args.len, &rb, &d, err) == 0 &&
	    dcr_mp_get_u64(dcr_mp_root(d), "upload", &up, err) < 0)
		up = 0;
	dcr_mp_doc_free(d);
	dcr_buf_release(&rb);
	dcr_buf_release(&args);
	return up;
}

static int raw_call(cl_conn *c, const char *op, proto_map *m, dcr_err *err)
{
	dcr_mp_doc *d = NULL;
	dcr_buf rb, args;
	dcr_buf_init(&rb);
	dcr_buf_init(&args);
	proto_map_encode(m, &args);
	proto_map_release(m);
	int rc = cl_call(c, op, args.data, args.len, &rb, &d, err);
	dcr_mp_doc_free(d);
	dcr_buf_release(&rb);
	dcr_buf_release(&args);
	return rc;
}

static void *hostile_main(void *arg)
{
	hostile *h = arg;
	cl_conn *c = NULL, **held = NULL;
	size_t nheld = 0;
	dcr_err err;
	char run[33];
	uint64_t salt = 0;
	if (h->kind == H_FLOOD)
		held = dcr_calloc(FLOOD_MAX, sizeof *held);
	while (bench_now_s() < t_end) {
		double t0 = bench_now_s();
		h->tries++;
		if (h->kind == H_FLOOD) {
			if (nheld < FLOOD_MAX && cl_connect(sock, h->k, &held[nheld], &err) == 0) {
				nheld++;
				h->ok++;
				if (nheld > h->peak)
					h->peak = nheld;
			} else {
				if (nheld < FLOOD_MAX)
					h_err(h, &err);
				usleep(100000);
			}
			continue;
		}
		if (!c && cl_connect(sock, h->k, &c, &err) < 0) {
			h_err(h, &err);
			c = NULL;
			usleep(100000);
			continue;
		}
		int rc = 0;
		switch (h->kind) {
		case H_DEFCHECK:
		case H_BIGDEF: {
			uint8_t id[16];
			char *js = h->kind == H_DEFCHECK ? hostile_def(h, 8, 0, salt++)
			                                 : hostile_def(h, 0, 1000000, salt++);
			rc = cl_room_create(c, js, id, &err);
			free(js);
			break;
		}
		case H_RUNAWAY:
		case H_SPILL: {
			char nm[8];
			snprintf(nm, sizeof nm, "%s", h->kind == H_SPILL ? "spill" : "e0");
			rc = cl_run(c, h->room, nm, run, &err);
			if (rc == 0)
				usleep(5000000); /* a new one every 5 s */
			break;
		}
		case H_NAMES: {
			static const char *const bad[] = {"x.csv\nmallory provisioned d0.csv",
			                                  "\x1b[2J\x1b[31mx.csv", "status", "..",
			                                  "a/b.csv"};
			const char *nm = bad[h->tries % 5];
			if (h->tries % 2) {
				rc = provision(c, h->room, "bank", nm, 20, h->tries, &err);
			} else {
				uint64_t up = raw_upload_begin(c, h->room, nm, &err);
				rc = up ? 0 : -1;
				if (up) {
					proto_map m;
					proto_map_init(&m);
					dcr_mpw_uint(proto_map_key(&m, "upload"), up);
					raw_call(c, "upload.abort", &m, &err);
				}
			}
			break;
		}
		case H_ORACLE: {
			dcr_buf body;
			dcr_buf_init(&body);
			rm_body_stopped(&body, "mine now");
			rc = cl_submit(c, rooms[h->tries % (uint64_t)nrooms].id, RM_EV_STOPPED,
			               body.data, body.len, NULL, &err);
			dcr_buf_release(&body);
			break;
		}
		case H_UNSIGNED: {
			/* a finished upload of 1 MB that is never signed */
			uint64_t up = raw_upload_begin(c, h->room, "u.csv", &err);
			rc = up ? 0 : -1;
			if (up) {
				static char chunk[1 << 20];
				size_t n = (size_t)snprintf(chunk, sizeof chunk, "email,city,age\n");
				while (n + 40 < sizeof chunk)
					n += (size_t)snprintf(chunk + n, sizeof chunk - n,
					                      "x%zu.%llu@e.org,Paris,33\n", n,
					                      (unsigned long long)h->tries);
				proto_map m;
				proto_map_init(&m);
				dcr_mpw_uint(proto_map_key(&m, "upload"), up);
				dcr_mpw_bin(proto_map_key(&m, "data"), chunk, n);
				rc = raw_call(c, "upload.chunk", &m, &err);
				if (rc == 0) {
					proto_map_init(&m);
					dcr_mpw_uint(proto_map_key(&m, "upload"), up);
					rc = raw_call(c, "upload.end", &m, &err);
				}
			}
			break;
		}
		}
		h->busy_ms += (bench_now_s() - t0) * 1000;
		if (rc < 0) {
			h_err(h, &err);
			cl_close(c);
			c = NULL;
			usleep(20000);
		} else {
			h->ok++;
		}
	}
	for (size_t i = 0; i < nheld; i++)
		cl_close(held[i]);
	free(held);
	if (c)
		cl_close(c);
	return NULL;
}

/* ---- after the load: nothing acknowledged is lost ---------------------------------------- */

struct replay {
	rm_state st;
	uint64_t n, prov[PER_ROOM_MAX], runs[PER_ROOM_MAX];
	const troom *t;
	int bad;
	dcr_err err;
};

static int replay_one(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	struct replay *r = ctx;
	rm_step step;
	es_event ev;
	(void)seq;
	if (r->bad)
		return 0;
	if (rm_replay_step(&r->st, entry, n, NULL, NULL, &step) < 0) {
		rm_step_err(&step, &r->err);
		r->bad = 1;
		return 0;
	}
	r->n++;
	if (es_event_decode(entry, n, &ev, &r->err) == 0) {
		for (int j = 0; j < r->t->n; j++)
			if (memcmp(ev.actor, cl[r->t->first + j].pub, 32) == 0) {
				if (strcmp(ev.type, RM_EV_PROVISIONED) == 0)
					r->prov[j]++;
				else if (strcmp(ev.type, RM_EV_RUN_REQUESTED) == 0)
					r->runs[j]++;
			}
		es_event_release(&ev);
	}
	return 0;
}

/* Reads back and replays every legitimate room; returns the number of
 * problems (missing acknowledged events, rooms that do not replay). */
static int verify_rooms(const char *when, uint64_t *events_out)
{
	int problems = 0;
	uint64_t events = 0, lost = 0, extra = 0;
	for (int r = 0; r < nrooms; r++) {
		struct replay *rp = dcr_calloc(1, sizeof *rp);
		cl_conn *c = conn_or_die(cl[rooms[r].first].k);
		dcr_err err;
		rp->t = &rooms[r];
		rm_state_init(&rp->st, cl_daemon_key(c));
		if (cl_events(c, rooms[r].id, 0, ES_SEQ_ANY, replay_one, rp, &err) < 0)
			die("events", &err);
		if (rp->bad) {
			fprintf(stderr, "  room %d does not replay: %s\n", r, rp->err.msg);
			problems++;
		}
		events += rp->n;
		for (int j = 0; j < rooms[r].n; j++) {
			const legit *l = &cl[rooms[r].first + j];
			uint64_t want_p = l->acked_prov + 1, want_r = l->acked_runs; /* + setup */
			if (rp->prov[j] < want_p || rp->runs[j] < want_r) {
				lost += (rp->prov[j] < want_p ? want_p - rp->prov[j] : 0) +
				        (rp->runs[j] < want_r ? want_r - rp->runs[j] : 0);
				problems++;
			}
			extra += (rp->prov[j] > want_p ? rp->prov[j] - want_p : 0) +
			         (rp->runs[j] > want_r ? rp->runs[j] - want_r : 0);
		}
		rm_state_release(&rp->st);
		free(rp);
		cl_close(c);
	}
	printf("  %s: %llu events in %d rooms, all replayed (rm_replay_step: signatures and "
	       "rules): %s; acknowledged events missing: %llu; stored but not acknowledged "
	       "(a call that failed after the append): %llu\n",
	       when, (unsigned long long)events, nrooms, problems ? "NO" : "yes",
	       (unsigned long long)lost, (unsigned long long)extra);
	*events_out = events;
	return problems;
}

static void *rss_sampler(void *arg)
{
	(void)arg;
	while (bench_now_s() < t_end + 5) {
		uint64_t kb = bench_status_kb(daemon_pid, "VmRSS:");
		if (kb > peak_rss_kb)
			peak_rss_kb = kb;
		usleep(100000);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *b = getenv("DCR_BUILD_DIR");
	char *exe_buf = NULL;
	dcr_err err;
	int problems = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dcrd") == 0 && i + 1 < argc)
			exe = argv[++i];
		else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			seconds = strtod(argv[++i], NULL);
		else if (strcmp(argv[i], "--rooms") == 0 && i + 1 < argc)
			nrooms = (int)strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--clients") == 0 && i + 1 < argc)
			nclients = (int)strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--hostile") == 0 && i + 1 < argc)
			nhostile = (int)strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--rows") == 0 && i + 1 < argc)
			rows = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--no-sync") == 0)
			no_sync = true;
		else {
			fprintf(stderr, "usage: bench_tenants [--dcrd PATH] [--seconds S] [--rooms R] "
			                "[--clients N] [--hostile H] [--rows N] [--no-sync]\n");
			return 2;
		}
	}
	if (nrooms < 1 || nclients < nrooms || nclients > nrooms * PER_ROOM_MAX || nhostile < 0 ||
	    seconds <= 0 || rows < 10) {
		fprintf(stderr, "bench_tenants: need 1 <= rooms <= clients <= %d x rooms, "
		                "hostile >= 0, seconds > 0, rows >= 10\n",
		        PER_ROOM_MAX);
		return 2;
	}
	if (!exe)
		exe = exe_buf = dcr_asprintf("%s/daemon/dcrd", b && *b ? b : ".");
	snprintf(dir, sizeof dir, "/tmp/dcr-bench-tenants-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	atexit(cleanup);
	snprintf(sock, sizeof sock, "%s/s", dir);
	snprintf(data, sizeof data, "%s/data", dir);
	snprintf(logp, sizeof logp, "%s/log", dir);
	start_daemon();

	/* setup: rooms, keys, publish, one provision of every dataset */
	double ts = bench_now_s();
	rooms = dcr_calloc((size_t)nrooms, sizeof *rooms);
	cl = dcr_calloc((size_t)nclients, sizeof *cl);
	for (int i = 0; i < nclients; i++) {
		cl[i].room = i % nrooms;
		dcr_key_generate(&cl[i].k);
		dcr_key_public(cl[i].k, cl[i].pub);
	}
	for (int r = 0, next = 0; r < nrooms; r++) {
		rooms[r].first = next;
		for (int i = 0; i < nclients; i++)
			if (cl[i].room == r)
				rooms[r].n++;
		next += rooms[r].n;
	}
	/* clients of a room are consecutive: renumber */
	for (int r = 0, i = 0; r < nrooms; r++)
		for (int j = 0; j < rooms[r].n; j++, i++) {
			cl[i].room = r;
			cl[i].j = j;
			cl[i].seed = (uint64_t)i * 1000000;
		}
	for (int r = 0; r < nrooms; r++) {
		legit *owner = &cl[rooms[r].first];
		cl_conn *c = conn_or_die(owner->k);
		char *js = legit_def(r);
		if (cl_room_create(c, js, rooms[r].id, &err) < 0 || publish(c, rooms[r].id, js, &err))
			die("legitimate room", &err);
		free(js);
		cl_close(c);
		for (int j = 0; j < rooms[r].n; j++) {
			legit *l = &cl[rooms[r].first + j];
			char ds[16], file[32];
			snprintf(ds, sizeof ds, "d%d", j);
			snprintf(file, sizeof file, "d%d.csv", j);
			c = conn_or_die(l->k);
			if (provision(c, rooms[r].id, ds, file, rows, l->seed++, &err) < 0)
				die("first provision", &err);
			cl_close(c);
		}
	}
	hostile *hs = dcr_calloc((size_t)nhostile, sizeof *hs);
	for (int i = 0; i < nhostile; i++) {
		hostile *h = &hs[i];
		h->kind = i % NHKINDS;
		dcr_key_generate(&h->k);
		dcr_key_public(h->k, h->pub);
		if (h->kind == H_RUNAWAY || h->kind == H_SPILL || h->kind == H_NAMES ||
		    h->kind == H_UNSIGNED) {
			/* its own room: a runaway computation (e0) and a spilling sort;
			 * 300 rows make the cross join 27 million rows */
			cl_conn *c = conn_or_die(h->k);
			char *js = hostile_def(h, 1, 0, 1000000 + (uint64_t)i);
			if (cl_room_create(c, js, h->room, &err) < 0 || publish(c, h->room, js, &err) ||
			    provision(c, h->room, "bank", "bank.csv", 300, 7, &err) < 0)
				die("hostile room", &err);
			free(js);
			cl_close(c);
		}
	}
	printf("dcrd under many tenants (%s): %d rooms, %d legitimate clients, %d hostile; "
	       "setup %.1f s\n",
	       no_sync ? "--no-sync: NOT durable" : "durable: fsync", nrooms, nclients, nhostile,
	       bench_now_s() - ts);

	/* the load */
	double cpu0 = bench_cpu_of(daemon_pid);
	double t0 = bench_now_s();
	pthread_t sampler;
	t_end = t0 + seconds;
	pthread_create(&sampler, NULL, rss_sampler, NULL);
	for (int i = 0; i < nhostile; i++)
		pthread_create(&hs[i].th, NULL, hostile_main, &hs[i]);
	for (int i = 0; i < nclients; i++)
		pthread_create(&cl[i].th, NULL, legit_main, &cl[i]);
	for (int i = 0; i < nclients; i++)
		pthread_join(cl[i].th, NULL);
	double t1 = bench_now_s();
	for (int i = 0; i < nhostile; i++)
		pthread_join(hs[i].th, NULL);
	double t2 = bench_now_s();
	pthread_join(sampler, NULL);
	uint64_t hwm = bench_status_kb(daemon_pid, "VmHWM:");
	double cpu = bench_cpu_of(daemon_pid) - cpu0;

	/* legitimate clients: throughput and latencies */
	lat all[NOPS];
	uint64_t ops = 0, fails = 0;
	memset(all, 0, sizeof all);
	for (int o = 0; o < NOPS; o++) {
		for (int i = 0; i < nclients; i++) {
			lat *l = &cl[i].l[o];
			for (size_t k = 0; k < l->n; k++)
				lat_add(&all[o], l->v[k]);
			if (l->fail && !all[o].fail)
				snprintf(all[o].first_err, sizeof all[o].first_err, "%s", l->first_err);
			all[o].fail += l->fail;
			free(l->v);
		}
		qsort(all[o].v, all[o].n, sizeof *all[o].v, cmp_dbl);
		if (o != OP_RUN_DONE)
			ops += all[o].n;
		fails += all[o].fail;
	}
	printf("legitimate clients: %llu operations in %.1f s (the %.0f s load, then the runs it "
	       "requested), %.1f/s, %llu failed\n",
	       (unsigned long long)ops, t1 - t0, seconds, (double)ops / (t1 - t0),
	       (unsigned long long)fails);
	printf("  %-24s %8s %8s %9s %9s %9s %9s %6s\n", "operation", "count", "per s", "p50 ms",
	       "p95 ms", "p99 ms", "max ms", "failed");
	for (int o = 0; o < NOPS; o++) {
		lat *l = &all[o];
		printf("  %-24s %8zu %8.1f %9.1f %9.1f %9.1f %9.1f %6llu\n", op_names[o], l->n,
		       (double)l->n / (t1 - t0), pct(l, 0.50), pct(l, 0.95), pct(l, 0.99),
		       l->n ? l->v[l->n - 1] : 0.0, (unsigned long long)l->fail);
	}
	for (int o = 0; o < NOPS; o++)
		if (all[o].fail)
			printf("  first failure of %s: %s\n", op_names[o], all[o].first_err);
	for (int o = 0; o < NOPS; o++)
		free(all[o].v);
	printf("hostile clients (their calls ended %.1f s after the legitimate ones):\n", t2 - t1);
	for (int i = 0; i < nhostile; i++) {
		hostile *h = &hs[i];
		printf("  %-9s %6llu tries, %6llu accepted, %6llu refused", h_names[h->kind],
		       (unsigned long long)h->tries, (unsigned long long)h->ok,
		       (unsigned long long)h->refused);
		if (h->kind == H_FLOOD)
			printf(", %llu idle connections held at most", (unsigned long long)h->peak);
		else if (h->ok + h->refused)
			printf(", %.0f ms per call", h->busy_ms / (double)(h->ok + h->refused));
		if (h->first_err[0])
			printf("; first refusal: %s", h->first_err);
		printf("\n");
	}
	printf("dcrd: peak RSS %.1f MB (VmHWM; sampled VmRSS peak %.1f MB), %.1f CPU s over the "
	       "load (%.0f%% of one core)\n",
	       (double)hwm / 1024, (double)peak_rss_kb / 1024, cpu, 100 * cpu / (t2 - t0));

	/* nothing acknowledged lost: now, and after SIGKILL and a restart */
	uint64_t before = 0, after = 0;
	problems += verify_rooms("read back", &before);
	stop_daemon(SIGKILL);
	start_daemon();
	problems += verify_rooms("after SIGKILL + restart", &after);
	if (after < before) {
		printf("  %llu events fewer after the restart\n",
		       (unsigned long long)(before - after));
		problems++;
	}
	printf("%s\n", problems ? "FAIL: acknowledged events lost or rooms that do not replay"
	                        : "ok: no acknowledged event lost");
	for (int i = 0; i < nclients; i++)
		dcr_key_free(cl[i].k);
	for (int i = 0; i < nhostile; i++)
		dcr_key_free(hs[i].k);
	free(hs);
	free(cl);
	free(rooms);
	free(exe_buf);
	return problems ? 1 : 0;
}
