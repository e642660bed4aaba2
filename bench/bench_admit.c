/* bench_admit.c: definition (admission) checks as a denial of service
 * (issue 14, attack 2), measured against a real dcrd.
 *
 *   bench_admit --dcrd build/daemon/dcrd [--hostile N] [--slow-limit L]
 *
 * A hostile definition has 8 sql computations whose admission checks each
 * burn the check time limit (DCR_SQL_CHECK_TIME_MS: a recursive CTE that
 * hexes and rewrites 100 kB per row); a slow one has 8 computations whose
 * checks each take a few hundred ms and pass (the CTE stops after L rows,
 * default 100). Prints, in ms:
 *   create1       one hostile create (refused)
 *   flood         N hostile creates in parallel (N keys), and meanwhile the
 *                 worst latency of a legitimate `rooms` call and of a
 *                 legitimate cheap create
 *   publish       a publish of a slow room whose verdict is cached (checked
 *                 at create), and one after a restart (checked again),
 *                 and meanwhile the worst latency of `rooms` and of
 *                 reading that room's events
 *   restart       dcrd start to accepting connections, with the slow room
 *                 in the log
 *   replay        a client's replay of the slow room (what `dcr status`
 *                 and the mount do: fetch the events and fold rm_apply)
 * Exit status is 0 whatever the figures; the verdicts are the tests'. */
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../proto/proto.h"
#include "../room/room.h"

static char g_dir[64], g_sock[128], g_data[128], g_log[160];
static const char *g_exe;
static pid_t g_pid;
static unsigned g_slow_limit = 100;

static bool can_connect(void)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	bool ok;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(g_sock) >= sizeof sa.sun_path) {
		close(fd);
		return false;
	}
	memcpy(sa.sun_path, g_sock, strlen(g_sock) + 1);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	close(fd);
	return ok;
}

/* Starts dcrd; returns ms until it accepted a connection. */
static uint64_t start_dcrd(void)
{
	uint64_t t0 = dcr_mono_ms();

	unlink(g_sock);
	g_pid = fork();
	if (g_pid == 0) {
		FILE *f = freopen(g_log, "a", stderr);
		(void)f;
		execl(g_exe, g_exe, "--data", g_data, "--socket", g_sock, "--no-sync",
		      "--log-level", "debug", (char *)NULL);
		_exit(127);
	}
	while (!can_connect()) {
		if (waitpid(g_pid, NULL, WNOHANG) == g_pid) {
			fprintf(stderr, "bench_admit: dcrd exited; see %s\n", g_log);
			exit(1);
		}
		usleep(5000);
	}
	return dcr_mono_ms() - t0;
}

static void stop_dcrd(void)
{
	if (g_pid > 0) {
		kill(g_pid, SIGTERM);
		waitpid(g_pid, NULL, 0);
		g_pid = 0;
	}
}

static void cleanup(void)
{
	stop_dcrd();
	if (g_dir[0]) {
		char *cmd = dcr_asprintf("rm -rf %s", g_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "bench_admit: could not remove %s\n", g_dir);
		free(cmd);
	}
}

/* A definition of 8 sql computations over one dataset; each check walks a
 * recursive CTE of `rows` rows (per row ~3 ms of replace/hex). */
static char *definition(const uint8_t pub[32], const char *name, unsigned rows, unsigned ncomp)
{
	char *key = dcr_pub_format(pub);
	dcr_buf b;

	dcr_buf_init(&b);
	dcr_buf_printf(&b,
	               "{\"format\":\"dcr.room/1\",\"name\":\"%s\",\"participants\":[{\"email\":"
	               "\"x@y.example\",\"key\":\"%s\",\"owner_of\":[\"d\"],\"analyst_of\":[",
	               name, key);
	for (unsigned i = 0; i < ncomp; i++)
		dcr_buf_printf(&b, "%s\"c%u\"", i ? "," : "", i);
	dcr_buf_printf(&b, "]}],\"datasets\":[{\"name\":\"d\",\"kind\":\"table\",\"columns\":[{"
	                   "\"name\":\"v\",\"type\":\"integer\",\"nullable\":true,\"allow\":["
	                   "\"aggregate\"]}]}],\"computations\":[");
	for (unsigned i = 0; i < ncomp; i++)
		dcr_buf_printf(&b,
		               "%s{\"name\":\"c%u\",\"kind\":\"sql\",\"query\":\"SELECT count(v) AS "
		               "n, (WITH RECURSIVE r(x) AS (SELECT %u UNION ALL SELECT x+1 FROM r "
		               "LIMIT %u) SELECT max(length(replace(hex(zeroblob(100000+x%%2)),'0',"
		               "'ab'))) FROM r) AS z FROM d\"}",
		               i ? "," : "", i, i, rows);
	dcr_buf_printf(&b, "]}");
	free(key);
	char *s = dcr_strdup(dcr_buf_cstr(&b));
	dcr_buf_release(&b);
	return s;
}

static cl_conn *connect_as(const dcr_key *k)
{
	cl_conn *c = NULL;
	dcr_err e;

	if (cl_connect(g_sock, k, &c, &e) < 0) {
		fprintf(stderr, "bench_admit: connect: %s\n", e.msg);
		exit(1);
	}
	return c;
}

struct hostile {
	pthread_t th;
	dcr_key *key;
	uint64_t ms;
	int rc;
	char msg[160];
};

static void *hostile_main(void *arg)
{
	struct hostile *h = arg;
	uint8_t pub[32], id[ES_ROOM_ID_BYTES];
	dcr_err e;

	dcr_key_public(h->key, pub);
	char *def = definition(pub, "hostile", 100000, 8);
	cl_conn *c = connect_as(h->key);
	uint64_t t0 = dcr_mono_ms();
	h->rc = cl_room_create(c, def, id, &e);
	h->ms = dcr_mono_ms() - t0;
	snprintf(h->msg, sizeof h->msg, "%.150s", h->rc ? e.msg : "created");
	cl_close(c);
	free(def);
	return NULL;
}

struct legit {
	pthread_t th;
	const dcr_key *key;
	const uint8_t *room; /* NULL: rooms only */
	volatile bool stop;
	uint64_t calls, worst_rooms, worst_read;
};

static int count_ev(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	(void)seq;
	(void)entry;
	(void)n;
	(*(uint64_t *)ctx)++;
	return 0;
}

static void *legit_main(void *arg)
{
	struct legit *l = arg;
	cl_conn *c = connect_as(l->key);

	while (!l->stop) {
		cl_room_info *rs = NULL;
		size_t n = 0;
		dcr_err e;
		uint64_t t0 = dcr_mono_ms(), t;
		if (cl_rooms(c, &rs, &n, &e) == 0)
			cl_rooms_free(rs, n);
		t = dcr_mono_ms() - t0;
		if (t > l->worst_rooms)
			l->worst_rooms = t;
		if (l->room) {
			uint64_t k = 0;
			t0 = dcr_mono_ms();
			(void)cl_events(c, l->room, 0, ES_SEQ_ANY, count_ev, &k, &e);
			t = dcr_mono_ms() - t0;
			if (t > l->worst_read)
				l->worst_read = t;
		}
		l->calls++;
		usleep(50000);
	}
	cl_close(c);
	return NULL;
}

struct fold {
	rm_state st;
	int rc;
};

static int fold_one(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	struct fold *f = ctx;
	rm_step step;

	(void)seq;
	if (f->rc == 0 && rm_replay_step(&f->st, entry, n, NULL, NULL, &step) < 0)
		f->rc = -1;
	return 0;
}

/* Publishes room (as key) while another connection calls `rooms` and
 * reads the room's events; prints the publish time and their worst. */
static void publish_measured(const dcr_key *key, const uint8_t *room, const char *what)
{
	cl_conn *c = connect_as(key);
	struct legit r = {.key = key, .room = room};
	struct fold f;
	dcr_buf body;
	dcr_err e;

	memset(&f, 0, sizeof f);
	rm_state_init(&f.st, cl_daemon_key(c));
	cl_events(c, room, 0, ES_SEQ_ANY, fold_one, &f, &e);
	pthread_create(&r.th, NULL, legit_main, &r);
	usleep(200000);
	dcr_buf_init(&body);
	rm_body_published(&body, f.st.def_sha256);
	uint64_t t0 = dcr_mono_ms();
	int rc = cl_submit(c, room, RM_EV_PUBLISHED, body.data, body.len, NULL, &e);
	uint64_t pub_ms = dcr_mono_ms() - t0;
	usleep(200000);
	r.stop = true;
	pthread_join(r.th, NULL);
	printf("%s: %llu ms (%s); meanwhile rooms worst %llu ms, reads worst %llu ms\n", what,
	       (unsigned long long)pub_ms, rc ? e.msg : "published",
	       (unsigned long long)r.worst_rooms, (unsigned long long)r.worst_read);
	dcr_buf_release(&body);
	rm_state_release(&f.st);
	cl_close(c);
}

int main(int argc, char **argv)
{
	unsigned nh = 32;
	dcr_key *legit_key = NULL;
	uint8_t legit_pub[32], slow_id[ES_ROOM_ID_BYTES], cheap_id[ES_ROOM_ID_BYTES];
	dcr_err e;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dcrd") == 0 && i + 1 < argc)
			g_exe = argv[++i];
		else if (strcmp(argv[i], "--hostile") == 0 && i + 1 < argc)
			nh = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--slow-limit") == 0 && i + 1 < argc)
			g_slow_limit = (unsigned)strtoul(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: bench_admit --dcrd PATH [--hostile N] "
			                "[--slow-limit L]\n");
			return 2;
		}
	}
	if (!g_exe || nh == 0 || nh > 256)
		return fprintf(stderr, "bench_admit: --dcrd PATH required, 1 <= N <= 256\n"), 2;
	signal(SIGPIPE, SIG_IGN);
	snprintf(g_dir, sizeof g_dir, "/tmp/dcr-admit-bench-XXXXXX");
	if (!mkdtemp(g_dir))
		return perror("mkdtemp"), 1;
	atexit(cleanup);
	snprintf(g_sock, sizeof g_sock, "%s/sock", g_dir);
	snprintf(g_data, sizeof g_data, "%s/data", g_dir);
	snprintf(g_log, sizeof g_log, "%s/dcrd.log", g_dir);
	DCR_ASSERT(dcr_key_generate(&legit_key) == 0);
	dcr_key_public(legit_key, legit_pub);
	start_dcrd();

	/* one hostile create */
	struct hostile *h = dcr_calloc(nh, sizeof *h);
	for (unsigned i = 0; i < nh; i++)
		DCR_ASSERT(dcr_key_generate(&h[i].key) == 0);
	hostile_main(&h[0]);
	printf("create1: %llu ms (%s)\n", (unsigned long long)h[0].ms, h[0].msg);

	/* the legitimate key has a room already (a newcomer is measured too) */
	{
		cl_conn *c = connect_as(legit_key);
		char *cheap = definition(legit_pub, "first", 1, 1);
		if (cl_room_create(c, cheap, cheap_id, &e) < 0)
			fprintf(stderr, "bench_admit: first room: %s\n", e.msg);
		free(cheap);
		cl_close(c);
	}
	/* the flood, with a legitimate client calling `rooms` */
	struct legit l = {.key = legit_key};
	pthread_create(&l.th, NULL, legit_main, &l);
	for (unsigned i = 0; i < nh; i++)
		pthread_create(&h[i].th, NULL, hostile_main, &h[i]);
	usleep(500000); /* the flood is on */
	for (int newcomer = 0; newcomer < 2; newcomer++) {
		dcr_key *k = legit_key;
		uint8_t pub[32];
		if (newcomer)
			DCR_ASSERT(dcr_key_generate(&k) == 0);
		dcr_key_public(k, pub);
		cl_conn *c = connect_as(k);
		char *cheap = definition(pub, "cheap", 1, 1);
		uint64_t t0 = dcr_mono_ms();
		int rc = cl_room_create(c, cheap, cheap_id, &e);
		printf("flood: legitimate cheap create (%s): %llu ms (%s)\n",
		       newcomer ? "a key with no room" : "a key with a room",
		       (unsigned long long)(dcr_mono_ms() - t0), rc ? e.msg : "created");
		free(cheap);
		cl_close(c);
		if (newcomer)
			dcr_key_free(k);
	}
	uint64_t worst = 0, refused = 0;
	for (unsigned i = 0; i < nh; i++) {
		pthread_join(h[i].th, NULL);
		worst = h[i].ms > worst ? h[i].ms : worst;
		refused += h[i].rc != 0;
	}
	l.stop = true;
	pthread_join(l.th, NULL);
	printf("flood: %u hostile creates (%llu refused, e.g. \"%s\"), slowest %llu ms; "
	       "legitimate rooms: %llu calls, worst %llu ms\n",
	       nh, (unsigned long long)refused, h[nh - 1].msg, (unsigned long long)worst,
	       (unsigned long long)l.calls, (unsigned long long)l.worst_rooms);

	/* two slow (passing) rooms; one published now (its verdict cached at
	 * create), the other after a restart (nothing cached) */
	uint8_t slow2_id[ES_ROOM_ID_BYTES];
	{
		cl_conn *c = connect_as(legit_key);
		for (int k = 0; k < 2; k++) {
			char *slow = definition(legit_pub, k ? "slow2" : "slow", g_slow_limit, 8);
			uint64_t t0 = dcr_mono_ms();
			int rc = cl_room_create(c, slow, k ? slow2_id : slow_id, &e);
			printf("slow room create: %llu ms (%s)\n",
			       (unsigned long long)(dcr_mono_ms() - t0), rc ? e.msg : "created");
			free(slow);
		}
		cl_close(c);
	}
	publish_measured(legit_key, slow_id, "publish (verdict cached)");
	stop_dcrd();
	printf("restart: %llu ms to accept connections\n", (unsigned long long)start_dcrd());
	publish_measured(legit_key, slow2_id, "publish (after restart: checked)");
	{
		cl_conn *c = connect_as(legit_key);
		struct fold f;
		memset(&f, 0, sizeof f);
		rm_state_init(&f.st, cl_daemon_key(c));
		uint64_t t0 = dcr_mono_ms();
		cl_events(c, slow_id, 0, ES_SEQ_ANY, fold_one, &f, &e);
		printf("replay (client, %llu events): %llu ms (%s)\n", (unsigned long long)f.st.size,
		       (unsigned long long)(dcr_mono_ms() - t0), f.rc ? "refused" : "ok");
		rm_state_release(&f.st);
		cl_close(c);
	}
	for (unsigned i = 0; i < nh; i++)
		dcr_key_free(h[i].key);
	free(h);
	dcr_key_free(legit_key);
	return 0;
}
