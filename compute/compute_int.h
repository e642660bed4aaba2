/* compute_int.h: internals shared by the files of compute/ (not a public
 * header: nothing outside compute/ includes it). */
#ifndef DCR_COMPUTE_INT_H
#define DCR_COMPUTE_INT_H

#include "compute.h"

/* Cancellation (cmp_cancel.c): the connection a run executes on, so that
 * cmp_cancel_fire can interrupt it; attach after opening, detach before
 * closing (c may be NULL). */
struct sqlite3;
void cmp__cancel_attach(cmp_cancel *c, struct sqlite3 *db);
void cmp__cancel_detach(cmp_cancel *c);

/* The watchdog (cmp_cancel.c): one thread per process calls
 * sqlite3_interrupt on a registered connection once its deadline
 * (dcr_mono_ms) has passed, whatever the statement is doing, and sets
 * fired. Register after opening the connection, stop before closing it:
 * after cmp__watch_stop returns the watchdog no longer touches db. The
 * struct is the caller's (its storage must outlive the registration).
 * Any SQLite execution that has a deadline uses it: runs and admission
 * checks (cmp_sql.c). */
typedef struct cmp__watch {
	struct sqlite3 *db;
	uint64_t deadline_ms;
	_Atomic bool fired;
	bool listed; /* under the watchdog's mutex */
	struct cmp__watch *prev, *next;
} cmp__watch;
/* false: no watchdog thread (it could not be created); the caller must
 * then look at the clock itself. */
bool cmp__watch_start(cmp__watch *w, struct sqlite3 *db, uint64_t deadline_ms);
void cmp__watch_stop(cmp__watch *w);
bool cmp__watch_fired(const cmp__watch *w);

/* Typed value of one CSV field after validation. */
enum { CMP__NULL, CMP__INT, CMP__FLOAT, CMP__TEXT };
typedef struct cmp__value {
	int kind;
	int64_t i;
	double d;
	const char *s; /* CMP__TEXT: bytes of the field, valid during the sink call */
	size_t n;
} cmp__value;

/* Receives each validated data row, values in schema column order. */
typedef int (*cmp__row_fn)(void *ctx, const cmp__value *vals, size_t n, dcr_err *err);
void cmp__ingest_set_sink(cmp_ingest *in, cmp__row_fn fn, void *ctx);
/* Rows of a prepared table held in memory (cmp_rows.c): cmp__rows_add is
 * an ingest sink; cmp__rows_sort orders them as ORDER BY on column key
 * would, equal keys in file order (false: a key of mixed numeric kinds,
 * not sorted); cmp__rows_get gives row i of that order (of file order
 * before sorting), text pointing into the rows. */
typedef struct cmp__rows cmp__rows;
cmp__rows *cmp__rows_new(size_t ncols, size_t key);
void cmp__rows_free(cmp__rows *r);
int cmp__rows_add(void *ctx, const cmp__value *vals, size_t n, dcr_err *err);
size_t cmp__rows_count(const cmp__rows *r);
bool cmp__rows_sort(cmp__rows *r);
void cmp__rows_get(const cmp__rows *r, size_t i, cmp__value *vals);
/* Row i of that order is row cmp__rows_at(r, i) of the file; that one
 * decoded (file order walks the arena in order). */
size_t cmp__rows_at(const cmp__rows *r, size_t i);
void cmp__rows_get_raw(const cmp__rows *r, size_t row, cmp__value *vals);
/* A hint: row i + 8 of the sorted order will be read soon (cmp__rows_get
 * in key order reads the arena at random). No effect on any result. */
void cmp__rows_prefetch(const cmp__rows *r, size_t i);
/* Columns per row; the sort's key column (before the sort); the memory the
 * rows hold; emptied (capacity kept, wiped at free); src's rows moved onto the end
 * of dst's (the two-thread validation's second part after the first). */
size_t cmp__rows_ncols(const cmp__rows *r);
void cmp__rows_set_key(cmp__rows *r, size_t key);
/* Room for bytes of arena at once (an upload of known size). */
void cmp__rows_reserve(cmp__rows *r, size_t bytes);
size_t cmp__rows_bytes(const cmp__rows *r);
void cmp__rows_reset(cmp__rows *r);
void cmp__rows_append(cmp__rows *dst, cmp__rows *src);

/* A prepared table's b-trees written directly (cmp_btree.c). hdr is the
 * database header of SQLite's database holding the schema (srows: its
 * sqlite_schema rows, one table and at most one index, on column key).
 * Row i of rows (cmp__rows_get) becomes rowid i + 1. The image goes
 * through write (if not NULL) in order, in pieces, and is also returned
 * in *image (sqlite3_malloc'd: cmp_image_free) when write is NULL or it
 * is at most keep_max bytes; *total_n is its size. 0; a negative code
 * (from write, or out of memory); or CMP__BTREE_FALLBACK: rows this writer
 * does not store exactly as SQLite would, found before anything was
 * written (the caller inserts them through SQLite). */
#define CMP__BTREE_FALLBACK 1
typedef struct cmp__schema_row {
	int64_t rowid;
	const char *type, *name, *tbl_name, *sql;
	bool is_index;
} cmp__schema_row;
int cmp__btree_write(const uint8_t hdr[100], const cmp__schema_row *srows, size_t nsrows,
                     const cmp__rows *rows, const cmp_schema *schema, size_t key,
                     cmp_write_fn write, void *wctx, size_t keep_max, void **image,
                     size_t *image_n, size_t *total_n);
/* Prepared tables: false forces the SQL path (tests run both; also the
 * environment variable DCR_PREPARE_SQL=1). */
void cmp__prepare_set_direct(bool on);
bool cmp__prepare_direct_on(void);
/* Prepared tables whose image cmp__btree_write made, since the start. */
uint64_t cmp__prepare_direct_count(void);
/* PRAGMA integrity_check over an image (tests): 0, or DCR_EINTEGRITY with
 * SQLite's first complaint in err. */
int cmp__image_check(const void *image, size_t n, dcr_err *err);
/* Skip statistics (prepare only needs validation and values). */
void cmp__ingest_no_stats(cmp_ingest *in);
/* Two-thread validation of large feeds (docs/compute.md): feeds of at
 * least min_bytes are split (0 = the default, 256 KiB; SIZE_MAX = never).
 * Flags, for tests: CMP__PAR_FIXED splits at the middle and always waits
 * for the worker (no adaptive split, no retracting: which path a chunk
 * takes no longer depends on timing); CMP__PAR_NAIVE_SPLIT splits at the
 * first '\n' even inside quotes (to reach the fallback). */
enum { CMP__PAR_FIXED = 1, CMP__PAR_NAIVE_SPLIT = 2 };
void cmp__ingest_par_config(cmp_ingest *in, size_t min_bytes, int flags);
/* Chunks whose second part the worker validated and that were kept
 * (fast), where its work was discarded (fallback), and where it had not
 * started when the caller was done and the caller took it back
 * (retracted; may be NULL). */
void cmp__ingest_par_counts(const cmp_ingest *in, uint64_t *fast, uint64_t *fallback,
                            uint64_t *retracted);

const char *cmp__csv_label(const cmp_csv *c);

/* For validating one chunk on two threads (cmp_ingest.c). */
/* Starts a fresh input at a record boundary: line 1, no BOM expected, no
 * error (the names and label stay). */
void cmp__csv_restart(cmp_csv *c);
/* No error, and the last byte fed ended a record (or nothing was fed). */
bool cmp__csv_at_record_start(const cmp_csv *c);
int cmp__csv_error(const cmp_csv *c); /* the sticky error code, or 0 */
uint64_t cmp__csv_line(const cmp_csv *c);
/* Advances the line counter by lines another reader consumed; only at a
 * record start. */
void cmp__csv_skip_lines(cmp_csv *c, uint64_t lines);
/* NULL at a record boundary; else where the open record starts in the
 * buffer of the last feed (only meaningful when that record opened in
 * it, e.g. after cmp__csv_restart and one feed), its line in *line. */
const char *cmp__csv_pending(const cmp_csv *c, uint64_t *line);
/* Index of the first '\n' in p[from..n) that, by the parity of the quotes
 * since p (and whether the reader is inside a quoted field now), lies
 * outside quotes; without quote_aware simply the first '\n'. SIZE_MAX if
 * none. A guess for valid CSV; the reader's own state decides. */
size_t cmp__csv_split(const cmp_csv *c, const char *p, size_t n, size_t from, bool quote_aware);
size_t cmp__utf8_valid_prefix(const uint8_t *p, size_t n);

/* 0 ok, -1 syntax, -2 out of range. */
int cmp__parse_int(const char *s, size_t n, int64_t *out);
int cmp__parse_float(const char *s, size_t n, double *out);
bool cmp__format_ok(enum cmp_format f, const char *s, size_t n);

static inline uint64_t cmp__mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/* Not cryptographic: distinct counting and row sets only. 8 bytes per
 * step, each a multiply and a rotate, then a full avalanche. */
static inline uint64_t cmp__hash(const void *p, size_t n)
{
	const uint8_t *b = p;
	const size_t len = n;
	uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
	while (n > 8) {
		uint64_t w;
		memcpy(&w, b, 8);
		h = (h ^ (w * 0x87c37b91114253d5ull)) * 0x4cf5ad432745937full;
		h = (h << 29) | (h >> 35);
		b += 8;
		n -= 8;
	}
	/* The last 1..8 bytes without a variable-length copy: an 8-byte load
	 * ending at the end when the input is that long (overlapping bytes
	 * already hashed is fine), else two overlapping 4-byte loads, else
	 * single bytes. */
	uint64_t w = 0;
	if (len >= 8) {
		memcpy(&w, b + n - 8, 8);
	} else if (n >= 4) {
		uint32_t lo, hi;
		memcpy(&lo, b, 4);
		memcpy(&hi, b + n - 4, 4);
		w = ((uint64_t)hi << 32) | lo;
	} else if (n > 0) {
		w = (uint64_t)b[0] | ((uint64_t)b[n / 2] << 8) | ((uint64_t)b[n - 1] << 16);
	}
	h = (h ^ (w * 0x87c37b91114253d5ull)) * 0x4cf5ad432745937full;
	return cmp__mix64(h);
}

/* JSON string (with quotes), escaping '"', '\\' and control bytes. */
void cmp__json_str(dcr_buf *b, const char *s, size_t n);
/* JSON number for a double; null when not finite. */
void cmp__json_double(dcr_buf *b, double v);
/* Error-message form of a value: quoted, escaped, truncated to
 * DCR_CSV_ERR_VALUE_BYTES at a character boundary ("..." appended). */
void cmp__quote_value(char *out, size_t cap, const char *s, size_t n);

/* Quoted SQL identifier ("a""b"), appended to b. */
void cmp__sql_ident(dcr_buf *b, const char *name);
const char *cmp__sql_decltype(enum cmp_type t);

#endif
