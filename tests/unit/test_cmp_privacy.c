/* test_cmp_privacy.c: the privacy filter (min_rows_aggregated = k = 5).
 * Table t has groups of exactly k-1 (A), k (B) and k+1 (C) rows, each row
 * a unique u. Table s joins on u: two rows for every u of A, and only three
 * of the six u of C. See docs/privacy.md for what is counted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../compute/compute.h"

#include "test.h"

#define K 5

struct mem {
	const char *p;
	size_t n, off;
};

static int mem_read(void *ctx, void *buf, size_t cap)
{
	struct mem *m = ctx;
	size_t k = m->n - m->off < cap ? m->n - m->off : cap;
	memcpy(buf, m->p + m->off, k);
	m->off += k;
	return (int)k;
}

static const cmp_column t_cols[] = {{"g", CMP_STRING, CMP_FMT_NONE, false},
                                    {"u", CMP_STRING, CMP_FMT_NONE, false},
                                    {"v", CMP_INTEGER, CMP_FMT_NONE, false}};
static const cmp_column s_cols[] = {{"u", CMP_STRING, CMP_FMT_NONE, false},
                                    {"w", CMP_INTEGER, CMP_FMT_NONE, false}};
static cmp_input inputs[2];
static dcr_buf img_t, img_s;

static void build(void)
{
	dcr_buf t, s;
	dcr_buf_init(&t);
	dcr_buf_init(&s);
	dcr_buf_append_str(&t, "g,u,v\n");
	dcr_buf_append_str(&s, "u,w\n");
	const char *groups = "ABC";
	int sizes[3] = {K - 1, K, K + 1};
	for (int g = 0; g < 3; g++)
		for (int i = 0; i < sizes[g]; i++) {
			dcr_buf_printf(&t, "%c,%c%d,%d\n", groups[g], groups[g], i, i + 1);
			if (g == 0) {
				dcr_buf_printf(&s, "%c%d,1\n%c%d,2\n", groups[g], i, groups[g], i);
			} else if (g == 1 || i < 3) {
				dcr_buf_printf(&s, "%c%d,3\n", groups[g], i);
			}
		}
	dcr_err err;
	struct mem m = {(const char *)t.data, t.len, 0};
	dcr_buf_init(&img_t);
	dcr_buf_init(&img_s);
	DCR_ASSERT(cmp_prepare(&(cmp_schema){t_cols, 3}, "t", mem_read, &m, &img_t, &err) == 0);
	m = (struct mem){(const char *)s.data, s.len, 0};
	DCR_ASSERT(cmp_prepare(&(cmp_schema){s_cols, 2}, "s", mem_read, &m, &img_s, &err) == 0);
	inputs[0] = (cmp_input){"t", {t_cols, 3}, img_t.data, img_t.len};
	inputs[1] = (cmp_input){"s", {s_cols, 2}, img_s.data, img_s.len};
	dcr_buf_release(&t);
	dcr_buf_release(&s);
}

static void expect(const char *q, const char *csv, uint64_t suppressed)
{
	cmp_result res;
	dcr_err err;
	cmp_result_init(&res);
	int rc = cmp_sql_run(q, inputs, 2, K, NULL, &res, &err);
	if (rc) {
		fprintf(stderr, "%s\n  error: %s\n", q, err.msg);
		t_failures++;
	} else if (strcmp(dcr_buf_cstr(&res.csv), csv) || res.suppressed != suppressed) {
		fprintf(stderr, "%s\n  want (%llu suppressed): %s\n  got  (%llu suppressed): %s\n",
		        q, (unsigned long long)suppressed, csv, (unsigned long long)res.suppressed,
		        dcr_buf_cstr(&res.csv));
		t_failures++;
	}
	/* cmp_sql_check agrees and gives the same visible schema. */
	cmp_result chk;
	cmp_result_init(&chk);
	rc = cmp_sql_check(q, inputs, 2, K, &chk, &err);
	CHECK(rc == 0);
	CHECK(rc || chk.ncols == res.ncols);
	for (size_t i = 0; !rc && i < chk.ncols && i < res.ncols; i++)
		CHECK(strcmp(chk.cols[i].name, res.cols[i].name) == 0);
	cmp_result_release(&chk);
	cmp_result_release(&res);
}

static void reject(const char *q, const char *why)
{
	dcr_err err;
	dcr_err_clear(&err);
	int rc = cmp_sql_check(q, inputs, 2, K, NULL, &err);
	if (rc != DCR_ESQL || !strstr(err.msg, why)) {
		fprintf(stderr, "%s\n  want rejection \"%s\"\n  got %d \"%s\"\n", q, why, rc,
		        err.msg);
		t_failures++;
	}
	cmp_result res;
	cmp_result_init(&res);
	CHECK(cmp_sql_run(q, inputs, 2, K, NULL, &res, &err) == DCR_ESQL);
	cmp_result_release(&res);
	/* Without the filter, the same query is fine. */
	CHECK(cmp_sql_check(q, inputs, 2, 0, NULL, &err) == 0);
}

static uint64_t rng = 42;
static unsigned pick(unsigned n)
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return (unsigned)((rng >> 33) % n);
}

/* One random arm: select list, FROM, WHERE, GROUP BY, from small menus. */
static void gen_arm(char *q, size_t cap, size_t *len)
{
	static const char *const items[] = {"g",
	                                    "COUNT(*)",
	                                    "SUM(v)",
	                                    "MAX(u)",
	                                    "'x'",
	                                    "(SELECT COUNT(*) FROM s)",
	                                    "g IS DISTINCT FROM 'A'",
	                                    "AVG(v) + 1",
	                                    "u",
	                                    "max(u, g)"};
	static const char *const froms[] = {"t", "t JOIN s USING (u)",
	                                    "(SELECT g, u, v FROM t WHERE v > 1)",
	                                    "(SELECT u AS g, COUNT(*) AS v, u FROM t GROUP BY u)",
	                                    "t, (SELECT COUNT(*) AS c FROM s)"};
	*len += (size_t)snprintf(q + *len, cap - *len, "SELECT %s%s", pick(4) ? "" : "DISTINCT ",
	                         items[pick(10)]);
	for (unsigned i = pick(3); i > 0; i--)
		*len += (size_t)snprintf(q + *len, cap - *len, ", %s", items[pick(10)]);
	*len += (size_t)snprintf(q + *len, cap - *len, " FROM %s", froms[pick(5)]);
	if (!pick(3))
		*len += (size_t)snprintf(q + *len, cap - *len, " WHERE v > %u", pick(4));
	if (pick(2))
		*len += (size_t)snprintf(q + *len, cap - *len, " GROUP BY %s", pick(3) ? "g" : "u");
}

/* Random queries from a small grammar: with the filter, a query is either
 * refused with DCR_ESQL or runs, and then (without DISTINCT, UNION or
 * LIMIT) its visible rows plus the suppressed ones are exactly the rows of
 * the same query without the filter. Never a crash or a leak (ASan). */
static void test_random(void)
{
	int accepted = 0, checked = 0;
	for (int iter = 0; iter < 300; iter++) {
		char q[1024];
		size_t len = 0;
		gen_arm(q, sizeof(q), &len);
		unsigned comp = pick(4);
		if (comp == 1 || comp == 2) {
			len += (size_t)snprintf(q + len, sizeof(q) - len, " UNION%s ",
			                        comp == 1 ? " ALL" : "");
			gen_arm(q, sizeof(q), &len);
		}
		bool limit = !pick(5);
		if (limit)
			len += (size_t)snprintf(q + len, sizeof(q) - len, " LIMIT 2");
		dcr_err err;
		int rc = cmp_sql_check(q, inputs, 2, K, NULL, &err);
		CHECK(rc == 0 || rc == DCR_ESQL);
		if (rc)
			continue;
		accepted++;
		cmp_result with, without;
		cmp_result_init(&with);
		cmp_result_init(&without);
		int r1 = cmp_sql_run(q, inputs, 2, K, NULL, &with, &err);
		int r2 = cmp_sql_run(q, inputs, 2, 0, NULL, &without, &err);
		CHECK(r1 == 0 && r2 == 0);
		if (!r1 && !r2 && !strstr(q, "DISTINCT ") && !strstr(q, "UNION ") && !limit) {
			checked++;
			if (with.rows + with.suppressed != without.rows) {
				fprintf(stderr, "%s\n  %llu + %llu suppressed != %llu\n", q,
				        (unsigned long long)with.rows,
				        (unsigned long long)with.suppressed,
				        (unsigned long long)without.rows);
				t_failures++;
			}
		}
		cmp_result_release(&with);
		cmp_result_release(&without);
	}
	CHECK(accepted > 30 && checked > 10);
	fprintf(stderr, "random queries: %d accepted with the filter, %d checked\n", accepted,
	        checked);
}

int main(void)
{
	build();
	test_random();
	/* Groups of k-1, k, k+1 rows. */
	expect("SELECT g, COUNT(*) AS n FROM t GROUP BY g ORDER BY g", "g,n\r\nB,5\r\nC,6\r\n", 1);
	expect("SELECT g, SUM(v) FROM t GROUP BY g ORDER BY 2 DESC", "g,SUM(v)\r\nC,21\r\nB,15\r\n",
	       1);
	expect("SELECT COUNT(*) FROM t WHERE g = 'A'", "COUNT(*)\r\n", 1);
	expect("SELECT COUNT(*) FROM t WHERE g = 'B'", "COUNT(*)\r\n5\r\n", 0);
	expect("SELECT g, COUNT(*) FROM t GROUP BY g HAVING COUNT(*) < 6", "g,COUNT(*)\r\nB,5\r\n",
	       1);
	/* WHERE runs before the count: C restricted to 4 rows is dropped. */
	expect("SELECT g, AVG(v) FROM t WHERE v <= 4 GROUP BY g", "g,AVG(v)\r\n", 3);
	/* Joins: rows are counted after the join. A's 4 rows match twice
	 * (8 joined rows), C keeps only 3. */
	expect("SELECT t.g, COUNT(*) FROM t JOIN s ON t.u = s.u GROUP BY t.g ORDER BY 1",
	       "g,COUNT(*)\r\nA,8\r\nB,5\r\n", 1);
	expect("SELECT t.g, COUNT(DISTINCT t.u) AS people FROM t JOIN s USING (u) GROUP BY t.g "
	       "ORDER BY 1",
	       "g,people\r\nA,4\r\nB,5\r\n", 1);
	/* Smuggling attempts through subqueries. Each output row counts the
	 * rows of the outermost FROM. */
	expect("SELECT u, COUNT(*) FROM (SELECT u FROM t GROUP BY u) GROUP BY u", "u,COUNT(*)\r\n",
	       15);
	expect("SELECT x, COUNT(*) FROM (SELECT g || u AS x FROM t) GROUP BY x", "x,COUNT(*)\r\n",
	       15);
	expect("SELECT n, COUNT(*) FROM (SELECT g, COUNT(*) AS n FROM t GROUP BY g) GROUP BY n",
	       "n,COUNT(*)\r\n", 3);
	expect("SELECT g, COUNT(*) FROM t WHERE u IN (SELECT u FROM s GROUP BY u HAVING "
	       "COUNT(*) = 1) GROUP BY g ORDER BY g",
	       "g,COUNT(*)\r\nB,5\r\n", 1);
	reject("SELECT u, c FROM (SELECT u, COUNT(*) AS c FROM t GROUP BY u)",
	       "the outermost SELECT must aggregate");
	reject("SELECT * FROM t", "the outermost SELECT must aggregate");
	reject("SELECT u FROM t WHERE v IN (SELECT MAX(v) FROM t)",
	       "the outermost SELECT must aggregate");
	reject("SELECT max(u, '') FROM t", "the outermost SELECT must aggregate");
	reject("SELECT (SELECT COUNT(*) FROM s), u FROM t", "the outermost SELECT must aggregate");
	reject("SELECT u, COUNT(*) OVER () FROM t", "window functions");
	reject("SELECT g, COUNT(*) FROM t GROUP BY g UNION ALL SELECT u, 1 FROM t",
	       "the outermost SELECT must aggregate");
	reject(
	    "SELECT g, COUNT(*) FROM t GROUP BY g INTERSECT SELECT g, COUNT(*) FROM t GROUP BY g",
	    "INTERSECT and EXCEPT");
	reject(
	    "SELECT g FROM t GROUP BY g UNION SELECT g FROM t GROUP BY g UNION ALL SELECT g FROM "
	    "t GROUP BY g",
	    "mixing UNION and UNION ALL");
	reject("VALUES (1)", "VALUES");
	reject("SELECT COUNT(*) FROM t UNION ALL VALUES (1)", "VALUES");
	reject("WITH x AS (SELECT COUNT(*) AS n FROM t) SELECT n FROM x",
	       "the outermost SELECT must aggregate");
	/* UNION ALL and UNION: the filter applies to every arm; UNION and
	 * DISTINCT still remove duplicates of the visible columns. */
	expect("SELECT g, COUNT(*) FROM t GROUP BY g UNION ALL SELECT 'all', COUNT(*) FROM t",
	       "g,COUNT(*)\r\nB,5\r\nC,6\r\nall,15\r\n", 1);
	expect("SELECT g FROM t GROUP BY g UNION SELECT g FROM t WHERE v > 1 GROUP BY g ORDER BY 1",
	       "g\r\nB\r\nC\r\n", 3);
	expect("SELECT DISTINCT COUNT(*) > 0 AS big FROM t GROUP BY g", "big\r\n1\r\n", 1);
	/* Structure words inside strings, identifiers and operators. */
	expect("SELECT 'FROM x GROUP BY' AS \"FROM\", COUNT(*) FROM t WHERE g <> 'UNION'",
	       "FROM,COUNT(*)\r\nFROM x GROUP BY,15\r\n", 0);
	expect("SELECT g IS NOT DISTINCT FROM 'A' AS is_a, COUNT(*) FROM t GROUP BY 1 ORDER BY 1",
	       "is_a,COUNT(*)\r\n0,11\r\n", 1);
	expect("WITH x AS (SELECT * FROM t WHERE v > 0) SELECT g, COUNT(*) FROM x GROUP BY g "
	       "ORDER BY g LIMIT 5",
	       "g,COUNT(*)\r\nB,5\r\nC,6\r\n", 1);
	/* LIMIT applies before the filter (docs/privacy.md). */
	expect("SELECT g, COUNT(*) FROM t GROUP BY g ORDER BY g LIMIT 2", "g,COUNT(*)\r\nB,5\r\n",
	       1);
	/* Aggregates inside expressions count; the hidden column never shows. */
	expect("SELECT COALESCE(SUM(v), 0) + 1 AS s FROM t", "s\r\n47\r\n", 0);
	/* Non-aggregating queries pass without the filter (k = 0). */
	cmp_result res;
	dcr_err err;
	cmp_result_init(&res);
	CHECK(cmp_sql_run("SELECT u FROM t WHERE g = 'A' ORDER BY u", inputs, 2, 0, NULL, &res,
	                  &err) == 0);
	CHECK(res.rows == 4 && res.suppressed == 0);
	cmp_result_release(&res);
	dcr_buf_release(&img_t);
	dcr_buf_release(&img_s);
	if (t_failures) {
		fprintf(stderr, "%d failures\n", t_failures);
		return 1;
	}
	return 0;
}
