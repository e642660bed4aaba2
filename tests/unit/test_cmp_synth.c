/* test_cmp_synth.c: synthetic tables (compute/cmp_synth.c). Accounting
 * vectors, every mask format (IBAN check digits), the 50-row minimum,
 * masked columns never parsed, every synthesised value inside its domain,
 * determinism under the test-only seeded generator and difference between
 * seeds, a correlation the tree keeps and independent marginals lose, the
 * exponential mechanism against its exact distribution, and the settings
 * refused. */
#include <math.h>

#include "test.h"

#include "../../compute/compute_synth.h"

typedef struct src {
	const dcr_buf *b;
	size_t at;
} src;

static int rd(void *ctx, void *buf, size_t cap)
{
	src *s = ctx;
	size_t n = s->b->len - s->at;
	if (n > cap)
		n = cap;
	memcpy(buf, s->b->data + s->at, n);
	s->at += n;
	return (int)n;
}

static const cmp_column cols[] = {
	{ "email", CMP_STRING, CMP_FMT_NONE, false },
	{ "city", CMP_STRING, CMP_FMT_NONE, true },
	{ "segment", CMP_STRING, CMP_FMT_NONE, false },
	{ "age", CMP_INTEGER, CMP_FMT_NONE, false },
	{ "balance", CMP_FLOAT, CMP_FMT_NONE, true },
	{ "code", CMP_INTEGER, CMP_FMT_NONE, false },
};
#define NCOLS 6
static const char *cities[] = { "Lyon", "Oslo", "Turin", "Porto" };

/* segment follows city (90%); age follows segment; code is never parsed
 * when masked (a non-number there proves it). */
static void make_table(dcr_buf *b, unsigned rows, bool bad_code)
{
	cmp_rng r;
	cmp__rng_init_test(&r, 99);
	dcr_buf_append_str(b, "email,city,segment,age,balance,code\n");
	for (unsigned i = 0; i < rows; i++) {
		unsigned c = (unsigned)cmp_rng_below(&r, 4);
		unsigned seg = cmp_rng_below(&r, 10) < 9 ? c : (unsigned)cmp_rng_below(&r, 4);
		bool null_city = cmp_rng_below(&r, 20) == 0;
		unsigned age = 20 + seg * 10 + (unsigned)cmp_rng_below(&r, 10);
		dcr_buf_printf(b, "user%u@corp.test,%s,s%u,%u,", i, null_city ? "" : cities[c], seg,
		               age);
		if (cmp_rng_below(&r, 10))
			dcr_buf_printf(b, "%u.%02u", (unsigned)cmp_rng_below(&r, 5000),
			               (unsigned)cmp_rng_below(&r, 100));
		if (bad_code)
			dcr_buf_append_str(b, ",secret\n");
		else
			dcr_buf_printf(b, ",%u\n", i);
	}
	cmp_rng_release(&r);
}

static int run(cmp_synth *s, const dcr_buf *in, cmp_result *res, dcr_buf *rep, dcr_err *err)
{
	src sr = { in, 0 };
	return cmp_synth_run(s, rd, &sr, res, rep, err);
}

/* Splits a CSV without quotes into lines of fields (test data has none). */
static size_t fields(char *line, char **f, size_t max)
{
	size_t n = 0;
	f[n++] = line;
	for (char *p = line; *p && n < max; p++)
		if (*p == ',') {
			*p = 0;
			f[n++] = p + 1;
		}
	return n;
}

static void test_rho(void)
{
	/* rho = (sqrt(ln(2/delta) + eps) - sqrt(ln(2/delta)))^2, delta = 1e-9 */
	static const double eps[] = { 0.1, 1, 3, 10 };
	static const double want[] = { 0.00011646116138554559, 0.011408460775246083,
		                       0.0982882943102368, 0.9550127922986635 };
	for (int i = 0; i < 4; i++)
		CHECK(fabs(cmp_synth_rho(eps[i]) - want[i]) < 1e-12 * (1 + want[i]),
		      "eps %g: rho %.17g", eps[i], cmp_synth_rho(eps[i]));
	CHECK(cmp_synth_rho(1) > cmp_synth_rho(0.5)); /* monotone */
}

static bool iban_valid(const char *s)
{
	size_t n = strlen(s);
	if (n != 22 || s[0] != 'D' || s[1] != 'E')
		return false;
	char re[64];
	snprintf(re, sizeof re, "%s%.4s", s + 4, s);
	unsigned rem = 0;
	for (char *p = re; *p; p++) {
		if (*p >= 'A' && *p <= 'Z')
			rem = (rem * 100 + (unsigned)(*p - 'A' + 10)) % 97;
		else if (*p >= '0' && *p <= '9')
			rem = (rem * 10 + (unsigned)(*p - '0')) % 97;
		else
			return false;
	}
	return rem == 1;
}

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static void test_masks(void)
{
	cmp_rng r;
	cmp__rng_init_test(&r, 5);
	dcr_buf b;
	dcr_buf_init(&b);
	for (int m = 1; m < CMP_MASK_COUNT; m++) {
		enum cmp_mask back;
		const char *name = cmp_mask_name((enum cmp_mask)m);
		CHECK(cmp_mask_parse(name, strlen(name), &back) && back == (enum cmp_mask)m);
		CHECK(cmp_mask_fits((enum cmp_mask)m, m == CMP_MASK_NUMBER ? CMP_INTEGER : CMP_STRING));
		CHECK(!cmp_mask_fits((enum cmp_mask)m, m == CMP_MASK_NUMBER ? CMP_STRING : CMP_FLOAT));
		for (int i = 0; i < 2000; i++) {
			dcr_buf_reset(&b);
			cmp__synth_mask_value(&r, (enum cmp_mask)m,
			                      m == CMP_MASK_NUMBER && i % 2 ? CMP_FLOAT : CMP_INTEGER, &b);
			const char *s = dcr_buf_cstr(&b);
			size_t n = b.len;
			bool ok = n > 0;
			int y, mo, d, hh, mi, ss;
			char tail;
			switch (m) {
			case CMP_MASK_IBAN:
				ok = iban_valid(s);
				break;
			case CMP_MASK_SSN:
				ok = n == 11 && s[0] == '9' && s[3] == '-' && s[6] == '-' &&
				     all_digits(s, 3) && all_digits(s + 4, 2) && all_digits(s + 7, 4);
				break;
			case CMP_MASK_POSTCODE:
				ok = n == 5 && all_digits(s, 5);
				break;
			case CMP_MASK_EMAIL:
				ok = n > 12 && strstr(s, "@example.com") == s + n - 12;
				break;
			case CMP_MASK_DATE:
				ok = n == 10 && sscanf(s, "%4d-%2d-%2d%c", &y, &mo, &d, &tail) == 3 &&
				     y >= 1950 && y <= 2029 && mo >= 1 && mo <= 12 && d >= 1 &&
				     d <= (mo == 2 ? (y % 4 == 0 ? 29 : 28)
				                   : (mo == 4 || mo == 6 || mo == 9 || mo == 11) ? 30 : 31);
				break;
			case CMP_MASK_TIMESTAMP:
				ok = n == 20 && sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ", &y, &mo, &d, &hh,
				                       &mi, &ss) == 6 &&
				     hh < 24 && mi < 60 && ss < 60 && s[19] == 'Z';
				break;
			case CMP_MASK_NUMBER:
				ok = n > 0 && (i % 2 ? strchr(s, '.') != NULL : all_digits(s, n));
				break;
			case CMP_MASK_PHONE:
				ok = n == 15 && strncmp(s, "+1 2", 4) == 0 && strstr(s, "-555-") == s + 6;
				break;
			case CMP_MASK_NAME:
			case CMP_MASK_ADDRESS:
				ok = strchr(s, ' ') != NULL && !strchr(s, ',');
				break;
			default:
				ok = n == 12;
			}
			if (!ok) {
				CHECK(ok, "mask %s gave \"%s\"", name, s);
				break;
			}
		}
	}
	/* A wrong check digit is refused by the checker (it can fail). */
	CHECK(!iban_valid("DE00123456781234567890"));
	CHECK(iban_valid("DE89370400440532013000")); /* the standard's example */
	enum cmp_mask m;
	CHECK(!cmp_mask_parse("credit_card", 11, &m));
	dcr_buf_release(&b);
	cmp_rng_release(&r);
}

static cmp_synth settings(cmp_synth_col *sc, cmp_rng *r, uint64_t eps_millionths)
{
	memset(sc, 0, NCOLS * sizeof *sc);
	sc[0].mask = CMP_MASK_EMAIL;
	sc[5].mask = CMP_MASK_NUMBER;
	sc[3].has_bounds = true;
	sc[3].lo = 0;
	sc[3].hi = 100;
	sc[3].bins = 10;
	return (cmp_synth){ .schema = { cols, NCOLS }, .cols = sc, .epsilon = eps_millionths,
		            .rng = r, .label = "people" };
}

static void test_minimum_rows(void)
{
	cmp_synth_col sc[NCOLS];
	cmp_rng r;
	cmp__rng_init_test(&r, 1);
	cmp_synth s = settings(sc, &r, 1000000);
	cmp_result res;
	dcr_buf rep, in;
	dcr_err err;
	cmp_result_init(&res);
	dcr_buf_init(&rep);
	dcr_buf_init(&in);
	make_table(&in, 49, false);
	CHECK_ERR(run(&s, &in, &res, &rep, &err), DCR_EINVALID, &err, "fewer than 50 rows");
	CHECK(res.rows == 0 && rep.len == 0); /* unchanged */
	dcr_buf_reset(&in);
	make_table(&in, 50, false);
	CHECK_OK(run(&s, &in, &res, &rep, &err), &err);
	CHECK(res.csv.len > 0 && rep.len > 0);
	cmp_result_release(&res);
	dcr_buf_release(&rep);
	dcr_buf_release(&in);
	cmp_rng_release(&r);
}

static void test_run(void)
{
	cmp_synth_col sc[NCOLS];
	cmp_rng r;
	cmp__rng_init_test(&r, 7);
	cmp_synth s = settings(sc, &r, 3000000);
	s.rows = 3000;
	cmp_result res;
	dcr_buf rep, in;
	dcr_err err;
	cmp_result_init(&res);
	dcr_buf_init(&rep);
	dcr_buf_init(&in);
	make_table(&in, 5000, true); /* "code" holds text: masked, it is never parsed */
	CHECK_OK(run(&s, &in, &res, &rep, &err), &err);
	CHECK_RC(res.rows, 3000);
	CHECK_RC(res.ncols, NCOLS);
	for (size_t i = 0; i < res.ncols && i < NCOLS; i++)
		CHECK(strcmp(res.cols[i].name, cols[i].name) == 0 && res.cols[i].type == cols[i].type);
	CHECK(res.image.len > 0);
	const char *rp = dcr_buf_cstr(&rep);
	CHECK(strstr(rp, "\"rho\":0.0982882943") != NULL, "%s", rp);
	CHECK(strstr(rp, "\"format\":\"email\"") && strstr(rp, "\"format\":\"number\""));
	CHECK(strstr(rp, "\"tree\":[[") != NULL);
	CHECK(strstr(rp, "user") == NULL); /* no input value in the report */

	/* Every value in its domain; masked values never input values. */
	char *text = dcr_strndup((const char *)res.csv.data, res.csv.len), *save = NULL;
	char *line = strtok_r(text, "\n", &save);
	CHECK(line && strcmp(line, "email,city,segment,age,balance,code") == 0);
	unsigned rows = 0, same = 0, nulls = 0, other = 0;
	while ((line = strtok_r(NULL, "\n", &save))) {
		char *f[NCOLS + 1];
		size_t n = fields(line, f, NCOLS + 1);
		rows++;
		if (n != NCOLS) {
			CHECK(n == NCOLS, "row %u has %zu fields", rows, n);
			break;
		}
		CHECK(strncmp(f[0], "user", 4) != 0 && strstr(f[0], "@example.com"));
		bool city = !*f[1];
		nulls += city;
		other += strcmp(f[1], "(other)") == 0;
		for (int c = 0; c < 4; c++)
			city |= strcmp(f[1], cities[c]) == 0;
		CHECK(city || strcmp(f[1], "(other)") == 0, "city \"%s\"", f[1]);
		/* "(other)" is in every string column's domain; noise may
		 * give it a few rows even when no value was merged. */
		other += strcmp(f[2], "(other)") == 0;
		CHECK((strlen(f[2]) == 2 && f[2][0] == 's' && f[2][1] >= '0' && f[2][1] <= '3') ||
		          strcmp(f[2], "(other)") == 0,
		      "segment \"%s\"", f[2]);
		char *end;
		long age = strtol(f[3], &end, 10);
		CHECK(*end == 0 && age >= 0 && age <= 100, "age \"%s\"", f[3]);
		if (*f[4]) {
			double bal = strtod(f[4], &end);
			CHECK(*end == 0 && isfinite(bal), "balance \"%s\"", f[4]);
		}
		strtol(f[5], &end, 10);
		CHECK(*end == 0 && *f[5]); /* a number, not "secret" */
		/* segment s<k> agrees with the city it follows most of the time */
		for (int c = 0; c < 4; c++)
			if (strcmp(f[1], cities[c]) == 0 && f[2][1] - '0' == c)
				same++;
	}
	CHECK_RC(rows, 3000);
	CHECK(nulls > 30 && nulls < 400, "null cities %u", nulls); /* 5% in the input */
	CHECK(other < 60, "%u rows of 3000 are (other)", other);
	/* The tree keeps city -> segment (about 0.9 * 0.95 in the input). */
	CHECK(same > 2200, "rows with segment = city: %u of 3000", same);
	if (getenv("SYNTH_SHOW"))
		fprintf(stderr, "same %u nulls %u\n%s\n%.400s\n", same, nulls, rp, (const char *)res.csv.data);
	free(text);

	/* The same column, not masked, is parsed: the error names line and
	 * column, never the value. */
	sc[5].mask = CMP_MASK_NONE;
	CHECK_ERR(run(&s, &in, &res, &rep, &err), DCR_EINVALID, &err, "column \"code\"");
	CHECK(strstr(err.msg, "secret") == NULL && strstr(err.msg, "line 2") != NULL, "%s", err.msg);

	cmp_result_release(&res);
	dcr_buf_release(&rep);
	dcr_buf_release(&in);
	cmp_rng_release(&r);
}

static void test_independent_loses_correlation(void)
{
	cmp_synth_col sc[NCOLS];
	cmp_rng r;
	cmp__rng_init_test(&r, 8);
	cmp_synth s = settings(sc, &r, 3000000);
	s.mode = CMP__SYNTH_INDEPENDENT;
	s.rows = 3000;
	cmp_result res;
	dcr_buf rep, in;
	dcr_err err;
	cmp_result_init(&res);
	dcr_buf_init(&rep);
	dcr_buf_init(&in);
	make_table(&in, 5000, false);
	CHECK_OK(run(&s, &in, &res, &rep, &err), &err);
	char *text = dcr_strndup((const char *)res.csv.data, res.csv.len), *save = NULL;
	char *line = strtok_r(text, "\n", &save);
	unsigned same = 0;
	while ((line = strtok_r(NULL, "\n", &save))) {
		char *f[NCOLS + 1];
		if (fields(line, f, NCOLS + 1) != NCOLS)
			continue;
		for (int c = 0; c < 4; c++)
			if (strcmp(f[1], cities[c]) == 0 && f[2][1] - '0' == c)
				same++;
	}
	CHECK(same < 1000, "independent columns agree in %u of 3000 rows", same);
	free(text);
	/* The baselines need a test generator. */
	cmp_rng csprng;
	cmp_rng_init(&csprng);
	s.rng = &csprng;
	CHECK_ERR(run(&s, &in, &res, &rep, &err), DCR_EINVALID, &err, "bench only");
	s.mode = CMP__SYNTH_CHOW_LIU;
	CHECK_ERR(run(&s, &in, &res, &rep, &err), DCR_EINVALID, &err, "bench only");
	cmp_rng_release(&csprng);
	cmp_result_release(&res);
	dcr_buf_release(&rep);
	dcr_buf_release(&in);
	cmp_rng_release(&r);
}

static void test_determinism(void)
{
	cmp_synth_col sc[NCOLS];
	cmp_rng r1, r2, r3;
	cmp__rng_init_test(&r1, 42);
	cmp__rng_init_test(&r2, 42);
	cmp__rng_init_test(&r3, 43);
	dcr_buf in, rep;
	dcr_err err;
	cmp_result a, b, c, d;
	cmp_result_init(&a);
	cmp_result_init(&b);
	cmp_result_init(&c);
	cmp_result_init(&d);
	dcr_buf_init(&in);
	dcr_buf_init(&rep);
	make_table(&in, 400, false);
	cmp_synth s = settings(sc, &r1, 1000000);
	CHECK_OK(run(&s, &in, &a, &rep, &err), &err);
	s.rng = &r2;
	CHECK_OK(run(&s, &in, &b, &rep, &err), &err);
	s.rng = &r3;
	CHECK_OK(run(&s, &in, &c, &rep, &err), &err);
	CHECK(a.csv.len == b.csv.len && memcmp(a.csv.data, b.csv.data, a.csv.len) == 0);
	CHECK(a.csv.len != c.csv.len || memcmp(a.csv.data, c.csv.data, a.csv.len) != 0);
	/* The daemon's generator (the CSPRNG) differs from run to run. */
	s.rng = NULL;
	CHECK_OK(run(&s, &in, &c, &rep, &err), &err);
	CHECK_OK(run(&s, &in, &d, &rep, &err), &err);
	CHECK(c.csv.len != d.csv.len || memcmp(c.csv.data, d.csv.data, c.csv.len) != 0);
	/* The noisy row count is near 400 at epsilon 1 (its standard
	 * deviation here is about 60: 5 of them). */
	CHECK(c.rows > 100 && c.rows < 700, "rows %llu", (unsigned long long)c.rows);
	cmp_result_release(&a);
	cmp_result_release(&b);
	cmp_result_release(&c);
	cmp_result_release(&d);
	dcr_buf_release(&in);
	dcr_buf_release(&rep);
	cmp_rng_release(&r1);
	cmp_rng_release(&r2);
	cmp_rng_release(&r3);
}

static void test_refused(void)
{
	cmp_synth_col sc[NCOLS];
	cmp_rng r;
	cmp__rng_init_test(&r, 1);
	cmp_synth s = settings(sc, &r, 1000000);
	dcr_err err;
	CHECK_OK(cmp_synth_check(&s, &err), &err);
	sc[1].mask = CMP_MASK_NUMBER; /* on a string column */
	CHECK_ERR(cmp_synth_check(&s, &err), DCR_EINVALID, &err, "mask number does not fit");
	sc[1].mask = CMP_MASK_NONE;
	sc[3].mask = CMP_MASK_IBAN; /* on an integer column */
	CHECK_ERR(cmp_synth_check(&s, &err), DCR_EINVALID, &err, "\"age\"");
	sc[3].mask = CMP_MASK_NONE;
	sc[2].bins = 4; /* on a string column */
	CHECK_ERR(cmp_synth_check(&s, &err), DCR_EINVALID, &err, "bounds and bins");
	sc[2].bins = 0;
	sc[3].lo = 200; /* lo > hi */
	CHECK_ERR(cmp_synth_check(&s, &err), DCR_EINVALID, &err, "lo < hi");
	sc[3].lo = 0;
	sc[3].bins = DCR_SYNTH_BINS_MAX + 1;
	CHECK_ERR(cmp_synth_check(&s, &err), DCR_EINVALID, &err, "bins");
	sc[3].bins = 10;
	s.epsilon = 0;
	CHECK_ERR(cmp_synth_check(&s, &err), DCR_EINVALID, &err, "epsilon");
	s.epsilon = DCR_DP_EPSILON_MAX + 1;
	CHECK_ERR(cmp_synth_check(&s, &err), DCR_EINVALID, &err, "epsilon");
	s.epsilon = 1000000;
	s.rows = DCR_SYNTH_ROWS_OUT_MAX + 1;
	CHECK_ERR(cmp_synth_check(&s, &err), DCR_EINVALID, &err, "rows");
	s.rows = 0;
	/* A header that is not the schema's. */
	dcr_buf in, rep;
	cmp_result res;
	dcr_buf_init(&in);
	dcr_buf_init(&rep);
	cmp_result_init(&res);
	make_table(&in, 60, false);
	in.data[0] = 'E';
	CHECK_ERR(run(&s, &in, &res, &rep, &err), DCR_EINVALID, &err, "header column 1");
	/* An input CSV error stops the run. */
	dcr_buf_reset(&in);
	make_table(&in, 60, false);
	dcr_buf_append_str(&in, "a,b\n");
	CHECK_FAILS(run(&s, &in, &res, &rep, &err), &err, "fields");
	CHECK(res.rows == 0);
	dcr_buf_release(&in);
	dcr_buf_release(&rep);
	cmp_result_release(&res);
	cmp_rng_release(&r);
}

/* The exponential mechanism against its exact distribution: 10^6 picks,
 * chi-square at p = 1e-6 (5 degrees of freedom: 35.89); the same
 * statistic rejects the distribution of a 10% larger epsilon. */
static double em_chi2(const uint64_t *hist, const uint64_t *score, size_t n, double eps_half,
                      uint64_t draws)
{
	double z = 0, chi = 0;
	for (size_t i = 0; i < n; i++)
		z += exp(eps_half * (double)score[i]);
	for (size_t i = 0; i < n; i++) {
		double e = (double)draws * exp(eps_half * (double)score[i]) / z;
		chi += ((double)hist[i] - e) * ((double)hist[i] - e) / e;
	}
	return chi;
}

static void test_em(void)
{
	static const uint64_t score[6] = {0, 1, 2, 5, 5, 3};
	uint64_t hist[6] = {0};
	cmp_rng r;
	cmp__rng_init_test(&r, 11);
	const uint64_t draws = 1000000, half = DCR_SYNTH_EM_SCALE / 2; /* eps/2 = 0.5 */
	for (uint64_t i = 0; i < draws; i++)
		hist[cmp__synth_em_pick(&r, score, 6, half)]++;
	double fit = em_chi2(hist, score, 6, 0.5, draws), off = em_chi2(hist, score, 6, 0.55, draws);
	if (getenv("SYNTH_SHOW"))
		fprintf(stderr, "em chi-square %.2f, off %.2f\n", fit, off);
	CHECK(fit < 35.89, "chi-square %.2f", fit);
	CHECK(off > 35.89, "a 10%% larger epsilon fits too: %.2f", off);
	/* equal scores: uniform; a gap of 2^40 units: the best only */
	static const uint64_t flat[3] = {7, 7, 7}, far[2] = {0, (uint64_t)1 << 40};
	uint64_t h3[3] = {0}, h2[2] = {0};
	for (int i = 0; i < 30000; i++)
		h3[cmp__synth_em_pick(&r, flat, 3, half)]++;
	for (int i = 0; i < 1000; i++)
		h2[cmp__synth_em_pick(&r, far, 2, half)]++;
	CHECK(h3[0] > 9500 && h3[1] > 9500 && h3[2] > 9500);
	CHECK(h2[0] == 0 && h2[1] == 1000);
	cmp_rng_release(&r);
}

int main(void)
{
	test_rho();
	test_masks();
	test_em();
	test_minimum_rows();
	test_run();
	test_independent_loses_correlation();
	test_determinism();
	test_refused();
	return t_failures ? 1 : 0;
}
