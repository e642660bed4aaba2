/* test_cmp_btree_diff.c: a differential test of the direct writer of
 * prepared tables (compute/cmp_btree.c) against SQLite's own path (one
 * INSERT per row, then CREATE INDEX). Both must give the same database for
 * every query: the same sqlite_schema rows (but the root pages), the same
 * table entries (rowid and record, byte for byte: the serial types too) in
 * the same order, the same index entries byte for byte in the same order,
 * PRAGMA integrity_check and quick_check "ok" on both, and the same
 * results of full scans, index lookups and range scans (EXPLAIN QUERY PLAN
 * must show the index), COUNT, GROUP BY, MIN/MAX and a self join.
 *
 * Two drivers, one fixed-seed PRNG:
 *  - the public entry the daemon uses (cmp_prepare_ex on a CSV, with the
 *    direct writer switched on and off): random tables over every column
 *    type and format a room allows, NULLs, empty strings, integers at the
 *    serial-type boundaries, reals (integral, huge, tiny, subnormal), text
 *    with multi-byte UTF-8 and lengths around the local payload limits
 *    (where the writer must fall back to SQLite), record headers of one
 *    and two bytes, keys with many duplicates, 0 and 1 rows, trees of 3
 *    and more levels; the image streamed as the daemon streams it;
 *  - cmp__btree_write itself, under every page size SQLite allows (512 to
 *    8192 written; 16384 and up must fall back), with values a CSV cannot
 *    carry (-0.0, infinities, NaN, NUL and invalid UTF-8 in text, integers
 *    in a float column), and dense sweeps of the row count, so that every
 *    "exactly k full pages" and "one more" of each level is met.
 * Beside them the negative controls: a table that differs in one value, a
 * corrupted image, and what the writer must refuse. */
#include <math.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../compute/compute.h"
#include "../../compute/compute_int.h"

#include "test.h"

/* ---- PRNG (splitmix64: the same tables on every run) ------------------------- */

static uint64_t rng_state = 0x6a09e667f3bcc909ull;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* ---- generated tables ---------------------------------------------------------- */

#define COLS_MAX 256

struct table {
	cmp_column cols[COLS_MAX];
	char names[COLS_MAX][24];
	size_t ncols;
	int key; /* indexed column, -1: none */
	size_t nrows;
	cmp__value *v; /* nrows * ncols; text in strings */
	char **strings;
	size_t nstrings;
};

static void table_init(struct table *t, size_t ncols, int key)
{
	memset(t, 0, sizeof *t);
	t->ncols = ncols;
	t->key = key;
	for (size_t c = 0; c < ncols; c++) {
		snprintf(t->names[c], sizeof t->names[c], "c%zu", c);
		t->cols[c].name = t->names[c];
		t->cols[c].type = CMP_STRING;
		t->cols[c].format = CMP_FMT_NONE;
		t->cols[c].nullable = true;
	}
}

static void table_release(struct table *t)
{
	for (size_t i = 0; i < t->nstrings; i++)
		free(t->strings[i]);
	free(t->strings);
	free(t->v);
	t->strings = NULL;
	t->v = NULL;
	t->nstrings = 0;
}

static cmp__value *row_at(struct table *t, size_t r)
{
	return &t->v[r * t->ncols];
}

static void table_rows(struct table *t, size_t nrows)
{
	t->nrows = nrows;
	t->v = dcr_calloc(nrows * t->ncols + 1, sizeof *t->v);
}

static void set_text(struct table *t, cmp__value *v, const char *s, size_t n)
{
	char *p = dcr_malloc(n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	t->strings = dcr_realloc(t->strings, (t->nstrings + 1) * sizeof *t->strings);
	t->strings[t->nstrings++] = p;
	v->kind = CMP__TEXT;
	v->s = p;
	v->n = n;
}

static const int64_t int_edges[] = {0,
                                    1,
                                    -1,
                                    2,
                                    127,
                                    128,
                                    -128,
                                    -129,
                                    255,
                                    256,
                                    32767,
                                    32768,
                                    -32768,
                                    -32769,
                                    8388607,
                                    8388608,
                                    -8388608,
                                    -8388609,
                                    2147483647,
                                    2147483648,
                                    -2147483648LL,
                                    -2147483649LL,
                                    140737488355327LL,
                                    140737488355328LL,
                                    -140737488355328LL,
                                    -140737488355329LL,
                                    9007199254740993LL,
                                    INT64_MAX - 1,
                                    INT64_MAX,
                                    INT64_MIN + 1,
                                    INT64_MIN};

static int64_t gen_int(void)
{
	if (below(3) == 0)
		return int_edges[below(sizeof int_edges / sizeof int_edges[0])];
	int64_t x = (int64_t)(rnd() >> below(64));
	return below(2) ? -x : x;
}

/* Doubles a CSV can carry exactly (printed with %.17g; no -0, inf, NaN). */
static const double float_edges[] = {0.0,
                                     1.0,
                                     -1.0,
                                     0.5,
                                     3.0,
                                     -2.25,
                                     127.0,
                                     128.0,
                                     -129.0,
                                     32768.0,
                                     2147483648.0,
                                     140737488355328.0,
                                     9007199254740992.0,    /* 2^53 */
                                     9007199254740994.0,    /* 2^53 + 2 */
                                     4611686018427387904.0, /* 2^62 */
                                     9223372036854774784.0, /* 2^63 - 1024 */
                                     9223372036854775808.0, /* 2^63: stays real */
                                     -9223372036854775808.0,
                                     -9223372036854774784.0,
                                     1e300,
                                     -1e300,
                                     1.7976931348623157e308,
                                     -1.7976931348623157e308,
                                     4.9406564584124654e-324, /* smallest subnormal */
                                     2.2250738585072009e-308, /* largest subnormal */
                                     2.2250738585072014e-308, /* smallest normal */
                                     0.1,
                                     0.30000000000000004,
                                     1e-5,
                                     1e15,
                                     1e16,
                                     1e22,
                                     1e23};

static double gen_float(bool csv_safe)
{
	double d;
	switch (below(csv_safe ? 4 : 5)) {
	case 0:
		return float_edges[below(sizeof float_edges / sizeof float_edges[0])];
	case 1: /* integral */
		return (double)(int64_t)(rnd() >> below(64)) * (below(2) ? -1 : 1);
	case 2:
		return (double)(int64_t)below(1000) / 8.0 - 60;
	case 3: { /* any finite bits */
		uint64_t b;
		do {
			b = rnd();
			memcpy(&d, &b, 8);
		} while (!isfinite(d) || (d == 0 && signbit(d)));
		return d;
	}
	default: { /* not from a CSV */
		static const double odd[] = {-0.0, INFINITY, -INFINITY};
		return odd[below(3)];
	}
	}
}

/* UTF-8 pieces: 1 to 4 bytes, the first and last code point of each. */
static const char *const utf8_bits[] = {"a",
                                        "b",
                                        "A",
                                        "Z",
                                        "0",
                                        " ",
                                        ",",
                                        "\"",
                                        "x",
                                        "\x7f",
                                        "\xc2\x80",
                                        "\xc3\xa9",
                                        "\xdf\xbf",
                                        "\xe0\xa0\x80",
                                        "\xe2\x82\xac",
                                        "\xef\xbf\xbf",
                                        "\xf0\x90\x80\x80",
                                        "\xf0\x9d\x84\x9e",
                                        "\xf4\x8f\xbf\xbf"};

static size_t gen_text(char *buf, size_t len, bool csv_safe)
{
	size_t n = 0;
	size_t nb = sizeof utf8_bits / sizeof utf8_bits[0];
	while (n < len) {
		if (!csv_safe && below(8) == 0) {
			/* bytes a CSV cannot hold: NUL, invalid UTF-8, CR LF */
			static const char raw[] = {0, '\xff', '\x80', '\r', '\n', '\xc3'};
			buf[n++] = raw[below(sizeof raw)];
			continue;
		}
		/* a small alphabet: prefixes shared beyond 8 bytes, duplicates */
		const char *p = below(4) ? utf8_bits[below(5)] : utf8_bits[below(nb)];
		size_t k = strlen(p);
		if (n + k > len)
			p = "a", k = 1;
		memcpy(buf + n, p, k);
		n += k;
	}
	return n;
}

static size_t gen_text_len(void)
{
	switch (below(8)) {
	case 0:
		return 0;
	case 1:
		return 7 + below(3); /* around the sort's 8-byte prefix */
	case 2:
		return 40 + below(200);
	case 3:
		return below(1100); /* around the index threshold (1002 at 4 KiB) */
	default:
		return 1 + below(20);
	}
}

static void gen_value(struct table *t, size_t c, cmp__value *v, bool csv_safe, char *tbuf)
{
	const cmp_column *col = &t->cols[c];
	memset(v, 0, sizeof *v);
	if (col->nullable && below(10) == 0)
		return; /* NULL */
	switch (col->type) {
	case CMP_INTEGER:
		v->kind = CMP__INT;
		v->i = gen_int();
		return;
	case CMP_FLOAT:
		v->kind = CMP__FLOAT;
		v->d = gen_float(csv_safe);
		return;
	case CMP_STRING:
		break;
	}
	switch (col->format) {
	case CMP_FMT_EMAIL: {
		char e[64];
		int n =
		    snprintf(e, sizeof e, "user%llu@example.com", (unsigned long long)below(5000));
		set_text(t, v, e, (size_t)n);
		return;
	}
	case CMP_FMT_DATE: {
		char e[16];
		int n = snprintf(e, sizeof e, "%04d-%02d-%02d", 1900 + (int)below(200),
		                 1 + (int)below(12), 1 + (int)below(28));
		set_text(t, v, e, (size_t)n);
		return;
	}
	case CMP_FMT_SHA256: {
		char e[65];
		for (int k = 0; k < 64; k++)
			e[k] = "0123456789abcdef"[below(4) ? below(3) : below(16)];
		set_text(t, v, e, 64);
		return;
	}
	default:
		break;
	}
	set_text(t, v, tbuf, gen_text(tbuf, gen_text_len(), csv_safe));
}

/* A random schema and rows. Keys are drawn from a pool often, so that
 * many rows share one. */
static void gen_table(struct table *t, size_t ncols, size_t nrows, bool csv_safe)
{
	static char tbuf[4096];
	int key = below(5) == 0 ? -1 : (int)below(ncols);
	table_init(t, ncols, key);
	for (size_t c = 0; c < ncols; c++) {
		t->cols[c].type = (enum cmp_type)below(3);
		t->cols[c].nullable = below(3) != 0;
		if (t->cols[c].type == CMP_STRING && below(4) == 0)
			t->cols[c].format = (enum cmp_format)(1 + below(3));
	}
	table_rows(t, nrows);
	/* a pool of 1 (one key for all) only in small tables: the self join
	 * grows with the square of a key's rows */
	size_t pool = 1 + below(2) * (1 + nrows / (1 + below(40)));
	if (nrows > 400 && pool < nrows / 100)
		pool = nrows / 100;
	for (size_t r = 0; r < nrows; r++) {
		cmp__value *row = row_at(t, r);
		for (size_t c = 0; c < ncols; c++) {
			if ((int)c == key && r > 0 && below(3) != 0) {
				/* a key seen before (among the first pool rows) */
				size_t from = below(r < pool ? r : pool);
				row[c] = row_at(t, from)[c];
				continue;
			}
			gen_value(t, c, &row[c], csv_safe, tbuf);
		}
	}
	/* rows with more than 64 KiB of text do not go through a CSV */
}

/* ---- the CSV of a table, for the public entry ------------------------------------ */

static void csv_of(const struct table *t, dcr_buf *b)
{
	dcr_buf_reset(b);
	for (size_t c = 0; c < t->ncols; c++)
		dcr_buf_printf(b, "%s%s", c ? "," : "", t->names[c]);
	dcr_buf_append_str(b, "\n");
	for (size_t r = 0; r < t->nrows; r++) {
		const cmp__value *row = &t->v[r * t->ncols];
		for (size_t c = 0; c < t->ncols; c++) {
			const cmp__value *v = &row[c];
			if (c)
				dcr_buf_append_u8(b, ',');
			switch (v->kind) {
			case CMP__NULL:
				break;
			case CMP__INT:
				dcr_buf_printf(b, "%lld", (long long)v->i);
				break;
			case CMP__FLOAT:
				dcr_buf_printf(b, "%.17g", v->d);
				break;
			case CMP__TEXT:
				dcr_buf_append_u8(b, '"');
				for (size_t k = 0; k < v->n; k++) {
					if (v->s[k] == '"')
						dcr_buf_append_u8(b, '"');
					dcr_buf_append_u8(b, (uint8_t)v->s[k]);
				}
				dcr_buf_append_u8(b, '"');
				break;
			}
		}
		dcr_buf_append_str(b, "\n");
	}
}

/* ---- reading an image ------------------------------------------------------------- */

static sqlite3 *open_image(const void *img, size_t n)
{
	sqlite3 *db = NULL;
	unsigned char *copy = sqlite3_malloc64(n ? n : 1);
	DCR_ASSERT(copy);
	memcpy(copy, img, n);
	DCR_ASSERT(sqlite3_open(":memory:", &db) == SQLITE_OK);
	if (sqlite3_deserialize(db, "main", copy, (sqlite3_int64)n, (sqlite3_int64)n,
	                        SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_READONLY) !=
	    SQLITE_OK) {
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

/* Every row of a query, each value with its type, exactly (text and blobs
 * in hex, reals as their bits). NULL: the query failed (message in out). */
static bool query(sqlite3 *db, const char *sql, dcr_buf *out)
{
	sqlite3_stmt *st = NULL;
	int rc;
	dcr_buf_reset(out);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		dcr_buf_printf(out, "prepare: %s", sqlite3_errmsg(db));
		return false;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (int c = 0; c < sqlite3_column_count(st); c++) {
			switch (sqlite3_column_type(st, c)) {
			case SQLITE_NULL:
				dcr_buf_append_str(out, "N");
				break;
			case SQLITE_INTEGER:
				dcr_buf_printf(out, "I%lld",
				               (long long)sqlite3_column_int64(st, c));
				break;
			case SQLITE_FLOAT: {
				double d = sqlite3_column_double(st, c);
				uint64_t b;
				memcpy(&b, &d, 8);
				dcr_buf_printf(out, "R%016llx", (unsigned long long)b);
				break;
			}
			default: {
				const uint8_t *p = sqlite3_column_blob(st, c);
				int n = sqlite3_column_bytes(st, c);
				char hx[2 * 256];
				dcr_buf_append_str(
				    out, sqlite3_column_type(st, c) == SQLITE_TEXT ? "T" : "B");
				for (int k = 0; k < n;) {
					int m = 0;
					for (; k < n && m < (int)sizeof hx; k++, m += 2) {
						hx[m] = "0123456789abcdef"[p[k] >> 4];
						hx[m + 1] = "0123456789abcdef"[p[k] & 15];
					}
					dcr_buf_append(out, hx, (size_t)m);
				}
				break;
			}
			}
			dcr_buf_append_u8(out, '|');
		}
		dcr_buf_append_u8(out, '\n');
	}
	if (rc != SQLITE_DONE) {
		dcr_buf_printf(out, "step: %s", sqlite3_errmsg(db));
		sqlite3_finalize(st);
		return false;
	}
	sqlite3_finalize(st);
	return true;
}

static bool pragma_ok(sqlite3 *db, const char *pragma, dcr_buf *out)
{
	return query(db, pragma, out) && strcmp(dcr_buf_cstr(out), "T6f6b|\n") == 0;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static unsigned get16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

/* SQLite's varint; 0 bytes when it runs past end. */
static unsigned get_varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	uint64_t x = 0;
	for (unsigned i = 0; i < 9; i++) {
		if (p + i >= end)
			return 0;
		if (i == 8) {
			*v = x << 8 | p[i];
			return 9;
		}
		x = x << 7 | (p[i] & 0x7f);
		if (!(p[i] & 0x80)) {
			*v = x;
			return i + 1;
		}
	}
	return 0;
}

/* The entries of a b-tree in order, each as its length and bytes (a table:
 * rowid and record). Trusts nothing in the image; a cell with overflow
 * pages is an error (neither path may have one where the writer wrote).
 * Returns the depth (levels), 0 on a malformed tree (why in err). */
static unsigned walk(const uint8_t *img, size_t n, unsigned U, uint32_t pg, bool index,
                     unsigned depth, dcr_buf *out, const char **err)
{
	size_t off = (size_t)(pg - 1) * U, h = pg == 1 ? 100 : 0;
	unsigned X = index ? (U - 12) * 64 / 255 - 23 : U - 35, sub = 0;
	if (pg == 0 || off + U > n || depth > 30) {
		*err = "page out of range, or too deep";
		return 0;
	}
	const uint8_t *p = img + off, *end = p + U, *hp = p + h;
	uint8_t type = hp[0];
	bool leaf = type == 0x0d || type == 0x0a;
	if (type != (index ? 0x0a : 0x0d) && type != (index ? 0x02 : 0x05)) {
		*err = "wrong page type";
		return 0;
	}
	unsigned ncell = get16(hp + 3), hl = leaf ? 8 : 12;
	if (h + hl + 2 * ncell > U) {
		*err = "cell count too large";
		return 0;
	}
	for (unsigned i = 0; i <= ncell; i++) {
		uint32_t child = 0;
		const uint8_t *c = NULL;
		if (i < ncell) {
			unsigned co = get16(hp + hl + 2 * i);
			if (co < h + hl + 2 * ncell || co >= U) {
				*err = "cell pointer out of range";
				return 0;
			}
			c = p + co;
			if (!leaf) {
				if (c + 4 > end) {
					*err = "cell out of the page";
					return 0;
				}
				child = get32(c);
				c += 4;
			}
		} else if (!leaf) {
			child = get32(hp + 8);
		} else {
			break;
		}
		if (child) {
			unsigned d = walk(img, n, U, child, index, depth + 1, out, err);
			if (!d)
				return 0;
			if (sub && d != sub) {
				*err = "leaves at different depths";
				return 0;
			}
			sub = d;
		}
		if (!c || (!leaf && !index))
			continue; /* a table's interior cell holds no entry */
		uint64_t plen = 0, rowid = 0;
		unsigned k = get_varint(c, end, &plen);
		if (!k) {
			*err = "bad varint";
			return 0;
		}
		c += k;
		if (!index) {
			if (!(k = get_varint(c, end, &rowid))) {
				*err = "bad varint";
				return 0;
			}
			c += k;
			dcr_buf_printf(out, "%llu:", (unsigned long long)rowid);
		}
		if (plen > X) {
			*err = "a cell with overflow pages";
			return 0;
		}
		if (c + plen > end) {
			*err = "cell out of the page";
			return 0;
		}
		dcr_buf_printf(out, "%llu:", (unsigned long long)plen);
		dcr_buf_append(out, c, (size_t)plen);
	}
	return sub + 1;
}

static int64_t root_of(sqlite3 *db, const char *type)
{
	sqlite3_stmt *st = NULL;
	int64_t r = -1;
	if (sqlite3_prepare_v2(db, "SELECT rootpage FROM sqlite_schema WHERE type = ?1", -1, &st,
	                       NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		r = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return r;
}

/* ---- comparing two images ----------------------------------------------------------- */

struct stats {
	size_t cases, direct, fallback, queries, max_table_depth, max_index_depth;
};
static struct stats S;

/* The header of an image of this writer, field by field (fileformat2,
 * "The Database Header"). */
static bool header_ok(const uint8_t *h, size_t n, const char **why)
{
	unsigned U = get16(h + 16) == 1 ? 65536 : get16(h + 16);
	*why = NULL;
	if (n < 512 || memcmp(h, "SQLite format 3", 16) != 0)
		*why = "magic";
	else if (U < 512 || (U & (U - 1)) || n % U)
		*why = "page size";
	else if (h[18] != 1 || h[19] != 1)
		*why = "file format versions (legacy, no WAL)";
	else if (h[20] != 0 || h[21] != 64 || h[22] != 32 || h[23] != 32)
		*why = "reserved bytes or payload fractions";
	else if (get32(h + 24) != get32(h + 92))
		*why = "change counter != version-valid-for (in-header size ignored)";
	else if ((size_t)get32(h + 28) * U != n)
		*why = "in-header database size != image size";
	else if (get32(h + 32) || get32(h + 36))
		*why = "freelist";
	else if (get32(h + 40) == 0)
		*why = "schema cookie";
	else if (get32(h + 44) != 4)
		*why = "schema format number (0 and 1 as serial types 8 and 9 need 4)";
	else if (get32(h + 52) || get32(h + 64))
		*why = "auto-vacuum";
	else if (get32(h + 56) != 1)
		*why = "text encoding (UTF-8)";
	for (int k = 72; k < 92 && !*why; k++)
		if (h[k])
			*why = "reserved for expansion";
	return !*why;
}

/* The checks one image must pass alone. */
static bool image_ok(const char *what, sqlite3 *db, dcr_buf *tmp)
{
	bool ok = true;
	if (!pragma_ok(db, "PRAGMA integrity_check", tmp)) {
		CHECK(0, " %s: integrity_check: %.300s", what, dcr_buf_cstr(tmp));
		ok = false;
	}
	if (!pragma_ok(db, "PRAGMA quick_check", tmp)) {
		CHECK(0, " %s: quick_check: %.300s", what, dcr_buf_cstr(tmp));
		ok = false;
	}
	return ok;
}

/* The queries both images must answer the same. key: column name or NULL. */
static char **case_queries(const struct table *t, size_t *nq)
{
	char **q = dcr_calloc(64, sizeof *q);
	size_t k = 0;
	q[k++] = dcr_strdup("SELECT rowid, * FROM t ORDER BY rowid");
	q[k++] = dcr_strdup("SELECT COUNT(*), MAX(rowid), MIN(rowid) FROM t");
	q[k++] = dcr_strdup("SELECT rowid, * FROM t ORDER BY rowid DESC LIMIT 50");
	q[k++] = dcr_strdup("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY rowid");
	q[k++] = dcr_strdup("SELECT * FROM t WHERE rowid IN (1, 2, 127, 128, 129, 1000, 16384) "
	                    "ORDER BY rowid");
	for (size_t c = 0; c < t->ncols && c < 4; c++)
		q[k++] = dcr_asprintf("SELECT typeof(%s), COUNT(*) FROM t GROUP BY 1 ORDER BY 1",
		                      t->names[c]);
	if (t->key >= 0) {
		const char *K = t->names[t->key];
		size_t n = t->nrows ? t->nrows : 1;
		q[k++] = dcr_asprintf(
		    "SELECT rowid, %s FROM t INDEXED BY t_%s_idx ORDER BY %s, rowid", K, K, K);
		q[k++] =
		    dcr_asprintf("SELECT rowid, %s FROM t INDEXED BY t_%s_idx ORDER BY %s DESC, "
		                 "rowid DESC",
		                 K, K, K);
		q[k++] =
		    dcr_asprintf("SELECT %s, COUNT(*), MIN(rowid), MAX(rowid) FROM t GROUP BY %s "
		                 "ORDER BY %s",
		                 K, K, K);
		q[k++] = dcr_asprintf(
		    "SELECT MIN(%s), MAX(%s), COUNT(%s), COUNT(DISTINCT %s) FROM t", K, K, K, K);
		for (int j = 0; j < 8; j++) {
			size_t r = j == 0 ? 1 : j == 1 ? n : 1 + below(n);
			q[k++] =
			    dcr_asprintf("SELECT rowid, * FROM t WHERE %s IS (SELECT %s FROM t "
			                 "WHERE rowid = %zu) ORDER BY rowid",
			                 K, K, r);
		}
		for (int j = 0; j < 4; j++) {
			size_t a = 1 + below(n), b = 1 + below(n);
			q[k++] = dcr_asprintf(
			    "SELECT rowid, %s FROM t WHERE %s > (SELECT %s FROM t WHERE "
			    "rowid = %zu) AND %s <= (SELECT %s FROM t WHERE rowid = "
			    "%zu) ORDER BY %s, rowid",
			    K, K, K, a, K, K, b, K);
		}
		/* values that are not there, of each class */
		q[k++] = dcr_asprintf("SELECT rowid FROM t WHERE %s IN (-3.5, 12345678901, 'zz', "
		                      "x'00', '') ORDER BY rowid",
		                      K);
		q[k++] =
		    dcr_asprintf("SELECT COUNT(*), SUM(a.rowid), SUM(b.rowid) FROM t a JOIN t b "
		                 "ON a.%s = b.%s",
		                 K, K);
		q[k++] = dcr_asprintf("SELECT a.rowid, b.rowid FROM t a JOIN t b ON a.%s = b.%s "
		                      "ORDER BY 1, 2 LIMIT 3000",
		                      K, K);
	}
	*nq = k;
	return q;
}

/* Whether SQLite answers a lookup on the key through its index. */
static bool uses_index(sqlite3 *db, const char *key, dcr_buf *tmp)
{
	char *sql = dcr_asprintf("EXPLAIN QUERY PLAN SELECT rowid, * FROM t WHERE %s = 5", key);
	bool ok = query(db, sql, tmp) && strstr(dcr_buf_cstr(tmp), "5553494e4720") /* "USING " */ &&
	          strstr(dcr_buf_cstr(tmp), "494e444558") /* "INDEX" */;
	free(sql);
	sql = dcr_asprintf("EXPLAIN QUERY PLAN SELECT rowid FROM t WHERE %s > 5 AND %s < 9", key,
	                   key);
	ok = ok && query(db, sql, tmp) && strstr(dcr_buf_cstr(tmp), "494e444558");
	free(sql);
	return ok;
}

static bool same_bytes(const dcr_buf *a, const dcr_buf *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Where two entry lists part: the 24 bytes before and 24 from there, in
 * hex with a '|' at the point. */
static const char *hex_at(const dcr_buf *b, size_t at, dcr_buf *out)
{
	size_t from = at > 24 ? at - 24 : 0;
	dcr_buf_reset(out);
	for (size_t k = from; k < b->len && k < at + 24; k++)
		dcr_buf_printf(out, "%s%02x", k == at ? "|" : "", b->data[k]);
	return dcr_buf_cstr(out);
}

/* Both images the same for every query; a (the direct one) also alone
 * right. Returns whether they agree (failures are counted by CHECK). */
static bool compare(const char *what, const struct table *t, const void *a, size_t an,
                    const void *b, size_t bn, bool direct_expected, bool report)
{
	sqlite3 *da = open_image(a, an), *db = open_image(b, bn);
	dcr_buf ra, rb, tmp, tmp2;
	bool same = true;
	const char *why = NULL;
	size_t nq;
	char **qs;
	dcr_buf_init(&ra);
	dcr_buf_init(&rb);
	dcr_buf_init(&tmp);
	dcr_buf_init(&tmp2);
#define DIFF(...)                                                                                  \
	do {                                                                                       \
		same = false;                                                                      \
		if (report)                                                                        \
			CHECK(0, __VA_ARGS__);                                                     \
	} while (0)
	if (!da || !db) {
		DIFF(" %s: an image does not open", what);
		goto out;
	}
	if (report) {
		if (!image_ok(what, da, &tmp) || !image_ok(what, db, &tmp))
			same = false;
		if (direct_expected && !header_ok(a, an, &why))
			DIFF(" %s: direct image header: %s", what, why);
		if (t->key >= 0 && !uses_index(da, t->names[t->key], &tmp))
			DIFF(" %s: the index is not used: %.300s", what, dcr_buf_cstr(&tmp));
	}
	/* the entries, byte for byte */
	for (int tree = 0; tree < (t->key >= 0 ? 2 : 1); tree++) {
		const char *ty = tree ? "index" : "table";
		int64_t rta = root_of(da, ty), rtb = root_of(db, ty);
		unsigned Ua = get16((const uint8_t *)a + 16), Ub = get16((const uint8_t *)b + 16);
		const char *ea = "", *eb = "";
		if (!direct_expected)
			break; /* both SQLite's: they may have overflow pages */
		dcr_buf_reset(&ra);
		dcr_buf_reset(&rb);
		unsigned dpa =
		    rta > 0 ? walk(a, an, Ua == 1 ? 65536 : Ua, (uint32_t)rta, tree, 0, &ra, &ea)
		            : 0;
		unsigned dpb =
		    rtb > 0 ? walk(b, bn, Ub == 1 ? 65536 : Ub, (uint32_t)rtb, tree, 0, &rb, &eb)
		            : 0;
		if (!dpa || !dpb) {
			DIFF(" %s: %s b-tree unreadable: direct %s, sql %s", what, ty, ea, eb);
			continue;
		}
		if (!same_bytes(&ra, &rb)) {
			size_t at = 0;
			while (at < ra.len && at < rb.len && ra.data[at] == rb.data[at])
				at++;
			bool st67 =
			    at < ra.len && at < rb.len && ra.data[at] == 6 && rb.data[at] == 7;
			DIFF(" %s: %s entries differ (%zu vs %zu bytes), first at byte %zu: "
			     "direct %s, sql %s%s",
			     what, ty, ra.len, rb.len, at, hex_at(&ra, at, &tmp),
			     hex_at(&rb, at, &tmp2),
			     st67 ? " (serial type 6, an 8-byte integer, where SQLite stores 7, a "
			            "real: an integral value of a REAL column needing 8 bytes; "
			            "OP_MakeRecord stores such MEM_IntReal values as reals)"
			          : "");
		}
		if (direct_expected) {
			size_t *mx = tree ? &S.max_index_depth : &S.max_table_depth;
			if (dpa > *mx)
				*mx = dpa;
		}
	}
	qs = case_queries(t, &nq);
	for (size_t i = 0; i < nq; i++) {
		bool oka = query(da, qs[i], &ra), okb = query(db, qs[i], &rb);
		S.queries++;
		if (!oka || !okb)
			DIFF(" %s: query failed: %s: %.200s / %.200s", what, qs[i],
			     dcr_buf_cstr(&ra), dcr_buf_cstr(&rb));
		else if (!same_bytes(&ra, &rb))
			DIFF(" %s: results differ: %s", what, qs[i]);
		free(qs[i]);
	}
	free(qs);
#undef DIFF
out:
	sqlite3_close(da);
	sqlite3_close(db);
	dcr_buf_release(&ra);
	dcr_buf_release(&rb);
	dcr_buf_release(&tmp);
	dcr_buf_release(&tmp2);
	return same;
}

/* ---- driver 1: the public entry (cmp_prepare_ex on a CSV) --------------------------- */

struct sink {
	dcr_buf b;
	size_t calls;
};

static int sink_write(void *ctx, const void *p, size_t n)
{
	struct sink *k = ctx;
	k->calls++;
	dcr_buf_append(&k->b, p, n);
	return 0;
}

/* The daemon's entry (cmp_prepare_stream, as daemon/jobs.c calls it: the
 * image kept in memory up to keep_max, else streamed to a writer); img
 * gets the bytes kept or streamed.
 * -1: the build failed; else whether the direct writer made it. */
static int build_public(const struct table *t, const char *csv, bool direct, dcr_buf *img)
{
	cmp_schema sc = {t->cols, t->ncols};
	const char *idx[1] = {t->key >= 0 ? t->names[t->key] : NULL};
	struct t_mem m = {csv, strlen(csv), 0, 1 + below(70000)};
	struct sink k = {{0}, 0};
	void *kept = NULL;
	size_t kept_n = 0, total = 0, keep_max = below(2) ? SIZE_MAX : below(200000);
	dcr_err err;
	uint64_t before = cmp__prepare_direct_count();
	int rc;
	dcr_buf_init(&k.b);
	cmp__prepare_set_direct(direct);
	rc = cmp_prepare_stream(&sc, "t", idx, t->key >= 0 ? 1 : 0, t_mem_read, &m, sink_write, &k,
	                        keep_max, &kept, &kept_n, &total, &err);
	if (rc != 0) {
		CHECK(0, " prepare (direct %d): %s", direct, err.msg);
		rc = -1;
		goto out;
	}
	rc = cmp__prepare_direct_count() == before + 1;
	CHECK(total % 512 == 0 && total == (kept ? kept_n : k.b.len),
	      " %zu bytes kept, %zu streamed, of %zu", kept_n, k.b.len, total);
	CHECK(kept ? total <= keep_max && k.b.len == 0 : kept_n == 0 && total > keep_max,
	      " kept %zu bytes, streamed %zu, keep_max %zu, total %zu", kept_n, k.b.len, keep_max,
	      total);
	if (rc == 1 && !kept && total > 256 * 4096)
		CHECK(k.calls > 1, " a large image in %zu pieces", k.calls);
	dcr_buf_reset(img);
	if (kept)
		dcr_buf_append(img, kept, kept_n);
	else
		dcr_buf_append(img, k.b.data, k.b.len);
out:
	cmp_image_free(kept, kept_n);
	dcr_buf_release(&k.b);
	return rc;
}

/* expect: 1 direct, 0 fallback, -1 either. */
static void case_public(const char *what, const struct table *t, int expect)
{
	dcr_buf csv, a, b;
	dcr_buf_init(&csv);
	dcr_buf_init(&a);
	dcr_buf_init(&b);
	csv_of(t, &csv);
	int da = build_public(t, dcr_buf_cstr(&csv), true, &a);
	int db = build_public(t, dcr_buf_cstr(&csv), false, &b);
	S.cases++;
	if (da < 0 || db < 0)
		goto out;
	CHECK(db == 0, " %s: the SQL path took the direct writer", what);
	if (expect >= 0)
		CHECK(da == expect, " %s: %s expected, %s taken (%zu rows, %zu cols)", what,
		      expect ? "direct" : "fallback", da ? "direct" : "fallback", t->nrows,
		      t->ncols);
	S.direct += da == 1;
	S.fallback += da == 0;
	compare(what, t, a.data, a.len, b.data, b.len, da == 1, true);
	/* the daemon's reader: the locked-down connection */
	if (da == 1) {
		cmp_schema sc = {t->cols, t->ncols};
		cmp_input ia = {"t", sc, a.data, a.len, NULL}, ib = {"t", sc, b.data, b.len, NULL};
		cmp_result rra, rrb;
		dcr_err err;
		const char *q = "SELECT rowid, * FROM t ORDER BY rowid LIMIT 2000";
		cmp_result_init(&rra);
		cmp_result_init(&rrb);
		CHECK_OK(cmp_sql_run(q, &ia, 1, 0, NULL, &rra, &err), &err);
		CHECK_OK(cmp_sql_run(q, &ib, 1, 0, NULL, &rrb, &err), &err);
		CHECK(rra.rows == rrb.rows &&
		          strcmp(dcr_buf_cstr(&rra.csv), dcr_buf_cstr(&rrb.csv)) == 0,
		      " %s: cmp_sql_run results differ", what);
		cmp_result_release(&rra);
		cmp_result_release(&rrb);
	}
out:
	dcr_buf_release(&csv);
	dcr_buf_release(&a);
	dcr_buf_release(&b);
}

/* Values a CSV field can hold (64 KiB) and a record SQLite accepts. */
static void test_public_random(void)
{
	for (int i = 0; i < 50; i++) {
		struct table t;
		size_t ncols = 1 + below(6), nrows;
		switch (below(6)) {
		case 0:
			nrows = below(3); /* 0, 1, 2 */
			break;
		case 1:
			nrows = below(2500);
			break;
		default:
			nrows = below(400);
			break;
		}
		if (i % 15 == 7)
			ncols = (size_t[]){63, 126, 127, 128,
			                   200}[below(5)]; /* record headers of 1, 2 bytes */
		gen_table(&t, ncols, nrows, true);
		char what[64];
		snprintf(what, sizeof what, "public random %d", i);
		case_public(what, &t, -1);
		table_release(&t);
	}
}

/* Record headers around the point where their own length takes two bytes
 * (OP_MakeRecord's sizing): 124 to 130 one-byte serial types (integers),
 * and 62 to 65 two-byte ones (texts of 60 bytes). */
static void test_public_wide(void)
{
	static char buf[64];
	for (size_t ncols = 124; ncols <= 130; ncols++) {
		struct table t;
		table_init(&t, ncols, (int)(ncols % 3));
		table_rows(&t, 40);
		for (size_t c = 0; c < ncols; c++)
			t.cols[c].type = CMP_INTEGER;
		for (size_t r = 0; r < t.nrows; r++)
			for (size_t c = 0; c < ncols; c++) {
				row_at(&t, r)[c].kind = CMP__INT;
				row_at(&t, r)[c].i = (int64_t)((r * 31 + c) % 100) - 50;
			}
		char what[64];
		snprintf(what, sizeof what, "wide, %zu integer columns", ncols);
		case_public(what, &t, 1);
		table_release(&t);
	}
	for (size_t ncols = 62; ncols <= 65; ncols++) { /* 66: 4094 bytes, overflow */
		struct table t;
		table_init(&t, ncols, (int)(ncols % 4));
		table_rows(&t, 20);
		for (size_t r = 0; r < t.nrows; r++)
			for (size_t c = 0; c < ncols; c++) {
				memset(buf, 'a' + (int)((r + c) % 26), 60);
				set_text(&t, &row_at(&t, r)[c], buf, 60);
			}
		char what[64];
		snprintf(what, sizeof what, "wide, %zu text columns", ncols);
		case_public(what, &t, 1);
		table_release(&t);
	}
}

/* One text column of length L (key or not): the writer takes records of
 * up to U - 35 bytes in a table, (U - 12) * 64 / 255 - 23 in an index,
 * and leaves longer ones (overflow pages) to SQLite. */
static void test_public_thresholds(void)
{
	const unsigned U = 4096, Xt = U - 35, Xi = (U - 12) * 64 / 255 - 23;
	static char buf[8192];
	for (int indexed = 0; indexed < 2; indexed++) {
		unsigned lo = indexed ? Xi - 8 : Xt - 8, hi = indexed ? Xi + 4 : Xt + 4;
		for (unsigned L = lo; L <= hi; L++) {
			for (size_t nrows = 1; nrows <= 300; nrows += 299) {
				struct table t;
				table_init(&t, 2, indexed ? 0 : -1);
				t.cols[1].type = CMP_INTEGER;
				table_rows(&t, nrows);
				/* the long text in the last row: its rowid is nrows */
				for (size_t r = 0; r < nrows; r++) {
					cmp__value *row = row_at(&t, r);
					size_t len = r + 1 == nrows ? L : 5;
					memset(buf, r + 1 == nrows ? 'z' : 'a' + (char)(r % 26),
					       len);
					set_text(&t, &row[0], buf, len);
					row[1].kind = CMP__INT;
					row[1].i = (int64_t)r * 1000;
				}
				/* the largest record: table (c0 text, c1 int), index (c0, rowid) */
				int64_t last = (int64_t)(nrows - 1) * 1000;
				unsigned st_len = (13 + 2 * L) < 128     ? 1
				                  : (13 + 2 * L) < 16384 ? 2
				                                         : 3;
				unsigned ib = last == 0 || last == 1 ? 0
				              : last <= 127          ? 1
				              : last <= 32767        ? 2
				                                     : 3;
				unsigned rb = nrows <= 1 ? 0 : nrows <= 127 ? 1 : 2;
				unsigned trec = 1 + st_len + 1 + L + ib;
				unsigned irec = 1 + st_len + 1 + L + rb;
				/* The writer sizes an index entry with 8 rowid bytes
				 * (its worst case) before it knows the rowid: an entry
				 * within those bytes of the limit may go either way. */
				unsigned iworst = irec - rb + 8;
				int expect = trec <= Xt && (!indexed || iworst <= Xi) ? 1
				             : trec > Xt || (indexed && irec > Xi)    ? 0
				                                                      : -1;
				char what[80];
				snprintf(what, sizeof what, "threshold L=%u rows=%zu indexed=%d", L,
				         nrows, indexed);
				case_public(what, &t, expect);
				table_release(&t);
			}
		}
	}
}

/* Deep trees through the public entry: long keys (a few entries per index
 * page) and long rows (a few per table leaf). */
static void test_public_deep(void)
{
	static char buf[1200];
	struct table t;
	table_init(&t, 3, 0);
	t.cols[1].type = CMP_FLOAT;
	t.cols[2].type = CMP_INTEGER;
	table_rows(&t, 2500);
	for (size_t r = 0; r < t.nrows; r++) {
		cmp__value *row = row_at(&t, r);
		int n = snprintf(buf, sizeof buf, "k%05u", (unsigned)below(900));
		size_t len = 700 + below(290);
		for (size_t j = (size_t)n; j < len; j++)
			buf[j] = (char)('a' + (j * 7 + r % 3) % 26);
		set_text(&t, &row[0], buf, len);
		row[1].kind = CMP__FLOAT;
		row[1].d = gen_float(true);
		row[2].kind = CMP__INT;
		row[2].i = gen_int();
	}
	case_public("deep (long keys)", &t, 1);
	CHECK(S.max_index_depth >= 4, " index depth %zu", S.max_index_depth);
	CHECK(S.max_table_depth >= 2, " table depth %zu", S.max_table_depth);
	table_release(&t);
}

/* ---- driver 2: cmp__btree_write under every page size ------------------------------ */

static void exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		CHECK(0, " %s: %s", sql, msg ? msg : "?");
		sqlite3_free(msg);
	}
}

static void schema_sql(const struct table *t, dcr_buf *b)
{
	static const char *const decl[] = {"TEXT", "INTEGER", "REAL"};
	dcr_buf_reset(b);
	dcr_buf_append_str(b, "CREATE TABLE t(");
	for (size_t c = 0; c < t->ncols; c++)
		dcr_buf_printf(b, "%s%s %s", c ? "," : "", t->names[c], decl[t->cols[c].type]);
	dcr_buf_append_str(b, ")");
}

static void *serialize(sqlite3 *db, size_t *n)
{
	sqlite3_int64 sz = 0;
	void *p = sqlite3_serialize(db, "main", &sz, 0);
	*n = (size_t)sz;
	return p;
}

/* An empty in-memory database of page size U holding t's table (sql: the
 * caller's scratch buffer, left holding the CREATE TABLE). */
static sqlite3 *open_schema(unsigned U, const struct table *t, dcr_buf *sql)
{
	sqlite3 *db = NULL;
	DCR_ASSERT(sqlite3_open(":memory:", &db) == SQLITE_OK);
	dcr_buf_printf(sql, "PRAGMA page_size=%u", U);
	exec_ok(db, dcr_buf_cstr(sql));
	schema_sql(t, sql);
	exec_ok(db, dcr_buf_cstr(sql));
	return db;
}

/* SQLite's path for these rows (in the order given), as cmp_sql.c takes it:
 * CREATE TABLE, one INSERT per row, then CREATE INDEX. */
static void *build_sql(unsigned U, const struct table *t, const cmp__rows *rows, size_t *n)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *ins = NULL;
	dcr_buf sql;
	cmp__value *v = dcr_calloc(t->ncols, sizeof *v);
	dcr_buf_init(&sql);
	db = open_schema(U, t, &sql);
	dcr_buf_reset(&sql);
	dcr_buf_append_str(&sql, "INSERT INTO t VALUES(");
	for (size_t c = 0; c < t->ncols; c++)
		dcr_buf_append_str(&sql, c ? ",?" : "?");
	dcr_buf_append_str(&sql, ")");
	DCR_ASSERT(sqlite3_prepare_v2(db, dcr_buf_cstr(&sql), -1, &ins, NULL) == SQLITE_OK);
	exec_ok(db, "BEGIN");
	for (size_t r = 0; r < cmp__rows_count(rows); r++) {
		cmp__rows_get(rows, r, v);
		for (size_t c = 0; c < t->ncols; c++) {
			int k = (int)c + 1;
			switch (v[c].kind) {
			case CMP__NULL:
				sqlite3_bind_null(ins, k);
				break;
			case CMP__INT:
				sqlite3_bind_int64(ins, k, v[c].i);
				break;
			case CMP__FLOAT:
				sqlite3_bind_double(ins, k, v[c].d);
				break;
			default:
				sqlite3_bind_text64(ins, k, v[c].s, v[c].n, SQLITE_STATIC,
				                    SQLITE_UTF8);
				break;
			}
		}
		CHECK(sqlite3_step(ins) == SQLITE_DONE, " insert: %s", sqlite3_errmsg(db));
		sqlite3_reset(ins);
	}
	sqlite3_finalize(ins);
	exec_ok(db, "COMMIT");
	if (t->key >= 0) {
		dcr_buf_reset(&sql);
		dcr_buf_printf(&sql, "CREATE INDEX t_%s_idx ON t(%s)", t->names[t->key],
		               t->names[t->key]);
		exec_ok(db, dcr_buf_cstr(&sql));
	}
	void *img = serialize(db, n);
	sqlite3_close(db);
	dcr_buf_release(&sql);
	free(v);
	return img;
}

/* The writer's inputs as prepare_direct gives them: the header and the
 * sqlite_schema rows of the schema made by SQLite on the empty table. */
static int build_direct(unsigned U, const struct table *t, const cmp__rows *rows, void **img,
                        size_t *n)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	dcr_buf sql;
	cmp__schema_row sr[2];
	size_t nsr = 0, hn = 0, total = 0;
	cmp_schema sc = {t->cols, t->ncols};
	int rc;
	memset(sr, 0, sizeof sr);
	dcr_buf_init(&sql);
	db = open_schema(U, t, &sql);
	if (t->key >= 0) {
		dcr_buf_reset(&sql);
		dcr_buf_printf(&sql, "CREATE INDEX t_%s_idx ON t(%s)", t->names[t->key],
		               t->names[t->key]);
		exec_ok(db, dcr_buf_cstr(&sql));
	}
	uint8_t *h = serialize(db, &hn);
	DCR_ASSERT(h && hn >= 100);
	DCR_ASSERT(sqlite3_prepare_v2(db,
	                              "SELECT rowid, type, name, tbl_name, sql FROM sqlite_schema "
	                              "ORDER BY rowid",
	                              -1, &st, NULL) == SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW && nsr < 2) {
		sr[nsr].rowid = sqlite3_column_int64(st, 0);
		sr[nsr].type = dcr_strdup((const char *)sqlite3_column_text(st, 1));
		sr[nsr].name = dcr_strdup((const char *)sqlite3_column_text(st, 2));
		sr[nsr].tbl_name = dcr_strdup((const char *)sqlite3_column_text(st, 3));
		sr[nsr].sql = dcr_strdup((const char *)sqlite3_column_text(st, 4));
		sr[nsr].is_index = strcmp(sr[nsr].type, "index") == 0;
		nsr++;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	rc = cmp__btree_write(h, sr, nsr, rows, &sc, t->key >= 0 ? (size_t)t->key : 0, NULL, NULL,
	                      SIZE_MAX, img, n, &total);
	CHECK(rc != 0 || total == *n, " image size %zu, total %zu", *n, total);
	sqlite3_free(h);
	for (size_t i = 0; i < nsr; i++) {
		free((char *)sr[i].type);
		free((char *)sr[i].name);
		free((char *)sr[i].tbl_name);
		free((char *)sr[i].sql);
	}
	dcr_buf_release(&sql);
	return rc;
}

static cmp__rows *rows_of(const struct table *t, bool *sorted)
{
	cmp__rows *rows = cmp__rows_new(t->ncols, t->key >= 0 ? (size_t)t->key : 0);
	for (size_t r = 0; r < t->nrows; r++)
		DCR_ASSERT(cmp__rows_add(rows, &t->v[r * t->ncols], t->ncols, NULL) == 0);
	*sorted = t->key < 0 || cmp__rows_sort(rows);
	return rows;
}

/* expect: 1 written, 0 refused (CMP__BTREE_FALLBACK), -1 either. */
static void case_direct(const char *what, unsigned U, const struct table *t, int expect)
{
	bool sorted;
	cmp__rows *rows = rows_of(t, &sorted);
	void *a = NULL, *b = NULL;
	size_t an = 0, bn = 0;
	int rc;
	S.cases++;
	if (!sorted) {
		CHECK(expect != 1, " %s: rows not sortable", what);
		goto out;
	}
	rc = build_direct(U, t, rows, &a, &an);
	CHECK(rc == 0 || rc == CMP__BTREE_FALLBACK, " %s: writer failed: %d", what, rc);
	if (expect >= 0)
		CHECK((rc == 0) == (expect == 1), " %s: %s expected, got %d", what,
		      expect ? "direct" : "fallback", rc);
	if (rc) {
		CHECK(a == NULL && an == 0, " %s: a refused image is returned", what);
		S.fallback++;
		goto out;
	}
	S.direct++;
	b = build_sql(U, t, rows, &bn);
	compare(what, t, a, an, b, bn, true, true);
out:
	cmp_image_free(a, an);
	sqlite3_free(b);
	cmp__rows_free(rows);
}

static const unsigned page_sizes[] = {512, 1024, 2048, 4096, 8192};

/* Random tables with any value, under each page size. */
static void test_direct_random(void)
{
	for (int i = 0; i < 60; i++) {
		unsigned U = page_sizes[i % 5];
		struct table t;
		size_t nrows = below(3) == 0 ? below(4) : below(1000);
		gen_table(&t, 1 + below(5), nrows, false);
		/* now and then an integer in a float column (not a key) */
		for (size_t r = 0; r < t.nrows; r++)
			for (size_t c = 0; c < t.ncols; c++) {
				cmp__value *v = &row_at(&t, r)[c];
				if (t.cols[c].type == CMP_FLOAT && (int)c != t.key &&
				    v->kind == CMP__FLOAT && below(8) == 0) {
					v->kind = CMP__INT;
					v->i = gen_int();
				}
			}
		char what[64];
		snprintf(what, sizeof what, "direct random %d (page %u)", i, U);
		case_direct(what, U, &t, -1);
		table_release(&t);
	}
}

/* The sweep's table of n rows: a text key of klen bytes (keys not in row
 * order, about 1 in 4 a duplicate) and an integer. Every record has the
 * same size, so the layout depends on n alone and grows with it. */
static void sweep_table(struct table *t, size_t klen, size_t n)
{
	char k[64];
	table_init(t, 2, 0);
	t->cols[1].type = CMP_INTEGER;
	table_rows(t, n);
	for (size_t r = 0; r < n; r++) {
		unsigned key = (unsigned)((r * 2654435761u) % (n * 3 / 4 + 1));
		snprintf(k, sizeof k, "%0*u", (int)klen, key);
		set_text(t, &row_at(t, r)[0], k, klen);
		row_at(t, r)[1].kind = CMP__INT;
		row_at(t, r)[1].i = (int64_t)r;
	}
}

/* The depth of the direct image's table (tree 0) or index (tree 1). */
static unsigned sweep_depth(unsigned U, size_t klen, size_t n, int tree)
{
	struct table t;
	bool sorted;
	void *a = NULL;
	size_t an = 0;
	unsigned d = 0;
	sweep_table(&t, klen, n);
	cmp__rows *rows = rows_of(&t, &sorted);
	if (sorted && build_direct(U, &t, rows, &a, &an) == 0) {
		sqlite3 *db = open_image(a, an);
		int64_t root = root_of(db, tree ? "index" : "table");
		dcr_buf o;
		const char *why = NULL;
		dcr_buf_init(&o);
		if (root > 0)
			d = walk(a, an, U, (uint32_t)root, tree, 0, &o, &why);
		dcr_buf_release(&o);
		sqlite3_close(db);
	}
	cmp_image_free(a, an);
	cmp__rows_free(rows);
	table_release(&t);
	return d;
}

static void sweep_case(unsigned U, size_t klen, size_t n)
{
	struct table t;
	char what[80];
	sweep_table(&t, klen, n);
	snprintf(what, sizeof what, "sweep page %u key %zu rows %zu", U, klen, n);
	case_direct(what, U, &t, 1);
	table_release(&t);
}

/* Every row count from 0 to dense (the first leaves filled exactly, and
 * one more row); then, for each depth d up to its max, the smallest count
 * that gives a tree of d levels (binary search) and the one before: the
 * top page exactly full, and one row more. */
static void test_direct_sweep(void)
{
	static const struct {
		unsigned U;
		size_t klen, dense;
		unsigned tdepth, idepth;
	} sw[] = {{512, 40, 80, 4, 5},
	          {512, 12, 40, 3, 4},
	          {1024, 30, 50, 3, 4},
	          {4096, 20, 30, 2, 3},
	          {8192, 60, 20, 2, 3}};
	for (size_t s = 0; s < sizeof sw / sizeof sw[0] && t_failures < 20; s++) {
		for (size_t n = 0; n <= sw[s].dense; n++)
			sweep_case(sw[s].U, sw[s].klen, n);
		for (int tree = 0; tree < 2; tree++) {
			unsigned dmax = tree ? sw[s].idepth : sw[s].tdepth;
			for (unsigned d = 2; d <= dmax; d++) {
				size_t lo = 1, hi = 64; /* depth(lo) < d <= depth(hi) */
				while (hi <= 100000 &&
				       sweep_depth(sw[s].U, sw[s].klen, hi, tree) < d)
					lo = hi, hi *= 2;
				if (hi > 100000) {
					CHECK(0, " page %u: no %u levels at %zu rows", sw[s].U, d,
					      hi);
					continue;
				}
				while (hi - lo > 1) {
					size_t mid = lo + (hi - lo) / 2;
					if (sweep_depth(sw[s].U, sw[s].klen, mid, tree) >= d)
						hi = mid;
					else
						lo = mid;
				}
				sweep_case(sw[s].U, sw[s].klen, hi - 1);
				sweep_case(sw[s].U, sw[s].klen, hi);
			}
		}
	}
	CHECK(S.max_index_depth >= 5 && S.max_table_depth >= 4, " depths %zu %zu",
	      S.max_index_depth, S.max_table_depth);
}

/* The local payload limits at every page size: a table record of X bytes
 * is written, X + 1 refused (an index entry: see below). */
static void test_direct_thresholds(void)
{
	static char buf[9000];
	for (size_t p = 0; p < 5; p++) {
		unsigned U = page_sizes[p], Xt = U - 35, Xi = (U - 12) * 64 / 255 - 23;
		for (int indexed = 0; indexed < 2; indexed++) {
			unsigned X = indexed ? Xi : Xt;
			for (unsigned rec = X - 2; rec <= X + 2; rec++) {
				/* one text column, one row: table record 1 + st + L, index
				 * record 1 + st + 1 + L (rowid 1: serial type 9, no body) */
				unsigned L = rec - (indexed ? 4 : 3);
				struct table t;
				table_init(&t, 1, indexed ? 0 : -1);
				table_rows(&t, 1);
				memset(buf, 'q', L);
				set_text(&t, &row_at(&t, 0)[0], buf, L);
				char what[80];
				snprintf(what, sizeof what,
				         "payload limit page %u indexed %d record %u", U, indexed,
				         rec);
				/* an index entry is sized with 8 rowid bytes (the
				 * worst case; this one has none): refused when it does
				 * not fit, written when the worst case fits */
				case_direct(what, U, &t,
				            rec > X                    ? 0
				            : !indexed || rec + 8 <= X ? 1
				                                       : -1);
				table_release(&t);
			}
		}
	}
}

/* What the writer must leave to SQLite, and the negative controls of the
 * comparison itself. */
static void test_direct_refusals(void)
{
	struct table t;
	/* NaN: SQLite stores NULL */
	table_init(&t, 2, -1);
	t.cols[0].type = CMP_FLOAT;
	t.cols[1].type = CMP_INTEGER;
	table_rows(&t, 3);
	for (size_t r = 0; r < 3; r++) {
		row_at(&t, r)[0].kind = CMP__FLOAT;
		row_at(&t, r)[0].d = r == 1 ? NAN : 1.5;
		row_at(&t, r)[1].kind = CMP__INT;
		row_at(&t, r)[1].i = (int64_t)r;
	}
	case_direct("NaN", 4096, &t, 0);
	/* -0.0, infinities: written, and the same as SQLite's */
	row_at(&t, 0)[0].d = -0.0;
	row_at(&t, 1)[0].d = INFINITY;
	row_at(&t, 2)[0].d = -INFINITY;
	case_direct("-0 and infinities", 4096, &t, 1);
	t.key = 0;
	case_direct("-0 and infinities, indexed", 1024, &t, 1);
	/* a value whose kind is not its column's: refused */
	row_at(&t, 1)[1].kind = CMP__FLOAT;
	row_at(&t, 1)[1].d = 2.5;
	case_direct("a float in an integer column", 4096, &t, 0);
	table_release(&t);
	/* page sizes the writer does not take */
	for (unsigned U = 16384; U <= 65536; U *= 2) {
		table_init(&t, 1, 0);
		table_rows(&t, 2);
		set_text(&t, &row_at(&t, 0)[0], "b", 1);
		set_text(&t, &row_at(&t, 1)[0], "a", 1);
		char what[48];
		snprintf(what, sizeof what, "page %u", U);
		case_direct(what, U, &t, 0);
		table_release(&t);
	}

	/* Negative controls: a table that differs in one value, or in the
	 * storage class of one value, must be seen to differ; a corrupt
	 * image must fail integrity_check. */
	struct table u;
	bool sorted;
	table_init(&u, 2, 1);
	u.cols[0].type = CMP_FLOAT;
	u.cols[1].type = CMP_STRING;
	table_rows(&u, 400);
	for (size_t r = 0; r < u.nrows; r++) {
		char k[32];
		int n = snprintf(k, sizeof k, "key%03zu", r % 150);
		row_at(&u, r)[0].kind = CMP__FLOAT;
		row_at(&u, r)[0].d = (double)r;
		set_text(&u, &row_at(&u, r)[1], k, (size_t)n);
	}
	cmp__rows *rows = rows_of(&u, &sorted);
	void *a = NULL, *b = NULL;
	size_t an = 0, bn = 0;
	CHECK(sorted && build_direct(1024, &u, rows, &a, &an) == 0);
	cmp__rows_free(rows);
	/* 7.0 stored as the real 7.5: one value */
	row_at(&u, 7)[0].d = 7.5;
	rows = rows_of(&u, &sorted);
	b = build_sql(1024, &u, rows, &bn);
	CHECK(!compare("control: one value", &u, a, an, b, bn, true, false),
	      " a changed value is not seen");
	sqlite3_free(b);
	cmp__rows_free(rows);
	/* the control of the control: 7 given as the integer 7 in the float
	 * column is stored by SQLite as the writer stores 7.0 (an integer,
	 * REAL affinity): the comparison must not see a difference there */
	row_at(&u, 7)[0].kind = CMP__INT;
	row_at(&u, 7)[0].i = 7;
	rows = rows_of(&u, &sorted);
	b = build_sql(1024, &u, rows, &bn);
	CHECK(compare("control: integral real as integer", &u, a, an, b, bn, true, true));
	sqlite3_free(b);
	cmp__rows_free(rows);
	/* a key changed: both the table and the index differ */
	row_at(&u, 7)[0].kind = CMP__FLOAT;
	row_at(&u, 7)[0].d = 7.0;
	set_text(&u, &row_at(&u, 9)[1], "key999", 6);
	rows = rows_of(&u, &sorted);
	b = build_sql(1024, &u, rows, &bn);
	CHECK(!compare("control: one key", &u, a, an, b, bn, true, false),
	      " a changed key is not seen");
	sqlite3_free(b);
	cmp__rows_free(rows);
	/* corrupt: the first two cell pointers of the index's first leaf
	 * swapped (two entries of one key out of rowid order) */
	set_text(&u, &row_at(&u, 9)[1], "key009", 6);
	rows = rows_of(&u, &sorted);
	b = build_sql(1024, &u, rows, &bn);
	CHECK(compare("control: the same rows", &u, a, an, b, bn, true, true));
	{
		sqlite3 *db = open_image(a, an);
		int64_t ir = root_of(db, "index");
		uint8_t *c = dcr_malloc(an), *leaf, tmp[2];
		uint32_t pg = (uint32_t)ir;
		dcr_buf o;
		sqlite3_close(db);
		memcpy(c, a, an);
		while ((size_t)pg * 1024 <= an && c[(size_t)(pg - 1) * 1024] == 0x02) {
			const uint8_t *pc = c + (size_t)(pg - 1) * 1024;
			pg = get32(pc + get16(pc + 12)); /* the leftmost child */
		}
		leaf = c + (size_t)(pg - 1) * 1024;
		CHECK(leaf[0] == 0x0a && get16(leaf + 3) >= 3, " leaf type %x", leaf[0]);
		memcpy(tmp, leaf + 8, 2);
		memcpy(leaf + 8, leaf + 10, 2);
		memcpy(leaf + 10, tmp, 2);
		CHECK(!compare("control: corrupt", &u, c, an, b, bn, true, false),
		      " swapped index entries are not seen");
		dcr_buf_init(&o);
		db = open_image(c, an);
		if (db && pragma_ok(db, "PRAGMA integrity_check", &o))
			printf(
			    "note: integrity_check does not see two index entries out of order\n");
		sqlite3_close(db);
		dcr_buf_release(&o);
		free(c);
	}
	sqlite3_free(b);
	cmp__rows_free(rows);
	cmp_image_free(a, an);
	table_release(&u);
}

int main(void)
{
	bool was = cmp__prepare_direct_on();
	/* the public entry first: compute installs its SQLite allocator before
	 * anything else starts SQLite */
	test_public_thresholds();
	test_public_wide();
	test_public_random();
	test_public_deep();
	test_direct_thresholds();
	test_direct_refusals();
	test_direct_random();
	test_direct_sweep();
	cmp__prepare_set_direct(was);
	printf("%zu cases (%zu written directly, %zu left to SQLite), %zu queries compared; "
	       "deepest table %zu levels, index %zu\n",
	       S.cases, S.direct, S.fallback, S.queries, S.max_table_depth, S.max_index_depth);
	return t_failures ? 1 : 0;
}
