/* compute.h: CSV validation, dataset statistics, prepared tables and SQL
 * computations with the privacy filter. Knows nothing of sockets, events or
 * FUSE; the daemon feeds it bytes and takes bytes back. The only module that
 * includes sqlite3.h. */
#ifndef DCR_COMPUTE_H
#define DCR_COMPUTE_H

#include "../base/base.h"

enum cmp_type { CMP_STRING, CMP_INTEGER, CMP_FLOAT };
enum cmp_format { CMP_FMT_NONE, CMP_FMT_EMAIL, CMP_FMT_DATE, CMP_FMT_SHA256 };

typedef struct cmp_column {
	const char *name;
	enum cmp_type type;
	enum cmp_format format;
	bool nullable;
} cmp_column;

typedef struct cmp_schema {
	const cmp_column *cols;
	size_t ncols;
} cmp_schema;

/* The one vocabulary of column types and formats (the room definition's
 * columns use it too). */
const char *cmp_type_name(enum cmp_type t); /* "string", "integer", "float" */
/* The type named by s[0..n); false if s names none. */
bool cmp_type_parse(const char *s, size_t n, enum cmp_type *t);
const char *cmp_format_name(enum cmp_format f); /* "none", "email", "date", "sha256" */

/* ---- CSV reader ------------------------------------------------------------
 * Streaming RFC 4180 tokenizer: quoted fields, doubled quotes, embedded
 * commas and newlines, CRLF or LF line ends, optional UTF-8 BOM, every field
 * checked to be valid UTF-8. Memory is bounded by DCR_CSV_LINE_BYTES_MAX
 * whatever the input size. Feeding any split of the bytes gives the same
 * records and errors. Used by the ingest below; public for tests and tools. */

typedef struct cmp_csv_field {
	const char *p; /* unquoted bytes (not NUL-terminated), valid UTF-8 */
	size_t n;
	uint64_t line; /* 1-based physical line where the field starts */
	bool quoted;   /* written in quotes: "" is an empty string, not NULL */
	bool ascii;    /* every byte < 0x80 (so characters == bytes) */
} cmp_csv_field;

/* Called once per record (the header is the first). The fields are valid
 * only during the call. A non-zero return stops the reader with that code
 * (the callback fills err). */
typedef int (*cmp_csv_record_fn)(void *ctx, const cmp_csv_field *fields, size_t n, dcr_err *err);

typedef struct cmp_csv cmp_csv;
/* label names the input in errors: "bank.csv line 3: ...". */
int cmp_csv_new(const char *label, cmp_csv_record_fn fn, void *ctx, cmp_csv **out);
/* Names of fields by position, for errors ("column \"age\""); the array and
 * strings must outlive the reader (or the next call). */
void cmp_csv_set_names(cmp_csv *c, const char *const *names, size_t n);
int cmp_csv_feed(cmp_csv *c, const void *p, size_t n, dcr_err *err);
int cmp_csv_finish(cmp_csv *c, dcr_err *err);
void cmp_csv_free(cmp_csv *c);

/* ---- CSV ingest: streaming validation + statistics ----------------------- */

typedef struct cmp_ingest cmp_ingest;

/* label names the file in errors ("bank.csv line 12, column \"age\": ...").
 * The schema is copied. NULL is an empty unquoted field; a quoted empty
 * field is the empty string in string columns (docs/compute.md). Returns
 * DCR_EINVALID for a schema without columns or with too many. */
int cmp_ingest_new(const cmp_schema *schema, const char *label, cmp_ingest **out);
/* Feed any split of the bytes. The first error stops validation; later
 * calls return the same error. A feed of 256 KiB or more is validated on
 * two threads (docs/compute.md, "Two threads"): the ingest starts one
 * worker thread the first time, which reads p only during the call and is
 * joined by cmp_ingest_free. Results, statistics and errors are byte for
 * byte those of one thread. An ingest is still used by one thread at a
 * time. */
int cmp_ingest_feed(cmp_ingest *in, const void *p, size_t n, dcr_err *err);
/* Ends the input; on success fills rows and appends the statistics JSON
 * (docs/compute.md) to stats_json (either may be NULL). Errors are
 * DCR_ECSV with the message "label line N, column \"c\": ...". */
int cmp_ingest_finish(cmp_ingest *in, uint64_t *rows, dcr_buf *stats_json, dcr_err *err);
void cmp_ingest_free(cmp_ingest *in);

/* ---- prepared tables -----------------------------------------------------
 * A prepared table is a serialized SQLite database (sqlite3_serialize
 * image) holding one table named `table` with the schema's columns, built
 * once at provisioning so a run costs the query, not the import. */
typedef int (*cmp_read_fn)(void *ctx, void *buf, size_t cap); /* bytes, 0 at end, <0 error */
int cmp_prepare(const cmp_schema *schema, const char *table, cmp_read_fn read, void *ctx,
                dcr_buf *image, dcr_err *err);
/* As cmp_prepare, and also builds an index on each named column (join
 * keys: a run then looks rows up instead of building an automatic index
 * per query) and stores the rows in the order of index[0], which makes
 * joins on that key walk memory in order. The image is replaced
 * (image->len = its size). The CSV is validated again while loading;
 * errors are those of the ingest. */
int cmp_prepare_ex(const cmp_schema *schema, const char *table, const char *const *index,
                   size_t nindex, cmp_read_fn read, void *ctx, dcr_buf *image, dcr_err *err);

/* ---- SQL ------------------------------------------------------------------ */

typedef struct cmp_input {
	const char *name; /* table name the query uses */
	cmp_schema schema;
	const void *image; /* prepared table image; NULL = empty table */
	size_t image_n;
} cmp_input;

/* Cancellation of a running computation from another thread. Attach the
 * handle to a run (cmp_sql_limits.cancel); cmp_cancel_fire, from any
 * thread, stops the statement the run is executing (sqlite3_interrupt)
 * and makes the run, and any later run given the same handle, fail with
 * DCR_ECANCELED. Free it only once no run uses it. */
typedef struct cmp_cancel cmp_cancel;
cmp_cancel *cmp_cancel_new(void);
void cmp_cancel_free(cmp_cancel *c); /* NULL is fine */
void cmp_cancel_fire(cmp_cancel *c); /* any thread, any number of times */
bool cmp_cancel_fired(const cmp_cancel *c);

typedef struct cmp_sql_limits {
	uint64_t time_ms;      /* 0 = default */
	uint64_t memory_bytes; /* 0 = default */
	uint64_t rows_max;     /* result rows; 0 = default */
	uint64_t bytes_max;    /* result CSV bytes; 0 = default */
	uint64_t steps_max;    /* thousands of SQLite VM steps; 0 = unlimited.
				  Deterministic, unlike time: the definition
				  check uses it so every machine that replays
				  a log judges a definition the same way. */
	cmp_cancel *cancel;    /* NULL: the run cannot be cancelled */
} cmp_sql_limits;

typedef struct cmp_result {
	dcr_buf csv;      /* header row + rows, RFC 4180 */
	dcr_buf image;    /* the result as a prepared table (for downstream) */
	cmp_column *cols; /* result schema (names heap-owned) */
	size_t ncols;
	uint64_t rows;
	uint64_t suppressed; /* rows dropped by the privacy filter */
} cmp_result;

void cmp_result_init(cmp_result *r);
void cmp_result_release(cmp_result *r);

/* Checks a query against input schemas (empty tables): it must be one
 * SELECT, compile, read only the given inputs, and, when min_rows > 0,
 * aggregate in its outermost SELECT (docs/privacy.md). Fills the result
 * schema (res may be NULL; res->csv holds the header row, image is empty).
 * Images in inputs are ignored. */
int cmp_sql_check(const char *query, const cmp_input *inputs, size_t ninputs, long long min_rows,
                  cmp_result *res, dcr_err *err);
/* Runs a query over the inputs with the limits (NULL = defaults) and the
 * privacy filter. The images must stay valid during the call (they are
 * read in place, never written). res must have been initialised; it is
 * replaced on success and unchanged on failure. Errors: DCR_ESQL (SQL),
 * DCR_EDENIED (authorizer), DCR_ETIMEOUT, DCR_ELIMIT (memory, rows,
 * bytes), DCR_EINVALID (inputs), DCR_ECANCELED (lim->cancel fired),
 * DCR_EINTERNAL (the memory limit cannot be enforced: the run is refused). Thread safe: runs on different threads
 * are independent, including their memory accounting. */
int cmp_sql_run(const char *query, const cmp_input *inputs, size_t ninputs, long long min_rows,
                const cmp_sql_limits *lim, cmp_result *res, dcr_err *err);
/* Which of the given names (datasets and computations of the room) the
 * query refers to as identifiers, outside string literals and comments,
 * case-insensitively; used[i] is set for names[i]. For dependency analysis
 * before the schemas of upstream results are known. */
int cmp_sql_refs(const char *query, const char *const *names, size_t n, bool *used, dcr_err *err);

/* Columns of schema named in a join constraint of the query (ON ... or
 * USING (...)), by name only: a hint for cmp_prepare_ex's indexes (for
 * every query of a room that reads the dataset). used[i] for cols[i]. */
int cmp_sql_join_columns(const char *query, const cmp_schema *schema, bool *used, dcr_err *err);

#endif
