/* cmp_cancel.c: stopping a running computation from another thread.
 *
 * A handle holds a flag and the connection currently running under it.
 * Firing sets the flag and calls sqlite3_interrupt on that connection,
 * under the handle's mutex, so the connection cannot be closed meanwhile
 * (sqlite3_interrupt on a closed connection is undefined). SQLite drops
 * an interrupt that arrives between statements, so the run's progress
 * handler also checks the flag (cmp_sql.c): whichever comes first stops
 * the run within 1000 VM steps. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

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
