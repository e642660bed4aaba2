/* test_dmn_faults.c: the I/O fault-injection sweep (tests/README.md, "Fault
 * injection"; issue 9).
 *
 * For each operation: a run with counting only learns the number N of I/O
 * points (writes, syncs, renames, creations under the data directory);
 * then for every point i in 1..N, from a fresh copy of the same data
 * directory, the point fails (EIO once; ENOSPC from i on, like a full
 * disk; a short write once) and the test checks that
 *   - the error reaches the caller, naming the failure (errno text);
 *   - the daemon keeps serving, and what it shows is exactly what it
 *     acknowledged: no event of a failed operation, nothing half-done;
 *   - it stops cleanly, restarts, and replays the same room: every event
 *     acknowledged before is there, the size and Merkle root are those of
 *     the acknowledged log, the signed checkpoint agrees; provisioned data
 *     reads back bit for bit, results too, no temp file is left and no
 *     blob that nothing references;
 *   - the operation then succeeds when retried.
 * Operations: the event store alone (one append; a group commit of
 * several), and through dcrd (started in process, forked, so the hook of
 * fault_inject.h applies to it): room creation and publication, a
 * provision, a run.
 *
 * Last, a slow disk rather than a failing one (FI_DELAY): a run requested
 * while its table is ready in the image cache but its blob still being
 * written must not wait for the write, even when the room may run one job
 * at a time (--max-running-per-room 1). */
#include "fault_inject.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../daemon/daemon.h"
#include "test_dmn_common.h"

static td t;
static unsigned ft_workers, ft_room_cap; /* dcrd's job options (0: defaults) */
static bool verbose;
static char base_dir[160];
static long iterations;

static const char CSV_BANK[] = "email,city,age\n"
                               "a@x.example,Oslo,31\n"
                               "b@x.example,Oslo,42\n"
                               "c@x.example,Bergen,27\n"
                               "d@x.example,Bergen,55\n";
static const char CSV_INSURER[] = "email,risk\n"
                                  "a@x.example,3\n"
                                  "b@x.example,4\n"
                                  "c@x.example,1\n"
                                  "d@x.example,2\n";

static const char *kind_name(int kind)
{
	return kind == FI_EIO ? "EIO" : kind == FI_ENOSPC ? "ENOSPC" : "short write";
}

/* ---- dcrd in a forked child ------------------------------------------------ */

static void ft_child(void)
{
	int fd = open(t.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	dmn_options o;
	dcr_err e;
	int rc;

	if (fd >= 0) {
		dup2(fd, 2);
		close(fd);
	}
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGABRT, SIG_DFL);
	signal(SIGSEGV, SIG_DFL);
	memset(&o, 0, sizeof o);
	o.data_dir = t.data;
	o.socket_path = t.sock;
	o.log_level = getenv("DCR_FAULT_DEBUG") ? DMN_LOG_DEBUG : DMN_LOG_INFO;
	o.job_workers = ft_workers;
	o.room_running_max = ft_room_cap;
	dcr_err_clear(&e);
	rc = dmn_run(&o, &e);
	/* _exit: the parent's atexit handlers are not the child's. So no leak
	 * check here (LeakSanitizer's in-process check races with exiting
	 * threads' OpenSSL state); the other daemon tests check dcrd's
	 * shutdown for leaks. ASan and UBSan errors still abort the child. */
	if (rc < 0)
		fprintf(stderr, "dcrd: %s\n", e.msg);
	fflush(stderr);
	_exit(rc < 0 ? 1 : 0);
}

static void print_log(void)
{
	char *s = td_log_text(&t);
	size_t n = strlen(s);

	if (getenv("DCR_FAULT_FULL_LOG"))
		n = 0;
	fprintf(stderr, "---- dcrd log (end) ----\n%s----\n", n > 6000 ? s + n - 6000 : s);
	free(s);
}

/* Starts dcrd on t.data; 0, or -1 (the log printed). */
static int ft_start(void)
{
	uint64_t t0 = dcr_mono_ms();
	int st;

	unlink(t.sock);
	t.pid = fork();
	if (t.pid == 0)
		ft_child();
	for (;;) {
		if (waitpid(t.pid, &st, WNOHANG) == t.pid) {
			t.pid = 0;
			fprintf(stderr, "dcrd exited at start (status %d)\n", st);
			print_log();
			return -1;
		}
		if (td_can_connect(t.sock))
			return 0;
		if (dcr_mono_ms() - t0 > 30000) {
			td_kill(&t);
			fprintf(stderr, "dcrd did not start\n");
			return -1;
		}
		usleep(2000);
	}
}

/* SIGTERM; the daemon must stop cleanly (exit 0). */
static void ft_stop(const char *where)
{
	uint64_t t0 = dcr_mono_ms();
	int st = -1;

	if (t.pid > 0) {
		kill(t.pid, SIGTERM);
		while (waitpid(t.pid, &st, WNOHANG) == 0) {
			if (dcr_mono_ms() - t0 > 30000) {
				td_kill(&t);
				st = -1;
				break;
			}
			usleep(1000);
		}
		t.pid = 0;
	}

	if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
		fprintf(stderr, "%s: dcrd did not stop cleanly (status %d)\n", where, st);
		print_log();
		t_failures++;
	}
}

/* ---- the room as the log shows it ------------------------------------------ */

typedef struct snap {
	uint64_t n;
	uint8_t (*leaf)[32];
	size_t cap;
} snap;

static int snap_one(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	snap *s = ctx;

	if (seq != s->n)
		return DCR_EINTEGRITY;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->leaf = dcr_realloc(s->leaf, s->cap * sizeof *s->leaf);
	}
	es_leaf_hash(entry, n, s->leaf[s->n++]);
	return 0;
}

static void snap_free(snap *s)
{
	free(s->leaf);
	memset(s, 0, sizeof *s);
}

/* Reads the whole log of room; checks that the signed checkpoint, the
 * durable size (wait) and the daemon's in-memory size (size) agree with
 * it. DCR_ENOTFOUND if there is no such room. */
static int room_snap(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], snap *s, const char *where)
{
	es_checkpoint cp;
	uint8_t root[32];
	uint64_t durable = 0, mem = 0;
	proto_map m;
	dcr_buf args;
	dcr_mp_doc *doc = NULL;
	char hex[ES_ROOM_HEX_BYTES];
	dcr_err err;
	int rc;

	memset(s, 0, sizeof *s);
	rc = cl_events(c, room, 0, ES_SEQ_ANY, snap_one, s, &err);
	if (rc < 0)
		return rc;
	rc = cl_checkpoint(c, room, &cp, &err);
	if (rc < 0) {
		fprintf(stderr, "%s: checkpoint: %s\n", where, err.msg);
		t_failures++;
		return rc;
	}
	es_merkle_root((const uint8_t(*)[32])s->leaf, s->n, root);
	if (cp.size != s->n || memcmp(cp.root, root, 32) != 0 ||
	    memcmp(cp.key, cl_daemon_key(c), 32) != 0 || es_checkpoint_verify(&cp, NULL) != 0) {
		fprintf(stderr, "%s: checkpoint (size %llu) does not match the log (%llu events)\n",
		        where, (unsigned long long)cp.size, (unsigned long long)s->n);
		t_failures++;
	}
	rc = cl_wait(c, room, UINT64_MAX >> 2, 0, &durable, &err);
	CHECK_OK(rc, &err);
	proto_map_init(&m);
	es_room_format(room, hex);
	dcr_mpw_str(proto_map_key(&m, "room"), hex);
	dcr_buf_init(&args);
	proto_map_encode(&m, &args);
	proto_map_release(&m);
	rc = cl_call(c, "size", args.data, args.len, NULL, &doc, &err);
	dcr_buf_release(&args);
	CHECK_OK(rc, &err);
	if (rc == 0)
		CHECK(dcr_mp_get_u64(dcr_mp_root(doc), "size", &mem, NULL) == 0);
	dcr_mp_doc_free(doc);
	if (durable != s->n || mem != s->n) {
		fprintf(stderr, "%s: log has %llu events, durable size %llu, room state %llu\n",
		        where, (unsigned long long)s->n, (unsigned long long)durable,
		        (unsigned long long)mem);
		t_failures++;
	}
	return 0;
}

/* b must be a continuation of a: the same first a.n events. */
static bool snap_extends(const snap *a, const snap *b)
{
	return b->n >= a->n && (a->n == 0 || memcmp(a->leaf, b->leaf, a->n * 32) == 0);
}

static size_t nfiles;

static int count_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (flag == FTW_F && S_ISREG(st->st_mode))
		nfiles++;
	return 0;
}

/* Regular files under t.data/sub. */
static size_t count_files(const char *sub)
{
	char *dir = dcr_asprintf("%s/%s", t.data, sub);
	struct stat st;

	nfiles = 0;
	if (stat(dir, &st) == 0)
		nftw(dir, count_one, 16, FTW_PHYS);
	free(dir);
	return nfiles;
}

static size_t log_count(const char *needle)
{
	char *s = td_log_text(&t), *p = s;
	size_t n = 0;

	while ((p = strstr(p, needle)) != NULL) {
		n++;
		p += strlen(needle);
	}
	free(s);
	return n;
}

/* A line of the log holds both a and b. */
static bool log_line_has(const char *a, const char *b)
{
	char *s = td_log_text(&t), *line, *save = NULL;
	bool hit = false;

	for (line = strtok_r(s, "\n", &save); line && !hit; line = strtok_r(NULL, "\n", &save))
		hit = strstr(line, a) && strstr(line, b);
	free(s);
	return hit;
}

static bool log_count_wait(const char *needle, size_t n, uint64_t ms)
{
	uint64_t t0 = dcr_mono_ms();

	while (log_count(needle) < n) {
		if (dcr_mono_ms() - t0 > ms)
			return false;
		usleep(5000);
	}
	return true;
}

/* ---- the operations through dcrd ------------------------------------------- */

typedef struct op op;
struct op {
	const char *name;
	const char *key; /* its starting directory: base/KEY */
	/* Builds the starting data directory (dcrd running, anna connected). */
	void (*prepare)(op *o, cl_conn *a);
	/* The operation; counts in *acked the events it got acknowledged. */
	int (*run)(op *o, cl_conn *a, unsigned *acked, dcr_err *err);
	/* After the restart: checks what the room holds (its log is s), then
	 * retries what failed; the retry must succeed. */
	void (*verify)(op *o, cl_conn *a, const snap *s, const char *where);
	bool base_room; /* the room exists in the starting directory */
	bool may_grow;  /* dcrd may append on its own after a restart */
	/* After the restart, before reading the room: waits for what dcrd
	 * resumed on its own (may be NULL). */
	void (*settle)(op *o, cl_conn *a);
	uint8_t room[ES_ROOM_ID_BYTES];
	bool have_room;
	size_t blobs0; /* blob files in the starting directory */
	/* The log line of background work that failed (after the operation
	 * was acknowledged, so not the operation's failure), or NULL. */
	const char *bg_error;
	char run_id[33];
	dcr_buf expected; /* run: the result */
};

static char *room_json(void)
{
	return td_room_json(&t, "faults");
}

static int publish(cl_conn *a, const uint8_t room[ES_ROOM_ID_BYTES], dcr_err *err)
{
	char *json = room_json();
	uint8_t h[32];
	dcr_buf body;
	int rc;

	dcr_sha256(json, strlen(json), h);
	dcr_buf_init(&body);
	rm_body_published(&body, h);
	rc = cl_submit(a, room, RM_EV_PUBLISHED, body.data, body.len, NULL, err);
	dcr_buf_release(&body);
	free(json);
	return rc;
}

/* -- room creation and publication, from an empty directory -- */

static void append_prepare(op *o, cl_conn *a)
{
	(void)o;
	(void)a;
}

static int append_run(op *o, cl_conn *a, unsigned *acked, dcr_err *err)
{
	char *json = room_json();
	int rc = cl_room_create(a, json, o->room, err);

	free(json);
	if (rc < 0)
		return rc;
	o->have_room = true;
	++*acked;
	rc = publish(a, o->room, err);
	if (rc == 0)
		++*acked;
	return rc;
}

static void append_verify(op *o, cl_conn *a, const snap *s, const char *where)
{
	cl_room_info *rooms = NULL;
	size_t n = 0;
	dcr_err err;

	CHECK_OK(cl_rooms(a, &rooms, &n, &err), &err);
	if (n != (s->n ? 1u : 0u)) {
		fprintf(stderr, "%s: %zu rooms visible, expected %u\n", where, n, s->n ? 1 : 0);
		t_failures++;
	}
	cl_rooms_free(rooms, n);
	if (s->n == 0) {
		char *json = room_json();
		CHECK_OK(cl_room_create(a, json, o->room, &err), &err);
		free(json);
	}
	if (s->n < 2)
		CHECK_OK(publish(a, o->room, &err), &err);
}

/* -- a provision, in a published room -- */

static void provision_prepare(op *o, cl_conn *a)
{
	char *json = room_json();
	dcr_err err;

	CHECK_OK(td_room_publish(a, json, o->room, &err), &err);
	free(json);
}

static int provision_run(op *o, cl_conn *a, unsigned *acked, dcr_err *err)
{
	size_t before = log_count("prepared table");
	int rc = td_provision(a, o->room, "bank", CSV_BANK, err);

	if (rc == 0) {
		++*acked;
		/* The daemon then prepares the table in the background (a blob and
		 * a meta record): its failure must not touch the room. */
		if (!log_count_wait("prepared table", before + 1, 20000)) {
			fprintf(stderr, "%s: no prepared table after the provision\n", o->name);
			t_failures++;
		}
	}
	return rc;
}

static void check_data(op *o, cl_conn *a, const char *dataset, const char *csv, const char *where)
{
	char back[4096];
	uint64_t size = 0;
	dcr_err err;
	int n = cl_data_read(a, o->room, dataset, NULL, 0, back, sizeof back, &size, &err);

	if (n != (int)strlen(csv) || size != strlen(csv) || memcmp(back, csv, strlen(csv)) != 0) {
		fprintf(stderr, "%s: %s does not read back (%d: %s)\n", where, dataset, n,
		        n < 0 ? err.msg : "different bytes");
		t_failures++;
	}
}

static void provision_verify(op *o, cl_conn *a, const snap *s, const char *where)
{
	char back[64];
	dcr_err err;
	size_t blobs = count_files("blobs");

	if (s->n == 3) {
		check_data(o, a, "bank", CSV_BANK, where);
		if (blobs < o->blobs0 + 2) {
			fprintf(stderr, "%s: %zu blob files for a provision\n", where, blobs);
			t_failures++;
		}
		return;
	}
	/* Not provisioned: nothing to read, and no blob left behind. */
	if (cl_data_read(a, o->room, "bank", NULL, 0, back, sizeof back, NULL, &err) >= 0) {
		fprintf(stderr, "%s: bank reads back although its provision failed\n", where);
		t_failures++;
	}
	if (blobs != o->blobs0) {
		fprintf(stderr, "%s: %zu blob files after a failed provision, expected %zu\n",
		        where, blobs, o->blobs0);
		t_failures++;
	}
	CHECK_OK(td_provision(a, o->room, "bank", CSV_BANK, &err), &err);
	check_data(o, a, "bank", CSV_BANK, where);
}

/* -- a run, in a room with both tables provisioned -- */

static int wait_run(cl_conn *a, op *o, cl_run_status *st, uint64_t ms, dcr_err *err)
{
	return td_wait_run(a, o->room, "overlap", o->run_id, st, ms, err);
}

static void result_check(op *o, cl_conn *a, const char *where)
{
	dcr_buf out;
	dcr_err err;

	dcr_buf_init(&out);
	CHECK_OK(td_result(a, o->room, "overlap", &out, &err), &err);
	if (out.len != o->expected.len || memcmp(out.data, o->expected.data, out.len) != 0) {
		fprintf(stderr, "%s: the result differs from the reference run\n", where);
		t_failures++;
	}
	dcr_buf_release(&out);
}

static void run_prepare(op *o, cl_conn *a)
{
	cl_conn *i = td_connect(&t, t.ian);
	cl_run_status st;
	dcr_err err;

	provision_prepare(o, a);
	CHECK_OK(td_provision(a, o->room, "bank", CSV_BANK, &err), &err);
	CHECK(i != NULL);
	if (i)
		CHECK_OK(td_provision(i, o->room, "insurer", CSV_INSURER, &err), &err);
	cl_close(i);
	CHECK(log_count_wait("prepared table", 2, 20000));
	/* The reference run. */
	CHECK_OK(cl_run(a, o->room, "overlap", o->run_id, &err), &err);
	CHECK_OK(wait_run(a, o, &st, 20000, &err), &err);
	CHECK(strcmp(st.state, "done") == 0);
	cl_run_status_release(&st);
	dcr_buf_reset(&o->expected);
	CHECK_OK(td_result(a, o->room, "overlap", &o->expected, &err), &err);
	CHECK(o->expected.len > 0);
}

/* Requests a run and waits for its outcome; an outcome the daemon could not
 * record shows in its log. */
static int run_run(op *o, cl_conn *a, unsigned *acked, dcr_err *err)
{
	size_t before = log_count("recording the outcome");
	uint64_t t0 = dcr_mono_ms();
	cl_run_status st;
	int rc = cl_run(a, o->room, "overlap", o->run_id, err);

	if (rc < 0) {
		o->run_id[0] = 0; /* not requested */
		return rc;
	}
	++*acked;
	for (;;) {
		rc = cl_run_status(a, o->room, "overlap", &st, err);
		if (rc < 0)
			return rc;
		if (strcmp(st.run_id, o->run_id) == 0 &&
		    (strcmp(st.state, "done") == 0 || strcmp(st.state, "failed") == 0))
			break;
		cl_run_status_release(&st);
		if (log_count("recording the outcome") > before) {
			char *log = td_log_text(&t), *p = strstr(log, "recording the outcome");
			char *nl = p ? strchr(p, '\n') : NULL;
			if (nl)
				*nl = 0;
			rc =
			    dcr_err_set(err, DCR_ESTORE, "dcrd: run %s: %s", o->run_id, p ? p : "");
			free(log);
			return rc;
		}
		if (dcr_mono_ms() - t0 > 20000)
			return dcr_err_set(err, DCR_ETIMEOUT, "run %s not finished", o->run_id);
		usleep(5000);
	}
	++*acked;
	if (strcmp(st.state, "failed") == 0)
		rc = dcr_err_set(err, DCR_EINTERNAL, "run %s failed: %s", o->run_id,
		                 st.error ? st.error : "(no message)");
	cl_run_status_release(&st);
	return rc;
}

/* A run whose outcome was not recorded runs again at the restart. */
static void run_settle(op *o, cl_conn *a)
{
	cl_run_status st;
	dcr_err err;

	if (!o->run_id[0])
		return;
	CHECK_OK(wait_run(a, o, &st, 20000, &err), &err);
	cl_run_status_release(&st);
}

static void run_verify(op *o, cl_conn *a, const snap *s, const char *where)
{
	cl_run_status st;
	dcr_err err;
	bool retry = true;

	(void)s;
	if (o->run_id[0]) {
		/* Requested: it finishes (again, after the restart, if its
		 * outcome was not recorded). */
		CHECK_OK(wait_run(a, o, &st, 20000, &err), &err);
		if (strcmp(st.state, "done") == 0) {
			result_check(o, a, where);
			retry = false;
		} else if (!st.error || !*st.error) {
			fprintf(stderr, "%s: run failed without a message\n", where);
			t_failures++;
		}
		cl_run_status_release(&st);
	}
	if (retry) {
		CHECK_OK(cl_run(a, o->room, "overlap", o->run_id, &err), &err);
		CHECK_OK(wait_run(a, o, &st, 20000, &err), &err);
		CHECK(strcmp(st.state, "done") == 0);
		cl_run_status_release(&st);
		result_check(o, a, where);
	}
}

/* ---- one case: fail point `target` of the operation ----------------------- */

static bool dead(void)
{
	int st;

	if (t.pid > 0 && waitpid(t.pid, &st, WNOHANG) == t.pid) {
		t.pid = 0;
		if (!WIFEXITED(st)) {
			fprintf(stderr, "dcrd died (status %d)\n", st);
			t_failures++;
		}
		return true;
	}
	return t.pid <= 0;
}

/* Copies a tree of directories and regular files (in process: a shell
 * per case would cost more than the case). */
static const char *cp_src, *cp_dst;

static int cp_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	char *dst = dcr_asprintf("%s%s", cp_dst, path + strlen(cp_src));
	int rc = 0;

	(void)ftw;
	if (flag == FTW_D) {
		rc = mkdir(dst, 0700);
	} else if (flag == FTW_F && S_ISREG(st->st_mode)) {
		char buf[65536];
		int in = open(path, O_RDONLY | O_CLOEXEC);
		int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		ssize_t n;
		rc = in < 0 || out < 0 ? -1 : 0;
		while (rc == 0 && (n = read(in, buf, sizeof buf)) > 0)
			if (write(out, buf, (size_t)n) != n)
				rc = -1;
		if (in >= 0)
			close(in);
		if (out >= 0)
			close(out);
	}
	if (rc < 0)
		fprintf(stderr, "copying %s: %s\n", path, strerror(errno));
	free(dst);
	return rc;
}

static void rm_tree(const char *dir)
{
	struct stat st;

	if (stat(dir, &st) == 0 && nftw(dir, td_rm, 16, FTW_DEPTH | FTW_PHYS) != 0) {
		fprintf(stderr, "removing %s failed\n", dir);
		exit(1);
	}
}

static void copy_tree(const char *src, const char *dst)
{
	cp_src = src;
	cp_dst = dst;
	if (nftw(src, cp_one, 16, FTW_PHYS) != 0) {
		fprintf(stderr, "copying %s to %s failed\n", src, dst);
		exit(1);
	}
}

/* Replaces t.data by a copy of dir. */
static void data_from(const char *dir)
{
	rm_tree(t.data);
	copy_tree(dir, t.data);
}

/* The error of a failed operation must say what failed. */
static void check_message(int kind, const char *msg, const char *where)
{
	const char *want = strerror(kind == FI_ENOSPC ? ENOSPC : EIO);

	if (!strstr(msg, want) && !(kind == FI_SHORT && *msg)) {
		fprintf(stderr, "%s: error \"%s\" does not say \"%s\"\n", where, msg, want);
		t_failures++;
	}
}

/* Runs o from its starting directory with point target failing (0: none);
 * returns the number of I/O points seen. */
#define TICK(name)                                                                                 \
	do {                                                                                       \
		if (timing)                                                                        \
			fprintf(stderr, "  %-10s %4llu ms\n", name,                                \
			        (unsigned long long)(dcr_mono_ms() - tick));                       \
		tick = dcr_mono_ms();                                                              \
	} while (0)

static long dmn_case(op *o, unsigned classes, int kind, bool sticky, long target)
{
	bool timing = getenv("DCR_FAULT_TIMING") != NULL;
	uint64_t tick = dcr_mono_ms();
	char where[512], *dir;
	snap before, live, after;
	cl_conn *a = NULL, *c = NULL;
	unsigned acked = 0;
	bool live_ok = false;
	long points = 0, fired;
	dcr_err err;
	int rc, fails0 = t_failures;

	iterations++;
	memset(&before, 0, sizeof before);
	memset(&live, 0, sizeof live);
	memset(&after, 0, sizeof after);
	dir = dcr_asprintf("%s/%s", base_dir, o->key);
	data_from(dir);
	free(dir);
	unlink(t.log);
	TICK("copy");
	snprintf(where, sizeof where, "%s, %s%s, point %ld", o->name, kind_name(kind),
	         sticky ? " from there on" : "", target);
	if (ft_start() < 0) {
		t_failures++;
		return 0;
	}
	a = td_connect(&t, t.anna);
	if (!a) {
		t_failures++;
		goto out;
	}
	o->have_room = o->base_room;
	o->run_id[0] = 0;
	if (o->have_room)
		CHECK(room_snap(a, o->room, &before, where) == 0);

	TICK("start");
	dcr_err_clear(&err);
	fi_arm(t.pid, classes, kind, sticky, target);
	rc = o->run(o, a, &acked, &err);
	fi_disarm();
	points = fi->count;
	fired = fi->fired;
	TICK("operation");
	if (fired)
		snprintf(where + strlen(where), sizeof where - strlen(where), " (%s)", fi->what);
	if (verbose)
		fprintf(stderr, "%s: %d %s\n", where, rc, rc < 0 ? err.msg : "ok");
	if (fired && kind != FI_SHORT && rc == 0 &&
	    !(o->bg_error &&
	      log_line_has(o->bg_error, strerror(kind == FI_ENOSPC ? ENOSPC : EIO)))) {
		fprintf(stderr, "%s: the operation succeeded although an I/O call failed\n", where);
		t_failures++;
	} else if (rc < 0) {
		if (!fired) {
			fprintf(stderr, "%s: failed without a fault: %s\n", where, err.msg);
			t_failures++;
		} else {
			check_message(kind, err.msg, where);
		}
	}

	/* What the daemon shows now: exactly what it acknowledged. */
	cl_close(a);
	a = NULL;
	if (!dead()) {
		c = td_connect(&t, t.anna);
		if (!c) {
			fprintf(stderr, "%s: dcrd does not answer after the failure\n", where);
			t_failures++;
		} else if (o->have_room) {
			rc = room_snap(c, o->room, &live, where);
			if (rc < 0) {
				fprintf(stderr, "%s: reading the room after the failure: %s\n",
				        where, dcr_strerror(rc));
				t_failures++;
			} else {
				live_ok = true;
				if (live.n != before.n + acked || !snap_extends(&before, &live)) {
					fprintf(stderr,
					        "%s: the room shows %llu events, %llu + %u "
					        "acknowledged\n",
					        where, (unsigned long long)live.n,
					        (unsigned long long)before.n, acked);
					t_failures++;
				}
			}
		}
		cl_close(c);
		c = NULL;
		TICK("live");
		ft_stop(where);
		TICK("stop");
	}

	/* A restart replays the same room. */
	if (ft_start() < 0) {
		fprintf(stderr, "%s: dcrd does not restart\n", where);
		t_failures++;
		goto out;
	}
	a = td_connect(&t, t.anna);
	if (!a) {
		t_failures++;
		goto out;
	}
	TICK("restart");
	if (o->settle)
		o->settle(o, a);
	if (o->have_room) {
		CHECK(room_snap(a, o->room, &after, where) == 0);
		if (!snap_extends(&before, &after) || after.n < before.n + acked ||
		    (!o->may_grow && after.n != before.n + acked) ||
		    (live_ok &&
		     (!snap_extends(&live, &after) || (!o->may_grow && after.n != live.n)))) {
			fprintf(stderr,
			        "%s: after the restart the room has %llu events (%llu before, %u "
			        "acknowledged)\n",
			        where, (unsigned long long)after.n, (unsigned long long)before.n,
			        acked);
			t_failures++;
		}
	}
	TICK("replayed");
	o->verify(o, a, &after, where);
	cl_close(a);
	a = NULL;
	TICK("verify");
	ft_stop(where);
	TICK("stop");
	if (count_files("tmp") != 0) {
		fprintf(stderr, "%s: temp files left after a clean shutdown\n", where);
		t_failures++;
	}
out:
	cl_close(a);
	td_kill(&t);
	snap_free(&before);
	snap_free(&live);
	snap_free(&after);
	if (t_failures != fails0)
		print_log();
	return points;
}

/* Every point of o, one at a time. */
static void sweep_dmn(op *o, unsigned classes, int kind, bool sticky)
{
	long n = dmn_case(o, classes, kind, sticky, 0), i;

	if (n <= 0) {
		fprintf(stderr, "%s: no I/O points\n", o->name);
		t_failures++;
		return;
	}
	for (i = 1; i <= n; i++)
		if (!getenv("DCR_FAULT_POINT") || atol(getenv("DCR_FAULT_POINT")) == i)
			dmn_case(o, classes, kind, sticky, i);
	fprintf(stderr, "%s, %s%s: %ld points\n", o->name, kind_name(kind),
	        sticky ? " from there on" : "", n);
}

/* Builds o's starting directory. */
static void prepare(op *o)
{
	char *dir = dcr_asprintf("%s/%s", base_dir, o->key);
	cl_conn *a;

	rm_tree(t.data);
	unlink(t.log);
	if (ft_start() < 0)
		exit(1);
	a = td_connect(&t, t.anna);
	DCR_ASSERT(a);
	o->prepare(o, a);
	cl_close(a);
	ft_stop(o->name);
	o->blobs0 = count_files("blobs");
	copy_tree(t.data, dir);
	free(dir);
}

/* ---- the event store alone -------------------------------------------------- */

#define ES_BASE  3u /* events before the operation */
#define ES_GROUP 4u /* appends of the group commit */

static void es_entry(const uint8_t room[ES_ROOM_ID_BYTES], uint64_t seq, dcr_buf *out)
{
	static const uint8_t empty_map = 0x80;

	dcr_buf_init(out);
	DCR_ASSERT(es_event_build(t.anna, room, seq, 1700000000000ull + seq, "test.event",
	                          &empty_map, 1, out, NULL) == 0);
}

/* The store holds exactly entries e[0..n) in room, with a matching signed
 * checkpoint. */
static void es_check(es_store *s, const uint8_t room[ES_ROOM_ID_BYTES], const dcr_buf *e,
                     uint64_t n, const char *where)
{
	uint8_t leaves[ES_BASE + ES_GROUP + 1][32], root[32], got_root[32];
	uint64_t size = 0;
	es_checkpoint cp;
	dcr_buf b;

	CHECK(es_room_size(s, room, &size) == 0);
	if (size != n) {
		fprintf(stderr, "%s: the store has %llu events, expected %llu\n", where,
		        (unsigned long long)size, (unsigned long long)n);
		t_failures++;
		return;
	}
	dcr_buf_init(&b);
	for (uint64_t i = 0; i < n; i++) {
		dcr_buf_reset(&b);
		if (es_get(s, room, i, &b) != 0 || b.len != e[i].len ||
		    memcmp(b.data, e[i].data, b.len) != 0) {
			fprintf(stderr, "%s: event %llu differs\n", where, (unsigned long long)i);
			t_failures++;
		}
		es_leaf_hash(e[i].data, e[i].len, leaves[i]);
	}
	dcr_buf_release(&b);
	es_merkle_root((const uint8_t(*)[32])leaves, n, root);
	CHECK(es_root(s, room, n, got_root) == 0 && memcmp(root, got_root, 32) == 0);
	if (es_latest_checkpoint(s, room, &cp) != 0 || cp.size != n ||
	    memcmp(cp.root, root, 32) != 0 || es_checkpoint_verify(&cp, NULL) != 0) {
		fprintf(stderr, "%s: the checkpoint does not match the log\n", where);
		t_failures++;
	}
}

static es_store *es_open_at(const char *dir)
{
	es_options eo;
	es_store *s = NULL;
	dcr_err err;

	memset(&eo, 0, sizeof eo);
	eo.checkpoint_key = t.carl;
	if (es_open(&s, dir, &eo, &err) != 0) {
		fprintf(stderr, "es_open %s: %s\n", dir, err.msg);
		t_failures++;
		return NULL;
	}
	return s;
}

/* ES_BASE events, then one append (or a group commit of ES_GROUP) with point
 * target failing; returns the number of points. */
static long es_case(bool group, unsigned classes, int kind, bool sticky, long target)
{
	dcr_buf e[ES_BASE + ES_GROUP + 1];
	es_pending *pend[ES_GROUP];
	dcr_err err[ES_GROUP], e2;
	uint8_t room[ES_ROOM_ID_BYTES];
	char where[512], *dir = dcr_asprintf("%s/es", t.data);
	unsigned nb = group ? ES_GROUP : 1, acked = 0, i, total;
	int rc[ES_GROUP];
	long points = 0, fired;
	bool failed = false;
	es_store *s;

	iterations++;
	snprintf(where, sizeof where, "event store, %s, %s%s, point %ld",
	         group ? "group commit" : "append", kind_name(kind), sticky ? " from there on" : "",
	         target);
	rm_tree(t.data);
	if (mkdir(t.data, 0700) < 0) {
		perror(t.data);
		exit(1);
	}
	es_room_new(room);
	for (i = 0; i < ES_BASE + nb + 1; i++)
		es_entry(room, i, &e[i]);
	s = es_open_at(dir);
	if (!s)
		goto out;
	for (i = 0; i < ES_BASE; i++)
		CHECK(es_append(s, room, i, e[i].data, e[i].len, NULL, NULL, NULL) == 0);

	fi_arm(getpid(), classes, kind, sticky, target);
	if (!group) {
		dcr_err_clear(&err[0]);
		rc[0] = es_append(s, room, ES_BASE, e[ES_BASE].data, e[ES_BASE].len, NULL, NULL,
		                  &err[0]);
	} else {
		for (i = 0; i < nb; i++) {
			dcr_err_clear(&err[i]);
			rc[i] = es_append_start(s, room, ES_BASE + i, e[ES_BASE + i].data,
			                        e[ES_BASE + i].len, &pend[i], &err[i]);
		}
		for (i = 0; i < nb; i++)
			if (rc[i] == 0)
				rc[i] = es_append_wait(pend[i], NULL, NULL, &err[i]);
	}
	fi_disarm();
	points = fi->count;
	fired = fi->fired;
	if (fired)
		snprintf(where + strlen(where), sizeof where - strlen(where), " (%s)", fi->what);

	/* Acknowledged appends are a prefix; every failure says why. */
	for (i = 0; i < nb; i++) {
		if (verbose)
			fprintf(stderr, "%s: append %u: %d %s\n", where, i, rc[i],
			        rc[i] ? err[i].msg : "ok");
		if (rc[i] == 0) {
			if (failed) {
				fprintf(stderr, "%s: append %u acknowledged after a failed one\n",
				        where, i);
				t_failures++;
			}
			acked++;
			continue;
		}
		if (!fired) {
			fprintf(stderr, "%s: failed without a fault: %s\n", where, err[i].msg);
			t_failures++;
		} else if (!(failed && rc[i] == DCR_ESEQ)) {
			check_message(kind, err[i].msg, where);
		}
		failed = true;
	}
	if (fired && kind != FI_SHORT && !failed) {
		fprintf(stderr, "%s: every append succeeded although an I/O call failed\n", where);
		t_failures++;
	}
	total = ES_BASE + acked;
	es_check(s, room, e, total, where);
	/* The store goes on (or says why not). */
	rc[0] = es_append(s, room, total, e[total].data, e[total].len, NULL, NULL, &e2);
	if (rc[0] == 0)
		total++;
	else if (verbose)
		fprintf(stderr, "%s: next append: %s\n", where, e2.msg);
	es_close(s);

	/* Reopened: the same log. */
	s = es_open_at(dir);
	if (s) {
		es_check(s, room, e, total, where);
		es_close(s);
	}
out:
	for (i = 0; i < ES_BASE + nb + 1; i++)
		dcr_buf_release(&e[i]);
	free(dir);
	return points;
}

static void sweep_es(bool group, unsigned classes, int kind, bool sticky)
{
	long n = es_case(group, classes, kind, sticky, 0), i;

	if (n <= 0) {
		fprintf(stderr, "event store: no I/O points\n");
		t_failures++;
		return;
	}
	for (i = 1; i <= n; i++)
		es_case(group, classes, kind, sticky, i);
	fprintf(stderr, "event store, %s, %s%s: %ld points\n", group ? "group commit" : "append",
	        kind_name(kind), sticky ? " from there on" : "", n);
}

/* ---- a slow disk: a run does not wait for a table's blob ---------------------- */

static void slow_store_case(void)
{
	const char *where = "slow store";
	size_t rows = 30000;
	uint8_t room[ES_ROOM_ID_BYTES];
	char *json = room_json(), run_id[33], *log, *done_at, *stored_at;
	char needle[64];
	dcr_buf csv, res;
	cl_conn *a, *i;
	cl_run_status st;
	dcr_err err;

	rm_tree(t.data);
	unlink(t.log);
	ft_workers = 2;
	ft_room_cap = 1;
	if (ft_start() < 0)
		exit(1);
	a = td_connect(&t, t.anna);
	i = td_connect(&t, t.ian);
	CHECK(a && i);
	if (!a || !i) {
		cl_close(a);
		cl_close(i);
		free(json);
		ft_stop(where);
		return;
	}
	CHECK_OK(td_room_publish(a, json, room, &err), &err);
	CHECK_OK(td_provision(i, room, "insurer", CSV_INSURER, &err), &err);
	CHECK(log_count_wait("prepared table insurer", 1, 20000));
	dcr_buf_init(&csv);
	dcr_buf_append_str(&csv, "email,city,age\n");
	/* a@ to d@ match the insurer's rows; the others are unique */
	for (size_t k = 0; k < rows; k++) {
		if (k < 4)
			dcr_buf_printf(&csv, "%c@x.example", "abcd"[k]);
		else
			dcr_buf_printf(&csv, "u%zu@x.example", k);
		dcr_buf_printf(&csv, ",%s,%zu\n", k % 2 ? "Oslo" : "Bergen", 20 + k % 50);
	}
	/* every write of 64 KiB or more into tmp/ (blobs being written)
	 * takes 3 s: the upload's, then the prepared table's */
	snprintf(fi->dir, sizeof fi->dir, "%s/tmp/", t.data);
	fi->dir_n = strlen(fi->dir);
	fi->delay_ms = 3000;
	fi->delay_min = 65536;
	fi_arm(t.pid, FI_WRITE, FI_DELAY, 1, 1);
	CHECK_OK(td_provision(a, room, "bank", dcr_buf_cstr(&csv), &err), &err);
	CHECK_OK(cl_run(a, room, "overlap", run_id, &err), &err);
	CHECK_OK(td_wait_run(a, room, "overlap", run_id, &st, 30000, &err), &err);
	CHECK(strcmp(st.state, "done") == 0);
	cl_run_status_release(&st);
	/* done while the table's blob is still held at its write (3 s) */
	CHECK(log_count("table of bank") == 1 && log_count("prepared table bank") == 0);
	CHECK(log_count_wait("prepared table bank", 1, 30000));
	fi_disarm();
	/* the run was done before the table's blob was stored */
	log = td_log_text(&t);
	snprintf(needle, sizeof needle, "run %s (overlap) in room", run_id);
	/* the run's "done in" line */
	for (done_at = strstr(log, needle); done_at; done_at = strstr(done_at + 1, needle)) {
		char *nl = strchr(done_at, '\n');
		if (nl && memmem(done_at, (size_t)(nl - done_at), "done in", 7))
			break;
	}
	stored_at = strstr(log, "prepared table bank");
	CHECK(done_at && stored_at && strstr(log, "table of bank"));
	if (done_at && stored_at && done_at > stored_at) {
		fprintf(stderr, "%s: the run waited for the table's blob to be stored\n", where);
		print_log();
		t_failures++;
	}
	free(log);
	/* and its result is the table's */
	dcr_buf_init(&res);
	CHECK_OK(td_result(a, room, "overlap", &res, &err), &err);
	CHECK(strstr(dcr_buf_cstr(&res), "Oslo") != NULL);
	dcr_buf_release(&res);
	dcr_buf_release(&csv);
	cl_close(a);
	cl_close(i);
	free(json);
	ft_stop(where);
	snprintf(fi->dir, sizeof fi->dir, "%s/", t.data);
	fi->dir_n = strlen(fi->dir);
	ft_workers = ft_room_cap = 0;
	iterations++;
}

/* ---- main -------------------------------------------------------------------- */

static bool selected(const char *name)
{
	const char *only = getenv("DCR_FAULT_ONLY");

	return !only || !*only || strstr(name, only);
}

int main(void)
{
	static op ops[] = {
	    {.name = "room creation and publication",
	     .key = "append",
	     .prepare = append_prepare,
	     .run = append_run,
	     .verify = append_verify},
	    {.name = "provision",
	     .key = "provision",
	     .prepare = provision_prepare,
	     .run = provision_run,
	     .verify = provision_verify,
	     .bg_error = "prepared table of",
	     .base_room = true},
	    {.name = "run",
	     .key = "run",
	     .prepare = run_prepare,
	     .run = run_run,
	     .verify = run_verify,
	     .settle = run_settle,
	     .bg_error = "could not store",
	     .base_room = true,
	     .may_grow = true},
	};
	uint64_t t0 = dcr_mono_ms();
	size_t k;

	verbose = getenv("DCR_FAULT_VERBOSE") != NULL;
	td_init(&t);
	{
		/* Hundreds of data directories are copied and removed: in memory
		 * (tmpfs) when there is one, else where td_init made them. */
		char shm[sizeof t.dir];
		snprintf(shm, sizeof shm, "/dev/shm/dcr-faults-XXXXXX");
		if (mkdtemp(shm)) {
			rmdir(t.dir);
			memcpy(t.dir, shm, sizeof shm);
			snprintf(t.data, sizeof t.data, "%s/data", t.dir);
			snprintf(t.sock, sizeof t.sock, "%s/dcr.sock", t.dir);
			snprintf(t.log, sizeof t.log, "%s/dcrd.log", t.dir);
		}
	}
	fi_setup(t.data);
	snprintf(base_dir, sizeof base_dir, "%s/base", t.dir);
	if (mkdir(base_dir, 0700) < 0) {
		perror(base_dir);
		return 1;
	}

	if (selected("event store")) {
		for (int g = 0; g < 2; g++) {
			sweep_es(g, FI_ALL, FI_EIO, false);
			sweep_es(g, FI_ALL, FI_ENOSPC, true);
			sweep_es(g, FI_WRITE, FI_SHORT, false);
		}
	}
	for (k = 0; k < sizeof ops / sizeof ops[0]; k++) {
		op *o = &ops[k];
		if (!selected(o->name))
			continue;
		dcr_buf_init(&o->expected);
		prepare(o);
		sweep_dmn(o, FI_ALL, FI_EIO, false);
		sweep_dmn(o, FI_ALL, FI_ENOSPC, true);
		sweep_dmn(o, FI_WRITE, FI_SHORT, false);
		dcr_buf_release(&o->expected);
	}
	if (selected("slow store"))
		slow_store_case();
	fprintf(stderr, "%ld cases in %llu ms, %d failures\n", iterations,
	        (unsigned long long)(dcr_mono_ms() - t0), t_failures);
	return t_failures ? 1 : 0;
}
