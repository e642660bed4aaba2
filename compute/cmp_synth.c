/* cmp_synth.c: differentially private synthetic tables (compute_synth.h).
 *
 * The mechanism is of the MST class (McKenna, Miklau, Sheldon 2021); this
 * is our own implementation, written from the paper. The budget is rho of
 * zero-concentrated DP (Bun and Steinke 2016); neighbouring tables differ
 * by one added or removed row, so every histogram below has L2 sensitivity
 * 1 and every score of the exponential mechanism sensitivity 1.
 *
 * Steps, with their share of rho (docs/privacy.md, "Synthetic data"):
 *  1. Domains. A string column's values are counted and each count gets
 *     discrete Gaussian noise; values whose noisy count reaches the
 *     threshold tau are released as categories, the rest are merged into
 *     one "other" bucket (0.4 rho over the string columns, plus a share of
 *     delta: an unreleased value reaches tau with probability below it).
 *     A numeric column without declared bounds gets a noisy histogram over
 *     fixed power-of-two buckets (0.1 rho over those columns); its bounds
 *     are the outer edges of the buckets whose noisy count reaches 3 sigma,
 *     never the raw minimum and maximum. Numeric columns are cut into
 *     equal bins of their bounds (values outside are clamped into the end
 *     bins). Nullable columns get a null bucket.
 *  2. Noisy 1-way marginals of every synthesised column (0.2 of the rest;
 *     a released category's noisy count from step 1 is averaged in).
 *  3. A spanning tree of the columns: d - 1 rounds of the exponential
 *     mechanism (0.1 of the rest), each choosing among the pairs that join
 *     two components a pair with probability proportional to
 *     exp(eps/2 * score), score = floor of the L1 distance between the
 *     pair's 2-way marginal and the product of the noisy 1-ways. Sampled
 *     exactly: a uniform candidate is accepted with probability
 *     exp(-eps/2 (max - score)) (an exact Bernoulli of cmp_noise.c).
 *  4. Noisy 2-way marginals of the tree's edges (0.7 of the rest, split
 *     over the edges in proportion to their cells^(2/3)).
 *  5. Estimation: each column's marginal is the inverse-variance weighted
 *     mean of its noisy 1-way and of the row or column sums of its noisy
 *     2-ways, projected onto the non-negative tables of the noisy row count
 *     (the weighted mean of the totals of the noisy 1-ways); each edge's
 *     table is projected the same way and fitted to both end marginals by iterative
 *     proportional fitting, so the model's marginals agree on every shared
 *     column.
 *  6. Sampling from a root down the tree: counts allocated by largest
 *     remainder, then shuffled; each child's values allocated the same
 *     way within each group of rows sharing the parent's value.
 *  7. Decoding: a category is its value ("(other)" for the other bucket),
 *     a bin a uniform value inside it of the column's type, null null.
 * Everything after the measurements reads only the measurements
 * (post-processing), and so does the quality report.
 *
 * The exact input row count decides one thing: fewer than
 * DCR_SYNTH_ROWS_MIN rows refuse the run (docs/privacy.md says what that
 * reveals). */
#include <math.h>

#include "compute_int.h"
#include "compute_synth.h"

/* Shares of rho (docs/privacy.md, "Synthetic data"; chosen with
 * bench_synth, docs/benchmarks.md). Categories and bounds first, of rho;
 * then of the rest: 1-way marginals, tree selection, and the 2-way
 * marginals of the tree the remainder. */
#define SHARE_CATEGORIES 0.4
#define SHARE_BOUNDS 0.1
#define SHARE_ONE_WAY 0.2
#define SHARE_SELECT 0.1 /* of rho: string categories; again for numeric bounds */
#define IPF_ROUNDS 30
#define OTHER_TEXT "(other)"

/* ---- masks -------------------------------------------------------------- */

static const char *const mask_names[CMP_MASK_COUNT] = {
	"none",  "string", "number", "name", "address",   "postcode",
	"phone", "ssn",    "email",  "date", "timestamp", "iban",
};

const char *cmp_mask_name(enum cmp_mask m)
{
	return (unsigned)m < CMP_MASK_COUNT ? mask_names[m] : "?";
}

bool cmp_mask_parse(const char *s, size_t n, enum cmp_mask *m)
{
	for (unsigned i = 0; i < CMP_MASK_COUNT; i++)
		if (strlen(mask_names[i]) == n && memcmp(mask_names[i], s, n) == 0) {
			*m = (enum cmp_mask)i;
			return true;
		}
	return false;
}

bool cmp_mask_fits(enum cmp_mask m, enum cmp_type t)
{
	if (m == CMP_MASK_NONE)
		return true;
	if (m == CMP_MASK_NUMBER)
		return t == CMP_INTEGER || t == CMP_FLOAT;
	return t == CMP_STRING;
}

static const char *const first_names[] = {
	"Ada",   "Ben",  "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hugo",  "Ines",
	"Jonas", "Kiri", "Lena",  "Mateo",  "Nora",  "Omar",  "Priya", "Quinn", "Rosa",
	"Sven",  "Tara", "Umar",  "Vera",   "Wei",   "Ximena", "Yusuf", "Zoe",
};
static const char *const last_names[] = {
	"Abbott", "Brandt", "Castillo", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad",
	"Ivanova", "Jensen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov",
	"Quist",  "Rossi",  "Schmidt",  "Tanaka", "Usman",   "Varga",   "Weber",  "Yilmaz",
};
static const char *const streets[] = {
	"Elm", "Oak", "Maple", "Cedar", "Birch", "Willow", "Mill", "Station",
	"Church", "Park", "River", "Hill", "Lake", "Bridge", "Orchard", "Meadow",
};
static const char *const street_kinds[] = { "Street", "Road", "Lane", "Avenue", "Way", "Close" };

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t below(cmp_rng *r, uint64_t n)
{
	return cmp_rng_below(r, n);
}

static void digits(cmp_rng *r, dcr_buf *out, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		dcr_buf_append_u8(out, (uint8_t)('0' + below(r, 10)));
}

/* Days since 1950-01-01 to a civil date (proleptic Gregorian). */
static void civil(long days, int *y, int *m, int *d)
{
	/* The civil_from_days algorithm of Howard Hinnant; 1950-01-01 is
	 * day -7305 from 1970-01-01. */
	long z = days - 7305 + 719468;
	long era = (z >= 0 ? z : z - 146096) / 146097;
	long doe = z - era * 146097;
	long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long yy = yoe + era * 400;
	long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	long mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yy + (*m <= 2));
}

#define MASK_DAYS 29220 /* 1950-01-01 .. 2029-12-31 */

/* IBAN check digits (ISO 13616): 98 - (BBAN + country + "00" as digits,
 * letters A = 10 .. Z = 35) mod 97. */
static unsigned iban_check(const char *bban, size_t n, const char *country)
{
	unsigned rem = 0;
	char tail[7] = { country[0], country[1], '0', '0', 0 };
	for (int pass = 0; pass < 2; pass++) {
		const char *p = pass ? tail : bban;
		size_t len = pass ? 4 : n;
		for (size_t i = 0; i < len; i++) {
			char c = p[i];
			if (c >= 'A' && c <= 'Z')
				rem = (rem * 100 + (unsigned)(c - 'A' + 10)) % 97;
			else
				rem = (rem * 10 + (unsigned)(c - '0')) % 97;
		}
	}
	return 98 - rem;
}

void cmp__synth_mask_value(cmp_rng *r, enum cmp_mask m, enum cmp_type t, dcr_buf *out)
{
	static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	int y, mo, d;
	switch (m) {
	case CMP_MASK_NONE:
	case CMP_MASK_COUNT:
		DCR_ASSERT(!"not a mask");
		break;
	case CMP_MASK_STRING:
		for (int i = 0; i < 12; i++)
			dcr_buf_append_u8(out, (uint8_t)alnum[below(r, sizeof alnum - 1)]);
		break;
	case CMP_MASK_NUMBER:
		if (t == CMP_INTEGER)
			dcr_buf_printf(out, "%llu", (unsigned long long)below(r, 1000000));
		else
			dcr_buf_printf(out, "%llu.%02llu", (unsigned long long)below(r, 1000000),
			               (unsigned long long)below(r, 100));
		break;
	case CMP_MASK_NAME:
		dcr_buf_printf(out, "%s %s", first_names[below(r, NELEM(first_names))],
		               last_names[below(r, NELEM(last_names))]);
		break;
	case CMP_MASK_ADDRESS:
		dcr_buf_printf(out, "%llu %s %s", (unsigned long long)(1 + below(r, 299)),
		               streets[below(r, NELEM(streets))],
		               street_kinds[below(r, NELEM(street_kinds))]);
		break;
	case CMP_MASK_POSTCODE:
		digits(r, out, 5);
		break;
	case CMP_MASK_PHONE:
		dcr_buf_printf(out, "+1 2%02llu-555-", (unsigned long long)below(r, 100));
		digits(r, out, 4);
		break;
	case CMP_MASK_SSN:
		dcr_buf_printf(out, "9%02llu-", (unsigned long long)below(r, 100));
		digits(r, out, 2);
		dcr_buf_append_u8(out, '-');
		digits(r, out, 4);
		break;
	case CMP_MASK_EMAIL:
		dcr_buf_append_str(out, "x.");
		for (int i = 0; i < 10; i++)
			dcr_buf_append_u8(out, (uint8_t)alnum[below(r, 26)]);
		dcr_buf_append_str(out, "@example.com");
		break;
	case CMP_MASK_DATE:
		civil((long)below(r, MASK_DAYS), &y, &mo, &d);
		dcr_buf_printf(out, "%04d-%02d-%02d", y, mo, d);
		break;
	case CMP_MASK_TIMESTAMP: {
		civil((long)below(r, MASK_DAYS), &y, &mo, &d);
		uint64_t s = below(r, 86400);
		dcr_buf_printf(out, "%04d-%02d-%02dT%02u:%02u:%02uZ", y, mo, d,
		               (unsigned)(s / 3600), (unsigned)(s / 60 % 60), (unsigned)(s % 60));
		break;
	}
	case CMP_MASK_IBAN: {
		char bban[19];
		for (int i = 0; i < 18; i++)
			bban[i] = (char)('0' + below(r, 10));
		bban[18] = 0;
		dcr_buf_printf(out, "DE%02u%s", iban_check(bban, 18, "DE"), bban);
		break;
	}
	}
}

/* ---- accounting ------------------------------------------------------------ */

double cmp_synth_rho(double epsilon)
{
	double l = log(2.0 / DCR_SYNTH_DELTA);
	double a = sqrt(l + epsilon) - sqrt(l);
	return a * a;
}

/* A discrete Gaussian for rho-zCDP at sensitivity 1: sigma^2 = 1/(2 rho),
 * rounded up to a multiple of 2^-10 (more noise, never less). */
typedef struct gnoise {
	uint64_t num, den;
	double sigma2;
} gnoise;

static int gnoise_init(gnoise *g, double rho, const char *what, dcr_err *err)
{
	double s2 = 1.0 / (2.0 * rho);
	if (!(rho > 0) || !(s2 * 1024 < (double)DCR_NOISE_SIGMA_NUM_MAX))
		return dcr_err_set(err, DCR_EINVALID,
		                   "synthetic: the budget left for %s is too small (noise variance "
		                   "above %llu): raise epsilon or synthesise fewer columns",
		                   what, (unsigned long long)(DCR_NOISE_SIGMA_NUM_MAX / 1024));
	g->den = 1024;
	g->num = (uint64_t)ceil(s2 * 1024);
	if (g->num == 0)
		g->num = 1;
	g->sigma2 = (double)g->num / 1024.0;
	return 0;
}

/* ---- input ------------------------------------------------------------------ */

/* Distinct strings of one column. */
typedef struct strtab {
	uint32_t *slot; /* id + 1, 0 = empty */
	size_t cap;
	size_t n;
	size_t *off;
	size_t *len;
	uint64_t *count;
	size_t idcap;
	dcr_buf bytes;
} strtab;

static uint64_t fnv(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 0x100000001b3ull;
	return h;
}

static void strtab_release(strtab *t)
{
	free(t->slot);
	free(t->off);
	free(t->len);
	free(t->count);
	dcr_wipe(t->bytes.data, t->bytes.len);
	dcr_buf_release(&t->bytes);
	memset(t, 0, sizeof *t);
}

static void strtab_grow(strtab *t)
{
	size_t cap = t->cap ? t->cap * 2 : 1024;
	uint32_t *slot = dcr_calloc(cap, sizeof *slot);
	for (size_t i = 0; i < t->n; i++) {
		uint64_t h = fnv((const char *)t->bytes.data + t->off[i], t->len[i]);
		size_t j = h & (cap - 1);
		while (slot[j])
			j = (j + 1) & (cap - 1);
		slot[j] = (uint32_t)(i + 1);
	}
	free(t->slot);
	t->slot = slot;
	t->cap = cap;
}

/* The id of s (added with count 0 if new); -1 past DCR_SYNTH_DISTINCT_MAX. */
static long strtab_id(strtab *t, const char *s, size_t n)
{
	if ((t->n + 1) * 2 > t->cap)
		strtab_grow(t);
	uint64_t h = fnv(s, n);
	size_t j = h & (t->cap - 1);
	while (t->slot[j]) {
		size_t id = t->slot[j] - 1;
		if (t->len[id] == n && memcmp(t->bytes.data + t->off[id], s, n) == 0)
			return (long)id;
		j = (j + 1) & (t->cap - 1);
	}
	if (t->n >= DCR_SYNTH_DISTINCT_MAX)
		return -1;
	if (t->n == t->idcap) {
		t->idcap = t->idcap ? t->idcap * 2 : 256;
		t->off = dcr_realloc(t->off, t->idcap * sizeof *t->off);
		t->len = dcr_realloc(t->len, t->idcap * sizeof *t->len);
		t->count = dcr_realloc(t->count, t->idcap * sizeof *t->count);
	}
	t->off[t->n] = t->bytes.len;
	t->len[t->n] = n;
	t->count[t->n] = 0;
	dcr_buf_append(&t->bytes, s, n);
	t->slot[j] = (uint32_t)(t->n + 1);
	return (long)t->n++;
}

#define NULL_ID UINT32_MAX

/* One synthesised column. */
typedef struct scol {
	size_t col; /* in the schema */
	enum cmp_type type;
	bool nullable;
	/* read */
	strtab st;      /* string */
	uint32_t *sid;  /* string: per row, NULL_ID for null */
	double *num;    /* numeric: per row, NAN for null */
	/* domain */
	size_t *cat;    /* string: released ids, in id order */
	size_t ncat;
	double *sel;    /* string: their noisy counts (a measurement too) */
	uint32_t *idcode; /* string: id -> code */
	double lo, hi;
	unsigned bins;
	bool bounds_private; /* estimated, not declared */
	size_t dom;     /* codes: categories + other, or bins; + null */
	uint32_t *code; /* per input row */
	/* measurements and model */
	double *y1;     /* noisy 1-way (dom) */
	double *marg;   /* model marginal (dom), sums to the noisy row count */
	/* output */
	uint32_t *out;  /* per output row */
} scol;

typedef struct edge {
	size_t a, b;   /* indices into the scol array */
	double *y2;    /* noisy 2-way, dom_a x dom_b, row-major */
	double *fit;   /* model 2-way */
	uint64_t score;
	gnoise g;      /* its noise: a share of rho_2 by its size */
} edge;

typedef struct synth {
	const cmp_synth *s;
	cmp_rng *rng;
	scol *sc;
	size_t nsc;
	int *which; /* schema column -> scol index, -1 if masked */
	uint64_t rows;
	size_t rows_cap;
	bool header_seen;
	edge *edges;
	size_t nedges;
	double n_hat; /* noisy row count */
	/* accounting, for the report */
	double rho, rho_cat, rho_bounds, rho_1, rho_select, rho_2;
	gnoise g_cat, g_bounds, g_1, g_2;
	double em_eps; /* per round */
	double tau;    /* category threshold */
	double delta_cat;
} synth;

static int on_record(void *ctx, const cmp_csv_field *f, size_t n, dcr_err *err)
{
	synth *y = ctx;
	const cmp_schema *sch = &y->s->schema;
	const char *label = y->s->label ? y->s->label : "input";
	if (!y->header_seen) {
		if (n != sch->ncols)
			return dcr_err_set(err, DCR_EINVALID,
			                   "%s line 1: the header has %zu columns, the schema %zu",
			                   label, n, sch->ncols);
		for (size_t i = 0; i < n; i++)
			if (strlen(sch->cols[i].name) != f[i].n ||
			    memcmp(sch->cols[i].name, f[i].p, f[i].n) != 0)
				return dcr_err_set(err, DCR_EINVALID,
				                   "%s line 1: header column %zu is not \"%s\"", label,
				                   i + 1, sch->cols[i].name);
		y->header_seen = true;
		return 0;
	}
	if (n != sch->ncols)
		return dcr_err_set(err, DCR_EINVALID, "%s line %llu: %zu fields, the schema has %zu",
		                   label, (unsigned long long)f[0].line, n, sch->ncols);
	if (y->rows >= DCR_SYNTH_ROWS_MAX)
		return dcr_err_set(err, DCR_ELIMIT, "%s: more than %llu rows", label,
		                   (unsigned long long)DCR_SYNTH_ROWS_MAX);
	if (y->rows == y->rows_cap) {
		y->rows_cap = y->rows_cap ? y->rows_cap * 2 : 4096;
		for (size_t k = 0; k < y->nsc; k++) {
			scol *c = &y->sc[k];
			if (c->type == CMP_STRING)
				c->sid = dcr_realloc(c->sid, y->rows_cap * sizeof *c->sid);
			else
				c->num = dcr_realloc(c->num, y->rows_cap * sizeof *c->num);
		}
	}
	/* Masked columns are skipped here: never parsed, never stored. */
	for (size_t k = 0; k < y->nsc; k++) {
		scol *c = &y->sc[k];
		const cmp_csv_field *v = &f[c->col];
		bool null = v->n == 0 && !v->quoted;
		if (null && !c->nullable)
			return dcr_err_set(err, DCR_EINVALID,
			                   "%s line %llu, column \"%s\": empty in a column that is not "
			                   "nullable",
			                   label, (unsigned long long)v->line, sch->cols[c->col].name);
		if (c->type == CMP_STRING) {
			if (null) {
				c->sid[y->rows] = NULL_ID;
				continue;
			}
			long id = strtab_id(&c->st, v->p, v->n);
			if (id < 0)
				return dcr_err_set(err, DCR_ELIMIT,
				                   "%s, column \"%s\": more than %u distinct values; mask "
				                   "it instead",
				                   label, sch->cols[c->col].name, DCR_SYNTH_DISTINCT_MAX);
			c->st.count[id]++;
			c->sid[y->rows] = (uint32_t)id;
			continue;
		}
		if (null) {
			c->num[y->rows] = NAN;
			continue;
		}
		double d;
		int64_t i64;
		int r = c->type == CMP_INTEGER ? cmp__parse_int(v->p, v->n, &i64)
		                               : cmp__parse_float(v->p, v->n, &d);
		if (r)
			return dcr_err_set(err, DCR_EINVALID, "%s line %llu, column \"%s\": not %s",
			                   label, (unsigned long long)v->line,
			                   sch->cols[c->col].name,
			                   c->type == CMP_INTEGER ? "an integer" : "a float");
		c->num[y->rows] = c->type == CMP_INTEGER ? (double)i64 : d;
	}
	y->rows++;
	return 0;
}

/* ---- domains ----------------------------------------------------------------- */

static double gauss(synth *y, const gnoise *g)
{
	int64_t v = 0;
	dcr_err e;
	int rc = cmp_noise_dgauss(y->rng, g->num, g->den, &v, &e);
	DCR_ASSERT(rc == 0); /* parameters checked by gnoise_init */
	return (double)v;
}

typedef struct cand {
	size_t id;
	double noisy;
} cand;

static int cmp_cand(const void *a, const void *b)
{
	const cand *x = a, *z = b;
	if (x->noisy != z->noisy)
		return x->noisy > z->noisy ? -1 : 1;
	return x->id < z->id ? -1 : x->id > z->id;
}

static int cmp_cand_id(const void *a, const void *b)
{
	const cand *x = a, *z = b;
	return x->id < z->id ? -1 : x->id > z->id;
}

/* Released categories: noisy count >= tau; the largest
 * DCR_SYNTH_CATEGORIES_MAX of them (post-processing). */
static void domain_string(synth *y, scol *c, bool exact)
{
	cand *cd = dcr_calloc(c->st.n ? c->st.n : 1, sizeof *cd);
	size_t n = 0;
	for (size_t i = 0; i < c->st.n; i++) {
		double v = (double)c->st.count[i];
		if (!exact)
			v += gauss(y, &y->g_cat);
		if (v >= (exact ? 1 : y->tau))
			cd[n++] = (cand){ i, v };
	}
	qsort(cd, n, sizeof *cd, cmp_cand);
	if (n > DCR_SYNTH_CATEGORIES_MAX)
		n = DCR_SYNTH_CATEGORIES_MAX;
	qsort(cd, n, sizeof *cd, cmp_cand_id);
	c->cat = dcr_calloc(n ? n : 1, sizeof *c->cat);
	c->sel = dcr_calloc(n ? n : 1, sizeof *c->sel);
	for (size_t i = 0; i < n; i++) {
		c->cat[i] = cd[i].id;
		c->sel[i] = cd[i].noisy;
	}
	c->ncat = n;
	free(cd);
	size_t other = n; /* the other bucket's code */
	c->idcode = dcr_calloc(c->st.n ? c->st.n : 1, sizeof *c->idcode);
	for (size_t i = 0; i < c->st.n; i++)
		c->idcode[i] = (uint32_t)other;
	for (size_t i = 0; i < n; i++)
		c->idcode[c->cat[i]] = (uint32_t)i;
	c->dom = n + 1 + (c->nullable ? 1 : 0);
}

/* Power-of-two buckets for private bounds: bucket 64 + k holds [2^(k-1),
 * 2^k) (k >= 1) and [0, 1) (k = 0); bucket 63 - k the negatives mirrored. */
#define NBUCKETS 128

static int bucket_of(double v)
{
	double a = fabs(v);
	int k = a < 1 ? 0 : 1 + (int)floor(log2(a));
	if (k > 63)
		k = 63;
	return v >= 0 ? 64 + k : 63 - k;
}

static double bucket_lo(int b)
{
	if (b >= 64)
		return b == 64 ? 0 : ldexp(1, b - 64 - 1);
	int k = 63 - b;
	return -(k == 0 ? 1 : ldexp(1, k));
}

static double bucket_hi(int b)
{
	if (b >= 64)
		return ldexp(1, b - 64);
	int k = 63 - b;
	return k == 0 ? 0 : -ldexp(1, k - 1);
}

static void domain_numeric(synth *y, scol *c, const cmp_synth_col *def, bool exact)
{
	unsigned bins = def && def->bins ? def->bins : DCR_SYNTH_BINS_DEFAULT;
	if (def && def->has_bounds) {
		c->lo = def->lo;
		c->hi = def->hi;
	} else {
		c->bounds_private = true;
		double h[NBUCKETS] = { 0 };
		for (uint64_t r = 0; r < y->rows; r++)
			if (!isnan(c->num[r]))
				h[bucket_of(c->num[r])] += 1;
		double thr = exact ? 0.5 : 3 * sqrt(y->g_bounds.sigma2);
		int first = -1, last = -1;
		for (int b = 0; b < NBUCKETS; b++) {
			if (!exact)
				h[b] += gauss(y, &y->g_bounds);
			if (h[b] >= thr) {
				if (first < 0)
					first = b;
				last = b;
			}
		}
		if (first < 0) {
			c->lo = 0;
			c->hi = 1;
		} else {
			c->lo = bucket_lo(first);
			c->hi = bucket_hi(last);
		}
	}
	if (c->type == CMP_INTEGER) {
		c->lo = floor(c->lo);
		c->hi = ceil(c->hi);
		if (c->hi <= c->lo)
			c->hi = c->lo + 1;
		double span = c->hi - c->lo + 1; /* integers lo..hi */
		if (bins > span)
			bins = (unsigned)span;
	}
	c->bins = bins;
	c->dom = bins + (c->nullable ? 1 : 0);
}

static uint32_t num_code(const scol *c, double v)
{
	if (isnan(v))
		return (uint32_t)c->bins; /* the null bucket */
	double width = c->type == CMP_INTEGER ? c->hi - c->lo + 1 : c->hi - c->lo;
	double t = (v - c->lo) / width * c->bins;
	if (!(t >= 0))
		t = 0;
	if (t >= c->bins)
		t = c->bins - 1;
	return (uint32_t)t;
}

static void encode(synth *y, scol *c)
{
	c->code = dcr_calloc(y->rows ? y->rows : 1, sizeof *c->code);
	for (uint64_t r = 0; r < y->rows; r++) {
		if (c->type == CMP_STRING)
			c->code[r] = c->sid[r] == NULL_ID ? (uint32_t)(c->ncat + 1)
			                                  : c->idcode[c->sid[r]];
		else
			c->code[r] = num_code(c, c->num[r]);
		DCR_ASSERT(c->code[r] < c->dom);
	}
}

/* ---- measurements ------------------------------------------------------------ */

static double *hist1(synth *y, const scol *c)
{
	double *h = dcr_calloc(c->dom, sizeof *h);
	for (uint64_t r = 0; r < y->rows; r++)
		h[c->code[r]] += 1;
	return h;
}

static double *hist2(synth *y, const scol *a, const scol *b)
{
	double *h = dcr_calloc(a->dom * b->dom, sizeof *h);
	for (uint64_t r = 0; r < y->rows; r++)
		h[(size_t)a->code[r] * b->dom + b->code[r]] += 1;
	return h;
}

static void add_noise(synth *y, double *h, size_t n, const gnoise *g)
{
	for (size_t i = 0; i < n; i++)
		h[i] += gauss(y, g);
}

static int cmp_desc(const void *a, const void *b)
{
	double x = *(const double *)a, z = *(const double *)b;
	return x > z ? -1 : x < z;
}

/* The Euclidean projection onto {x >= 0, sum x = sum p}: x = max(p -
 * theta, 0) with theta >= 0 fixing the sum (the least-squares fit of one
 * noisy histogram under non-negativity; unlike clipping at 0 it does not
 * inflate the cells whose true count is 0), then scaled to total (uniform
 * if nothing is left). */
static void project(double *p, size_t n, double total)
{
	double *v = dcr_malloc(n * sizeof *v), cum = 0, theta = 0, own = 0;
	for (size_t i = 0; i < n; i++)
		own += p[i];
	memcpy(v, p, n * sizeof *v);
	qsort(v, n, sizeof *v, cmp_desc);
	for (size_t i = 0; i < n && own > 0; i++) {
		cum += v[i];
		double t = (cum - own) / (double)(i + 1);
		if (i + 1 == n || v[i + 1] <= t) {
			theta = t;
			if (v[i] > t)
				break;
		}
	}
	free(v);
	double s = 0;
	for (size_t i = 0; i < n; i++) {
		p[i] = own > 0 && p[i] > theta ? p[i] - theta : 0;
		s += p[i];
	}
	for (size_t i = 0; i < n; i++)
		p[i] = s > 0 ? p[i] * total / s : total / (double)n;
}

/* ---- tree selection --------------------------------------------------------- */

static size_t find(size_t *parent, size_t x)
{
	while (parent[x] != x)
		x = parent[x] = parent[parent[x]];
	return x;
}

static double mutual_info(const double *h, size_t na, size_t nb, double n)
{
	double *ra = dcr_calloc(na, sizeof *ra), *rb = dcr_calloc(nb, sizeof *rb), mi = 0;
	for (size_t i = 0; i < na; i++)
		for (size_t j = 0; j < nb; j++) {
			ra[i] += h[i * nb + j];
			rb[j] += h[i * nb + j];
		}
	for (size_t i = 0; i < na; i++)
		for (size_t j = 0; j < nb; j++) {
			double p = h[i * nb + j];
			if (p > 0)
				mi += p / n * log(p * n / (ra[i] * rb[j]));
		}
	free(ra);
	free(rb);
	return mi;
}

/* The exponential mechanism, exact: a uniform candidate is accepted with
 * probability exp(-(best - score) half / DCR_SYNTH_EM_SCALE), an exact
 * Bernoulli (cmp_noise.c), so candidate i is chosen with probability
 * proportional to exp(score_i half / DCR_SYNTH_EM_SCALE). The best is
 * accepted with probability 1: at most n rounds are expected. An exponent
 * beyond 2^64 / DCR_SYNTH_EM_SCALE (acceptance below exp(-2^40)) is a
 * rejection. */
size_t cmp__synth_em_pick(cmp_rng *r, const uint64_t *score, size_t n, uint64_t half)
{
	uint64_t best = 0;
	DCR_ASSERT(n > 0);
	for (size_t i = 0; i < n; i++)
		if (score[i] > best)
			best = score[i];
	for (;;) {
		size_t c = (size_t)below(r, n);
		uint64_t gap = best - score[c], num;
		if (__builtin_mul_overflow(gap, half, &num))
			continue;
		if (cmp__noise_bern_exp(r, num, DCR_SYNTH_EM_SCALE))
			return c;
	}
}

/* Chooses the tree's nsc - 1 edges into y->edges. */
static void select_tree(synth *y)
{
	size_t d = y->nsc, npairs = d * (d - 1) / 2;
	edge *cands = dcr_calloc(npairs ? npairs : 1, sizeof *cands);
	double *mi = dcr_calloc(npairs ? npairs : 1, sizeof *mi);
	size_t k = 0;
	for (size_t a = 0; a < d; a++)
		for (size_t b = a + 1; b < d; b++, k++) {
			scol *ca = &y->sc[a], *cb = &y->sc[b];
			double *h = hist2(y, ca, cb), l1 = 0;
			cands[k].a = a;
			cands[k].b = b;
			if (y->s->mode == CMP__SYNTH_CHOW_LIU) {
				mi[k] = mutual_info(h, ca->dom, cb->dom, (double)y->rows);
			} else {
				for (size_t i = 0; i < ca->dom; i++)
					for (size_t j = 0; j < cb->dom; j++)
						l1 += fabs(h[i * cb->dom + j] -
						           ca->marg[i] * cb->marg[j] / y->n_hat);
				cands[k].score = (uint64_t)floor(l1);
			}
			free(h);
		}
	size_t *parent = dcr_calloc(d, sizeof *parent);
	for (size_t i = 0; i < d; i++)
		parent[i] = i;
	y->edges = dcr_calloc(d, sizeof *y->edges);
	/* eps/2 of each round as a fraction over 2^24, rounded down (less
	 * weight on the scores: never more privacy loss). */
	uint64_t half = (uint64_t)floor(y->em_eps / 2 * (double)DCR_SYNTH_EM_SCALE);
	size_t *live = dcr_calloc(npairs ? npairs : 1, sizeof *live);
	uint64_t *lscore = dcr_calloc(npairs ? npairs : 1, sizeof *lscore);
	while (y->nedges + 1 < d) {
		size_t nl = 0;
		for (size_t i = 0; i < npairs; i++)
			if (find(parent, cands[i].a) != find(parent, cands[i].b))
				live[nl++] = i;
		DCR_ASSERT(nl > 0);
		size_t pick = live[0];
		if (y->s->mode == CMP__SYNTH_CHOW_LIU) {
			for (size_t i = 1; i < nl; i++)
				if (mi[live[i]] > mi[pick])
					pick = live[i];
		} else {
			for (size_t i = 0; i < nl; i++)
				lscore[i] = cands[live[i]].score;
			pick = live[cmp__synth_em_pick(y->rng, lscore, nl, half)];
		}
		parent[find(parent, cands[pick].a)] = find(parent, cands[pick].b);
		y->edges[y->nedges].a = cands[pick].a;
		y->edges[y->nedges].b = cands[pick].b;
		y->edges[y->nedges].score = cands[pick].score;
		y->nedges++;
	}
	free(lscore);
	free(live);
	free(parent);
	free(mi);
	free(cands);
}

/* rho_2 over the tree's edges in proportion to cells^(2/3): the split
 * that minimises the sum over edges of cells x sigma (the expected L1
 * noise) under sum rho_e = rho_2. The tree and the domains are already
 * released, so the split costs nothing. */
static int edge_noise(synth *y, dcr_err *err)
{
	double wsum = 0;
	for (size_t e = 0; e < y->nedges; e++)
		wsum += pow((double)(y->sc[y->edges[e].a].dom * y->sc[y->edges[e].b].dom), 2.0 / 3);
	for (size_t e = 0; e < y->nedges; e++) {
		edge *g = &y->edges[e];
		double w = pow((double)(y->sc[g->a].dom * y->sc[g->b].dom), 2.0 / 3);
		int rc = gnoise_init(&g->g, y->rho_2 * w / wsum, "2-way marginals", err);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- estimation ----------------------------------------------------------------- */

static void estimate(synth *y, bool exact)
{
	/* Column marginals: inverse-variance weighted means per cell. */
	for (size_t k = 0; k < y->nsc; k++) {
		scol *c = &y->sc[k];
		double w1 = exact ? 1 : 1 / y->g_1.sigma2;
		double *acc = dcr_calloc(c->dom, sizeof *acc), wsum = w1;
		for (size_t i = 0; i < c->dom; i++)
			acc[i] = w1 * c->y1[i];
		for (size_t e = 0; e < y->nedges && !exact; e++) {
			edge *g = &y->edges[e];
			if (g->a != k && g->b != k)
				continue;
			scol *o = &y->sc[g->a == k ? g->b : g->a];
			double w = 1 / (g->g.sigma2 * (double)o->dom);
			for (size_t i = 0; i < c->dom; i++) {
				double s = 0;
				for (size_t j = 0; j < o->dom; j++)
					s += g->a == k ? g->y2[i * o->dom + j] : g->y2[j * c->dom + i];
				acc[i] += w * s;
			}
			wsum += w;
		}
		for (size_t i = 0; i < c->dom; i++)
			acc[i] /= wsum;
		project(acc, c->dom, y->n_hat);
		free(c->marg);
		c->marg = acc;
	}
	/* Edge tables fitted to both marginals. */
	for (size_t e = 0; e < y->nedges; e++) {
		edge *g = &y->edges[e];
		scol *a = &y->sc[g->a], *b = &y->sc[g->b];
		size_t na = a->dom, nb = b->dom;
		double *t = dcr_malloc(na * nb * sizeof *t);
		memcpy(t, g->y2, na * nb * sizeof *t);
		project(t, na * nb, y->n_hat);
		for (int round = 0; round < IPF_ROUNDS; round++) {
			for (size_t i = 0; i < na; i++) {
				double s = 0;
				for (size_t j = 0; j < nb; j++)
					s += t[i * nb + j];
				for (size_t j = 0; j < nb; j++)
					t[i * nb + j] = s > 0 ? t[i * nb + j] * a->marg[i] / s
					                      : a->marg[i] / (double)nb;
			}
			for (size_t j = 0; j < nb; j++) {
				double s = 0;
				for (size_t i = 0; i < na; i++)
					s += t[i * nb + j];
				for (size_t i = 0; i < na; i++)
					t[i * nb + j] = s > 0 ? t[i * nb + j] * b->marg[j] / s
					                      : b->marg[j] / (double)na;
			}
		}
		g->fit = t;
	}
}

/* ---- sampling ---------------------------------------------------------------------- */

static void shuffle(cmp_rng *r, uint32_t *v, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)below(r, i);
		uint32_t t = v[i - 1];
		v[i - 1] = v[j];
		v[j] = t;
	}
}

typedef struct frac {
	double f;
	uint64_t tie;
	size_t i;
} frac;

static int cmp_frac(const void *a, const void *b)
{
	const frac *x = a, *z = b;
	if (x->f != z->f)
		return x->f > z->f ? -1 : 1;
	return x->tie < z->tie ? -1 : x->tie > z->tie;
}

/* m values drawn to follow the weights w[0..k) (largest remainder, random
 * tie-break), written to out in random order. */
static void allocate(cmp_rng *r, const double *w, size_t k, size_t m, uint32_t *out)
{
	double s = 0;
	for (size_t i = 0; i < k; i++)
		s += w[i] > 0 ? w[i] : 0;
	frac *fr = dcr_calloc(k, sizeof *fr);
	size_t used = 0, pos = 0;
	for (size_t i = 0; i < k; i++) {
		double x = s > 0 ? (w[i] > 0 ? w[i] : 0) * (double)m / s : (double)m / (double)k;
		double fl = floor(x);
		size_t cnt = (size_t)fl;
		if (used + cnt > m)
			cnt = m - used;
		used += cnt;
		for (size_t j = 0; j < cnt; j++)
			out[pos++] = (uint32_t)i;
		fr[i] = (frac){ x - fl, below(r, UINT64_MAX), i };
	}
	qsort(fr, k, sizeof *fr, cmp_frac);
	for (size_t j = 0; pos < m; j = (j + 1) % k)
		out[pos++] = (uint32_t)fr[j].i;
	free(fr);
	shuffle(r, out, m);
}

static void sample(synth *y, uint64_t n)
{
	size_t d = y->nsc;
	bool *done = dcr_calloc(d, sizeof *done);
	for (size_t k = 0; k < d; k++)
		y->sc[k].out = dcr_calloc(n ? n : 1, sizeof(uint32_t));
	/* Roots: column 0, and every column with no edge (independent). */
	for (size_t k = 0; k < d; k++) {
		bool has_edge = false;
		for (size_t e = 0; e < y->nedges; e++)
			has_edge |= y->edges[e].a == k || y->edges[e].b == k;
		if (k == 0 || !has_edge) {
			allocate(y->rng, y->sc[k].marg, y->sc[k].dom, n, y->sc[k].out);
			done[k] = true;
		}
	}
	size_t *rows = dcr_calloc(n ? n : 1, sizeof *rows);
	uint32_t *tmp = dcr_calloc(n ? n : 1, sizeof *tmp);
	for (bool progress = true; progress;) {
		progress = false;
		for (size_t e = 0; e < y->nedges; e++) {
			edge *g = &y->edges[e];
			if (done[g->a] == done[g->b])
				continue;
			bool down = done[g->a]; /* parent a, child b */
			scol *p = &y->sc[down ? g->a : g->b], *c = &y->sc[down ? g->b : g->a];
			double *w = dcr_calloc(c->dom, sizeof *w);
			/* Rows grouped by the parent's value (counting sort). */
			size_t *start = dcr_calloc(p->dom + 1, sizeof *start);
			for (uint64_t r = 0; r < n; r++)
				start[p->out[r] + 1]++;
			for (size_t v = 0; v < p->dom; v++)
				start[v + 1] += start[v];
			size_t *fill = dcr_calloc(p->dom, sizeof *fill);
			for (uint64_t r = 0; r < n; r++)
				rows[start[p->out[r]] + fill[p->out[r]]++] = r;
			for (size_t v = 0; v < p->dom; v++) {
				size_t m = start[v + 1] - start[v];
				if (!m)
					continue;
				for (size_t j = 0; j < c->dom; j++)
					w[j] = down ? g->fit[v * c->dom + j] : g->fit[j * p->dom + v];
				allocate(y->rng, w, c->dom, m, tmp);
				for (size_t i = 0; i < m; i++)
					c->out[rows[start[v] + i]] = tmp[i];
			}
			free(fill);
			free(start);
			free(w);
			done[down ? g->b : g->a] = true;
			progress = true;
		}
	}
	for (size_t k = 0; k < d; k++)
		DCR_ASSERT(done[k]);
	free(tmp);
	free(rows);
	free(done);
}

/* ---- output ------------------------------------------------------------------------ */

static void csv_field(dcr_buf *b, const char *s, size_t n)
{
	bool q = n == 0;
	for (size_t i = 0; i < n && !q; i++)
		q = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
	if (!q) {
		dcr_buf_append(b, s, n);
		return;
	}
	dcr_buf_append_u8(b, '"');
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"')
			dcr_buf_append_u8(b, '"');
		dcr_buf_append_u8(b, (uint8_t)s[i]);
	}
	dcr_buf_append_u8(b, '"');
}

static double unif(cmp_rng *r)
{
	return (double)below(r, (uint64_t)1 << 53) / 9007199254740992.0;
}

static void decode(synth *y, const scol *c, uint32_t code, dcr_buf *out)
{
	if (c->nullable && code == c->dom - 1)
		return; /* null: an empty unquoted field */
	if (c->type == CMP_STRING) {
		if (code == c->ncat) {
			dcr_buf_append_str(out, OTHER_TEXT);
			return;
		}
		size_t id = c->cat[code];
		csv_field(out, (const char *)c->st.bytes.data + c->st.off[id], c->st.len[id]);
		return;
	}
	if (c->type == CMP_INTEGER) {
		double w = (c->hi - c->lo + 1) / c->bins;
		double a = ceil(c->lo + code * w), b = ceil(c->lo + (code + 1) * w) - 1;
		if (b < a)
			b = a;
		if (b - a > 9e15)
			b = a + 9e15;
		dcr_buf_printf(out, "%.0f", a + (double)below(y->rng, (uint64_t)(b - a) + 1));
		return;
	}
	double w = (c->hi - c->lo) / c->bins;
	dcr_buf_printf(out, "%.6f", c->lo + (code + unif(y->rng)) * w);
}

static int write_csv(synth *y, uint64_t n, cmp_result *res, dcr_err *err)
{
	const cmp_schema *sch = &y->s->schema;
	for (size_t i = 0; i < sch->ncols; i++) {
		if (i)
			dcr_buf_append_u8(&res->csv, ',');
		csv_field(&res->csv, sch->cols[i].name, strlen(sch->cols[i].name));
	}
	dcr_buf_append_u8(&res->csv, '\n');
	for (uint64_t r = 0; r < n; r++) {
		for (size_t i = 0; i < sch->ncols; i++) {
			if (i)
				dcr_buf_append_u8(&res->csv, ',');
			if (y->which[i] < 0) {
				size_t at = res->csv.len;
				cmp__synth_mask_value(y->rng, y->s->cols[i].mask, sch->cols[i].type,
				                      &res->csv);
				DCR_ASSERT(res->csv.len > at);
			} else {
				const scol *c = &y->sc[y->which[i]];
				decode(y, c, c->out[r], &res->csv);
			}
		}
		dcr_buf_append_u8(&res->csv, '\n');
	}
	res->rows = n;
	res->ncols = sch->ncols;
	res->cols = dcr_calloc(sch->ncols, sizeof *res->cols);
	for (size_t i = 0; i < sch->ncols; i++) {
		res->cols[i].name = dcr_strdup(sch->cols[i].name);
		res->cols[i].type = sch->cols[i].type;
		res->cols[i].format = CMP_FMT_NONE;
		res->cols[i].nullable = sch->cols[i].nullable;
	}
	return 0;
	(void)err;
}

/* The report: settings, accounting and the measurements' own quality
 * estimates (docs/privacy.md). Only noisy values and public settings. */
static void write_report(synth *y, uint64_t nout, dcr_buf *rep)
{
	const cmp_synth *s = y->s;
	const cmp_schema *sch = &s->schema;
	double eps = (double)s->epsilon / DCR_DP_EPSILON_SCALE;
	dcr_buf_printf(rep,
	               "{\"mechanism\":\"%s\",\"epsilon\":%.6f,\"delta\":%.3g,\"rho\":%.9g,"
	               "\"neighbours\":\"one row added or removed\",",
	               s->mode == CMP_SYNTH_MST            ? "MST (McKenna, Miklau, Sheldon 2021)"
	               : s->mode == CMP__SYNTH_INDEPENDENT ? "independent marginals (bench)"
	                                                   : "Chow-Liu tree, NOT PRIVATE (bench)",
	               eps, DCR_SYNTH_DELTA, y->rho);
	dcr_buf_printf(rep,
	               "\"rho_split\":{\"categories\":%.9g,\"bounds\":%.9g,\"one_way\":%.9g,"
	               "\"tree_selection\":%.9g,\"two_way\":%.9g},",
	               y->rho_cat, y->rho_bounds, y->rho_1, y->rho_select, y->rho_2);
	dcr_buf_printf(rep, "\"rows_noisy\":%.0f,\"rows\":%llu,\"masked\":[", y->n_hat,
	               (unsigned long long)nout);
	bool first = true;
	for (size_t i = 0; i < sch->ncols; i++) {
		if (y->which[i] >= 0)
			continue;
		dcr_buf_printf(rep, "%s{\"column\":", first ? "" : ",");
		dcr_json_str(rep, sch->cols[i].name, strlen(sch->cols[i].name));
		dcr_buf_printf(rep, ",\"format\":\"%s\"}", cmp_mask_name(s->cols[i].mask));
		first = false;
	}
	dcr_buf_append_str(rep, "],\"columns\":[");
	for (size_t k = 0; k < y->nsc; k++) {
		const scol *c = &y->sc[k];
		dcr_buf_printf(rep, "%s{\"column\":", k ? "," : "");
		dcr_json_str(rep, sch->cols[c->col].name, strlen(sch->cols[c->col].name));
		if (c->type == CMP_STRING)
			dcr_buf_printf(rep, ",\"categories\":%zu,\"other_bucket\":true", c->ncat);
		else
			dcr_buf_printf(rep, ",\"bins\":%u,\"lo\":%.17g,\"hi\":%.17g,\"bounds\":\"%s\"",
			               c->bins, c->lo, c->hi,
			               c->bounds_private ? "estimated privately" : "declared");
		dcr_buf_printf(rep, ",\"null_bucket\":%s,\"domain\":%zu}",
		               c->nullable ? "true" : "false", c->dom);
	}
	dcr_buf_printf(rep, "],\"one_way_sigma\":%.6g,\"two_way_sigma\":[",
	               sqrt(y->g_1.sigma2));
	for (size_t e = 0; e < y->nedges; e++)
		dcr_buf_printf(rep, "%s%.6g", e ? "," : "", sqrt(y->edges[e].g.sigma2));
	dcr_buf_append_str(rep, "],\"tree\":[");
	double fit = 0, noise = 0;
	for (size_t e = 0; e < y->nedges; e++) {
		const edge *g = &y->edges[e];
		const scol *a = &y->sc[g->a], *b = &y->sc[g->b];
		dcr_buf_append_str(rep, e ? ",[" : "[");
		dcr_json_str(rep, sch->cols[a->col].name, strlen(sch->cols[a->col].name));
		dcr_buf_append_u8(rep, ',');
		dcr_json_str(rep, sch->cols[b->col].name, strlen(sch->cols[b->col].name));
		dcr_buf_append_u8(rep, ']');
		double l1 = 0;
		for (size_t i = 0; i < a->dom * b->dom; i++)
			l1 += fabs(g->fit[i] - g->y2[i]);
		fit += l1 / (2 * y->n_hat);
		/* E|N(0, s^2)| = s sqrt(2/pi) per cell. */
		noise += sqrt(g->g.sigma2) * sqrt(2 / M_PI) * (double)(a->dom * b->dom) /
		         (2 * y->n_hat);
	}
	double noise1 = 0;
	for (size_t k = 0; k < y->nsc; k++)
		noise1 += sqrt(y->g_1.sigma2) * sqrt(2 / M_PI) * (double)y->sc[k].dom /
		          (2 * y->n_hat);
	dcr_buf_printf(rep,
	               "],\"quality\":{\"source\":\"DP measurements only\","
	               "\"one_way_noise_tvd\":%.6g,\"two_way_noise_tvd\":%.6g,"
	               "\"two_way_fit_tvd\":%.6g}}",
	               y->nsc ? noise1 / (double)y->nsc : 0,
	               y->nedges ? noise / (double)y->nedges : 0,
	               y->nedges ? fit / (double)y->nedges : 0);
}

/* ---- the run ----------------------------------------------------------------------- */

int cmp_synth_check(const cmp_synth *s, dcr_err *err)
{
	if (s->schema.ncols == 0 || s->schema.ncols > DCR_RM_COLUMNS_MAX)
		return dcr_err_set(err, DCR_EINVALID, "synthetic: the input needs 1 to %u columns",
		                   DCR_RM_COLUMNS_MAX);
	if (s->epsilon == 0 || s->epsilon > DCR_DP_EPSILON_MAX)
		return dcr_err_set(err, DCR_EINVALID,
		                   "synthetic: epsilon must be above 0 and at most %u",
		                   DCR_DP_EPSILON_MAX / DCR_DP_EPSILON_SCALE);
	if (s->rows > DCR_SYNTH_ROWS_OUT_MAX)
		return dcr_err_set(err, DCR_EINVALID, "synthetic: rows must be at most %llu",
		                   (unsigned long long)DCR_SYNTH_ROWS_OUT_MAX);
	if (s->mode != CMP_SYNTH_MST && !(s->rng && s->rng->test))
		return dcr_err_set(err, DCR_EINVALID, "synthetic: baselines are for the bench only");
	for (size_t i = 0; i < s->schema.ncols && s->cols; i++) {
		const cmp_synth_col *c = &s->cols[i];
		const cmp_column *sc = &s->schema.cols[i];
		if ((unsigned)c->mask >= CMP_MASK_COUNT || !cmp_mask_fits(c->mask, sc->type))
			return dcr_err_set(err, DCR_EINVALID,
			                   "synthetic: column \"%s\": mask %s does not fit type %s",
			                   sc->name, cmp_mask_name(c->mask), cmp_type_name(sc->type));
		bool numeric = sc->type != CMP_STRING;
		if ((c->has_bounds || c->bins) && (!numeric || c->mask != CMP_MASK_NONE))
			return dcr_err_set(err, DCR_EINVALID,
			                   "synthetic: column \"%s\": bounds and bins are for "
			                   "synthesised numeric columns",
			                   sc->name);
		if (c->has_bounds && !(isfinite(c->lo) && isfinite(c->hi) && c->lo < c->hi &&
		                       fabs(c->lo) < 1e15 && fabs(c->hi) < 1e15))
			return dcr_err_set(err, DCR_EINVALID,
			                   "synthetic: column \"%s\": bounds must be finite, below "
			                   "10^15 in size, and lo < hi",
			                   sc->name);
		if (c->bins > DCR_SYNTH_BINS_MAX)
			return dcr_err_set(err, DCR_EINVALID,
			                   "synthetic: column \"%s\": bins must be 1 to %u", sc->name,
			                   DCR_SYNTH_BINS_MAX);
	}
	return 0;
}

static void synth_release(synth *y)
{
	for (size_t k = 0; k < y->nsc; k++) {
		scol *c = &y->sc[k];
		strtab_release(&c->st);
		if (c->sid)
			dcr_wipe(c->sid, y->rows * sizeof *c->sid);
		if (c->num)
			dcr_wipe(c->num, y->rows * sizeof *c->num);
		if (c->code)
			dcr_wipe(c->code, y->rows * sizeof *c->code);
		free(c->sid);
		free(c->num);
		free(c->code);
		free(c->cat);
		free(c->sel);
		free(c->idcode);
		free(c->y1);
		free(c->marg);
		free(c->out);
	}
	for (size_t e = 0; e < y->nedges; e++) {
		free(y->edges[e].y2);
		free(y->edges[e].fit);
	}
	free(y->edges);
	free(y->sc);
	free(y->which);
}

/* The budget split (see the top of the file). */
static int plan(synth *y, dcr_err *err)
{
	const cmp_synth *s = y->s;
	size_t nstr = 0, nbnd = 0, d = y->nsc;
	for (size_t k = 0; k < d; k++) {
		const scol *c = &y->sc[k];
		if (c->type == CMP_STRING)
			nstr++;
		else if (!(s->cols && s->cols[c->col].has_bounds))
			nbnd++;
	}
	double rho = cmp_synth_rho((double)s->epsilon / DCR_DP_EPSILON_SCALE), rest = rho;
	y->rho = rho;
	int rc = 0;
	if (nstr) {
		y->rho_cat = SHARE_CATEGORIES * rho;
		rest -= y->rho_cat;
		if ((rc = gnoise_init(&y->g_cat, y->rho_cat / (double)nstr, "categories", err)))
			return rc;
		/* Each string column gets delta/2/nstr: an unreleased value
		 * (count 1 in one table, 0 in its neighbour) passes tau with
		 * probability at most exp(-(tau - 1)^2 / (2 sigma^2)). */
		y->delta_cat = DCR_SYNTH_DELTA / 2 / (double)nstr;
		y->tau = 1 + sqrt(2 * y->g_cat.sigma2 * log(1 / y->delta_cat));
	}
	if (nbnd) {
		y->rho_bounds = SHARE_BOUNDS * rho;
		rest -= y->rho_bounds;
		if ((rc = gnoise_init(&y->g_bounds, y->rho_bounds / (double)nbnd, "bounds", err)))
			return rc;
	}
	if (s->mode == CMP__SYNTH_INDEPENDENT || d <= 1) {
		y->rho_1 = rest;
	} else {
		y->rho_1 = rest * SHARE_ONE_WAY;
		y->rho_select = rest * SHARE_SELECT;
		y->rho_2 = rest - y->rho_1 - y->rho_select;
		y->em_eps = sqrt(8 * y->rho_select / (double)(d - 1));
		if ((rc = gnoise_init(&y->g_2, y->rho_2 / (double)(d - 1), "2-way marginals", err)))
			return rc;
	}
	if (d == 0) /* only the row count is measured */
		return gnoise_init(&y->g_1, y->rho_1, "the row count", err);
	return gnoise_init(&y->g_1, y->rho_1 / (double)d, "1-way marginals", err);
}

int cmp_synth_run(const cmp_synth *s, cmp_read_fn read, void *ctx, cmp_result *res,
                  dcr_buf *report, dcr_err *err)
{
	synth y = { .s = s };
	cmp_rng own;
	cmp_csv *csv = NULL;
	cmp_result out;
	dcr_buf rep;
	uint8_t *buf = NULL;
	bool exact = s->mode == CMP__SYNTH_CHOW_LIU;
	cmp_result_init(&out);
	dcr_buf_init(&rep);
	cmp_rng_init(&own);
	y.rng = s->rng ? s->rng : &own;
	int rc = cmp_synth_check(s, err);
	if (rc)
		goto out;
	const cmp_schema *sch = &s->schema;
	y.which = dcr_calloc(sch->ncols, sizeof *y.which);
	y.sc = dcr_calloc(sch->ncols, sizeof *y.sc);
	for (size_t i = 0; i < sch->ncols; i++) {
		if (s->cols && s->cols[i].mask != CMP_MASK_NONE) {
			y.which[i] = -1;
			continue;
		}
		y.which[i] = (int)y.nsc;
		scol *c = &y.sc[y.nsc++];
		c->col = i;
		c->type = sch->cols[i].type;
		c->nullable = sch->cols[i].nullable;
	}
	if ((rc = plan(&y, err)))
		goto out;

	/* Read. */
	if ((rc = cmp_csv_new(s->label ? s->label : "input", on_record, &y, &csv)))
		goto out_alloc;
	buf = dcr_malloc(64 * 1024);
	for (;;) {
		int n = read(ctx, buf, 64 * 1024);
		if (n < 0) {
			rc = dcr_err_set(err, n, "%s: reading the input failed",
			                 s->label ? s->label : "input");
			goto out;
		}
		if (n == 0)
			break;
		if ((rc = cmp_csv_feed(csv, buf, (size_t)n, err)))
			goto out;
	}
	if ((rc = cmp_csv_finish(csv, err)))
		goto out;
	if (!y.header_seen) {
		rc = dcr_err_set(err, DCR_EINVALID, "%s: no header row",
		                 s->label ? s->label : "input");
		goto out;
	}
	if (y.rows < DCR_SYNTH_ROWS_MIN) {
		rc = dcr_err_set(err, DCR_EINVALID,
		                 "synthetic: the input has fewer than %u rows; a synthetic run "
		                 "needs at least %u",
		                 DCR_SYNTH_ROWS_MIN, DCR_SYNTH_ROWS_MIN);
		goto out;
	}

	/* Domains, then the 1-way marginals and the row count. */
	for (size_t k = 0; k < y.nsc; k++) {
		scol *c = &y.sc[k];
		if (c->type == CMP_STRING)
			domain_string(&y, c, exact);
		else
			domain_numeric(&y, c, s->cols ? &s->cols[c->col] : NULL, exact);
		encode(&y, c);
	}
	double wn = 0, sn = 0;
	for (size_t k = 0; k < y.nsc; k++) {
		scol *c = &y.sc[k];
		c->y1 = hist1(&y, c);
		if (!exact)
			add_noise(&y, c->y1, c->dom, &y.g_1);
		/* A released category's noisy count from step 1 measures the
		 * same cell: inverse-variance weighted mean of both. */
		for (size_t i = 0; i < c->ncat && !exact; i++) {
			double a = 1 / y.g_1.sigma2, b = 1 / y.g_cat.sigma2;
			c->y1[i] = (a * c->y1[i] + b * c->sel[i]) / (a + b);
		}
		double t = 0;
		for (size_t i = 0; i < c->dom; i++)
			t += c->y1[i];
		double w = 1 / (double)c->dom;
		sn += w * t;
		wn += w;
	}
	if (y.nsc == 0)
		y.n_hat = (double)y.rows + (exact ? 0 : gauss(&y, &y.g_1));
	else
		y.n_hat = sn / wn;
	if (y.n_hat < 1)
		y.n_hat = 1;
	for (size_t k = 0; k < y.nsc; k++) {
		scol *c = &y.sc[k];
		c->marg = dcr_malloc(c->dom * sizeof *c->marg);
		memcpy(c->marg, c->y1, c->dom * sizeof *c->marg);
		project(c->marg, c->dom, y.n_hat);
	}

	/* The tree and its 2-way marginals. */
	if (s->mode != CMP__SYNTH_INDEPENDENT && y.nsc > 1) {
		select_tree(&y);
		if ((rc = edge_noise(&y, err)))
			goto out;
		for (size_t e = 0; e < y.nedges; e++) {
			edge *g = &y.edges[e];
			scol *a = &y.sc[g->a], *b = &y.sc[g->b];
			g->y2 = hist2(&y, a, b);
			if (!exact)
				add_noise(&y, g->y2, a->dom * b->dom, &g->g);
		}
	}
	/* From here on only the measurements are read. */
	estimate(&y, exact);
	uint64_t nout = s->rows ? s->rows : (uint64_t)llround(y.n_hat);
	if (nout > DCR_SYNTH_ROWS_OUT_MAX)
		nout = DCR_SYNTH_ROWS_OUT_MAX;
	sample(&y, nout);
	if ((rc = write_csv(&y, nout, &out, err)))
		goto out;
	dcr_mem br = {out.csv.data, out.csv.len, 0};
	if ((rc = cmp_prepare(&(cmp_schema){ out.cols, out.ncols }, "result", dcr_mem_read, &br,
	                      &out.image, err)))
		goto out;
	write_report(&y, nout, &rep);
	cmp_result_release(res);
	*res = out;
	cmp_result_init(&out);
	dcr_buf_release(report);
	*report = rep;
	dcr_buf_init(&rep);
	goto out;
out_alloc:
	rc = dcr_err_set(err, rc, "synthetic: out of memory");
out:
	free(buf);
	cmp_csv_free(csv);
	synth_release(&y);
	cmp_result_release(&out);
	dcr_buf_release(&rep);
	cmp_rng_release(&own);
	return rc;
}
