/* fuzz_csv.c: the CSV reader and the ingest (validation + statistics) of
 * compute/, fed untrusted bytes as a dataset upload would be.
 *
 * The schema is fixed: one column of every type, format and nullability
 * (see `cols` below); seeds start with its header so the fuzzer reaches
 * the typed checks. Each input is fed three ways: whole, split at one
 * point derived from the data, and in small chunks (sizes derived from the
 * data). The reader promises that any split gives the same records and the
 * same error, so the outcome (code, message, rows, statistics JSON, and a
 * digest of every record the raw tokenizer returns) must match exactly.
 * When the ingest accepts, cmp_prepare must accept too, and a COUNT(*)
 * over the prepared table must equal the ingest's row count; when it
 * refuses, cmp_prepare must refuse with the same code. */
#include "../../compute/compute.h"
#include "../../compute/compute_int.h"
#include "fuzz.h"

static const cmp_column cols[] = {
    {"id", CMP_INTEGER, CMP_FMT_NONE, false}, {"name", CMP_STRING, CMP_FMT_NONE, true},
    {"score", CMP_FLOAT, CMP_FMT_NONE, true}, {"email", CMP_STRING, CMP_FMT_EMAIL, true},
    {"day", CMP_STRING, CMP_FMT_DATE, true},  {"digest", CMP_STRING, CMP_FMT_SHA256, true},
    {"qty", CMP_INTEGER, CMP_FMT_NONE, true}, {"ratio", CMP_FLOAT, CMP_FMT_NONE, false},
};
static const cmp_schema schema = {cols, sizeof cols / sizeof cols[0]};

typedef struct outcome {
	int rc;
	dcr_err err;
	uint64_t rows;
	dcr_buf stats;
	int raw_rc;
	dcr_err raw_err;
	uint64_t raw_records;
	uint64_t raw_digest;
} outcome;

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static bool utf8_ok(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i];
		size_t k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			k = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 3, cp = c & 0x07;
		else
			return false;
		for (size_t j = 1; j <= k; j++) {
			if (i + j >= n || (s[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

/* Raw tokenizer callback: checks the field promises of compute.h and
 * folds every record into a digest. */
static int on_record(void *ctx, const cmp_csv_field *f, size_t n, dcr_err *err)
{
	outcome *o = ctx;
	size_t i;

	FUZZ_CHECK(n >= 1 && n <= DCR_CSV_COLS_MAX);
	o->raw_records++;
	o->raw_digest = mix(o->raw_digest, &n, sizeof n);
	for (i = 0; i < n; i++) {
		bool ascii = true;
		uint8_t q = f[i].quoted;

		FUZZ_CHECK(f[i].n <= DCR_CSV_FIELD_BYTES_MAX);
		FUZZ_CHECK(f[i].n == 0 || f[i].p != NULL);
		FUZZ_CHECK(f[i].line >= 1);
		FUZZ_CHECK(utf8_ok((const uint8_t *)f[i].p, f[i].n));
		for (size_t j = 0; j < f[i].n; j++)
			if ((uint8_t)f[i].p[j] >= 0x80)
				ascii = false;
		/* the flag is per record: true promises ASCII, false may be either */
		FUZZ_CHECK(ascii || !f[i].ascii);
		o->raw_digest = mix(o->raw_digest, &f[i].n, sizeof f[i].n);
		if (f[i].n)
			o->raw_digest = mix(o->raw_digest, f[i].p, f[i].n);
		o->raw_digest = mix(o->raw_digest, &f[i].line, sizeof f[i].line);
		o->raw_digest = mix(o->raw_digest, &q, 1);
	}
	return 0;
}

/* Feeds [data, data+size) in pieces: cuts[] are increasing offsets.
 * par_flags >= 0: feeds of 64 bytes or more take the two-thread path
 * (cmp__ingest_par_config), which must give the very same outcome. */
static void run(const uint8_t *data, size_t size, const size_t *cuts, size_t ncuts, int par_flags,
                outcome *o)
{
	cmp_ingest *in = NULL;
	cmp_csv *raw = NULL;
	size_t i, at = 0;

	memset(o, 0, sizeof *o);
	dcr_buf_init(&o->stats);
	o->raw_digest = 0xcbf29ce484222325ull;
	FUZZ_CHECK(cmp_ingest_new(&schema, "fuzz.csv", &in) == 0);
	cmp__ingest_par_config(in, par_flags >= 0 ? 64 : SIZE_MAX, par_flags >= 0 ? par_flags : 0);
	FUZZ_CHECK(cmp_csv_new("raw.csv", on_record, o, &raw) == 0);
	for (i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : size;
		int rc;

		rc = cmp_ingest_feed(in, data + at, end - at, &o->err);
		if (o->rc == 0)
			o->rc = rc;
		else /* later calls return the same error */
			FUZZ_CHECK(rc == o->rc);
		if (o->raw_rc == 0)
			o->raw_rc = cmp_csv_feed(raw, data + at, end - at, &o->raw_err);
		at = end;
	}
	if (o->rc == 0)
		o->rc = cmp_ingest_finish(in, &o->rows, &o->stats, &o->err);
	if (o->raw_rc == 0)
		o->raw_rc = cmp_csv_finish(raw, &o->raw_err);
	if (o->rc == 0)
		FUZZ_CHECK(o->stats.len > 0);
	else
		FUZZ_CHECK(o->err.code == o->rc && o->err.msg[0] != '\0');
	cmp_ingest_free(in);
	cmp_csv_free(raw);
}

static void same(const outcome *a, const outcome *b)
{
	bool ok = a->rc == b->rc && a->raw_rc == b->raw_rc && a->rows == b->rows &&
	          a->raw_records == b->raw_records && a->raw_digest == b->raw_digest &&
	          a->stats.len == b->stats.len &&
	          (a->stats.len == 0 || memcmp(a->stats.data, b->stats.data, a->stats.len) == 0);
	if (ok && a->rc != 0)
		ok = strcmp(a->err.msg, b->err.msg) == 0;
	if (ok && a->raw_rc != 0)
		ok = strcmp(a->raw_err.msg, b->raw_err.msg) == 0;
	if (!ok) {
		fprintf(stderr,
		        "fuzz_csv: outcome depends on the split:\n  rc %d/%d rows %llu/%llu\n"
		        "  err \"%s\"\n  vs  \"%s\"\n  raw rc %d/%d records %llu/%llu\n"
		        "  raw err \"%s\"\n  vs      \"%s\"\n",
		        a->rc, b->rc, (unsigned long long)a->rows, (unsigned long long)b->rows,
		        a->err.msg, b->err.msg, a->raw_rc, b->raw_rc,
		        (unsigned long long)a->raw_records, (unsigned long long)b->raw_records,
		        a->raw_err.msg, b->raw_err.msg);
		abort();
	}
}

typedef struct reader {
	const uint8_t *p;
	size_t n, at, step;
} reader;

static int read_mem(void *ctx, void *buf, size_t cap)
{
	reader *r = ctx;
	size_t k = r->n - r->at;

	if (k > cap)
		k = cap;
	if (k > r->step)
		k = r->step;
	if (k)
		memcpy(buf, r->p + r->at, k);
	r->at += k;
	return (int)k;
}

/* cmp_prepare agrees with the ingest: same acceptance, same row count. */
static void check_prepare(const uint8_t *data, size_t size, const outcome *o, uint64_t h)
{
	reader r = {data, size, 0, 1 + (size_t)(h % 977)};
	dcr_buf image;
	dcr_err err;
	cmp_result res;
	cmp_input input;
	int rc;

	dcr_buf_init(&image);
	cmp_result_init(&res);
	rc = cmp_prepare(&schema, "t", read_mem, &r, &image, &err);
	if (rc != o->rc) {
		fprintf(stderr, "fuzz_csv: ingest says %d (%s), prepare says %d (%s)\n", o->rc,
		        o->rc ? o->err.msg : "ok", rc, rc ? err.msg : "ok");
		abort();
	}
	if (rc == 0) {
		char want[64];
		int wn;

		input.name = "t";
		input.schema = schema;
		input.image = image.data;
		input.image_n = image.len;
		rc = cmp_sql_run("SELECT COUNT(*) AS n FROM t", &input, 1, 0, NULL, &res, &err);
		if (rc != 0) {
			fprintf(stderr, "fuzz_csv: count over the prepared table: %s\n", err.msg);
			abort();
		}
		wn = snprintf(want, sizeof want, "n\r\n%llu\r\n", (unsigned long long)o->rows);
		if (res.csv.len != (size_t)wn || memcmp(res.csv.data, want, (size_t)wn) != 0) {
			fprintf(stderr, "fuzz_csv: ingest counted %llu rows, the table has %.*s\n",
			        (unsigned long long)o->rows, (int)res.csv.len,
			        (const char *)res.csv.data);
			abort();
		}
	}
	cmp_result_release(&res);
	dcr_buf_release(&image);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h = fuzz_hash(data, size);
	size_t one = size ? (size_t)(h % (size + 1)) : 0;
	size_t *cuts = NULL, ncuts = 0, at = 0;
	uint64_t s = h | 1;
	outcome whole, split, chunks;

	/* chunk sizes 1..16 from a xorshift seeded by the data */
	cuts = dcr_malloc((size + 1) * sizeof *cuts);
	while (size > 0) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		at += 1 + (size_t)(s % 16);
		if (at >= size)
			break;
		cuts[ncuts++] = at;
	}
	run(data, size, NULL, 0, -1, &whole);
	run(data, size, &one, 1, -1, &split);
	run(data, size, cuts, ncuts, -1, &chunks);
	same(&whole, &split);
	same(&whole, &chunks);
	/* The two-thread path: a split at the middle, and a naive split at
	 * the first line end even inside quotes (its fallback). */
	for (int pf = 0; pf < 2; pf++) {
		outcome par;
		run(data, size, &one, 1, pf ? CMP__PAR_FIXED | CMP__PAR_NAIVE_SPLIT : CMP__PAR_FIXED,
		    &par);
		same(&whole, &par);
		dcr_buf_release(&par.stats);
	}
	check_prepare(data, size, &whole, h);
	dcr_buf_release(&whole.stats);
	dcr_buf_release(&split.stats);
	dcr_buf_release(&chunks.stats);
	free(cuts);
	return 0;
}
