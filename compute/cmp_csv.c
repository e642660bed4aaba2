/* cmp_csv.c: the streaming RFC 4180 tokenizer.
 *
 * Bytes arrive in arbitrary chunks; a small state machine keeps the current
 * record (its unquoted field bytes, concatenated, and one entry per field)
 * and hands it to the callback when the record ends. Nothing else is kept
 * between records, so memory is bounded by DCR_CSV_LINE_BYTES_MAX however
 * large the file is. The hot loops scan runs of ordinary bytes with a class
 * table and copy them in one memcpy; there are no per-byte function calls.
 *
 * Invariants: every field handed out is valid UTF-8 and at most
 * DCR_CSV_FIELD_BYTES_MAX bytes; a record has at most DCR_CSV_COLS_MAX
 * fields; after the first error every call returns the same error. Line
 * numbers count '\n' bytes (1-based); a field's line is where it starts. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "compute_int.h"

enum { ST_FIELD_START, ST_UNQUOTED, ST_QUOTED, ST_QUOTE_SEEN, ST_CR };

struct cmp_csv {
	char *label;
	cmp_csv_record_fn fn;
	void *ctx;
	const char *const *names;
	size_t nnames;

	int state;
	uint64_t line;
	bool rec_open; /* some byte of the current record was seen */
	/* Direct mode: the current record lies in the chunk being tokenized,
	 * starting at base; field offsets are relative to base and nothing is
	 * copied. A doubled quote (content no longer contiguous) or the end
	 * of the chunk copies the record so far into rec ("materialize"), and
	 * it continues there. Between feed calls direct is always false. */
	bool direct;
	const char *base;
	/* Where the open record started in the chunk being tokenized (valid
	 * only for the feed in which it opened): cmp__csv_pending. */
	const char *rec_start;
	size_t rec_bytes; /* content bytes of the record (the limit counts these) */
	char *rec;
	size_t rec_len, rec_cap;
	/* Fields of the current record: f[i] is handed out as is, with p set
	 * from off[i] (relative to base or rec) when the record ends. */
	cmp_csv_field *f;
	size_t *off;
	size_t nf, fcap;

	uint8_t bom[3];
	size_t bom_n;
	bool bom_done;

	int err_code;
	dcr_err err;
};

/* Bytes that end a run inside an unquoted field. */
static const uint8_t cls_unquoted[256] = {[','] = 1, ['\n'] = 1, ['\r'] = 1, ['"'] = 1};

int cmp_csv_new(const char *label, cmp_csv_record_fn fn, void *ctx, cmp_csv **out)
{
	cmp_csv *c = dcr_calloc(1, sizeof(*c));
	c->label = dcr_strdup(label ? label : "input");
	c->fn = fn;
	c->ctx = ctx;
	c->line = 1;
	c->state = ST_FIELD_START;
	c->rec_cap = 4096;
	c->rec = dcr_malloc(c->rec_cap);
	c->fcap = 16;
	c->f = dcr_malloc(c->fcap * sizeof(*c->f));
	c->off = dcr_malloc(c->fcap * sizeof(*c->off));
	*out = c;
	return 0;
}

void cmp_csv_set_names(cmp_csv *c, const char *const *names, size_t n)
{
	c->names = names;
	c->nnames = n;
}

void cmp_csv_free(cmp_csv *c)
{
	if (!c)
		return;
	free(c->label);
	free(c->rec);
	free(c->f);
	free(c->off);
	free(c);
}

const char *cmp__csv_label(const cmp_csv *c)
{
	return c->label;
}

/* Formats "label line N[, column "x"]: " into err and appends the message. */
static int csv_fail(cmp_csv *c, dcr_err *err, uint64_t line, size_t field, const char *msg)
{
	if (field != SIZE_MAX && field < c->nnames)
		dcr_err_set(&c->err, DCR_ECSV, "%s line %llu, column \"%s\": %s", c->label,
		            (unsigned long long)line, c->names[field], msg);
	else if (field != SIZE_MAX)
		dcr_err_set(&c->err, DCR_ECSV, "%s line %llu, field %zu: %s", c->label,
		            (unsigned long long)line, field + 1, msg);
	else
		dcr_err_set(&c->err, DCR_ECSV, "%s line %llu: %s", c->label,
		            (unsigned long long)line, msg);
	c->err_code = DCR_ECSV;
	if (err)
		*err = c->err;
	return DCR_ECSV;
}

static __attribute__((noinline)) int field_too_long(cmp_csv *c, dcr_err *err)
{
	char m[96];
	snprintf(m, sizeof(m), "field longer than %u bytes", DCR_CSV_FIELD_BYTES_MAX);
	return csv_fail(c, err, c->f[c->nf].line, c->nf, m);
}

static __attribute__((noinline)) int record_too_long(cmp_csv *c, dcr_err *err)
{
	char m[96];
	snprintf(m, sizeof(m), "record longer than %u bytes", DCR_CSV_LINE_BYTES_MAX);
	return csv_fail(c, err, c->f[0].line, SIZE_MAX, m);
}

static __attribute__((noinline)) void rec_grow(cmp_csv *c, size_t need)
{
	size_t cap = c->rec_cap;
	while (cap < need)
		cap *= 2;
	c->rec = dcr_realloc(c->rec, cap);
	c->rec_cap = cap;
}

/* Copies the record so far to rec: up to the end of the open field
 * (upto = its content end), or up to upto when no field is open. */
static __attribute__((noinline)) void materialize(cmp_csv *c, size_t upto)
{
	if (upto > c->rec_cap)
		rec_grow(c, upto);
	memcpy(c->rec, c->base, upto);
	c->rec_len = upto;
	c->direct = false;
	c->base = NULL;
}

static inline int rec_append(cmp_csv *c, dcr_err *err, const char *p, size_t n)
{
	cmp_csv_field *f = &c->f[c->nf];
	if (__builtin_expect(f->n + n > DCR_CSV_FIELD_BYTES_MAX, 0))
		return field_too_long(c, err);
	if (__builtin_expect(c->rec_bytes + n > DCR_CSV_LINE_BYTES_MAX, 0))
		return record_too_long(c, err);
	c->rec_bytes += n;
	if (c->direct) {
		/* p is where the field's content continues in the chunk. */
		DCR_ASSERT(p == c->base + c->off[c->nf] + f->n);
		f->n += n;
		return 0;
	}
	if (__builtin_expect(c->rec_len + n > c->rec_cap, 0))
		rec_grow(c, c->rec_len + n);
	memcpy(c->rec + c->rec_len, p, n);
	c->rec_len += n;
	f->n += n;
	return 0;
}

static __attribute__((noinline)) int field_slow(cmp_csv *c, dcr_err *err)
{
	if (c->nf >= DCR_CSV_COLS_MAX) {
		char m[96];
		snprintf(m, sizeof(m), "more than %u fields", DCR_CSV_COLS_MAX);
		return csv_fail(c, err, c->line, SIZE_MAX, m);
	}
	c->fcap *= 2;
	c->f = dcr_realloc(c->f, c->fcap * sizeof(*c->f));
	c->off = dcr_realloc(c->off, c->fcap * sizeof(*c->off));
	return 0;
}

/* content: where the field's content starts in the chunk being tokenized
 * (after the opening quote of a quoted field). */
static inline int field_begin(cmp_csv *c, dcr_err *err, bool quoted, const char *content)
{
	if (__builtin_expect(c->nf == c->fcap || c->nf >= DCR_CSV_COLS_MAX, 0)) {
		int rc = field_slow(c, err);
		if (rc)
			return rc;
	}
	if (!c->rec_open && content) {
		c->direct = true;
		c->base = content - (quoted ? 1 : 0);
		c->rec_start = c->base;
	}
	cmp_csv_field *f = &c->f[c->nf];
	c->off[c->nf] = c->direct ? (size_t)(content - c->base) : c->rec_len;
	f->n = 0;
	f->line = c->line;
	f->quoted = quoted;
	c->rec_open = true;
	return 0;
}

/* Length of the longest prefix of p[0..n) that is valid UTF-8 (n if all). */
size_t cmp__utf8_valid_prefix(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		/* ASCII fast path, 8 bytes at a time. */
		while (i + 8 <= n) {
			uint64_t w;
			memcpy(&w, p + i, 8);
			if (w & 0x8080808080808080ull)
				break;
			i += 8;
		}
		if (i >= n)
			break;
		uint8_t b = p[i];
		if (b < 0x80) {
			i++;
			continue;
		}
		size_t len;
		uint32_t cp;
		if (b >= 0xC2 && b <= 0xDF) {
			len = 2;
			cp = b & 0x1F;
		} else if (b >= 0xE0 && b <= 0xEF) {
			len = 3;
			cp = b & 0x0F;
		} else if (b >= 0xF0 && b <= 0xF4) {
			len = 4;
			cp = b & 0x07;
		} else {
			return i;
		}
		if (i + len > n)
			return i;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xC0) != 0x80)
				return i;
			cp = (cp << 6) | (p[i + k] & 0x3F);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return i;
		i += len;
	}
	return n;
}

static int record_end(cmp_csv *c, dcr_err *err)
{
	/* UTF-8: one pass over the whole record to see whether it is all
	 * ASCII (the common case); otherwise each field is decoded. */
	const char *data = c->direct ? c->base : c->rec;
	size_t len = c->direct ? c->off[c->nf - 1] + c->f[c->nf - 1].n : c->rec_len;
	uint64_t hi = 0;
	size_t j = 0;
	for (; j + 8 <= len; j += 8) {
		uint64_t w;
		memcpy(&w, data + j, 8);
		hi |= w;
	}
	for (; j < len; j++)
		hi |= (uint8_t)data[j];
	bool ascii = (hi & 0x8080808080808080ull) == 0;
	if (!ascii) {
		/* Per field: a sequence split by a separator (or, in the copy,
		 * by concatenation) must not pass as one character. */
		for (size_t i = 0; i < c->nf; i++) {
			const uint8_t *p = (const uint8_t *)data + c->off[i];
			size_t k = cmp__utf8_valid_prefix(p, c->f[i].n);
			if (k != c->f[i].n) {
				char m[96];
				snprintf(m, sizeof(m), "invalid UTF-8 (byte 0x%02x at offset %zu)",
				         p[k], k);
				return csv_fail(c, err, c->f[i].line, i, m);
			}
		}
	}
	for (size_t i = 0; i < c->nf; i++) {
		c->f[i].p = data + c->off[i];
		c->f[i].ascii = ascii;
	}
	int rc = c->fn(c->ctx, c->f, c->nf, &c->err);
	c->nf = 0;
	c->rec_len = 0;
	c->rec_bytes = 0;
	c->rec_open = false;
	c->direct = false;
	c->base = NULL;
	if (rc) {
		c->err_code = rc;
		if (err)
			*err = c->err;
		return rc;
	}
	return 0;
}

static int tokenize(cmp_csv *c, const char *p, size_t n, dcr_err *err)
{
	size_t i = 0;
	int rc;
	while (i < n) {
		switch (c->state) {
		case ST_FIELD_START: {
			char ch = p[i];
			if (ch == '"') {
				if ((rc = field_begin(c, err, true, p + i + 1)))
					return rc;
				c->state = ST_QUOTED;
				i++;
				break;
			}
			if ((rc = field_begin(c, err, false, p + i)))
				return rc;
			c->state = ST_UNQUOTED;
			break;
		}
		case ST_UNQUOTED: {
			size_t s = i;
			const uint8_t *u = (const uint8_t *)p;
#ifdef __SSE2__
			/* 16 bytes per step: compare with the four special bytes. */
			const __m128i vc = _mm_set1_epi8(','), vn = _mm_set1_epi8('\n'),
			              vr = _mm_set1_epi8('\r'), vq = _mm_set1_epi8('"');
			while (i + 16 <= n) {
				__m128i x = _mm_loadu_si128((const __m128i *)(u + i));
				__m128i m = _mm_or_si128(
				    _mm_or_si128(_mm_cmpeq_epi8(x, vc), _mm_cmpeq_epi8(x, vn)),
				    _mm_or_si128(_mm_cmpeq_epi8(x, vr), _mm_cmpeq_epi8(x, vq)));
				unsigned mask = (unsigned)_mm_movemask_epi8(m);
				if (mask) {
					i += (size_t)__builtin_ctz(mask);
					goto found;
				}
				i += 16;
			}
#endif
			while (i < n && !cls_unquoted[u[i]])
				i++;
#ifdef __SSE2__
		found:
#endif
			if (i > s && (rc = rec_append(c, err, p + s, i - s)))
				return rc;
			if (i == n)
				break;
			char ch = p[i++];
			if (ch == ',') {
				c->nf++;
				c->state = ST_FIELD_START;
			} else if (ch == '\n') {
				c->nf++;
				c->state = ST_FIELD_START;
				rc = record_end(c, err);
				c->line++;
				if (rc)
					return rc;
			} else if (ch == '\r') {
				c->nf++;
				c->state = ST_CR;
			} else {
				return csv_fail(c, err, c->line, c->nf,
				                "quote inside an unquoted field (quote the whole "
				                "field and double the quote)");
			}
			break;
		}
		case ST_QUOTED: {
			const char *q = memchr(p + i, '"', n - i);
			size_t e = q ? (size_t)(q - p) : n;
			if (e > i) {
				if ((rc = rec_append(c, err, p + i, e - i)))
					return rc;
				for (const char *nl = memchr(p + i, '\n', e - i); nl;
				     nl = memchr(nl + 1, '\n', (size_t)(p + e - nl - 1)))
					c->line++;
			}
			i = e;
			if (q) {
				i++;
				c->state = ST_QUOTE_SEEN;
			}
			break;
		}
		case ST_QUOTE_SEEN: {
			char ch = p[i++];
			if (ch == '"') {
				if (c->direct)
					materialize(c, c->off[c->nf] + c->f[c->nf].n);
				if ((rc = rec_append(c, err, "\"", 1)))
					return rc;
				c->state = ST_QUOTED;
			} else if (ch == ',') {
				c->nf++;
				c->state = ST_FIELD_START;
			} else if (ch == '\n') {
				c->nf++;
				c->state = ST_FIELD_START;
				rc = record_end(c, err);
				c->line++;
				if (rc)
					return rc;
			} else if (ch == '\r') {
				c->nf++;
				c->state = ST_CR;
			} else {
				return csv_fail(c, err, c->line, c->nf,
				                "unexpected character after a closing quote");
			}
			break;
		}
		case ST_CR: {
			if (p[i] != '\n')
				return csv_fail(c, err, c->line, SIZE_MAX,
				                "carriage return not followed by a line feed");
			i++;
			c->state = ST_FIELD_START;
			rc = record_end(c, err);
			c->line++;
			if (rc)
				return rc;
			break;
		}
		}
	}
	if (c->direct) {
		/* The record continues in the next chunk. */
		bool open =
		    c->state == ST_UNQUOTED || c->state == ST_QUOTED || c->state == ST_QUOTE_SEEN;
		materialize(c, open ? c->off[c->nf] + c->f[c->nf].n : (size_t)(p + n - c->base));
	}
	return 0;
}

int cmp_csv_feed(cmp_csv *c, const void *buf, size_t n, dcr_err *err)
{
	const uint8_t *p = buf;
	if (c->err_code) {
		if (err)
			*err = c->err;
		return c->err_code;
	}
	if (!c->bom_done) {
		static const uint8_t bom[3] = {0xEF, 0xBB, 0xBF};
		while (n > 0 && c->bom_n < 3 && p[0] == bom[c->bom_n]) {
			c->bom[c->bom_n++] = p[0];
			p++;
			n--;
		}
		if (c->bom_n == 3) {
			c->bom_done = true;
		} else if (n == 0) {
			return 0; /* still a possible BOM prefix */
		} else {
			/* Not a BOM: replay the held bytes. */
			c->bom_done = true;
			if (c->bom_n) {
				int rc = tokenize(c, (const char *)c->bom, c->bom_n, err);
				if (rc)
					return rc;
			}
		}
	}
	return tokenize(c, (const char *)p, n, err);
}

int cmp_csv_finish(cmp_csv *c, dcr_err *err)
{
	int rc;
	if (c->err_code) {
		if (err)
			*err = c->err;
		return c->err_code;
	}
	if (!c->bom_done) {
		c->bom_done = true;
		if (c->bom_n == 3)
			c->bom_n = 0;
		if (c->bom_n && (rc = tokenize(c, (const char *)c->bom, c->bom_n, err)))
			return rc;
	}
	switch (c->state) {
	case ST_FIELD_START:
		if (!c->rec_open)
			return 0; /* input ended with a line end (or was empty) */
		if ((rc = field_begin(c, err, false, NULL)))
			return rc;
		c->nf++;
		break;
	case ST_UNQUOTED:
	case ST_QUOTE_SEEN:
	case ST_CR:
		if (c->state != ST_CR)
			c->nf++;
		break;
	case ST_QUOTED:
		return csv_fail(c, err, c->f[c->nf].line, c->nf,
		                "quoted field not closed before the end of the file");
	}
	c->state = ST_FIELD_START;
	return record_end(c, err);
}

/* ---- support for validating one chunk on two threads (cmp_ingest.c) ---- */

void cmp__csv_restart(cmp_csv *c)
{
	c->state = ST_FIELD_START;
	c->line = 1;
	c->rec_open = false;
	c->direct = false;
	c->base = NULL;
	c->rec_start = NULL;
	c->nf = 0;
	c->rec_len = 0;
	c->rec_bytes = 0;
	c->bom_done = true;
	c->bom_n = 0;
	c->err_code = 0;
}

bool cmp__csv_at_record_start(const cmp_csv *c)
{
	return !c->err_code && c->bom_done && c->state == ST_FIELD_START && !c->rec_open;
}

int cmp__csv_error(const cmp_csv *c)
{
	return c->err_code;
}

uint64_t cmp__csv_line(const cmp_csv *c)
{
	return c->line;
}

void cmp__csv_skip_lines(cmp_csv *c, uint64_t lines)
{
	DCR_ASSERT(cmp__csv_at_record_start(c));
	c->line += lines;
}

const char *cmp__csv_pending(const cmp_csv *c, uint64_t *line)
{
	if (!c->rec_open)
		return NULL;
	*line = c->f[0].line;
	return c->rec_start;
}

/* Parity of the quotes in p[0..n): 16 bytes per step, the compare masks
 * xor-ed together and counted once. */
static unsigned quote_parity(const char *p, size_t n)
{
	size_t i = 0;
	unsigned odd = 0;
#ifdef __SSE2__
	const __m128i vq = _mm_set1_epi8('"');
	unsigned acc = 0;
	for (; i + 16 <= n; i += 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(p + i));
		acc ^= (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, vq));
	}
	odd = (unsigned)__builtin_popcount(acc) & 1;
#endif
	for (; i < n; i++)
		odd ^= p[i] == '"';
	return odd;
}

size_t cmp__csv_split(const cmp_csv *c, const char *p, size_t n, size_t from, bool quote_aware)
{
	if (!quote_aware) {
		const char *nl = from < n ? memchr(p + from, '\n', n - from) : NULL;
		return nl ? (size_t)(nl - p) : SIZE_MAX;
	}
	/* In valid CSV a quote opens or closes a quoted field, and a doubled
	 * quote counts twice, so a '\n' is outside quotes when the quotes
	 * before it (and the reader's state at p) add up to an even number. */
	unsigned odd = (c->state == ST_QUOTED) ^ quote_parity(p, from);
	for (size_t i = from; i < n; i++) {
		if (p[i] == '"')
			odd ^= 1;
		else if (p[i] == '\n' && !odd)
			return i;
	}
	return SIZE_MAX;
}
