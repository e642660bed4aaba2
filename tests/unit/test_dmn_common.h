/* test_dmn_common.h: fixtures for the daemon tests. Each test starts the
 * real dcrd binary ($DCR_BUILD_DIR/daemon/dcrd) on a socket inside a fresh
 * mkdtemp directory and talks to it through the client library. An atexit
 * handler kills the daemon and removes the directory, so a failing test
 * (or an abort) leaves nothing behind. Header-only (static functions). */
#ifndef TEST_DMN_COMMON_H
#define TEST_DMN_COMMON_H

#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../proto/proto.h"
#include "../../room/room.h"
#include "test.h"

typedef struct td {
	char dir[64];   /* mkdtemp */
	char data[128]; /* dir/data: the daemon's data directory */
	char sock[128];
	char log[128];
	pid_t pid;
	dcr_key *anna, *ian, *carl; /* carl is in no room */
	uint8_t anna_pub[32], ian_pub[32], carl_pub[32];
	char *anna_s, *ian_s, *carl_s;
} td;

static td *td_global;

__attribute__((unused)) static int td_rm(const char *path, const struct stat *st, int flag,
                                         struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

__attribute__((unused)) static void td_kill(td *t)
{
	if (t->pid > 0) {
		int status;
		kill(t->pid, SIGKILL);
		waitpid(t->pid, &status, 0);
		t->pid = 0;
	}
}

__attribute__((unused)) static void td_cleanup(void)
{
	td *t = td_global;

	if (!t)
		return;
	td_kill(t);
	if (t->dir[0] && !getenv("DCR_KEEP_TEST_DIR"))
		nftw(t->dir, td_rm, 16, FTW_DEPTH | FTW_PHYS);
	dcr_key_free(t->anna);
	dcr_key_free(t->ian);
	dcr_key_free(t->carl);
	free(t->anna_s);
	free(t->ian_s);
	free(t->carl_s);
	td_global = NULL;
}

__attribute__((unused)) static void td_on_signal(int sig)
{
	td_cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

__attribute__((unused)) static void td_init(td *t)
{
	memset(t, 0, sizeof *t);
	snprintf(t->dir, sizeof t->dir, "/tmp/dcr-dmn-XXXXXX");
	if (!mkdtemp(t->dir)) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(t->data, sizeof t->data, "%s/data", t->dir);
	snprintf(t->sock, sizeof t->sock, "%s/dcr.sock", t->dir);
	snprintf(t->log, sizeof t->log, "%s/dcrd.log", t->dir);
	td_global = t;
	atexit(td_cleanup);
	signal(SIGABRT, td_on_signal);
	signal(SIGSEGV, td_on_signal);
	signal(SIGTERM, td_on_signal);
	signal(SIGINT, td_on_signal);
	signal(SIGPIPE, SIG_IGN);
	DCR_ASSERT(dcr_key_generate(&t->anna) == 0);
	DCR_ASSERT(dcr_key_generate(&t->ian) == 0);
	DCR_ASSERT(dcr_key_generate(&t->carl) == 0);
	dcr_key_public(t->anna, t->anna_pub);
	dcr_key_public(t->ian, t->ian_pub);
	dcr_key_public(t->carl, t->carl_pub);
	t->anna_s = dcr_pub_format(t->anna_pub);
	t->ian_s = dcr_pub_format(t->ian_pub);
	t->carl_s = dcr_pub_format(t->carl_pub);
}

__attribute__((unused)) static char *td_dcrd_path(void)
{
	const char *b = getenv("DCR_BUILD_DIR");

	return dcr_asprintf("%s/daemon/dcrd", b && *b ? b : ".");
}

__attribute__((unused)) static bool td_can_connect(const char *sock)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	bool ok;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(sock) >= sizeof sa.sun_path) {
		close(fd);
		return false;
	}
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	close(fd);
	return ok;
}

/* Runs dcrd with extra args (NULL-terminated list); waits until it
 * accepts connections (or, if wait_exit, until it exits). Returns its
 * pid, or -1 if it exited (its exit status in *status). */
__attribute__((unused)) static pid_t td_spawn(td *t, int *status, const char *const *extra,
                                              bool wait_exit)
{
	char *exe = td_dcrd_path();
	const char *argv[16];
	int n = 0, i;
	pid_t pid;
	uint64_t t0 = dcr_mono_ms();

	argv[n++] = exe;
	argv[n++] = "--data";
	argv[n++] = t->data;
	argv[n++] = "--socket";
	argv[n++] = t->sock;
	for (i = 0; extra && extra[i] && n < 15; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	pid = fork();
	if (pid == 0) {
		int fd = open(t->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	free(exe);
	for (;;) {
		int st;
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid) {
			if (status)
				*status = st;
			return -1;
		}
		if (!wait_exit && td_can_connect(t->sock))
			return pid;
		if (dcr_mono_ms() - t0 > 30000) {
			fprintf(stderr, "dcrd did not start within 30 s\n");
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		usleep(10000);
	}
}

__attribute__((unused)) static int td_start(td *t, const char *const *extra)
{
	int st = 0;

	unlink(t->sock);
	t->pid = td_spawn(t, &st, extra, false);
	if (t->pid < 0) {
		t->pid = 0;
		fprintf(stderr, "dcrd exited at start (status %d); log:\n", st);
		{
			char *cmd = dcr_asprintf("cat %s >&2", t->log);
			if (system(cmd) < 0)
				perror("system");
			free(cmd);
		}
		return -1;
	}
	return 0;
}

/* Sends sig and waits (up to 30 s) for dcrd to exit; returns its wait
 * status, or -1 if it had to be killed. */
__attribute__((unused)) static int td_stop(td *t, int sig)
{
	uint64_t t0 = dcr_mono_ms();
	int st = 0;

	if (t->pid <= 0)
		return -1;
	kill(t->pid, sig);
	while (waitpid(t->pid, &st, WNOHANG) == 0) {
		if (dcr_mono_ms() - t0 > 30000) {
			td_kill(t);
			return -1;
		}
		usleep(10000);
	}
	t->pid = 0;
	return st;
}

/* Whole log of the daemon so far (heap). */
__attribute__((unused)) static char *td_log_text(td *t)
{
	dcr_buf b;
	dcr_err err;

	dcr_buf_init(&b);
	dcr_read_file(t->log, 64u * 1024 * 1024, &b, &err);
	return dcr_buf_cstr(&b);
}

__attribute__((unused)) static bool td_log_has(td *t, const char *needle)
{
	char *s = td_log_text(t);
	bool hit = strstr(s, needle) != NULL;

	free(s);
	return hit;
}

/* Waits up to ms for the log to contain needle. */
__attribute__((unused)) static bool td_log_wait(td *t, const char *needle, uint64_t ms)
{
	uint64_t t0 = dcr_mono_ms();

	while (!td_log_has(t, needle)) {
		if (dcr_mono_ms() - t0 > ms)
			return false;
		usleep(20000);
	}
	return true;
}

__attribute__((unused)) static cl_conn *td_connect(td *t, const dcr_key *k)
{
	cl_conn *c = NULL;
	dcr_err err;

	if (cl_connect(t->sock, k, &c, &err) < 0) {
		fprintf(stderr, "cl_connect: %s\n", err.msg);
		return NULL;
	}
	return c;
}

/* A small room: anna owns bank and contracts (a file), ian owns insurer;
 * both analysts of overlap (k = 2); anna of doubled (reads overlap) and
 * churn (python). */
__attribute__((unused)) static char *td_room_json(const td *t, const char *name)
{
	return dcr_asprintf(
	    "{\"format\": \"dcr.room/1\", \"name\": \"%s\",\n"
	    " \"description\": \"daemon test\",\n"
	    " \"settings\": {\"interactive\": true, \"development\": true, "
	    "\"require_provisioned\": true},\n"
	    " \"participants\": [\n"
	    "  {\"email\": \"anna@bank.example\", \"key\": \"%s\", \"owner_of\": [\"bank\", "
	    "\"contracts\"],\n"
	    "   \"analyst_of\": [\"overlap\", \"doubled\", \"churn\"]},\n"
	    "  {\"email\": \"ian@insurer.example\", \"key\": \"%s\", \"owner_of\": "
	    "[\"insurer\"],\n"
	    "   \"analyst_of\": [\"overlap\"]}],\n"
	    " \"datasets\": [\n"
	    "  {\"name\": \"bank\", \"kind\": \"table\", \"unit\": \"email\", \"columns\": [\n"
	    "    {\"name\": \"email\", \"type\": \"string\", \"nullable\": false, "
	    "\"allow\": [\"join\"]},\n"
	    "    {\"name\": \"city\", \"type\": \"string\", \"allow\": [\"group\"]},\n"
	    "    {\"name\": \"age\", \"type\": \"integer\"}]},\n"
	    "  {\"name\": \"insurer\", \"kind\": \"table\", \"share_statistics\": true, "
	    "\"unit\": \"email\", \"columns\": [\n"
	    "    {\"name\": \"email\", \"type\": \"string\", \"nullable\": false, "
	    "\"allow\": [\"join\"]},\n"
	    "    {\"name\": \"risk\", \"type\": \"integer\"}]},\n"
	    "  {\"name\": \"contracts\", \"kind\": \"file\", \"required\": false}],\n"
	    " \"computations\": [\n"
	    "  {\"name\": \"overlap\", \"kind\": \"sql\", \"privacy\": {\"min_rows_aggregated\": "
	    "2},\n"
	    "   \"query\": \"SELECT b.city, COUNT(*) AS n FROM bank b JOIN insurer i USING "
	    "(email) GROUP BY b.city\"},\n"
	    "  {\"name\": \"doubled\", \"kind\": \"sql\", \"query\": \"SELECT city, n * 2 AS "
	    "twice FROM overlap\"},\n"
	    "  {\"name\": \"churn\", \"kind\": \"python\", \"inputs\": [\"overlap\"], "
	    "\"script\": \"print(1)\\n\"}]}\n",
	    name, t->anna_s, t->ian_s);
}

/* Creates and publishes the room as anna. */
__attribute__((unused)) static int td_room_publish(cl_conn *c, const char *json,
                                                   uint8_t room[ES_ROOM_ID_BYTES], dcr_err *err)
{
	uint8_t h[32];
	dcr_buf body;
	int rc = cl_room_create(c, json, room, err);

	if (rc < 0)
		return rc;
	dcr_sha256(json, strlen(json), h);
	dcr_buf_init(&body);
	rm_body_published(&body, h);
	rc = cl_submit(c, room, RM_EV_PUBLISHED, body.data, body.len, NULL, err);
	dcr_buf_release(&body);
	return rc;
}

/* read() over a string, in pieces of at most `step` bytes. */
typedef struct td_src {
	const char *p;
	size_t n, off, step;
} td_src;

__attribute__((unused)) static int td_src_read(void *ctx, void *buf, size_t cap)
{
	td_src *s = ctx;
	size_t k = s->n - s->off;

	if (k > cap)
		k = cap;
	if (s->step && k > s->step)
		k = s->step;
	memcpy(buf, s->p + s->off, k);
	s->off += k;
	return (int)k;
}

__attribute__((unused)) static int td_provision(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES],
                                                const char *dataset, const char *csv, dcr_err *err)
{
	td_src src = {csv, strlen(csv), 0, 0};

	return cl_provision(c, room, dataset, "data.csv", src.n, td_src_read, &src, NULL, NULL,
	                    err);
}

/* Polls run.status until the run is done or failed (or timeout). */
__attribute__((unused)) static int td_wait_run(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES],
                                               const char *comp, const char *run_id,
                                               cl_run_status *st, uint64_t ms, dcr_err *err)
{
	uint64_t t0 = dcr_mono_ms();

	for (;;) {
		int rc = cl_run_status(c, room, comp, st, err);
		if (rc < 0)
			return rc;
		if (strcmp(st->run_id, run_id) == 0 &&
		    (strcmp(st->state, "done") == 0 || strcmp(st->state, "failed") == 0))
			return 0;
		cl_run_status_release(st);
		if (dcr_mono_ms() - t0 > ms)
			return dcr_err_set(err, DCR_ETIMEOUT, "run %s not finished", run_id);
		usleep(20000);
	}
}

/* Reads the whole result of a run. */
__attribute__((unused)) static int td_result(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES],
                                             const char *comp, dcr_buf *out, dcr_err *err)
{
	char run[33];
	uint64_t size = 0, off = 0;
	uint8_t buf[4096];
	int rc = cl_result_open(c, room, comp, run, &size, err);

	if (rc < 0)
		return rc;
	for (;;) {
		rc = cl_result_read(c, room, run, off, buf, sizeof buf, err);
		if (rc <= 0)
			break;
		dcr_buf_append(out, buf, (size_t)rc);
		off += (uint64_t)rc;
	}
	if (rc == 0 && off != size)
		return dcr_err_set(err, DCR_EINTEGRITY, "result of %llu bytes, read %llu",
		                   (unsigned long long)size, (unsigned long long)off);
	return rc;
}

#endif
