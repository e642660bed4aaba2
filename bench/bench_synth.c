/* bench_synth: quality and speed of the synthetic tables (issue 13;
 * compute/cmp_synth.c, docs/benchmarks.md "Synthetic data").
 *
 *   bench_synth [ROWS] [RUNS] [BANK_ROWS]     defaults 50000 5 1000000
 *
 * Data: a table drawn from a fixed Bayesian network of 14 columns
 * (categorical columns of 2 to 100 values, integer and float columns; two
 * columns have two parents, so no tree holds the whole network), and the
 * bank table of bench_cmp (email and name masked). Metric: the average
 * total variation distance between the synthetic and the original table
 * over all 1-, 2- and 3-way marginals, after the synthesiser's own
 * discretisation (declared bounds and bins; "(other)" is one more
 * category), mean of RUNS runs at epsilon 0.1, 1, 3 and 10. Baselines in
 * the same run: independent noisy 1-way marginals at the same epsilon, and
 * the non-private Chow-Liu tree. Speed: cmp_synth_run (read, measure,
 * sample, write the CSV and the table image) on one core, best of RUNS.
 * The generator is the test-only seeded one, so the figures repeat; one
 * more timing uses the CSPRNG, as dcrd does. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../compute/compute_synth.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* Only its bank generator is used here. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "bench_overlap.h"
#pragma GCC diagnostic pop

#define NC 14

typedef struct bcol {
	const char *name;
	enum cmp_type type;
	unsigned k;      /* categorical: values */
	int p1, p2;      /* parents (-1: none) */
	double lo, hi;   /* numeric: declared bounds */
	unsigned bins;
} bcol;

static const bcol net[NC] = {
	{ "region", CMP_STRING, 5, -1, -1, 0, 0, 0 },
	{ "member", CMP_STRING, 2, 0, -1, 0, 0, 0 },
	{ "branch", CMP_STRING, 10, 0, -1, 0, 0, 0 },
	{ "product", CMP_STRING, 100, 2, -1, 0, 0, 0 },
	{ "age", CMP_INTEGER, 0, 1, -1, 18, 90, 12 },
	{ "income", CMP_FLOAT, 0, 4, -1, 0, 200000, 16 },
	{ "tier", CMP_STRING, 3, 5, 1, 0, 0, 0 },
	{ "channel", CMP_STRING, 20, 3, -1, 0, 0, 0 },
	{ "visits", CMP_INTEGER, 0, 7, -1, 0, 60, 12 },
	{ "risk", CMP_STRING, 4, 6, -1, 0, 0, 0 },
	{ "segment", CMP_STRING, 50, 9, -1, 0, 0, 0 },
	{ "score", CMP_FLOAT, 0, 10, 4, 300, 850, 16 },
	{ "language", CMP_STRING, 7, 0, -1, 0, 0, 0 },
	{ "paperless", CMP_STRING, 2, 12, -1, 0, 0, 0 },
};

struct reader {
	const dcr_buf *b;
	size_t at;
};

static int buf_read(void *ctx, void *out, size_t cap)
{
	struct reader *r = ctx;
	size_t n = r->b->len - r->at;
	if (n > cap)
		n = cap;
	memcpy(out, r->b->data + r->at, n);
	r->at += n;
	return (int)n;
}

static double unif(uint64_t *st)
{
	return (double)(bench_rnd(st) >> 11) / 9007199254740992.0;
}

/* The code a synthesiser gives a numeric value (compute/cmp_synth.c). */
static unsigned num_code(const bcol *c, double v)
{
	double width = c->type == CMP_INTEGER ? c->hi - c->lo + 1 : c->hi - c->lo;
	double t = (v - c->lo) / width * c->bins;
	if (!(t >= 0))
		t = 0;
	if (t >= c->bins)
		t = c->bins - 1;
	return (unsigned)t;
}

static unsigned dom_of(const bcol *c)
{
	return c->type == CMP_STRING ? c->k + 1 : c->bins; /* + "(other)" */
}

/* A parent's state as one small number (its code, or 0 if none). */
static unsigned pstate(const unsigned *codes, int p)
{
	return p < 0 ? 0 : codes[p] % 8;
}

/* Draws the table; codes[r * NC + j] the discretised values. */
static void gen_bn(uint64_t rows, dcr_buf *csv, unsigned *codes)
{
	/* Conditional tables: per (column, parent states) a peaked
	 * distribution over the column's values, from a fixed seed. */
	uint64_t st = 0x5eed5eedull;
	static double cpt[NC][64][100];
	static double centre[NC][64];
	for (int j = 0; j < NC; j++)
		for (int s = 0; s < 64; s++) {
			const bcol *c = &net[j];
			if (c->type == CMP_STRING) {
				double sum = 0;
				for (unsigned v = 0; v < c->k; v++) {
					double u = unif(&st);
					cpt[j][s][v] = u * u * u * u + (v == (unsigned)s % c->k ? 1.5 : 0);
					sum += cpt[j][s][v];
				}
				for (unsigned v = 0; v < c->k; v++)
					cpt[j][s][v] /= sum;
			} else {
				centre[j][s] = c->lo + (c->hi - c->lo) * (0.15 + 0.7 * unif(&st));
			}
		}
	for (int j = 0; j < NC; j++)
		dcr_buf_printf(csv, "%s%s", j ? "," : "", net[j].name);
	dcr_buf_append_u8(csv, '\n');
	uint64_t rs = 0xabcdef12ull;
	for (uint64_t r = 0; r < rows; r++) {
		unsigned *cd = &codes[r * NC];
		for (int j = 0; j < NC; j++) {
			const bcol *c = &net[j];
			unsigned s = pstate(cd, c->p1) * 8 + pstate(cd, c->p2);
			if (j)
				dcr_buf_append_u8(csv, ',');
			if (c->type == CMP_STRING) {
				double u = unif(&rs), acc = 0;
				unsigned v = 0;
				for (; v + 1 < c->k; v++) {
					acc += cpt[j][s][v];
					if (u < acc)
						break;
				}
				cd[j] = v;
				dcr_buf_printf(csv, "%s%u", c->name, v);
				continue;
			}
			/* A normal around the parent state's centre (Box-Muller). */
			double z = sqrt(-2 * log(1 - unif(&rs))) * cos(2 * M_PI * unif(&rs));
			double v = centre[j][s] + z * (c->hi - c->lo) * 0.08;
			if (v < c->lo)
				v = c->lo;
			if (v > c->hi)
				v = c->hi;
			if (c->type == CMP_INTEGER) {
				v = floor(v);
				dcr_buf_printf(csv, "%.0f", v);
			} else {
				dcr_buf_printf(csv, "%.2f", v);
			}
			cd[j] = num_code(c, v);
		}
		dcr_buf_append_u8(csv, '\n');
	}
}

/* Codes of a synthetic CSV of the network's columns (no quotes in it). */
static uint64_t parse_codes(const dcr_buf *csv, unsigned *codes, uint64_t max)
{
	const char *p = (const char *)csv->data, *end = p + csv->len;
	p = memchr(p, '\n', (size_t)(end - p)) + 1; /* header */
	uint64_t r = 0;
	char f[128];
	while (p < end && r < max) {
		for (int j = 0; j < NC; j++) {
			size_t n = 0;
			while (p < end && *p != ',' && *p != '\n' && n + 1 < sizeof f)
				f[n++] = *p++;
			f[n] = 0;
			p++;
			const bcol *c = &net[j];
			unsigned code;
			if (c->type == CMP_STRING) {
				size_t ln = strlen(c->name);
				code = strncmp(f, c->name, ln) == 0 ? (unsigned)atol(f + ln) : c->k;
			} else {
				code = num_code(c, strtod(f, NULL));
			}
			codes[r * NC + j] = code;
		}
		r++;
	}
	return r;
}

/* Average TVD over all k-way marginals, k = 1, 2, 3. */
static void tvd(const unsigned *a, uint64_t na, const unsigned *b, uint64_t nb, double out[3])
{
	unsigned dom[NC];
	size_t maxcells = 1;
	for (int j = 0; j < NC; j++)
		dom[j] = dom_of(&net[j]);
	maxcells = 101 * 101 * 101;
	double *h = calloc(maxcells, sizeof *h);
	size_t *touched = calloc((na + nb) ? na + nb : 1, sizeof *touched);
	for (int k = 1; k <= 3; k++) {
		double sum = 0;
		unsigned cnt = 0;
		for (int x = 0; x < NC; x++)
			for (int y = k >= 2 ? x + 1 : NC - 1; y < NC; y++)
				for (int z = k >= 3 ? y + 1 : NC - 1; z < NC; z++) {
					size_t nt = 0;
					for (int side = 0; side < 2; side++) {
						const unsigned *c = side ? b : a;
						uint64_t n = side ? nb : na;
						double w = side ? -1.0 / (double)nb : 1.0 / (double)na;
						for (uint64_t r = 0; r < n; r++) {
							size_t key = c[r * NC + x];
							if (k >= 2)
								key = key * dom[y] + c[r * NC + y];
							if (k >= 3)
								key = key * dom[z] + c[r * NC + z];
							if (h[key] == 0)
								touched[nt++] = key;
							h[key] += w;
							if (h[key] == 0) /* exactly cancelled: keep it listed */
								h[key] = 1e-300;
						}
					}
					double t = 0;
					for (size_t i = 0; i < nt; i++) {
						if (h[touched[i]] != 0) {
							t += fabs(h[touched[i]] == 1e-300 ? 0 : h[touched[i]]);
							h[touched[i]] = 0;
						}
					}
					sum += t / 2;
					cnt++;
				}
		out[k - 1] = sum / cnt;
	}
	free(touched);
	free(h);
}

static int synth_once(const cmp_schema *sch, const cmp_synth_col *sc, const dcr_buf *in,
                      double eps, enum cmp__synth_mode mode, uint64_t seed, cmp_result *res,
                      double *secs)
{
	cmp_rng rng;
	cmp__rng_init_test(&rng, seed);
	/* seed 0: the CSPRNG, as dcrd runs it */
	cmp_synth s = { .schema = *sch, .cols = sc, .epsilon = (uint64_t)llround(eps * 1e6),
		        .rng = seed ? &rng : NULL, .mode = mode, .label = "bench" };
	struct reader rd = { in, 0 };
	dcr_buf rep;
	dcr_err err;
	dcr_buf_init(&rep);
	double t = bench_now_s();
	int rc = cmp_synth_run(&s, buf_read, &rd, res, &rep, &err);
	*secs = bench_now_s() - t;
	if (rc)
		fprintf(stderr, "bench_synth: %s\n", err.msg);
	dcr_buf_release(&rep);
	cmp_rng_release(&rng);
	return rc;
}

int main(int argc, char **argv)
{
	uint64_t rows = argc > 1 ? strtoull(argv[1], NULL, 10) : 50000;
	int runs = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 5;
	uint64_t bank_rows = argc > 3 ? strtoull(argv[3], NULL, 10) : 1000000;
	if (rows < 50 || runs < 1) {
		fprintf(stderr, "usage: bench_synth [ROWS >= 50] [RUNS >= 1] [BANK_ROWS]\n");
		return 2;
	}
	cmp_column cols[NC];
	cmp_synth_col sc[NC];
	memset(sc, 0, sizeof sc);
	for (int j = 0; j < NC; j++) {
		cols[j] = (cmp_column){ net[j].name, net[j].type, CMP_FMT_NONE, false };
		if (net[j].type != CMP_STRING) {
			sc[j].has_bounds = true;
			sc[j].lo = net[j].lo;
			sc[j].hi = net[j].hi;
			sc[j].bins = net[j].bins;
		}
	}
	cmp_schema sch = { cols, NC };
	dcr_buf csv;
	dcr_buf_init(&csv);
	unsigned *orig = calloc(rows * NC, sizeof *orig);
	unsigned *syn = calloc(rows * 2 * NC, sizeof *syn);
	gen_bn(rows, &csv, orig);
	printf("bench_synth: Bayesian network table, %llu rows x %d columns (%.1f MB), %d runs "
	       "per point\n",
	       (unsigned long long)rows, NC, csv.len / 1e6, runs);
	printf("%-22s %7s %9s %9s %9s %9s\n", "synthesiser", "epsilon", "1-way", "2-way", "3-way",
	       "seconds");
	static const double epss[] = { 0.1, 1, 3, 10 };
	struct {
		const char *name;
		enum cmp__synth_mode mode;
		int neps;
	} kinds[] = { { "MST", CMP_SYNTH_MST, 4 },
		      { "independent", CMP__SYNTH_INDEPENDENT, 4 },
		      { "Chow-Liu (not private)", CMP__SYNTH_CHOW_LIU, 1 } };
	for (size_t kd = 0; kd < 3; kd++)
		for (int e = 0; e < kinds[kd].neps; e++) {
			double acc[3] = { 0 }, best = 1e9;
			for (int r = 0; r < runs; r++) {
				cmp_result res;
				cmp_result_init(&res);
				double secs, t3[3];
				if (synth_once(&sch, sc, &csv, epss[e], kinds[kd].mode,
				               1000 + (uint64_t)r, &res, &secs))
					return 1;
				uint64_t n = parse_codes(&res.csv, syn, rows * 2);
				tvd(orig, rows, syn, n, t3);
				for (int k = 0; k < 3; k++)
					acc[k] += t3[k] / runs;
				if (secs < best)
					best = secs;
				cmp_result_release(&res);
			}
			printf("%-22s %7s %9.4f %9.4f %9.4f %9.3f\n", kinds[kd].name,
			       kinds[kd].neps == 1 ? "-" : (e == 0 ? "0.1" : e == 1 ? "1" : e == 2 ? "3" : "10"),
			       acc[0], acc[1], acc[2], best);
			fflush(stdout);
		}
	{
		/* Speed as dcrd runs it: the CSPRNG, epsilon 1. */
		double best = 1e9;
		for (int r = 0; r < runs; r++) {
			cmp_result res;
			cmp_result_init(&res);
			double secs;
			if (synth_once(&sch, sc, &csv, 1, CMP_SYNTH_MST, 0, &res, &secs))
				return 1;
			if (secs < best)
				best = secs;
			cmp_result_release(&res);
		}
		printf("MST with the CSPRNG, epsilon 1: %.3f s (best of %d)\n", best, runs);
	}
	free(orig);
	free(syn);
	dcr_buf_release(&csv);

	if (bank_rows >= 50) {
		/* The bank table: email and name masked, age, city, balance
		 * synthesised with privately estimated bounds. */
		dcr_buf bank, ins;
		dcr_buf_init(&bank);
		dcr_buf_init(&ins);
		bench_overlap_gen(bank_rows, &bank, &ins);
		dcr_buf_release(&ins);
		static const cmp_column bcols[] = { { "email", CMP_STRING, CMP_FMT_EMAIL, false },
			                            { "name", CMP_STRING, CMP_FMT_NONE, false },
			                            { "age", CMP_INTEGER, CMP_FMT_NONE, false },
			                            { "city", CMP_STRING, CMP_FMT_NONE, false },
			                            { "balance", CMP_FLOAT, CMP_FMT_NONE, false } };
		cmp_synth_col bsc[5];
		memset(bsc, 0, sizeof bsc);
		bsc[0].mask = CMP_MASK_EMAIL;
		bsc[1].mask = CMP_MASK_NAME;
		cmp_schema bs = { bcols, 5 };
		double best = 1e9;
		for (int r = 0; r < runs && r < 3; r++) {
			cmp_result res;
			cmp_result_init(&res);
			double secs;
			if (synth_once(&bs, bsc, &bank, 1, CMP_SYNTH_MST, 7 + (uint64_t)r, &res, &secs))
				return 1;
			if (secs < best)
				best = secs;
			cmp_result_release(&res);
		}
		printf("bank table: %llu rows (%.0f MB), email and name masked, epsilon 1: %.2f s "
		       "(best of %d)\n",
		       (unsigned long long)bank_rows, bank.len / 1e6, best, runs < 3 ? runs : 3);
		dcr_buf_release(&bank);
	}
	return 0;
}
