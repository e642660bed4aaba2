/* test_dmn_admit.c: admission checks as a denial of service (issue 14,
 * attack 2) against the real dcrd: hostile keys flood definitions whose
 * checks burn the check time limit while a legitimate client's `rooms`
 * and create complete; a key past its budget of check CPU time is refused
 * with ELIMIT and the time to wait while another key is not; a publish of
 * an admitted draft is not checked again (verdict cache); a restart
 * replays without checking (dcrd's own count of checks, logged at
 * shutdown). Bounds are generous (the machine is shared); bench_admit
 * measures the real figures. */
#include <pthread.h>
#include <stdatomic.h>

#include "test_dmn_common.h"

/* A room of one participant (key) owning dataset d and analyst of n sql
 * computations, each walking a recursive CTE of `rows` rows that hexes
 * and rewrites 100 kB per row (about 3 ms of CPU a row): with 100000 rows
 * every check burns the check time limit. */
static char *costly_room(const uint8_t pub[32], const char *name, unsigned rows, unsigned n)
{
	char *key = dcr_pub_format(pub);
	dcr_buf b;

	dcr_buf_init(&b);
	dcr_buf_printf(&b,
	               "{\"format\":\"dcr.room/1\",\"name\":\"%s\",\"participants\":[{\"email\":"
	               "\"x@y.example\",\"key\":\"%s\",\"owner_of\":[\"d\"],\"analyst_of\":[",
	               name, key);
	for (unsigned i = 0; i < n; i++)
		dcr_buf_printf(&b, "%s\"c%u\"", i ? "," : "", i);
	dcr_buf_printf(&b, "]}],\"datasets\":[{\"name\":\"d\",\"kind\":\"table\",\"columns\":[{"
	                   "\"name\":\"v\",\"type\":\"integer\",\"nullable\":true,\"allow\":["
	                   "\"aggregate\"]}]}],\"computations\":[");
	for (unsigned i = 0; i < n; i++)
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

#define HOSTILE_KEYS 4
#define HOSTILE_PER_KEY 8

struct hostile {
	pthread_t th;
	td *t;
	const dcr_key *key;
	bool connect_refused;
	int rc;
	dcr_err err;
	uint64_t ms; /* the create's duration */
};

static void *hostile_main(void *arg)
{
	struct hostile *h = arg;
	uint8_t pub[32], id[ES_ROOM_ID_BYTES];
	cl_conn *c = NULL;

	dcr_key_public(h->key, pub);
	char *def = costly_room(pub, "hostile", 100000, 8);
	/* a connection refused (dcrd's connection limits) is a refusal too */
	h->rc = cl_connect(h->t->sock, h->key, &c, &h->err);
	if (h->rc == 0) {
		uint64_t t0 = dcr_mono_ms();
		h->rc = cl_room_create(c, def, id, &h->err);
		h->ms = dcr_mono_ms() - t0;
	} else {
		h->connect_refused = true;
	}
	cl_close(c);
	free(def);
	return NULL;
}

struct legit {
	pthread_t th;
	td *t;
	atomic_bool stop;
	uint64_t calls, worst_ms, failures;
};

static void *legit_main(void *arg)
{
	struct legit *l = arg;
	cl_conn *c = td_connect(l->t, l->t->anna);

	while (c && !atomic_load(&l->stop)) {
		cl_room_info *rs = NULL;
		size_t n = 0;
		dcr_err e;
		uint64_t t0 = dcr_mono_ms(), dt;
		if (cl_rooms(c, &rs, &n, &e) == 0)
			cl_rooms_free(rs, n);
		else
			l->failures++;
		dt = dcr_mono_ms() - t0;
		if (dt > l->worst_ms)
			l->worst_ms = dt;
		l->calls++;
		usleep(50000);
	}
	cl_close(c);
	return NULL;
}

/* The last "admission checks: N definitions checked" line of the log at
 * or after offset `from`: N, or -1 if there is none. */
static long checks_logged(td *t, size_t from, long *hits)
{
	char *s = td_log_text(t), *p, *last = NULL;
	long n = -1;

	for (p = s + (strlen(s) >= from ? from : strlen(s));
	     (p = strstr(p, "admission checks: ")) != NULL; p++)
		last = p;
	if (last && sscanf(last, "admission checks: %ld definitions checked", &n) == 1 && hits) {
		char *h = strstr(last, "CPU), ");
		*hits = h ? strtol(h + 6, NULL, 10) : -1;
	}
	free(s);
	return n;
}

static size_t log_size(td *t)
{
	char *s = td_log_text(t);
	size_t n = strlen(s);
	free(s);
	return n;
}

static void test_flood(td *t)
{
	dcr_key *keys[HOSTILE_KEYS] = {0};
	struct hostile h[HOSTILE_KEYS * HOSTILE_PER_KEY];
	struct legit l = {.t = t, .stop = false};
	uint8_t room[ES_ROOM_ID_BYTES], room2[ES_ROOM_ID_BYTES];
	char *json = td_room_json(t, "legit"), *json2 = td_room_json(t, "legit2");
	cl_conn *a = td_connect(t, t->anna);
	unsigned limited = 0, timed = 0;
	dcr_err e;

	CHECK(a != NULL);
	if (!a)
		goto out;
	/* anna's first room, before the attack */
	CHECK_OK(cl_room_create(a, json, room, &e), &e);
	memset(h, 0, sizeof h);
	for (unsigned i = 0; i < HOSTILE_KEYS; i++)
		DCR_ASSERT(dcr_key_generate(&keys[i]) == 0);
	pthread_create(&l.th, NULL, legit_main, &l);
	for (unsigned i = 0; i < HOSTILE_KEYS * HOSTILE_PER_KEY; i++) {
		h[i].t = t;
		h[i].key = keys[i % HOSTILE_KEYS];
		pthread_create(&h[i].th, NULL, hostile_main, &h[i]);
	}
	usleep(300000); /* the flood is on */
	/* anna creates a room meanwhile: her check takes its turn */
	uint64_t t0 = dcr_mono_ms();
	CHECK_OK(cl_room_create(a, json2, room2, &e), &e);
	uint64_t anna_ms = dcr_mono_ms() - t0, one_ms = UINT64_MAX;
	for (unsigned i = 0; i < HOSTILE_KEYS * HOSTILE_PER_KEY; i++) {
		pthread_join(h[i].th, NULL);
		CHECK(h[i].rc < 0, "a hostile definition was admitted");
		if (h[i].rc == DCR_ELIMIT || h[i].connect_refused)
			limited++;
		else if (strstr(h[i].err.msg, "time limit")) {
			timed++;
			one_ms = h[i].ms < one_ms ? h[i].ms : one_ms;
		}
		else
			CHECK(false, "hostile create: unexpected %d %s", h[i].rc, h[i].err.msg);
	}
	atomic_store(&l.stop, true);
	pthread_join(l.th, NULL);
	/* 8 creates at once per key, 2 checked at a time: most are refused */
	CHECK(limited >= 1 && timed >= 1, "%u refused by a limit, %u by the time limit", limited,
	      timed);
	/* Her check waits for the checks running when it came and for those
	 * of keys as unserved as hers, not for the flood: at most a few
	 * checks' time (one check is 2 s here, more on a loaded machine or
	 * under a sanitizer: the fastest hostile create measures it). The
	 * flood itself takes 8 checks on 2 threads, 4 such times. */
	CHECK(anna_ms < 3 * one_ms + 10000,
	      "legitimate create took %llu ms during the flood (one check: %llu ms)",
	      (unsigned long long)anna_ms, (unsigned long long)one_ms);
	CHECK(l.failures == 0 && l.calls >= 1);
	CHECK(l.worst_ms < 5000, "a legitimate `rooms` took %llu ms during the flood",
	      (unsigned long long)l.worst_ms);
out:
	for (unsigned i = 0; i < HOSTILE_KEYS; i++)
		dcr_key_free(keys[i]);
	cl_close(a);
	free(json);
	free(json2);
}

/* --max-check-cpu-s 1: carl's definition of 64 cheap-but-not-free
 * computations (about 40 ms of CPU each: 2.6 s in all, and each far below
 * the 2 s wall-clock limit of one query even under a sanitizer at a load
 * of 20, where 100 ms of CPU took more than 2 s)
 * overdraws his budget during its check; his next (another text: a cached
 * verdict would cost nothing) is refused at once, naming the wait; anna is
 * not affected. */
static void test_budget(td *t)
{
	cl_conn *c = td_connect(t, t->carl), *a = td_connect(t, t->anna);
	char *def = costly_room(t->carl_pub, "many", 16, 64);
	char *def2 = costly_room(t->carl_pub, "many2", 16, 64);
	char *json = td_room_json(t, "after");
	uint8_t id[ES_ROOM_ID_BYTES];
	dcr_err e;

	CHECK(c && a);
	if (!c || !a)
		goto out;
	CHECK_ERR(cl_room_create(c, def, id, &e), DCR_ELIMIT, &e, "budget of check CPU time");
	CHECK(strstr(e.msg, "--max-check-cpu-s") && strstr(e.msg, "retry in "), "%s", e.msg);
	uint64_t t0 = dcr_mono_ms();
	CHECK_ERR(cl_room_create(c, def2, id, &e), DCR_ELIMIT, &e, "retry in ");
	CHECK(dcr_mono_ms() - t0 < 5000, "the refusal was not immediate");
	/* the budget is carl's alone */
	CHECK_OK(cl_room_create(a, json, id, &e), &e);
out:
	cl_close(c);
	cl_close(a);
	free(def);
	free(def2);
	free(json);
}

int main(void)
{
	static td t;
	const char *const budget[] = {"--max-check-cpu-s", "1", NULL};
	const char *const debug[] = {"--log-level", "debug", NULL};
	uint8_t room[ES_ROOM_ID_BYTES];
	char *json = NULL;
	cl_conn *a = NULL;
	size_t from;
	long hits = -1, n;
	dcr_err e;

	td_init(&t);
	if (td_start(&t, NULL) < 0)
		return 1;
	test_flood(&t);
	CHECK(td_stop(&t, SIGTERM) == 0);

	if (td_start(&t, budget) < 0)
		return 1;
	test_budget(&t);
	CHECK(td_stop(&t, SIGTERM) == 0);

	/* a publish of the admitted draft is not checked again */
	if (td_start(&t, debug) < 0)
		return 1;
	from = log_size(&t);
	a = td_connect(&t, t.anna);
	json = td_room_json(&t, "cached");
	CHECK_OK(td_room_publish(a, json, room, &e), &e);
	cl_close(a);
	a = NULL;
	CHECK(td_stop(&t, SIGTERM) == 0);
	n = checks_logged(&t, from, &hits);
	CHECK(n == 1 && hits == 1, "create and publish: %ld checks, %ld cache hits", n, hits);

	/* a restart replays every room (hostile ones refused, legit ones
	 * stored) without one check, and serves them */
	if (td_start(&t, debug) < 0)
		return 1;
	from = log_size(&t);
	a = td_connect(&t, t.anna);
	{
		cl_room_info *rs = NULL;
		size_t nr = 0;
		CHECK_OK(cl_rooms(a, &rs, &nr, &e), &e);
		CHECK(nr == 4, "anna sees %zu rooms", nr);
		cl_rooms_free(rs, nr);
	}
	cl_close(a);
	a = NULL;
	CHECK(td_stop(&t, SIGTERM) == 0);
	n = checks_logged(&t, from, &hits);
	CHECK(n == 0, "the restart ran %ld checks", n);

	free(json);
	if (t_failures) {
		char *log = td_log_text(&t);
		fprintf(stderr, "---- dcrd log ----\n%s", log);
		free(log);
	}
	td_cleanup();
	return t_failures ? 1 : 0;
}
