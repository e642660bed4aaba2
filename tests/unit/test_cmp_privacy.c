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
	inputs[0] = (cmp_input){"t", {t_cols, 3}, img_t.data, img_t.len, NULL};
	inputs[1] = (cmp_input){"s", {s_cols, 2}, img_s.data, img_s.len, NULL};
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
	if (rc != DCR_EDENIED || !strstr(err.msg, why)) {
		fprintf(stderr, "%s\n  want rejection \"%s\"\n  got %d \"%s\"\n", q, why, rc,
		        err.msg);
		t_failures++;
	}
	cmp_result res;
	cmp_result_init(&res);
	CHECK(cmp_sql_run(q, inputs, 2, K, NULL, &res, &err) == DCR_EDENIED);
	cmp_result_release(&res);
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
	static const char *const froms[] = {"t", "t JOIN s USING (u)", "t CROSS JOIN s",
	                                    "t JOIN s ON t.u = s.u",
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
 * refused (DCR_EDENIED by the subset, DCR_ESQL by SQLite) or runs, and then (without DISTINCT, UNION or
 * LIMIT) its visible rows plus the suppressed ones are exactly the rows of
 * the same query without the filter. Never a crash or a leak (ASan). */
static void test_random(void)
{
	int accepted = 0, checked = 0;
	for (int iter = 0; iter < 600; iter++) {
		char q[1024];
		size_t len = 0;
		gen_arm(q, sizeof(q), &len);
		unsigned comp = pick(8);
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
		CHECK(rc == 0 || rc == DCR_EDENIED || rc == DCR_ESQL);
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
	CHECK(accepted > 50 && checked > 20);
	fprintf(stderr, "random queries: %d accepted with the filter, %d checked\n", accepted,
	        checked);
}

/* Units: t and s declare u as the column naming a person. */
static void test_units(void)
{
	static const cmp_pcol tp[] = {{"g", CMP_ALLOW_GROUP},
	                              {"u", CMP_ALLOW_JOIN},
	                              {"v", CMP_ALLOW_AGGREGATE}};
	static const cmp_pcol sp[] = {{"u", CMP_ALLOW_JOIN}, {"w", CMP_ALLOW_GROUP}};
	static const char *const unit[] = {"u"};
	cmp_psource pt = {"t", CMP_PSRC_TABLE, tp, 3, unit, 1, NULL};
	cmp_psource ps = {"s", CMP_PSRC_TABLE, sp, 2, unit, 1, NULL};
	inputs[0].priv = &pt;
	inputs[1].priv = &ps;
	/* s has 16 rows of 12 people: A's people appear twice. Grouped by w,
	 * w=1 and w=2 hold A's 4 people only (dropped); w=3 holds B's 5 and
	 * C's 3 (8 people, kept). Row counting would keep w=1 (4 rows) only
	 * if it had k rows; units count people. */
	expect("SELECT s.w, COUNT(*) FROM t JOIN s ON t.u = s.u GROUP BY s.w ORDER BY 1",
	       "w,COUNT(*)\r\n3,8\r\n", 2);
	expect("SELECT t.g, SUM(t.v) FROM t JOIN s ON t.u = s.u GROUP BY t.g ORDER BY 1",
	       "g,SUM(t.v)\r\nB,15\r\n", 2);
	/* permissions */
	reject("SELECT u, COUNT(*) FROM t GROUP BY u", "column t.u may not be used outside");
	reject("SELECT g, SUM(g) FROM t GROUP BY g", "column t.g may not be used in SUM()");
	reject("SELECT g, MAX(v) FROM t GROUP BY g", "column t.v may not be used in MAX()");
	reject("SELECT t.g, COUNT(*) FROM t JOIN s ON t.v = s.u GROUP BY t.g",
	       "column t.v may not be used in a join constraint");
	reject("SELECT g, COUNT(*) FROM t WHERE v > 3 GROUP BY g",
	       "column t.v may not be used outside an aggregate");
	inputs[0].priv = NULL;
	inputs[1].priv = NULL;
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
	/* Joins: every table's distinct rows are counted, not joined rows. A's
	 * 4 rows match twice (8 joined rows) and are still 4; C keeps 3. */
	expect("SELECT t.g, COUNT(*) FROM t JOIN s ON t.u = s.u GROUP BY t.g ORDER BY 1",
	       "g,COUNT(*)\r\nB,5\r\n", 2);
	expect("SELECT t.g, COUNT(DISTINCT t.u) AS people FROM t JOIN s USING (u) GROUP BY t.g "
	       "ORDER BY 1",
	       "g,people\r\nB,5\r\n", 2);
	/* A cross join multiplies rows, not people: A (4 rows) stays out. */
	expect("SELECT t.g, COUNT(*) FROM t CROSS JOIN s GROUP BY t.g ORDER BY 1",
	       "g,COUNT(*)\r\nB,80\r\nC,96\r\n", 1);
	expect("SELECT t.g, COUNT(*) FROM t, s GROUP BY t.g ORDER BY 1",
	       "g,COUNT(*)\r\nB,80\r\nC,96\r\n", 1);
	/* Outside the subset (docs/privacy.md, "The filtered subset"). */
	reject("SELECT u, COUNT(*) FROM (SELECT u FROM t GROUP BY u) GROUP BY u",
	       "subqueries are not allowed in FROM");
	reject("SELECT g, COUNT(*) FROM t WHERE u IN (SELECT u FROM s) GROUP BY g",
	       "subqueries are not allowed");
	reject("SELECT * FROM t", "SELECT * is not allowed");
	reject("SELECT u FROM t", "must aggregate");
	reject("SELECT max(u, '') FROM t", "must aggregate");
	reject("SELECT (SELECT COUNT(*) FROM s), COUNT(*) FROM t", "subqueries are not allowed");
	reject("SELECT u, COUNT(*) OVER () FROM t", "window functions");
	reject("SELECT u, COUNT(*) FROM t", "column t.u in the select list is neither aggregated");
	reject("SELECT g, v, COUNT(*) FROM t GROUP BY g", "column t.v in the select list");
	/* v / 10 is the key, not v: v beside it would show one row's value */
	reject("SELECT v, COUNT(*) FROM t GROUP BY v / 10", "column t.v in the select list");
	expect("SELECT v / 10 AS d, COUNT(*) FROM t GROUP BY v / 10", "d,COUNT(*)\r\n0,15\r\n", 0);
	expect("SELECT t.g, COUNT(*) FROM t GROUP BY t.g ORDER BY t.g", "g,COUNT(*)\r\nB,5\r\nC,6\r\n",
	       1);
	reject("SELECT g, COUNT(*) FROM t GROUP BY g HAVING v > 1", "column t.v in HAVING");
	reject("SELECT g, COUNT(*) FROM t GROUP BY g ORDER BY u", "column t.u in ORDER BY");
	reject("SELECT g, COUNT(*) FROM t GROUP BY g UNION ALL SELECT g, 1 FROM t GROUP BY g",
	       "compound queries");
	reject("SELECT g, COUNT(*) FROM t GROUP BY g INTERSECT SELECT g, 1 FROM t GROUP BY g",
	       "compound queries");
	reject("VALUES (1)", "VALUES");
	reject("WITH x AS (SELECT g FROM t) SELECT g, COUNT(*) FROM x GROUP BY g", "WITH");
	reject("SELECT t.g, COUNT(*) FROM t JOIN t AS t2 ON t.u = t2.u GROUP BY t.g",
	       "t is read twice");
	reject("SELECT t.g, COUNT(*) FROM t LEFT JOIN s ON t.u = s.u GROUP BY t.g",
	       "only inner joins");
	reject("SELECT g, group_concat(u) FROM t GROUP BY g", "group_concat() is not allowed");
	reject("SELECT g, json_group_array(u) FROM t GROUP BY g", "json_group_array() is not");
	reject("SELECT g, COUNT(*) FILTER (WHERE v > 1) FROM t GROUP BY g", "FILTER clause");
	reject("SELECT CAST(v AS max(5)) FROM t", "CAST takes one type name");
	reject("SELECT g, COUNT(*) FROM t WHERE json_extract('{}', g) IS NULL GROUP BY g",
	       "function json_extract() is not allowed");
	reject("SELECT g, COUNT(*) FROM t WHERE COUNT(*) > 1 GROUP BY g",
	       "aggregate COUNT() is not allowed in WHERE");
	reject("SELECT g, SUM(COUNT(*)) FROM t GROUP BY g", "the argument of SUM() must be one column");
	/* conditional aggregation is FILTER in disguise */
	reject("SELECT g, SUM(CASE WHEN v > 5 THEN v ELSE 0 END) FROM t GROUP BY g",
	       "the argument of SUM() must be one column");
	reject("SELECT g, SUM((CASE WHEN v > 5 THEN v END)) FROM t GROUP BY g",
	       "the argument of SUM() must be one column");
	reject("SELECT g, AVG(v * (u = 'C0')) FROM t GROUP BY g", "the argument of AVG() must be");
	reject("SELECT g, COUNT(DISTINCT v + 1) FROM t GROUP BY g", "the argument of COUNT()");
	reject("SELECT g, SUM((SELECT 1)) FROM t GROUP BY g", "subqueries are not allowed");
	expect("SELECT g, ROUND(AVG(t.v), 1) AS a, SUM(DISTINCT v) + COUNT(*) AS b FROM t GROUP BY g "
	       "ORDER BY g",
	       "g,a,b\r\nB,3.0,20\r\nC,3.5,27\r\n", 1);
	reject("SELECT g, COUNT(*) FROM t GROUP BY g LIMIT (SELECT 1)", "LIMIT takes a number");
	reject("SELECT g, COUNT(*) FROM json_each('[1]') GROUP BY g", "table-valued functions");
	reject("SELECT g, COUNT(*) FROM nope GROUP BY g", "nope is not a dataset or computation");
	reject("SELECT g, COUNT(*) FROM t GROUP BY g HAVING SUM(v) > ?", "parameters");
	/* DISTINCT still removes duplicates of the visible columns. */
	expect("SELECT DISTINCT COUNT(*) > 0 AS big FROM t GROUP BY g", "big\r\n1\r\n", 1);
	/* Structure words inside strings, identifiers and operators. */
	expect("SELECT 'FROM x GROUP BY' AS \"FROM\", COUNT(*) FROM t WHERE g <> 'UNION'",
	       "FROM,COUNT(*)\r\nFROM x GROUP BY,15\r\n", 0);
	expect("SELECT g IS NOT DISTINCT FROM 'A' AS is_a, COUNT(*) FROM t GROUP BY 1 ORDER BY 1",
	       "is_a,COUNT(*)\r\n0,11\r\n", 1);
	expect("SELECT CASE WHEN v > 3 THEN 'big' ELSE 'small' END AS size, COUNT(*) FROM t "
	       "GROUP BY 1 ORDER BY 1",
	       "size,COUNT(*)\r\nbig,6\r\nsmall,9\r\n", 0);
	expect("SELECT lower(g) AS lg, COUNT(*) FROM t GROUP BY lower(g) ORDER BY lg",
	       "lg,COUNT(*)\r\nb,5\r\nc,6\r\n", 1);
	/* LIMIT applies before the filter (docs/privacy.md). */
	expect("SELECT g, COUNT(*) FROM t GROUP BY g ORDER BY g LIMIT 2", "g,COUNT(*)\r\nB,5\r\n",
	       1);
	/* Aggregates inside expressions count; the hidden columns never show. */
	expect("SELECT COALESCE(SUM(v), 0) + 1 AS s FROM t", "s\r\n47\r\n", 0);
	test_units();
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
