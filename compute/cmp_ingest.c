/* cmp_ingest.c: CSV validation against a schema, and statistics.
 *
 * The tokenizer (cmp_csv.c) hands over records; the first is the header,
 * matched to the schema by column name (any order; a missing, unknown or
 * repeated column is an error). Each later record must have one field per
 * column; each field is checked against its column's type, nullability and
 * format, converted to a typed value, folded into the column's statistics
 * and, when a sink is set (cmp_prepare), passed on.
 *
 * NULL: an empty unquoted field. A quoted empty field ("") is the empty
 * string in a string column and NULL in a numeric column.
 *
 * Statistics per column: nulls; distinct values, exact (a set of 64-bit
 * hashes) up to DCR_CMP_DISTINCT_EXACT_MAX values (fewer for wide schemas:
 * all sets share DCR_CMP_DISTINCT_SETS_BYTES_MAX), then a HyperLogLog with
 * 2^14 registers (about 0.8% standard error); min, max, mean and standard
 * deviation (Welford's update) for numbers; min and max length in
 * characters for strings. Memory is bounded whatever the input size.
 *
 * Two threads: a large feed (>= 256 KiB, after the header, without a
 * sink) is split at a line end (where, adapts to who waited last time); a
 * worker thread owned by the ingest validates the second part with a
 * fresh tokenizer and its own statistics while the caller validates the
 * first, and takes the second part back if the worker has not started by
 * then. The worker's work is kept only when the first part ended exactly
 * at a record boundary and the worker met no error; its statistics are then merged so that the result
 * is bit for bit what one thread computes (numbers it saw are replayed
 * through the caller's Welford batches in order; distinct sets are merged
 * through the same insert path). Otherwise it is discarded and the rest of
 * the chunk is validated sequentially, so every error message comes from
 * the sequential path. docs/compute.md, "Two threads". */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute_int.h"

#define HLL_P 14
#define HLL_M (1u << HLL_P)

#define WELFORD_BATCH 64

/* Feeds of at least this many bytes are validated on two threads. */
#define PAR_MIN_BYTES (256u * 1024)
/* Larger feeds are taken in pieces of this size (bounds the worker's
 * memory: its values and distinct sets are per piece). */
#define PAR_PIECE_BYTES DCR_CHUNK_BYTES

struct col_stats {
	uint64_t nulls, count;
	double buf[WELFORD_BATCH];
	unsigned nbuf;
	double mean, m2;
	int64_t imin, imax;
	double dmin, dmax;
	uint64_t lmin, lmax;
	uint64_t *set; /* open addressing, 0 = empty */
	size_t set_cap, set_n;
	size_t exact_max; /* values counted exactly before HyperLogLog */
	bool exact;
	uint8_t *hll; /* when exact: NULL, or all zero (a worker's, kept) */
	/* Worker only: the numbers it validated, in order, replayed through
	 * the caller's Welford batches at the merge. */
	double *vlog;
	size_t vlog_n, vlog_cap;
};

/* What checking a record reads and writes. The caller's reader points it
 * at the ingest's own fields; the worker at copies made on its own thread,
 * so that the two threads share no cache line that either of them writes
 * per record (measured: reading the ingest's map and flags next to the
 * caller's per-record writes cost the two-thread path 2-3x its CPU). */
struct checker {
	cmp_ingest *in; /* for error messages only */
	const cmp_column *cols;
	const size_t *map; /* field index -> column index */
	size_t nc;
	bool no_stats;
	struct col_stats *st;
	cmp__value *vals;
};

struct par;

struct cmp_ingest {
	cmp_schema schema; /* columns copied (names owned) */
	cmp_column *cols;
	const char **names_by_field;
	size_t *map; /* field index -> column index */
	cmp_csv *csv;
	bool header_done;
	uint64_t rows, bytes;
	struct col_stats *st;
	cmp__value *vals;
	bool no_stats;
	cmp__row_fn sink;
	void *sink_ctx;
	cmp__rows *held; /* cmp_ingest_keep_rows: every row, in file order */
	struct par *par; /* the worker, created on the first large feed */
	size_t par_min_bytes;
	int par_flags; /* CMP__PAR_* */
	unsigned par_split; /* where the split is sought, in 64ths of a piece */
	uint64_t par_fast, par_fallback, par_retracted;
};

/* The worker thread and its part of a chunk. The job fields are written
 * by the caller before it posts the job and read by it after the worker
 * reports done (both under mu); in between only the worker touches them.
 * abort is the one field both threads use at once (atomic). Allocated
 * aligned to a cache line and padded (no line shared with the caller's
 * data); the worker allocates its own state on its thread. */
enum { JOB_IDLE, JOB_POSTED, JOB_RUNNING, JOB_DONE };
#define CACHE_LINE 64
struct par {
	cmp_ingest *in;
	pthread_t tid;
	pthread_mutex_t mu;
	pthread_cond_t cv_job, cv_done, cv_ready;
	bool ready; /* the worker's state exists */
	int job;
	bool quit;
	int abort;
	/* job, from the caller */
	const char *p;
	size_t n;
	bool no_stats;
	bool keep_rows; /* the worker's rows go into held */
	bool *exact; /* per column: the caller's set is exact */
	/* the worker's own */
	cmp__rows *held; /* its part's rows (appended to the caller's) */
	struct checker k;
	cmp_csv *csv;
	struct col_stats *st;
	cmp__value *vals;
	cmp_column *cols;
	size_t *map;
	uint64_t rows;
	/* result */
	int rc;
	const char *resume; /* where the caller continues */
	uint64_t lines;     /* line ends the worker consumed before resume */
};

static int on_record(void *ctx, const cmp_csv_field *f, size_t n, dcr_err *err);

int cmp_ingest_new(const cmp_schema *schema, const char *label, cmp_ingest **out)
{
	if (schema->ncols == 0 || schema->ncols > DCR_CSV_COLS_MAX)
		return DCR_EINVALID;
	cmp_ingest *in = dcr_calloc(1, sizeof(*in));
	size_t nc = schema->ncols;
	in->cols = dcr_calloc(nc, sizeof(*in->cols));
	for (size_t i = 0; i < nc; i++) {
		in->cols[i] = schema->cols[i];
		in->cols[i].name = dcr_strdup(schema->cols[i].name);
	}
	in->schema.cols = in->cols;
	in->schema.ncols = nc;
	in->names_by_field = dcr_calloc(nc, sizeof(*in->names_by_field));
	in->map = dcr_calloc(nc, sizeof(*in->map));
	in->st = dcr_calloc(nc, sizeof(*in->st));
	in->vals = dcr_calloc(nc, sizeof(*in->vals));
	/* The exact sets of all columns share one budget (a set of n values
	 * takes up to 32n bytes: 8-byte slots, at most half full, a power of
	 * two), so a wide schema counts fewer values exactly instead of
	 * using more memory. */
	size_t exact_max = DCR_CMP_DISTINCT_SETS_BYTES_MAX / 32 / nc;
	if (exact_max > DCR_CMP_DISTINCT_EXACT_MAX)
		exact_max = DCR_CMP_DISTINCT_EXACT_MAX;
	for (size_t i = 0; i < nc; i++) {
		in->st[i].exact = true;
		in->st[i].exact_max = exact_max;
		in->st[i].imin = INT64_MAX;
		in->st[i].imax = INT64_MIN;
		in->st[i].dmin = INFINITY;
		in->st[i].dmax = -INFINITY;
		in->st[i].lmin = UINT64_MAX;
	}
	cmp_csv_new(label, on_record, in, &in->csv);
	in->par_min_bytes = PAR_MIN_BYTES;
	in->par_split = 32;
	*out = in;
	return 0;
}

static void par_free(struct par *w);

void cmp_ingest_free(cmp_ingest *in)
{
	if (!in)
		return;
	par_free(in->par);
	for (size_t i = 0; i < in->schema.ncols; i++) {
		free((char *)in->cols[i].name);
		free(in->st[i].set);
		free(in->st[i].hll);
	}
	free(in->cols);
	free(in->names_by_field);
	free(in->map);
	free(in->st);
	free(in->vals);
	cmp_csv_free(in->csv);
	cmp__rows_free(in->held);
	free(in);
}

void cmp_ingest_keep_rows(cmp_ingest *in, uint64_t size_hint)
{
	if (!in->held) {
		in->held = cmp__rows_new(in->schema.ncols, 0);
		/* the arena takes about the CSV's bytes plus a kind byte per
		 * value: one reservation */
		if (size_hint && size_hint < SIZE_MAX / 2)
			cmp__rows_reserve(in->held, (size_t)(size_hint + size_hint / 8));
	}
}

size_t cmp_ingest_rows_bytes(const cmp_ingest *in)
{
	return in->held ? cmp__rows_bytes(in->held) : 0;
}

void cmp_ingest_drop_rows(cmp_ingest *in)
{
	cmp__rows_free(in->held); /* wipes */
	in->held = NULL;
}

cmp_rows *cmp_ingest_take_rows(cmp_ingest *in)
{
	cmp__rows *r = in->held;
	in->held = NULL;
	return r;
}

void cmp_rows_free(cmp_rows *r)
{
	cmp__rows_free(r);
}

size_t cmp_rows_bytes(const cmp_rows *r)
{
	return r ? cmp__rows_bytes(r) : 0;
}

void cmp__ingest_set_sink(cmp_ingest *in, cmp__row_fn fn, void *ctx)
{
	in->sink = fn;
	in->sink_ctx = ctx;
}

void cmp__ingest_no_stats(cmp_ingest *in)
{
	in->no_stats = true;
}

void cmp__ingest_par_config(cmp_ingest *in, size_t min_bytes, int flags)
{
	in->par_min_bytes = min_bytes ? min_bytes : PAR_MIN_BYTES;
	in->par_flags = flags;
	in->par_split = 32;
}

void cmp__ingest_par_counts(const cmp_ingest *in, uint64_t *fast, uint64_t *fallback,
                            uint64_t *retracted)
{
	*fast = in->par_fast;
	*fallback = in->par_fallback;
	if (retracted)
		*retracted = in->par_retracted;
}

static int fail(cmp_ingest *in, dcr_err *err, uint64_t line, const char *col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(cmp_ingest *in, dcr_err *err, uint64_t line, const char *col, const char *fmt, ...)
{
	char msg[DCR_ERR_MSG_BYTES];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (col)
		return dcr_err_set(err, DCR_ECSV, "%s line %llu, column \"%s\": %s",
		                   cmp__csv_label(in->csv), (unsigned long long)line, col, msg);
	return dcr_err_set(err, DCR_ECSV, "%s line %llu: %s", cmp__csv_label(in->csv),
	                   (unsigned long long)line, msg);
}

static int on_header(cmp_ingest *in, const cmp_csv_field *f, size_t n, dcr_err *err)
{
	size_t nc = in->schema.ncols;
	bool *seen = dcr_calloc(nc, sizeof(bool));
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		char q[DCR_CSV_ERR_VALUE_BYTES * 4 + 16];
		size_t c;
		for (c = 0; c < nc; c++)
			if (strlen(in->cols[c].name) == f[i].n &&
			    memcmp(in->cols[c].name, f[i].p, f[i].n) == 0)
				break;
		cmp__quote_value(q, sizeof(q), f[i].p, f[i].n);
		if (c == nc) {
			rc = fail(in, err, f[i].line, NULL, "header: unknown column %s", q);
			goto out;
		}
		if (seen[c]) {
			rc = fail(in, err, f[i].line, NULL, "header: duplicate column %s", q);
			goto out;
		}
		seen[c] = true;
		in->map[i] = c;
		in->names_by_field[i] = in->cols[c].name;
	}
	for (size_t c = 0; c < nc; c++)
		if (!seen[c]) {
			rc = fail(in, err, f[0].line, NULL, "header: missing column \"%s\"",
			          in->cols[c].name);
			goto out;
		}
	cmp_csv_set_names(in->csv, in->names_by_field, nc);
	in->header_done = true;
out:
	free(seen);
	return rc;
}

static inline void hll_add(struct col_stats *s, uint64_t h)
{
	uint32_t idx = (uint32_t)(h >> (64 - HLL_P));
	uint64_t w = (h << HLL_P) | (1ull << (HLL_P - 1));
	uint8_t rank = (uint8_t)(__builtin_clzll(w) + 1);
	uint8_t old = s->hll[idx];
	s->hll[idx] = rank > old ? rank : old;
}

static void set_insert_exact(struct col_stats *s, uint64_t h);

static inline void set_insert(struct col_stats *s, uint64_t h)
{
	if (__builtin_expect(!s->exact, 1)) {
		hll_add(s, h);
		return;
	}
	/* A value already seen in its home slot (the common case for
	 * columns with few values) needs no call. */
	if (s->set_cap && s->set[h & (s->set_cap - 1)] == (h ? h : 1))
		return;
	set_insert_exact(s, h);
}

/* Switches a column to HyperLogLog, replaying the set. */
static void to_hll(struct col_stats *s)
{
	if (!s->hll)
		s->hll = dcr_calloc(HLL_M, 1);
	s->exact = false;
	for (size_t i = 0; i < s->set_cap; i++)
		if (s->set[i])
			hll_add(s, s->set[i]);
	free(s->set);
	s->set = NULL;
	s->set_cap = 0;
	s->set_n = 0;
}

static __attribute__((noinline)) void set_insert_exact(struct col_stats *s, uint64_t h)
{
	if (h == 0)
		h = 1;
	size_t j = 0;
	if (s->set_cap) {
		j = h & (s->set_cap - 1);
		while (s->set[j]) {
			if (s->set[j] == h)
				return;
			j = (j + 1) & (s->set_cap - 1);
		}
	}
	/* A new value. */
	if (s->set_n >= s->exact_max) {
		to_hll(s);
		hll_add(s, h);
		return;
	}
	if ((s->set_n + 1) * 2 > s->set_cap) {
		size_t ncap = s->set_cap ? s->set_cap * 2 : 256;
		uint64_t *ns = dcr_calloc(ncap, sizeof(uint64_t));
		for (size_t i = 0; i < s->set_cap; i++) {
			uint64_t v = s->set[i];
			if (!v)
				continue;
			size_t k = v & (ncap - 1);
			while (ns[k])
				k = (k + 1) & (ncap - 1);
			ns[k] = v;
		}
		free(s->set);
		s->set = ns;
		s->set_cap = ncap;
		j = h & (ncap - 1);
		while (s->set[j])
			j = (j + 1) & (ncap - 1);
	}
	s->set[j] = h;
	s->set_n++;
}

static uint64_t distinct_estimate(const struct col_stats *s)
{
	if (s->exact)
		return s->set_n;
	double sum = 0;
	unsigned zeros = 0;
	for (unsigned i = 0; i < HLL_M; i++) {
		sum += ldexp(1.0, -(int)s->hll[i]);
		zeros += s->hll[i] == 0;
	}
	double m = HLL_M;
	double e = (0.7213 / (1.0 + 1.079 / m)) * m * m / sum;
	if (e <= 2.5 * m && zeros)
		e = m * log(m / zeros);
	return (uint64_t)llround(e);
}

/* Mean and variance: Welford's online update generalised to batches
 * (Chan, Golub and LeVeque): values are buffered WELFORD_BATCH at a time,
 * the batch's mean and sum of squared deviations are computed in two
 * passes, and the batch is merged into the running (count, mean, m2).
 * As stable as the one-value update, without a division per value. */
static void welford_flush(struct col_stats *s)
{
	if (!s->nbuf)
		return;
	double n_b = (double)s->nbuf, sum = 0;
	for (unsigned i = 0; i < s->nbuf; i++)
		sum += s->buf[i];
	double mean_b = sum / n_b, m2_b = 0;
	for (unsigned i = 0; i < s->nbuf; i++) {
		double d = s->buf[i] - mean_b;
		m2_b += d * d;
	}
	double n_a = (double)s->count, n = n_a + n_b;
	double delta = mean_b - s->mean;
	s->mean += delta * (n_b / n);
	s->m2 += m2_b + delta * delta * (n_a * n_b / n);
	s->count += s->nbuf;
	s->nbuf = 0;
}

static inline void welford(struct col_stats *s, double x)
{
	s->buf[s->nbuf++] = x;
	if (s->nbuf == WELFORD_BATCH)
		welford_flush(s);
}

static __attribute__((noinline)) void vlog_grow(struct col_stats *s)
{
	s->vlog_cap = s->vlog_cap ? s->vlog_cap * 2 : 4096;
	s->vlog = dcr_realloc(s->vlog, s->vlog_cap * sizeof(double));
}

/* The worker's welford(): keep the value for the caller to replay. */
static inline void vlog_push(struct col_stats *s, double x)
{
	if (__builtin_expect(s->vlog_n == s->vlog_cap, 0))
		vlog_grow(s);
	s->vlog[s->vlog_n++] = x;
}

/* Checks one data record and folds it into the statistics st, typed
 * values into vals. Shared by the caller's reader (worker = false) and the
 * worker's (worker = true: numbers go to the value log instead of Welford's
 * batches); each gets its own copy, specialised by the compiler. */
static inline __attribute__((always_inline)) int
check_record(const struct checker *ck, const cmp_csv_field *f, size_t n, dcr_err *err,
             const bool worker)
{
	cmp_ingest *in = ck->in;
	size_t nc = ck->nc;
	const bool no_stats = ck->no_stats;
	if (n != nc)
		return fail(in, err, f[0].line, NULL, "expected %zu fields, got %zu", nc, n);
	for (size_t i = 0; i < n; i++) {
		size_t c = ck->map[i];
		const cmp_column *col = &ck->cols[c];
		struct col_stats *s = &ck->st[c];
		cmp__value *v = &ck->vals[c];
		const char *p = f[i].p;
		size_t len = f[i].n;
		char q[DCR_CSV_ERR_VALUE_BYTES * 4 + 16];
		if (len == 0 && (!f[i].quoted || col->type != CMP_STRING)) {
			if (!col->nullable)
				return fail(in, err, f[i].line, col->name,
				            "empty value in a column that is not nullable");
			v->kind = CMP__NULL;
			s->nulls++;
			continue;
		}
		switch (col->type) {
		case CMP_INTEGER: {
			int r = cmp__parse_int(p, len, &v->i);
			if (r) {
				cmp__quote_value(q, sizeof(q), p, len);
				return fail(in, err, f[i].line, col->name,
				            r == -2 ? "integer out of range (64-bit), got %s"
				                    : "expected integer, got %s",
				            q);
			}
			v->kind = CMP__INT;
			if (no_stats)
				break;
			if (v->i < s->imin)
				s->imin = v->i;
			if (v->i > s->imax)
				s->imax = v->i;
			if (worker)
				vlog_push(s, (double)v->i);
			else
				welford(s, (double)v->i);
			set_insert(s, cmp__mix64((uint64_t)v->i ^ 0x5851f42d4c957f2dull));
			break;
		}
		case CMP_FLOAT: {
			int r = cmp__parse_float(p, len, &v->d);
			if (r) {
				cmp__quote_value(q, sizeof(q), p, len);
				return fail(in, err, f[i].line, col->name,
				            r == -2 ? "float out of range, got %s"
				                    : "expected float, got %s",
				            q);
			}
			v->kind = CMP__FLOAT;
			if (no_stats)
				break;
			if (v->d < s->dmin)
				s->dmin = v->d;
			if (v->d > s->dmax)
				s->dmax = v->d;
			if (worker)
				vlog_push(s, v->d);
			else
				welford(s, v->d);
			double d = v->d == 0 ? 0.0 : v->d; /* -0 and 0 are one value */
			uint64_t bits;
			memcpy(&bits, &d, 8);
			set_insert(s, cmp__mix64(bits ^ 0x2545f4914f6cdd1dull));
			break;
		}
		case CMP_STRING: {
			if (col->format != CMP_FMT_NONE && !cmp__format_ok(col->format, p, len)) {
				cmp__quote_value(q, sizeof(q), p, len);
				static const char *const what[] = {"", "email address",
				                                   "date (YYYY-MM-DD)",
				                                   "sha256 (64 hex digits)"};
				return fail(in, err, f[i].line, col->name, "expected %s, got %s",
				            what[col->format], q);
			}
			v->kind = CMP__TEXT;
			v->s = p;
			v->n = len;
			if (no_stats)
				break;
			uint64_t chars = len;
			if (!f[i].ascii) {
				chars = 0;
				for (size_t k = 0; k < len; k++)
					chars += ((unsigned char)p[k] & 0xC0) != 0x80;
			}
			if (chars < s->lmin)
				s->lmin = chars;
			if (chars > s->lmax)
				s->lmax = chars;
			s->count++;
			set_insert(s, cmp__hash(p, len));
			break;
		}
		}
	}
	return 0;
}

static int on_record(void *ctx, const cmp_csv_field *f, size_t n, dcr_err *err)
{
	cmp_ingest *in = ctx;
	if (!in->header_done)
		return on_header(in, f, n, err);
	const struct checker k = {in,      in->cols, in->map, in->schema.ncols,
	                          in->no_stats, in->st,   in->vals};
	int rc = check_record(&k, f, n, err, false);
	if (rc)
		return rc;
	in->rows++;
	if (in->held && (rc = cmp__rows_add(in->held, in->vals, in->schema.ncols, err)))
		return rc;
	if (in->sink)
		return in->sink(in->sink_ctx, in->vals, in->schema.ncols, err);
	return 0;
}

/* ---- two threads ---------------------------------------------------------- */

static int par_on_record(void *ctx, const cmp_csv_field *f, size_t n, dcr_err *err)
{
	struct par *w = ctx;
	if (__atomic_load_n(&w->abort, __ATOMIC_RELAXED))
		return dcr_err_set(err, DCR_ECSV, "cancelled");
	int rc = check_record(&w->k, f, n, err, true);
	if (rc)
		return rc;
	w->rows++;
	if (w->keep_rows)
		return cmp__rows_add(w->held, w->vals, w->k.nc, err);
	return 0;
}

/* Validates the posted part; on success says where the caller resumes:
 * after the last complete record, with the line ends before it. */
static void par_reset(struct par *w);

static void par_run(struct par *w)
{
	dcr_err err;
	uint64_t line;
	par_reset(w);
	cmp__csv_restart(w->csv);
	w->rows = 0;
	w->rc = cmp_csv_feed(w->csv, w->p, w->n, &err);
	if (w->rc)
		return;
	w->resume = cmp__csv_pending(w->csv, &line);
	if (!w->resume) {
		w->resume = w->p + w->n;
		line = cmp__csv_line(w->csv);
	}
	w->lines = line - 1;
}

/* The worker's state, allocated on its own thread (with glibc, from its
 * own arena: not next to the caller's allocations). The ingest's header
 * is done and its map and columns no longer change. */
static void par_init(struct par *w)
{
	cmp_ingest *in = w->in;
	size_t nc = in->schema.ncols;
	w->cols = dcr_malloc(nc * sizeof(*w->cols));
	memcpy(w->cols, in->cols, nc * sizeof(*w->cols));
	w->map = dcr_malloc(nc * sizeof(*w->map));
	memcpy(w->map, in->map, nc * sizeof(*w->map));
	w->st = dcr_calloc(nc, sizeof(*w->st));
	w->vals = dcr_calloc(nc, sizeof(*w->vals));
	for (size_t c = 0; c < nc; c++)
		w->st[c].exact_max = in->st[c].exact_max;
	cmp_csv_new(cmp__csv_label(in->csv), par_on_record, w, &w->csv);
	w->k = (struct checker){in, w->cols, w->map, nc, false, w->st, w->vals};
}

static void *par_main(void *arg)
{
	struct par *w = arg;
	par_init(w);
	pthread_mutex_lock(&w->mu);
	w->ready = true;
	pthread_cond_signal(&w->cv_ready);
	for (;;) {
		while (w->job != JOB_POSTED && !w->quit)
			pthread_cond_wait(&w->cv_job, &w->mu);
		if (w->job != JOB_POSTED)
			break;
		w->job = JOB_RUNNING;
		pthread_mutex_unlock(&w->mu);
		par_run(w);
		pthread_mutex_lock(&w->mu);
		w->job = JOB_DONE;
		pthread_cond_signal(&w->cv_done);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static void par_free(struct par *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->quit = true;
	pthread_cond_signal(&w->cv_job);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->tid, NULL);
	pthread_cond_destroy(&w->cv_ready);
	pthread_cond_destroy(&w->cv_done);
	pthread_cond_destroy(&w->cv_job);
	pthread_mutex_destroy(&w->mu);
	for (size_t c = 0; c < w->in->schema.ncols; c++) {
		free(w->st[c].set);
		free(w->st[c].hll);
		free(w->st[c].vlog);
	}
	free(w->st);
	free(w->vals);
	free(w->cols);
	free(w->map);
	free(w->exact);
	cmp_csv_free(w->csv);
	cmp__rows_free(w->held);
	free(w);
}

/* The worker, started on the first large feed. NULL if the thread cannot
 * be created (then every feed is sequential, with the same results). */
static struct par *par_get(cmp_ingest *in)
{
	if (in->par)
		return in->par;
	void *mem = NULL;
	size_t size = (sizeof(struct par) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
	if (posix_memalign(&mem, CACHE_LINE, size) != 0)
		DCR_ASSERT(!"out of memory");
	struct par *w = memset(mem, 0, size);
	w->in = in;
	w->exact = dcr_calloc(in->schema.ncols, sizeof(*w->exact));
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv_job, NULL);
	pthread_cond_init(&w->cv_done, NULL);
	pthread_cond_init(&w->cv_ready, NULL);
	/* The worker takes no signals: they stay with the caller's threads
	 * (dcrd handles them through libuv). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int prc = pthread_create(&w->tid, NULL, par_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (prc != 0) {
		pthread_cond_destroy(&w->cv_ready);
		pthread_cond_destroy(&w->cv_done);
		pthread_cond_destroy(&w->cv_job);
		pthread_mutex_destroy(&w->mu);
		free(w->exact);
		free(w);
		in->par_min_bytes = SIZE_MAX;
		return NULL;
	}
	/* Its state must exist before the caller merges or discards. */
	pthread_mutex_lock(&w->mu);
	while (!w->ready)
		pthread_cond_wait(&w->cv_ready, &w->mu);
	pthread_mutex_unlock(&w->mu);
	in->par = w;
	return w;
}

/* Clears the worker's statistics for a new part (on the worker); a
 * column counts distinct values the way the caller's did when the job was
 * posted (exact or HyperLogLog). */
static void par_reset(struct par *w)
{
	w->k.no_stats = w->no_stats;
	if (w->keep_rows && !w->held)
		w->held = cmp__rows_new(w->k.nc, 0);
	if (w->held)
		DCR_ASSERT(cmp__rows_count(w->held) == 0); /* emptied by the merge or discard */
	for (size_t c = 0; c < w->k.nc; c++) {
		struct col_stats *s = &w->st[c];
		DCR_ASSERT(s->set_n == 0); /* emptied by the merge or discard */
		s->nulls = s->count = 0;
		s->nbuf = 0;
		s->mean = s->m2 = 0;
		s->imin = INT64_MAX;
		s->imax = INT64_MIN;
		s->dmin = INFINITY;
		s->dmax = -INFINITY;
		s->lmin = UINT64_MAX;
		s->lmax = 0;
		s->vlog_n = 0;
		s->exact = w->exact[c];
		if (!s->exact && !s->hll)
			s->hll = dcr_calloc(HLL_M, 1);
	}
}

/* Empties the worker's distinct sets and registers (keeping memory). */
static void par_discard(cmp_ingest *in, struct par *w)
{
	if (w->held)
		cmp__rows_reset(w->held);
	for (size_t c = 0; c < in->schema.ncols; c++) {
		struct col_stats *s = &w->st[c];
		if (s->set)
			memset(s->set, 0, s->set_cap * sizeof(*s->set));
		s->set_n = 0;
		if (s->hll)
			memset(s->hll, 0, HLL_M);
	}
}

/* Folds the worker's statistics into the caller's, which then read as if
 * one reader had seen both parts in order, and empties the worker's. */
static void par_merge(cmp_ingest *in, struct par *w)
{
	in->rows += w->rows;
	if (w->held) {
		/* the worker's rows after the caller's: file order */
		if (in->held && w->keep_rows)
			cmp__rows_append(in->held, w->held);
		else
			cmp__rows_reset(w->held);
	}
	for (size_t c = 0; c < in->schema.ncols; c++) {
		struct col_stats *m = &in->st[c], *s = &w->st[c];
		m->nulls += s->nulls;
		/* Numbers: the same Welford batches as one reader. */
		for (size_t k = 0; k < s->vlog_n; k++)
			welford(m, s->vlog[k]);
		/* Ties keep the earlier value (-0 vs 0), as one reader does. */
		if (s->imin < m->imin)
			m->imin = s->imin;
		if (s->imax > m->imax)
			m->imax = s->imax;
		if (s->dmin < m->dmin)
			m->dmin = s->dmin;
		if (s->dmax > m->dmax)
			m->dmax = s->dmax;
		if (s->lmin < m->lmin)
			m->lmin = s->lmin;
		if (s->lmax > m->lmax)
			m->lmax = s->lmax;
		m->count += s->count; /* strings; numbers count in welford */
		if (s->exact) {
			/* Through the same insert path: the switch to
			 * HyperLogLog happens at the same value count. */
			for (size_t i = 0; i < s->set_cap; i++)
				if (s->set[i]) {
					set_insert(m, s->set[i]);
					s->set[i] = 0;
				}
			s->set_n = 0;
		} else {
			if (m->exact)
				to_hll(m);
			for (size_t i = 0; i < HLL_M; i++) {
				if (s->hll[i] > m->hll[i])
					m->hll[i] = s->hll[i];
				s->hll[i] = 0;
			}
		}
	}
}

/* Where the next split is sought, in 64ths of a piece: the caller's share.
 * Moved after every split by who had to wait, so both sides end at about
 * the same time: in dcrd the worker shares the other core with the blob
 * helper (SHA-256, AES-GCM) that starts with each chunk, so it starts late
 * and the caller's share settles near three quarters. Only speed depends
 * on it: any split gives the same results. */
#define SPLIT_MIN 16
#define SPLIT_MAX 60

static void split_adapt(cmp_ingest *in, int step)
{
	int q = (int)in->par_split + step;
	in->par_split = (unsigned)(q < SPLIT_MIN ? SPLIT_MIN : q > SPLIT_MAX ? SPLIT_MAX : q);
}

/* One piece of a feed, after the header: the caller validates
 * [0, s + 1), the worker [s + 1, n), s a line end near the split share. */
static int par_feed(cmp_ingest *in, const char *p, size_t n, dcr_err *err)
{
	if (cmp__csv_error(in->csv))
		return cmp_csv_feed(in->csv, p, n, err);
	const bool fixed = in->par_flags & CMP__PAR_FIXED;
	size_t from = fixed ? n / 2 : n / 64 * in->par_split;
	size_t s = cmp__csv_split(in->csv, p, n, from, !(in->par_flags & CMP__PAR_NAIVE_SPLIT));
	/* Not worth a handoff for a small second part. */
	if (s == SIZE_MAX || n - (s + 1) < n / 16)
		return cmp_csv_feed(in->csv, p, n, err);
	struct par *w = par_get(in);
	if (!w)
		return cmp_csv_feed(in->csv, p, n, err);
	pthread_mutex_lock(&w->mu);
	w->p = p + s + 1;
	w->n = n - (s + 1);
	w->no_stats = in->no_stats;
	w->keep_rows = in->held != NULL;
	for (size_t c = 0; c < in->schema.ncols; c++)
		w->exact[c] = in->st[c].exact;
	__atomic_store_n(&w->abort, 0, __ATOMIC_RELAXED);
	w->job = JOB_POSTED;
	pthread_cond_signal(&w->cv_job);
	pthread_mutex_unlock(&w->mu);

	int rc = cmp_csv_feed(in->csv, p, s + 1, err);
	bool keep = rc == 0 && cmp__csv_at_record_start(in->csv);

	/* A worker that has not started yet (not scheduled: the machine is
	 * busy) is not waited for: the caller takes its part back. */
	pthread_mutex_lock(&w->mu);
	bool retract = w->job == JOB_POSTED && !fixed;
	bool worker_first = w->job == JOB_DONE;
	if (retract)
		w->job = JOB_IDLE;
	pthread_mutex_unlock(&w->mu);
	if (retract) {
		in->par_retracted++;
		split_adapt(in, 2);
		if (rc == 0)
			rc = cmp_csv_feed(in->csv, p + s + 1, n - (s + 1), err);
		return rc;
	}
	if (!keep) {
		/* The split was inside a record (or the caller's part has an
		 * error): the worker's work is void; the caller goes on alone. */
		__atomic_store_n(&w->abort, 1, __ATOMIC_RELAXED);
		if (rc == 0)
			rc = cmp_csv_feed(in->csv, p + s + 1, n - (s + 1), err);
	}

	pthread_mutex_lock(&w->mu);
	while (w->job != JOB_DONE)
		pthread_cond_wait(&w->cv_done, &w->mu);
	w->job = JOB_IDLE;
	pthread_mutex_unlock(&w->mu);

	if (keep && w->rc == 0) {
		split_adapt(in, worker_first ? -1 : 1);
		par_merge(in, w);
		in->par_fast++;
		cmp__csv_skip_lines(in->csv, w->lines);
		return cmp_csv_feed(in->csv, w->resume, (size_t)(p + n - w->resume), err);
	}
	par_discard(in, w);
	in->par_fallback++;
	if (keep) /* the worker failed: the caller finds the error */
		rc = cmp_csv_feed(in->csv, p + s + 1, n - (s + 1), err);
	return rc;
}

int cmp_ingest_feed(cmp_ingest *in, const void *buf, size_t n, dcr_err *err)
{
	const char *p = buf;
	int rc = 0;
	in->bytes += n;
	/* A sink (cmp_prepare) needs the rows in order: one thread. */
	if (in->sink || n < in->par_min_bytes)
		return cmp_csv_feed(in->csv, p, n, err);
	while (n > 0 && rc == 0) {
		size_t k;
		if (n < in->par_min_bytes) {
			k = n;
			rc = cmp_csv_feed(in->csv, p, k, err);
		} else if (!in->header_done) {
			/* The header alone, one line at a time. */
			const char *nl = memchr(p, '\n', n);
			k = nl ? (size_t)(nl - p) + 1 : n;
			rc = cmp_csv_feed(in->csv, p, k, err);
		} else {
			k = n < PAR_PIECE_BYTES + in->par_min_bytes ? n : PAR_PIECE_BYTES;
			rc = par_feed(in, p, k, err);
		}
		p += k;
		n -= k;
	}
	return rc;
}

static void stats_json(cmp_ingest *in, dcr_buf *b)
{
	for (size_t c = 0; c < in->schema.ncols; c++)
		if (in->cols[c].type != CMP_STRING)
			welford_flush(&in->st[c]);
	dcr_buf_printf(b, "{\"rows\":%llu,\"bytes\":%llu,\"columns\":[",
	               (unsigned long long)in->rows, (unsigned long long)in->bytes);
	for (size_t c = 0; c < in->schema.ncols; c++) {
		const cmp_column *col = &in->cols[c];
		const struct col_stats *s = &in->st[c];
		if (c)
			dcr_buf_append_u8(b, ',');
		dcr_buf_append_str(b, "{\"name\":");
		cmp__json_str(b, col->name, strlen(col->name));
		dcr_buf_printf(b, ",\"type\":\"%s\"", cmp_type_name(col->type));
		if (col->format != CMP_FMT_NONE)
			dcr_buf_printf(b, ",\"format\":\"%s\"", cmp_format_name(col->format));
		dcr_buf_printf(b,
		               ",\"nullable\":%s,\"nulls\":%llu,\"distinct\":%llu,"
		               "\"distinct_exact\":%s",
		               col->nullable ? "true" : "false", (unsigned long long)s->nulls,
		               (unsigned long long)distinct_estimate(s),
		               s->exact ? "true" : "false");
		if (col->type == CMP_STRING) {
			if (s->count)
				dcr_buf_printf(b, ",\"min_length\":%llu,\"max_length\":%llu",
				               (unsigned long long)s->lmin,
				               (unsigned long long)s->lmax);
			else
				dcr_buf_append_str(b, ",\"min_length\":null,\"max_length\":null");
		} else {
			if (!s->count) {
				dcr_buf_append_str(b, ",\"min\":null,\"max\":null,\"mean\":null");
			} else if (col->type == CMP_INTEGER) {
				dcr_buf_printf(b, ",\"min\":%lld,\"max\":%lld,\"mean\":",
				               (long long)s->imin, (long long)s->imax);
				cmp__json_double(b, s->mean);
			} else {
				dcr_buf_append_str(b, ",\"min\":");
				cmp__json_double(b, s->dmin);
				dcr_buf_append_str(b, ",\"max\":");
				cmp__json_double(b, s->dmax);
				dcr_buf_append_str(b, ",\"mean\":");
				cmp__json_double(b, s->mean);
			}
			dcr_buf_append_str(b, ",\"stddev\":");
			if (s->count >= 2)
				cmp__json_double(b, sqrt(s->m2 / (double)(s->count - 1)));
			else
				dcr_buf_append_str(b, "null");
		}
		dcr_buf_append_u8(b, '}');
	}
	dcr_buf_append_str(b, "]}");
}

int cmp_ingest_next_file(cmp_ingest *in, const char *label, dcr_err *err)
{
	int rc = cmp_csv_finish(in->csv, err);
	if (rc)
		return rc;
	if (!in->header_done)
		return dcr_err_set(err, DCR_ECSV, "%s line 1: no header row (the file is empty)",
		                   cmp__csv_label(in->csv));
	char *keep = dcr_strdup(label ? label : cmp__csv_label(in->csv));
	/* The worker copied the last file's column order: it goes, and the
	 * next large feed starts one with the new header's order. */
	par_free(in->par);
	in->par = NULL;
	cmp_csv_free(in->csv);
	cmp_csv_new(keep, on_record, in, &in->csv);
	free(keep);
	in->header_done = false;
	return 0;
}

int cmp_ingest_finish(cmp_ingest *in, uint64_t *rows, dcr_buf *stats, dcr_err *err)
{
	int rc = cmp_csv_finish(in->csv, err);
	if (rc)
		return rc;
	if (!in->header_done)
		return dcr_err_set(err, DCR_ECSV, "%s line 1: no header row (the file is empty)",
		                   cmp__csv_label(in->csv));
	if (rows)
		*rows = in->rows;
	if (stats)
		stats_json(in, stats);
	return 0;
}
