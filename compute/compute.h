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
/* The union of several files of one table (the drops of an append
 * dataset): ends the file fed so far (as cmp_ingest_finish checks it) and
 * starts the next, which has its own header (columns in any order) and
 * may start with a BOM. Rows and statistics go on over every file; label
 * names the next file in errors (NULL: keep the label). */
int cmp_ingest_next_file(cmp_ingest *in, const char *label, dcr_err *err);
void cmp_ingest_free(cmp_ingest *in);
/* Rows held from a validation for a prepared table's build
 * (cmp_prepare_rows), so that the build need not read and parse the file
 * again. cmp_ingest_keep_rows, before the first feed, makes the ingest hold
 * every validated row (in a compact arena about the CSV's size, reserved at
 * once from size_hint, the CSV's bytes if known, else 0; on two threads
 * too, in file order); cmp_ingest_rows_bytes is the memory they
 * take so far; cmp_ingest_drop_rows frees (wipes) them and holds no more;
 * after cmp_ingest_finish, cmp_ingest_take_rows hands them over (NULL if
 * none were held). The rows are private data: freed wiped. */
typedef struct cmp__rows cmp_rows;
void cmp_ingest_keep_rows(cmp_ingest *in, uint64_t size_hint);
size_t cmp_ingest_rows_bytes(const cmp_ingest *in);
void cmp_ingest_drop_rows(cmp_ingest *in);
cmp_rows *cmp_ingest_take_rows(cmp_ingest *in);
size_t cmp_rows_bytes(const cmp_rows *r);
void cmp_rows_free(cmp_rows *r);

/* ---- prepared tables -----------------------------------------------------
 * A prepared table is a serialized SQLite database (sqlite3_serialize
 * image) holding one table named `table` with the schema's columns, built
 * once at provisioning so a run costs the query, not the import. */
typedef int (*cmp_read_fn)(void *ctx, void *buf, size_t cap); /* bytes, 0 at end, <0 error */
/* A read function may return CMP_READ_NEXT_FILE: the bytes so far were a
 * whole file and the next ones start another file of the same table
 * (cmp_ingest_next_file): a prepared table over the union of drops. */
#define CMP_READ_NEXT_FILE INT32_MAX
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
/* As cmp_prepare_ex, but the image is handed over in the buffer SQLite
 * built it in, without a copy (a large table is held once, not twice, at
 * the end of its build): on success *image (owned by the caller, freed
 * with cmp_image_free) and *image_n; on error *image is NULL. */
int cmp_prepare_image(const cmp_schema *schema, const char *table, const char *const *index,
                      size_t nindex, cmp_read_fn read, void *ctx, void **image, size_t *image_n,
                      dcr_err *err);
/* As cmp_prepare_image, with a choice made by size: an image of at most
 * keep_max bytes is returned in *image and not written (the caller stores
 * it when it likes: dcrd lets runs use it first); a larger one goes
 * through write (in order, in pieces; 0 or a negative code, which ends
 * the build) as it is made, without being held whole where that can be
 * avoided (tables written directly: see docs/compute.md), and *image is
 * NULL. write is also called with no bytes (p NULL, n 0) between pieces
 * of work, where a negative code stops the build (a daemon that stops).
 * *total_n is the image's size. On error, what write received is to be
 * discarded. */
typedef int (*cmp_write_fn)(void *ctx, const void *p, size_t n);
int cmp_prepare_stream(const cmp_schema *schema, const char *table, const char *const *index,
                       size_t nindex, cmp_read_fn read, void *ctx, cmp_write_fn write,
                       void *wctx, size_t keep_max, void **image, size_t *image_n,
                       size_t *total_n, dcr_err *err);
/* As cmp_prepare_stream, from rows held since a validation of the file
 * with the same schema (cmp_ingest_take_rows) instead of reading it:
 * the same image, byte for byte. rows is consumed (freed, wiped) whatever
 * the outcome. */
int cmp_prepare_rows(const cmp_schema *schema, const char *table, const char *const *index,
                     size_t nindex, cmp_rows *rows, cmp_write_fn write, void *wctx,
                     size_t keep_max, void **image, size_t *image_n, size_t *total_n,
                     dcr_err *err);
/* Wipes and frees an image of cmp_prepare_image (NULL: nothing). */
void cmp_image_free(void *image, size_t n);

/* ---- the filtered SQL subset ------------------------------------------------
 * A computation with a privacy threshold (k > 0) may only be a query of the
 * subset of docs/privacy.md ("The filtered subset"), parsed here by our
 * own recursive-descent parser on the tokenizer: SELECT of group keys and
 * allow-listed aggregates over permitted columns, FROM sources each read
 * at most once, JOIN ... ON/USING, WHERE, GROUP BY, HAVING, ORDER BY,
 * LIMIT; no subqueries, CTEs, compounds, window functions or FILTER. The
 * verdict depends on the query and the sources only (no SQLite), so it is
 * a rule of rm_apply. The parse also drives the rewrite: one hidden
 * COUNT(DISTINCT alias.unit) per unit of each source (COUNT(DISTINCT
 * alias.rowid) for a source without unit), and a row is released only if
 * every one of them reaches k. */

enum {
	CMP_ALLOW_GROUP = 1,     /* outside aggregates: select key, WHERE, GROUP BY, ... */
	CMP_ALLOW_AGGREGATE = 2, /* inside COUNT, SUM, AVG, TOTAL */
	CMP_ALLOW_JOIN = 4,      /* in ON and USING */
	CMP_ALLOW_MINMAX = 8,    /* inside MIN, MAX */
	CMP_ALLOW_ALL = 15
};

typedef struct cmp_pcol {
	const char *name;
	unsigned allow; /* CMP_ALLOW_* bits */
} cmp_pcol;

enum cmp_psrc_kind {
	CMP_PSRC_TABLE,     /* a dataset, or a row projection of datasets (units known) */
	CMP_PSRC_AGGREGATE, /* a filtered upstream result: any column, rows counted */
	CMP_PSRC_OPAQUE     /* an unfiltered upstream that is no row projection: refused */
};

/* What the filter knows of one table a query may read. */
typedef struct cmp_psource {
	const char *name;
	enum cmp_psrc_kind kind;
	const cmp_pcol *cols; /* TABLE: the columns and their permissions */
	size_t ncols;
	const char *const *units; /* TABLE: columns naming the people (0: rows counted) */
	size_t nunits;
	const char *rowid; /* name of the row id (NULL: "rowid"); set at run time */
} cmp_psource;

/* Deep copy and release (the daemon copies descriptors out of the state). */
void cmp_psource_copy(cmp_psource *dst, const cmp_psource *src);
void cmp_psource_release(cmp_psource *s);

enum cmp_aggfn { CMP_AGG_COUNT, CMP_AGG_SUM, CMP_AGG_AVG, CMP_AGG_TOTAL, CMP_AGG_MIN, CMP_AGG_MAX };

/* One aggregate call of a filtered query (for the DP aggregates). */
typedef struct cmp_pagg {
	enum cmp_aggfn fn;
	bool distinct;
	bool star;     /* COUNT(*) */
	int source;    /* index into the sources given to the parse; -1 if none or several */
	char *column;  /* the column if the argument is one plain column, else NULL */
	size_t off, len; /* the call's bytes in the query */
} cmp_pagg;

typedef struct cmp_pquery {
	size_t nfrom;
	size_t *from;  /* FROM sources in order: indices into the given sources */
	char **alias;  /* their aliases (or names) */
	cmp_pagg *aggs;
	size_t naggs;
	bool distinct; /* SELECT DISTINCT */
	size_t from_off; /* byte offset of FROM (where hidden columns go) */
	/* projection mode: the output columns and the units they expose */
	cmp_pcol *out;
	size_t nout;
	char **units;
	size_t nunits;
} cmp_pquery;

/* Parses query against the sources. projection = false: the filtered
 * subset (aggregating). projection = true: a row projection (no
 * aggregates, no GROUP BY) whose output must expose every unit of every
 * source it reads; out/units describe it as a source for downstream
 * filtered queries. Errors (DCR_EINVALID) name the construct and its byte
 * offset: `offset 7: group_concat() is not allowed in a filtered query`. */
int cmp_pquery_parse(const char *query, const cmp_psource *src, size_t nsrc, bool projection,
                     cmp_pquery *out, dcr_err *err);
void cmp_pquery_release(cmp_pquery *q);

/* ---- SQL ------------------------------------------------------------------ */

typedef struct cmp_input {
	const char *name; /* table name the query uses */
	cmp_schema schema;
	const void *image; /* prepared table image; NULL = empty table */
	size_t image_n;
	/* For the privacy filter: the source's permissions and units. NULL:
	 * every column allowed, no unit (rows counted); the room layer always
	 * passes one (its defaults deny). */
	const cmp_psource *priv;
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
	uint64_t tmp_bytes;    /* temporary files on disk; 0 = default
				  (cmp_sql_tmp_setup) */
} cmp_sql_limits;

/* Temporary disk of SQL runs and checks (compute/cmp_tmpvfs.c, docs/
 * compute.md "Temporary disk"). Sorts and temp tables that outgrow the
 * run's temp cache spill to files; they go to dir (created 0700 and
 * emptied here; NULL: SQLite's default temporary directory) and each run's
 * files may hold at most run_bytes_max bytes (0: DCR_SQL_TMP_BYTES_DEFAULT)
 * unless its limits say otherwise; past it the run fails with DCR_ELIMIT
 * "... temporary disk limit ..." (class `temp disk limit`). Call once, at
 * start, before any run. */
int cmp_sql_tmp_setup(const char *dir, uint64_t run_bytes_max, dcr_err *err);
/* A budget shared by several runs (say, every run of one key): their temp
 * files together hold at most its limit (changeable at any time). Runs on
 * a thread after cmp_tmp_budget_enter(b) charge b too, until the thread
 * enters another (enter returns the previous one, NULL for none).
 * Reference counted: new gives one reference, every run using it holds
 * one until its files are closed. */
typedef struct cmp_tmp_budget cmp_tmp_budget;
cmp_tmp_budget *cmp_tmp_budget_new(uint64_t limit_bytes);
void cmp_tmp_budget_set_limit(cmp_tmp_budget *b, uint64_t limit_bytes);
uint64_t cmp_tmp_budget_used(const cmp_tmp_budget *b);
void cmp_tmp_budget_unref(cmp_tmp_budget *b); /* NULL is fine */
cmp_tmp_budget *cmp_tmp_budget_enter(cmp_tmp_budget *b);

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

/* ---- noise (cmp_noise.c; docs/privacy.md, "Differential privacy") --------
 * Exact discrete samplers (Canonne, Kamath, Steinke 2020) in integer
 * arithmetic. A cmp_rng draws from OpenSSL's CSPRNG; the seeded generator
 * is for tests only and is never used by dcrd. One rng per thread. */
typedef struct cmp_rng {
	bool test;      /* cmp__rng_init_test: deterministic xoshiro256** */
	uint64_t s[4];  /* its state */
	uint64_t buf[64]; /* CSPRNG words not used yet (wiped on release) */
	size_t pos;       /* next unused word of buf */
} cmp_rng;
void cmp_rng_init(cmp_rng *r); /* the CSPRNG */
void cmp_rng_release(cmp_rng *r);
/* TEST ONLY: a deterministic generator from a seed, so statistical tests
 * cannot flake. dcrd never calls it. */
void cmp__rng_init_test(cmp_rng *r, uint64_t seed);
uint64_t cmp_rng_below(cmp_rng *r, uint64_t n); /* uniform on [0, n), n >= 1 */
/* Bernoulli(exp(-num/den)), exposed for tests. */
bool cmp__noise_bern_exp(cmp_rng *r, uint64_t num, uint64_t den);
/* Discrete Laplace Lap_Z(t/s): P(x) proportional to exp(-|x| s / t).
 * 1 <= s, t <= DCR_NOISE_PARAM_MAX, t/s < DCR_NOISE_SCALE_MAX, else
 * DCR_EINVALID. */
int cmp_noise_dlaplace(cmp_rng *r, uint64_t s, uint64_t t, int64_t *out, dcr_err *err);
/* Discrete Gaussian N_Z(0, num/den): P(x) proportional to
 * exp(-x^2 den / (2 num)). num <= DCR_NOISE_SIGMA_NUM_MAX, den <=
 * DCR_NOISE_SIGMA_DEN_MAX, both >= 1, else DCR_EINVALID. */
int cmp_noise_dgauss(cmp_rng *r, uint64_t num, uint64_t den, int64_t *out, dcr_err *err);

/* ---- differentially private aggregates (cmp_dp.c) -------------------------
 * The mechanism: exact aggregates of one output row in, noisy values out.
 * Epsilon (millionths) is split evenly over the noisy measurements: one per
 * COUNT or SUM, two per AVG (its sum and its count). Sensitivity: 1 for a
 * count, max(|lo|, |hi|) steps for a sum. */
typedef enum { CMP_DP_COUNT, CMP_DP_SUM, CMP_DP_AVG } cmp_dp_fn;
typedef struct cmp_dp_agg {
	cmp_dp_fn fn;
	int64_t lo, hi;    /* SUM, AVG: bounds in steps of 10^-decimals */
	unsigned decimals;
} cmp_dp_agg;
typedef struct cmp_dp_exact {
	uint64_t count; /* COUNT: rows; AVG: non-NULL values */
	int64_t sum;    /* SUM, AVG: sum of the clamped values, in steps */
} cmp_dp_exact;
typedef struct cmp_dp_value {
	enum cmp_type type; /* COUNT integer; SUM integer (0 decimals) or float; AVG float */
	int64_t i;          /* COUNT (clamped at 0), SUM in steps */
	double d;           /* AVG */
	char text[48];      /* as an SQL literal */
} cmp_dp_value;
int cmp_dp_noise(cmp_rng *r, uint64_t epsilon, const cmp_dp_agg *aggs, size_t n,
                 const cmp_dp_exact *exact, cmp_dp_value *out, dcr_err *err);

/* The queries: SELECT COUNT(*) | COUNT(col) | SUM(col) | AVG(col) [[AS]
 * name], ... FROM dataset [[AS] alias] [WHERE condition without
 * subqueries]; SUM and AVG need bounds for their column (matched by name,
 * case-insensitively). docs/privacy.md says why this shape. */
typedef struct cmp_dp_bound {
	const char *column;
	int64_t lo, hi; /* steps of 10^-decimals */
	unsigned decimals;
} cmp_dp_bound;
typedef struct cmp_dp {
	uint64_t epsilon; /* millionths, > 0 */
	const cmp_dp_bound *bounds;
	size_t nbounds;
	cmp_rng *rng; /* NULL: the CSPRNG (dcrd); tests pass a seeded one */
} cmp_dp;
/* As cmp_sql_check, for a DP query: the shape above, compiling against the
 * inputs; res gets the released schema. Deterministic (no randomness). */
int cmp_dp_check(const char *query, const cmp_input *inputs, size_t ninputs, const cmp_dp *dp,
                 cmp_result *res, dcr_err *err);
/* TEST ONLY: the rewritten query that computes the exact aggregates
 * (__dcr_c<i> counts and __dcr_s<i> clamped sums in steps). */
int cmp__dp_exact_query(const char *query, const cmp_input *inputs, size_t ninputs,
                        const cmp_dp *dp, dcr_buf *out, dcr_err *err);
/* As cmp_sql_run: one row of noisy aggregates. The exact values are wiped
 * before returning and never reach res, the log or err. */
int cmp_dp_run(const char *query, const cmp_input *inputs, size_t ninputs, const cmp_dp *dp,
               const cmp_sql_limits *lim, cmp_result *res, dcr_err *err);

/* ---- error classes -------------------------------------------------------
 * A run's error message may quote data; what leaves the run is its class,
 * one of a fixed vocabulary (docs/privacy.md, "Errors"): "time limit",
 * "memory limit", "row limit", "size limit", "sql error", "sql error: json
 * path", "sql error: malformed json", "sql error: integer overflow", "sql
 * error: invalid text", "sql error: too big", "sql error: not allowed",
 * "privacy filter", "input unavailable", "not supported", "storage error:
 * Input/output error", "storage error: No space left on device", "internal error",
 * "too few rows" (a synthetic input below DCR_SYNTH_ROWS_MIN), and "result
 * not recordable" (set by dcrd, below).
 * The returned string is a constant of that list, whatever err holds. */
const char *cmp_error_class(const dcr_err *err);
/* The class of a result the room's rules refuse to record (dcrd). */
#define CMP_ERRCLASS_UNRECORDABLE "result not recordable"
/* s is one of the classes above (rm_apply checks run.failed with it). */
bool cmp_error_class_valid(const char *s);

#endif
