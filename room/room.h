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

/* ---- definition -------------------------------------------------------- */

enum rm_coltype { RM_STRING, RM_INTEGER, RM_FLOAT };
enum rm_format { RM_FMT_NONE, RM_FMT_EMAIL, RM_FMT_DATE, RM_FMT_SHA256 };
enum rm_dskind { RM_DS_TABLE, RM_DS_FILE };
enum rm_compkind { RM_COMP_SQL, RM_COMP_PYTHON, RM_COMP_R, RM_COMP_SYNTHETIC };

typedef struct rm_column {
	char *name;
	enum rm_coltype type;
	enum rm_format format;
	bool nullable; /* default true */
} rm_column;

typedef struct rm_dataset {
	char *name;
	enum rm_dskind kind;
	bool required;         /* default true */
	bool share_statistics; /* default false */
	rm_column *columns;
	size_t ncolumns;
} rm_dataset;

typedef struct rm_computation {
	char *name;
	enum rm_compkind kind;
	char *query;   /* sql */
	char *script;  /* python, r */
	char **inputs; /* datasets or computations this one reads (for sql:
			  the tables the query references, derived at parse) */
	size_t ninputs;
	long long min_rows_aggregated; /* privacy.min_rows_aggregated; 0 = none */
	char *input;                   /* synthetic */
	char **mask;
	size_t nmask;
	double epsilon;
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

/* Parses and validates a definition document. Errors name the field, e.g.
 * `participants[1].key: not an ed25519 public key` or `line 3, column 9:
 * JSON syntax error: ...`. Validation: unique names, known types, every
 * reference resolves, computation dependencies acyclic, every dataset has an
 * owner and every computation an analyst, keys well formed, SQL compiles
 * against the declared schemas and aggregates where the privacy filter
 * requires it. */
int rm_def_parse(const char *json, size_t n, rm_def **out, dcr_err *err);
void rm_def_free(rm_def *d);
/* Definition as pretty JSON (accepted again by rm_def_parse). */
char *rm_def_to_json(const rm_def *d);

const rm_dataset *rm_def_dataset(const rm_def *d, const char *name);
const rm_computation *rm_def_computation(const rm_def *d, const char *name);
const rm_participant *rm_def_participant(const rm_def *d, const uint8_t key[32]);
bool rm_is_owner(const rm_def *d, const uint8_t key[32], const char *dataset);
bool rm_is_analyst(const rm_def *d, const uint8_t key[32], const char *computation);
/* Computations in dependency order (indices into d->computations). */
int rm_def_topo(const rm_def *d, size_t *order);

/* ---- state -------------------------------------------------------------- */

enum rm_status { RM_NONE, RM_DRAFT, RM_PUBLISHED, RM_STOPPED };
const char *rm_status_name(enum rm_status s);

typedef struct rm_provision {
	char *dataset;
	bool present; /* false after deprovision */
	uint8_t by[32];
	uint8_t sha256[32];       /* of the plaintext CSV */
	char *blob;               /* blob id in the daemon's store */
	uint64_t bytes, rows;
	uint8_t stats_sha256[32]; /* digest of the statistics JSON */
	char *file;               /* original file name */
	uint64_t seq, ts_ms;
} rm_provision;

enum rm_run_state { RM_RUN_QUEUED, RM_RUN_DONE, RM_RUN_FAILED };

typedef struct rm_run {
	char *id; /* 32 hex chars, chosen by the requester */
	char *computation;
	uint8_t by[32];
	enum rm_run_state state;
	uint64_t requested_seq, requested_ts_ms, finished_ts_ms;
	char *error;              /* failed */
	uint8_t result_sha256[32]; /* done */
	char *result_blob;
	uint64_t rows, suppressed, result_bytes, duration_ms;
	char *schema_json; /* [["col","type"],...] as sent by the daemon */
	uint64_t retrieved; /* count of result.retrieved */
} rm_run;

typedef struct rm_state {
	uint8_t daemon_key[32]; /* the only actor allowed daemon events */
	uint8_t room[ES_ROOM_ID_BYTES];
	enum rm_status status;
	uint64_t size; /* events applied = next seq */
	uint64_t last_ts_ms;
	uint8_t creator[32];
	rm_def *def;        /* current definition (NULL before room.created) */
	char *def_json;     /* as stored in the last created/draft_saved event */
	uint8_t def_sha256[32];
	rm_provision *provisions; /* one per dataset name ever provisioned */
	size_t nprovisions;
	rm_run *runs;
	size_t nruns;
} rm_state;

void rm_state_init(rm_state *s, const uint8_t daemon_key[32]);
void rm_state_release(rm_state *s);
const rm_provision *rm_state_provision(const rm_state *s, const char *dataset); /* present only */
const rm_run *rm_state_run(const rm_state *s, const char *run_id);
const rm_run *rm_state_last_run(const rm_state *s, const char *computation);
bool rm_state_is_participant(const rm_state *s, const uint8_t key[32]); /* incl. creator */

/* THE rule function. ev must be decoded (es_event_decode) and its
 * signature verified by the caller. On error the state is unchanged and err
 * says why ("seq 12 (dataset.provisioned): actor is not an owner of
 * dataset bank_customers"). */
int rm_apply(rm_state *s, const es_event *ev, dcr_err *err);

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
#define RM_EV_CREATED "room.created"
#define RM_EV_SAVED "room.draft_saved"
#define RM_EV_PUBLISHED "room.published"
#define RM_EV_STOPPED "room.stopped"
#define RM_EV_PROVISIONED "dataset.provisioned"
#define RM_EV_DEPROVISIONED "dataset.deprovisioned"
#define RM_EV_RUN_REQUESTED "run.requested"
#define RM_EV_RUN_COMPLETED "run.completed"
#define RM_EV_RUN_FAILED "run.failed"
#define RM_EV_RETRIEVED "result.retrieved"

void rm_body_definition(dcr_buf *out, const char *json);            /* created, draft_saved */
void rm_body_published(dcr_buf *out, const uint8_t def_sha256[32]);
void rm_body_stopped(dcr_buf *out, const char *reason);
void rm_body_provisioned(dcr_buf *out, const rm_provision *p);      /* uses dataset..file */
void rm_body_deprovisioned(dcr_buf *out, const char *dataset);
void rm_body_run_requested(dcr_buf *out, const char *computation, const char *run_id);
void rm_body_run_completed(dcr_buf *out, const rm_run *r, const char *inputs_json);
void rm_body_run_failed(dcr_buf *out, const char *run_id, const char *computation,
			const char *error);
void rm_body_retrieved(dcr_buf *out, const char *run_id);

#endif
