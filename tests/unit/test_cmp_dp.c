/* test_cmp_dp.c: differentially private aggregates (compute/cmp_dp.c).
 *
 * The mechanism (cmp_dp_noise) against its calibration: over many draws the
 * noisy count, sum and average centre on the exact values with the variance
 * of the discrete Laplace of scale sensitivity * shares / epsilon, and a
 * wrong scale (the sensitivity forgotten) is told apart. The query path
 * (cmp_dp_run) on a real table: clamping to the bounds, the grid of the
 * bounds' decimals, NULLs, WHERE, names and types, and refusals of shapes
 * whose sensitivity is unknown. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../compute/compute.h"

static int failures;

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);      \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

/* Variance of Lap_Z(b): 2q / (1 - q)^2, q = exp(-1/b). */
static double dlap_var(double b)
{
	double q = exp(-1 / b);
	return 2 * q / ((1 - q) * (1 - q));
}

#define N 200000

/* Draws N releases of aggs[0..n) and checks aggregate k's mean and
 * variance against scale b (in the released unit: steps). Returns whether
 * the variance matched within 5%. */
static bool calibrated(uint64_t eps, const cmp_dp_agg *aggs, size_t n, const cmp_dp_exact *ex,
                       size_t k, double b, uint64_t seed)
{
	cmp_rng r;
	cmp_dp_value v[8];
	dcr_err err;
	double s = 0, s2 = 0, exact = aggs[k].fn == CMP_DP_COUNT ? (double)ex[k].count
	                                                         : (double)ex[k].sum;
	cmp__rng_init_test(&r, seed);
	for (int i = 0; i < N; i++) {
		if (cmp_dp_noise(&r, eps, aggs, n, ex, v, &err)) {
			fprintf(stderr, "cmp_dp_noise: %s\n", err.msg);
			failures++;
			return false;
		}
		double x = (double)v[k].i - exact;
		s += x;
		s2 += x * x;
	}
	cmp_rng_release(&r);
	double mean = s / N, var = s2 / N - mean * mean, want = dlap_var(b);
	printf("aggregate %zu of %zu, epsilon %llu/10^6: noise mean %+.4f, variance %.2f "
	       "(scale %.2f: %.2f)\n",
	       k, n, (unsigned long long)eps, mean, var, b, want);
	CHECK(fabs(mean) < 6 * sqrt(want / N) + 1e-9);
	return fabs(var - want) < 0.05 * want;
}

static void test_mechanism(void)
{
	cmp_dp_agg count = {CMP_DP_COUNT, 0, 0, 0};
	cmp_dp_agg sum = {CMP_DP_SUM, -20, 50, 0}; /* sensitivity 50 */
	cmp_dp_exact ex[2] = {{1000, 0}, {0, 12345}};
	/* count alone, epsilon 1: scale 1 */
	CHECK(calibrated(1000000, &count, 1, ex, 0, 1.0, 1));
	/* count alone, epsilon 0.25: scale 4 */
	CHECK(calibrated(250000, &count, 1, ex, 0, 4.0, 2));
	/* count and sum share epsilon 2: scale 2 * 1/2 = 1 and 2 * 50/2 = 50 */
	cmp_dp_agg two[2] = {count, sum};
	CHECK(calibrated(2000000, two, 2, ex, 0, 1.0, 3));
	CHECK(calibrated(2000000, two, 2, ex, 1, 50.0, 4));
	/* negative: the same draws do not fit a scale that forgot the shares */
	CHECK(!calibrated(2000000, two, 2, ex, 1, 25.0, 4));

	/* a count is never negative, an average stays within the bounds */
	cmp_rng r;
	cmp_dp_value v[1];
	dcr_err err;
	cmp__rng_init_test(&r, 5);
	cmp_dp_exact zero = {0, 0};
	cmp_dp_agg avg = {CMP_DP_AVG, 0, 10000, 2}; /* [0, 100.00] */
	cmp_dp_exact few = {2, 19999};              /* two values, 199.99 in steps */
	bool neg = false, out = false;
	for (int i = 0; i < 2000; i++) {
		CHECK(cmp_dp_noise(&r, 100000, &count, 1, &zero, v, &err) == 0);
		neg |= v[0].i < 0;
		CHECK(cmp_dp_noise(&r, 100000, &avg, 1, &few, v, &err) == 0);
		out |= v[0].d < 0 || v[0].d > 100.0;
	}
	CHECK(!neg && !out);
	/* types and literals */
	/* (scale 1/100 or 2/100: noise 0 except with probability < 1e-40) */
	cmp_dp_agg s2 = {CMP_DP_SUM, 0, 1, 2}, a2 = {CMP_DP_AVG, 0, 1, 0};
	cmp_dp_exact e2 = {0, -5}, e3 = {2, 1};
	CHECK(cmp_dp_noise(&r, 100000000, &s2, 1, &e2, v, &err) == 0);
	CHECK(v[0].type == CMP_FLOAT && strcmp(v[0].text, "-0.05") == 0);
	CHECK(cmp_dp_noise(&r, 100000000, &a2, 1, &e3, v, &err) == 0);
	CHECK(v[0].type == CMP_FLOAT && strcmp(v[0].text, "0.5") == 0);
	CHECK(cmp_dp_noise(&r, 100000000, &count, 1, &ex[0], v, &err) == 0);
	CHECK(v[0].type == CMP_INTEGER && v[0].i == 1000 && strcmp(v[0].text, "1000") == 0);
	/* out of the sampler's range: refused, not approximated */
	cmp_dp_agg wide = {CMP_DP_SUM, 0, 1000000000000ll, 0};
	CHECK(cmp_dp_noise(&r, 1, &wide, 1, &e2, v, &err) == DCR_EINVALID);
	CHECK(strstr(err.msg, "beyond the sampler's range") != NULL);
	cmp_rng_release(&r);
}

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

static const cmp_column cols[] = {{"city", CMP_STRING, CMP_FMT_NONE, true},
                                  {"balance", CMP_FLOAT, CMP_FMT_NONE, true},
                                  {"age", CMP_INTEGER, CMP_FMT_NONE, true}};
static cmp_input in;
static dcr_buf img;
static const cmp_dp_bound bounds[] = {{"balance", -1000, 100000, 2}, /* [-10.00, 1000.00] */
                                      {"age", 0, 100, 0}};

/* The exact aggregates the rewrite computes (clamped, on the grid), then a
 * noisy run whose names and types match cmp_dp_check's schema. */
static void expect_exact(const char *q, const char *exact_csv)
{
	cmp_rng r;
	cmp_result res;
	dcr_err err;
	dcr_buf eq;
	cmp__rng_init_test(&r, 7);
	cmp_dp dp = {1000000, bounds, 2, &r};
	dcr_buf_init(&eq);
	cmp_result_init(&res);
	int rc = cmp__dp_exact_query(q, &in, 1, &dp, &eq, &err);
	if (!rc)
		rc = cmp_sql_run(dcr_buf_cstr(&eq), &in, 1, 0, NULL, &res, &err);
	if (rc || strcmp(dcr_buf_cstr(&res.csv), exact_csv) != 0) {
		fprintf(stderr, "%s\n  want %s  got %s (%s)\n", q, exact_csv,
		        dcr_buf_cstr(&res.csv), rc ? err.msg : "ok");
		failures++;
	}
	cmp_result_release(&res);
	cmp_result_init(&res);
	CHECK(cmp_dp_run(q, &in, 1, &dp, NULL, &res, &err) == 0);
	CHECK(res.rows == 1);
	cmp_result chk;
	cmp_result_init(&chk);
	CHECK(cmp_dp_check(q, &in, 1, &dp, &chk, &err) == 0);
	CHECK(chk.ncols == res.ncols);
	for (size_t i = 0; i < chk.ncols && i < res.ncols; i++)
		CHECK(strcmp(chk.cols[i].name, res.cols[i].name) == 0 &&
		      chk.cols[i].type == res.cols[i].type);
	cmp_result_release(&chk);
	cmp_result_release(&res);
	cmp_rng_release(&r);
	dcr_buf_release(&eq);
}

static void reject(const char *q, const char *why)
{
	cmp_dp dp = {1000000, bounds, 2, NULL};
	dcr_err err;
	dcr_err_clear(&err);
	int rc = cmp_dp_check(q, &in, 1, &dp, NULL, &err);
	if (rc == 0 || !strstr(err.msg, why)) {
		fprintf(stderr, "%s\n  want rejection \"%s\", got \"%s\"\n", q, why, err.msg);
		failures++;
	}
	cmp_result res;
	cmp_result_init(&res);
	CHECK(cmp_dp_run(q, &in, 1, &dp, NULL, &res, &err) != 0);
	cmp_result_release(&res);
}

static void test_queries(void)
{
	const char *csv = "city,balance,age\n"
	                  "Bern,10.004,30\n"   /* rounds to 10.00 */
	                  "Bern,5000,40\n"     /* clamped to 1000.00 */
	                  "Bern,-50.5,200\n"   /* clamped to -10.00; age to 100 */
	                  "Basel,1.256,\n"     /* rounds to 1.26; age NULL */
	                  "Basel,,20\n";       /* balance NULL */
	struct mem m = {csv, strlen(csv), 0};
	dcr_err err;
	dcr_buf_init(&img);
	DCR_ASSERT(cmp_prepare(&(cmp_schema){cols, 3}, "bank", mem_read, &m, &img, &err) == 0);
	in = (cmp_input){"bank", {cols, 3}, img.data, img.len, NULL};

	expect_exact("SELECT COUNT(*) FROM bank", "__dcr_c0,__dcr_s0\r\n5,0\r\n");
	expect_exact("SELECT COUNT(*) AS n, COUNT(age) n_age FROM bank b WHERE city = 'Bern'",
	             "__dcr_c0,__dcr_s0,__dcr_c1,__dcr_s1\r\n3,0,3,0\r\n");
	/* 1000.00 + 10.00 - 10.00 + 1.26 = 1001.26 */
	expect_exact("SELECT SUM(balance) AS s FROM bank", "__dcr_c0,__dcr_s0\r\n4,100126\r\n");
	/* 30 + 40 + 100 */
	expect_exact("select sum(age) as s, avg(age) as a from bank where city='Bern'",
	             "__dcr_c0,__dcr_s0,__dcr_c1,__dcr_s1\r\n3,170,3,170\r\n");
	expect_exact("SELECT AVG(b.balance) AS a FROM bank AS b WHERE b.city = 'Bern';",
	             "__dcr_c0,__dcr_s0\r\n3,100000\r\n");
	/* no rows: NULL sums read as 0 */
	expect_exact("SELECT COUNT(*) AS n, SUM(age) AS s FROM bank WHERE city = 'Zug'",
	             "__dcr_c0,__dcr_s0,__dcr_c1,__dcr_s1\r\n0,0,0,\r\n");

	reject("SELECT city, COUNT(*) FROM bank GROUP BY city", "\"city\" is not COUNT, SUM or AVG");
	reject("SELECT COUNT(*) FROM bank GROUP BY city", "\"GROUP\" after the FROM clause");
	reject("SELECT COUNT(*) FROM bank JOIN bank b2 USING (city)", "\"JOIN\" after the FROM");
	reject("SELECT COUNT(*) FROM bank WHERE age > (SELECT AVG(age) FROM bank)",
	       "may not contain a subquery");
	reject("SELECT COUNT(DISTINCT city) FROM bank", "must be a column name");
	reject("SELECT SUM(city) FROM bank", "SUM(city) needs declared bounds");
	reject("SELECT MIN(age) FROM bank", "\"MIN\" is not COUNT, SUM or AVG");
	reject("SELECT COUNT(*) FROM bank LIMIT 1", "\"LIMIT\" after the FROM clause");
	reject("SELECT COUNT(*) FROM bank WHERE 1 UNION SELECT 1", "may not contain UNION");
	reject("WITH x AS (SELECT 1) SELECT COUNT(*) FROM x", "must start with SELECT");
	reject("SELECT COUNT(*) FROM nosuch", "FROM nosuch: not a dataset of this room");
	reject("SELECT SUM(nosuch) FROM bank", "needs declared bounds");
	dcr_buf_release(&img);
}

/* The CSPRNG: two runs on the same data differ; seeded runs repeat. */
static void test_fresh_noise(void)
{
	cmp_dp dp = {1000000, bounds, 2, NULL};
	cmp_result a, b;
	dcr_err err;
	int differ = 0;
	const char *q = "SELECT SUM(balance) AS s, COUNT(*) AS n FROM bank";
	const char *csv = "city,balance,age\nBern,10,30\n";
	struct mem m = {csv, strlen(csv), 0};
	dcr_buf_init(&img);
	DCR_ASSERT(cmp_prepare(&(cmp_schema){cols, 3}, "bank", mem_read, &m, &img, &err) == 0);
	in = (cmp_input){"bank", {cols, 3}, img.data, img.len, NULL};
	for (int i = 0; i < 5; i++) {
		cmp_result_init(&a);
		cmp_result_init(&b);
		CHECK(cmp_dp_run(q, &in, 1, &dp, NULL, &a, &err) == 0);
		CHECK(cmp_dp_run(q, &in, 1, &dp, NULL, &b, &err) == 0);
		differ += strcmp(dcr_buf_cstr(&a.csv), dcr_buf_cstr(&b.csv)) != 0;
		cmp_result_release(&a);
		cmp_result_release(&b);
	}
	CHECK(differ >= 4); /* sum noise of scale 2000 steps: equal with p < 1e-3 */
	cmp_rng r1, r2;
	cmp__rng_init_test(&r1, 9);
	cmp__rng_init_test(&r2, 9);
	cmp_dp d1 = {1000000, bounds, 2, &r1}, d2 = {1000000, bounds, 2, &r2};
	cmp_result_init(&a);
	cmp_result_init(&b);
	CHECK(cmp_dp_run(q, &in, 1, &d1, NULL, &a, &err) == 0);
	CHECK(cmp_dp_run(q, &in, 1, &d2, NULL, &b, &err) == 0);
	CHECK(strcmp(dcr_buf_cstr(&a.csv), dcr_buf_cstr(&b.csv)) == 0);
	cmp_result_release(&a);
	cmp_result_release(&b);
	cmp_rng_release(&r1);
	cmp_rng_release(&r2);
	dcr_buf_release(&img);
}

int main(void)
{
	test_mechanism();
	test_queries();
	test_fresh_noise();
	if (failures) {
		fprintf(stderr, "%d failures\n", failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
