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
	return n;
}

static bool same(snap a, snap b)
{
	return a.size == b.size && a.status == b.status && a.nprovisions == b.nprovisions &&
	       a.npresent == b.npresent && a.nruns == b.nruns && a.ndone == b.ndone &&
	       a.nfailed == b.nfailed && a.retrieved == b.retrieved &&
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

static dcr_buf *b_done(const char *comp, const char *id, const char *schema, const char *inputs)
{
	rm_run r = {.id = (char *)id,
	            .computation = (char *)comp,
	            .result_blob = "res-1",
	            .rows = 12,
	            .suppressed = 3,
	            .result_bytes = 99,
	            .duration_ms = 7,
	            .schema_json = (char *)schema};
	memset(r.result_sha256, 0xab, 32);
	dcr_buf_init(&B);
	rm_body_run_completed(&B, &r, inputs);
	return &B;
}

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

static const char SCHEMA[] = "[[\"city\",\"string\"],[\"n\",\"integer\"]]";
static char INPUTS[256];

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
	char *baddef = t_replace(def, "GROUP BY b.city", "GROUP BY b.citi");
	dcr_buf keep;
	dcr_err e;
	dcr_buf_init(&keep);
	rm_state_init(&S, F.daemon_pub);

	/* ---- before the room exists */
	NO(F.anna, RM_EV_SAVED, b_def(def),
	   "seq 0 (room.draft_saved): ", "the room does not exist yet");
	NO(F.anna, RM_EV_CREATED, b_def(baddef),
	   "seq 0 (room.created): definition: ", "no such column: b.citi");
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
	NO(F.anna, RM_EV_SAVED, b_def(baddef), "definition: computations[0] (\"overlap\")");
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
	           "48213 bytes, sha256 3f3f3f3f3f3f");
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
	/* "" = an input that was not provisioned */
	snprintf(INPUTS, sizeof INPUTS,
	         "{\"bank_customers\": \"%064d\", \"insurer_customers\": \"\"}", 0);
	NO(F.anna, RM_EV_RUN_COMPLETED, b_done("overlap", R1, SCHEMA, INPUTS),
	   "seq 8 (run.completed): actor anna@bank.example is not the daemon");
	NO(F.daemon, RM_EV_RUN_COMPLETED, b_done("overlap", R3, SCHEMA, INPUTS),
	   "no run " R3 " in this room");
	NO(F.daemon, RM_EV_RUN_COMPLETED, b_done("by_city", R1, SCHEMA, INPUTS),
	   "run " R1 " is of computation overlap, not by_city");
	NO(F.daemon, RM_EV_RUN_COMPLETED, b_done("overlap", R1, "{\"a\":1}", INPUTS),
	   "body.schema: expected");
	NO(F.daemon, RM_EV_RUN_COMPLETED, b_done("overlap", R1, SCHEMA, "{\"contracts\": \"00\"}"),
	   "body.inputs: \"contracts\" is not an input of computation overlap");
	NO(F.daemon, RM_EV_RUN_COMPLETED,
	   b_done("overlap", R1, SCHEMA, "{\"bank_customers\": \"00\"}"),
	   "body.inputs.bank_customers: expected a sha256");
	NO(F.daemon, RM_EV_RUN_COMPLETED, b_done("overlap", R1, SCHEMA, "[1"),
	   "body.inputs: line 1");
	NO(F.daemon, RM_EV_RUN_FAILED, b_raw1("run", R1), "body: missing field");
	CHECK_LINE(describe(F.daemon, RM_EV_RUN_COMPLETED, b_done("overlap", R1, SCHEMA, INPUTS)),
	           "2026-11-25T12:00:00Z dcrd completed run 4f1c2a9b of overlap: 12 rows, 3 "
	           "suppressed");
	/* retrieving before completion */
	NO(F.ian, RM_EV_RETRIEVED, b_retrieved(R1), "run " R1 " has not finished");
	OK(F.daemon, RM_EV_RUN_COMPLETED, b_done("overlap", R1, SCHEMA, INPUTS));
	{
		const rm_run *r = rm_state_run(&S, R1);
		CHECK(r && r->state == RM_RUN_DONE && r->rows == 12 && r->suppressed == 3);
		CHECK(r && strcmp(r->schema_json, SCHEMA) == 0 && r->result_sha256[0] == 0xab);
	}
	NO(F.daemon, RM_EV_RUN_COMPLETED, b_done("overlap", R1, SCHEMA, INPUTS),
	   "run " R1 " has already completed");
	NO(F.daemon, RM_EV_RUN_FAILED, b_failed("overlap", R1, "x"), "has already completed");
	CHECK_LINE(describe(F.daemon, RM_EV_RUN_FAILED,
	                    b_failed("bank_synthetic", R2, "not supported yet")),
	           "2026-11-25T12:00:00Z dcrd failed run 4f1c2a9b of bank_synthetic: not supported "
	           "yet");
	OK(F.daemon, RM_EV_RUN_FAILED, b_failed("bank_synthetic", R2, "not supported yet"));
	CHECK(strcmp(rm_state_run(&S, R2)->error, "not supported yet") == 0);

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
		          "seq 12 (run.requested): event seq 12 but room has 13 events: replayed "
		          "or out of order");
		CHECK(same(b, take()));
		body = b_run("overlap", R4);
		CHECK_FAILS(
		    submit_ex(F.ian, OTHER_ROOM, UINT64_MAX, RM_EV_RUN_REQUESTED, body, NULL, &e),
		    &e, "seq 13 (run.requested): event is for room ");
		dcr_buf_release(body);
		CHECK(same(b, take()));
	}
	CHECK_LINE(describe(F.anna, "room.renamed", b_raw1("name", "x")),
	           "2026-11-25T12:00:00Z anna@bank.example sent an event of unknown type "
	           "room.renamed");
	NO(F.anna, "room.renamed", b_raw1("name", "x"),
	   "seq 13 (room.renamed): unknown event type");

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
	NO(F.anna, RM_EV_RUN_FAILED, b_failed("overlap", R3, "stopped"), "is not the daemon");
	OK(F.daemon, RM_EV_RUN_FAILED, b_failed("overlap", R3, "room stopped"));
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

int main(void)
{
	t_fixture_init(&F);
	es_room_new(ROOM);
	es_room_new(OTHER_ROOM);
	test_lifecycle();
	test_replay_entries();
	test_outside_creator();
	test_many_runs();
	test_actor_name();
	rm_state_release(&S);
	t_fixture_release(&F);
	if (t_failures)
		fprintf(stderr, "%d check(s) failed\n", t_failures);
	return t_failures ? 1 : 0;
}
