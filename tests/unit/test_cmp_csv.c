/* test_cmp_csv.c: CSV validation and statistics (compute/cmp_csv.c,
 * cmp_ingest.c). Every case is run twice, with the whole input in one
 * feed and one byte per feed, and both must give the same outcome: rows,
 * statistics and the exact error message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../compute/compute.h"

#include "test.h"

struct outcome {
	int rc;
	uint64_t rows;
	char msg[DCR_ERR_MSG_BYTES];
	char *stats;
};

static void run_chunked(const cmp_schema *s, const char *data, size_t n, size_t chunk,
                        struct outcome *o)
{
	cmp_ingest *in = NULL;
	dcr_err err;
	dcr_err_clear(&err);
	dcr_buf stats;
	dcr_buf_init(&stats);
	memset(o, 0, sizeof(*o));
	DCR_ASSERT(cmp_ingest_new(s, "t.csv", &in) == 0);
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i += chunk)
		rc = cmp_ingest_feed(in, data + i, n - i < chunk ? n - i : chunk, &err);
	if (!rc)
		rc = cmp_ingest_finish(in, &o->rows, &stats, &err);
	o->rc = rc;
	if (rc)
		snprintf(o->msg, sizeof(o->msg), "%s", err.msg);
	else
		o->stats = dcr_strdup(dcr_buf_cstr(&stats));
	dcr_buf_release(&stats);
	cmp_ingest_free(in);
}

/* Runs whole and byte by byte; returns the whole-input outcome. */
static void run(const cmp_schema *s, const char *data, size_t n, struct outcome *o)
{
	struct outcome b;
	run_chunked(s, data, n, n ? n : 1, o);
	run_chunked(s, data, n, 1, &b);
	CHECK(o->rc == b.rc);
	CHECK(o->rows == b.rows);
	CHECK(strcmp(o->msg, b.msg) == 0);
	CHECK((o->stats == NULL) == (b.stats == NULL));
	if (o->stats && b.stats)
		CHECK(strcmp(o->stats, b.stats) == 0);
	if (strcmp(o->msg, b.msg))
		fprintf(stderr, "  whole: %s\n  bytes: %s\n", o->msg, b.msg);
	free(b.stats);
}

static const cmp_column people_cols[] = {
    {"email", CMP_STRING, CMP_FMT_EMAIL, false},
    {"name", CMP_STRING, CMP_FMT_NONE, true},
    {"age", CMP_INTEGER, CMP_FMT_NONE, true},
    {"balance", CMP_FLOAT, CMP_FMT_NONE, true},
};
static const cmp_schema people = {people_cols, 4};

static void expect_err(const cmp_schema *s, const char *data, const char *want)
{
	struct outcome o;
	run(s, data, strlen(data), &o);
	CHECK(o.rc == DCR_ECSV);
	if (strcmp(o.msg, want) != 0) {
		fprintf(stderr, "input: %s\n  want: %s\n  got:  %s\n", data, want, o.msg);
		t_failures++;
	}
	free(o.stats);
}

static void expect_ok(const cmp_schema *s, const char *data, size_t n, uint64_t rows,
                      const char *stats_want)
{
	struct outcome o;
	if (n == 0)
		n = strlen(data);
	run(s, data, n, &o);
	CHECK(o.rc == 0);
	if (o.rc)
		fprintf(stderr, "unexpected error: %s\n", o.msg);
	CHECK(o.rows == rows);
	if (stats_want && o.stats && strcmp(o.stats, stats_want)) {
		fprintf(stderr, "stats\n  want: %s\n  got:  %s\n", stats_want, o.stats);
		t_failures++;
	}
	free(o.stats);
}

static void test_valid(void)
{
	/* Header in another order, CRLF, quoted fields with commas, doubled
	 * quotes and an embedded newline, a NULL, a BOM. */
	const char *d = "\xEF\xBB\xBF"
	                "age,email,balance,name\r\n"
	                "30,a@x.example,1.5,\"Doe, John\"\r\n"
	                "40,b@x.example,-2.5e1,\"say \"\"hi\"\"\nthere\"\r\n"
	                ",c@x.example,,\"\"\r\n"
	                "30,d@x.example,100,Ren\xC3\xA9";
	const char *want =
	    "{\"rows\":4,\"bytes\":143,\"columns\":["
	    "{\"name\":\"email\",\"type\":\"string\",\"format\":\"email\",\"nullable\":false,"
	    "\"nulls\":0,\"distinct\":4,\"distinct_exact\":true,\"min_length\":11,\"max_length\":"
	    "11},"
	    "{\"name\":\"name\",\"type\":\"string\",\"nullable\":true,\"nulls\":0,\"distinct\":4,"
	    "\"distinct_exact\":true,\"min_length\":0,\"max_length\":14},"
	    "{\"name\":\"age\",\"type\":\"integer\",\"nullable\":true,\"nulls\":1,\"distinct\":2,"
	    "\"distinct_exact\":true,\"min\":30,\"max\":40,\"mean\":33.333333333333336,"
	    "\"stddev\":5.7735026918962582},"
	    "{\"name\":\"balance\",\"type\":\"float\",\"nullable\":true,\"nulls\":1,\"distinct\":3,"
	    "\"distinct_exact\":true,\"min\":-25.0,\"max\":100.0,\"mean\":25.5,"
	    "\"stddev\":65.865393037618773}]}";
	CHECK(strlen(d) == 143);
	expect_ok(&people, d, strlen(d), 4, want);
	/* Header only; LF; trailing newline or not. */
	expect_ok(&people, "email,name,age,balance\n", 23, 0, NULL);
	expect_ok(&people, "email,name,age,balance", 22, 0, NULL);
	expect_ok(&people, "email,name,age,balance\na@b.cd,,,", 0, 1, NULL);
	expect_ok(&people, "email,name,age,balance\r\na@b.cd,,,\r", 0, 1, NULL);
	/* Edge numbers. */
	expect_ok(&people,
	          "email,name,age,balance\n"
	          "a@b.cd,,9223372036854775807,1e308\n"
	          "a@b.cd,,-9223372036854775808,.5\n"
	          "a@b.cd,,+7,00012.50\n"
	          "a@b.cd,,007,123456789012345678901234567890\n",
	          0, 4, NULL);
}

static void test_errors(void)
{
	const char *h = "email,name,age,balance\n";
	char buf[4096];
#define E(body, want)                                                                              \
	do {                                                                                       \
		snprintf(buf, sizeof(buf), "%s%s", h, body);                                       \
		expect_err(&people, buf, want);                                                    \
	} while (0)
	E("a@b.cd,x,1,1\nb@b.cd,y,12a,2\n",
	  "t.csv line 3, column \"age\": expected integer, got \"12a\"");
	E("a@b.cd,x,9223372036854775808,1\n",
	  "t.csv line 2, column \"age\": integer out of range (64-bit), got "
	  "\"9223372036854775808\"");
	E("a@b.cd,x,-9223372036854775809,1\n",
	  "t.csv line 2, column \"age\": integer out of range (64-bit), got "
	  "\"-9223372036854775809\"");
	E("a@b.cd,x,1.0,1\n", "t.csv line 2, column \"age\": expected integer, got \"1.0\"");
	E("a@b.cd,x, 1,1\n", "t.csv line 2, column \"age\": expected integer, got \" 1\"");
	E("a@b.cd,x,1,abc\n", "t.csv line 2, column \"balance\": expected float, got \"abc\"");
	E("a@b.cd,x,1,nan\n", "t.csv line 2, column \"balance\": expected float, got \"nan\"");
	E("a@b.cd,x,1,inf\n", "t.csv line 2, column \"balance\": expected float, got \"inf\"");
	E("a@b.cd,x,1,1e\n", "t.csv line 2, column \"balance\": expected float, got \"1e\"");
	E("a@b.cd,x,1,0x10\n", "t.csv line 2, column \"balance\": expected float, got \"0x10\"");
	E("a@b.cd,x,1,1e999\n",
	  "t.csv line 2, column \"balance\": float out of range, got \"1e999\"");
	E(",x,1,1\n",
	  "t.csv line 2, column \"email\": empty value in a column that is not nullable");
	E("\"\",x,1,1\n", "t.csv line 2, column \"email\": expected email address, got \"\"");
	E("ab.cd,x,1,1\n", "t.csv line 2, column \"email\": expected email address, got \"ab.cd\"");
	E("a@localhost,x,1,1\n",
	  "t.csv line 2, column \"email\": expected email address, got \"a@localhost\"");
	E("a@b.cd,x,1\n", "t.csv line 2: expected 4 fields, got 3");
	E("a@b.cd,x,1,2,3\n", "t.csv line 2: expected 4 fields, got 5");
	E("a@b.cd,x,1,2\n\n", "t.csv line 3: expected 4 fields, got 1");
	E("a@b.cd,x\"y,1,2\n",
	  "t.csv line 2, column \"name\": quote inside an unquoted field (quote the whole "
	  "field and double the quote)");
	E("a@b.cd,\"x\"y,1,2\n",
	  "t.csv line 2, column \"name\": unexpected character after a closing quote");
	E("a@b.cd,x,1,2\na@b.cd,\"x\n\ny,1,2\n",
	  "t.csv line 3, column \"name\": quoted field not closed before the end of the file");
	E("a@b.cd,x,1,2\rb@b.cd,x,1,2\n",
	  "t.csv line 2: carriage return not followed by a line feed");
	E("a@b.cd,\"multi\nline\nname\",1x,2\n",
	  "t.csv line 4, column \"age\": expected integer, got \"1x\"");
	E("a@b.cd,\"multi\nline\nname\",1,2\na@b.cd,\"x\",y,2\n",
	  "t.csv line 5, column \"age\": expected integer, got \"y\"");
	/* Invalid UTF-8: a stray continuation byte, an overlong NUL, a
	 * surrogate, a truncated sequence at the end of a field. */
	E("a@b.cd,x\x80y,1,2\n",
	  "t.csv line 2, column \"name\": invalid UTF-8 (byte 0x80 at offset 1)");
	E("a@b.cd,\xC0\x80,1,2\n",
	  "t.csv line 2, column \"name\": invalid UTF-8 (byte 0xc0 at offset 0)");
	E("a@b.cd,\xED\xA0\x80,1,2\n",
	  "t.csv line 2, column \"name\": invalid UTF-8 (byte 0xed at offset 0)");
	E("a@b.cd,ab\xE2\x82,1,2\n",
	  "t.csv line 2, column \"name\": invalid UTF-8 (byte 0xe2 at offset 2)");
	E("a@b.cd,x,123456789012345678901234567890123456789012345678901234567890,2\n",
	  "t.csv line 2, column \"age\": integer out of range (64-bit), got "
	  "\"1234567890123456789012345678901234567890\"...");
	E("a@b.cd,x,1\"2,2\n",
	  "t.csv line 2, column \"age\": quote inside an unquoted field (quote the whole field "
	  "and double the quote)");
	E("a@b.cd,x,\"1\"\"\",2\n",
	  "t.csv line 2, column \"age\": expected integer, got \"1\\\"\"");
#undef E
	expect_err(&people, "", "t.csv line 1: no header row (the file is empty)");
	expect_err(&people, "\xEF\xBB\xBF", "t.csv line 1: no header row (the file is empty)");
	expect_err(&people, "email,name,age\n", "t.csv line 1: header: missing column \"balance\"");
	expect_err(&people, "email,name,age,balance,x\n",
	           "t.csv line 1: header: unknown column \"x\"");
	expect_err(&people, "email,name,age,Balance\n",
	           "t.csv line 1: header: unknown column \"Balance\"");
	expect_err(&people, "email,name,age,email\n",
	           "t.csv line 1: header: duplicate column \"email\"");

	/* Regression: a UTF-8 sequence split by a separator is invalid in
	 * both fields, even though the fields' bytes concatenated decode. */
	const cmp_column scols[] = {{"x", CMP_STRING, CMP_FMT_NONE, true},
	                            {"y", CMP_STRING, CMP_FMT_NONE, true}};
	const cmp_schema ss = {scols, 2};
	expect_err(&ss, "x,y\n\xC3,\xA9\n",
	           "t.csv line 2, column \"x\": invalid UTF-8 (byte 0xc3 at offset 0)");
	expect_err(&ss, "x,y\n\"\xC3\",\"\xA9\"\n",
	           "t.csv line 2, column \"x\": invalid UTF-8 (byte 0xc3 at offset 0)");

	const cmp_column fcols[] = {{"d", CMP_STRING, CMP_FMT_DATE, true},
	                            {"h", CMP_STRING, CMP_FMT_SHA256, true}};
	const cmp_schema fs = {fcols, 2};
	const char *sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	snprintf(buf, sizeof(buf), "d,h\n2024-02-29,%s\n,\n", sha);
	expect_ok(&fs, buf, strlen(buf), 2, NULL);
	expect_err(&fs, "d,h\n2023-02-29,\n",
	           "t.csv line 2, column \"d\": expected date (YYYY-MM-DD), got \"2023-02-29\"");
	expect_err(&fs, "d,h\n2023-1-01,\n",
	           "t.csv line 2, column \"d\": expected date (YYYY-MM-DD), got \"2023-1-01\"");
	expect_err(&fs, "d,h\n,abc\n",
	           "t.csv line 2, column \"h\": expected sha256 (64 hex digits), got \"abc\"");
}

static void test_limits(void)
{
	const cmp_column c1[] = {{"a", CMP_STRING, CMP_FMT_NONE, true},
	                         {"b", CMP_STRING, CMP_FMT_NONE, true}};
	const cmp_schema s = {c1, 2};
	dcr_buf b;
	dcr_buf_init(&b);
	/* A field of exactly the limit is fine; one byte more is not. */
	dcr_buf_append_str(&b, "a,b\n\"");
	for (size_t i = 0; i < DCR_CSV_FIELD_BYTES_MAX; i++)
		dcr_buf_append_u8(&b, 'x');
	dcr_buf_append_str(&b, "\",1\n");
	struct outcome o;
	run_chunked(&s, (const char *)b.data, b.len, 4096, &o);
	CHECK(o.rc == 0);
	free(o.stats);
	dcr_buf_reset(&b);
	dcr_buf_append_str(&b, "a,b\n1,");
	for (size_t i = 0; i <= DCR_CSV_FIELD_BYTES_MAX; i++)
		dcr_buf_append_u8(&b, 'x');
	dcr_buf_append_str(&b, "\n");
	char want[256];
	snprintf(want, sizeof(want), "t.csv line 2, column \"b\": field longer than %u bytes",
	         DCR_CSV_FIELD_BYTES_MAX);
	run_chunked(&s, (const char *)b.data, b.len, 1000, &o);
	CHECK(o.rc == DCR_ECSV && strcmp(o.msg, want) == 0);
	/* A record over the line limit (many fields, each short): memory
	 * stays bounded and the error names the line. */
	const cmp_column cm[] = {{"a", CMP_STRING, CMP_FMT_NONE, true}};
	const cmp_schema sm = {cm, 1};
	dcr_buf_reset(&b);
	dcr_buf_append_str(&b, "a\n1\n\"");
	for (size_t i = 0; i < DCR_CSV_LINE_BYTES_MAX / 64 + 1; i++) {
		for (int k = 0; k < 63; k++)
			dcr_buf_append_u8(&b, 'y');
		dcr_buf_append_u8(&b, '\n');
	}
	dcr_buf_append_str(&b, "\"\n");
	run_chunked(&sm, (const char *)b.data, b.len, 65536, &o);
	snprintf(want, sizeof(want), "t.csv line 3, column \"a\": field longer than %u bytes",
	         DCR_CSV_FIELD_BYTES_MAX);
	CHECK(o.rc == DCR_ECSV && strcmp(o.msg, want) == 0);
	/* Overlong line made of many fields. */
	const cmp_column c2[] = {{"a", CMP_STRING, CMP_FMT_NONE, true}};
	const cmp_schema s2 = {c2, 1};
	dcr_buf_reset(&b);
	dcr_buf_append_str(&b, "a\n");
	for (size_t i = 0; i < DCR_CSV_COLS_MAX; i++) {
		for (int k = 0; k < 2000; k++)
			dcr_buf_append_u8(&b, 'z');
		dcr_buf_append_u8(&b, ',');
	}
	run_chunked(&s2, (const char *)b.data, b.len, 65536, &o);
	snprintf(want, sizeof(want), "t.csv line 2: record longer than %u bytes",
	         DCR_CSV_LINE_BYTES_MAX);
	CHECK(o.rc == DCR_ECSV && strcmp(o.msg, want) == 0);
	if (strcmp(o.msg, want))
		fprintf(stderr, "got %s\n", o.msg);
	dcr_buf_reset(&b);
	dcr_buf_append_str(&b, "a\n");
	for (size_t i = 0; i <= DCR_CSV_COLS_MAX; i++)
		dcr_buf_append_u8(&b, ',');
	run_chunked(&s2, (const char *)b.data, b.len, 7, &o);
	snprintf(want, sizeof(want), "t.csv line 2: more than %u fields", DCR_CSV_COLS_MAX);
	CHECK(o.rc == DCR_ECSV && strcmp(o.msg, want) == 0);
	dcr_buf_release(&b);
}

static void test_distinct(void)
{
	/* 200k distinct integers: beyond the exact bound, HyperLogLog must
	 * be within 3%. 1000 distinct strings: exact. */
	const cmp_column c[] = {{"n", CMP_INTEGER, CMP_FMT_NONE, false},
	                        {"s", CMP_STRING, CMP_FMT_NONE, false}};
	const cmp_schema s = {c, 2};
	cmp_ingest *in;
	dcr_err err;
	DCR_ASSERT(cmp_ingest_new(&s, "d.csv", &in) == 0);
	dcr_buf b;
	dcr_buf_init(&b);
	dcr_buf_append_str(&b, "s,n\n");
	const uint64_t n = 200000;
	for (uint64_t i = 0; i < n; i++)
		dcr_buf_printf(&b, "k%llu,%llu\n", (unsigned long long)(i % 1000),
		               (unsigned long long)i * 7919);
	CHECK(cmp_ingest_feed(in, b.data, b.len, &err) == 0);
	dcr_buf st;
	dcr_buf_init(&st);
	uint64_t rows = 0;
	CHECK(cmp_ingest_finish(in, &rows, &st, &err) == 0);
	CHECK(rows == n);
	const char *js = dcr_buf_cstr(&st);
	const char *p = strstr(js, "\"name\":\"n\"");
	CHECK(p != NULL);
	if (p) {
		const char *d = strstr(p, "\"distinct\":");
		unsigned long long est = d ? strtoull(d + 11, NULL, 10) : 0;
		CHECK(est > n * 97 / 100 && est < n * 103 / 100);
		CHECK(strstr(p, "\"distinct_exact\":false") != NULL);
		CHECK(strstr(p, "\"mean\":791896040.5") != NULL || !fprintf(stderr, "%s\n", js));
	}
	p = strstr(js, "\"name\":\"s\"");
	CHECK(p && strstr(p, "\"distinct\":1000,\"distinct_exact\":true") != NULL);
	dcr_buf_release(&st);
	dcr_buf_release(&b);
	cmp_ingest_free(in);
}

/* Zeros: "-0", "0.0" and an underflow such as "-1e-400" are one value,
 * +0 (a min of -0.0 would print as "-0.0"). */
static void test_zeros(void)
{
	const cmp_column c[] = {{"x", CMP_FLOAT, CMP_FMT_NONE, false}};
	const cmp_schema s = {c, 1};
	struct outcome o;
	const char *csv = "x\n-1e-400\n-0\n0.0\n1e-400\n";
	run(&s, csv, strlen(csv), &o);
	CHECK(o.rc == 0 && o.stats);
	if (o.stats) {
		CHECK(strstr(o.stats, "\"distinct\":1,") != NULL);
		CHECK(strstr(o.stats, "\"min\":0.0,\"max\":0.0") != NULL ||
		      !fprintf(stderr, "%s\n", o.stats));
	}
	free(o.stats);
}

/* distinct_exact at and past the bound: n distinct values, each twice. */
static void distinct_case(size_t ncols, uint64_t n, const char *want)
{
	cmp_column *c = dcr_calloc(ncols, sizeof(*c));
	char **names = dcr_calloc(ncols, sizeof(char *));
	dcr_buf b;
	dcr_buf_init(&b);
	for (size_t i = 0; i < ncols; i++) {
		names[i] = dcr_asprintf("c%zu", i);
		c[i] = (cmp_column){names[i], CMP_INTEGER, CMP_FMT_NONE, true};
		dcr_buf_printf(&b, "%s%s", i ? "," : "", names[i]);
	}
	dcr_buf_append_u8(&b, '\n');
	for (uint64_t r = 0; r < 2 * n; r++) {
		dcr_buf_printf(&b, "%llu", (unsigned long long)(r % n));
		for (size_t i = 1; i < ncols; i++)
			dcr_buf_append_u8(&b, ',');
		dcr_buf_append_u8(&b, '\n');
	}
	cmp_schema s = {c, ncols};
	struct outcome o;
	run_chunked(&s, (const char *)b.data, b.len, 1 << 20, &o);
	CHECK(o.rc == 0);
	CHECK(o.stats && strstr(o.stats, want) != NULL);
	if (o.stats && !strstr(o.stats, want))
		fprintf(stderr, "want %s in %.300s\n", want, o.stats);
	free(o.stats);
	for (size_t i = 0; i < ncols; i++)
		free(names[i]);
	free(names);
	free(c);
	dcr_buf_release(&b);
}

static void test_distinct_bounds(void)
{
	distinct_case(1, DCR_CMP_DISTINCT_EXACT_MAX, "\"distinct\":65536,\"distinct_exact\":true");
	distinct_case(1, DCR_CMP_DISTINCT_EXACT_MAX + 1, "\"distinct_exact\":false");
	/* 64 columns share the budget: 16 MiB / 32 / 64 = 8192 each. */
	size_t per = DCR_CMP_DISTINCT_SETS_BYTES_MAX / 32 / 64;
	char want[64];
	snprintf(want, sizeof(want), "\"distinct\":%zu,\"distinct_exact\":true", per);
	distinct_case(64, per, want);
	distinct_case(64, per + 1, "\"distinct_exact\":false");
}

static int rec_count;
static int count_rec(void *ctx, const cmp_csv_field *f, size_t n, dcr_err *err)
{
	(void)ctx;
	(void)f;
	(void)n;
	(void)err;
	rec_count++;
	return 0;
}

static void test_reader(void)
{
	/* The bare reader: fields, quoted flags, lines. */
	cmp_csv *c;
	dcr_err err;
	CHECK(cmp_csv_new("r.csv", count_rec, NULL, &c) == 0);
	rec_count = 0;
	const char *d = "a\n\n\"\"\n,\n";
	CHECK(cmp_csv_feed(c, d, strlen(d), &err) == 0);
	CHECK(cmp_csv_finish(c, &err) == 0);
	CHECK(rec_count == 4);
	cmp_csv_free(c);
	/* A BOM split over feeds, then a non-BOM prefix of a BOM. */
	CHECK(cmp_csv_new("r.csv", count_rec, NULL, &c) == 0);
	rec_count = 0;
	CHECK(cmp_csv_feed(c, "\xEF", 1, &err) == 0);
	CHECK(cmp_csv_feed(c, "\xBB", 1, &err) == 0);
	CHECK(cmp_csv_feed(c, "x\n", 2, &err) == DCR_ECSV);
	CHECK(strcmp(err.msg, "r.csv line 1, field 1: invalid UTF-8 (byte 0xef at offset 0)") == 0);
	/* The error is sticky. */
	dcr_err_clear(&err);
	CHECK(cmp_csv_feed(c, "y\n", 2, &err) == DCR_ECSV && err.msg[0]);
	CHECK(cmp_csv_finish(c, &err) == DCR_ECSV);
	cmp_csv_free(c);
}

/* Random inputs over a small alphabet rich in structure bytes: whatever
 * the split, the outcome (rows, statistics, error) must be the same, and
 * nothing may crash or leak (this runs under ASan in CI). */
static void test_random(void)
{
	static const char alpha[] = {'a',        '1',        '.',        '-',  'e',  ',',
	                             ',',        '"',        '"',        '\r', '\n', '\n',
	                             (char)0xC3, (char)0xA9, (char)0xFF, ' '};
	const cmp_column c[] = {{"a", CMP_STRING, CMP_FMT_NONE, true},
	                        {"b", CMP_FLOAT, CMP_FMT_NONE, true}};
	const cmp_schema s = {c, 2};
	uint64_t x = 0x1234567;
	char buf[128];
	for (int iter = 0; iter < 20000; iter++) {
		size_t n = 4;
		memcpy(buf, "a,b\n", 4);
		size_t len = 4 + (size_t)(iter % 90);
		for (; n < len; n++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			buf[n] = alpha[(x >> 33) % sizeof(alpha)];
		}
		struct outcome o1, o2;
		run_chunked(&s, buf, n, n, &o1);
		run_chunked(&s, buf, n, 1 + (size_t)(iter % 7), &o2);
		CHECK(o1.rc == o2.rc && o1.rows == o2.rows && strcmp(o1.msg, o2.msg) == 0);
		if (o1.rc != o2.rc || o1.rows != o2.rows || strcmp(o1.msg, o2.msg)) {
			fprintf(stderr, "input (%zu bytes, chunk %d):", n, 1 + iter % 7);
			for (size_t k = 0; k < n; k++)
				fprintf(stderr, " %02x", (unsigned char)buf[k]);
			fprintf(stderr, "\n  whole: %d %s\n  split: %d %s\n", o1.rc, o1.msg, o2.rc,
			        o2.msg);
		}
		CHECK(o1.rc == 0 || o1.rc == DCR_ECSV);
		if (o1.stats && o2.stats)
			CHECK(strcmp(o1.stats, o2.stats) == 0);
		free(o1.stats);
		free(o2.stats);
	}
}

int main(void)
{
	test_valid();
	test_errors();
	test_limits();
	test_distinct();
	test_zeros();
	test_distinct_bounds();
	test_reader();
	test_random();
	if (t_failures) {
		fprintf(stderr, "%d failures\n", t_failures);
		return 1;
	}
	return 0;
}
