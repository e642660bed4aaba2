/* test_cmp_strfn.c: the run connection's instr(), replace(), trim(),
 * ltrim() and rtrim() (cmp_strfn.c) give SQLite's results, in linear
 * time, and the watchdog stops a query of few, expensive steps near its
 * time limit.
 *
 * The same expressions are evaluated by SQLite's built-ins on a plain
 * connection and by cmp_sql_run (which overrides them), over edge cases
 * (NULL, empty, numbers, blobs, NUL bytes, multi-byte and invalid UTF-8)
 * and 5,000 random strings over a small alphabet that makes matches,
 * overlaps and broken characters likely; the results (type and hex) must
 * be equal (but for a trim set holding a "character" longer than 4 bytes,
 * which ours refuses). Then the searches that were quadratic (a 4 MiB string and a
 * 2 MiB needle: hours in SQLite's instr) finish within seconds, and a
 * query whose every row costs a LIKE over 4 MiB stops within a bound of its
 * time limit (SQLite's progress handler alone let such a query run many
 * rows past it). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../compute/compute.h"
#include "test.h"

/* The value of expression e (type and hex) through SQLite's built-ins. */
static char *builtin(sqlite3 *db, const char *e)
{
	char *q = dcr_asprintf("SELECT typeof(%s) || ':' || hex(%s)", e, e);
	sqlite3_stmt *st = NULL;
	char *out;

	if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
		out = dcr_asprintf("prepare error: %s", sqlite3_errmsg(db));
	else if (sqlite3_step(st) != SQLITE_ROW)
		out = dcr_asprintf("error: %s", sqlite3_errmsg(db));
	else
		out = dcr_strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	free(q);
	return out;
}

/* The same through cmp_sql_run (its CSV's one field). */
static char *ours(const char *e)
{
	char *q = dcr_asprintf("SELECT typeof(%s) || ':' || hex(%s) AS v", e, e);
	cmp_result res;
	dcr_err err;
	char *out;

	cmp_result_init(&res);
	if (cmp_sql_run(q, NULL, 0, 0, NULL, &res, &err) < 0) {
		out = dcr_asprintf("error: %s", err.msg);
	} else {
		const char *s = dcr_buf_cstr(&res.csv) + strlen("v\r\n");
		out = dcr_strndup(s, strcspn(s, "\r"));
	}
	cmp_result_release(&res);
	free(q);
	return out;
}

static unsigned long_chars; /* trim sets refused for a character past 4 bytes */

static void same(sqlite3 *db, const char *e)
{
	char *a = builtin(db, e), *b = ours(e);

	if (strncmp(e, "trim", 4) != 0 && strncmp(e, "ltrim", 5) != 0 &&
	    strncmp(e, "rtrim", 5) != 0 && strstr(b, "more than 4 bytes"))
		CHECK(!"only trim refuses long characters", "%s", e);
	if (strstr(b, "more than 4 bytes")) /* the one difference, by design */
		long_chars++;
	else
		CHECK(strcmp(a, b) == 0, "%s: SQLite %s, ours %s", e, a, b);
	free(a);
	free(b);
}

/* A literal of random bytes from an alphabet that matches often and
 * breaks UTF-8: a, b, é (c3 a9), a lone continuation byte, a lone lead. */
static char *rand_lit(unsigned *seed, bool blob)
{
	static const char *const alpha[] = {"61", "62", "C3A9", "80", "C3", "61", "62"};
	size_t n = (size_t)(rand_r(seed) % 9);
	dcr_buf b;

	dcr_buf_init(&b);
	dcr_buf_append_str(&b, blob ? "x'" : "CAST(x'");
	for (size_t i = 0; i < n; i++)
		dcr_buf_append_str(&b, alpha[rand_r(seed) % 7]);
	dcr_buf_append_str(&b, blob ? "'" : "' AS TEXT)");
	return dcr_buf_cstr(&b);
}

int main(void)
{
	static const char *const vals[] = {
	    "NULL",  "''",    "'a'",     "'abc'",   "'aaa'",     "'abcabc'", "'é'",
	    "'aéb'", "'éé'",  "12",      "1.5",     "x''",       "x'00'",    "x'610062'",
	    "'b'",   "'ab'",  "' a b '", "'  '",    "x'C3A9'",   "CAST(x'61C3A9C3' AS TEXT)",
	    "CAST(x'80' AS TEXT)", "CAST(x'0061' AS TEXT)", "'xyx'", "'yx'",
	};
	const size_t nv = sizeof vals / sizeof vals[0];
	sqlite3 *db = NULL;
	unsigned seed = 14;
	char *e;

	/* cmp_sql_run first: it installs its allocator before SQLite starts */
	free(ours("1"));
	CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK);
	for (size_t i = 0; i < nv; i++) {
		e = dcr_asprintf("trim(%s)", vals[i]);
		same(db, e);
		free(e);
		e = dcr_asprintf("ltrim(%s)", vals[i]);
		same(db, e);
		free(e);
		e = dcr_asprintf("rtrim(%s)", vals[i]);
		same(db, e);
		free(e);
		for (size_t j = 0; j < nv; j++) {
			static const char *const fns[] = {"instr", "trim", "ltrim", "rtrim"};
			for (size_t f = 0; f < 4; f++) {
				e = dcr_asprintf("%s(%s, %s)", fns[f], vals[i], vals[j]);
				same(db, e);
				free(e);
			}
			for (size_t k = 0; k < nv; k += 3) {
				e = dcr_asprintf("replace(%s, %s, %s)", vals[i], vals[j], vals[k]);
				same(db, e);
				free(e);
			}
		}
	}
	for (int i = 0; i < 5000 && t_failures == 0; i++) {
		bool blob = rand_r(&seed) % 4 == 0;
		char *x = rand_lit(&seed, blob), *y = rand_lit(&seed, rand_r(&seed) % 4 == 0);
		char *z = rand_lit(&seed, false);
		static const char *const fns[] = {"instr", "trim", "ltrim", "rtrim"};
		size_t f = (size_t)(i % 5);
		e = f == 4 ? dcr_asprintf("replace(%s, %s, %s)", x, y, z)
		           : dcr_asprintf("%s(%s, %s)", fns[f], x, y);
		same(db, e);
		free(e);
		free(x);
		free(y);
		free(z);
	}
	sqlite3_close(db);
	/* most random sets are UTF-8 enough to be compared */
	CHECK(long_chars < 500, "%u sets with long characters", long_chars);

	/* a trim set (of more than 8 bytes: smaller ones are tried one by one,
	 * as SQLite does) with a "character" past 4 bytes (not UTF-8): refused */
	e = ours("trim('a', CAST(x'C38080808061626364656667' AS TEXT))");
	CHECK(strstr(e, "more than 4 bytes") != NULL, "%s", e);
	free(e);

	/* Linear: what took SQLite |s| x |t| comparisons (hours here; 6.5 s
	 * for a 1 MiB string and a 512 KiB needle). */
	{
		uint64_t bound = getenv("DCR_SANITIZED") ? 60000 : 20000, t0 = dcr_mono_ms(), ms;
		cmp_result res;
		dcr_err err;
		int rc;

		cmp_result_init(&res);
		/* one value a row: a row may not pass the length limit either */
		rc = cmp_sql_run("WITH s(v) AS MATERIALIZED (SELECT "
		                 "replace(hex(zeroblob(2097000)), '0', 'a')), "
		                 "n(w) AS MATERIALIZED (SELECT "
		                 "replace(hex(zeroblob(1048576)), '0', 'a') || 'b'), "
		                 "m(y) AS MATERIALIZED (SELECT "
		                 "replace(hex(zeroblob(1048576)), '0', 'b') || 'a') "
		                 "SELECT instr(v, w) AS i, length(replace(v, w, '')) AS r, "
		                 "length(trim(v, y)) AS t FROM s, n, m",
		                 NULL, 0, 0, NULL, &res, &err);
		ms = dcr_mono_ms() - t0;
		CHECK_OK(rc, &err);
		CHECK(strcmp(dcr_buf_cstr(&res.csv), "i,r,t\r\n0,4194000,0\r\n") == 0, "%s",
		      dcr_buf_cstr(&res.csv));
		CHECK(ms < bound, "the 4 MiB searches took %llu ms", (unsigned long long)ms);
		fprintf(stderr, "4 MiB instr, replace, trim: %llu ms\n", (unsigned long long)ms);
		cmp_result_release(&res);
	}

	/* The watchdog: every row costs a LIKE over a 4 MiB string (a few VM
	 * steps each); the query stops near its 500 ms limit, not rows later. */
	{
		uint64_t lim_ms = 500, slack = getenv("DCR_SANITIZED") ? 6000 : 2500;
		cmp_sql_limits lim = {.time_ms = lim_ms};
		cmp_result res;
		dcr_err err;
		uint64_t t0 = dcr_mono_ms(), ms;
		int rc;

		cmp_result_init(&res);
		rc = cmp_sql_run("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
		                 "WHERE x < 100000000) SELECT COUNT(*) AS n FROM c WHERE "
		                 "(replace(hex(zeroblob(2000000)), '0', 'a') || x) LIKE "
		                 "'%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%a%b'",
		                 NULL, 0, 0, &lim, &res, &err);
		ms = dcr_mono_ms() - t0;
		fprintf(stderr, "expensive steps under a %llu ms limit: stopped after %llu ms\n",
		        (unsigned long long)lim_ms, (unsigned long long)ms);
		CHECK_ERR(rc, DCR_ETIMEOUT, &err, "time limit of 500 ms");
		CHECK(ms >= lim_ms && ms < lim_ms + slack, "%llu ms", (unsigned long long)ms);
		cmp_result_release(&res);
	}
	return t_failures ? 1 : 0;
}
