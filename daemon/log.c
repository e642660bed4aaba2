/* log.c: dcrd's log: one line per event on stderr, time-stamped, with
 * control characters from client-supplied names replaced. Any thread may
 * log; each line is one fprintf (stdio locks the stream), so lines do not
 * interleave. Kept apart from the loop (server.c) so that every part can
 * log without depending on it. */
#include <time.h>

#include "dmn_int.h"

static void fmt_time(char *out, size_t n)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000,
	         (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
	         tm.tm_sec % 100, (int)(ts.tv_nsec / 1000000) % 1000);
}

void dmn__log(const dmn *d, enum dmn_log_level lvl, const char *fmt, ...)
{
	static const char *names[] = {"error", "warn", "info", "debug"};
	char t[40], msg[1024];
	va_list ap;

	/* atomic: SIGHUP may change it (server.c) */
	if (d && lvl > (enum dmn_log_level)__atomic_load_n(&d->opt.log_level, __ATOMIC_RELAXED))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	/* Names in messages come from clients: one event, one line. */
	for (char *q = msg; *q; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			*q = '?';
	fmt_time(t, sizeof t);
	fprintf(stderr, "%s dcrd %s: %s\n", t, names[lvl], msg);
}

int dmn_log_level_parse(const char *s)
{
	if (strcmp(s, "error") == 0)
		return DMN_LOG_ERROR;
	if (strcmp(s, "warn") == 0)
		return DMN_LOG_WARN;
	if (strcmp(s, "info") == 0)
		return DMN_LOG_INFO;
	if (strcmp(s, "debug") == 0)
		return DMN_LOG_DEBUG;
	return -1;
}
