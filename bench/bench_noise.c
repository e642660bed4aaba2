/* bench_noise.c: the exact discrete samplers at scale. Draws N values
 * (default 10^8 from the seeded test generator, 10^6 from the CSPRNG) of
 * the discrete Laplace (scale 10) and the discrete Gaussian (sigma^2 =
 * 100), prints the throughput and the chi-square statistic against the
 * exact pmf (bins with expected count >= 5, tails merged), with the
 * critical value at p = 1e-6. The unit test (test_cmp_noise) does the same
 * at 10^6 draws.
 *
 * usage: bench_noise [--draws N] [--csprng-draws N] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../compute/compute.h"
#include "bench_harness.h"

#define RANGE 2000

static double pmf_lap(long x, double b)
{
	double q = exp(-1 / b);
	return (1 - q) / (1 + q) * pow(q, (double)labs(x));
}

static double pmf_gauss(long x, double s2)
{
	static double z, zs2;
	if (zs2 != s2) {
		z = 0;
		for (long k = -RANGE; k <= RANGE; k++)
			z += exp(-(double)k * (double)k / (2 * s2));
		zs2 = s2;
	}
	return exp(-(double)x * (double)x / (2 * s2)) / z;
}

static void report(const char *what, const uint64_t *hist, uint64_t n, bool gauss, double par,
                   double secs)
{
	double chi = 0, lo_e = 0, lo_o = 0, hi_e = 0, hi_o = 0;
	int bins = 0;
	for (long x = -RANGE; x <= RANGE; x++) {
		double e = (double)n * (gauss ? pmf_gauss(x, par) : pmf_lap(x, par));
		double o = (double)hist[x + RANGE];
		if (e >= 5) {
			chi += (o - e) * (o - e) / e;
			bins++;
		} else if (x < 0) {
			lo_e += e, lo_o += o;
		} else {
			hi_e += e, hi_o += o;
		}
	}
	if (lo_e > 0)
		chi += (lo_o - lo_e) * (lo_o - lo_e) / lo_e, bins++;
	if (hi_e > 0)
		chi += (hi_o - hi_e) * (hi_o - hi_e) / hi_e, bins++;
	double df = bins - 1, h = 2.0 / (9.0 * df);
	double crit = df * pow(1 - h + 4.7534 * sqrt(h), 3);
	printf("%-44s %11llu draws %7.2f s %8.2f M/s  chi2 %9.1f over %4d bins (p=1e-6: %.1f) %s\n",
	       what, (unsigned long long)n, secs, (double)n / secs / 1e6, chi, bins, crit,
	       chi < crit ? "fits" : "DOES NOT FIT");
}

static void run(cmp_rng *r, const char *src, uint64_t n)
{
	uint64_t *hl = calloc(2 * RANGE + 1, sizeof *hl), *hg = calloc(2 * RANGE + 1, sizeof *hg);
	dcr_err err;
	int64_t v;
	char what[96];
	double t0 = bench_now_s();
	for (uint64_t i = 0; i < n; i++) {
		if (cmp_noise_dlaplace(r, 1, 10, &v, &err))
			abort();
		if (v >= -RANGE && v <= RANGE)
			hl[v + RANGE]++;
	}
	double t1 = bench_now_s();
	snprintf(what, sizeof what, "discrete Laplace scale 10 (%s)", src);
	report(what, hl, n, false, 10, t1 - t0);
	for (uint64_t i = 0; i < n; i++) {
		if (cmp_noise_dgauss(r, 100, 1, &v, &err))
			abort();
		if (v >= -RANGE && v <= RANGE)
			hg[v + RANGE]++;
	}
	double t2 = bench_now_s();
	snprintf(what, sizeof what, "discrete Gaussian sigma^2 100 (%s)", src);
	report(what, hg, n, true, 100, t2 - t1);
	free(hl);
	free(hg);
}

int main(int argc, char **argv)
{
	uint64_t n = 100000000, nc = 1000000;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--draws") == 0)
			n = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--csprng-draws") == 0)
			nc = strtoull(argv[i + 1], NULL, 10);
	}
	cmp_rng r;
	cmp__rng_init_test(&r, 20261205);
	run(&r, "seeded", n);
	cmp_rng_release(&r);
	cmp_rng_init(&r);
	run(&r, "CSPRNG", nc);
	cmp_rng_release(&r);
	return 0;
}
