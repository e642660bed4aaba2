/* cmp_cancel.c: stopping a running computation from another thread: a
 * cancel handle fired by a caller, and the watchdog that stops a SQLite
 * execution at its deadline.
 *
 * A handle holds a flag and the connection currently running under it.
 * Firing sets the flag and calls sqlite3_interrupt on that connection,
 * under the handle's mutex, so the connection cannot be closed meanwhile
 * (sqlite3_interrupt on a closed connection is undefined). SQLite drops
 * an interrupt that arrives between statements, so the run's progress
 * handler also checks the flag (cmp_sql.c): whichever comes first stops
 * the run within 1000 VM steps. */
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <time.h>

#include "compute_int.h"

struct cmp_cancel {
	pthread_mutex_t mu; /* guards db */
	sqlite3 *db;        /* the run's connection, NULL between runs */
	atomic_bool fired;
};

cmp_cancel *cmp_cancel_new(void)
{
	cmp_cancel *c = dcr_calloc(1, sizeof *c);

	pthread_mutex_init(&c->mu, NULL);
	atomic_init(&c->fired, false);
	return c;
}

void cmp_cancel_free(cmp_cancel *c)
{
	if (!c)
		return;
	DCR_ASSERT(c->db == NULL); /* no run is using it */
	pthread_mutex_destroy(&c->mu);
	free(c);
}

void cmp_cancel_fire(cmp_cancel *c)
{
	atomic_store(&c->fired, true);
	pthread_mutex_lock(&c->mu);
	if (c->db)
		sqlite3_interrupt(c->db);
	pthread_mutex_unlock(&c->mu);
}

bool cmp_cancel_fired(const cmp_cancel *c)
{
	return c && atomic_load(&c->fired);
}

void cmp__cancel_attach(cmp_cancel *c, sqlite3 *db)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	DCR_ASSERT(c->db == NULL); /* one run at a time per handle */
	c->db = db;
	if (atomic_load(&c->fired)) /* fired before we got here */
		sqlite3_interrupt(db);
	pthread_mutex_unlock(&c->mu);
}

void cmp__cancel_detach(cmp_cancel *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->db = NULL;
	pthread_mutex_unlock(&c->mu);
}

/* ---- the watchdog ---------------------------------------------------------------
 * SQLite calls a progress handler only at the jumps of its VM, once every N
 * instructions: a statement whose instructions are each expensive (a LIKE
 * over a long string per row) went 100 instructions, and a minute, past
 * its deadline between two looks at the clock. The watchdog is one thread
 * per process that sleeps until the earliest deadline of the connections
 * registered with it and calls sqlite3_interrupt on each connection whose
 * deadline passed, whatever the statement is doing; SQLite sees the flag at
 * its next jump, so the run stops after the function call in progress
 * (how long one call can take is bounded by the connection's limits,
 * cmp_sql.c). An interrupt that lands between two statements is dropped by
 * SQLite, so the caller's progress handler also checks cmp__watch_fired.
 *
 * Registrations are intrusive (the caller's struct, usually on its stack),
 * in a list under one mutex; sqlite3_interrupt is called under that mutex,
 * so after cmp__watch_stop returns the connection may be closed. If the
 * thread cannot be created, nothing is interrupted and the progress
 * handler's own look at the clock is all there is (as before). */

static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watch_cv;
static cmp__watch *watch_list; /* registered, not fired */
static pthread_once_t watch_once = PTHREAD_ONCE_INIT;
static bool watch_running;

/* Takes w off watch_list. watch_mu held. */
static void watch_unlink(cmp__watch *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		watch_list = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
	w->listed = false;
}

static void watch_deadline_ts(uint64_t ms, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ms / 1000);
	ts->tv_nsec = (long)(ms % 1000) * 1000000L;
}

static void *watch_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&watch_mu);
	for (;;) {
		uint64_t now = dcr_mono_ms(), next = UINT64_MAX;
		cmp__watch *w = watch_list;

		while (w) {
			cmp__watch *nx = w->next;
			if (w->deadline_ms <= now) {
				sqlite3_interrupt(w->db);
				atomic_store(&w->fired, true);
				watch_unlink(w); /* it has done its work */
			} else if (w->deadline_ms < next) {
				next = w->deadline_ms;
			}
			w = nx;
		}
		if (next == UINT64_MAX) {
			pthread_cond_wait(&watch_cv, &watch_mu);
		} else {
			struct timespec ts;
			watch_deadline_ts(next, &ts);
			pthread_cond_timedwait(&watch_cv, &watch_mu, &ts);
		}
	}
	return NULL;
}

static void watch_init(void)
{
	pthread_condattr_t ca;
	pthread_attr_t at;
	sigset_t all, old;
	pthread_t t;

	/* the clock of dcr_mono_ms, so deadlines compare directly */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&watch_cv, &ca);
	pthread_condattr_destroy(&ca);
	/* it takes no signals (a daemon's handlers run elsewhere), lives as
	 * long as the process and holds nothing to free */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	watch_running = pthread_create(&t, &at, watch_main, NULL) == 0;
	pthread_attr_destroy(&at);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

bool cmp__watch_start(cmp__watch *w, sqlite3 *db, uint64_t deadline_ms)
{
	memset(w, 0, sizeof *w);
	w->db = db;
	w->deadline_ms = deadline_ms;
	atomic_init(&w->fired, false);
	pthread_once(&watch_once, watch_init);
	if (!watch_running)
		return false;
	pthread_mutex_lock(&watch_mu);
	w->next = watch_list;
	if (watch_list)
		watch_list->prev = w;
	watch_list = w;
	w->listed = true;
	pthread_cond_signal(&watch_cv); /* it may be the earliest deadline */
	pthread_mutex_unlock(&watch_mu);
	return true;
}

void cmp__watch_stop(cmp__watch *w)
{
	if (!w->db)
		return;
	pthread_mutex_lock(&watch_mu);
	if (w->listed)
		watch_unlink(w);
	pthread_mutex_unlock(&watch_mu);
	w->db = NULL;
}

bool cmp__watch_fired(const cmp__watch *w)
{
	return atomic_load(&w->fired);
}
