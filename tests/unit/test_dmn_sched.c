/* test_dmn_sched.c: one room, or one key, cannot starve the others of job
 * workers (issue 14, attack 4), and the per-room cap on queued runs.
 *
 * dcrd runs with 2 job workers, so a room and a key may have one job
 * running at a time (the caps stay below the worker count). anna floods
 * her room with runs that would compute for minutes; ian's quick run in
 * his own room must still finish within a generous bound (5 s, 20 s under
 * sanitizers; with one FIFO for every room it waited for anna's runs).
 * Then anna floods a second room of hers: her key holds one worker still,
 * and ian's next run finishes within the bound again. Her fifth run in the
 * first room is refused (ELIMIT, naming --max-queued-runs 4) before it is
 * appended; a stranger (carl, in no room) gets the rules' answer instead,
 * not the host's count. After a restart the queued runs are queued again
 * (the cap does not drop accepted runs) and a new one is refused at a
 * lower cap. A python run that never ends is killed at its 2 s wall-clock
 * limit (class "time limit"), within the sandbox's 5 s backstop. The
 * negative control: with --job-workers 1 the same flood
 * does hold ian's run back (the test can fail). */
#include "test_dmn_common.h"

/* A room of one participant (key), who owns bank and runs slow and quick. */
static char *room_json(const char *name, const char *key)
{
	return dcr_asprintf(
	    "{\"format\": \"dcr.room/1\", \"name\": \"%s\", \"description\": \"x\",\n"
	    " \"settings\": {\"require_provisioned\": false},\n"
	    " \"participants\": [{\"email\": \"p@bank.example\", \"key\": \"%s\",\n"
	    "   \"owner_of\": [\"bank\"], \"analyst_of\": [\"slow\", \"quick\", \"spin\"]}],\n"
	    " \"datasets\": [{\"name\": \"bank\", \"kind\": \"table\", \"columns\": [\n"
	    "   {\"name\": \"email\", \"type\": \"string\"},\n"
	    "   {\"name\": \"age\", \"type\": \"integer\"}]}],\n"
	    " \"computations\": [{\"name\": \"slow\", \"kind\": \"sql\",\n"
	    "   \"query\": \"SELECT a.age, COUNT(*) AS n FROM bank a JOIN bank b ON a.age <> "
	    "b.age JOIN bank c ON c.age <> b.age GROUP BY a.age\"},\n"
	    "  {\"name\": \"quick\", \"kind\": \"sql\",\n"
	    "   \"query\": \"SELECT age, COUNT(*) AS n FROM bank GROUP BY age\"},\n"
	    "  {\"name\": \"spin\", \"kind\": \"python\", \"inputs\": [\"bank\"],\n"
	    "   \"limits\": {\"wall_seconds\": 2}, \"script\": \"while True:\\n    pass\\n\"}]}\n",
	    name, key);
}

/* Creates, publishes and provisions a room as c's key; waits for its
 * prepared table (so runs time the scheduling, not the build). */
static int make_room(td *t, cl_conn *c, const char *name, const char *key, const char *csv,
                     uint8_t room[ES_ROOM_ID_BYTES])
{
	char *json = room_json(name, key);
	dcr_err err;
	int rc = td_room_publish(c, json, room, &err);

	if (rc == 0)
		rc = td_provision(c, room, "bank", csv, &err);
	if (rc < 0)
		fprintf(stderr, "room %s: %s\n", name, err.msg);
	free(json);
	(void)t;
	return rc;
}

static unsigned count_of(const char *hay, const char *needle)
{
	unsigned n = 0;
	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* ms from submitting quick in room until it is done (UINT64_MAX: failed
 * or not within limit_ms). */
static uint64_t quick_run_ms(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], uint64_t limit_ms)
{
	char run[33];
	cl_run_status st;
	dcr_err err;
	uint64_t t0 = dcr_mono_ms();
	int rc;

	if (cl_run(c, room, "quick", run, &err) < 0) {
		fprintf(stderr, "quick: %s\n", err.msg);
		return UINT64_MAX;
	}
	rc = td_wait_run(c, room, "quick", run, &st, limit_ms, &err);
	if (rc < 0) {
		fprintf(stderr, "quick: %s\n", err.msg);
		return UINT64_MAX;
	}
	rc = strcmp(st.state, "done") == 0;
	cl_run_status_release(&st);
	return rc ? dcr_mono_ms() - t0 : UINT64_MAX;
}

int main(void)
{
	static td t; /* the atexit cleanup reads it after main returns */
	const char *args[] = {"--job-workers", "2", "--max-queued-runs", "4", NULL};
	const char *args_low[] = {"--job-workers", "2", "--max-queued-runs", "2", NULL};
	const char *args_one[] = {"--job-workers", "1", NULL};
	uint64_t bound = getenv("DCR_SANITIZED") ? 20000 : 5000, ms;
	cl_conn *a = NULL, *ian = NULL, *carl = NULL;
	uint8_t ra[ES_ROOM_ID_BYTES], ra2[ES_ROOM_ID_BYTES], rv[ES_ROOM_ID_BYTES];
	char run[33];
	dcr_buf csv;
	dcr_err err;
	char *log;
	int i;

	td_init(&t);
	dcr_buf_init(&csv);
	{
		/* a cap that would let one room hold every worker is refused */
		const char *bad[] = {"--job-workers", "2", "--max-running-per-room", "2", NULL};
		int st = 0;
		CHECK(td_spawn(&t, &st, bad, true) == -1);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);
		CHECK(td_log_has(&t, "must be below --job-workers (2)"));
	}
	dcr_buf_append_str(&csv, "email,age\n");
	for (i = 0; i < 3000; i++)
		dcr_buf_printf(&csv, "u%d@x.org,%d\n", i, i % 90);
	if (td_start(&t, args) < 0)
		return 1;
	CHECK(td_log_has(&t, "2 job workers; per room at most 1 running and 4 runs queued, per "
	                     "key at most 1 running"));
	a = td_connect(&t, t.anna);
	ian = td_connect(&t, t.ian);
	carl = td_connect(&t, t.carl);
	CHECK(a && ian && carl);
	if (!a || !ian || !carl)
		goto out;
	CHECK(make_room(&t, a, "attacker", t.anna_s, dcr_buf_cstr(&csv), ra) == 0);
	CHECK(make_room(&t, a, "attacker2", t.anna_s, dcr_buf_cstr(&csv), ra2) == 0);
	CHECK(make_room(&t, ian, "victim", t.ian_s, dcr_buf_cstr(&csv), rv) == 0);
	CHECK(td_log_wait(&t, "prepared table bank", 30000));
	/* ian's first run: the prepared tables are built, the baseline */
	ms = quick_run_ms(ian, rv, 60000);
	CHECK(ms != UINT64_MAX, "baseline run");

	/* 0. a sandboxed script is killed at its wall-clock deadline */
	{
		cl_run_status st;
		uint64_t t0 = dcr_mono_ms();
		CHECK_OK(cl_run(ian, rv, "spin", run, &err), &err);
		CHECK_OK(td_wait_run(ian, rv, "spin", run, &st, 60000, &err), &err);
		ms = dcr_mono_ms() - t0;
		fprintf(stderr, "python run under a 2 s wall limit: failed after %llu ms (%s)\n",
		        (unsigned long long)ms, st.error ? st.error : "");
		CHECK(strcmp(st.state, "failed") == 0 && st.error &&
		          strcmp(st.error, "time limit") == 0,
		      "%s %s", st.state, st.error ? st.error : "");
		CHECK(ms >= 2000 && ms < (getenv("DCR_SANITIZED") ? 20000u : 10000u), "%llu ms",
		      (unsigned long long)ms);
		cl_run_status_release(&st);
	}

	/* 1. anna floods her room: four runs of minutes each (the cap) */
	for (i = 0; i < 4; i++)
		CHECK_OK(cl_run(a, ra, "slow", run, &err), &err);
	CHECK(td_log_wait(&t, "(slow) in room", 10000));
	usleep(300 * 1000);
	ms = quick_run_ms(ian, rv, bound);
	fprintf(stderr, "ian's run with anna's room flooded: %llu ms\n", (unsigned long long)ms);
	CHECK(ms <= bound, "ian's run took %llu ms (bound %llu)", (unsigned long long)ms,
	      (unsigned long long)bound);

	/* the cap on queued runs: refused before appending, naming the limit */
	CHECK_ERR(cl_run(a, ra, "slow", run, &err), DCR_ELIMIT, &err,
	          "dcrd --max-queued-runs 4");
	CHECK(strstr(err.msg, "4 runs queued or running") != NULL, "%s", err.msg);
	/* a stranger learns nothing from it: the rules' answer, not the count */
	{
		int rc = cl_run(carl, ra, "slow", run, &err);
		CHECK(rc < 0 && rc != DCR_ELIMIT && !strstr(err.msg, "queued"), "%d %s", rc,
		      err.msg);
	}
	/* another room of the same key is not full */
	for (i = 0; i < 4; i++)
		CHECK_OK(cl_run(a, ra2, "slow", run, &err), &err);

	/* 2. her second room is flooded too: her key holds one worker */
	usleep(300 * 1000);
	ms = quick_run_ms(ian, rv, bound);
	fprintf(stderr, "ian's run with two of anna's rooms flooded: %llu ms\n",
	        (unsigned long long)ms);
	CHECK(ms <= bound, "ian's run took %llu ms (bound %llu)", (unsigned long long)ms,
	      (unsigned long long)bound);
	log = td_log_text(&t);
	/* one of anna's runs computes, in one of her rooms, never two */
	CHECK(count_of(log, "(slow) in room") == 1, "%u slow runs started",
	      count_of(log, "(slow) in room"));
	free(log);

	/* 3. restart: every accepted run is queued again, none dropped, and
	 * a lower cap refuses new runs while they wait */
	cl_close(a);
	cl_close(ian);
	cl_close(carl);
	a = ian = carl = NULL;
	CHECK(td_stop(&t, SIGTERM) == 0);
	CHECK(td_start(&t, args_low) == 0);
	a = td_connect(&t, t.anna);
	ian = td_connect(&t, t.ian);
	CHECK(a && ian);
	if (!a || !ian)
		goto out;
	CHECK_ERR(cl_run(a, ra, "slow", run, &err), DCR_ELIMIT, &err,
	          "dcrd --max-queued-runs 2");
	CHECK(strstr(err.msg, "4 runs queued or running") != NULL, "%s", err.msg);
	ms = quick_run_ms(ian, rv, bound);
	CHECK(ms <= bound, "after the restart ian's run took %llu ms", (unsigned long long)ms);

	/* 4. negative control: one worker, taken by anna's run; ian's run
	 * waits (round robin gives it the worker only when that run ends) */
	cl_close(a);
	cl_close(ian);
	a = ian = NULL;
	CHECK(td_stop(&t, SIGTERM) == 0);
	CHECK(td_start(&t, args_one) == 0);
	ian = td_connect(&t, t.ian);
	CHECK(ian != NULL);
	if (!ian)
		goto out;
	CHECK(td_log_has(&t, "1 job workers; per room at most 1 running"));
	usleep(500 * 1000);
	ms = quick_run_ms(ian, rv, 2000);
	CHECK(ms == UINT64_MAX, "with one worker busy ian's run took %llu ms",
	      (unsigned long long)ms);
	CHECK(!td_log_has(&t, "ThreadSanitizer"));
out:
	cl_close(a);
	cl_close(ian);
	cl_close(carl);
	dcr_buf_release(&csv);
	if (t_failures) {
		log = td_log_text(&t);
		fprintf(stderr, "---- dcrd log ----\n%s", log);
		free(log);
	}
	td_cleanup();
	return t_failures ? 1 : 0;
}
