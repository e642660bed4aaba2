/* test_cmp_cancel.c: cancelling a running SQL computation from another
 * thread (cmp_cancel). A run that would go on for a minute (a recursive
 * CTE) stops within a bounded time once its handle fires, with
 * DCR_ECANCELED, while a run on another thread, with its own handle,
 * completes with its result; a handle that never fires changes nothing; a
 * handle fired before the run starts stops it at once. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../compute/compute.h"

static int failures;

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);      \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

/* Counts to a billion: about a minute of work, under a 120 s limit. */
#define ENDLESS                                                                                    \
	"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "   \
	"SELECT COUNT(*) AS n FROM c"

struct job {
	const char *query;
	cmp_cancel *cancel;
	int rc;
	dcr_err err;
	cmp_result res;
	uint64_t ms;
	volatile int done;
};

static void *job_main(void *arg)
{
	struct job *j = arg;
	cmp_sql_limits lim = {.time_ms = 120000, .cancel = j->cancel};
	uint64_t t0 = dcr_mono_ms();

	j->rc = cmp_sql_run(j->query, NULL, 0, 0, &lim, &j->res, &j->err);
	j->ms = dcr_mono_ms() - t0;
	__atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

int main(void)
{
	static struct job slow, quick;
	pthread_t ts, tq;
	uint64_t t0;

	cmp_result_init(&slow.res);
	cmp_result_init(&quick.res);
	slow.query = ENDLESS;
	slow.cancel = cmp_cancel_new();
	quick.query = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
	              "WHERE x < 100000) SELECT COUNT(*) AS n FROM c";
	quick.cancel = cmp_cancel_new();

	/* A slow run and a quick one in parallel; the slow one is cancelled
	 * once the quick one has finished. */
	CHECK(pthread_create(&ts, NULL, job_main, &slow) == 0);
	CHECK(pthread_create(&tq, NULL, job_main, &quick) == 0);
	pthread_join(tq, NULL);
	CHECK(quick.rc == 0);
	CHECK(quick.res.rows == 1);
	CHECK(strstr(quick.res.csv.data ? (char *)quick.res.csv.data : "", "100000") != NULL);
	usleep(200 * 1000); /* the slow run is well inside its statement */
	CHECK(!__atomic_load_n(&slow.done, __ATOMIC_ACQUIRE));
	CHECK(!cmp_cancel_fired(slow.cancel));
	t0 = dcr_mono_ms();
	cmp_cancel_fire(slow.cancel);
	CHECK(cmp_cancel_fired(slow.cancel));
	pthread_join(ts, NULL);
	fprintf(stderr, "cancelled after %llu ms of running; stopped %llu ms after the fire\n",
	        (unsigned long long)slow.ms, (unsigned long long)(dcr_mono_ms() - t0));
	CHECK(slow.rc == DCR_ECANCELED);
	CHECK(strstr(slow.err.msg, "cancelled") != NULL);
	CHECK(dcr_mono_ms() - t0 < 2000);
	CHECK(slow.res.rows == 0); /* res unchanged on failure */
	/* The quick run's handle never fired: it changed nothing (above), and
	 * a fired handle stops a later run at once, however long. */
	slow.rc = 0;
	t0 = dcr_mono_ms();
	job_main(&slow);
	CHECK(slow.rc == DCR_ECANCELED);
	CHECK(dcr_mono_ms() - t0 < 2000);
	/* Firing twice, and with no run attached, is fine. */
	cmp_cancel_fire(quick.cancel);
	cmp_cancel_fire(quick.cancel);
	quick.rc = 0;
	job_main(&quick);
	CHECK(quick.rc == DCR_ECANCELED);

	cmp_result_release(&slow.res);
	cmp_result_release(&quick.res);
	cmp_cancel_free(slow.cancel);
	cmp_cancel_free(quick.cancel);
	cmp_cancel_free(NULL);
	if (failures)
		fprintf(stderr, "%d failures\n", failures);
	return failures ? 1 : 0;
}
