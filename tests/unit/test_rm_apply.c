/* test_rm_apply.c: the rules of a room (rm_apply), the permission
 * predicates, rm_describe and replay of stored entries.
 *
 * One full lifecycle (create, save, publish, provision x2, run, complete,
 * retrieve, deprovision, stop) with real signed events, and beside every
 * positive rule its negative case, each checked to leave the state as it
 * was. */
#include "test_rm_common.h"

#define T0 1795608000000ull /* 2026-11-25T12:00:00Z */

static t_fixture F;
static dcr_err e_dummy;
static rm_state S;
static uint8_t ROOM[ES_ROOM_ID_BYTES], OTHER_ROOM[ES_ROOM_ID_BYTES];

/* Builds, signs and decodes an event, then applies it. seq = UINT64_MAX
 * means "the room's current size". The entry is appended to keep (if not
 * NULL) so tests can replay it. */
static int submit_ex(const dcr_key *k, const uint8_t *room, uint64_t seq, const char *type,
                     const dcr_buf *body, dcr_buf *keep, dcr_err *e)
{
	dcr_buf entry;
	es_event ev;
	dcr_buf_init(&entry);
	if (seq == UINT64_MAX)
		seq = S.size;
	DCR_ASSERT(es_event_build(k, room, seq, T0 + seq * 1000, type, body->data, body->len,
	                          &entry, e) == 0);
	DCR_ASSERT(es_event_decode(entry.data, entry.len, &ev, e) == 0);
	int rc = rm_apply(&S, &ev, e);
	if (rc == 0 && getenv("RM_VERBOSE")) {
		/* rm_describe wants the state before: only for display here */
		fprintf(stderr, "applied %s\n", type);
	}
	es_event_release(&ev);
	if (keep) {
		dcr_buf_reset(keep);
		dcr_buf_append(keep, entry.data, entry.len);
	}
	dcr_buf_release(&entry);
	return rc;
}

typedef struct snap {
	uint64_t size;
	enum rm_status status;
	size_t nprovisions, npresent, nruns, ndone, nfailed;
	uint8_t def_sha256[32];
	uint64_t retrieved;
	size_t ndevs, ndevs_finished;
} snap;

static snap take(void)
{
	snap n = {
	    .size = S.size, .status = S.status, .nprovisions = S.nprovisions, .nruns = S.nruns};
	memcpy(n.def_sha256, S.def_sha256, 32);
	for (size_t i = 0; i < S.nprovisions; i++)
		n.npresent += S.provisions[i].present;
	for (size_t i = 0; i < S.nruns; i++) {
		n.ndone += S.runs[i].state == RM_RUN_DONE;
		n.nfailed += S.runs[i].state == RM_RUN_FAILED;
		n.retrieved += S.runs[i].retrieved;
	}
	n.ndevs = S.ndevs;
	for (size_t i = 0; i < S.ndevs; i++)
		n.ndevs_finished += S.devs[i].state != RM_RUN_QUEUED;
	return n;
}

static bool same(snap a, snap b)
{
	return a.size == b.size && a.status == b.status && a.nprovisions == b.nprovisions &&
	       a.npresent == b.npresent && a.nruns == b.nruns && a.ndone == b.ndone &&
	       a.nfailed == b.nfailed && a.retrieved == b.retrieved && a.ndevs == b.ndevs &&
	       a.ndevs_finished == b.ndevs_finished &&
	       memcmp(a.def_sha256, b.def_sha256, 32) == 0;
}

/* Must succeed. Consumes body. */
#define OK(k, type, body)                                                                          \
	do {                                                                                       \
		dcr_err e_;                                                                        \
		dcr_err_clear(&e_);                                                                \
		uint64_t size_ = S.size;                                                           \
		dcr_buf *b_ = (body);                                                              \
		int rc_ = submit_ex((k), ROOM, UINT64_MAX, (type), b_, NULL, &e_);                 \
		if (rc_) {                                                                         \
			fprintf(stderr, "%s:%d: %s rejected: %s\n", __FILE__, __LINE__, (type),    \
			        e_.msg);                                                           \
			t_failures++;                                                              \
		}                                                                                  \
		CHECK(S.size == size_ + (rc_ == 0));                                               \
		dcr_buf_release(b_);                                                               \
	} while (0)

/* Must fail with the needles in the message and leave the state unchanged.
 * Consumes body. */
#define NO(k, type, body, ...)                                                                     \
	do {                                                                                       \
		dcr_err e_;                                                                        \
		dcr_err_clear(&e_);                                                                \
		snap before_ = take();                                                             \
		dcr_buf *b_ = (body);                                                              \
		int rc_ = submit_ex((k), ROOM, UINT64_MAX, (type), b_, NULL, &e_);                 \
		CHECK_FAILS(rc_, &e_, __VA_ARGS__);                                                  \
		if (getenv("RM_VERBOSE"))                                                          \
			fprintf(stderr, "rejected: %s\n", e_.msg);                                 \
		CHECK(same(before_, take()));                                                      \
		dcr_buf_release(b_);                                                               \
	} while (0)

/* rm_replay_step, its refusal in the documented "seq N (type): reason" form. */
static int replay_entry(rm_state *s, const void *entry, size_t n, dcr_err *err)
{
	rm_step step;
	int rc = rm_replay_step(s, entry, n, NULL, NULL, &step);
	return rc ? rm_step_err(&step, err) : 0;
}

/* ---- bodies ---------------------------------------------------------------------- */

static dcr_buf B;

static dcr_buf *b_def(const char *json)
{
	dcr_buf_init(&B);
	rm_body_definition(&B, json);
	return &B;
}

static dcr_buf *b_published(const uint8_t h[32])
{
	dcr_buf_init(&B);
	rm_body_published(&B, h);
	return &B;
}

static dcr_buf *b_stopped(const char *reason)
{
	dcr_buf_init(&B);
	rm_body_stopped(&B, reason);
	return &B;
}

static dcr_buf *b_prov_sha(const char *dataset, uint64_t rows, uint64_t bytes, uint8_t fill)
{
	rm_provision p = {.dataset = (char *)dataset,
	                  .blob = "blob-2",
	                  .file = "data.csv",
	                  .rows = rows,
	                  .bytes = bytes};
	memset(p.sha256, fill, 32);
	memset(p.stats_sha256, 0x11, 32);
	dcr_buf_init(&B);
	rm_body_provisioned(&B, &p);
	return &B;
}

static dcr_buf *b_prov(const char *dataset, uint64_t rows, uint64_t bytes)
{
	rm_provision p = {.dataset = (char *)dataset,
	                  .blob = "blob-1",
	                  .file = "data.csv",
	                  .rows = rows,
	                  .bytes = bytes};
	memset(p.sha256, 0x3f, 32);
	memset(p.stats_sha256, 0x11, 32);
	dcr_buf_init(&B);
	rm_body_provisioned(&B, &p);
	return &B;
}

static dcr_buf *b_deprov(const char *dataset)
{
	dcr_buf_init(&B);
	rm_body_deprovisioned(&B, dataset);
	return &B;
}

static dcr_buf *b_run(const char *comp, const char *id)
{
	dcr_buf_init(&B);
	rm_body_run_requested(&B, comp, id);
	return &B;
}

/* run.completed as the daemon writes it: the inputs recorded for the run
 * in S (or none), the schema city string, n integer. */
static const rm_run_col COLS[] = {{"city", CMP_STRING}, {"n", CMP_INTEGER}};

static dcr_buf *b_done_ex(const char *comp, const char *id, const rm_run_col *cols, size_t ncols,
                          const rm_run_input *in, size_t nin)
{
	const rm_run *q = rm_state_run(&S, id);
	rm_run r = {.id = (char *)id,
	            .computation = (char *)comp,
	            .result_blob = "res-1",
	            .rows = 12,
	            .suppressed = 3,
	            .result_bytes = 99,
	            .duration_ms = 7,
	            .cols = (rm_run_col *)cols,
	            .ncols = ncols,
	            .inputs = (rm_run_input *)in,
	            .ninputs = nin};
	if (!in && q) {
		r.inputs = q->inputs;
		r.ninputs = q->ninputs;
	}
	memset(r.result_sha256, 0xab, 32);
	dcr_buf_init(&B);
	rm_body_run_completed(&B, &r);
	return &B;
}

static dcr_buf *b_done(const char *comp, const char *id)
{
	return b_done_ex(comp, id, COLS, 2, NULL, 0);
}

/* run.completed written by hand, inputs and schema given as raw msgpack
 * (NULL: as the daemon writes them), for the shapes rm_body_run_completed
 * cannot write. */
static dcr_buf *b_done_raw(const char *comp, const char *id, const dcr_buf *inputs,
                           const dcr_buf *schema)
{
	const rm_run *q = rm_state_run(&S, id);
	uint8_t h[32];
	dcr_mpw w;
	memset(h, 0xab, 32);
	dcr_buf_init(&B);
	dcr_mpw_init(&w, &B);
	dcr_mpw_map(&w, 10);
	dcr_mpw_str(&w, "computation");
	dcr_mpw_str(&w, comp);
	dcr_mpw_str(&w, "duration_ms");
	dcr_mpw_uint(&w, 7);
	dcr_mpw_str(&w, "inputs");
	if (inputs) {
		dcr_mpw_raw(&w, inputs->data, inputs->len);
	} else {
		dcr_mpw_map(&w, q ? (uint32_t)q->ninputs : 0);
		for (size_t i = 0; q && i < q->ninputs; i++) {
			dcr_mpw_str(&w, q->inputs[i].dataset);
			if (q->inputs[i].present)
				dcr_mpw_bin(&w, q->inputs[i].sha256, 32);
			else
				dcr_mpw_nil(&w);
		}
	}
	dcr_mpw_str(&w, "result_blob");
	dcr_mpw_str(&w, "res-1");
	dcr_mpw_str(&w, "result_bytes");
	dcr_mpw_uint(&w, 99);
	dcr_mpw_str(&w, "result_sha256");
	dcr_mpw_bin(&w, h, 32);
	dcr_mpw_str(&w, "rows");
	dcr_mpw_uint(&w, 12);
	dcr_mpw_str(&w, "run");
	dcr_mpw_str(&w, id);
	dcr_mpw_str(&w, "schema");
	if (schema) {
		dcr_mpw_raw(&w, schema->data, schema->len);
	} else {
		dcr_mpw_array(&w, 2);
		dcr_mpw_array(&w, 2);
		dcr_mpw_str(&w, "city");
		dcr_mpw_str(&w, "string");
		dcr_mpw_array(&w, 2);
		dcr_mpw_str(&w, "n");
		dcr_mpw_str(&w, "integer");
	}
	dcr_mpw_str(&w, "suppressed");
	dcr_mpw_uint(&w, 3);
	return &B;
}

/* Raw msgpack for b_done_raw, written with the dcr_mpw calls in body. */
#define RAW(var, body)                                                                             	dcr_buf var;                                                                               	do {                                                                                       		dcr_mpw w_;                                                                        		dcr_buf_init(&var);                                                                		dcr_mpw_init(&w_, &var);                                                           		dcr_mpw *w = &w_;                                                                  		body;                                                                              	} while (0)

static dcr_buf *b_failed(const char *comp, const char *id, const char *error)
{
	dcr_buf_init(&B);
	rm_body_run_failed(&B, id, comp, error);
	return &B;
}

static dcr_buf *b_retrieved(const char *id)
{
	dcr_buf_init(&B);
	rm_body_retrieved(&B, id);
	return &B;
}

/* A map body written by hand (for malformed bodies). */
static dcr_buf *b_raw1(const char *key, const char *val)
{
	dcr_mpw w;
	dcr_buf_init(&B);
	dcr_mpw_init(&w, &B);
	dcr_mpw_map(&w, 1);
	dcr_mpw_str(&w, key);
	dcr_mpw_str(&w, val);
	return &B;
}

#define R1 "4f1c2a9b000000000000000000000001"
#define R2 "4f1c2a9b000000000000000000000002"
#define R3 "4f1c2a9b000000000000000000000003"
#define R4 "4f1c2a9b000000000000000000000004"


/* rm_describe of an event built against the current state (not applied). */
static char *describe(const dcr_key *k, const char *type, dcr_buf *body)
{
	dcr_buf entry;
	es_event ev;
	dcr_err e;
	dcr_buf_init(&entry);
	DCR_ASSERT(es_event_build(k, ROOM, S.size, T0, type, body->data, body->len, &entry, &e) ==
	           0);
	DCR_ASSERT(es_event_decode(entry.data, entry.len, &ev, &e) == 0);
	char *line = rm_describe(&S, &ev);
	es_event_release(&ev);
	dcr_buf_release(&entry);
	dcr_buf_release(body);
	return line;
}

#define CHECK_LINE(line, want) CHECK_LINE_N((line), (want), SIZE_MAX)
/* The first n bytes of line must equal want (n = SIZE_MAX: all of it). */
#define CHECK_LINE_N(line, want, n)                                                                \
	do {                                                                                       \
		char *l_ = (line);                                                                 \
		if ((n) == SIZE_MAX ? strcmp(l_, (want)) != 0                                      \
		                    : strncmp(l_, (want), strlen(want)) != 0) {                    \
			fprintf(stderr, "%s:%d: line\n  %s\nwanted\n  %s\n", __FILE__, __LINE__,   \
			        l_, (want));                                                       \
			t_failures++;                                                              \
		}                                                                                  \
		free(l_);                                                                          \
	} while (0)

static void test_lifecycle(void)
{
	char *def = t_valid_def(&F);
	char *def2 = t_replace(def, "Customer overlap", "Customer overlap, v2");
	/* in the filtered subset, but SQLite refuses it (abs() takes one
	 * argument): only the admission check knows */
	char *baddef = t_replace(def, "GROUP BY b.city", "GROUP BY b.city HAVING abs() > 0");
	dcr_buf keep;
	dcr_err e;
	dcr_buf_init(&keep);
	rm_state_init(&S, F.daemon_pub);

	/* ---- before the room exists */
	NO(F.anna, RM_EV_SAVED, b_def(def),
	   "seq 0 (room.draft_saved): ", "the room does not exist yet");
	/* SQL that does not compile is refused by the admission check (dcrd,
	 * CLI), not by the rules: replay never depends on SQLite */
	OK(F.anna, RM_EV_CREATED, b_def(baddef));
	rm_state_release(&S);
	rm_state_init(&S, F.daemon_pub);
	NO(F.anna, RM_EV_CREATED, b_raw1("definitio", def), "body: unexpected field \"definitio\"");
	NO(F.daemon, RM_EV_CREATED, b_def(def),
	   "seq 0 (room.created): the daemon cannot create rooms");
	{
		char *ds = dcr_pub_format(F.daemon_pub);
		char *withd = t_replace(def, F.ian_s, ds);
		NO(F.anna, RM_EV_CREATED, b_def(withd),
		   "definition: participants[1].key: is the daemon's key");
		free(withd);
		free(ds);
	}
	{
		snap b = take();
		dcr_buf *body = b_def(def);
		CHECK_FAILS(submit_ex(F.anna, ROOM, 1, RM_EV_CREATED, body, NULL, &e), &e,
		          "seq 1 (room.created): event seq 1 but room has 0 events: replayed or "
		          "out of order");
		dcr_buf_release(body);
		CHECK(same(b, take()));
	}
	CHECK(!rm_may_read_room(&S, F.anna_pub));

	/* ---- create (anna), save */
	CHECK_LINE_N(describe(F.anna, RM_EV_CREATED, b_def(def)),
	             "2026-11-25T12:00:00Z anna@bank.example created the room bank-insurer-overlap "
	             "(definition sha256 ",
	             0);
	OK(F.anna, RM_EV_CREATED, b_def(def));
	CHECK(S.status == RM_DRAFT && memcmp(S.creator, F.anna_pub, 32) == 0);
	CHECK(memcmp(S.room, ROOM, 16) == 0 && strcmp(S.def_json, def) == 0);
	NO(F.anna, RM_EV_CREATED, b_def(def), "seq 1 (room.created): the room already exists");
	NO(F.ian, RM_EV_SAVED, b_def(def2),
	   "seq 1 (room.draft_saved): actor ian@insurer.example is not the creator of the room");
	{
		char *who = dcr_asprintf("actor %s is not a participant of this room", F.carl_s);
		NO(F.carl, RM_EV_SAVED, b_def(def2), who);
		free(who);
	}
	{
		/* a rule of replay: the query must read a dataset or computation */
		char *t = t_replace(def, "FROM overlap", "FROM (SELECT 1 AS n, 'x' AS city)");
		NO(F.anna, RM_EV_SAVED, b_def(t),
		   "definition: computations[1] (\"by_city\"): the query reads no dataset or "
		   "computation of this room");
		free(t);
		/* a participant key that is not a curve point */
		t = t_replace(def, F.ian_s, "ed25519:AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
		NO(F.anna, RM_EV_SAVED, b_def(t), "definition: participants[1].key: not an ed25519");
		free(t);
	}
	NO(F.anna, RM_EV_PROVISIONED, b_prov("bank_customers", 1, 1),
	   "the room is draft; datasets can be provisioned only while it is published");
	NO(F.ian, RM_EV_RUN_REQUESTED, b_run("overlap", R1),
	   "the room is draft; computations can run only while it is published");
	CHECK(rm_may_edit(&S, F.anna_pub) && !rm_may_edit(&S, F.ian_pub));
	uint8_t h1[32];
	memcpy(h1, S.def_sha256, 32);
	{
		uint8_t h[32];
		char hex[65], *want;
		dcr_sha256(def2, strlen(def2), h);
		dcr_hex_encode(h, 32, hex);
		want = dcr_asprintf("2026-11-25T12:00:00Z anna@bank.example saved a draft "
		                    "(definition sha256 %.12s)",
		                    hex);
		CHECK_LINE(describe(F.anna, RM_EV_SAVED, b_def(def2)), want);
		free(want);
	}
	OK(F.anna, RM_EV_SAVED, b_def(def2));
	CHECK(memcmp(h1, S.def_sha256, 32) != 0 && strstr(S.def->description, "v2"));

	/* ---- publish */
	NO(F.anna, RM_EV_PUBLISHED, b_published(h1), "seq 2 (room.published): definition_sha256 ",
	   "does not match the current definition");
	NO(F.ian, RM_EV_PUBLISHED, b_published(S.def_sha256), "is not the creator");
	NO(F.anna, RM_EV_PUBLISHED, b_raw1("definition_sha256", "not binary"),
	   "body.definition_sha256: expected 32 bytes");
	{
		uint8_t h[32];
		memcpy(h, S.def_sha256, 32);
		char hex[65];
		dcr_hex_encode(h, 32, hex);
		char *want = dcr_asprintf("2026-11-25T12:00:00Z anna@bank.example published the "
		                          "room (definition sha256 %.12s)",
		                          hex);
		CHECK_LINE(describe(F.anna, RM_EV_PUBLISHED, b_published(h)), want);
		free(want);
		OK(F.anna, RM_EV_PUBLISHED, b_published(h));
	}
	CHECK(S.status == RM_PUBLISHED);
	/* draft-only actions after publish */
	NO(F.anna, RM_EV_SAVED, b_def(def),
	   "the room is published; the definition can only "
	   "change while draft");
	NO(F.anna, RM_EV_PUBLISHED, b_published(S.def_sha256), "the room is published");
	CHECK(!rm_may_edit(&S, F.anna_pub));

	/* ---- provision */
	NO(F.ian, RM_EV_PROVISIONED, b_prov("bank_customers", 1, 1),
	   "actor ian@insurer.example is not an owner of dataset bank_customers");
	NO(F.carl, RM_EV_PROVISIONED, b_prov("bank_customers", 1, 1), "is not a participant");
	NO(F.daemon, RM_EV_PROVISIONED, b_prov("bank_customers", 1, 1),
	   "actor dcrd is not a participant");
	NO(F.anna, RM_EV_PROVISIONED, b_prov("bank_custom", 1, 1),
	   "no dataset named \"bank_custom\"");
	NO(F.anna, RM_EV_PROVISIONED, b_raw1("dataset", "bank_customers"), "body: missing field");
	CHECK(rm_may_provision(&S, F.anna_pub, "bank_customers"));
	CHECK(!rm_may_provision(&S, F.ian_pub, "bank_customers"));
	CHECK_LINE(describe(F.anna, RM_EV_PROVISIONED, b_prov("bank_customers", 1000, 48213)),
	           "2026-11-25T12:00:00Z anna@bank.example provisioned bank_customers: 1000 rows, "
	           "48213 bytes, sha256 3f3f3f3f3f3f, file data.csv");
	OK(F.anna, RM_EV_PROVISIONED, b_prov("bank_customers", 10, 100));
	CHECK(rm_state_provision(&S, "bank_customers") != NULL);
	CHECK(rm_state_provision(&S, "bank_customers")->rows == 10);

	/* require_provisioned: names the missing dataset, also through by_city */
	NO(F.ian, RM_EV_RUN_REQUESTED, b_run("overlap", R1),
	   "seq 4 (run.requested): computation overlap needs datasets not provisioned: "
	   "insurer_customers");
	NO(F.ian, RM_EV_RUN_REQUESTED, b_run("by_city", R1),
	   "computation by_city needs datasets not provisioned: insurer_customers");
	CHECK(!rm_may_run(&S, F.ian_pub, "overlap"));
	OK(F.ian, RM_EV_PROVISIONED, b_prov("insurer_customers", 20, 200));
	/* a second provision replaces the first */
	OK(F.anna, RM_EV_PROVISIONED, b_prov("bank_customers", 1000, 48213));
	CHECK(S.nprovisions == 2 && rm_state_provision(&S, "bank_customers")->rows == 1000);
	CHECK(rm_state_provision(&S, "bank_customers")->seq == 5);

	/* ---- run */
	CHECK(rm_may_run(&S, F.ian_pub, "overlap") && rm_may_run(&S, F.anna_pub, "overlap"));
	CHECK(!rm_may_run(&S, F.anna_pub, "churn") && !rm_may_run(&S, F.carl_pub, "overlap"));
	/* contracts is not required: summary_r may run without it */
	CHECK(rm_may_run(&S, F.ian_pub, "summary_r"));
	NO(F.anna, RM_EV_RUN_REQUESTED, b_run("churn", R1),
	   "actor anna@bank.example is not an analyst of computation churn");
	NO(F.carl, RM_EV_RUN_REQUESTED, b_run("overlap", R1), "is not a participant");
	NO(F.ian, RM_EV_RUN_REQUESTED, b_run("overlap", "4F1C2A9B000000000000000000000001"),
	   "is not a run id (32 lowercase hex characters)");
	NO(F.ian, RM_EV_RUN_REQUESTED, b_run("nope", R1), "no computation named \"nope\"");
	CHECK_LINE(describe(F.ian, RM_EV_RUN_REQUESTED, b_run("overlap", R1)),
	           "2026-11-25T12:00:00Z ian@insurer.example requested run 4f1c2a9b of overlap");
	OK(F.ian, RM_EV_RUN_REQUESTED, b_run("overlap", R1));
	NO(F.ian, RM_EV_RUN_REQUESTED, b_run("overlap", R1), "run " R1 " already exists");
	CHECK(rm_state_run(&S, R1) && rm_state_run(&S, R1)->state == RM_RUN_QUEUED);
	OK(F.ian, RM_EV_RUN_REQUESTED, b_run("bank_synthetic", R2));
	CHECK(rm_state_last_run(&S, "overlap") == rm_state_run(&S, R1));

	/* ---- completion by the daemon only */
	NO(F.anna, RM_EV_RUN_COMPLETED, b_done("overlap", R1),
	   "seq 8 (run.completed): actor anna@bank.example is not the daemon");
	NO(F.daemon, RM_EV_RUN_COMPLETED, b_done("overlap", R3), "no run " R3 " in this room");
	NO(F.daemon, RM_EV_RUN_COMPLETED, b_done("by_city", R1),
	   "run " R1 " is of computation overlap, not by_city");
	{
		/* the run recorded, at run.requested, every dataset it reads with
		 * the sha256 provisioned then */
		const rm_run *q = rm_state_run(&S, R1);
		CHECK(q && q->ninputs == 2 && strcmp(q->inputs[0].dataset, "bank_customers") == 0 &&
		      strcmp(q->inputs[1].dataset, "insurer_customers") == 0 &&
		      q->inputs[0].present && q->inputs[0].sha256[0] == 0x3f);
		uint8_t other[32];
		memset(other, 0x40, 32);
		/* the old JSON strings are refused */
		RAW(s_json, dcr_mpw_str(w, "[[\"city\",\"string\"],[\"n\",\"integer\"]]"));
		NO(F.daemon, RM_EV_RUN_COMPLETED, b_done_raw("overlap", R1, NULL, &s_json),
		   "body.schema: expected an array");
		RAW(i_json, dcr_mpw_str(w, "{}"));
		NO(F.daemon, RM_EV_RUN_COMPLETED, b_done_raw("overlap", R1, &i_json, NULL),
		   "body.inputs: expected a map");
		/* inputs: exactly the recorded datasets and hashes */
		RAW(i_empty, dcr_mpw_map(w, 0));
		NO(F.daemon, RM_EV_RUN_COMPLETED, b_done_raw("overlap", R1, &i_empty, NULL),
		   "body.inputs: dataset bank_customers is missing (run " R1 " reads it)");
		RAW(i_one, dcr_mpw_map(w, 1); dcr_mpw_str(w, "bank_customers");
		    dcr_mpw_bin(w, q->inputs[0].sha256, 32));
		NO(F.daemon, RM_EV_RUN_COMPLETED, b_done_raw("overlap", R1, &i_one, NULL),
		   "body.inputs: dataset insurer_customers is missing");
		RAW(i_wrong, dcr_mpw_map(w, 2); dcr_mpw_str(w, "bank_customers");
		    dcr_mpw_bin(w, other, 32); dcr_mpw_str(w, "insurer_customers");
		    dcr_mpw_bin(w, q->inputs[1].sha256, 32));
		NO(F.daemon, RM_EV_RUN_COMPLETED, b_done_raw("overlap", R1, &i_wrong, NULL),
		   "body.inputs.bank_customers: sha256 404040404040 is not the one provisioned "
		   "when the run was requested (3f3f3f3f3f3f)");
		RAW(i_nil, dcr_mpw_map(w, 2); dcr_mpw_str(w, "bank_customers"); dcr_mpw_nil(w);
		    dcr_mpw_str(w, "insurer_customers"); dcr_mpw_bin(w, q->inputs[1].sha256, 32));
		NO(F.daemon, RM_EV_RUN_COMPLETED, b_done_raw("overlap", R1, &i_nil, NULL),
		   "body.inputs.bank_customers: expected the 32-byte sha256");
		RAW(i_short, dcr_mpw_map(w, 2); dcr_mpw_str(w, "bank_customers");
		    dcr_mpw_bin(w, other, 31); dcr_mpw_str(w, "insurer_customers");
		    dcr_mpw_bin(w, q->inputs[1].sha256, 32));
		NO(F.daemon, RM_EV_RUN_COMPLETED, b_done_raw("overlap", R1, &i_short, NULL),
		   "body.inputs.bank_customers: expected the 32-byte sha256");
		RAW(i_extra, dcr_mpw_map(w, 3); dcr_mpw_str(w, "bank_customers");
		    dcr_mpw_bin(w, q->inputs[0].sha256, 32); dcr_mpw_str(w, "contracts");
		    dcr_mpw_nil(w); dcr_mpw_str(w, "insurer_customers");
		    dcr_mpw_bin(w, q->inputs[1].sha256, 32));
		NO(F.daemon, RM_EV_RUN_COMPLETED, b_done_raw("overlap", R1, &i_extra, NULL),
		   "body.inputs: \"contracts\" is not a dataset run " R1 " reads");
		/* schema: 1..256 [name, type] pairs, names non-empty and unique
		 * case-insensitively, types from the column vocabulary */
		RAW(s_empty, dcr_mpw_array(w, 0));
		NO(F.daemon, RM_EV_RUN_COMPLETED, b_done_raw("overlap", R1, NULL, &s_empty),
		   "body.schema: 0 columns; 1 to 256 allowed");
		static const rm_run_col dup[] = {{"n", CMP_STRING}, {"N", CMP_INTEGER}};
		NO(F.daemon, RM_EV_RUN_COMPLETED, b_done_ex("overlap", R1, dup, 2, NULL, 0),
		   "body.schema[1]: column name \"N\" is already schema[0]");
		static const rm_run_col noname[] = {{"", CMP_STRING}};
		NO(F.daemon, RM_EV_RUN_COMPLETED, b_done_ex("overlap", R1, noname, 1, NULL, 0),
		   "body.schema[0]: a column name has 1 to 1024 bytes");
		RAW(s_type, dcr_mpw_array(w, 1); dcr_mpw_array(w, 2); dcr_mpw_str(w, "n");
		    dcr_mpw_str(w, "int"));
		NO(F.daemon, RM_EV_RUN_COMPLETED, b_done_raw("overlap", R1, NULL, &s_type),
		   "body.schema[0]: type must be");
		RAW(s_three, dcr_mpw_array(w, 1); dcr_mpw_array(w, 3); dcr_mpw_str(w, "n");
		    dcr_mpw_str(w, "integer"); dcr_mpw_str(w, "x"));
		NO(F.daemon, RM_EV_RUN_COMPLETED, b_done_raw("overlap", R1, NULL, &s_three),
		   "body.schema[0]: expected [name, type]");
		/* the hand-written body is the daemon's when nothing is replaced */
		dcr_buf *hand = b_done_raw("overlap", R1, NULL, NULL);
		dcr_buf mine = *hand;
		b_done("overlap", R1);
		CHECK(B.len == mine.len && memcmp(B.data, mine.data, B.len) == 0);
		dcr_buf_release(&B);
		dcr_buf_release(&mine);
		dcr_buf_release(&s_json);
		dcr_buf_release(&i_json);
		dcr_buf_release(&i_empty);
		dcr_buf_release(&i_one);
		dcr_buf_release(&i_wrong);
		dcr_buf_release(&i_nil);
		dcr_buf_release(&i_short);
		dcr_buf_release(&i_extra);
		dcr_buf_release(&s_empty);
		dcr_buf_release(&s_type);
		dcr_buf_release(&s_three);
	}
	NO(F.daemon, RM_EV_RUN_FAILED, b_raw1("run", R1), "body: missing field");
	CHECK_LINE(describe(F.daemon, RM_EV_RUN_COMPLETED, b_done("overlap", R1)),
	           "2026-11-25T12:00:00Z dcrd completed run 4f1c2a9b of overlap: 12 rows, 3 "
	           "suppressed");
	/* retrieving before completion */
	NO(F.ian, RM_EV_RETRIEVED, b_retrieved(R1), "run " R1 " has not finished");
	/* provisioned again after the request: the run still reports the
	 * data provisioned when it was requested */
	OK(F.anna, RM_EV_PROVISIONED, b_prov_sha("bank_customers", 1000, 48213, 0x41));
	{
		uint8_t now[32];
		memset(now, 0x41, 32);
		const rm_run *q = rm_state_run(&S, R1);
		RAW(i_now, dcr_mpw_map(w, 2); dcr_mpw_str(w, "bank_customers");
		    dcr_mpw_bin(w, now, 32); dcr_mpw_str(w, "insurer_customers");
		    dcr_mpw_bin(w, q->inputs[1].sha256, 32));
		NO(F.daemon, RM_EV_RUN_COMPLETED, b_done_raw("overlap", R1, &i_now, NULL),
		   "body.inputs.bank_customers: sha256 414141414141 is not the one provisioned");
		dcr_buf_release(&i_now);
	}
	OK(F.daemon, RM_EV_RUN_COMPLETED, b_done("overlap", R1));
	{
		const rm_run *r = rm_state_run(&S, R1);
		CHECK(r && r->state == RM_RUN_DONE && r->rows == 12 && r->suppressed == 3);
		CHECK(r && r->ncols == 2 && strcmp(r->cols[0].name, "city") == 0 &&
		      r->cols[1].type == CMP_INTEGER && r->result_sha256[0] == 0xab);
	}
	NO(F.daemon, RM_EV_RUN_COMPLETED, b_done("overlap", R1),
	   "run " R1 " has already completed");
	NO(F.daemon, RM_EV_RUN_FAILED, b_failed("overlap", R1, "sql error"),
	   "has already completed");
	/* A run's error is a data-free class, never a message that could
	 * quote a value (issue 10: the JSON path error leak). */
	NO(F.daemon, RM_EV_RUN_FAILED,
	   b_failed("bank_synthetic", R2, "JSON path error near 'victim@x=987654.32'"),
	   "not one of the data-free error classes");
	NO(F.daemon, RM_EV_RUN_FAILED, b_failed("bank_synthetic", R2, "not supported yet"),
	   "not one of the data-free error classes");
	CHECK_LINE(describe(F.daemon, RM_EV_RUN_FAILED,
	                    b_failed("bank_synthetic", R2, "not supported")),
	           "2026-11-25T12:00:00Z dcrd failed run 4f1c2a9b of bank_synthetic: not "
	           "supported");
	OK(F.daemon, RM_EV_RUN_FAILED, b_failed("bank_synthetic", R2, "not supported"));
	CHECK(strcmp(rm_state_run(&S, R2)->error, "not supported") == 0);

	/* ---- retrieve */
	NO(F.carl, RM_EV_RETRIEVED, b_retrieved(R1), "is not a participant");
	NO(F.ian, RM_EV_RETRIEVED, b_retrieved(R2), "run " R2 " has failed");
	NO(F.anna, RM_EV_RETRIEVED, b_retrieved(R2),
	   "actor anna@bank.example is not an analyst of computation bank_synthetic");
	NO(F.ian, RM_EV_RETRIEVED, b_retrieved(R4), "no run " R4);
	CHECK_LINE(
	    describe(F.ian, RM_EV_RETRIEVED, b_retrieved(R1)),
	    "2026-11-25T12:00:00Z ian@insurer.example retrieved the result of run 4f1c2a9b of "
	    "overlap");
	OK(F.ian, RM_EV_RETRIEVED, b_retrieved(R1));
	OK(F.anna, RM_EV_RETRIEVED, b_retrieved(R1)); /* anna is an analyst of overlap too */
	CHECK(rm_state_run(&S, R1)->retrieved == 2);
	CHECK(rm_check_retrieve(&S, F.ian_pub, R1, NULL) == 0);

	/* ---- read predicates */
	CHECK(rm_may_read_room(&S, F.anna_pub) && rm_may_read_room(&S, F.ian_pub));
	CHECK(!rm_may_read_room(&S, F.carl_pub) && !rm_may_read_room(&S, F.daemon_pub));
	CHECK(rm_may_read_stats(&S, F.anna_pub, "bank_customers"));
	CHECK(!rm_may_read_stats(&S, F.ian_pub, "bank_customers"));    /* not shared */
	CHECK(rm_may_read_stats(&S, F.anna_pub, "insurer_customers")); /* shared */
	CHECK(!rm_may_read_stats(&S, F.carl_pub, "insurer_customers"));
	CHECK(!rm_may_read_stats(&S, F.anna_pub, "nope"));
	CHECK(rm_may_read_data(&S, F.anna_pub, "bank_customers"));
	CHECK(!rm_may_read_data(&S, F.ian_pub, "bank_customers"));
	CHECK(rm_may_read_result(&S, F.ian_pub, "churn") &&
	      !rm_may_read_result(&S, F.anna_pub, "churn"));
	CHECK(!rm_may_read_result(&S, F.carl_pub, "overlap"));

	/* ---- replay, wrong room, unknown type */
	{
		dcr_buf *body = b_run("overlap", R3);
		CHECK(submit_ex(F.ian, ROOM, UINT64_MAX, RM_EV_RUN_REQUESTED, body, &keep, &e) ==
		      0);
		dcr_buf_release(body);
		snap b = take();
		CHECK_FAILS(replay_entry(&S, keep.data, keep.len, &e), &e,
		          "seq 13 (run.requested): event seq 13 but room has 14 events: replayed "
		          "or out of order");
		CHECK(same(b, take()));
		body = b_run("overlap", R4);
		CHECK_FAILS(
		    submit_ex(F.ian, OTHER_ROOM, UINT64_MAX, RM_EV_RUN_REQUESTED, body, NULL, &e),
		    &e, "seq 14 (run.requested): event is for room ");
		dcr_buf_release(body);
		CHECK(same(b, take()));
	}
	CHECK_LINE(describe(F.anna, "room.renamed", b_raw1("name", "x")),
	           "2026-11-25T12:00:00Z anna@bank.example sent an event of unknown type "
	           "room.renamed");
	NO(F.anna, "room.renamed", b_raw1("name", "x"),
	   "seq 14 (room.renamed): unknown event type");

	/* ---- deprovision */
	NO(F.ian, RM_EV_DEPROVISIONED, b_deprov("bank_customers"),
	   "is not an owner of dataset "
	   "bank_customers");
	CHECK_LINE(describe(F.anna, RM_EV_DEPROVISIONED, b_deprov("bank_customers")),
	           "2026-11-25T12:00:00Z anna@bank.example deprovisioned bank_customers");
	OK(F.anna, RM_EV_DEPROVISIONED, b_deprov("bank_customers"));
	CHECK(rm_state_provision(&S, "bank_customers") == NULL && S.nprovisions == 2);
	NO(F.anna, RM_EV_DEPROVISIONED, b_deprov("bank_customers"),
	   "dataset bank_customers is not provisioned");
	NO(F.ian, RM_EV_RUN_REQUESTED, b_run("overlap", R4),
	   "computation overlap needs datasets not provisioned: bank_customers");

	/* ---- stop */
	NO(F.ian, RM_EV_STOPPED, b_stopped("done"), "is not the creator");
	OK(F.anna, RM_EV_STOPPED, b_stopped("study finished"));
	CHECK(S.status == RM_STOPPED && strcmp(S.stop_reason, "study finished") == 0);
	NO(F.anna, RM_EV_STOPPED, b_stopped("again"), "the room is already stopped");
	NO(F.anna, RM_EV_PROVISIONED, b_prov("bank_customers", 1, 1),
	   "the room is stopped; datasets can be provisioned only while it is published");
	NO(F.ian, RM_EV_RUN_REQUESTED, b_run("overlap", R4), "the room is stopped");
	NO(F.ian, RM_EV_RETRIEVED, b_retrieved(R1), "the room is stopped");
	NO(F.anna, RM_EV_SAVED, b_def(def), "the room is stopped");
	CHECK(!rm_may_provision(&S, F.anna_pub, "bank_customers"));
	/* the daemon may still report the run queued before the stop */
	NO(F.anna, RM_EV_RUN_FAILED, b_failed("overlap", R3, "internal error"), "is not the daemon");
	OK(F.daemon, RM_EV_RUN_FAILED, b_failed("overlap", R3, "internal error"));
	CHECK(rm_state_run(&S, R3)->state == RM_RUN_FAILED);
	{
		char *l = describe(F.carl, RM_EV_STOPPED, b_stopped("line\nbreak"));
		char *want = dcr_asprintf("2026-11-25T12:00:00Z %.20s stopped the room: line break",
		                          F.carl_s);
		CHECK_LINE(l, want);
		free(want);
	}
	dcr_buf_release(&keep);
	free(def);
	free(def2);
	free(baddef);
}

/* A before hook: sees the state before the event; refuses room.stopped. */
static int before_hook(void *ctx, const rm_state *before, const es_event *ev, dcr_err *err)
{
	uint64_t *sizes = ctx;
	sizes[before->size] = before->size + 1;
	if (strcmp(ev->type, RM_EV_STOPPED) == 0)
		return dcr_err_set(err, DCR_EDENIED, "the hook says no");
	return 0;
}

/* Same lifecycle prefix again, replayed from stored entries with
 * rm_replay_step, a hook before each event, and a tampered signature. */
static void test_replay_entries(void)
{
	char *def = t_valid_def(&F);
	dcr_buf log[3], body;
	dcr_err e;
	rm_state s2;
	for (int i = 0; i < 3; i++)
		dcr_buf_init(&log[i]);
	rm_state_release(&S);
	rm_state_init(&S, F.daemon_pub);
	dcr_buf_init(&body);
	rm_body_definition(&body, def);
	CHECK(submit_ex(F.anna, ROOM, 0, RM_EV_CREATED, &body, &log[0], &e) == 0);
	dcr_buf_reset(&body);
	rm_body_published(&body, S.def_sha256);
	CHECK(submit_ex(F.anna, ROOM, 1, RM_EV_PUBLISHED, &body, &log[1], &e) == 0);
	dcr_buf_reset(&body);
	rm_body_stopped(&body, "bye");
	CHECK(submit_ex(F.anna, ROOM, 2, RM_EV_STOPPED, &body, &log[2], &e) == 0);

	rm_state_init(&s2, F.daemon_pub);
	for (int i = 0; i < 3; i++)
		CHECK(replay_entry(&s2, log[i].data, log[i].len, &e) == 0);
	CHECK(s2.size == 3 && s2.status == RM_STOPPED &&
	      memcmp(s2.def_sha256, S.def_sha256, 32) == 0);
	rm_state_release(&s2);

	rm_state_init(&s2, F.daemon_pub);
	CHECK(replay_entry(&s2, log[0].data, log[0].len, &e) == 0);
	log[1].data[log[1].len - 1] ^= 1; /* signature */
	CHECK_FAILS(replay_entry(&s2, log[1].data, log[1].len, &e), &e, "seq 1 (room.published)");
	CHECK(s2.size == 1 && s2.status == RM_DRAFT);
	CHECK_FAILS(replay_entry(&s2, "\x01\x02", 2, &e), &e, "seq 1: ");
	{
		/* where and why, apart: nothing parses a message */
		rm_step st;
		CHECK(rm_replay_step(&s2, log[1].data, log[1].len, NULL, NULL, &st) == DCR_ESIG);
		CHECK(st.seq == 1 && strcmp(st.type, RM_EV_PUBLISHED) == 0);
		CHECK(st.reason.code == DCR_ESIG && strncmp(st.reason.msg, "seq ", 4) != 0 &&
		      strstr(st.reason.msg, "signature does not verify") != NULL);
		CHECK(rm_replay_step(&s2, "\x01\x02", 2, NULL, NULL, &st) < 0);
		CHECK(st.seq == 1 && st.type[0] == '\0' && st.reason.code < 0);
		CHECK(s2.size == 1 && s2.status == RM_DRAFT);
	}
	rm_state_release(&s2);

	log[1].data[log[1].len - 1] ^= 1; /* the signature again */
	{
		uint64_t sizes[3] = {0, 0, 0};
		rm_step st;
		rm_state_init(&s2, F.daemon_pub);
		for (int i = 0; i < 2; i++)
			CHECK(rm_replay_step(&s2, log[i].data, log[i].len, before_hook, sizes, &st) ==
			      0);
		CHECK(rm_replay_step(&s2, log[2].data, log[2].len, before_hook, sizes, &st) ==
		      DCR_EDENIED);
		CHECK(st.seq == 2 && strcmp(st.type, RM_EV_STOPPED) == 0 &&
		      strcmp(st.reason.msg, "the hook says no") == 0);
		CHECK(sizes[0] == 1 && sizes[1] == 2 && sizes[2] == 3);
		CHECK(s2.size == 2 && s2.status == RM_PUBLISHED);
		rm_state_release(&s2);
	}

	for (int i = 0; i < 3; i++)
		dcr_buf_release(&log[i]);
	dcr_buf_release(&body);
	free(def);
}

/* A creator who is not a participant: may edit, publish and stop, read the
 * room, but has no data roles. A draft may be stopped directly. */
static void test_outside_creator(void)
{
	char *def = t_valid_def(&F);
	rm_state_release(&S);
	rm_state_init(&S, F.daemon_pub);
	OK(F.carl, RM_EV_CREATED, b_def(def));
	CHECK(rm_may_read_room(&S, F.carl_pub) && rm_may_edit(&S, F.carl_pub));
	/* shared statistics are for every participant, and the creator is one */
	CHECK(rm_may_read_stats(&S, F.carl_pub, "insurer_customers"));
	CHECK(!rm_may_read_stats(&S, F.carl_pub, "bank_customers"));
	CHECK(!rm_may_read_data(&S, F.carl_pub, "bank_customers"));
	OK(F.carl, RM_EV_SAVED, b_def(def));
	NO(F.anna, RM_EV_STOPPED, b_stopped("no"),
	   "actor anna@bank.example is not the creator of the room");
	OK(F.carl, RM_EV_STOPPED, b_stopped("never mind"));
	CHECK(S.status == RM_STOPPED);
	NO(F.carl, RM_EV_PUBLISHED, b_published(S.def_sha256), "the room is stopped");
	rm_state_release(&S);

	rm_state_init(&S, F.daemon_pub);
	OK(F.carl, RM_EV_CREATED, b_def(def));
	OK(F.carl, RM_EV_PUBLISHED, b_published(S.def_sha256));
	NO(F.carl, RM_EV_PROVISIONED, b_prov("bank_customers", 1, 1),
	   "is not an owner of dataset bank_customers");
	NO(F.carl, RM_EV_RUN_REQUESTED, b_run("overlap", R1),
	   "is not an analyst of computation overlap");
	free(def);
}

/* Many runs: exercises the run index growing; every run stays findable. */
static void test_many_runs(void)
{
	char *def = t_valid_def(&F);
	char id[33];
	dcr_err e;
	rm_state_release(&S);
	rm_state_init(&S, F.daemon_pub);
	OK(F.anna, RM_EV_CREATED, b_def(def));
	OK(F.anna, RM_EV_PUBLISHED, b_published(S.def_sha256));
	OK(F.anna, RM_EV_PROVISIONED, b_prov("bank_customers", 1, 1));
	OK(F.ian, RM_EV_PROVISIONED, b_prov("insurer_customers", 1, 1));
	for (unsigned i = 0; i < 600; i++) {
		snprintf(id, sizeof id, "%032x", i * 2654435761u);
		dcr_buf *b = b_run("overlap", id);
		if (submit_ex(F.ian, ROOM, UINT64_MAX, RM_EV_RUN_REQUESTED, b, NULL, &e) != 0) {
			fprintf(stderr, "run %u: %s\n", i, e.msg);
			t_failures++;
		}
		dcr_buf_release(b);
	}
	CHECK(S.nruns == 600);
	for (unsigned i = 0; i < 600; i++) {
		snprintf(id, sizeof id, "%032x", i * 2654435761u);
		const rm_run *r = rm_state_run(&S, id);
		CHECK(r && strcmp(r->id, id) == 0);
	}
	CHECK(rm_state_run(&S, "ffffffffffffffffffffffffffffffff") == NULL);
	free(def);
}

/* ---- the differential-privacy budget ledger ------------------------------- */

static const char dp_def_template[] =
    "{\"format\": \"dcr.room/1\", \"name\": \"dp-room\",\n"
    " \"participants\": [\n"
    "  {\"email\": \"anna@bank.example\", \"key\": \"@ANNA@\",\n"
    "   \"owner_of\": [\"bank\", \"other\", \"public\"]},\n"
    "  {\"email\": \"ian@insurer.example\", \"key\": \"@IAN@\",\n"
    "   \"analyst_of\": [\"avg_balance\", \"bank_n\", \"other_n\", \"plain\"]}],\n"
    " \"datasets\": [\n"
    "  {\"name\": \"bank\", \"epsilon_budget\": \"2\", \"columns\": [\n"
    "    {\"name\": \"city\", \"type\": \"string\", \"allow\": [\"group\"]},\n"
    "    {\"name\": \"balance\", \"type\": \"float\", \"allow\": [\"aggregate\"]}]},\n"
    "  {\"name\": \"other\", \"epsilon_budget\": \"1.5\", \"columns\": [\n"
    "    {\"name\": \"x\", \"type\": \"integer\"}]},\n"
    "  {\"name\": \"public\", \"columns\": [{\"name\": \"y\", \"type\": \"integer\"}]}],\n"
    " \"computations\": [\n"
    "  {\"name\": \"avg_balance\", \"kind\": \"sql\",\n"
    "   \"privacy\": {\"epsilon\": \"0.75\", \"bounds\": {\"balance\": [\"0\", \"1000.50\"]}},\n"
    "   \"query\": \"SELECT AVG(balance) AS a FROM bank\"},\n"
    "  {\"name\": \"bank_n\", \"kind\": \"sql\", \"privacy\": {\"epsilon\": \"0.5\"},\n"
    "   \"query\": \"SELECT COUNT(*) AS n FROM bank WHERE city = 'Bern'\"},\n"
    "  {\"name\": \"other_n\", \"kind\": \"sql\", \"privacy\": {\"epsilon\": \"0.5\"},\n"
    "   \"query\": \"SELECT COUNT(*) AS n FROM other\"},\n"
    "  {\"name\": \"plain\", \"kind\": \"sql\", \"query\": \"SELECT COUNT(*) AS n FROM public\"}]}\n";

static char *dp_def(void)
{
	char *a = t_replace(dp_def_template, "@ANNA@", F.anna_s);
	return t_edit(a, "@IAN@", F.ian_s);
}

static dcr_buf *b_run_eps(const char *comp, const char *eps, const char *id)
{
	dcr_buf_init(&B);
	rm_body_run_requested_eps(&B, comp, eps, id);
	return &B;
}

static char *describe_dp(const char *type, const dcr_buf *body, const dcr_key *k)
{
	dcr_buf entry;
	es_event ev;
	dcr_err e;
	dcr_buf_init(&entry);
	DCR_ASSERT(es_event_build(k, ROOM, S.size, T0, type, body->data, body->len, &entry, &e) ==
	           0);
	DCR_ASSERT(es_event_decode(entry.data, entry.len, &ev, &e) == 0);
	char *line = rm_describe(&S, &ev);
	es_event_release(&ev);
	dcr_buf_release(&entry);
	return line;
}

/* run.completed / run.failed of python and r computations: the script
 * fields (files, logs), the declared schema, the logs policy. */
static dcr_buf *b_script_done(const char *comp, const char *id, const rm_run_col *cols,
                              size_t ncols, uint64_t rows)
{
	const rm_run *q = rm_state_run(&S, id);
	rm_run r = {.id = (char *)id,
	            .computation = (char *)comp,
	            .result_blob = "res-2",
	            .rows = rows,
	            .result_bytes = 40,
	            .files = 2,
	            .logs_blob = "logs-2",
	            .cols = (rm_run_col *)cols,
	            .ncols = ncols};
	if (q) {
		r.inputs = q->inputs;
		r.ninputs = q->ninputs;
	}
	memset(r.result_sha256, 0xcd, 32);
	memset(r.logs_sha256, 0xef, 32);
	dcr_buf_init(&B);
	rm_body_run_completed_script(&B, &r);
	return &B;
}

static void test_script_runs(void)
{
	char *def = t_valid_def(&F);
	def = t_edit(def, "\"script\": \"print(1)\\n\"}",
	             "\"script\": \"print(1)\\n\", \"logs\": \"on_error\", \"columns\": "
	             "[{\"name\": \"city\", \"type\": \"string\"}, {\"name\": \"score\", "
	             "\"type\": \"float\"}]}");
	static const rm_run_col good[] = {{"city", CMP_STRING}, {"score", CMP_FLOAT}};
	static const rm_run_col bad[] = {{"city", CMP_STRING}, {"score", CMP_INTEGER}};
	dcr_err e_glob;
	rm_state_release(&S);
	rm_state_init(&S, F.daemon_pub);
	OK(F.anna, RM_EV_CREATED, b_def(def));
	OK(F.anna, RM_EV_PUBLISHED, b_published(S.def_sha256));
	OK(F.anna, RM_EV_PROVISIONED, b_prov("bank_customers", 10, 100));
	OK(F.ian, RM_EV_PROVISIONED, b_prov("insurer_customers", 10, 100));
	OK(F.ian, RM_EV_RUN_REQUESTED, b_run("churn", R1));
	OK(F.ian, RM_EV_RUN_REQUESTED, b_run("churn", R2));
	OK(F.ian, RM_EV_RUN_REQUESTED, b_run("summary_r", R3));
	OK(F.ian, RM_EV_RUN_REQUESTED, b_run("overlap", R4));
	/* a script's body needs the script fields; an sql one may not have them */
	NO(F.daemon, RM_EV_RUN_COMPLETED, b_done_ex("churn", R1, good, 2, NULL, 0),
	   "body: missing field \"files\"");
	NO(F.daemon, RM_EV_RUN_COMPLETED, b_script_done("overlap", R4, COLS, 2, 12),
	   "body: unexpected field \"files\"");
	/* the schema is the declared columns, exactly */
	NO(F.daemon, RM_EV_RUN_COMPLETED, b_script_done("churn", R1, bad, 2, 5),
	   "body.schema: not the columns computation churn declares");
	NO(F.daemon, RM_EV_RUN_COMPLETED, b_script_done("churn", R1, good, 1, 5),
	   "body.schema: not the columns computation churn declares");
	/* summary_r declares none: empty schema, no rows */
	NO(F.daemon, RM_EV_RUN_COMPLETED, b_script_done("summary_r", R3, good, 2, 0),
	   "body.schema: must be empty");
	NO(F.daemon, RM_EV_RUN_COMPLETED, b_script_done("summary_r", R3, NULL, 0, 4),
	   "body.rows: must be 0");
	OK(F.daemon, RM_EV_RUN_COMPLETED, b_script_done("churn", R1, good, 2, 5));
	{
		const rm_run *r = rm_state_run(&S, R1);
		CHECK(r && r->files == 2 && r->logs_blob && strcmp(r->logs_blob, "logs-2") == 0 &&
		      r->logs_sha256[0] == 0xef && r->rows == 5 && r->ncols == 2);
	}
	OK(F.daemon, RM_EV_RUN_COMPLETED, b_script_done("summary_r", R3, NULL, 0, 0));
	/* logs: on_error shows a failed run's only; summary_r says never */
	CHECK_FAILS(rm_check_read_logs(&S, F.ian_pub, R1, &e_glob), &e_glob,
	            "shown only for a failed run");
	CHECK_FAILS(rm_check_read_logs(&S, F.ian_pub, R3, &e_glob), &e_glob, "never shown");
	CHECK_FAILS(rm_check_read_logs(&S, F.anna_pub, R1, &e_glob), &e_glob,
	            "may not read the logs");
	CHECK_FAILS(rm_check_read_logs(&S, F.ian_pub, R4, &e_glob), &e_glob,
	            "only python and r runs have logs");
	/* run.failed: the logs both or neither, and only for a script */
	{
		uint8_t h[32];
		memset(h, 0x11, 32);
		dcr_buf_init(&B);
		rm_body_run_failed_logs(&B, R4, "overlap", "sql error", "logs-4", h);
		NO(F.daemon, RM_EV_RUN_FAILED, &B, "body: unexpected field \"logs_blob\"");
		dcr_buf_init(&B);
		rm_body_run_failed_logs(&B, R2, "churn", "script error", "", h);
		NO(F.daemon, RM_EV_RUN_FAILED, &B, "body.logs_blob: empty blob id");
		dcr_buf_init(&B);
		rm_body_run_failed_logs(&B, R2, "churn", "what the script printed", "logs-3", h);
		NO(F.daemon, RM_EV_RUN_FAILED, &B, "not one of the data-free error classes");
		dcr_buf_init(&B);
		rm_body_run_failed_logs(&B, R2, "churn", "script error", "logs-3", h);
		OK(F.daemon, RM_EV_RUN_FAILED, &B);
	}
	CHECK(rm_check_read_logs(&S, F.ian_pub, R2, NULL) == 0);
	OK(F.daemon, RM_EV_RUN_FAILED, b_failed("overlap", R4, "sql error"));
	free(def);
	rm_state_release(&S);
	rm_state_init(&S, F.daemon_pub);
}

static void test_dp_ledger(void)
{
	char *def = dp_def();
	dcr_buf keep, log;
	dcr_err e;
	dcr_buf_init(&keep);
	dcr_buf_init(&log);
	rm_state_release(&S);
	rm_state_init(&S, F.daemon_pub);
#define KEEP(k, type, body)                                                                        \
	do {                                                                                       \
		dcr_buf *b_ = (body);                                                              \
		int rc_ = submit_ex((k), ROOM, UINT64_MAX, (type), b_, &keep, &e);                 \
		if (rc_) {                                                                         \
			fprintf(stderr, "%s:%d: %s rejected: %s\n", __FILE__, __LINE__, (type),    \
			        e.msg);                                                            \
			t_failures++;                                                              \
		}                                                                                  \
		uint32_t n_ = (uint32_t)keep.len;                                                  \
		dcr_buf_append(&log, &n_, 4);                                                      \
		dcr_buf_append(&log, keep.data, keep.len);                                         \
		dcr_buf_release(b_);                                                               \
	} while (0)
	KEEP(F.anna, RM_EV_CREATED, b_def(def));
	CHECK(S.def->datasets[0].epsilon_budget == 2000000);
	CHECK(S.def->datasets[1].epsilon_budget == 1500000);
	CHECK(S.def->datasets[2].epsilon_budget == 0);
	CHECK(S.def->computations[0].dp_epsilon == 750000);
	CHECK(S.def->computations[0].ndp_bounds == 1 && S.def->computations[0].dp_bounds[0].lo == 0 &&
	      S.def->computations[0].dp_bounds[0].hi == 100050 &&
	      S.def->computations[0].dp_bounds[0].decimals == 2);
	/* no spending before publication */
	NO(F.ian, RM_EV_RUN_REQUESTED, b_run_eps("avg_balance", "0.75", R1), "published");
	KEEP(F.anna, RM_EV_PUBLISHED, b_published(S.def_sha256));
	KEEP(F.anna, RM_EV_PROVISIONED, b_prov("bank", 10, 100));
	KEEP(F.anna, RM_EV_PROVISIONED, b_prov("other", 10, 100));
	KEEP(F.anna, RM_EV_PROVISIONED, b_prov("public", 10, 100));

	/* the request states the epsilon it spends, exactly */
	NO(F.ian, RM_EV_RUN_REQUESTED, b_run("avg_balance", R1),
	   "body: missing field \"epsilon\" (computation avg_balance is differentially private",
	   "\"0.75\"");
	NO(F.ian, RM_EV_RUN_REQUESTED, b_run_eps("avg_balance", "0.750", R1),
	   "body.epsilon: \"0.750\" but computation avg_balance spends \"0.75\"");
	NO(F.ian, RM_EV_RUN_REQUESTED, b_run_eps("avg_balance", "0.5", R1),
	   "body.epsilon: \"0.5\" but computation avg_balance spends \"0.75\"");
	NO(F.ian, RM_EV_RUN_REQUESTED, b_run_eps("plain", "0.5", R1),
	   "body: unexpected field \"epsilon\" (computation plain is not differentially private)");
	CHECK(rm_state_epsilon_spent(&S, "bank") == 0);
	{
		dcr_buf *b = b_run_eps("avg_balance", "0.75", R1);
		char *line = describe_dp(RM_EV_RUN_REQUESTED, b, F.ian);
		CHECK(strstr(line, "requested run 4f1c2a9b of avg_balance, spending epsilon 0.75 "
		                   "(bank: 0.75 of 2 spent)") != NULL);
		free(line);
		dcr_buf_release(b);
	}

	/* spend until the budget of bank is exactly used up */
	KEEP(F.ian, RM_EV_RUN_REQUESTED, b_run_eps("avg_balance", "0.75", R1));
	CHECK(rm_state_epsilon_spent(&S, "bank") == 750000);
	CHECK(rm_state_run(&S, R1)->epsilon == 750000);
	/* charged at request: a failed run keeps what it spent */
	KEEP(F.daemon, RM_EV_RUN_FAILED, b_failed("avg_balance", R1, "time limit"));
	CHECK(rm_state_epsilon_spent(&S, "bank") == 750000);
	KEEP(F.ian, RM_EV_RUN_REQUESTED, b_run_eps("bank_n", "0.5", R2));
	CHECK(rm_state_epsilon_spent(&S, "bank") == 1250000);
	CHECK(rm_state_epsilon_spent(&S, "other") == 0);
	KEEP(F.ian, RM_EV_RUN_REQUESTED,
	     b_run_eps("other_n", "0.5", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"));
	CHECK(rm_state_epsilon_spent(&S, "bank") == 1250000);
	CHECK(rm_state_epsilon_spent(&S, "other") == 500000);
	CHECK(rm_state_epsilon_spent(&S, "public") == 0);
	/* non-DP runs spend nothing */
	KEEP(F.ian, RM_EV_RUN_REQUESTED, b_run("plain", "cccccccccccccccccccccccccccccccc"));
	CHECK(rm_state_epsilon_spent(&S, "bank") == 1250000);
	CHECK(rm_state_run(&S, "cccccccccccccccccccccccccccccccc")->epsilon == 0);
	KEEP(F.ian, RM_EV_RUN_REQUESTED,
	     b_run_eps("avg_balance", "0.75", "dddddddddddddddddddddddddddddddd"));
	CHECK(rm_state_epsilon_spent(&S, "bank") == 2000000); /* = the budget: allowed */
	CHECK(rm_may_run(&S, F.ian_pub, "plain"));
	CHECK(!rm_may_run(&S, F.ian_pub, "bank_n"));
	CHECK(rm_may_run(&S, F.ian_pub, "other_n"));
	CHECK_FAILS(rm_check_run(&S, F.ian_pub, "avg_balance", &e), &e,
	          "computation avg_balance would spend epsilon 0.75 on dataset bank, which has "
	          "spent 2 of its budget 2 (0 left)");

	/* the next is refused, naming dataset, budget, spent and asked */
	NO(F.ian, RM_EV_RUN_REQUESTED,
	   b_run_eps("bank_n", "0.5", "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"),
	   "seq 11 (run.requested): computation bank_n would spend epsilon 0.5 on dataset bank, "
	   "which has spent 2 of its budget 2 (0 left)");
	/* other datasets keep their own budget: other has 1 left, spend it exactly */
	KEEP(F.ian, RM_EV_RUN_REQUESTED,
	     b_run_eps("other_n", "0.5", "abababababababababababababababab"));
	KEEP(F.ian, RM_EV_RUN_REQUESTED,
	     b_run_eps("other_n", "0.5", "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"));
	CHECK(rm_state_epsilon_spent(&S, "other") == 1500000);
	NO(F.ian, RM_EV_RUN_REQUESTED,
	   b_run_eps("other_n", "0.5", "efefefefefefefefefefefefefefefef"),
	   "computation other_n would spend epsilon 0.5 on dataset other, which has spent 1.5 "
	   "of its budget 1.5 (0 left)");
	CHECK(rm_state_run(&S, "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee") == NULL);
	KEEP(F.ian, RM_EV_RUN_REQUESTED, b_run("plain", "ffffffffffffffffffffffffffffffff"));

	/* replay of the stored entries gives the same ledger */
	rm_state s2;
	rm_state_init(&s2, F.daemon_pub);
	size_t off = 0;
	while (off < log.len) {
		uint32_t n;
		memcpy(&n, log.data + off, 4);
		CHECK(replay_entry(&s2, log.data + off + 4, n, &e) == 0);
		off += 4 + n;
	}
	CHECK(s2.size == S.size);
	CHECK(rm_state_epsilon_spent(&s2, "bank") == 2000000);
	CHECK(rm_state_epsilon_spent(&s2, "other") == 1500000);
	CHECK(rm_state_epsilon_spent(&s2, "public") == 0);
	rm_state_release(&s2);
#undef KEEP
	dcr_buf_release(&keep);
	dcr_buf_release(&log);
	free(def);
}

/* Definition rules for the DP fields (docs/room-format.md). */
static void test_dp_definition(void)
{
	char *def = dp_def();
	static const struct {
		const char *from, *to, *needle;
	} bad[] = {
	    {"\"epsilon\": \"0.75\"", "\"epsilon\": 0.75",
	     "computations[0].privacy.epsilon: write it as a decimal string"},
	    {"\"epsilon\": \"0.75\"", "\"epsilon\": \"0\"",
	     "computations[0].privacy.epsilon: expected a decimal string greater than 0"},
	    {"\"epsilon\": \"0.75\"", "\"epsilon\": \"0.0000001\"",
	     "at most 6 digits after the point"},
	    {"\"epsilon\": \"0.75\"", "\"epsilon\": \"100.5\"", "100.5 is more than the maximum, 100"},
	    {"\"epsilon\": \"0.75\"", "\"epsilon\": \"1e-3\"", "expected a decimal string"},
	    {"\"epsilon_budget\": \"2\"", "\"epsilon_budget\": \"-2\"",
	     "datasets[0].epsilon_budget: expected a decimal string greater than 0"},
	    {"\"epsilon_budget\": \"2\", ", "",
	     "computations[0] (\"avg_balance\"): reads dataset bank, which has no epsilon_budget"},
	    {"\"name\": \"plain\", \"kind\": \"sql\", \"query\": \"SELECT COUNT(*) AS n FROM public\"",
	     "\"name\": \"plain\", \"kind\": \"sql\", \"query\": \"SELECT COUNT(*) AS n FROM bank\"",
	     "computations[3] (\"plain\"): reads dataset bank (directly or through upstream "
	     "computations), which has an epsilon_budget: only computations with "
	     "privacy.epsilon may read it"},
	    {"FROM public\"", "FROM bank_n\"",
	     "computations[3] (\"plain\"): reads the result of the differentially private "
	     "computation bank_n"},
	    {"\"privacy\": {\"epsilon\": \"0.5\"}", "\"privacy\": {\"epsilon\": \"0.5\", "
	                                            "\"min_rows_aggregated\": 5}",
	     "privacy.epsilon and min_rows_aggregated together are not supported"},
	    {"\"balance\": [\"0\", \"1000.50\"]",
	     "\"balance\": [\"0\", \"1000.50\"], \"city\": [\"0\", \"1\"]",
	     "computations[0].privacy.bounds.city: no integer or float column"},
	    {"SELECT AVG(balance) AS a FROM bank\"", "SELECT AVG(balance) AS a FROM bank GROUP BY city\"",
	     "computations[0] (\"avg_balance\"): SQL error: \"GROUP\" after the FROM clause"},
	    {"SELECT AVG(balance) AS a FROM bank\"",
	     "SELECT AVG(balance) AS a FROM bank WHERE balance IN other\"",
	     "a differentially private query reads exactly one dataset; this one names 2 tables"},
	    {"SELECT AVG(balance) AS a FROM bank\"", "SELECT MAX(balance) AS a FROM bank\"",
	     "select list item 1: \"MAX\" is not COUNT, SUM or AVG"},
	    {"SELECT AVG(balance) AS a FROM bank\"",
	     "SELECT AVG(balance) AS a FROM bank WHERE balance > (SELECT AVG(balance) FROM bank)\"",
	     "the WHERE condition may not contain a subquery"},
	    {"SELECT AVG(balance) AS a FROM bank\"", "SELECT AVG(balance * 2) AS a FROM bank\"",
	     "the aggregate's argument must be one column name"},
	    {"SELECT AVG(balance) AS a FROM bank\"", "SELECT SUM(city) AS a FROM bank\"",
	     "SUM(city) needs declared bounds: privacy.bounds.city"},
	    {"SELECT AVG(balance) AS a FROM bank\"", "SELECT AVG(balance) AS a FROM bank, other\"",
	     "reads exactly one dataset"},
	    {"\"balance\": [\"0\", \"1000.50\"]", "\"balance\": [\"10\", \"1\"]",
	     "the lower bound is above the upper"},
	    {"\"balance\": [\"0\", \"1000.50\"]", "\"balance\": [\"0\", \"1.1234567\"]",
	     "is not a decimal with at most 6 digits"},
	    {"\"balance\": [\"0\", \"1000.50\"]", "\"balance\": [0]", "expected [lower, upper]"},
	    {"{\"epsilon\": \"0.5\"}", "{\"bounds\": {\"balance\": [0, 1]}}",
	     "bounds are for differentially private queries"},
	    {"{\"name\": \"public\", \"columns\": [{\"name\": \"y\", \"type\": \"integer\"}]}",
	     "{\"name\": \"public\", \"kind\": \"file\", \"epsilon_budget\": \"1\"}",
	     "datasets[2].epsilon_budget: only table datasets take a budget"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *d = t_replace(def, bad[i].from, bad[i].to);
		rm_def *out = NULL;
		dcr_err e;
		dcr_err_clear(&e);
		/* a rule of rm_def_parse, or (query shapes) of the admission check */
		int rc = rm_def_parse(d, strlen(d), &out, &e);
		if (rc == 0)
			rc = rm_def_admit(out, &e);
		CHECK_FAILS(rc, &e, bad[i].needle);
		rm_def_free(out);
		free(d);
	}
	/* integers are exact too; printing round-trips */
	char *d = t_replace(def, "\"epsilon_budget\": \"2\"", "\"epsilon_budget\": 3");
	rm_def *out = NULL;
	CHECK(rm_def_parse(d, strlen(d), &out, &e_dummy) == 0);
	if (out) {
		CHECK(out->datasets[0].epsilon_budget == 3000000);
		char *j = rm_def_to_json(out);
		CHECK(strstr(j, "\"epsilon_budget\": \"3\"") != NULL);
		CHECK(strstr(j, "\"epsilon\": \"0.75\"") != NULL);
		CHECK(strstr(j, "\"balance\": [\n            \"0.00\",\n            \"1000.50\"") !=
		          NULL ||
		      strstr(j, "\"0.00\"") != NULL);
		rm_def *again = NULL;
		CHECK(rm_def_parse(j, strlen(j), &again, &e_dummy) == 0);
		if (again) {
			char *j2 = rm_def_to_json(again);
			CHECK(strcmp(j, j2) == 0);
			free(j2);
		}
		rm_def_free(again);
		free(j);
	}
	rm_def_free(out);
	free(d);
	/* epsilon formatting */
	char buf[32];
	CHECK(strcmp(rm_epsilon_format(1, buf, sizeof buf), "0.000001") == 0);
	CHECK(strcmp(rm_epsilon_format(2500000, buf, sizeof buf), "2.5") == 0);
	CHECK(strcmp(rm_epsilon_format(0, buf, sizeof buf), "0") == 0);
	free(def);
}

/* One actor name in two forms: the email and "dcrd" in both, the key short
 * (audit lines, dcrd's log) or whole (rule errors, the CLI). */
static void test_actor_name(void)
{
	char *def = t_valid_def(&F);
	char buf[RM_ACTOR_NAME_BYTES], tiny[8];
	rm_state_release(&S);
	rm_state_init(&S, F.daemon_pub);
	OK(F.anna, RM_EV_CREATED, b_def(def));
	for (int form = RM_ACTOR_SHORT; form <= RM_ACTOR_FULL; form++) {
		CHECK(strcmp(rm_actor_name(S.def, S.daemon_key, F.ian_pub, form, buf, sizeof buf),
		             "ian@insurer.example") == 0);
		CHECK(strcmp(rm_actor_name(S.def, S.daemon_key, F.daemon_pub, form, buf, sizeof buf),
		             "dcrd") == 0);
	}
	CHECK(strcmp(rm_actor_name(S.def, S.daemon_key, F.carl_pub, RM_ACTOR_FULL, buf, sizeof buf),
	             F.carl_s) == 0);
	rm_actor_name(S.def, S.daemon_key, F.carl_pub, RM_ACTOR_SHORT, buf, sizeof buf);
	CHECK(strlen(buf) == strlen("ed25519:") + 12 && strncmp(buf, F.carl_s, strlen(buf)) == 0);
	/* no definition, no daemon key: only the key names anyone */
	rm_actor_name(NULL, NULL, F.ian_pub, RM_ACTOR_FULL, buf, sizeof buf);
	CHECK(strcmp(buf, F.ian_s) == 0);
	rm_actor_name(NULL, NULL, F.daemon_pub, RM_ACTOR_SHORT, buf, sizeof buf);
	CHECK(strcmp(buf, "dcrd") != 0 && strncmp(buf, "ed25519:", 8) == 0);
	/* a short buffer truncates, never overflows */
	CHECK(strcmp(rm_actor_name(S.def, S.daemon_key, F.ian_pub, RM_ACTOR_FULL, tiny, sizeof tiny),
	             "ian@ins") == 0);
	free(def);
}

/* ---- drops of an append dataset (docs/rules.md "Drops") ------------------- */

static const char drops_def_template[] =
    "{\"format\": \"dcr.room/1\", \"name\": \"drops-room\",\n"
    " \"participants\": [\n"
    "  {\"email\": \"anna@bank.example\", \"key\": \"@ANNA@\",\n"
    "   \"owner_of\": [\"daily\", \"once\"]},\n"
    "  {\"email\": \"ian@insurer.example\", \"key\": \"@IAN@\",\n"
    "   \"analyst_of\": [\"cnt\"]}],\n"
    " \"datasets\": [\n"
    "  {\"name\": \"daily\", \"drops\": \"append\", \"columns\": [\n"
    "    {\"name\": \"x\", \"type\": \"integer\"}]},\n"
    "  {\"name\": \"once\", \"drops\": \"replace\", \"columns\": [\n"
    "    {\"name\": \"y\", \"type\": \"integer\"}]}],\n"
    " \"computations\": [\n"
    "  {\"name\": \"cnt\", \"kind\": \"sql\", \"query\": \"SELECT COUNT(*) AS n FROM daily\"}]}\n";

static dcr_buf *b_drop(const char *file, uint64_t rows, uint8_t fill)
{
	rm_provision p = {.dataset = "daily", .blob = "blob-d", .file = (char *)file,
	                  .rows = rows, .bytes = rows * 2};
	memset(p.sha256, fill, 32);
	memset(p.stats_sha256, 0x11, 32);
	dcr_buf_init(&B);
	rm_body_provisioned(&B, &p);
	return &B;
}

static dcr_buf *b_withdraw(const char *dataset, const char *file)
{
	dcr_buf_init(&B);
	rm_body_withdrawn(&B, dataset, file);
	return &B;
}

static dcr_buf *b_named(const char *dataset, const char *file)
{
	rm_provision p = {.dataset = (char *)dataset, .blob = "blob-n", .file = (char *)file,
	                  .rows = 1, .bytes = 2};
	memset(p.sha256, 0x5a, 32);
	memset(p.stats_sha256, 0x11, 32);
	dcr_buf_init(&B);
	rm_body_provisioned(&B, &p);
	return &B;
}

/* The file name rule (docs/rules.md "File names"): the same verdict for a
 * replaced dataset and an append dataset, and messages that never carry a
 * byte of the name they refuse. */
static void test_file_names(void)
{
	static const struct {
		const char *name, *want;
	} bad[] = {
	    {"", "is empty"},
	    {".", "a folder"},
	    {"..", "a folder"},
	    {"a/b.csv", "'/' at byte 1"},
	    {"/", "'/' at byte 0"},
	    {"x\nmallory: provisioned.csv", "a control character at byte 1 (0x0a)"},
	    {"\x1b[31mred.csv", "a control character at byte 0 (0x1b)"},
	    {"tab\t.csv", "(0x09)"},
	    {"del\x7f.csv", "(0x7f)"},
	    {"c1\xc2\x9b" "31m.csv", "a control character at byte 2 (U+009B)"},
	    {"nel\xc2\x85.csv", "(U+0085)"},
	    {"ls\xe2\x80\xa8.csv", "a line or paragraph separator at byte 2 (U+2028)"},
	    {"ps\xe2\x80\xa9.csv", "(U+2029)"},
	    {"rlo\xe2\x80\xaevsc.exe", "a bidirectional formatting character at byte 3 (U+202E)"},
	    {"lri\xe2\x81\xa6.csv", "(U+2066)"},
	    {"rlm\xe2\x80\x8f.csv", "(U+200F)"},
	    {"alm\xd8\x9c.csv", "(U+061C)"},
	    {"status", "the mount's own"},
	    {"schema.json", "the mount's own"},
	    {"stats.json", "the mount's own"},
	};
	static const char *const good[] = {
	    "data.csv", "données 2026.csv", "...", ".hidden.csv", "status.csv", "Status",
	    "a b (1).csv", "\xe2\x80\x8b" "zero-width.csv", "\xf0\x9f\x93\x8a.csv", "~x.csv",
	};
	char *a = t_replace(drops_def_template, "@ANNA@", F.anna_s);
	char *def = t_edit(a, "@IAN@", F.ian_s);
	char longest[DCR_RM_FILE_NAME_BYTES_MAX + 2];
	dcr_err e;
	rm_state_release(&S);
	rm_state_init(&S, F.daemon_pub);
	OK(F.anna, RM_EV_CREATED, b_def(def));
	OK(F.anna, RM_EV_PUBLISHED, b_published(S.def_sha256));
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		NO(F.anna, RM_EV_PROVISIONED, b_named("once", bad[i].name), "body.file: ",
		   bad[i].want, "(dataset once)");
		NO(F.anna, RM_EV_PROVISIONED, b_named("daily", bad[i].name), "body.file: ",
		   bad[i].want, "(dataset daily)");
		/* the exported check: the same verdict, no byte of the name */
		dcr_err_clear(&e);
		CHECK(rm_file_name_check(bad[i].name, strlen(bad[i].name), &e) == DCR_EINVALID);
		CHECK(!rm_file_name_valid(bad[i].name));
		for (const char *m = e.msg; *m; m++)
			CHECK((unsigned char)*m >= 0x20 && (unsigned char)*m < 0x7f);
		CHECK(strstr(e.msg, "red.csv") == NULL && strstr(e.msg, "mallory") == NULL);
	}
	/* invalid UTF-8 never reaches rm_apply (msgpack decoding refuses
	 * it); the exported check refuses it for the clients */
	static const char *const not_utf8[] = {"\xff.csv", "a\xc3", "\xc0\xaf", "\xed\xa0\x80",
	                                       "\xf4\x90\x80\x80", "\x80x"};
	for (size_t i = 0; i < sizeof not_utf8 / sizeof not_utf8[0]; i++) {
		dcr_err_clear(&e);
		CHECK(rm_file_name_check(not_utf8[i], strlen(not_utf8[i]), &e) == DCR_EINVALID);
		CHECK(strstr(e.msg, "not valid UTF-8 at byte") != NULL);
	}
	/* a NUL inside the given length */
	CHECK(rm_file_name_check("a\0b", 3, NULL) == DCR_EINVALID);
	CHECK(!rm_file_name_valid(NULL));
	memset(longest, 'x', sizeof longest);
	longest[DCR_RM_FILE_NAME_BYTES_MAX + 1] = '\0';
	NO(F.anna, RM_EV_PROVISIONED, b_named("once", longest), "body.file: 256 bytes");
	dcr_err_clear(&e);
	CHECK(rm_file_name_check(longest, strlen(longest), &e) == DCR_EINVALID &&
	      strstr(e.msg, "256 bytes long, at most 255") != NULL);
	longest[DCR_RM_FILE_NAME_BYTES_MAX] = '\0';
	OK(F.anna, RM_EV_PROVISIONED, b_named("once", longest));
	CHECK(strcmp(rm_state_provision(&S, "once")->file, longest) == 0);
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		CHECK(rm_file_name_valid(good[i]));
		OK(F.anna, RM_EV_PROVISIONED, b_named("once", good[i]));
		CHECK(strcmp(rm_state_provision(&S, "once")->file, good[i]) == 0);
		OK(F.anna, RM_EV_PROVISIONED, b_drop(good[i], 1, (uint8_t)i));
	}
	CHECK(rm_state_provision(&S, "daily")->ndrops == sizeof good / sizeof good[0]);
	free(def);
	rm_state_release(&S);
	rm_state_init(&S, F.daemon_pub);
}

static void test_drops(void)
{
	char *a = t_replace(drops_def_template, "@ANNA@", F.anna_s);
	char *def = t_edit(a, "@IAN@", F.ian_s);
	rm_state_release(&S);
	rm_state_init(&S, F.daemon_pub);
	OK(F.anna, RM_EV_CREATED, b_def(def));
	CHECK(S.def->datasets[0].append && !S.def->datasets[1].append);
	{
		/* the mode survives the definition's canonical JSON */
		char *js = rm_def_to_json(S.def);
		CHECK(strstr(js, "\"drops\": \"append\"") != NULL);
		free(js);
	}
	OK(F.anna, RM_EV_PUBLISHED, b_published(S.def_sha256));
	OK(F.anna, RM_EV_PROVISIONED, b_drop("export_2026-12-01.csv", 10, 1));
	OK(F.anna, RM_EV_PROVISIONED, b_drop("export_2026-12-02.csv", 20, 2));
	const rm_provision *p = rm_state_provision(&S, "daily");
	CHECK(p && p->ndrops == 2 && p->rows == 30 && p->bytes == 60 && !p->blob);
	{
		/* the union hash: SHA-256 of the drops' sha256 in drop order */
		uint8_t cat[64], h[32];
		memset(cat, 1, 32);
		memset(cat + 32, 2, 32);
		dcr_sha256(cat, 64, h);
		CHECK(memcmp(p->sha256, h, 32) == 0);
	}
	/* the same file twice counts once: refused */
	NO(F.anna, RM_EV_PROVISIONED, b_drop("export_2026-12-01.csv", 10, 1), "already in",
	   "counts once");
	/* not an owner; not a drop name */
	NO(F.ian, RM_EV_PROVISIONED, b_drop("export_2026-12-03.csv", 5, 3), "not an owner");
	NO(F.anna, RM_EV_PROVISIONED, b_drop("", 5, 3), "body.file: the file name is empty");
	NO(F.anna, RM_EV_PROVISIONED, b_drop("a/b.csv", 5, 3), "body.file", "'/' at byte 1");
	NO(F.anna, RM_EV_PROVISIONED, b_drop("..", 5, 3), "body.file", "a folder");
	/* same name, other bytes: a corrected re-export replaces that drop */
	OK(F.anna, RM_EV_PROVISIONED, b_drop("export_2026-12-01.csv", 11, 9));
	p = rm_state_provision(&S, "daily");
	CHECK(p->ndrops == 2 && p->rows == 31 && strcmp(p->drops[1].file, "export_2026-12-01.csv") == 0);
	CHECK(rm_state_drop(&S, "daily", "export_2026-12-01.csv")->rows == 11);
	/* a run records the union hash and every drop's blob */
	OK(F.ian, RM_EV_RUN_REQUESTED, b_run("cnt", R1));
	const rm_run *q = rm_state_run(&S, R1);
	CHECK(q && q->ninputs == 1 && q->inputs[0].present && q->inputs[0].ndrop_blobs == 2 &&
	      memcmp(q->inputs[0].sha256, p->sha256, 32) == 0);
	OK(F.daemon, RM_EV_RUN_COMPLETED, b_done_ex("cnt", R1, COLS, 2, NULL, 0));
	/* withdrawal of one drop */
	NO(F.anna, RM_EV_DEPROVISIONED, b_withdraw("daily", "export_2026-12-09.csv"),
	   "has no drop named \"export_2026-12-09.csv\"");
	NO(F.ian, RM_EV_DEPROVISIONED, b_withdraw("daily", "export_2026-12-02.csv"),
	   "not an owner");
	NO(F.anna, RM_EV_DEPROVISIONED, b_deprov("daily"), "append dataset",
	   "one at a time");
	NO(F.anna, RM_EV_DEPROVISIONED, b_withdraw("once", "x.csv"), "not an append dataset");
	CHECK_LINE(describe(F.anna, RM_EV_DEPROVISIONED, b_withdraw("daily", "export_2026-12-02.csv")),
	           "2026-11-25T12:00:00Z anna@bank.example withdrew from daily, file "
	           "export_2026-12-02.csv");
	CHECK_LINE(describe(F.anna, RM_EV_PROVISIONED, b_drop("export_2026-12-04.csv", 4, 4)),
	           "2026-11-25T12:00:00Z anna@bank.example dropped daily: 4 rows, 8 bytes, sha256 "
	           "040404040404, file export_2026-12-04.csv");
	OK(F.anna, RM_EV_DEPROVISIONED, b_withdraw("daily", "export_2026-12-02.csv"));
	p = rm_state_provision(&S, "daily");
	CHECK(p && p->ndrops == 1 && p->rows == 11);
	/* withdrawn: the same file may come back, as a new drop */
	OK(F.anna, RM_EV_PROVISIONED, b_drop("export_2026-12-02.csv", 20, 2));
	OK(F.anna, RM_EV_DEPROVISIONED, b_withdraw("daily", "export_2026-12-02.csv"));
	OK(F.anna, RM_EV_DEPROVISIONED, b_withdraw("daily", "export_2026-12-01.csv"));
	CHECK(rm_state_provision(&S, "daily") == NULL);
	/* at most DCR_RM_DROPS_MAX drops; a re-export of a name still goes in */
	{
		char name[32];
		dcr_err e;
		for (unsigned i = 0; i < DCR_RM_DROPS_MAX; i++) {
			snprintf(name, sizeof name, "d%05u.csv", i);
			dcr_buf *b = b_drop(name, 1, (uint8_t)(i & 0xff));
			if (submit_ex(F.anna, ROOM, UINT64_MAX, RM_EV_PROVISIONED, b, NULL, &e) != 0) {
				fprintf(stderr, "drop %u: %s\n", i, e.msg);
				t_failures++;
				dcr_buf_release(b);
				break;
			}
			dcr_buf_release(b);
		}
		CHECK(rm_state_provision(&S, "daily")->ndrops == DCR_RM_DROPS_MAX);
		NO(F.anna, RM_EV_PROVISIONED, b_drop("one-more.csv", 1, 7), "4096 drops");
		OK(F.anna, RM_EV_PROVISIONED, b_drop("d00007.csv", 2, 0x99));
		CHECK(rm_state_provision(&S, "daily")->ndrops == DCR_RM_DROPS_MAX);
		for (unsigned i = 0; i < DCR_RM_DROPS_MAX; i++) {
			snprintf(name, sizeof name, "d%05u.csv", i);
			dcr_buf *b = b_withdraw("daily", name);
			CHECK(submit_ex(F.anna, ROOM, UINT64_MAX, RM_EV_DEPROVISIONED, b, NULL, &e) == 0);
			dcr_buf_release(b);
		}
		CHECK(rm_state_provision(&S, "daily") == NULL);
	}
	/* a replace dataset: as before */
	OK(F.anna, RM_EV_PROVISIONED, b_prov("once", 3, 3));
	OK(F.anna, RM_EV_PROVISIONED, b_prov("once", 3, 3));
	/* the definition: append is for tables only, and a known mode */
	{
		rm_def *d = NULL;
		dcr_err e;
		char *bad = t_replace(def, "\"drops\": \"replace\"", "\"drops\": \"merge\"");
		CHECK_FAILS(rm_def_parse(bad, strlen(bad), &d, &e), &e, "datasets[1].drops",
		            "unknown mode \"merge\"");
		free(bad);
		bad = t_replace(def, "{\"name\": \"once\", \"drops\": \"replace\", \"columns\": [\n"
		                     "    {\"name\": \"y\", \"type\": \"integer\"}]}",
		                "{\"name\": \"once\", \"kind\": \"file\", \"drops\": \"append\"}");
		CHECK_FAILS(rm_def_parse(bad, strlen(bad), &d, &e), &e, "datasets[1].drops",
		            "only table datasets");
		free(bad);
		bad = t_replace(def, "\"drops\": \"replace\"", "\"drops\": true");
		CHECK_FAILS(rm_def_parse(bad, strlen(bad), &d, &e), &e, "datasets[1].drops",
		            "expected a string");
		free(bad);
	}
	free(def);
}

/* ---- development runs (docs/rules.md "Development runs") ------------------------ */

static dcr_buf *b_dev(const char *id, enum rm_dev_lang lang, const char *script,
                      const char *const *inputs, size_t n)
{
	dcr_buf_init(&B);
	rm_body_dev_requested(&B, id, lang, script, inputs, n);
	return &B;
}

/* dev.completed as dcrd writes it from the recorded inputs; fill != 0
 * replaces the first input's hash (a lie). */
static dcr_buf *b_dev_done(const char *id, uint8_t fill)
{
	const rm_dev *q = rm_state_dev(&S, id);
	rm_dev_input in[DCR_RM_DEV_INPUTS_MAX];
	rm_dev d = {.id = (char *)id, .result_blob = "dres", .result_bytes = 9, .logs_blob = ""};
	memset(d.result_sha256, 0xcd, 32);
	dcr_sha256("", 0, d.logs_sha256);
	for (size_t i = 0; q && i < q->ninputs; i++) {
		in[i] = q->inputs[i];
		if (i == 0 && fill)
			memset(in[i].sha256, fill, 32);
	}
	d.inputs = in;
	d.ninputs = q ? q->ninputs : 0;
	dcr_buf_init(&B);
	rm_body_dev_completed(&B, &d);
	return &B;
}

static dcr_buf *b_dev_failed(const char *id, const char *error, const char *logs_blob,
                             uint8_t logs_fill)
{
	rm_dev d = {.id = (char *)id, .error = (char *)error, .logs_blob = (char *)logs_blob};
	if (logs_fill)
		memset(d.logs_sha256, logs_fill, 32);
	else
		dcr_sha256("", 0, d.logs_sha256);
	dcr_buf_init(&B);
	rm_body_dev_failed(&B, &d);
	return &B;
}

static void test_dev_runs(void)
{
	static const char *const bank[] = {"bank_customers"};
	static const char *const ins[] = {"insurer_customers"};
	static const char *const over[] = {"overlap"};
	static const char *const both[] = {"bank_customers", "overlap"};
	static const char *const swapped[] = {"overlap", "bank_customers"};
	static const char *const twice[] = {"bank_customers", "bank_customers"};
	static const char *const nosuch[] = {"nosuch"};
	static const char *const file[] = {"contracts"};
	static const char *const by_city[] = {"by_city"};
	static const char *const empty_name[] = {""};
	char *def = t_valid_def(&F);
	char *off = t_replace(def, "\"development\": true", "\"development\": false");
	char d1[33], d2[33], d3[33], d4[33], run[33];
	dcr_err e;
	snprintf(d1, sizeof d1, "%032x", 0xd01u);
	snprintf(d2, sizeof d2, "%032x", 0xd02u);
	snprintf(d3, sizeof d3, "%032x", 0xd03u);
	snprintf(d4, sizeof d4, "%032x", 0xd04u);
	snprintf(run, sizeof run, "%032x", 0x0e1u);

	/* development off: refused with that reason, for everyone */
	rm_state_release(&S);
	rm_state_init(&S, F.daemon_pub);
	OK(F.anna, RM_EV_CREATED, b_def(off));
	OK(F.anna, RM_EV_PUBLISHED, b_published(S.def_sha256));
	OK(F.anna, RM_EV_PROVISIONED, b_prov("bank_customers", 1, 1));
	NO(F.anna, RM_EV_DEV_REQUESTED, b_dev(d1, RM_DEV_SQL, "SELECT 1", bank, 1),
	   "development runs are off in this room (settings.development is false)");
	NO(F.ian, RM_EV_DEV_REQUESTED, b_dev(d1, RM_DEV_SQL, "SELECT 1", NULL, 0),
	   "development runs are off");
	CHECK(rm_check_dev(&S, F.anna_pub, &e) == DCR_EDENIED);

	rm_state_release(&S);
	rm_state_init(&S, F.daemon_pub);
	OK(F.anna, RM_EV_CREATED, b_def(def));
	NO(F.anna, RM_EV_DEV_REQUESTED, b_dev(d1, RM_DEV_SQL, "SELECT 1", NULL, 0),
	   "the room is draft");
	OK(F.anna, RM_EV_PUBLISHED, b_published(S.def_sha256));
	NO(F.anna, RM_EV_DEV_REQUESTED, b_dev(d1, RM_DEV_SQL, "SELECT 1", bank, 1),
	   "dataset bank_customers is not provisioned");
	OK(F.anna, RM_EV_PROVISIONED, b_prov("bank_customers", 1, 1));
	OK(F.ian, RM_EV_PROVISIONED, b_prov_sha("insurer_customers", 1, 1, 0x4e));

	/* owner of a dataset: allowed; the provision's hash is recorded */
	CHECK(rm_check_dev(&S, F.anna_pub, &e) == 0);
	OK(F.anna, RM_EV_DEV_REQUESTED, b_dev(d1, RM_DEV_SQL, "SELECT * FROM bank_customers", bank, 1));
	const rm_dev *dv = rm_state_dev(&S, d1);
	CHECK(dv && dv->state == RM_RUN_QUEUED && dv->lang == RM_DEV_SQL && dv->ninputs == 1 &&
	      dv->inputs[0].is_dataset && dv->inputs[0].sha256[0] == 0x3f &&
	      strcmp(dv->inputs[0].blob, "blob-1") == 0 && memcmp(dv->by, F.anna_pub, 32) == 0 &&
	      strcmp(dv->script, "SELECT * FROM bank_customers") == 0);
	/* somebody else's dataset, by anyone */
	NO(F.anna, RM_EV_DEV_REQUESTED, b_dev(d2, RM_DEV_SQL, "SELECT 1", ins, 1),
	   "is not an owner of dataset insurer_customers");
	NO(F.ian, RM_EV_DEV_REQUESTED, b_dev(d2, RM_DEV_PYTHON, "print(1)", bank, 1),
	   "actor ian@insurer.example is not an owner of dataset bank_customers");
	NO(F.carl, RM_EV_DEV_REQUESTED, b_dev(d2, RM_DEV_SQL, "SELECT 1", NULL, 0),
	   "is not a participant of this room");
	NO(F.daemon, RM_EV_DEV_REQUESTED, b_dev(d2, RM_DEV_SQL, "SELECT 1", NULL, 0),
	   "is not a participant of this room");
	/* a file dataset of one's own that is not provisioned */
	NO(F.anna, RM_EV_DEV_REQUESTED, b_dev(d2, RM_DEV_R, "x <- 1", file, 1),
	   "dataset contracts is not provisioned");
	NO(F.anna, RM_EV_DEV_REQUESTED, b_dev(d2, RM_DEV_SQL, "SELECT 1", nosuch, 1),
	   "no dataset or computation named \"nosuch\"");
	/* analyst of a computation: only once it has a result */
	NO(F.anna, RM_EV_DEV_REQUESTED, b_dev(d2, RM_DEV_SQL, "SELECT 1", over, 1),
	   "computation overlap has no completed run to read");
	OK(F.ian, RM_EV_RUN_REQUESTED, b_run("overlap", run));
	OK(F.daemon, RM_EV_RUN_COMPLETED, b_done("overlap", run));
	OK(F.anna, RM_EV_DEV_REQUESTED, b_dev(d2, RM_DEV_SQL, "SELECT 1", both, 2));
	dv = rm_state_dev(&S, d2);
	CHECK(dv && dv->ninputs == 2 && !dv->inputs[1].is_dataset &&
	      strcmp(dv->inputs[1].run, run) == 0 && dv->inputs[1].sha256[0] == 0xab &&
	      strcmp(dv->inputs[1].blob, "res-1") == 0);
	/* a computation one is not analyst of (anna is not of by_city), and
	 * one without a result yet (ian of by_city) */
	NO(F.anna, RM_EV_DEV_REQUESTED, b_dev(d3, RM_DEV_SQL, "SELECT 1", by_city, 1),
	   "actor anna@bank.example is not an analyst of computation by_city");
	NO(F.ian, RM_EV_DEV_REQUESTED, b_dev(d3, RM_DEV_SQL, "SELECT 1", by_city, 1),
	   "computation by_city has no completed run");
	/* a participant with neither role: a script over nothing */
	OK(F.ian, RM_EV_DEV_REQUESTED, b_dev(d3, RM_DEV_PYTHON, "print(42)\n", NULL, 0));
	/* the body's form */
	NO(F.anna, RM_EV_DEV_REQUESTED, b_dev(d4, RM_DEV_SQL, "SELECT 1", swapped, 2), "is not after");
	NO(F.anna, RM_EV_DEV_REQUESTED, b_dev(d4, RM_DEV_SQL, "SELECT 1", twice, 2), "each once");
	NO(F.anna, RM_EV_DEV_REQUESTED, b_dev(d4, RM_DEV_SQL, "SELECT 1", empty_name, 1),
	   "body.inputs[0]: expected a name");
	NO(F.anna, RM_EV_DEV_REQUESTED, b_dev(d4, RM_DEV_SQL, "", NULL, 0), "body.script: empty");
	NO(F.anna, RM_EV_DEV_REQUESTED, b_dev(d1, RM_DEV_SQL, "SELECT 1", NULL, 0),
	   "run " /* d1 */, "already exists");
	NO(F.anna, RM_EV_DEV_REQUESTED, b_dev(run, RM_DEV_SQL, "SELECT 1", NULL, 0),
	   "already exists");
	NO(F.anna, RM_EV_DEV_REQUESTED, b_dev("D04", RM_DEV_SQL, "SELECT 1", NULL, 0),
	   "is not a run id");
	{
		dcr_mpw w;
		dcr_buf_init(&B);
		dcr_mpw_init(&w, &B);
		dcr_mpw_map(&w, 4);
		dcr_mpw_str(&w, "inputs");
		dcr_mpw_array(&w, 0);
		dcr_mpw_str(&w, "language");
		dcr_mpw_str(&w, "ruby");
		dcr_mpw_str(&w, "run");
		dcr_mpw_str(&w, d4);
		dcr_mpw_str(&w, "script");
		dcr_mpw_str(&w, "puts 1");
		NO(F.anna, RM_EV_DEV_REQUESTED, &B, "body.language: \"ruby\"");
		dcr_buf_init(&B);
		dcr_mpw_init(&w, &B);
		dcr_mpw_map(&w, 3);
		dcr_mpw_str(&w, "language");
		dcr_mpw_str(&w, "sql");
		dcr_mpw_str(&w, "run");
		dcr_mpw_str(&w, d4);
		dcr_mpw_str(&w, "script");
		dcr_mpw_str(&w, "SELECT 1");
		NO(F.anna, RM_EV_DEV_REQUESTED, &B, "body: missing field \"inputs\"");
	}
	/* a later provision does not change what a queued run reads */
	OK(F.anna, RM_EV_PROVISIONED, b_prov_sha("bank_customers", 2, 2, 0x55));
	CHECK(rm_state_dev(&S, d1)->inputs[0].sha256[0] == 0x3f);

	/* outcomes: the daemon only, exactly the recorded inputs */
	NO(F.anna, RM_EV_DEV_COMPLETED, b_dev_done(d1, 0), "is not the daemon");
	NO(F.daemon, RM_EV_DEV_COMPLETED, b_dev_done(d1, 0x55),
	   "body.inputs.bank_customers: expected the 32-byte sha256 recorded");
	NO(F.daemon, RM_EV_DEV_COMPLETED, b_dev_done(d4, 0), "no development run");
	OK(F.daemon, RM_EV_DEV_COMPLETED, b_dev_done(d1, 0));
	dv = rm_state_dev(&S, d1);
	CHECK(dv->state == RM_RUN_DONE && strcmp(dv->result_blob, "dres") == 0 &&
	      dv->result_sha256[0] == 0xcd && dv->result_bytes == 9 && dv->logs_blob[0] == 0);
	NO(F.daemon, RM_EV_DEV_COMPLETED, b_dev_done(d1, 0), "has already completed");
	NO(F.daemon, RM_EV_DEV_FAILED, b_dev_failed(d2, "no such column: secret_value", "", 0),
	   "not one of the data-free error classes");
	NO(F.daemon, RM_EV_DEV_FAILED, b_dev_failed(d2, "sql error", "", 0x01),
	   "must be the SHA-256 of no bytes");
	OK(F.daemon, RM_EV_DEV_FAILED, b_dev_failed(d2, "sql error", "logs-1", 0x01));
	CHECK(rm_state_dev(&S, d2)->state == RM_RUN_FAILED &&
	      strcmp(rm_state_dev(&S, d2)->error, "sql error") == 0);
	NO(F.daemon, RM_EV_DEV_FAILED, b_dev_failed(d2, "sql error", "", 0), "has already failed");

	/* reading: the requester only */
	CHECK(rm_check_dev_read(&S, F.anna_pub, d1, &e) == 0);
	CHECK_FAILS(rm_check_dev_read(&S, F.ian_pub, d1, &e), &e,
	            "actor ian@insurer.example did not request development run");
	CHECK(rm_check_dev_read(&S, F.ian_pub, d3, &e) == 0);
	CHECK_FAILS(rm_check_dev_read(&S, F.carl_pub, d1, &e), &e, "not a participant");
	CHECK_FAILS(rm_check_dev_read(&S, F.anna_pub, d4, &e), &e, "no development run");

	/* stopped: no new request; the daemon still reports a queued one */
	OK(F.anna, RM_EV_STOPPED, b_stopped("end"));
	NO(F.anna, RM_EV_DEV_REQUESTED, b_dev(d4, RM_DEV_SQL, "SELECT 1", NULL, 0),
	   "the room is stopped");
	OK(F.daemon, RM_EV_DEV_FAILED, b_dev_failed(d3, "not supported", "", 0));

	/* the audit lines */
	{
		dcr_buf entry;
		es_event ev;
		char *line;
		dcr_buf_init(&entry);
		b_dev(d4, RM_DEV_SQL, "SELECT 1", both, 2);
		DCR_ASSERT(es_event_build(F.anna, ROOM, S.size, T0, RM_EV_DEV_REQUESTED, B.data,
		                          B.len, &entry, &e) == 0);
		dcr_buf_release(&B);
		DCR_ASSERT(es_event_decode(entry.data, entry.len, &ev, &e) == 0);
		line = rm_describe(&S, &ev);
		CHECK(strstr(line, "anna@bank.example requested development run 00000000 (sql, "
		                   "script sha256 ") &&
		      strstr(line, ") reading bank_customers, overlap"));
		free(line);
		es_event_release(&ev);
		dcr_buf_reset(&entry);
		b_dev_failed(d3, "not supported", "", 0);
		DCR_ASSERT(es_event_build(F.daemon, ROOM, S.size, T0, RM_EV_DEV_FAILED, B.data,
		                          B.len, &entry, &e) == 0);
		dcr_buf_release(&B);
		DCR_ASSERT(es_event_decode(entry.data, entry.len, &ev, &e) == 0);
		line = rm_describe(&S, &ev);
		CHECK(strstr(line, "dcrd failed development run 00000000: not supported"));
		free(line);
		es_event_release(&ev);
		dcr_buf_release(&entry);
	}
	free(def);
	free(off);
}

int main(void)
{
	t_fixture_init(&F);
	es_room_new(ROOM);
	es_room_new(OTHER_ROOM);
	test_lifecycle();
	test_replay_entries();
	test_outside_creator();
	test_many_runs();
	test_dp_ledger();
	test_script_runs();
	test_dp_definition();
	test_actor_name();
	test_drops();
	test_file_names();
	test_dev_runs();
	rm_state_release(&S);
	t_fixture_release(&F);
	if (t_failures)
		fprintf(stderr, "%d check(s) failed\n", t_failures);
	return t_failures ? 1 : 0;
}
