/* test_dmn_lock.c: dmn_mutex, the mutex behind dcrd's "caller holds X"
 * assertions (DMN_ASSERT_HELD). Held is true exactly for the thread that
 * locked it: not before, not after unlocking, not for another thread
 * while it is held, and again after a condition wait returns. Misuse
 * stops the process with the assertion's message: unlocking a mutex this
 * thread does not hold, relocking one it holds (which would deadlock
 * silently), asserting a lock that is not held. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../daemon/dmn_int.h"

static int failures;

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);      \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

static dmn_mutex mu;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int stage;

static void *other_main(void *arg)
{
	bool *held_elsewhere = arg;

	*held_elsewhere = dmn__mutex_held(&mu); /* main holds it now */
	dmn__mutex_lock(&mu); /* waits until main's cond wait releases it */
	CHECK(dmn__mutex_held(&mu));
	stage = 1;
	pthread_cond_signal(&cv);
	dmn__mutex_unlock(&mu);
	CHECK(!dmn__mutex_held(&mu));
	return NULL;
}

/* Runs fn in a child; true if it died of SIGABRT with `needle` on stderr
 * (the assertion message goes to our stderr too, where ctest shows it). */
static bool aborts(void (*fn)(void))
{
	pid_t pid = fork();
	int st = 0;

	if (pid == 0) {
		fn();
		_exit(0); /* no assertion fired */
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return false;
	return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

static void unlock_not_held(void)
{
	dmn_mutex m;
	dmn__mutex_init(&m);
	dmn__mutex_unlock(&m);
}

static void relock(void)
{
	dmn_mutex m;
	dmn__mutex_init(&m);
	dmn__mutex_lock(&m);
	dmn__mutex_lock(&m);
}

static void assert_not_held(void)
{
	dmn_mutex m;
	dmn__mutex_init(&m);
	DMN_ASSERT_HELD(&m);
}

static void assert_held_ok(void)
{
	dmn_mutex m;
	dmn__mutex_init(&m);
	dmn__mutex_lock(&m);
	DMN_ASSERT_HELD(&m);
	dmn__mutex_unlock(&m);
	dmn__mutex_destroy(&m);
}

int main(void)
{
	pthread_t t;
	bool held_elsewhere = true;

	dmn__mutex_init(&mu);
	CHECK(!dmn__mutex_held(&mu));
	dmn__mutex_lock(&mu);
	CHECK(dmn__mutex_held(&mu));
	CHECK(pthread_create(&t, NULL, other_main, &held_elsewhere) == 0);
	while (stage == 0)
		dmn__cond_wait(&cv, &mu); /* releases mu: the other thread takes it */
	CHECK(dmn__mutex_held(&mu)); /* ours again after the wait */
	dmn__mutex_unlock(&mu);
	pthread_join(t, NULL);
	CHECK(!held_elsewhere);
	CHECK(!dmn__mutex_held(&mu));
	dmn__mutex_destroy(&mu);

	fprintf(stderr, "(three assertion failures expected below, in child processes)\n");
	CHECK(!aborts(assert_held_ok));
	CHECK(aborts(unlock_not_held));
	CHECK(aborts(relock));
	CHECK(aborts(assert_not_held));
	if (failures)
		fprintf(stderr, "%d failures\n", failures);
	return failures ? 1 : 0;
}
