/* lock.c: dcrd's mutex, a pthread mutex that knows its holder, so that
 * "caller holds X" is an assertion that stays on in release builds
 * (DMN_ASSERT_HELD), as SQLite's sqlite3_mutex_held.
 *
 * The holder is recorded as the address of a thread-local byte: unique
 * per live thread, never 0. Only the holder writes owner (after locking,
 * and back to 0 before unlocking), so a thread reading owner sees its own
 * tag exactly when it holds the mutex: another thread's writes can only be
 * 0 or that thread's tag. Relaxed atomics suffice: a thread's own writes
 * are always visible to it, and the value is only compared with its own
 * tag. Cost: two relaxed stores per lock/unlock pair. */
#include "dmn_int.h"

static _Thread_local char self_tag;

static uintptr_t self(void)
{
	return (uintptr_t)&self_tag;
}

void dmn__mutex_init(dmn_mutex *m)
{
	DCR_ASSERT(pthread_mutex_init(&m->mu, NULL) == 0);
	atomic_init(&m->owner, 0);
}

void dmn__mutex_destroy(dmn_mutex *m)
{
	DCR_ASSERT(atomic_load_explicit(&m->owner, memory_order_relaxed) == 0);
	pthread_mutex_destroy(&m->mu);
}

void dmn__mutex_lock(dmn_mutex *m)
{
	/* Relocking would deadlock silently: say where instead. */
	DCR_ASSERT(!dmn__mutex_held(m));
	DCR_ASSERT(pthread_mutex_lock(&m->mu) == 0);
	atomic_store_explicit(&m->owner, self(), memory_order_relaxed);
}

void dmn__mutex_unlock(dmn_mutex *m)
{
	DCR_ASSERT(dmn__mutex_held(m));
	atomic_store_explicit(&m->owner, 0, memory_order_relaxed);
	DCR_ASSERT(pthread_mutex_unlock(&m->mu) == 0);
}

bool dmn__mutex_held(const dmn_mutex *m)
{
	return atomic_load_explicit(&m->owner, memory_order_relaxed) == self();
}

void dmn__cond_wait(pthread_cond_t *cv, dmn_mutex *m)
{
	DCR_ASSERT(dmn__mutex_held(m));
	atomic_store_explicit(&m->owner, 0, memory_order_relaxed);
	pthread_cond_wait(cv, &m->mu);
	atomic_store_explicit(&m->owner, self(), memory_order_relaxed);
}

int dmn__cond_timedwait(pthread_cond_t *cv, dmn_mutex *m, const struct timespec *abstime)
{
	int rc;

	DCR_ASSERT(dmn__mutex_held(m));
	atomic_store_explicit(&m->owner, 0, memory_order_relaxed);
	rc = pthread_cond_timedwait(cv, &m->mu, abstime);
	atomic_store_explicit(&m->owner, self(), memory_order_relaxed);
	return rc;
}
