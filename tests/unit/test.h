/* test.h: the one check harness of the unit tests (header-only, static).
 *
 * Every check that fails prints "file:line: CHECK failed: <expression>"
 * (plus the details the check knows) to stderr, counts itself in
 * t_failures and keeps going, so one run shows every broken check and the
 * test's own clean-up (daemons, temp directories) still runs. A test's
 * main returns t_failures ? 1 : 0. After T_FAILURES_SHOWN failures the
 * rest are counted but not printed, so a broken loop cannot flood the log.
 *
 *   CHECK(cond)                        cond must hold
 *   CHECK(cond, fmt, ...)              the same, printing fmt (a literal) on failure
 *   CHECK_RC(expr, want)               expr (an integer) must equal want
 *   CHECK_OK(rc, err)                  rc must be 0; prints err->msg otherwise
 *   CHECK_ERR(rc, code, err, needle)   rc must be exactly code, and err->msg
 *                                      must contain needle (unless NULL)
 *   CHECK_FAILS(rc, err, needle...)    rc must be an error (any), and err->msg
 *                                      must contain every needle given */
#ifndef DCR_TEST_H
#define DCR_TEST_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../base/base.h"

#define T_FAILURES_SHOWN 50

static int t_failures;

/* Counts one failure; returns whether it is still to be printed. */
__attribute__((unused)) static int t_failed(void)
{
	t_failures++;
	if (t_failures == T_FAILURES_SHOWN + 1)
		fprintf(stderr, "(more than %d failed checks; the rest are counted, not shown)\n",
		        T_FAILURES_SHOWN);
	return t_failures <= T_FAILURES_SHOWN;
}

/* fmt always starts with the space CHECK puts in front of its message. */
__attribute__((format(printf, 4, 5), unused)) static void
t_check_failed(const char *file, int line, const char *expr, const char *fmt, ...)
{
	va_list ap;
	if (!t_failed())
		return;
	fprintf(stderr, "%s:%d: CHECK failed: %s", file, line, expr);
	if (fmt[1]) {
		fputc(':', stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
	}
	fputc('\n', stderr);
}

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			t_check_failed(__FILE__, __LINE__, #cond, " " __VA_ARGS__);                \
	} while (0)

#define CHECK_RC(expr, want)                                                                       \
	do {                                                                                       \
		long rc__ = (long)(expr);                                                          \
		if (rc__ != (long)(want) && t_failed())                                            \
			fprintf(stderr, "%s:%d: CHECK failed: %s = %ld, want %ld\n", __FILE__,     \
			        __LINE__, #expr, rc__, (long)(want));                              \
	} while (0)

#define CHECK_OK(rc, err)                                                                          \
	do {                                                                                       \
		int rc__ = (rc);                                                                   \
		if (rc__ != 0 && t_failed())                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s: %d %s\n", __FILE__, __LINE__,    \
			        #rc, rc__, (err)->msg);                                            \
	} while (0)

#define CHECK_ERR(rc, code, err, needle)                                                           \
	t_check_err_code((rc), (code), (err), (needle), __FILE__, __LINE__, #rc)

__attribute__((unused)) static void t_check_err_code(int rc, int code, const dcr_err *err,
                                                     const char *needle, const char *file,
                                                     int line, const char *expr)
{
	if (rc != code) {
		if (t_failed())
			fprintf(stderr, "%s:%d: CHECK failed: %s: expected %s, got %d (%s)\n", file,
			        line, expr, dcr_errname(code), rc, err->msg);
	} else if (needle && !strstr(err->msg, needle)) {
		if (t_failed())
			fprintf(stderr, "%s:%d: CHECK failed: %s: error \"%s\" lacks \"%s\"\n",
			        file, line, expr, err->msg, needle);
	}
}

#define CHECK_FAILS(rc, err, ...)                                                                  \
	t_check_fails((rc), (err), __FILE__, __LINE__, #rc, __VA_ARGS__, NULL)

__attribute__((sentinel, unused)) static void t_check_fails(int rc, const dcr_err *err,
                                                            const char *file, int line,
                                                            const char *expr, ...)
{
	va_list ap;
	if (rc == 0) {
		if (t_failed())
			fprintf(stderr, "%s:%d: CHECK failed: %s: expected an error, got success\n",
			        file, line, expr);
		return;
	}
	va_start(ap, expr);
	for (const char *n = va_arg(ap, const char *); n; n = va_arg(ap, const char *)) {
		if (!strstr(err->msg, n) && t_failed())
			fprintf(stderr, "%s:%d: CHECK failed: %s: error \"%s\" lacks \"%s\"\n",
			        file, line, expr, err->msg, n);
	}
	va_end(ap);
}

/* A byte source over memory for the project's read callbacks (bytes
 * read, 0 at the end), handing out at most step bytes a call (0: as many
 * as asked), so that a test chooses where the reader's chunks end. */
struct t_mem {
	const char *p;
	size_t n, off, step;
};

static inline int t_mem_read(void *ctx, void *buf, size_t cap)
{
	struct t_mem *m = ctx;
	size_t k = m->n - m->off;
	if (k > cap)
		k = cap;
	if (m->step && k > m->step)
		k = m->step;
	memcpy(buf, m->p + m->off, k);
	m->off += k;
	return (int)k;
}

#endif
