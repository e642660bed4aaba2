/* test_cmp_noise.c: the exact discrete samplers (compute/cmp_noise.c)
 * against their exact pmf. Each configuration draws 10^6 values from the
 * test-only seeded generator (so the test cannot flake) and runs a
 * chi-square goodness-of-fit test at p = 1e-6, plus mean and variance
 * checks. The same check must reject a slightly wrong pmf (scale off by 5%),
 * so it is able to fail. The CSPRNG generator is checked to differ from
 * draw to draw and between generators. bench/bench_noise.c does 10^8 draws. */
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

#define DRAWS 1000000
#define RANGE 4000 /* histogram covers [-RANGE, RANGE] */

typedef double (*pmf_fn)(long x, const double *par);

/* Lap_Z(b): (1 - q)/(1 + q) q^|x|, q = exp(-1/b); par[0] = b. */
static double pmf_laplace(long x, const double *par)
{
	double q = exp(-1.0 / par[0]);
	return (1 - q) / (1 + q) * pow(q, (double)labs(x));
}

/* N_Z(0, s2): exp(-x^2/(2 s2)) / sum; par[0] = s2, par[1] = the sum. */
static double pmf_gauss(long x, const double *par)
{
	return exp(-(double)x * (double)x / (2 * par[0])) / par[1];
}

static double gauss_norm(double s2)
{
	double z = 0;
	for (long x = -RANGE; x <= RANGE; x++)
		z += exp(-(double)x * (double)x / (2 * s2));
	return z;
}

/* Chi-square critical value at p = 1e-6 (Wilson-Hilferty). */
static double chi2_crit(double df)
{
	double z = 4.7534, h = 2.0 / (9.0 * df);
	return df * pow(1 - h + z * sqrt(h), 3);
}

/* Chi-square of the histogram against pmf, bins with expected count < 5
 * merged into the two tails. Returns true if the fit is accepted. */
static bool chi2_fits(const uint64_t *hist, uint64_t below, uint64_t above, pmf_fn pmf,
                      const double *par, const char *what)
{
	double chi = 0, tail_lo_e = 0, tail_hi_e = 0, mass = 0;
	uint64_t tail_lo_o = below, tail_hi_o = above;
	int bins = 0;
	long lo = 0, hi = 0;
	/* central bins: those with expected >= 5, which form one interval */
	for (long x = -RANGE; x <= RANGE; x++)
		if (DRAWS * pmf(x, par) >= 5) {
			if (!bins)
				lo = x;
			hi = x;
			bins++;
		}
	bins = 0;
	for (long x = -RANGE; x <= RANGE; x++) {
		double e = DRAWS * pmf(x, par);
		mass += pmf(x, par);
		uint64_t o = hist[x + RANGE];
		if (x < lo) {
			tail_lo_e += e;
			tail_lo_o += o;
		} else if (x > hi) {
			tail_hi_e += e;
			tail_hi_o += o;
		} else {
			chi += (o - e) * (o - e) / e;
			bins++;
		}
	}
	tail_lo_e += DRAWS * (1 - mass) / 2; /* beyond the histogram */
	tail_hi_e += DRAWS * (1 - mass) / 2;
	for (int i = 0; i < 2; i++) {
		double e = i ? tail_hi_e : tail_lo_e;
		double o = (double)(i ? tail_hi_o : tail_lo_o);
		if (e >= 1e-9) {
			chi += (o - e) * (o - e) / e;
			bins++;
		} else if (o > 0) {
			chi = INFINITY;
		}
	}
	double crit = chi2_crit(bins - 1);
	printf("%-40s chi2 %10.1f over %3d bins (critical %.1f at p=1e-6)\n", what, chi, bins, crit);
	return chi < crit;
}

struct draws {
	uint64_t *hist, below, above;
	double mean, var;
};

static void tally(struct draws *d, const int64_t *v, size_t n)
{
	d->hist = calloc(2 * RANGE + 1, sizeof(uint64_t));
	double s = 0, s2 = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < -RANGE)
			d->below++;
		else if (v[i] > RANGE)
			d->above++;
		else
			d->hist[v[i] + RANGE]++;
		s += (double)v[i];
		s2 += (double)v[i] * (double)v[i];
	}
	d->mean = s / (double)n;
	d->var = s2 / (double)n - d->mean * d->mean;
}

static void moments(pmf_fn pmf, const double *par, double *mean, double *var)
{
	double m = 0, m2 = 0;
	for (long x = -RANGE; x <= RANGE; x++) {
		m += (double)x * pmf(x, par);
		m2 += (double)x * (double)x * pmf(x, par);
	}
	*mean = m;
	*var = m2 - m * m;
}

/* mean within 6 standard errors, variance within 3% */
static void check_moments(const struct draws *d, pmf_fn pmf, const double *par)
{
	double mean, var;
	moments(pmf, par, &mean, &var);
	double se = sqrt(var / DRAWS);
	if (!(fabs(d->mean - mean) < 6 * se + 1e-12)) {
		fprintf(stderr, "mean %.5f, expected %.5f (se %.5f)\n", d->mean, mean, se);
		failures++;
	}
	if (!(fabs(d->var - var) < 0.03 * var)) {
		fprintf(stderr, "variance %.5f, expected %.5f\n", d->var, var);
		failures++;
	}
}

static void test_laplace(uint64_t s, uint64_t t, uint64_t seed)
{
	cmp_rng r;
	cmp__rng_init_test(&r, seed);
	int64_t *v = malloc(DRAWS * sizeof *v);
	dcr_err err = {0};
	for (size_t i = 0; i < DRAWS; i++)
		CHECK(cmp_noise_dlaplace(&r, s, t, &v[i], &err) == 0);
	struct draws d = {0};
	tally(&d, v, DRAWS);
	double par[1] = {(double)t / (double)s}, wrong[1] = {par[0] * 1.05};
	char what[80];
	snprintf(what, sizeof what, "discrete Laplace t/s = %llu/%llu", (unsigned long long)t,
	         (unsigned long long)s);
	CHECK(chi2_fits(d.hist, d.below, d.above, pmf_laplace, par, what));
	check_moments(&d, pmf_laplace, par);
	/* negative: the same draws against a 5% wider scale are rejected */
	CHECK(!chi2_fits(d.hist, d.below, d.above, pmf_laplace, wrong, "  ... against scale x 1.05"));
	free(d.hist);
	free(v);
	cmp_rng_release(&r);
}

static void test_gauss(uint64_t num, uint64_t den, uint64_t seed)
{
	cmp_rng r;
	cmp__rng_init_test(&r, seed);
	int64_t *v = malloc(DRAWS * sizeof *v);
	dcr_err err = {0};
	for (size_t i = 0; i < DRAWS; i++)
		CHECK(cmp_noise_dgauss(&r, num, den, &v[i], &err) == 0);
	struct draws d = {0};
	tally(&d, v, DRAWS);
	double s2 = (double)num / (double)den;
	double par[2] = {s2, gauss_norm(s2)}, wrong[2] = {s2 * 1.05, gauss_norm(s2 * 1.05)};
	char what[80];
	snprintf(what, sizeof what, "discrete Gaussian sigma^2 = %llu/%llu",
	         (unsigned long long)num, (unsigned long long)den);
	CHECK(chi2_fits(d.hist, d.below, d.above, pmf_gauss, par, what));
	check_moments(&d, pmf_gauss, par);
	CHECK(!chi2_fits(d.hist, d.below, d.above, pmf_gauss, wrong, "  ... against sigma^2 x 1.05"));
	free(d.hist);
	free(v);
	cmp_rng_release(&r);
}

/* Bernoulli(exp(-num/den)): the success count against its binomial. */
static void test_bern_exp(uint64_t num, uint64_t den, uint64_t seed)
{
	cmp_rng r;
	cmp__rng_init_test(&r, seed);
	uint64_t ones = 0;
	for (size_t i = 0; i < DRAWS; i++)
		ones += cmp__noise_bern_exp(&r, num, den);
	double p = exp(-(double)num / (double)den), e = DRAWS * p;
	double chi = (ones - e) * (ones - e) / e + ((DRAWS - ones) - (DRAWS - e)) *
	                                                ((DRAWS - ones) - (DRAWS - e)) / (DRAWS - e);
	printf("Bernoulli(exp(-%llu/%llu))%*s chi2 %10.2f (critical %.1f)\n",
	       (unsigned long long)num, (unsigned long long)den, 10, "", chi, chi2_crit(1));
	CHECK(chi < chi2_crit(1));
	/* negative: against p * 1.05 */
	double pw = p * 1.05, ew = DRAWS * pw;
	double chiw = (ones - ew) * (ones - ew) / ew +
	              ((DRAWS - ones) - (DRAWS - ew)) * ((DRAWS - ones) - (DRAWS - ew)) / (DRAWS - ew);
	CHECK(chiw > chi2_crit(1));
	cmp_rng_release(&r);
}

static void test_params(void)
{
	cmp_rng r;
	cmp__rng_init_test(&r, 1);
	int64_t v;
	dcr_err err = {0};
	CHECK(cmp_noise_dlaplace(&r, 0, 1, &v, &err) == DCR_EINVALID);
	CHECK(strstr(err.msg, "discrete Laplace") != NULL);
	CHECK(cmp_noise_dlaplace(&r, 1, 0, &v, &err) == DCR_EINVALID);
	CHECK(cmp_noise_dlaplace(&r, 1, DCR_NOISE_SCALE_MAX, &v, &err) == DCR_EINVALID);
	CHECK(cmp_noise_dlaplace(&r, 1, DCR_NOISE_SCALE_MAX - 1, &v, &err) == 0);
	CHECK(cmp_noise_dlaplace(&r, DCR_NOISE_PARAM_MAX, DCR_NOISE_PARAM_MAX, &v, &err) == 0);
	CHECK(cmp_noise_dgauss(&r, 0, 1, &v, &err) == DCR_EINVALID);
	CHECK(cmp_noise_dgauss(&r, 1, DCR_NOISE_SIGMA_DEN_MAX + 1, &v, &err) == DCR_EINVALID);
	CHECK(cmp_noise_dgauss(&r, DCR_NOISE_SIGMA_NUM_MAX, 1, &v, &err) == 0);
	/* bern_exp edges: exp(0) = 1 always, exp(-50) essentially never */
	int ones = 0;
	for (int i = 0; i < 1000; i++)
		ones += cmp__noise_bern_exp(&r, 0, 7);
	CHECK(ones == 1000);
	ones = 0;
	for (int i = 0; i < 1000; i++)
		ones += cmp__noise_bern_exp(&r, 50, 1);
	CHECK(ones == 0);
	cmp_rng_release(&r);
}

/* The same seed repeats; the CSPRNG does not. */
static void test_sources(void)
{
	cmp_rng a, b;
	int64_t x[64], y[64];
	dcr_err err = {0};
	cmp__rng_init_test(&a, 42);
	cmp__rng_init_test(&b, 42);
	for (int i = 0; i < 64; i++) {
		CHECK(cmp_noise_dlaplace(&a, 1, 1000, &x[i], &err) == 0);
		CHECK(cmp_noise_dlaplace(&b, 1, 1000, &y[i], &err) == 0);
	}
	CHECK(memcmp(x, y, sizeof x) == 0);
	cmp_rng_release(&a);
	cmp_rng_release(&b);
	cmp_rng_init(&a);
	cmp_rng_init(&b);
	CHECK(!a.test);
	for (int i = 0; i < 64; i++) {
		CHECK(cmp_noise_dlaplace(&a, 1, 1000, &x[i], &err) == 0);
		CHECK(cmp_noise_dlaplace(&b, 1, 1000, &y[i], &err) == 0);
	}
	/* 64 draws of scale 1000 agreeing by chance: probability < 1000^-64 */
	CHECK(memcmp(x, y, sizeof x) != 0);
	int same = 0;
	for (int i = 1; i < 64; i++)
		same += x[i] == x[0];
	CHECK(same < 63);
	cmp_rng_release(&a);
	cmp_rng_release(&b);
}

int main(void)
{
	test_params();
	test_sources();
	test_bern_exp(1, 3, 11);
	test_bern_exp(1, 1, 12);
	test_bern_exp(5, 2, 13);
	test_laplace(1, 1, 21);      /* scale 1 */
	test_laplace(2, 3, 22);      /* scale 3/2 */
	test_laplace(500000, 5000000, 23); /* scale 10 given as micro-epsilon */
	test_gauss(1, 1, 31);        /* sigma^2 = 1 */
	test_gauss(5, 2, 32);        /* 2.5 */
	test_gauss(400, 1, 33);      /* sigma = 20 */
	if (failures) {
		fprintf(stderr, "%d failures\n", failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
