/* room.h: the room definition (JSON, docs/room-format.md), the room state,
 * and the one pure rule function apply(state, event).
 *
 * Every rule of a room lives here and nowhere else. The daemon calls
 * rm_apply to validate an event before appending it; the auditor and the
 * clients (CLI, mount) replay the log with the same rm_apply to compute the
 * state. rm_apply is pure: it reads only the state and the event (no
 * clock, no files, no randomness) and either returns an error leaving the
 * state unchanged, or updates the state.
 *
 * This module is the only one that includes jansson. */
#ifndef DCR_ROOM_H
#define DCR_ROOM_H

#include "../base/base.h"
#include "../eventstore/eventstore.h"
#include "../compute/compute.h"
#include "../compute/compute_synth.h"

/* ---- definition -------------------------------------------------------- */

enum rm_dskind { RM_DS_TABLE, RM_DS_FILE };
enum rm_compkind { RM_COMP_SQL, RM_COMP_PYTHON, RM_COMP_R, RM_COMP_SYNTHETIC };

typedef struct rm_column {
	char *name;
	enum cmp_type type; /* compute's vocabulary: cmp_type_name, cmp_type_parse */
	enum cmp_format format;
	bool nullable; /* default true */
	unsigned allow; /* CMP_ALLOW_* bits from "allow"; default none (deny) */
} rm_column;

/* A dataset's auto_approve policy (docs/room-format.md "auto_approve"):
 * its owner approves a request automatically when every new computation
 * reading the dataset is of one of kinds, has privacy.min_rows_aggregated
 * of at least min_rows (when set), and only analysts from analysts (when
 * set). */
typedef struct rm_policy {
	unsigned kinds;     /* bit 1 << enum rm_compkind */
	long long min_rows; /* privacy_min_rows_aggregated_at_least; 0 = any */
	char **analysts;    /* participant emails; NULL/0 = any */
	size_t nanalysts;
} rm_policy;

typedef struct rm_dataset {
	char *name;
	enum rm_dskind kind;
	bool required;         /* default true */
	bool share_statistics; /* default false */
	uint64_t epsilon_budget; /* epsilon_budget in millionths; 0 = none */
	/* "drops": "append" (true): the dataset is the union of every drop
	 * (docs/room-format.md, docs/rules.md "Drops"); "replace" (false,
	 * the default): each provisioning replaces the last. Tables only. */
	bool append;
	rm_column *columns;
	size_t ncolumns;
	char *unit; /* "unit": the column naming a person; NULL = none (rows counted) */
	/* What the privacy filter knows of this table (built at parse):
	 * columns with their permissions, and the unit. */
	cmp_psource psrc;
	rm_policy *auto_approve; /* NULL = none */
} rm_dataset;

/* privacy.bounds of a DP computation: values of the column are clamped to
 * [lo, hi], given in steps of 10^-decimals (docs/privacy.md). */
typedef struct rm_bound {
	char *column;
	int64_t lo, hi;
	unsigned decimals;
} rm_bound;

/* "logs" of a python/r computation: when its analysts may read the
 * script's stdout and stderr (docs/room-format.md). */
enum rm_logs { RM_LOGS_NEVER, RM_LOGS_ON_ERROR, RM_LOGS_ALWAYS };
const char *rm_logs_name(enum rm_logs l); /* "never", "on_error", "always" */

/* "limits" of a python/r computation; 0 = not set (dcrd's default). Each
 * at most its DCR_RM_LIMIT_*_MAX (base/limits.h); dcrd clamps further to
 * its --script-max-* options when it runs. */
typedef struct rm_limits {
	uint64_t wall_seconds, cpu_seconds, memory_mb, processes, output_mb, tmp_mb;
} rm_limits;

/* A synthetic computation's bounds and bins of one numeric column. */
typedef struct rm_synth_col {
	char *column;
	bool has_bounds;
	double lo, hi;
	unsigned bins; /* 0: not given */
} rm_synth_col;

typedef struct rm_computation {
	char *name;
	enum rm_compkind kind;
	char *query;   /* sql */
	char *script;  /* python, r */
	/* python, r: "columns", the declared tabular result
	 * (/output/dataset.csv); 0 = none (the result is files only). */
	rm_column *columns;
	size_t ncolumns;
	enum rm_logs logs; /* python, r */
	rm_limits limits;  /* python, r */
	char **inputs; /* datasets or computations this one reads (for sql:
	                  the tables the query references, derived at parse) */
	size_t ninputs;
	long long min_rows_aggregated; /* privacy.min_rows_aggregated; 0 = none */
	uint64_t dp_epsilon;           /* privacy.epsilon in millionths; 0 = not DP */
	rm_bound *dp_bounds;           /* privacy.bounds */
	size_t ndp_bounds;
	char *input;                   /* synthetic */
	char **mask;
	size_t nmask;
	enum cmp_mask *mask_fmt; /* per mask entry; NONE: from the column (array form) */
	bool mask_object;        /* mask written as {column: format} */
	uint64_t synth_rows;     /* rows to write; 0: the noisy row count */
	rm_synth_col *synth_cols; /* bounds and bins, by column */
	size_t nsynth_cols;
	double epsilon;
	/* Result schema filled by rm_def_admit (never by rm_def_parse): sql
	 * (from cmp_sql_check on empty inputs) and synthetic (the input
	 * dataset's columns); NULL/0 for python and r, whose columns are known
	 * only after a run, and before admission. Names heap-owned. */
	cmp_column *result_cols;
	size_t nresult_cols;
	/* What the privacy filter of a downstream computation knows of this
	 * result (built at parse, docs/privacy.md "Chains"): AGGREGATE if
	 * filtered, TABLE if an unfiltered row projection exposing its
	 * datasets' units, OPAQUE otherwise. */
	cmp_psource psrc;
	/* Why rm_def_admit refused this sql computation (heap), or NULL. */
	char *admit_error;
} rm_computation;

typedef struct rm_participant {
	char *email;
	uint8_t key[DCR_ED25519_PUB_BYTES];
	char **owner_of;
	size_t nowner_of;
	char **analyst_of;
	size_t nanalyst_of;
} rm_participant;

typedef struct rm_def {
	char *format; /* "dcr.room/1" */
	char *name;
	char *description;
	bool interactive, development, require_provisioned;
	rm_participant *participants;
	size_t nparticipants;
	rm_dataset *datasets;
	size_t ndatasets;
	rm_computation *computations;
	size_t ncomputations;
} rm_def;

/* Parses and validates a definition document (docs/room-format.md). On
 * success *out is a new definition (free with rm_def_free). Errors
 * (DCR_EINVALID, DCR_ELIMIT, DCR_EFORMAT for JSON syntax) name the field,
 * e.g. `participants[1].key: not an ed25519 public key (...)` or `line 3,
 * column 9: <jansson message>`. Validation: unique names, known types, every
 * reference resolves (sql inputs from the tokenizer, cmp_sql_refs),
 * computation dependencies acyclic, every dataset has an owner and every
 * computation an analyst, keys valid points. A rule of replay: pure, no
 * SQLite, no clock. Fields starting with "x-" are ignored (and not kept). */
int rm_def_parse(const char *json, size_t n, rm_def **out, dcr_err *err);
/* The admission check (room/admit.c, docs/rules.md "Admission checks"):
 * every sql query compiles with SQLite against the declared schemas of
 * what it reads, upstream first, is one SELECT of allowed functions, and
 * aggregates where the privacy filter requires it; fills result_cols.
 * Not a rule of replay (rm_apply never calls it): dcrd runs it before
 * appending room.created/draft_saved/published, the CLI and the mount
 * before signing one. Errors read `computations[0] ("overlap"): SQL
 * error: no such column: b.citi`. */
int rm_def_admit(rm_def *d, dcr_err *err);
/* The same check one computation at a time, for a caller that shares its
 * checks out (dcrd's admission pool, daemon/admit.c): rm_admit_begin (a
 * cycle fails here), rm_admit_step until it returns true (each call checks
 * the next computation, upstream first), then rm_admit_end, which returns
 * the first error (rm_def_admit's verdict). With all, every computation
 * is checked, as rm_def_admit does (each keeps its admit_error, for
 * room.test); without, the steps end at the first error (the verdict is
 * the same, the cost of a refused definition one failing computation).
 * rm_admit_end may be called early (the check abandoned). */
typedef struct rm_admit {
	rm_def *d;
	size_t *order, next;
	bool all;
	int rc;
	dcr_err err;
} rm_admit;
int rm_admit_begin(rm_admit *a, rm_def *d, bool all, dcr_err *err);
bool rm_admit_step(rm_admit *a);
int rm_admit_end(rm_admit *a, dcr_err *err);
/* rm_def_parse, then rm_def_admit; errors prefixed "definition: " as
 * rm_apply words definition errors. */
int rm_def_admit_json(const char *json, size_t n, dcr_err *err);
void rm_def_free(rm_def *d); /* NULL ok */
/* Definition as pretty JSON (2-space indent, fixed field order, trailing
 * newline), accepted again by rm_def_parse. Heap string (free()). */
char *rm_def_to_json(const rm_def *d);

/* Room names: 1..DCR_RM_ROOM_NAME_BYTES_MAX of [A-Za-z0-9._-], not starting
 * with '.' or '-'. Dataset, column and computation names: identifiers
 * [A-Za-z_][A-Za-z0-9_]{0,62}, not starting with sqlite_. */
bool rm_room_name_valid(const char *s);
bool rm_ident_valid(const char *s);
const char *rm_dskind_name(enum rm_dskind k);     /* "table", "file" */
const char *rm_compkind_name(enum rm_compkind k); /* "sql", "python", ... */
/* The compute module's view of a table dataset's columns: fills cols
 * (ds->ncolumns entries); names point into ds. */
void rm_dataset_columns(const rm_dataset *ds, cmp_column *cols);

/* Differential privacy amounts (epsilon, budgets) are exact integers in
 * millionths (DCR_DP_EPSILON_SCALE), written as decimal strings: "0.5".
 * rm_epsilon_format writes the canonical form (no trailing zeros, "0.000001",
 * "5"); buf of 32 bytes suffices. rm_decimal_parse reads -?D+(.D+)? with at
 * most max_decimals fraction digits into value * 10^decimals (and the digit
 * count), |value * 10^decimals| <= max_scaled; DCR_EINVALID otherwise. */
const char *rm_epsilon_format(uint64_t micro, char *buf, size_t cap);
int rm_decimal_parse(const char *s, unsigned max_decimals, int64_t max_scaled, int64_t *scaled,
                     unsigned *decimals);

/* The compute module's view of a DP computation (epsilon, bounds): fills
 * dp and bounds (c->ndp_bounds entries; names point into c). */
void rm_computation_dp(const rm_computation *c, cmp_dp *dp, cmp_dp_bound *bounds);

/* The compute module's view of a synthetic computation over an input of
 * the given columns: out[i] for cols[i] (mask format, bounds, bins). */
void rm_computation_synth(const rm_computation *c, const cmp_column *cols, size_t ncols,
                          cmp_synth_col *out);
/* The mask format of a column named in an array-form mask: number for
 * integer and float columns, email and date for columns of that format,
 * string otherwise. */
enum cmp_mask rm_mask_default(const cmp_column *col);

const rm_dataset *rm_def_dataset(const rm_def *d, const char *name);
const rm_computation *rm_def_computation(const rm_def *d, const char *name);
const rm_participant *rm_def_participant(const rm_def *d, const uint8_t key[32]);
bool rm_is_owner(const rm_def *d, const uint8_t key[32], const char *dataset);
bool rm_is_analyst(const rm_def *d, const uint8_t key[32], const char *computation);
/* Computations in dependency order (indices into d->computations; order
 * must hold d->ncomputations entries): every computation after the
 * computations it reads. DCR_EINVALID on a cycle (never for a parsed def). */
int rm_def_topo(const rm_def *d, size_t *order);
/* Datasets a computation reads, directly or through upstream computations:
 * used[i] is set for d->datasets[i] (used must hold d->ndatasets). */
void rm_def_datasets_read(const rm_def *d, const rm_computation *c, bool *used);

/* ---- state -------------------------------------------------------------- */

enum rm_status { RM_NONE, RM_DRAFT, RM_PUBLISHED, RM_STOPPED };
const char *rm_status_name(enum rm_status s);

/* One drop of an append dataset (docs/rules.md "Drops"): a file
 * provisioned into it, identified by its file name and SHA-256. */
typedef struct rm_drop {
	char *file;         /* its file name: unique among the dataset's drops */
	uint8_t sha256[32]; /* of the plaintext CSV */
	char *blob;
	uint64_t bytes, rows;
	uint8_t stats_sha256[32];
	uint8_t by[32];
	uint64_t seq, ts_ms; /* of its dataset.provisioned */
} rm_drop;

/* For an append dataset the provision is the union of its drops: present
 * while it has one, sha256 the union hash (rm_drops_sha256), bytes and
 * rows the sums, blob and file NULL, stats_sha256 zero, by/seq/ts_ms of
 * the last drop or withdrawal. */
typedef struct rm_provision {
	char *dataset;
	bool present; /* false after deprovision */
	uint8_t by[32];
	uint8_t sha256[32]; /* of the plaintext CSV */
	char *blob;         /* blob id in the daemon's store */
	uint64_t bytes, rows;
	uint8_t stats_sha256[32]; /* digest of the statistics JSON */
	char *file;               /* original file name */
	uint64_t seq, ts_ms;
	rm_drop *drops; /* append datasets: the drops now in, in drop order */
	size_t ndrops;
} rm_provision;

enum rm_run_state { RM_RUN_QUEUED, RM_RUN_DONE, RM_RUN_FAILED };

/* A dataset a run reads, directly or through upstream computations, as it
 * was provisioned when the run was requested (docs/rules.md). */
typedef struct rm_run_input {
	char *dataset;
	bool present;       /* provisioned at run.requested */
	uint8_t sha256[32]; /* of the plaintext CSV (append: the union hash), when present */
	char *blob;         /* the provision's blob id, when present (NULL for append) */
	char **drop_blobs;  /* append datasets: the drops' blob ids, in drop order */
	size_t ndrop_blobs;
} rm_run_input;

/* One column of a run's result (run.completed schema). */
typedef struct rm_run_col {
	char *name;
	enum cmp_type type;
} rm_run_col;

typedef struct rm_run {
	char *id; /* 32 hex chars, chosen by the requester */
	char *computation;
	uint8_t by[32];
	enum rm_run_state state;
	uint64_t requested_seq, requested_ts_ms, finished_ts_ms;
	uint64_t finished_seq;      /* seq of run.completed/failed; 0 while queued */
	char *error;               /* failed */
	uint8_t result_sha256[32]; /* done */
	char *result_blob;
	uint64_t rows, suppressed, result_bytes, duration_ms;
	/* python/r runs (docs/compute.md): output files in the result archive,
	 * and the archive of the script's stdout and stderr (done, or failed
	 * after the script started); logs_blob NULL when there are none. */
	uint64_t files;
	char *logs_blob;
	uint8_t logs_sha256[32];
	/* Every dataset the computation reads, sorted by name (bytewise),
	 * recorded at run.requested; run.completed must report exactly these. */
	rm_run_input *inputs;
	size_t ninputs;
	rm_run_col *cols; /* result schema (done) */
	size_t ncols;
	uint64_t epsilon;       /* DP: millionths spent at request (body.epsilon); 0 = not DP */
	uint64_t retrieved;     /* count of result.retrieved */
	uint64_t retrieved_seq; /* seq of the first of them */
	char *preview_of;       /* request.preview_requested: the request id; else NULL */
} rm_run;

/* Development runs (settings.development, docs/rules.md "Development
 * runs"): a participant's own script over what they may already see. */
enum rm_dev_lang { RM_DEV_SQL, RM_DEV_PYTHON, RM_DEV_R };
const char *rm_dev_lang_name(enum rm_dev_lang l); /* "sql", "python", "r" */

/* One input of a development run, as it was when the run was requested:
 * a dataset the requester owns (its current provision) or a computation
 * the requester is an analyst of (the result of its last completed run). */
typedef struct rm_dev_input {
	char *name;
	bool is_dataset;
	uint8_t sha256[32]; /* dataset: plaintext SHA-256; computation: result_sha256 */
	char *blob;         /* the provision's blob, or the run's result blob */
	char *file;         /* dataset: the provision's file name */
	char *run;          /* computation: the run whose result is read */
	char **drop_blobs;  /* append dataset: the drops' blob ids, in drop order */
	size_t ndrop_blobs;
} rm_dev_input;

typedef struct rm_dev {
	char *id; /* 32 hex chars, chosen by the requester; unique among runs and dev runs */
	uint8_t by[32];
	enum rm_dev_lang lang;
	char *script;
	uint8_t script_sha256[32];
	rm_dev_input *inputs; /* sorted by name (bytewise) */
	size_t ninputs;
	enum rm_run_state state;
	uint64_t requested_seq, requested_ts_ms, finished_seq, finished_ts_ms;
	char *error; /* failed: a data-free class */
	uint8_t result_sha256[32]; /* done */
	char *result_blob;
	uint64_t result_bytes, duration_ms;
	uint8_t logs_sha256[32]; /* done or failed */
	char *logs_blob;         /* "" = no logs */
} rm_dev;

typedef struct rm_state {
	uint8_t daemon_key[32]; /* the only actor allowed daemon events */
	uint8_t room[ES_ROOM_ID_BYTES];
	enum rm_status status;
	uint64_t size; /* events applied = next seq */
	uint64_t last_ts_ms;
	uint8_t creator[32];
	rm_def *def;    /* current definition (NULL before room.created) */
	char *def_json; /* as stored in the last created/draft_saved event */
	uint8_t def_sha256[32];
	rm_provision *provisions; /* one per dataset name ever provisioned */
	size_t nprovisions;
	rm_run *runs;
	size_t nruns;
	char *stop_reason; /* room.stopped */
	/* The budget ledger: epsilon spent on each dataset of def (same index),
	 * in millionths, by every run.requested of a DP computation. NULL until
	 * the first such run (the definition is frozen by then). */
	uint64_t *dp_spent;
	/* Requests (docs/rules.md "Requests"), in submission order, and the
	 * definition version: 1 at publication, +1 per merged request;
	 * version_sha256 is the chained hash of the current version. */
	struct rm_request *requests;
	size_t nrequests;
	uint64_t def_version;
	uint8_t version_sha256[32];
	/* private: open-addressing index of runs by id (slot = index + 1) */
	size_t *run_index;
	size_t run_index_cap;
	rm_dev *devs; /* development runs, in request order */
	size_t ndevs;
	size_t *dev_index; /* private: as run_index, for devs */
	size_t dev_index_cap;
} rm_state;

void rm_state_init(rm_state *s, const uint8_t daemon_key[32]);
void rm_state_release(rm_state *s);
const rm_provision *rm_state_provision(const rm_state *s, const char *dataset); /* present only */
const rm_run *rm_state_run(const rm_state *s, const char *run_id);
/* A drop now in an append dataset, by file name; NULL if none. */
const rm_drop *rm_state_drop(const rm_state *s, const char *dataset, const char *file);
/* The union hash of an append dataset (docs/rules.md "Drops"): SHA-256 of
 * the drops' sha256 (32 bytes each) concatenated in drop order. */
void rm_drops_sha256(const rm_drop *drops, size_t n, uint8_t out[32]);
const rm_run *rm_state_last_run(const rm_state *s, const char *computation);
const rm_dev *rm_state_dev(const rm_state *s, const char *run_id);
bool rm_state_is_participant(const rm_state *s, const uint8_t key[32]); /* incl. creator */
/* Epsilon spent on a dataset so far, in millionths (0 for a dataset
 * without a budget or unknown). The budget left is
 * ds->epsilon_budget - rm_state_epsilon_spent(). */
uint64_t rm_state_epsilon_spent(const rm_state *s, const char *dataset);

/* The one display name of an actor: the participant's email in def, "dcrd"
 * for daemon_key, else the key: RM_ACTOR_SHORT gives "ed25519:" and its
 * first 12 base64 characters (audit lines, dcrd's log), RM_ACTOR_FULL the
 * whole "ed25519:<base64>" (rule errors, the CLI). def and daemon_key may
 * be NULL (not known). Written into buf (RM_ACTOR_NAME_BYTES hold any;
 * longer names are truncated to cap); returns buf. */
enum rm_actor_form { RM_ACTOR_SHORT, RM_ACTOR_FULL };
#define RM_ACTOR_NAME_BYTES (DCR_RM_EMAIL_BYTES_MAX + 1)
const char *rm_actor_name(const rm_def *def, const uint8_t *daemon_key, const uint8_t key[32],
                          enum rm_actor_form form, char *buf, size_t cap);

/* THE rule function. ev must be decoded (es_event_decode) and its
 * signature verified by the caller. On error the state is unchanged and err
 * says why ("seq 12 (dataset.provisioned): actor is not an owner of
 * dataset bank_customers"). */
int rm_apply(rm_state *s, const es_event *ev, dcr_err *err);

/* Where an event stopped, with the reason kept apart from the position, so
 * that nobody has to parse "seq N (type): " back out of a message. */
typedef struct rm_step {
	uint64_t seq;                 /* the event's seq (the room's size if it does not decode) */
	char type[ES_TYPE_BYTES_MAX]; /* the event's type; "" if it does not decode */
	dcr_err reason;               /* why, without the position (code 0: it applied) */
} rm_step;
typedef int (*rm_step_fn)(void *ctx, const rm_state *before, const es_event *ev, dcr_err *err);

/* rm_apply with the position and reason apart in step (rm_apply is this
 * plus rm_step_err). */
int rm_apply_at(rm_state *s, const es_event *ev, rm_step *step);
/* THE replay step for a stored entry (envelope || sig): es_event_decode,
 * es_event_verify, then before(ctx, s, ev, err) if given (a non-zero return
 * stops the step with its err as the reason), then rm_apply. Returns 0 or
 * the negative code; step says where and why. */
int rm_replay_step(rm_state *s, const void *entry, size_t n, rm_step_fn before, void *ctx,
                   rm_step *step);
/* err = "seq N (type): reason" ("seq N: reason" when the entry did not
 * decode), the form docs/rules.md gives; returns the step's code. */
int rm_step_err(const rm_step *step, dcr_err *err);

/* ---- permissions ---------------------------------------------------------
 * The read and action rules, for the daemon and the mount; rm_apply uses
 * the same checks, so no rule is written twice. All fail closed. The
 * rm_check_* variants return 0 or a negative code and say why in err (may
 * be NULL); rm_may_* are the boolean forms. */
bool rm_may_read_room(const rm_state *s, const uint8_t key[32]); /* creator or participant */
/* Owner of the dataset, or any participant when share_statistics. */
bool rm_may_read_stats(const rm_state *s, const uint8_t key[32], const char *dataset);
/* The rows of a dataset: its owners only. */
bool rm_may_read_data(const rm_state *s, const uint8_t key[32], const char *dataset);
/* Results of a computation: its analysts only. */
bool rm_may_read_result(const rm_state *s, const uint8_t key[32], const char *computation);
/* The logs of a finished python/r run: an analyst of its computation, the
 * run has logs, and the computation's "logs" allows it (always; on_error
 * when the run failed). */
int rm_check_read_logs(const rm_state *s, const uint8_t key[32], const char *run_id,
                       dcr_err *err);
/* Edit (room.draft_saved) and publish: the creator while draft. */
int rm_check_edit(const rm_state *s, const uint8_t key[32], dcr_err *err);
bool rm_may_edit(const rm_state *s, const uint8_t key[32]);
/* Stop: the creator while draft or published. */
int rm_check_stop(const rm_state *s, const uint8_t key[32], dcr_err *err);
/* Provision: published, dataset exists, an owner of it. */
int rm_check_provision(const rm_state *s, const uint8_t key[32], const char *dataset, dcr_err *err);
bool rm_may_provision(const rm_state *s, const uint8_t key[32], const char *dataset);
/* Deprovision: as provision, and the dataset is currently provisioned; an
 * append dataset is withdrawn one drop at a time (rm_check_withdraw). */
int rm_check_deprovision(const rm_state *s, const uint8_t key[32], const char *dataset,
                         dcr_err *err);
/* Withdraw a drop: as provision, the dataset is an append dataset and file
 * names one of its drops. */
int rm_check_withdraw(const rm_state *s, const uint8_t key[32], const char *dataset,
                      const char *file, dcr_err *err);
/* The file name rule (docs/rules.md "File names"): what body.file of a
 * dataset.provisioned (every dataset kind; in an append dataset the drop's
 * name) may be. name[0..n): 1..DCR_RM_FILE_NAME_BYTES_MAX bytes of valid
 * UTF-8; no '/', no control character (C0, DEL, C1), no U+2028/U+2029,
 * no bidirectional formatting character (U+061C, U+200E, U+200F,
 * U+202A..U+202E, U+2066..U+2069); not "." or ".."; not one of
 * rm_ds_own_files (the mount's own files in a dataset folder). Returns 0,
 * or DCR_EINVALID with a message saying what is wrong and at which byte,
 * which never quotes a byte of the name the rule refuses. rm_apply holds
 * provisions to it; the CLI and the mount call it to refuse early. */
int rm_file_name_check(const char *name, size_t n, dcr_err *err);
bool rm_file_name_valid(const char *name); /* NUL-terminated; NULL: false */
#define RM_DS_OWN_FILES 3
extern const char *const rm_ds_own_files[RM_DS_OWN_FILES];
/* Run: published, computation exists, an analyst of it, under
 * settings.require_provisioned every required dataset it reads
 * (transitively) is provisioned, and for a DP computation no dataset it
 * reads would go past its epsilon_budget. */
int rm_check_run(const rm_state *s, const uint8_t key[32], const char *computation, dcr_err *err);
bool rm_may_run(const rm_state *s, const uint8_t key[32], const char *computation);
/* Retrieve: published, the run exists and is done, an analyst of its
 * computation. */
int rm_check_retrieve(const rm_state *s, const uint8_t key[32], const char *run_id, dcr_err *err);

/* Development run (dev.requested): a participant, settings.development
 * on, published; what the inputs may be is checked by rm_apply (see
 * docs/rules.md). rm_check_dev_input checks one input name as rm_apply
 * does (for the CLI and the mount, to refuse early). */
int rm_check_dev(const rm_state *s, const uint8_t key[32], dcr_err *err);
int rm_check_dev_input(const rm_state *s, const uint8_t key[32], const char *name, dcr_err *err);
/* Reading a development run's result or logs: its requester only. */
int rm_check_dev_read(const rm_state *s, const uint8_t key[32], const char *run_id, dcr_err *err);

/* Client helpers (room/dev.c, not rules). The language of a script file
 * from its extension (.sql, .py, .R or .r). The inputs a script reads
 * when the user names none: for sql, every dataset or computation of the
 * room its query names (cmp_sql_refs); for python and r, the names on a
 * first line "# inputs: a, b" (none without it). *out: heap strings in a
 * heap array (free each, then the array). */
int rm_dev_lang_of_file(const char *file, enum rm_dev_lang *out, dcr_err *err);
int rm_dev_infer_inputs(const rm_state *s, enum rm_dev_lang lang, const char *script,
                        char ***out, size_t *nout, dcr_err *err);

/* Human line for audit.log / `dcr audit log`, without trailing newline:
 * "2026-11-25T12:00:00Z anna@bank.example provisioned bank_customers:
 *  1000 rows, sha256 3f2a9c1e..." Uses the state *before* ev is applied
 * (for email lookup); call it, then rm_apply. Heap string. */
char *rm_describe(const rm_state *before, const es_event *ev);

/* ---- event bodies (canonical msgpack maps) -------------------------------
 * Builders used by every client so bodies are written one way. Each appends
 * to out. Types: room.created, room.draft_saved, room.published,
 * room.stopped, dataset.provisioned, dataset.deprovisioned, run.requested,
 * run.completed, run.failed, result.retrieved. */
#define RM_EV_CREATED       "room.created"
#define RM_EV_SAVED         "room.draft_saved"
#define RM_EV_PUBLISHED     "room.published"
#define RM_EV_STOPPED       "room.stopped"
#define RM_EV_PROVISIONED   "dataset.provisioned"
#define RM_EV_DEPROVISIONED "dataset.deprovisioned"
#define RM_EV_RUN_REQUESTED "run.requested"
#define RM_EV_RUN_COMPLETED "run.completed"
#define RM_EV_RUN_FAILED    "run.failed"
#define RM_EV_RETRIEVED     "result.retrieved"
#define RM_EV_DEV_REQUESTED "dev.requested"
#define RM_EV_DEV_COMPLETED "dev.completed"
#define RM_EV_DEV_FAILED    "dev.failed"

/* Body keys (sorted), as rm_apply requires them, exactly:
 *   created, draft_saved  {definition: str}
 *   published             {definition_sha256: bin 32}
 *   stopped               {reason: str}
 *   provisioned           {blob: str, bytes: uint, dataset: str, file: str,
 *                          rows: uint, sha256: bin 32, stats_sha256: bin 32}
 *   deprovisioned         {dataset: str}; of a drop: {dataset: str, file: str}
 *   run.requested         {computation: str, run: str (32 lowercase hex)}, and
 *                         epsilon: str exactly when the computation is DP
 *   run.completed         {computation, duration_ms, inputs (map: dataset
 *                          -> bin 32 or nil), result_blob, result_bytes,
 *                          result_sha256 (bin 32), rows, run, schema (array
 *                          of [name, type]), suppressed}
 *                         and for a python/r computation also files (uint),
 *                         logs_blob (str), logs_sha256 (bin 32)
 *   run.failed            {computation: str, error: str, run: str}, and for a
 *                         python/r computation optionally logs_blob and
 *                         logs_sha256 (both or neither)
 *   result.retrieved      {run: str}
 *   dev.requested         {inputs: array of str (sorted, unique), language:
 *                          str, run: str, script: str}
 *   dev.completed         {duration_ms, inputs (map: name -> bin 32),
 *                          logs_blob, logs_sha256, result_blob,
 *                          result_bytes, result_sha256, run}
 *   dev.failed            {error, logs_blob, logs_sha256, run} */
void rm_body_definition(dcr_buf *out, const char *json); /* created, draft_saved */
void rm_body_published(dcr_buf *out, const uint8_t def_sha256[32]);
void rm_body_stopped(dcr_buf *out, const char *reason);
void rm_body_provisioned(dcr_buf *out, const rm_provision *p); /* uses dataset..file */
void rm_body_deprovisioned(dcr_buf *out, const char *dataset);
/* The withdrawal of one drop of an append dataset. */
void rm_body_withdrawn(dcr_buf *out, const char *dataset, const char *file);
void rm_body_run_requested(dcr_buf *out, const char *computation, const char *run_id);
/* run.requested of a DP computation: epsilon is the computation's
 * privacy.epsilon in canonical form (rm_epsilon_format); NULL = not DP. */
void rm_body_run_requested_eps(dcr_buf *out, const char *computation, const char *epsilon,
                               const char *run_id);
/* Writes r->inputs (as recorded at run.requested; nil for a dataset not
 * provisioned then) and r->cols. */
void rm_body_run_completed(dcr_buf *out, const rm_run *r);
void rm_body_run_failed(dcr_buf *out, const char *run_id, const char *computation,
                        const char *error);
/* run.completed of a python/r run: as rm_body_run_completed, plus
 * r->files, r->logs_blob and r->logs_sha256. */
void rm_body_run_completed_script(dcr_buf *out, const rm_run *r);
/* run.failed of a python/r run whose script started: with its logs. */
void rm_body_run_failed_logs(dcr_buf *out, const char *run_id, const char *computation,
                             const char *error, const char *logs_blob,
                             const uint8_t logs_sha256[32]);
void rm_body_retrieved(dcr_buf *out, const char *run_id);
/* dev.requested: inputs sorted bytewise, each once (the caller sorts). */
void rm_body_dev_requested(dcr_buf *out, const char *run_id, enum rm_dev_lang lang,
                           const char *script, const char *const *inputs, size_t ninputs);
/* dev.completed from d->inputs (as recorded), d->result_*, d->logs_*,
 * d->duration_ms; dev.failed from d->error and d->logs_*. */
void rm_body_dev_completed(dcr_buf *out, const rm_dev *d);
void rm_body_dev_failed(dcr_buf *out, const rm_dev *d);

/* ---- requests (docs/rules.md "Requests") ----------------------------------
 * With settings.interactive, a participant of a published room proposes
 * new computations (request.submitted); every affected data owner (an
 * owner of a dataset the new computations read, transitively) approves or
 * rejects it, bound to the SHA-256 of the request text; the last approval
 * merges the computations into the current definition. */
#define RM_EV_REQ_SUBMITTED "request.submitted"
#define RM_EV_REQ_WITHDRAWN "request.withdrawn"
#define RM_EV_REQ_APPROVED  "request.approved"
#define RM_EV_REQ_REJECTED  "request.rejected"
#define RM_EV_REQ_AUTO      "request.auto_approved"
#define RM_EV_REQ_PREVIEW   "request.preview_requested"

enum rm_req_state { RM_REQ_OPEN, RM_REQ_MERGED, RM_REQ_REJECTED, RM_REQ_WITHDRAWN, RM_REQ_FAILED };
const char *rm_req_state_name(enum rm_req_state s); /* "open", "merged", ... */
enum rm_vote { RM_VOTE_NONE, RM_VOTE_APPROVED, RM_VOTE_REJECTED };

typedef struct rm_req_owner {
	uint8_t key[32];
	enum rm_vote vote;
	char *reason; /* of the vote, NULL while none */
	uint64_t seq; /* of the vote */
	bool automatic; /* request.auto_approved: by dcrd under the owner's policy */
} rm_req_owner;

typedef struct rm_request {
	char *id; /* 32 lowercase hex chars, chosen by the author */
	uint8_t by[32];
	uint64_t seq, ts_ms; /* of request.submitted */
	char *text;          /* the request document, as signed */
	uint8_t sha256[32];  /* of text: what votes are bound to */
	char *title;
	char **computations; /* names of the new computations, in order */
	size_t ncomputations;
	rm_req_owner *owners; /* the affected owners, in participant order */
	size_t nowners;
	enum rm_req_state state;
	uint64_t closed_seq; /* the event that closed it; 0 while open */
	uint64_t version;    /* merged: the definition version it made */
	char *failure;       /* failed: why the merge was refused */
	struct rm_def *preview_def; /* the merged definition its preview runs use */
} rm_request;

/* A parsed request document (docs/room-format.md "Requests") merged into a
 * definition text: merged_json is the definition with the request's
 * computations appended and their analysts' analyst_of extended, merged
 * the result of rm_def_parse on it (the same validation as any
 * definition). Pure (a rule of replay). */
typedef struct rm_request_doc {
	char *title, *description;
	char **names;
	size_t nnames;
	char *merged_json;
	rm_def *merged;
} rm_request_doc;
int rm_request_merge(const char *def_json, const char *text, size_t n, rm_request_doc *out,
                     dcr_err *err);
void rm_request_doc_release(rm_request_doc *d);

const rm_request *rm_state_request(const rm_state *s, const char *id);
/* Affected owners of a request's computations in def (merged): every
 * participant owning a dataset one of names reads, directly or through
 * other computations. Fills keys (heap, participant order). */
void rm_request_affected(const rm_def *def, char *const *names, size_t n, uint8_t (**keys)[32],
                         size_t *nkeys);
/* Vote (approve or reject): the request exists and is open, the actor is
 * one of its affected owners and has not voted, sha256 is the request's. */
int rm_check_vote(const rm_state *s, const uint8_t key[32], const char *id,
                  const uint8_t sha256[32], dcr_err *err);
/* The auto_approve policies of owner (docs/rules.md "Auto-approval"): the
 * request still merges into the current definition, and every dataset
 * owner owns that a new computation reads has a policy every such
 * computation satisfies. Votes as rm_check_vote. */
int rm_check_policy(const rm_state *s, const rm_request *q, const uint8_t owner[32],
                    dcr_err *err);
/* Preview (docs/rules.md "Previews"): the request is open, has exactly one
 * affected owner, key is that owner, computation is one of the request's,
 * the request still merges, the computation is not differentially
 * private, and its required datasets are provisioned. */
int rm_check_preview(const rm_state *s, const uint8_t key[32], const char *id,
                     const char *computation, dcr_err *err);
/* The definition a run's computation is in: the request's merged
 * definition for a preview run, else the room's. */
const rm_def *rm_state_run_def(const rm_state *s, const rm_run *r);
/* The result of a run: its computation's analysts; a preview's requester
 * only. */
bool rm_may_read_run(const rm_state *s, const uint8_t key[32], const rm_run *r);
/* Withdraw: published, the request is open, key is its author. */
int rm_check_req_withdraw(const rm_state *s, const uint8_t key[32], const char *id, dcr_err *err);
/* The part of rm_check_preview that does not depend on the computation:
 * published, the request is open, has one affected owner and it is key. */
bool rm_may_preview(const rm_state *s, const uint8_t key[32], const char *id);
/* Submit: published, settings.interactive of the current definition. */
int rm_check_request(const rm_state *s, const uint8_t key[32], dcr_err *err);

/* Bodies (keys sorted):
 *   request.submitted {request: str (32 hex), text: str (<= 1 MiB)}
 *   request.withdrawn {request: str}
 *   request.approved, request.rejected {reason: str (<= 1024), request: str,
 *                      request_sha256: bin 32} */
void rm_body_req_submitted(dcr_buf *out, const char *id, const char *text);
void rm_body_req_withdrawn(dcr_buf *out, const char *id);
void rm_body_req_vote(dcr_buf *out, const char *id, const uint8_t sha256[32],
                      const char *reason);
/* request.preview_requested {computation: str, request: str, run: str} */
void rm_body_req_preview(dcr_buf *out, const char *id, const char *computation,
                         const char *run_id);
/* request.auto_approved (the daemon) {owner: bin 32, request: str,
 * request_sha256: bin 32} */
void rm_body_req_auto(dcr_buf *out, const char *id, const uint8_t sha256[32],
                      const uint8_t owner[32]);

#endif
