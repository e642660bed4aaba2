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
 * characters for strings. Memory is bounded whatever the input size. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute_int.h"

#define HLL_P 14
#define HLL_M (1u << HLL_P)

#define WELFORD_BATCH 64

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
	uint8_t *hll;
};

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
	*out = in;
	return 0;
}

void cmp_ingest_free(cmp_ingest *in)
{
	if (!in)
		return;
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
	free(in);
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
		/* Switch to HyperLogLog, replaying the set. */
		s->hll = dcr_calloc(HLL_M, 1);
		s->exact = false;
		for (size_t i = 0; i < s->set_cap; i++)
			if (s->set[i])
				hll_add(s, s->set[i]);
		free(s->set);
		s->set = NULL;
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

static int on_record(void *ctx, const cmp_csv_field *f, size_t n, dcr_err *err)
{
	cmp_ingest *in = ctx;
	if (!in->header_done)
		return on_header(in, f, n, err);
	size_t nc = in->schema.ncols;
	if (n != nc)
		return fail(in, err, f[0].line, NULL, "expected %zu fields, got %zu", nc, n);
	for (size_t i = 0; i < n; i++) {
		size_t c = in->map[i];
		const cmp_column *col = &in->cols[c];
		struct col_stats *s = &in->st[c];
		cmp__value *v = &in->vals[c];
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
			if (in->no_stats)
				break;
			if (v->i < s->imin)
				s->imin = v->i;
			if (v->i > s->imax)
				s->imax = v->i;
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
			if (in->no_stats)
				break;
			if (v->d < s->dmin)
				s->dmin = v->d;
			if (v->d > s->dmax)
				s->dmax = v->d;
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
			if (in->no_stats)
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
	in->rows++;
	if (in->sink)
		return in->sink(in->sink_ctx, in->vals, nc, err);
	return 0;
}

int cmp_ingest_feed(cmp_ingest *in, const void *p, size_t n, dcr_err *err)
{
	in->bytes += n;
	return cmp_csv_feed(in->csv, p, n, err);
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
			dcr_buf_printf(b, ",\"format\":\"%s\"", cmp__format_name(col->format));
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
