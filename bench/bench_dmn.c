/* bench_dmn.c: dcrd figures through the client library (see
 * docs/benchmarks.md, "Daemon").
 *
 *   bench_dmn [--dcrd PATH] [--rows N] [--seconds S] [--no-sync]
 *   bench_dmn [--dcrd PATH] [--tls] --provision-mb MB [--csv PATH] [--repeat N]
 *   bench_dmn [--dcrd PATH] --overlap [--rows N] [--sqlite3 PATH]
 *
 * The third form is issue 4 through the daemon: it writes bench_cmp's
 * bank.csv and insurer.csv (N rows each, default 1,000,000; bench_overlap.h),
 * creates and publishes a room with both datasets and the overlap query
 * (k = 10), provisions both files with cl_provision (MB/s each), waits for
 * both prepared tables, times three runs from the request to a durable
 * run.completed (median) and the result download, then runs the sqlite3
 * shell (default /usr/bin/sqlite3) on the same files: .import of both and
 * the query (whole process), and the query alone (.timer), and prints the
 * speedups, wall and CPU.
 *
 * The second form measures provisioning alone, as `dcr provision` does it:
 * a CSV file of MB megabytes (generated once into PATH, default
 * /tmp/dcr-bench-prov-MB.csv, and kept for later runs) is read from disk
 * (page cache) and uploaded N times (default 3) into one room; each upload
 * prints the time until cl_provision returned (provisioned: validated,
 * hashed, encrypted, fsynced, event appended) and until the prepared table
 * is ready (a run can start), plus the CPU seconds dcrd spent. With --tls,
 * dcrd also listens on 127.0.0.1 (`--listen 127.0.0.1:0`) and the bench
 * connects there over TLS 1.3 pinned to dcrd's fingerprint, as a remote
 * `dcr --server` does (issue 15).
 *
 * Starts a real dcrd (default $DCR_BUILD_DIR/daemon/dcrd, else
 * ./daemon/dcrd) on a fresh directory under /tmp and measures:
 * 1. connect + authenticate, per connection;
 * 2. durable submits/s (signed room.draft_saved events, each checked by
 *    rm_apply and appended with fsync) with 1, 8 and 32 clients, each on
 *    its own room and all on one room (ESEQ retries included);
 * 3. event listing (cl_events) of the largest room, events/s;
 * 4. provisioning a generated CSV of N rows (default 1,000,000): upload
 *    (validate + hash + encrypt + store) MB/s, then the prepared table;
 * 5. a GROUP BY run over it, from run.requested to run.completed, and
 *    reading the result.
 * The directory is removed at the end. */
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../daemon/daemon.h"
#include "../proto/proto.h"
#include "../room/room.h"
#include "bench_harness.h"
#include "bench_overlap.h"

static char dir[64], sock[128], data[128], logp[128];
/* --tls: dcrd also listens on 127.0.0.1 (a free port) and the bench's
 * connections go there over TLS 1.3, pinned to dcrd's fingerprint */
static bool tls;
static char tls_server[64], tls_pin[96];
static pid_t daemon_pid;
static double seconds = 3.0;
static dcr_key *anna;
static char *anna_s;

static void cleanup(void)
{
	bench_stop_pid(&daemon_pid, SIGTERM);
	if (dir[0])
		bench_rm_tree(dir);
}

static void die(const char *what, const dcr_err *err)
{
	char tail[2048];
	FILE *f = logp[0] ? fopen(logp, "r") : NULL;

	fprintf(stderr, "bench_dmn: %s: %s\n", what, err ? err->msg : "");
	if (f) {
		/* the end of dcrd's log says why */
		size_t n;
		if (fseek(f, -(long)sizeof tail + 1, SEEK_END) != 0)
			rewind(f);
		n = fread(tail, 1, sizeof tail - 1, f);
		tail[n] = 0;
		fprintf(stderr, "bench_dmn: end of dcrd's log:\n%s", tail);
		fclose(f);
	}
	exit(1);
}

/* result.open (records result.retrieved) and the whole result; returns its
 * size. run gets the id of the run read. */
static uint64_t download_result(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES],
                                const char *comp, char run[33], uint8_t *buf)
{
	dcr_err err;
	uint64_t size = 0, off = 0;

	if (cl_result_open(c, room, comp, run, &size, &err) < 0)
		die("result.open", &err);
	for (;;) {
		int n = cl_result_read(c, room, run, off, buf, DCR_CHUNK_BYTES, &err);
		if (n < 0)
			die("result.read", &err);
		if (n == 0)
			break;
		off += (uint64_t)n;
	}
	return off;
}

static cl_conn *conn(void)
{
	cl_conn *c;
	dcr_err err;

	if (bench_connect(sock, tls ? tls_server : NULL, tls_pin, anna, &c, &err) < 0)
		die("connect", &err);
	return c;
}

static char *def_json(const char *name, const char *extra)
{
	return dcr_asprintf(
	    "{\"format\": \"dcr.room/1\", \"name\": \"%s\", \"description\": \"%s\",\n"
	    " \"settings\": {\"require_provisioned\": false},\n"
	    " \"participants\": [{\"email\": \"anna@bank.example\", \"key\": \"%s\",\n"
	    "   \"owner_of\": [\"bank\"], \"analyst_of\": [\"by_city\"]}],\n"
	    " \"datasets\": [{\"name\": \"bank\", \"kind\": \"table\", \"columns\": [\n"
	    "   {\"name\": \"email\", \"type\": \"string\"},\n"
	    "   {\"name\": \"city\", \"type\": \"string\", \"allow\": [\"group\"]},\n"
	    "   {\"name\": \"age\", \"type\": \"integer\", \"allow\": [\"aggregate\"]},\n"
	    "   {\"name\": \"balance\", \"type\": \"float\", \"allow\": [\"aggregate\"]}]}],\n"
	    " \"computations\": [{\"name\": \"by_city\", \"kind\": \"sql\",\n"
	    "   \"privacy\": {\"min_rows_aggregated\": 10},\n"
	    "   \"query\": \"SELECT city, COUNT(*) AS n, AVG(age) AS age, SUM(balance) AS "
	    "total FROM bank GROUP BY city\"}]}\n",
	    name, extra, anna_s);
}

/* ---- submits ------------------------------------------------------------------ */

struct writer {
	uint8_t room[ES_ROOM_ID_BYTES];
	double until;
	uint64_t done, gave_up;
	const char *json;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	cl_conn *c = conn();
	dcr_buf body;
	dcr_err err;

	dcr_buf_init(&body);
	rm_body_definition(&body, w->json);
	while (bench_now_s() < w->until) {
		int rc = cl_submit(c, w->room, RM_EV_SAVED, body.data, body.len, NULL, &err);
		if (rc == DCR_ESEQ)
			w->gave_up++; /* lost every retry to other writers */
		else if (rc < 0)
			die("submit", &err);
		else
			w->done++;
	}
	dcr_buf_release(&body);
	cl_close(c);
	return NULL;
}

static void bench_submits(int nclients, bool one_room, uint8_t biggest[ES_ROOM_ID_BYTES])
{
	struct writer *w = dcr_calloc((size_t)nclients, sizeof *w);
	pthread_t *th = dcr_calloc((size_t)nclients, sizeof *th);
	cl_conn *c = conn();
	char *json = def_json("bench", "x");
	uint8_t shared[ES_ROOM_ID_BYTES];
	uint64_t total = 0, gave_up = 0;
	double t0, t1;
	dcr_err err;

	if (one_room && cl_room_create(c, json, shared, &err) < 0)
		die("create", &err);
	for (int i = 0; i < nclients; i++) {
		if (one_room)
			memcpy(w[i].room, shared, sizeof shared);
		else if (cl_room_create(c, json, w[i].room, &err) < 0)
			die("create", &err);
		w[i].json = json;
	}
	t0 = bench_now_s();
	for (int i = 0; i < nclients; i++) {
		w[i].until = t0 + seconds;
		pthread_create(&th[i], NULL, writer_main, &w[i]);
	}
	for (int i = 0; i < nclients; i++) {
		pthread_join(th[i], NULL);
		total += w[i].done;
		gave_up += w[i].gave_up;
	}
	t1 = bench_now_s();
	printf("  %2d client%s, %s: %8.0f submits/s (%llu in %.1f s", nclients,
	       nclients == 1 ? " " : "s", one_room ? "one room     " : "room each    ",
	       (double)total / (t1 - t0), (unsigned long long)total, t1 - t0);
	if (gave_up)
		printf("; %llu gave up after %u ESEQ retries", (unsigned long long)gave_up,
		       (unsigned)DMN_SUBMIT_RETRIES);
	printf(")\n");
	if (one_room && biggest)
		memcpy(biggest, shared, sizeof shared);
	free(json);
	free(w);
	free(th);
	cl_close(c);
}

static int count_event(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	(void)seq;
	(void)entry;
	(*(uint64_t *)ctx) += n;
	return 0;
}

/* ---- provisioning and runs ------------------------------------------------------ */

struct gen {
	uint64_t rows, next;
	dcr_buf line;
	size_t off;
	bool header;
};

static int gen_read(void *ctx, void *buf, size_t cap)
{
	static const char *cities[] = {"Paris", "Lyon",  "Nice",   "Lille",
	                               "Metz",  "Brest", "Nantes", "Dijon"};
	struct gen *g = ctx;
	size_t out = 0;

	while (out < cap) {
		if (g->off == g->line.len) {
			dcr_buf_reset(&g->line);
			g->off = 0;
			if (!g->header) {
				dcr_buf_append_str(&g->line, "email,city,age,balance\n");
				g->header = true;
			} else if (g->next < g->rows) {
				uint64_t i = g->next++;
				dcr_buf_printf(&g->line,
				               "user%llu@example.org,%s,%llu,%llu.%02llu\n",
				               (unsigned long long)i, cities[i % 8],
				               (unsigned long long)(18 + i % 70),
				               (unsigned long long)(i * 7919 % 100000),
				               (unsigned long long)(i % 100));
			} else {
				break;
			}
		}
		size_t k = g->line.len - g->off;
		if (k > cap - out)
			k = cap - out;
		memcpy((uint8_t *)buf + out, g->line.data + g->off, k);
		g->off += k;
		out += k;
	}
	return (int)out;
}

static void bench_data(uint64_t rows)
{
	cl_conn *c = conn();
	char *json = def_json("data", "provisioning");
	uint8_t room[ES_ROOM_ID_BYTES], h[32];
	struct gen g = {rows, 0, {0}, 0, false};
	uint64_t off = 0, bytes = 0;
	cl_run_status st;
	char run[33];
	uint8_t *buf = dcr_malloc(DCR_CHUNK_BYTES);
	dcr_buf body;
	double t0, t1, t2;
	dcr_err err;

	dcr_buf_init(&body);
	dcr_buf_init(&g.line);
	if (cl_room_create(c, json, room, &err) < 0)
		die("create", &err);
	dcr_sha256(json, strlen(json), h);
	rm_body_published(&body, h);
	if (cl_submit(c, room, RM_EV_PUBLISHED, body.data, body.len, NULL, &err) < 0)
		die("publish", &err);
	t0 = bench_now_s();
	if (cl_provision(c, room, "bank", "bank.csv", 0, gen_read, &g, NULL, NULL, &err) < 0)
		die("provision", &err);
	t1 = bench_now_s();
	{
		/* bytes of the generated file: what upload.end counted */
		dcr_buf js;
		dcr_buf_init(&js);
		if (cl_datasets(c, &js, &err) == 0) {
			const char *p = strstr(dcr_buf_cstr(&js), "\"bytes\": ");
			if (p)
				bytes = strtoull(p + 9, NULL, 10);
		}
		dcr_buf_release(&js);
	}
	printf("  provision %llu rows (%.1f MB): %.2f s, %.1f MB/s (validate, stats, SHA-256, "
	       "AES-GCM, fsync)\n",
	       (unsigned long long)rows, (double)bytes / 1e6, t1 - t0,
	       (double)bytes / 1e6 / (t1 - t0));
	while (!bench_log_has(logp, "prepared table bank"))
		usleep(10000);
	t2 = bench_now_s();
	printf("  prepared table ready %.2f s after provisioning returned\n", t2 - t1);

	t0 = bench_now_s();
	if (cl_run(c, room, "by_city", run, &err) < 0)
		die("run", &err);
	for (;;) {
		if (cl_run_status(c, room, "by_city", &st, &err) < 0)
			die("status", &err);
		bool fin = strcmp(st.run_id, run) == 0 &&
		           (strcmp(st.state, "done") == 0 || strcmp(st.state, "failed") == 0);
		if (fin) {
			if (strcmp(st.state, "done") != 0)
				die("run failed", NULL);
			printf("  run GROUP BY over %llu rows: %.0f ms end to end (%llu ms in the "
			       "daemon), %llu result rows\n",
			       (unsigned long long)rows, (bench_now_s() - t0) * 1000,
			       (unsigned long long)st.duration_ms, (unsigned long long)st.rows);
			cl_run_status_release(&st);
			break;
		}
		cl_run_status_release(&st);
		usleep(2000);
	}
	t0 = bench_now_s();
	off = download_result(c, room, "by_city", run, buf);
	printf("  result.open + read %llu bytes: %.1f ms\n", (unsigned long long)off,
	       (bench_now_s() - t0) * 1000);
	free(buf);
	free(json);
	dcr_buf_release(&body);
	dcr_buf_release(&g.line);
	cl_close(c);
}

static char *u64s(char *p, uint64_t v)
{
	char t[24];
	int n = 0;

	do {
		t[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = t[--n];
	return p;
}

/* Writes a CSV of about mb megabytes (the bank schema) to path unless a
 * file of that size class is there already; returns its size. */
static uint64_t gen_csv(const char *path, uint64_t mb)
{
	static const char *cities[] = {"Paris", "Lyon",  "Nice",   "Lille",
	                               "Metz",  "Brest", "Nantes", "Dijon"};
	struct stat stt;
	uint64_t want = mb * 1000000, out = 0, i = 0;
	char *buf, *p;
	FILE *f;

	if (stat(path, &stt) == 0 && (uint64_t)stt.st_size <= want &&
	    (uint64_t)stt.st_size + 100 > want)
		return (uint64_t)stt.st_size;
	f = fopen(path, "w");
	if (!f)
		die("create csv", NULL);
	buf = dcr_malloc(1u << 20);
	p = buf;
	memcpy(p, "email,city,age,balance\n", 23);
	p += 23;
	for (;;) {
		char line[96], *q = line;
		size_t n;
		memcpy(q, "user", 4);
		q = u64s(q + 4, i);
		memcpy(q, "@example.org,", 13);
		q += 13;
		n = strlen(cities[i % 8]);
		memcpy(q, cities[i % 8], n);
		q += n;
		*q++ = ',';
		q = u64s(q, 18 + i % 70);
		*q++ = ',';
		q = u64s(q, i * 7919 % 100000);
		*q++ = '.';
		*q++ = (char)('0' + i % 100 / 10);
		*q++ = (char)('0' + i % 10);
		*q++ = '\n';
		n = (size_t)(q - line);
		if (out + (uint64_t)(p - buf) + n > want)
			break;
		if ((size_t)(p - buf) + n > (1u << 20)) {
			fwrite(buf, 1, (size_t)(p - buf), f);
			out += (uint64_t)(p - buf);
			p = buf;
		}
		memcpy(p, line, n);
		p += n;
		i++;
	}
	fwrite(buf, 1, (size_t)(p - buf), f);
	out += (uint64_t)(p - buf);
	free(buf);
	if (fclose(f) != 0)
		die("write csv", NULL);
	return out;
}

static int fd_read(void *ctx, void *buf, size_t cap)
{
	ssize_t r = read(*(int *)ctx, buf, cap);
	return r < 0 ? -errno : (int)r;
}

static size_t count_in_log(const char *needle)
{
	dcr_buf b;
	dcr_err err;
	size_t n = 0;

	dcr_buf_init(&b);
	dcr_read_file(logp, 256u * 1024 * 1024, &b, &err);
	for (const char *p = dcr_buf_cstr(&b); (p = strstr(p, needle)) != NULL; p++)
		n++;
	dcr_buf_release(&b);
	return n;
}

static void bench_provision(const char *csv, uint64_t mb, int repeat)
{
	cl_conn *c = conn();
	char *json = def_json("prov", "provisioning");
	uint8_t room[ES_ROOM_ID_BYTES], h[32];
	uint64_t bytes;
	dcr_buf body;
	dcr_err err;
	double t0;

	t0 = bench_now_s();
	bytes = gen_csv(csv, mb);
	printf("  CSV %s: %llu bytes (%.2f s to generate or find)\n", csv,
	       (unsigned long long)bytes, bench_now_s() - t0);
	{
		/* into the page cache, as for cp */
		int fd = open(csv, O_RDONLY);
		char *b = dcr_malloc(1u << 20);
		while (fd >= 0 && read(fd, b, 1u << 20) > 0)
			;
		if (fd >= 0)
			close(fd);
		free(b);
	}
	dcr_buf_init(&body);
	if (cl_room_create(c, json, room, &err) < 0)
		die("create", &err);
	dcr_sha256(json, strlen(json), h);
	rm_body_published(&body, h);
	if (cl_submit(c, room, RM_EV_PUBLISHED, body.data, body.len, NULL, &err) < 0)
		die("publish", &err);
	for (int k = 0; k < repeat; k++) {
		size_t prepared = count_in_log("prepared table bank");
		double t1, t2, c0 = bench_cpu_of(daemon_pid), c1, s0 = bench_cpu_of(getpid()), s1;
		int fd = open(csv, O_RDONLY);
		if (fd < 0)
			die("open csv", NULL);
		t0 = bench_now_s();
		if (cl_provision(c, room, "bank", "bank.csv", bytes, fd_read, &fd, NULL, NULL,
		                 &err) < 0)
			die("provision", &err);
		t1 = bench_now_s();
		c1 = bench_cpu_of(daemon_pid);
		s1 = bench_cpu_of(getpid());
		close(fd);
		while (count_in_log("prepared table bank") == prepared)
			usleep(5000);
		t2 = bench_now_s();
		printf("  provision %.0f MB: %.2f s, %.0f MB/s (CPU: dcrd %.2f s, client %.2f s); "
		       "prepared table (first run can start) after %.2f s, %.0f MB/s (dcrd CPU "
		       "%.2f s)\n",
		       (double)bytes / 1e6, t1 - t0, (double)bytes / 1e6 / (t1 - t0), c1 - c0,
		       s1 - s0, t2 - t0, (double)bytes / 1e6 / (t2 - t0),
		       bench_cpu_of(daemon_pid) - c0);
		fflush(stdout);
	}
	free(json);
	dcr_buf_release(&body);
	cl_close(c);
}

/* ---- issue 4: the overlap query through dcrd ------------------------------------ */

/* The bank and insurer datasets of bench_overlap.h (the column types and
 * nullability bench_cmp declares) and the overlap query with k = 10; the
 * bench identity owns both datasets and is the analyst. */
static char *overlap_json(void)
{
	return dcr_asprintf(
	    "{\"format\": \"dcr.room/1\", \"name\": \"overlap\",\n"
	    " \"description\": \"issue 4: bank/insurer overlap\",\n"
	    " \"participants\": [{\"email\": \"anna@bank.example\", \"key\": \"%s\",\n"
	    "   \"owner_of\": [\"bank\", \"insurer\"], \"analyst_of\": [\"overlap\"]}],\n"
	    " \"datasets\": [\n"
	    "  {\"name\": \"bank\", \"columns\": [\n"
	    "   {\"name\": \"email\", \"type\": \"string\", \"nullable\": false, \"format\": "
	    "\"email\", \"allow\": [\"join\"]},\n"
	    "   {\"name\": \"name\", \"type\": \"string\"},\n"
	    "   {\"name\": \"age\", \"type\": \"integer\"},\n"
	    "   {\"name\": \"city\", \"type\": \"string\", \"allow\": [\"group\"]},\n"
	    "   {\"name\": \"balance\", \"type\": \"float\"}]},\n"
	    "  {\"name\": \"insurer\", \"columns\": [\n"
	    "   {\"name\": \"email\", \"type\": \"string\", \"nullable\": false, \"format\": "
	    "\"email\", \"allow\": [\"join\"]},\n"
	    "   {\"name\": \"policy\", \"type\": \"string\", \"nullable\": false},\n"
	    "   {\"name\": \"premium\", \"type\": \"float\", \"nullable\": false, "
	    "\"allow\": [\"aggregate\"]},\n"
	    "   {\"name\": \"risk_class\", \"type\": \"string\", \"nullable\": false, "
	    "\"allow\": [\"group\"]}]}],\n"
	    " \"computations\": [{\"name\": \"overlap\", \"kind\": \"sql\",\n"
	    "   \"privacy\": {\"min_rows_aggregated\": 10},\n"
	    "   \"query\": \"" BENCH_OVERLAP_QUERY "\"}]}\n",
	    anna_s);
}

/* Uploads path as dataset with cl_provision, as `dcr provision` does;
 * prints MB/s and the CPU seconds of dcrd and of this process. */
static double overlap_provision(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES],
                                const char *dataset, const char *path, uint64_t bytes)
{
	double t0, t1, c0 = bench_cpu_of(daemon_pid), s0 = bench_cpu_of(getpid());
	int fd = open(path, O_RDONLY);
	const char *base = strrchr(path, '/');
	dcr_err err;

	if (fd < 0)
		die("open csv", NULL);
	t0 = bench_now_s();
	if (cl_provision(c, room, dataset, base ? base + 1 : path, bytes, fd_read, &fd, NULL, NULL,
	                 &err) < 0)
		die("provision", &err);
	t1 = bench_now_s();
	close(fd);
	printf("  provision %-7s %6.1f MB: %.2f s, %5.0f MB/s (CPU: dcrd %.2f s, client %.2f s)\n",
	       dataset, (double)bytes / 1e6, t1 - t0, (double)bytes / 1e6 / (t1 - t0),
	       bench_cpu_of(daemon_pid) - c0, bench_cpu_of(getpid()) - s0);
	fflush(stdout);
	return t1 - t0;
}

/* One run of computation "overlap": from the request (cl_run appends
 * run.requested) until run.completed is durable, seen through the `wait`
 * long poll (the daemon answers when the room grows: no sleeping here).
 * Returns wall seconds; *cpu_s gets dcrd's CPU seconds meanwhile. */
static double overlap_run(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], char run[33],
                          double *cpu_s, cl_run_status *st)
{
	uint64_t size, now;
	double t0, t1, c0;
	dcr_err err;

	if (cl_wait(c, room, 0, 0, &size, &err) < 0) /* the room's size now */
		die("wait", &err);
	c0 = bench_cpu_of(daemon_pid);
	t0 = bench_now_s();
	if (cl_run(c, room, "overlap", run, &err) < 0)
		die("run", &err);
	size++; /* run.requested is durable when cl_run returns */
	for (;;) {
		if (cl_wait(c, room, size, DMN_WAIT_MS_MAX, &now, &err) < 0)
			die("wait", &err);
		t1 = bench_now_s();
		if (now == size)
			continue; /* timed out */
		if (cl_run_status(c, room, "overlap", st, &err) < 0)
			die("status", &err);
		if (strcmp(st->run_id, run) == 0 &&
		    (strcmp(st->state, "done") == 0 || strcmp(st->state, "failed") == 0))
			break;
		cl_run_status_release(st);
		size = now;
	}
	*cpu_s = bench_cpu_of(daemon_pid) - c0;
	if (strcmp(st->state, "done") != 0) {
		dcr_err e;
		dcr_err_set(&e, DCR_EINTERNAL, "run failed: %s", st->error ? st->error : "?");
		die("run", &e);
	}
	return t1 - t0;
}

static void bench_overlap(uint64_t rows, const char *sqlite3)
{
	cl_conn *c = conn();
	char *json = overlap_json();
	char bpath[160], ipath[160], run[33];
	uint8_t room[ES_ROOM_ID_BYTES], h[32];
	uint8_t *buf = dcr_malloc(DCR_CHUNK_BYTES);
	double t0, t1, tp, runs[3], cpus[3], tr;
	uint64_t off = 0, res_rows = 0, in_daemon[3];
	dcr_buf bank, ins, body;
	dcr_err err;

	dcr_buf_init(&bank);
	dcr_buf_init(&ins);
	dcr_buf_init(&body);
	snprintf(bpath, sizeof bpath, "%s/bank.csv", dir);
	snprintf(ipath, sizeof ipath, "%s/insurer.csv", dir);
	t0 = bench_now_s();
	bench_overlap_gen(rows, &bank, &ins);
	if (bench_write_file(bpath, &bank) || bench_write_file(ipath, &ins))
		die("write csv", NULL);
	printf("  %llu rows each: bank.csv %.1f MB, insurer.csv %.1f MB (the files of bench_cmp; "
	       "generated in %.1f s, in the page cache)\n",
	       (unsigned long long)rows, (double)bank.len / 1e6, (double)ins.len / 1e6,
	       bench_now_s() - t0);

	if (cl_room_create(c, json, room, &err) < 0)
		die("create", &err);
	dcr_sha256(json, strlen(json), h);
	rm_body_published(&body, h);
	if (cl_submit(c, room, RM_EV_PUBLISHED, body.data, body.len, NULL, &err) < 0)
		die("publish", &err);

	{
		double c0 = bench_cpu_of(daemon_pid), tb, ti, t2 = 0, t3 = 0;
		t0 = bench_now_s();
		tb = overlap_provision(c, room, "bank", bpath, bank.len);
		ti = overlap_provision(c, room, "insurer", ipath, ins.len);
		t1 = bench_now_s();
		printf("  provision both: %.2f s, %.0f MB/s\n", tb + ti,
		       (double)(bank.len + ins.len) / 1e6 / (tb + ti));
		while (!t2 || !t3) {
			if (!t2 && bench_log_has(logp, "prepared table bank ("))
				t2 = bench_now_s();
			if (!t3 && bench_log_has(logp, "prepared table insurer ("))
				t3 = bench_now_s();
			usleep(5000);
		}
		tp = (t2 > t3 ? t2 : t3) - t1;
		printf(
		    "  prepared tables ready (clustered and indexed on email) %.2f s after the "
		    "last provisioning returned (bank at +%.2f s, insurer at +%.2f s); %.2f s from "
		    "the first upload's start; dcrd CPU for both uploads and both tables %.2f s\n",
		    tp, t2 - t1, t3 - t1, (t2 > t3 ? t2 : t3) - t0, bench_cpu_of(daemon_pid) - c0);
	}

	for (int k = 0; k < 3; k++) {
		cl_run_status st;
		runs[k] = overlap_run(c, room, run, &cpus[k], &st);
		in_daemon[k] = st.duration_ms;
		res_rows = st.rows;
		printf(
		    "  run %d: request -> run.completed %.0f ms (%llu ms in the daemon), dcrd CPU "
		    "%.0f ms, %llu result rows (%llu suppressed)\n",
		    k + 1, runs[k] * 1000, (unsigned long long)st.duration_ms, cpus[k] * 1000,
		    (unsigned long long)st.rows, (unsigned long long)st.suppressed);
		cl_run_status_release(&st);
		fflush(stdout);
	}
	qsort(runs, 3, sizeof(double), bench_cmp_double);
	qsort(cpus, 3, sizeof(double), bench_cmp_double);
	{
		uint64_t t;
		for (int a = 0; a < 3; a++) /* sort the daemon's figures too */
			for (int b = a + 1; b < 3; b++)
				if (in_daemon[b] < in_daemon[a]) {
					t = in_daemon[a];
					in_daemon[a] = in_daemon[b];
					in_daemon[b] = t;
				}
	}
	tr = runs[1];
	printf("  overlap run through dcrd (k = 10): %.0f ms wall median of 3 (min %.0f; %llu ms "
	       "in the daemon), dcrd CPU %.0f ms median, %llu result rows\n",
	       tr * 1000, runs[0] * 1000, (unsigned long long)in_daemon[1], cpus[1] * 1000,
	       (unsigned long long)res_rows);

	t0 = bench_now_s();
	off = download_result(c, room, "overlap", run, buf);
	printf("  result.open (records result.retrieved) + read %llu bytes: %.1f ms\n",
	       (unsigned long long)off, (bench_now_s() - t0) * 1000);
	printf("  request -> result in hand: %.0f ms (median run + download)\n",
	       (tr + bench_now_s() - t0) * 1000);
	fflush(stdout);

	if (access(sqlite3, X_OK) != 0) {
		printf("  sqlite3 shell: %s not found, comparison skipped\n", sqlite3);
	} else {
		double wi = 0, ci = 0, qd = 0, qcd = 0, wall_all = 0, cpu_all = 0, q_shell = 0,
		       qc_shell = 0;
		if (bench_sqlite3_shell(sqlite3, dir, false, &wi, &ci, &qd, &qcd) ||
		    bench_sqlite3_shell(sqlite3, dir, true, &wall_all, &cpu_all, &q_shell,
		                        &qc_shell))
			die("the sqlite3 shell failed", NULL);
		printf("  sqlite3 shell (%s): import only %.2f s wall, %.2f s CPU; import + query "
		       "%.2f s wall, %.2f s CPU; query alone %.3f s wall, %.3f s CPU\n",
		       sqlite3, wi, ci, wall_all, cpu_all, q_shell, qc_shell);
		printf("  speedup of the dcr run vs shell import + query: %.1fx wall, %.1fx CPU "
		       "(target >= 5x)\n",
		       wall_all / tr, cpu_all / cpus[1]);
		printf("  speedup of the dcr run vs shell query alone:    %.1fx wall, %.1fx CPU "
		       "(stretch >= 8x)\n",
		       q_shell / tr, qc_shell / cpus[1]);
	}
	unlink(bpath);
	unlink(ipath);
	free(buf);
	free(json);
	dcr_buf_release(&bank);
	dcr_buf_release(&ins);
	dcr_buf_release(&body);
	cl_close(c);
}

/* ---- issue 16: data in to first result ---------------------------------------------- */

static int dcrd_round;

/* Starts dcrd on a fresh data directory under dir (one per call). */
static int start_dcrd(const char *exe, bool no_sync)
{
	dcrd_round++;
	snprintf(sock, sizeof sock, "%s/s%d", dir, dcrd_round);
	snprintf(data, sizeof data, "%s/data%d", dir, dcrd_round);
	snprintf(logp, sizeof logp, "%s/log%d", dir, dcrd_round);
	daemon_pid = fork();
	if (daemon_pid == 0) {
		int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(fd, 2);
		/* the submit phase opens 32 clients and a setup connection with one key */
		const char *argv[12] = {exe, "--data", data, "--socket", sock, "--max-conns-per-key", "64"};
		int n = 7;
		if (no_sync)
			argv[n++] = "--no-sync";
		if (tls) {
			argv[n++] = "--listen";
			argv[n++] = "127.0.0.1:0";
		}
		argv[n] = NULL;
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	{
		/* the unix socket's line comes last */
		char ready[160];
		snprintf(ready, sizeof ready, "listening on %s", sock);
		if (bench_wait_log(&daemon_pid, logp, ready) < 0) {
			fprintf(stderr, "bench_dmn: dcrd (%s) did not start\n", exe);
			return -1;
		}
	}
	if (tls && bench_tls_listener(logp, tls_server, tls_pin) < 0) {
		fprintf(stderr, "bench_dmn: dcrd printed no TLS listener\n");
		return -1;
	}
	return 0;
}

static void stop_dcrd(void)
{
	bench_stop_pid(&daemon_pid, SIGTERM);
	bench_rm_tree(data);
}

struct fr_prov {
	const char *dataset, *path;
	uint64_t bytes;
	const uint8_t *room;
	pthread_barrier_t *go;
	double t_end;
};

static void *fr_prov_main(void *arg)
{
	struct fr_prov *a = arg;
	cl_conn *c = conn();
	int fd = open(a->path, O_RDONLY);
	dcr_err err;

	if (fd < 0)
		die("open csv", NULL);
	pthread_barrier_wait(a->go);
	if (cl_provision(c, a->room, a->dataset, strrchr(a->path, '/') + 1, a->bytes, fd_read, &fd,
	                 NULL, NULL, &err) < 0)
		die("provision", &err);
	a->t_end = bench_now_s();
	close(fd);
	cl_close(c);
	return NULL;
}

static double median3(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(double), bench_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Prints the lines of dcrd's log that say where the time went. */
static void print_log_lines(void)
{
	dcr_buf b;
	dcr_err err;
	const char *p;

	dcr_buf_init(&b);
	dcr_read_file(logp, 256u * 1024 * 1024, &b, &err);
	for (p = dcr_buf_cstr(&b); *p;) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if ((memmem(p, n, "prepared table", 14) || memmem(p, n, "ready for runs", 14) ||
		     memmem(p, n, "upload ", 7) || memmem(p, n, "run ", 4)) &&
		    !memmem(p, n, "listening", 9))
			printf("      dcrd: %.*s\n", (int)n, p);
		p += n + (e ? 1 : 0);
	}
	dcr_buf_release(&b);
}

/* Issue 16: both owners provision at the same moment on a fresh dcrd; the
 * analyst then runs the overlap query and reads the result (the first
 * result: it waits for whatever the run needs), then repeats the run three
 * times. Rounds alternate with the sqlite3 shell's .import + query on the
 * same files, so both see the same machine. */
static int bench_first_result(const char *exe, uint64_t rows, const char *sqlite3, int rounds)
{
	char bpath[160], ipath[160], run[33];
	uint8_t *buf = dcr_malloc(DCR_CHUNK_BYTES);
	double *first = dcr_calloc((size_t)rounds, sizeof(double));
	double *prov = dcr_calloc((size_t)rounds, sizeof(double));
	double *frun = dcr_calloc((size_t)rounds, sizeof(double));
	double *rep = dcr_calloc((size_t)rounds, sizeof(double));
	double *fcpu = dcr_calloc((size_t)rounds, sizeof(double));
	double *sh = dcr_calloc((size_t)rounds, sizeof(double));
	double *shq = dcr_calloc((size_t)rounds, sizeof(double));
	double *shc = dcr_calloc((size_t)rounds, sizeof(double));
	double rss_max = 0, sh_rss = 0, t0;
	bool shell = access(sqlite3, X_OK) == 0;
	dcr_buf bank, ins, body;
	dcr_err err;

	dcr_buf_init(&bank);
	dcr_buf_init(&ins);
	dcr_buf_init(&body);
	snprintf(bpath, sizeof bpath, "%s/bank.csv", dir);
	snprintf(ipath, sizeof ipath, "%s/insurer.csv", dir);
	t0 = bench_now_s();
	bench_overlap_gen_unsorted(rows, &bank, &ins);
	if (bench_write_file(bpath, &bank) || bench_write_file(ipath, &ins))
		die("write csv", NULL);
	printf("first result (issue 16): %llu rows each, bank.csv %.1f MB, insurer.csv %.1f MB "
	       "(userN@example.com in N order; generated in %.1f s, in the page cache); "
	       "durable dcrd, %d rounds, alternating with the sqlite3 shell\n",
	       (unsigned long long)rows, (double)bank.len / 1e6, (double)ins.len / 1e6,
	       bench_now_s() - t0, rounds);
	fflush(stdout);

	for (int k = 0; k < rounds; k++) {
		char *json;
		uint8_t room[ES_ROOM_ID_BYTES], h[32];
		pthread_barrier_t go;
		struct fr_prov pa[2];
		pthread_t th[2];
		double tp, t1, t2, reps[3], rcpu, c_end;
		cl_run_status st;
		cl_conn *c;

		if (start_dcrd(exe, false) < 0)
			return 1;
		c = conn();
		json = overlap_json();
		if (cl_room_create(c, json, room, &err) < 0)
			die("create", &err);
		dcr_sha256(json, strlen(json), h);
		dcr_buf_reset(&body);
		rm_body_published(&body, h);
		if (cl_submit(c, room, RM_EV_PUBLISHED, body.data, body.len, NULL, &err) < 0)
			die("publish", &err);
		free(json);
		pthread_barrier_init(&go, NULL, 3);
		pa[0] = (struct fr_prov){"bank", bpath, bank.len, room, &go, 0};
		pa[1] = (struct fr_prov){"insurer", ipath, ins.len, room, &go, 0};
		for (int i = 0; i < 2; i++)
			pthread_create(&th[i], NULL, fr_prov_main, &pa[i]);
		pthread_barrier_wait(&go);
		t0 = bench_now_s();
		for (int i = 0; i < 2; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&go);
		tp = (pa[0].t_end > pa[1].t_end ? pa[0].t_end : pa[1].t_end) - t0;
		/* the analyst: dcr run --wait, then dcr result */
		t1 = bench_now_s();
		frun[k] = overlap_run(c, room, run, &rcpu, &st);
		cl_run_status_release(&st);
		download_result(c, room, "overlap", run, buf);
		t2 = bench_now_s();
		first[k] = t2 - t0;
		prov[k] = tp;
		c_end = bench_cpu_of(daemon_pid);
		fcpu[k] = c_end;
		printf("  round %d: provision both at once %.2f s (%.0f MB/s; bank %.2f s, insurer "
		       "%.2f s); first run request -> completed %.2f s, with the result read %.2f s; "
		       "DATA IN TO FIRST RESULT %.2f s (dcrd CPU %.2f s)\n",
		       k + 1, tp, (double)(bank.len + ins.len) / 1e6 / tp, pa[0].t_end - t0,
		       pa[1].t_end - t0, frun[k], t2 - t1, first[k], c_end);
		for (int i = 0; i < 3; i++) {
			double t3 = bench_now_s();
			overlap_run(c, room, run, &rcpu, &st);
			cl_run_status_release(&st);
			download_result(c, room, "overlap", run, buf);
			reps[i] = bench_now_s() - t3;
		}
		rep[k] = median3(reps, 3);
		{
			double rss = (double)bench_status_kb(daemon_pid, "VmHWM:") / 1024;
			if (rss > rss_max)
				rss_max = rss;
			printf("           repeated run + result read: %.0f / %.0f / %.0f ms (median "
			       "%.0f); dcrd peak RSS %.0f MB\n",
			       reps[0] * 1000, reps[1] * 1000, reps[2] * 1000, rep[k] * 1000, rss);
		}
		print_log_lines();
		cl_close(c);
		stop_dcrd();
		if (shell) {
			double w, cpu, q, qc;
			if (bench_sqlite3_shell(sqlite3, dir, true, &w, &cpu, &q, &qc))
				die("the sqlite3 shell failed", NULL);
			sh[k] = w;
			shq[k] = q;
			shc[k] = cpu;
			if (bench_shell_maxrss_mb > sh_rss)
				sh_rss = bench_shell_maxrss_mb;
			printf("           sqlite3 shell: .import both + query %.2f s (CPU %.2f s), "
			       "query alone %.2f s, import %.2f s; peak RSS %.0f MB\n",
			       w, cpu, q, w - q, bench_shell_maxrss_mb);
		}
		fflush(stdout);
	}
	{
		double f = median3(first, rounds), pr = median3(prov, rounds),
		       fr = median3(frun, rounds), rr = median3(rep, rounds),
		       fc = median3(fcpu, rounds);
		double csv_mb = (double)(bank.len + ins.len) / 1e6;
		printf("summary (median of %d):\n", rounds);
		printf("  dcr: provision both at once         %6.2f s  (%.0f MB/s)\n", pr, csv_mb / pr);
		printf("  dcr: first run + result             %6.2f s\n", fr);
		printf("  dcr: DATA IN TO FIRST RESULT        %6.2f s  (dcrd CPU %.2f s)\n", f, fc);
		printf("  dcr: repeated run + result          %6.3f s\n", rr);
		printf("  dcrd peak RSS                       %6.0f MB (max over rounds; CSV %.0f MB, "
		       "bound: 1.5x CSV + dcrd's default image cache of %.0f MB = %.0f MB)\n",
		       rss_max, csv_mb, (double)dmn_default_image_cache_bytes() / 1e6,
		       1.5 * csv_mb + (double)dmn_default_image_cache_bytes() / 1e6);
		if (shell) {
			double s = median3(sh, rounds), q = median3(shq, rounds),
			       sc = median3(shc, rounds);
			printf("  sqlite3 shell: import + query       %6.2f s  (CPU %.2f s; peak RSS "
			       "%.0f MB)\n",
			       s, sc, sh_rss);
			printf("  sqlite3 shell: query alone          %6.2f s\n", q);
			printf("  ratio shell import+query / dcr first result: %.2fx (target >= 3x)\n",
			       s / f);
			printf("  ratio shell query / dcr repeated run:        %.2fx (target >= 3x, "
			       "stretch 5x)\n",
			       q / rr);
		} else {
			printf("  sqlite3 shell: %s not found, comparison skipped\n", sqlite3);
		}
	}
	unlink(bpath);
	unlink(ipath);
	free(buf);
	free(first);
	free(prov);
	free(frun);
	free(rep);
	free(fcpu);
	free(sh);
	free(shq);
	free(shc);
	dcr_buf_release(&bank);
	dcr_buf_release(&ins);
	dcr_buf_release(&body);
	return 0;
}

int main(int argc, char **argv)
{
	const char *exe = NULL, *b = getenv("DCR_BUILD_DIR");
	uint64_t rows = 1000000;
	bool no_sync = false;
	uint64_t prov_mb = 0;
	int repeat = 3;
	const char *csv = NULL, *sqlite3 = "/usr/bin/sqlite3";
	bool overlap = false, first_result = false;
	int rounds = 3;
	char csv_buf[64];
	uint8_t pub[32], big[ES_ROOM_ID_BYTES];
	double t0;
	char *exe_buf = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dcrd") == 0 && i + 1 < argc)
			exe = argv[++i];
		else if (strcmp(argv[i], "--rows") == 0 && i + 1 < argc)
			rows = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			seconds = strtod(argv[++i], NULL);
		else if (strcmp(argv[i], "--no-sync") == 0)
			no_sync = true;
		else if (strcmp(argv[i], "--provision-mb") == 0 && i + 1 < argc)
			prov_mb = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc)
			csv = argv[++i];
		else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
			repeat = (int)strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--overlap") == 0)
			overlap = true;
		else if (strcmp(argv[i], "--first-result") == 0)
			first_result = true;
		else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = (int)strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--sqlite3") == 0 && i + 1 < argc)
			sqlite3 = argv[++i];
		else if (strcmp(argv[i], "--tls") == 0)
			tls = true;
		else {
			fprintf(stderr,
			        "usage: bench_dmn [--dcrd PATH] [--rows N] [--seconds S] "
			        "[--no-sync]\n"
			        "       bench_dmn [--dcrd PATH] [--tls] --provision-mb MB [--csv PATH] "
			        "[--repeat N]\n"
			        "       bench_dmn [--dcrd PATH] --overlap [--rows N] "
			        "[--sqlite3 PATH]\n"
			        "       bench_dmn [--dcrd PATH] --first-result [--rows N] "
			        "[--rounds R] [--sqlite3 PATH]\n");
			return 2;
		}
	}
	if (!exe)
		exe = exe_buf = dcr_asprintf("%s/daemon/dcrd", b && *b ? b : ".");
	snprintf(dir, sizeof dir, "/tmp/dcr-bench-dmn-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	atexit(cleanup);
	dcr_key_generate(&anna);
	dcr_key_public(anna, pub);
	anna_s = dcr_pub_format(pub);

	if (first_result) {
		int rc = bench_first_result(exe, rows, sqlite3, rounds);
		cleanup();
		dcr_key_free(anna);
		free(anna_s);
		free(exe_buf);
		return rc;
	}
	if (start_dcrd(exe, no_sync) < 0)
		return 1;
	printf("dcrd benchmark (%s, %s%s)\n", no_sync ? "--no-sync: NOT durable" : "durable: fsync",
	       tls ? "over TLS 1.3 to " : "over the unix socket", tls ? tls_server : "");
	if (prov_mb > 0) {
		if (!csv) {
			snprintf(csv_buf, sizeof csv_buf, "/tmp/dcr-bench-prov-%llu.csv",
			         (unsigned long long)prov_mb);
			csv = csv_buf;
		}
		bench_provision(csv, prov_mb, repeat);
		cleanup();
		dcr_key_free(anna);
		free(anna_s);
		free(exe_buf);
		return 0;
	}
	if (overlap) {
		bench_overlap(rows, sqlite3);
		cleanup();
		dcr_key_free(anna);
		free(anna_s);
		free(exe_buf);
		return 0;
	}

	t0 = bench_now_s();
	for (int i = 0; i < 200; i++)
		cl_close(conn());
	printf("  connect + authenticate: %.2f ms per connection\n",
	       (bench_now_s() - t0) * 1000 / 200);

	bench_submits(1, false, NULL);
	bench_submits(8, false, NULL);
	bench_submits(32, false, NULL);
	bench_submits(8, true, NULL);
	bench_submits(32, true, big);
	{
		cl_conn *c = conn();
		uint64_t bytes = 0;
		size_t n = 0;
		cl_room_info *rooms = NULL;
		uint64_t events = 0;
		dcr_err err;
		char hex[ES_ROOM_HEX_BYTES];
		es_room_format(big, hex);
		if (cl_rooms(c, &rooms, &n, &err) == 0)
			for (size_t i = 0; i < n; i++)
				if (strcmp(rooms[i].id, hex) == 0)
					events = rooms[i].size;
		cl_rooms_free(rooms, n);
		t0 = bench_now_s();
		if (cl_events(c, big, 0, ES_SEQ_ANY, count_event, &bytes, &err) < 0)
			die("events", &err);
		printf("  list %llu events (%.1f MB): %.0f events/s\n", (unsigned long long)events,
		       (double)bytes / 1e6, (double)events / (bench_now_s() - t0));
		cl_close(c);
	}
	bench_data(rows);
	cleanup();
	dcr_key_free(anna);
	free(anna_s);
	free(exe_buf);
	return 0;
}
