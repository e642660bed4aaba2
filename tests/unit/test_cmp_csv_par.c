/* test_cmp_csv_par.c: validation of large feeds on two threads
 * (compute/cmp_ingest.c, "two threads"; docs/compute.md).
 *
 * The promise under test: splitting a feed between the caller and the
 * worker changes nothing a caller can see. Generated files (quoted fields
 * with commas, doubled quotes and line breaks, long multi-line fields,
 * CRLF, a BOM, NULLs, non-ASCII text, every type and format, a column with
 * more distinct values than the exact bound and one with few) are fed in
 * large chunks (300 KiB - 1.5 MiB, the two-thread path) and in small
 * chunks with the two-thread path off; rows, the statistics JSON (byte for
 * byte: the merge replays the worker's numbers through the same Welford
 * batches, so there is no floating tolerance) and error messages must be
 * identical. The internal counters say which path each chunk took, so the
 * test also fails if the fast path silently stopped being taken, or if a
 * case meant to reach the fallback does not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../compute/compute_int.h"

#include "test.h"

static const cmp_column cols[] = {
    {"id", CMP_INTEGER, CMP_FMT_NONE, false},   {"name", CMP_STRING, CMP_FMT_NONE, true},
    {"score", CMP_FLOAT, CMP_FMT_NONE, true},   {"email", CMP_STRING, CMP_FMT_EMAIL, true},
    {"day", CMP_STRING, CMP_FMT_DATE, true},    {"digest", CMP_STRING, CMP_FMT_SHA256, true},
    {"qty", CMP_INTEGER, CMP_FMT_NONE, true},   {"ratio", CMP_FLOAT, CMP_FMT_NONE, false},
    {"code", CMP_STRING, CMP_FMT_NONE, false},
};
static const cmp_schema schema = {cols, sizeof cols / sizeof cols[0]};

/* ---- generated files ------------------------------------------------------ */

enum {
	G_CRLF = 1,       /* CRLF line ends (also inside quoted fields) */
	G_QUOTES = 2,     /* many quoted fields, with commas, "" and line breaks */
	G_BOM = 4,        /* a BOM before the header */
	G_NULLS = 8,      /* mostly NULLs */
	G_LONGQUOTE = 16, /* now and then a quoted field of 20-300 lines */
	G_ZEROS = 32,     /* ratio is only 0 or -0: min and max are ties */
	G_ROWLIKE = 64,   /* long fields' lines look like records; no other quotes */
};

enum { BAD_NONE, BAD_INT, BAD_UTF8, BAD_LONG_FIELD, BAD_BOM, BAD_QUOTE, BAD_FIELDS, ONE_DIGEST };

struct gen {
	uint64_t rng;
	int flags;
	size_t rows;
	size_t bad_row; /* SIZE_MAX: none */
	int bad_kind;
	size_t long_row; /* SIZE_MAX: none; this row's name spans 300 lines */
	/* out */
	dcr_buf b;
	size_t *off;       /* byte offset where each row starts */
	uint64_t *line;    /* physical line where each row starts */
	uint64_t bad_line; /* where the bad field starts (it may follow a
			      multi-line name) */
};

static uint64_t rnd(struct gen *g)
{
	g->rng ^= g->rng << 13;
	g->rng ^= g->rng >> 7;
	g->rng ^= g->rng << 17;
	return g->rng;
}

static void nl(struct gen *g)
{
	dcr_buf_append_str(&g->b, g->flags & G_CRLF ? "\r\n" : "\n");
}

static void name_field(struct gen *g, size_t row)
{
	static const char *const plain[] = {"Ann Lee", "Bo", "Zo\xc3\xab \xc3\x91\x61ndu",
	                                    "\xe6\x97\xa5\xe6\x9c\xac", "x"};
	uint64_t r = rnd(g);
	if (row == g->long_row || ((g->flags & G_LONGQUOTE) && r % 97 == 0)) {
		unsigned lines = row == g->long_row ? 300 : 20 + (unsigned)(r >> 8) % 280;
		dcr_buf_append_u8(&g->b, '"');
		for (unsigned i = 0; i < lines; i++) {
			if (g->flags & G_ROWLIKE)
				/* A reader that starts inside such a field
				 * (wrongly outside quotes) sees valid records;
				 * from the closing quote to the next opening
				 * one it sees a quoted field, and the first
				 * line of the next long field completes that
				 * record: it reads on without an error. */
				dcr_buf_printf(&g->b, "%s,%u,1.5,a@b.example,2020-01-01,,3,0.5,A",
				               i ? "Ann" : "", i);
			else
				dcr_buf_printf(&g->b, "line %u, with \"\"quotes\"\" and commas,",
				               i);
			nl(g);
		}
		dcr_buf_append_u8(&g->b, '"');
		return;
	}
	unsigned k = (unsigned)(r >> 12) % ((g->flags & G_QUOTES) ? 10 : 6);
	if ((g->flags & G_NULLS) && (r >> 20) % 4 != 0)
		k = 5;
	if ((g->flags & G_ROWLIKE) && k < 5)
		k %= 4;
	switch (k) {
	case 0:
	case 1:
	case 2:
	case 3:
		dcr_buf_append_str(&g->b, plain[(r >> 24) % 5]);
		break;
	case 4:
		dcr_buf_append_str(&g->b, "\"\""); /* the empty string */
		break;
	case 5:
		break; /* NULL */
	case 6:
		dcr_buf_append_str(&g->b, "\"Lee, Ann\"");
		break;
	case 7:
		dcr_buf_append_str(&g->b, "\"say \"\"hi\"\", \xc3\xa9t\xc3\xa9\"");
		break;
	default:
		dcr_buf_append_str(&g->b, "\"two");
		nl(g);
		dcr_buf_append_str(&g->b, "lines, \"\"\"\"");
		nl(g);
		dcr_buf_append_str(&g->b, "\"");
		break;
	}
}

static void gen_file(struct gen *g)
{
	dcr_buf_init(&g->b);
	g->off = dcr_calloc(g->rows, sizeof(*g->off));
	g->line = dcr_calloc(g->rows, sizeof(*g->line));
	if (g->flags & G_BOM)
		dcr_buf_append_str(&g->b, "\xef\xbb\xbf");
	/* Header in another order than the schema. */
	dcr_buf_append_str(&g->b, "name,id,score,email,day,digest,qty,ratio,code");
	nl(g);
	uint64_t line = 2;
	for (size_t row = 0; row < g->rows; row++) {
		size_t start = g->b.len;
		g->off[row] = start;
		g->line[row] = line;
		bool bad = row == g->bad_row;
		if (bad)
			g->bad_line = line;
		bool nulls = g->flags & G_NULLS;
		if (bad && g->bad_kind == BAD_BOM)
			dcr_buf_append_str(&g->b, "\xef\xbb\xbf" "Bo"); /* data, not a BOM */
		else if (bad && g->bad_kind == BAD_UTF8)
			dcr_buf_append_str(&g->b, "ab\xc3(cd");
		else if (bad && g->bad_kind == BAD_QUOTE)
			dcr_buf_append_str(&g->b, "ab\"cd");
		else if (bad && g->bad_kind == BAD_LONG_FIELD) {
			dcr_buf_append_u8(&g->b, '"');
			for (unsigned i = 0; i < DCR_CSV_FIELD_BYTES_MAX / 8 + 1; i++)
				dcr_buf_append_str(&g->b, "longname");
			dcr_buf_append_u8(&g->b, '"');
		} else
			name_field(g, row);
		uint64_t r = rnd(g);
		/* id: unique; sometimes with a sign or leading zeros. */
		if (r % 5 == 0)
			dcr_buf_printf(&g->b, ",+%07zu", row * 3 + 1);
		else
			dcr_buf_printf(&g->b, ",%zu", row * 3 + 1);
		/* score */
		static const char *const scores[] = {"12.5", "-0.0", "0", "1e3", ".5", "",
		                                     "123456789.123456789", "-7.25e-3"};
		if (nulls && (r >> 3) % 3)
			dcr_buf_append_str(&g->b, ",");
		else if ((r >> 3) % 4 == 0)
			dcr_buf_printf(&g->b, ",%s", scores[(r >> 6) % 8]);
		else
			dcr_buf_printf(&g->b, ",%u.%02u", (unsigned)(r >> 9) % 100000,
			               (unsigned)(r >> 30) % 100);
		/* email */
		if ((r >> 40) % (nulls ? 2 : 9) == 0)
			dcr_buf_append_str(&g->b, ",");
		else
			dcr_buf_printf(&g->b, ",user%u@ex%u.example", (unsigned)(r >> 10) % 5000,
			               (unsigned)(r >> 44) % 7);
		/* day */
		if ((r >> 50) % 11 == 0)
			dcr_buf_append_str(&g->b, ",");
		else
			dcr_buf_printf(&g->b, ",20%02u-%02u-%02u", (unsigned)(r >> 12) % 30,
			               1 + (unsigned)(r >> 20) % 12, 1 + (unsigned)(r >> 25) % 28);
		/* digest */
		uint64_t r2 = rnd(g);
		if (bad && g->bad_kind == ONE_DIGEST)
			dcr_buf_printf(&g->b, ",%064u", 7);
		else if (r2 % 3 == 0 || nulls)
			dcr_buf_append_str(&g->b, ",");
		else
			dcr_buf_printf(&g->b, ",%016llx%016llX%016llx%016llx", (unsigned long long)r2,
			               (unsigned long long)(r2 * 3), (unsigned long long)(r2 ^ r),
			               (unsigned long long)(r2 + 1));
		/* qty: few values */
		if (bad && g->bad_kind == BAD_INT) {
			g->bad_line = line;
			for (size_t i = start; i < g->b.len; i++)
				g->bad_line += g->b.data[i] == '\n';
			dcr_buf_append_str(&g->b, ",12a");
		}
		else if ((r2 >> 8) % (nulls ? 2 : 13) == 0)
			dcr_buf_append_str(&g->b, ",");
		else
			dcr_buf_printf(&g->b, ",%d", (int)((r2 >> 16) % 41) - 20);
		/* ratio: -0 and 0 both occur */
		static const char *const ratios[] = {"0", "-0", "0.5", "-1.5", "1e-300", "2.0"};
		if (g->flags & G_ZEROS) /* "-0" reads as 0; an underflow keeps its sign */
			dcr_buf_printf(&g->b, ",%s", (r2 >> 28) % 2 ? "0" : "-1e-400");
		else if ((r2 >> 24) % 3 == 0)
			dcr_buf_printf(&g->b, ",%s", ratios[(r2 >> 28) % 6]);
		else
			dcr_buf_printf(&g->b, ",%u.%u", (unsigned)(r2 >> 32) % 1000,
			               (unsigned)(r2 >> 42) % 1000);
		/* code */
		static const char *const codes[] = {"A", "\"B\"", "C", "\"\xce\xb1\"", "E,F"};
		unsigned ci = (unsigned)(r2 >> 52) % 5;
		if (g->flags & G_ROWLIKE)
			ci = ci & 2; /* A or C: unquoted */
		if (ci == 4)
			dcr_buf_append_str(&g->b, ",\"E,F\"");
		else
			dcr_buf_printf(&g->b, ",%s", codes[ci]);
		if (bad && g->bad_kind == BAD_FIELDS)
			dcr_buf_append_str(&g->b, ",extra");
		nl(g);
		for (size_t i = start; i < g->b.len; i++)
			line += g->b.data[i] == '\n';
	}
}

static void gen_free(struct gen *g)
{
	dcr_buf_release(&g->b);
	free(g->off);
	free(g->line);
}

/* ---- feeding ------------------------------------------------------------------ */

struct outcome {
	int rc;
	uint64_t rows;
	char msg[DCR_ERR_MSG_BYTES];
	char *stats;
	uint64_t fast, fallback;
};

struct feed_opts {
	size_t min_bytes; /* 0 default; SIZE_MAX: never two threads */
	bool naive;       /* split at the first '\n' after the middle, quotes or not */
	bool adaptive;    /* as in production: the path taken depends on timing */
	size_t cmin, cmax; /* chunk sizes, random in [cmin, cmax] */
	const size_t *cuts; /* or: fixed chunk ends (ascending, last = n) */
	bool no_stats;
	uint64_t seed;
};

static void feed(const char *data, size_t n, const struct feed_opts *fo, struct outcome *o)
{
	cmp_ingest *in = NULL;
	dcr_err err;
	dcr_buf stats;
	uint64_t rng = fo->seed | 1;
	dcr_err_clear(&err);
	dcr_buf_init(&stats);
	memset(o, 0, sizeof(*o));
	DCR_ASSERT(cmp_ingest_new(&schema, "t.csv", &in) == 0);
	cmp__ingest_par_config(in, fo->min_bytes,
	                       (fo->adaptive ? 0 : CMP__PAR_FIXED) |
	                           (fo->naive ? CMP__PAR_NAIVE_SPLIT : 0));
	if (fo->no_stats)
		cmp__ingest_no_stats(in);
	int rc = 0;
	size_t k = 0;
	for (size_t i = 0; i < n && !rc;) {
		size_t c;
		if (fo->cuts) {
			c = fo->cuts[k++] - i;
		} else {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			c = fo->cmin + (size_t)(rng % (fo->cmax - fo->cmin + 1));
			if (c > n - i)
				c = n - i;
		}
		rc = cmp_ingest_feed(in, data + i, c, &err);
		i += c;
	}
	if (!rc)
		rc = cmp_ingest_finish(in, &o->rows, &stats, &err);
	o->rc = rc;
	if (rc)
		snprintf(o->msg, sizeof(o->msg), "%s", err.msg);
	else
		o->stats = dcr_strdup(dcr_buf_cstr(&stats));
	cmp__ingest_par_counts(in, &o->fast, &o->fallback, NULL);
	dcr_buf_release(&stats);
	cmp_ingest_free(in);
}

/* The reference: small chunks, one thread. */
static void feed_seq(const char *data, size_t n, bool no_stats, struct outcome *o)
{
	struct feed_opts fo = {.min_bytes = SIZE_MAX, .cmin = 1, .cmax = 9000, .seed = 7,
	                       .no_stats = no_stats};
	feed(data, n, &fo, o);
	CHECK(o->fast == 0 && o->fallback == 0);
}

static bool same(const char *what, const struct outcome *a, const struct outcome *b)
{
	bool ok = a->rc == b->rc && a->rows == b->rows && strcmp(a->msg, b->msg) == 0 &&
	          (a->stats == NULL) == (b->stats == NULL) &&
	          (!a->stats || strcmp(a->stats, b->stats) == 0);
	if (!ok) {
		fprintf(stderr, "%s: outcomes differ\n  rc %d / %d, rows %llu / %llu\n", what,
		        a->rc, b->rc, (unsigned long long)a->rows, (unsigned long long)b->rows);
		fprintf(stderr, "  msg: %s\n       %s\n", a->msg, b->msg);
		if (a->stats && b->stats)
			fprintf(stderr, "  stats: %s\n         %s\n", a->stats, b->stats);
	}
	CHECK(ok);
	return ok;
}

static void outcome_free(struct outcome *o)
{
	free(o->stats);
	o->stats = NULL;
}

/* "distinct_exact" of a column in a statistics JSON. */
static int distinct_exact(const char *stats, const char *col)
{
	char key[64];
	snprintf(key, sizeof(key), "{\"name\":\"%s\"", col);
	const char *p = stats ? strstr(stats, key) : NULL;
	const char *e = p ? strchr(p, '}') : NULL;
	const char *x = p ? strstr(p, "\"distinct_exact\":") : NULL;
	if (!x || x > e)
		return -1;
	return strncmp(x + 17, "true", 4) == 0;
}

/* ---- cases ---------------------------------------------------------------------- */

/* Clean files: large chunks (two threads) == small chunks (one thread). */
static void test_equal(void)
{
	static const struct {
		int flags;
		size_t rows;
	} v[] = {
	    {0, 20000},
	    {G_CRLF, 20000},
	    {G_QUOTES | G_LONGQUOTE, 12000},
	    {G_QUOTES | G_LONGQUOTE | G_CRLF | G_BOM, 12000},
	    {G_NULLS | G_QUOTES, 25000},
	    {G_ZEROS, 20000},
	    {G_QUOTES, 75000}, /* id: more distinct values than the exact bound */
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		struct gen g = {.rng = 0x9e3779b97f4a7c15ull + i, .flags = v[i].flags,
		                .rows = v[i].rows, .bad_row = SIZE_MAX, .long_row = SIZE_MAX};
		gen_file(&g);
		const char *d = (const char *)g.b.data;
		size_t n = g.b.len;
		struct outcome ref, o;
		char what[96];
		feed_seq(d, n, false, &ref);
		CHECK(ref.rc == 0);
		CHECK(ref.rows == v[i].rows);
		if (ref.rc)
			fprintf(stderr, "variant %zu: %s\n", i, ref.msg);
		/* Two threads, as the daemon feeds (and larger). */
		for (uint64_t seed = 1; seed <= 3; seed++) {
			struct feed_opts fo = {.cmin = 300 * 1024, .cmax = 1536 * 1024,
			                       .seed = seed * 1000 + i};
			feed(d, n, &fo, &o);
			snprintf(what, sizeof(what), "variant %zu, large chunks, seed %llu", i,
			         (unsigned long long)seed);
			same(what, &ref, &o);
			CHECK(o.fast > 0);
			/* Valid CSV: the quote-aware split never falls inside a
			 * quoted field, so nothing is discarded. */
			CHECK(o.fallback == 0);
			outcome_free(&o);
		}
		/* Many more split points: small threshold, smaller chunks,
		 * and the naive split (into quoted fields too). */
		for (int naive = 0; naive <= 1; naive++) {
			struct feed_opts fo = {.min_bytes = 8 * 1024, .naive = naive,
			                       .cmin = 8 * 1024, .cmax = 96 * 1024,
			                       .seed = 77 + i};
			feed(d, n, &fo, &o);
			snprintf(what, sizeof(what), "variant %zu, small chunks, naive %d", i,
			         naive);
			same(what, &ref, &o);
			CHECK(o.fast > 0);
			if (!naive)
				CHECK(o.fallback == 0);
			if (naive && (v[i].flags & G_LONGQUOTE))
				CHECK(o.fallback > 0);
			outcome_free(&o);
		}
		/* One feed of the whole file (pieces inside). */
		{
			size_t cuts[1] = {n};
			struct feed_opts fo = {.cuts = cuts};
			feed(d, n, &fo, &o);
			snprintf(what, sizeof(what), "variant %zu, one feed", i);
			same(what, &ref, &o);
			CHECK(o.fast > 0);
			outcome_free(&o);
		}
		/* As in production (adaptive split, the caller takes back a
		 * part the worker has not started): which chunks go which way
		 * depends on timing, the outcome must not. */
		for (int naive = 0; naive <= 1; naive++) {
			struct feed_opts fo = {.adaptive = true, .naive = naive,
			                       .cmin = 300 * 1024, .cmax = 1536 * 1024,
			                       .seed = 11 + i};
			feed(d, n, &fo, &o);
			snprintf(what, sizeof(what), "variant %zu, adaptive, naive %d", i, naive);
			same(what, &ref, &o);
			outcome_free(&o);
		}
		/* Validation only (no statistics). */
		{
			struct outcome ref2;
			feed_seq(d, n, true, &ref2);
			struct feed_opts fo = {.cmin = 300 * 1024, .cmax = 1536 * 1024, .seed = 5,
			                       .no_stats = true};
			feed(d, n, &fo, &o);
			snprintf(what, sizeof(what), "variant %zu, no statistics", i);
			same(what, &ref2, &o);
			CHECK(o.fast > 0);
			outcome_free(&o);
			outcome_free(&ref2);
		}
		if (v[i].rows > 70000) {
			CHECK(distinct_exact(ref.stats, "id") == 0); /* HyperLogLog */
			CHECK(distinct_exact(ref.stats, "qty") == 1);
			CHECK(distinct_exact(ref.stats, "email") == 1);
		} else {
			CHECK(distinct_exact(ref.stats, "id") == 1);
		}
		outcome_free(&ref);
		gen_free(&g);
	}
}

/* A file with a bad row placed at a given position of a 1 MiB chunk;
 * returns the row's line. */
static const uint64_t MIB = 1024 * 1024;

static size_t row_near(const struct gen *g, size_t target)
{
	for (size_t r = 0; r < g->rows; r++)
		if (g->off[r] >= target)
			return r;
	return g->rows - 1;
}

static void check_error(const char *what, int flags, size_t rows, double pos, int kind,
                        const char *want_tail)
{
	/* Find the row at chunk 2's position pos (0.5 = its middle). */
	struct gen g0 = {.rng = 12345, .flags = flags, .rows = rows, .bad_row = SIZE_MAX,
	                 .long_row = SIZE_MAX};
	gen_file(&g0);
	size_t bad = row_near(&g0, (size_t)(2 * MIB + pos * (double)MIB));
	gen_free(&g0);
	struct gen g = {.rng = 12345, .flags = flags, .rows = rows, .bad_row = bad,
	                .bad_kind = kind, .long_row = SIZE_MAX};
	gen_file(&g);
	const char *d = (const char *)g.b.data;
	size_t n = g.b.len;
	struct outcome ref, o;
	feed_seq(d, n, false, &ref);
	char want[DCR_ERR_MSG_BYTES];
	/* "t.csv line N" and the rest of the message. */
	snprintf(want, sizeof(want), "t.csv line %llu%s", (unsigned long long)g.bad_line,
	         want_tail);
	CHECK(ref.rc == DCR_ECSV);
	if (strcmp(ref.msg, want)) {
		fprintf(stderr, "%s: sequential message\n  got  %s\n  want %s\n", what, ref.msg,
		        want);
		t_failures++;
	}
	/* 1 MiB chunks, as the daemon feeds: the bad row is in chunk 2. */
	size_t cuts[64], nc = 0;
	for (size_t e = MIB; e < n && nc < 63; e += MIB)
		cuts[nc++] = e;
	cuts[nc++] = n;
	for (int naive = 0; naive <= 1; naive++) {
		struct feed_opts fo = {.cuts = cuts, .naive = naive};
		feed(d, n, &fo, &o);
		same(what, &ref, &o);
		CHECK(o.fast >= 1); /* chunks 0 and 1 */
		/* Chunk 2 (the error); the naive split may also land inside
		 * one of the long quoted fields of chunks 0 and 1. */
		CHECK(naive ? o.fallback >= 1 : o.fallback == 1);
		outcome_free(&o);
	}
	/* Chunks that end exactly at line ends (the worker then ends at a
	 * record boundary and the caller resumes at the chunk's end). */
	nc = 0;
	for (size_t e = MIB; e < n && nc < 63; e += MIB)
		cuts[nc++] = g.off[row_near(&g, e)];
	cuts[nc++] = n;
	for (int naive = 0; naive <= 1; naive++) {
		struct feed_opts fo = {.cuts = cuts, .naive = naive};
		feed(d, n, &fo, &o);
		same(what, &ref, &o);
		CHECK(o.fast >= 1);
		outcome_free(&o);
	}
	/* And random large chunks, fixed and adaptive. */
	for (int adaptive = 0; adaptive <= 1; adaptive++) {
		struct feed_opts fo = {.cmin = 300 * 1024, .cmax = 1536 * 1024, .seed = 99,
		                       .adaptive = adaptive};
		feed(d, n, &fo, &o);
		same(what, &ref, &o);
		outcome_free(&o);
	}
	outcome_free(&ref);
	gen_free(&g);
}

static void test_errors(void)
{
	const int q = G_QUOTES | G_LONGQUOTE;
	check_error("bad integer, second half", q, 40000, 0.75, BAD_INT,
	            ", column \"qty\": expected integer, got \"12a\"");
	check_error("bad integer, first half", q, 40000, 0.25, BAD_INT,
	            ", column \"qty\": expected integer, got \"12a\"");
	check_error("bad integer, CRLF, second half", q | G_CRLF, 40000, 0.6, BAD_INT,
	            ", column \"qty\": expected integer, got \"12a\"");
	check_error("invalid UTF-8, second half", 0, 40000, 0.7, BAD_UTF8,
	            ", column \"name\": invalid UTF-8 (byte 0xc3 at offset 2)");
	check_error("quote in an unquoted field, second half", 0, 40000, 0.9, BAD_QUOTE,
	            ", column \"name\": quote inside an unquoted field (quote "
	            "the whole field and double the quote)");
	check_error("field too long, second half", 0, 40000, 0.55, BAD_LONG_FIELD,
	            ", column \"name\": field longer than 65536 bytes");
	check_error("too many fields, second half", q, 40000, 0.8, BAD_FIELDS,
	            ": expected 9 fields, got 10");
}

/* A BOM is skipped only at the start of the file: in the middle it is
 * data (here U+FEFF at the start of a name, valid text that changes the
 * name's length and distinct count), on both paths. The row is the first
 * of the worker's part of chunk 2 (the first row starting after its
 * middle: no quotes in this file, so the split is the line end there). */
static void test_bom_in_middle(void)
{
	struct gen g0 = {.rng = 4242, .rows = 40000, .bad_row = SIZE_MAX, .long_row = SIZE_MAX};
	gen_file(&g0);
	size_t row = row_near(&g0, (size_t)(2.5 * (double)MIB) + 1);
	gen_free(&g0);
	struct gen g = {.rng = 4242, .rows = 40000, .bad_row = row, .bad_kind = BAD_BOM,
	                .long_row = SIZE_MAX};
	gen_file(&g);
	struct outcome ref, o;
	feed_seq((const char *)g.b.data, g.b.len, false, &ref);
	CHECK(ref.rc == 0);
	CHECK(g.b.data[g.off[row] - 1] == '\n');
	struct feed_opts fo = {.cmin = MIB, .cmax = MIB};
	feed((const char *)g.b.data, g.b.len, &fo, &o);
	same("BOM in the middle", &ref, &o);
	CHECK(o.fallback == 0);
	outcome_free(&o);
	outcome_free(&ref);
	gen_free(&g);
}

/* The middle of a chunk falls inside a quoted field of 300 lines: the
 * quote-aware split moves past it (kept); the naive split lands inside it
 * (the caller's part ends inside a record: discarded, the rest of the
 * chunk validated alone). Either way the results are those of one thread,
 * and a bad value after it gives the same message and line. */
static void split_in_quoted_field(int flags)
{
	struct gen g0 = {.rng = 777, .flags = flags, .rows = 40000, .bad_row = SIZE_MAX,
	                 .long_row = SIZE_MAX};
	gen_file(&g0);
	/* Starts 3 KiB before the middle of chunk 1 (at 1.5 MiB); ~12 KiB. */
	size_t lr = row_near(&g0, (size_t)(1.5 * (double)MIB) - 3 * 1024);
	gen_free(&g0);
	for (int with_error = 0; with_error <= 1; with_error++) {
		struct gen g = {.rng = 777, .flags = flags, .rows = 40000, .long_row = lr,
		                .bad_row = SIZE_MAX};
		if (with_error) {
			g.bad_row = lr + 2000;
			g.bad_kind = BAD_INT;
		}
		gen_file(&g);
		const char *d = (const char *)g.b.data;
		size_t n = g.b.len;
		CHECK(g.off[lr] < (size_t)(1.5 * (double)MIB) &&
		      g.off[lr + 1] > (size_t)(1.5 * (double)MIB));
		if (with_error)
			CHECK(g.off[g.bad_row] < 2 * MIB); /* in the same chunk */
		struct outcome ref, o;
		feed_seq(d, n, false, &ref);
		CHECK(with_error ? ref.rc == DCR_ECSV : ref.rc == 0);
		if (with_error) {
			char want[DCR_ERR_MSG_BYTES];
			snprintf(want, sizeof(want),
			         "t.csv line %llu, column \"qty\": expected integer, got \"12a\"",
			         (unsigned long long)g.bad_line);
			CHECK(strcmp(ref.msg, want) == 0);
		}
		size_t cuts[64], nc = 0;
		for (size_t e = MIB; e < n && nc < 63; e += MIB)
			cuts[nc++] = e;
		cuts[nc++] = n;
		for (int naive = 0; naive <= 1; naive++) {
			struct feed_opts fo = {.cuts = cuts, .naive = naive};
			feed(d, n, &fo, &o);
			same(naive ? "split inside a quoted field (naive)"
			           : "split inside a quoted field (quote-aware)",
			     &ref, &o);
			if (!naive && !with_error)
				CHECK(o.fallback == 0);
			if (naive)
				CHECK(o.fallback >= 1);
			CHECK(o.fast >= 1);
			outcome_free(&o);
		}
		outcome_free(&ref);
		gen_free(&g);
	}
}

static void test_split_in_quoted_field(void)
{
	split_in_quoted_field(0);
	/* The worker, starting inside the field, reads on without an error
	 * (the caller's state decides, not the worker's success). */
	split_in_quoted_field(G_ROWLIKE | G_LONGQUOTE);
}

/* Only the worker ever sees a value of a column (digest: one value in the
 * whole file, in the second half of a chunk). */
static void test_value_only_in_worker(void)
{
	struct gen g0 = {.rng = 31337, .flags = G_NULLS, .rows = 40000, .bad_row = SIZE_MAX,
	                 .long_row = SIZE_MAX};
	gen_file(&g0);
	size_t row = row_near(&g0, (size_t)(1.75 * (double)MIB));
	gen_free(&g0);
	struct gen g = {.rng = 31337, .flags = G_NULLS, .rows = 40000, .bad_row = row,
	                .bad_kind = ONE_DIGEST, .long_row = SIZE_MAX};
	gen_file(&g);
	struct outcome ref, o;
	feed_seq((const char *)g.b.data, g.b.len, false, &ref);
	CHECK(ref.rc == 0);
	CHECK(ref.stats && strstr(ref.stats, "\"min_length\":64,\"max_length\":64"));
	struct feed_opts fo = {.cmin = MIB, .cmax = MIB};
	feed((const char *)g.b.data, g.b.len, &fo, &o);
	same("a value only the worker sees", &ref, &o);
	CHECK(o.fast > 0 && o.fallback == 0);
	outcome_free(&o);
	outcome_free(&ref);
	gen_free(&g);
}

/* The worker's part alone has more distinct values than the exact bound
 * (it switches to HyperLogLog) while the caller's set is still exact: the
 * caller's values must end up in the registers too. One integer column
 * (bound 65,536): 70,000 rows of 30,000 values, then 70,000 new values;
 * one feed, split near the boundary of the two blocks. */
static void test_worker_switches_to_hll(void)
{
	static const cmp_column c1[] = {{"v", CMP_INTEGER, CMP_FMT_NONE, false}};
	const cmp_schema s1 = {c1, 1};
	dcr_buf b;
	dcr_buf_init(&b);
	dcr_buf_append_str(&b, "v\n");
	for (unsigned i = 0; i < 70000; i++)
		dcr_buf_printf(&b, "%u\n", 1000000 + i % 30000);
	for (unsigned i = 0; i < 70000; i++)
		dcr_buf_printf(&b, "%u\n", 2000000 + i);
	const char *d = (const char *)b.data;
	char *st[2] = {NULL, NULL};
	uint64_t fast = 0, fb = 0;
	for (int par = 0; par <= 1; par++) {
		cmp_ingest *in;
		dcr_err err;
		dcr_buf js;
		uint64_t rows = 0;
		dcr_buf_init(&js);
		DCR_ASSERT(cmp_ingest_new(&s1, "v.csv", &in) == 0);
		cmp__ingest_par_config(in, par ? 0 : SIZE_MAX, CMP__PAR_FIXED);
		CHECK(cmp_ingest_feed(in, d, b.len, &err) == 0);
		CHECK(cmp_ingest_finish(in, &rows, &js, &err) == 0);
		CHECK(rows == 140000);
		st[par] = dcr_strdup(dcr_buf_cstr(&js));
		if (par)
			cmp__ingest_par_counts(in, &fast, &fb, NULL);
		dcr_buf_release(&js);
		cmp_ingest_free(in);
	}
	CHECK(fast == 1 && fb == 0);
	CHECK(strcmp(st[0], st[1]) == 0);
	CHECK(distinct_exact(st[0], "v") == 0);
	if (strcmp(st[0], st[1]))
		fprintf(stderr, "worker HLL: %s\n            %s\n", st[0], st[1]);
	free(st[0]);
	free(st[1]);
	dcr_buf_release(&b);
}

int main(void)
{
	test_equal();
	test_errors();
	test_bom_in_middle();
	test_split_in_quoted_field();
	test_value_only_in_worker();
	test_worker_switches_to_hll();
	if (t_failures) {
		fprintf(stderr, "%d failures\n", t_failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
