/* test_dmn_shutdown.c: SIGTERM while a computation runs. A run in another
 * room completes while the slow one computes (the slow one holds one
 * worker, not the daemon). Then dcrd must stop promptly: it cancels the
 * running computation (sqlite3_interrupt), records nothing for it, joins
 * every thread, exits 0 (under ThreadSanitizer: with no report), and at
 * the next start re-queues the run, because the log still says
 * run.requested without an outcome. */
#include <pthread.h>

#include "test_dmn_common.h"

static char *slow_room(const td *t, const char *name)
{
	return dcr_asprintf(
	    "{\"format\": \"dcr.room/1\", \"name\": \"%s\", \"description\": \"x\",\n"
	    " \"settings\": {\"require_provisioned\": false},\n"
	    " \"participants\": [{\"email\": \"anna@bank.example\", \"key\": \"%s\",\n"
	    "   \"owner_of\": [\"bank\"], \"analyst_of\": [\"slow\", \"quick\"]}],\n"
	    " \"datasets\": [{\"name\": \"bank\", \"kind\": \"table\", \"columns\": [\n"
	    "   {\"name\": \"email\", \"type\": \"string\"},\n"
	    "   {\"name\": \"age\", \"type\": \"integer\"}]}],\n"
	    " \"computations\": [{\"name\": \"slow\", \"kind\": \"sql\",\n"
	    "   \"query\": \"SELECT a.age, COUNT(*) AS n FROM bank a JOIN bank b ON a.age <> "
	    "b.age JOIN bank c ON c.age <> b.age GROUP BY a.age\"},\n"
	    "  {\"name\": \"quick\", \"kind\": \"sql\",\n"
	    "   \"query\": \"SELECT age, COUNT(*) AS n FROM bank GROUP BY age\"}]}\n",
	    name, t->anna_s);
}

/* A long poll in progress must not hold up the shutdown. */
struct waiter {
	td *t;
	const uint8_t *room;
	int rc;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	cl_conn *c = td_connect(w->t, w->t->anna);
	uint64_t got;
	dcr_err err;

	w->rc = c ? cl_wait(c, w->room, 1000000, 30000, &got, &err) : -1;
	cl_close(c);
	return NULL;
}

int main(void)
{
	static td t; /* the atexit cleanup reads it after main returns */
	cl_conn *a = NULL;
	uint8_t room[ES_ROOM_ID_BYTES], room2[ES_ROOM_ID_BYTES];
	char *json = NULL, *json2 = NULL, run[33], run2[33];
	cl_run_status st;
	dcr_buf csv;
	dcr_err err;
	uint64_t t0;
	int status;

	td_init(&t);
	dcr_buf_init(&csv);
	if (td_start(&t, NULL) < 0)
		return 1;
	a = td_connect(&t, t.anna);
	CHECK(a != NULL);
	if (!a)
		goto out;
	json = slow_room(&t, "slow");
	CHECK_OK(td_room_publish(a, json, room, &err), &err);
	dcr_buf_append_str(&csv, "email,age\n");
	for (int i = 0; i < 3000; i++)
		dcr_buf_printf(&csv, "u%d@x.org,%d\n", i, i % 90);
	CHECK_OK(td_provision(a, room, "bank", dcr_buf_cstr(&csv), &err), &err);
	CHECK(td_log_wait(&t, "prepared table bank", 30000));
	CHECK_OK(cl_run(a, room, "slow", run, &err), &err);
	/* wait until it is computing */
	t0 = dcr_mono_ms();
	for (;;) {
		CHECK_OK(cl_run_status(a, room, "slow", &st, &err), &err);
		bool running = strcmp(st.state, "running") == 0;
		bool over = strcmp(st.state, "done") == 0 || strcmp(st.state, "failed") == 0;
		cl_run_status_release(&st);
		if (running)
			break;
		if (over || dcr_mono_ms() - t0 > 60000) {
			CHECK(!"the slow run never ran");
			goto out;
		}
		usleep(10000);
	}
	/* Another room's run completes meanwhile, the slow one still runs. */
	json2 = slow_room(&t, "other");
	CHECK_OK(td_room_publish(a, json2, room2, &err), &err);
	CHECK_OK(td_provision(a, room2, "bank", dcr_buf_cstr(&csv), &err), &err);
	CHECK_OK(cl_run(a, room2, "quick", run2, &err), &err);
	t0 = dcr_mono_ms();
	for (;;) {
		CHECK_OK(cl_run_status(a, room2, "quick", &st, &err), &err);
		bool done = strcmp(st.state, "done") == 0;
		bool failed = strcmp(st.state, "failed") == 0;
		cl_run_status_release(&st);
		if (done)
			break;
		if (failed || dcr_mono_ms() - t0 > 60000) {
			CHECK(!"the other room's run did not complete");
			break;
		}
		usleep(10000);
	}
	CHECK_OK(cl_run_status(a, room, "slow", &st, &err), &err);
	CHECK(strcmp(st.state, "running") == 0);
	cl_run_status_release(&st);
	cl_close(a);
	a = NULL;
	{
		struct waiter w = {&t, room, 0};
		pthread_t th;
		pthread_create(&th, NULL, waiter_main, &w);
		usleep(200 * 1000);
		t0 = dcr_mono_ms();
		status = td_stop(&t, SIGTERM);
		pthread_join(th, NULL);
	}
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	{
		/* Cancelled, not waited for: the query would run for minutes. */
		uint64_t ms = dcr_mono_ms() - t0, bound = getenv("DCR_SANITIZED") ? 5000 : 2000;
		fprintf(stderr, "shutdown with a computation running took %llu ms\n",
		        (unsigned long long)ms);
		CHECK(ms < bound);
	}
	CHECK(td_log_has(&t, "cancelled 1 running computations"));
	CHECK(td_log_has(&t, "(slow) in room"));
	CHECK(td_log_has(&t, "cancelled at shutdown after"));
	CHECK(td_log_has(&t, "(quick) in room"));
	CHECK(td_log_has(&t, ": done in"));
	CHECK(td_log_has(&t, "clean shutdown"));
	CHECK(!td_log_has(&t, "ThreadSanitizer"));

	/* Restarted: the run is queued again and starts. */
	CHECK(td_start(&t, NULL) == 0);
	a = td_connect(&t, t.anna);
	CHECK(a != NULL);
	if (a) {
		CHECK_OK(cl_run_status(a, room, "slow", &st, &err), &err);
		CHECK(strcmp(st.run_id, run) == 0);
		CHECK(strcmp(st.state, "queued") == 0 || strcmp(st.state, "running") == 0);
		cl_run_status_release(&st);
	}
	{
		char *started = dcr_asprintf("run %s (slow) in room", run);
		char *log = td_log_text(&t);
		char *first = strstr(log, started);
		CHECK(first != NULL);
		free(log);
		free(started);
	}
	cl_close(a);
	a = NULL;
	td_kill(&t);
out:
	cl_close(a);
	free(json);
	free(json2);
	dcr_buf_release(&csv);
	if (t_failures) {
		char *log = td_log_text(&t);
		fprintf(stderr, "---- dcrd log ----\n%s", log);
		free(log);
	}
	td_cleanup();
	return t_failures ? 1 : 0;
}
