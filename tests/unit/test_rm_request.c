/* test_rm_request.c: the request rules of rm_apply (docs/rules.md
 * "Requests"): who may submit, approve, reject and withdraw, the affected
 * owners, the hash binding, the merge by the last approval (definition
 * versions, the chained hash), a name clash at merge time, and the audit
 * lines. Each refusal is checked to leave the state as it was. */
#include "test_rm_common.h"

#define T0 1795608000000ull /* 2026-11-25T12:00:00Z */

static t_fixture F;
static rm_state S;
static uint8_t ROOM[ES_ROOM_ID_BYTES];
static dcr_buf B;

#define Q1 "11111111111111111111111111111111"
#define Q2 "22222222222222222222222222222222"
#define Q3 "33333333333333333333333333333333"
#define Q4 "44444444444444444444444444444444"
#define Q5 "55555555555555555555555555555555"
#define Q6 "66666666666666666666666666666666"

static int apply_body(const dcr_key *k, const char *type, const dcr_buf *body, dcr_err *e)
{
	dcr_buf entry;
	es_event ev;
	dcr_buf_init(&entry);
	DCR_ASSERT(es_event_build(k, ROOM, S.size, T0 + S.size * 1000, type, body->data, body->len,
	                          &entry, e) == 0);
	DCR_ASSERT(es_event_decode(entry.data, entry.len, &ev, e) == 0);
	int rc = rm_apply(&S, &ev, e);
	es_event_release(&ev);
	dcr_buf_release(&entry);
	return rc;
}

static char *describe(const dcr_key *k, const char *type, const dcr_buf *body)
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

/* What a refused event must leave as it was. */
typedef struct snap {
	uint64_t size, version;
	size_t nrequests, votes, ncomputations;
	int states;
	uint8_t vsha[32];
} snap;

static snap take(void)
{
	snap n = {.size = S.size,
	          .version = S.def_version,
	          .nrequests = S.nrequests,
	          .ncomputations = S.def ? S.def->ncomputations : 0};
	memcpy(n.vsha, S.version_sha256, 32);
	for (size_t i = 0; i < S.nrequests; i++) {
		n.states = n.states * 7 + (int)S.requests[i].state;
		for (size_t k = 0; k < S.requests[i].nowners; k++)
			n.votes += S.requests[i].owners[k].vote != RM_VOTE_NONE;
	}
	return n;
}

static bool same(snap a, snap b)
{
	return a.size == b.size && a.version == b.version && a.nrequests == b.nrequests &&
	       a.votes == b.votes && a.ncomputations == b.ncomputations && a.states == b.states &&
	       memcmp(a.vsha, b.vsha, 32) == 0;
}

#define OK(k, type, body)                                                                          \
	do {                                                                                       \
		dcr_err e_;                                                                        \
		dcr_err_clear(&e_);                                                                \
		dcr_buf *b_ = (body);                                                              \
		int rc_ = apply_body((k), (type), b_, &e_);                                        \
		if (rc_) {                                                                         \
			fprintf(stderr, "%s:%d: %s rejected: %s\n", __FILE__, __LINE__, (type),    \
			        e_.msg);                                                           \
			t_failures++;                                                              \
		}                                                                                  \
		dcr_buf_release(b_);                                                               \
	} while (0)

#define NO(k, type, body, ...)                                                                     \
	do {                                                                                       \
		dcr_err e_;                                                                        \
		dcr_err_clear(&e_);                                                                \
		snap before_ = take();                                                             \
		dcr_buf *b_ = (body);                                                              \
		int rc_ = apply_body((k), (type), b_, &e_);                                        \
		CHECK_FAILS(rc_, &e_, __VA_ARGS__);                                                \
		CHECK(same(before_, take()));                                                      \
		dcr_buf_release(b_);                                                               \
	} while (0)

static dcr_buf *b_submit(const char *id, const char *text)
{
	dcr_buf_init(&B);
	rm_body_req_submitted(&B, id, text);
	return &B;
}

static dcr_buf *b_withdraw(const char *id)
{
	dcr_buf_init(&B);
	rm_body_req_withdrawn(&B, id);
	return &B;
}

/* A vote bound to the request's own hash (or 0x77... for an unknown one). */
static dcr_buf *b_vote(const char *id, const char *reason)
{
	uint8_t h[32];
	const rm_request *q = rm_state_request(&S, id);
	if (q)
		memcpy(h, q->sha256, 32);
	else
		memset(h, 0x77, 32);
	dcr_buf_init(&B);
	rm_body_req_vote(&B, id, h, reason);
	return &B;
}

static dcr_buf *b_vote_hash(const char *id, const uint8_t h[32], const char *reason)
{
	dcr_buf_init(&B);
	rm_body_req_vote(&B, id, h, reason);
	return &B;
}

/* One sql computation named name with query q, for analysts. */
static char *req_text(const char *name, const char *q, const char *analysts)
{
	return dcr_asprintf("{\"title\": \"Proposal %s\", \"description\": \"why\",\n"
	                    " \"computations\": [{\"name\": \"%s\", \"kind\": \"sql\",\n"
	                    "   \"privacy\": {\"min_rows_aggregated\": 10},\n"
	                    "   \"query\": \"%s\", \"analysts\": [%s]}]}",
	                    name, name, q, analysts);
}

#define BANK_Q "SELECT city, COUNT(*) AS n FROM bank_customers GROUP BY city"
#define BOTH_Q                                                                                     \
	"SELECT i.risk, COUNT(*) AS n FROM bank_customers b JOIN insurer_customers i USING (email) " \
	"GROUP BY i.risk"

static void start(const char *def)
{
	dcr_err e;
	rm_state_release(&S);
	rm_state_init(&S, F.daemon_pub);
	dcr_buf body;
	dcr_buf_init(&body);
	rm_body_definition(&body, def);
	CHECK(apply_body(F.anna, RM_EV_CREATED, &body, &e) == 0, "%s", e.msg);
	dcr_buf_release(&body);
}

static void publish(void)
{
	dcr_err e;
	dcr_buf body;
	dcr_buf_init(&body);
	rm_body_published(&body, S.def_sha256);
	CHECK(apply_body(F.anna, RM_EV_PUBLISHED, &body, &e) == 0, "%s", e.msg);
	dcr_buf_release(&body);
}

static void test_single_owner(void)
{
	char *def = t_valid_def(&F);
	char *t1 = req_text("bank_by_city", BANK_Q, "\"ian@insurer.example\"");
	start(def);
	CHECK(S.def_version == 0);
	NO(F.ian, RM_EV_REQ_SUBMITTED, b_submit(Q1, t1), "the room is draft",
	   "requests can be submitted only while it is published");
	publish();
	CHECK(S.def_version == 1 && memcmp(S.version_sha256, S.def_sha256, 32) == 0);

	/* refusals at submission */
	NO(F.carl, RM_EV_REQ_SUBMITTED, b_submit(Q1, t1), "is not a participant");
	NO(F.ian, RM_EV_REQ_SUBMITTED, b_submit("ABC", t1), "body.request: \"ABC\" is not a request id");
	NO(F.ian, RM_EV_REQ_SUBMITTED, b_submit(Q1, "{\"title\": \"x\"}"),
	   "request: computations: missing (required)");
	NO(F.ian, RM_EV_REQ_SUBMITTED, b_submit(Q1, "{\"title\": \"x\", \"computations\": [], "
	                                            "\"colour\": 1}"),
	   "request: unknown field \"colour\"");
	char *bad = req_text("bank_by_city", BANK_Q, "\"nobody@else.example\"");
	NO(F.ian, RM_EV_REQ_SUBMITTED, b_submit(Q1, bad),
	   "request: computations[0].analysts: \"nobody@else.example\" is not a participant");
	free(bad);
	bad = req_text("overlap", BANK_Q, "\"ian@insurer.example\"");
	NO(F.ian, RM_EV_REQ_SUBMITTED, b_submit(Q1, bad),
	   "request: the definition with this request:", "overlap");
	free(bad);
	bad = req_text("bank_by_city", "SELECT email FROM bank_customers", "\"ian@insurer.example\"");
	NO(F.ian, RM_EV_REQ_SUBMITTED, b_submit(Q1, bad), "request: the definition with this request:",
	   "bank_by_city");
	free(bad);
	bad = dcr_strdup("{\"title\": \"t\", \"computations\": [{\"name\": \"lonely\", \"kind\": "
	                 "\"python\", \"script\": \"print(1)\", \"analysts\": [\"ian@insurer.example\"]}]}");
	NO(F.ian, RM_EV_REQ_SUBMITTED, b_submit(Q1, bad), "read no dataset, so no owner could approve it");
	free(bad);

	char *line = describe(F.ian, RM_EV_REQ_SUBMITTED, b_submit(Q1, t1));
	dcr_buf_release(&B);
	CHECK(strstr(line, "ian@insurer.example submitted request 11111111 \"Proposal "
	                   "bank_by_city\": bank_by_city (sha256 ") != NULL,
	      "%s", line);
	free(line);
	OK(F.ian, RM_EV_REQ_SUBMITTED, b_submit(Q1, t1));
	const rm_request *q = rm_state_request(&S, Q1);
	CHECK(q && q->state == RM_REQ_OPEN && q->nowners == 1 &&
	      memcmp(q->owners[0].key, F.anna_pub, 32) == 0 && q->ncomputations == 1 &&
	      strcmp(q->computations[0], "bank_by_city") == 0 && strcmp(q->title, "Proposal bank_by_city") == 0);
	NO(F.ian, RM_EV_REQ_SUBMITTED, b_submit(Q1, t1), "request " Q1 " already exists");
	CHECK(!rm_def_computation(S.def, "bank_by_city"));

	/* votes */
	NO(F.ian, RM_EV_REQ_APPROVED, b_vote(Q1, ""), "is not an affected owner of request " Q1);
	NO(F.carl, RM_EV_REQ_APPROVED, b_vote(Q1, ""), "is not a participant");
	NO(F.anna, RM_EV_REQ_APPROVED, b_vote(Q2, ""), "no request " Q2);
	uint8_t other[32];
	memset(other, 0x42, 32);
	NO(F.anna, RM_EV_REQ_APPROVED, b_vote_hash(Q1, other, "ok"),
	   "request_sha256 424242424242 is not the SHA-256 of request " Q1);
	NO(F.anna, RM_EV_REQ_WITHDRAWN, b_withdraw(Q1), "is not the author of request " Q1);
	line = describe(F.anna, RM_EV_REQ_APPROVED, b_vote(Q1, "fine by the bank"));
	dcr_buf_release(&B);
	CHECK(strstr(line, "anna@bank.example approved request 11111111 \"Proposal bank_by_city\": "
	                   "fine by the bank; merged as definition version 2") != NULL,
	      "%s", line);
	free(line);
	uint8_t chain[64], want[32];
	memcpy(chain, S.version_sha256, 32);
	memcpy(chain + 32, q->sha256, 32);
	dcr_sha256(chain, 64, want);
	OK(F.anna, RM_EV_REQ_APPROVED, b_vote(Q1, "fine by the bank"));
	q = rm_state_request(&S, Q1);
	CHECK(q->state == RM_REQ_MERGED && q->version == 2 && S.def_version == 2);
	CHECK(memcmp(S.version_sha256, want, 32) == 0);
	CHECK(strcmp(q->owners[0].reason, "fine by the bank") == 0);
	CHECK(rm_def_computation(S.def, "bank_by_city") != NULL);
	CHECK(rm_is_analyst(S.def, F.ian_pub, "bank_by_city"));
	CHECK(!rm_is_analyst(S.def, F.anna_pub, "bank_by_city"));
	CHECK(strstr(S.def_json, "bank_by_city") != NULL);
	NO(F.anna, RM_EV_REQ_APPROVED, b_vote(Q1, ""), "request " Q1 " is merged");
	NO(F.ian, RM_EV_REQ_WITHDRAWN, b_withdraw(Q1), "request " Q1 " is merged");
	/* the merged computation runs like any other */
	dcr_buf_init(&B);
	rm_body_run_requested(&B, "bank_by_city", "abababababababababababababababab");
	NO(F.anna, RM_EV_RUN_REQUESTED, &B, "is not an analyst of computation bank_by_city");
	dcr_err e;
	CHECK(rm_check_run(&S, F.ian_pub, "bank_by_city", &e) != 0 &&
	      strstr(e.msg, "needs datasets not provisioned: bank_customers"));
	free(t1);
	free(def);
}

static void test_two_owners(void)
{
	char *def = t_valid_def(&F);
	char *t2 = req_text("risk_mix", BOTH_Q, "\"ian@insurer.example\", \"anna@bank.example\"");
	char *t4 = req_text("risk_mix2", BOTH_Q, "\"ian@insurer.example\"");
	start(def);
	publish();
	OK(F.ian, RM_EV_REQ_SUBMITTED, b_submit(Q2, t2));
	CHECK(rm_state_request(&S, Q2)->nowners == 2);
	OK(F.anna, RM_EV_REQ_APPROVED, b_vote(Q2, "bank agrees"));
	CHECK(rm_state_request(&S, Q2)->state == RM_REQ_OPEN && S.def_version == 1);
	NO(F.anna, RM_EV_REQ_APPROVED, b_vote(Q2, ""), "has already approved request " Q2);
	NO(F.anna, RM_EV_REQ_REJECTED, b_vote(Q2, ""), "has already approved request " Q2);
	char *line = describe(F.ian, RM_EV_REQ_REJECTED, b_vote(Q2, "not our risk data"));
	dcr_buf_release(&B);
	CHECK(strstr(line, "ian@insurer.example rejected request 22222222 \"Proposal risk_mix\": not "
	                   "our risk data") != NULL,
	      "%s", line);
	free(line);
	OK(F.ian, RM_EV_REQ_REJECTED, b_vote(Q2, "not our risk data"));
	CHECK(rm_state_request(&S, Q2)->state == RM_REQ_REJECTED && S.def_version == 1 &&
	      !rm_def_computation(S.def, "risk_mix"));
	NO(F.anna, RM_EV_REQ_APPROVED, b_vote(Q2, ""), "request " Q2 " is rejected");

	/* a second request, approved by both, merges; the analysts of both */
	OK(F.anna, RM_EV_REQ_SUBMITTED, b_submit(Q3, t2));
	OK(F.ian, RM_EV_REQ_APPROVED, b_vote(Q3, ""));
	line = describe(F.anna, RM_EV_REQ_APPROVED, b_vote(Q3, ""));
	dcr_buf_release(&B);
	CHECK(strstr(line, "anna@bank.example approved request 33333333 \"Proposal risk_mix\"; "
	                   "merged as definition version 2") != NULL,
	      "%s", line);
	free(line);
	OK(F.anna, RM_EV_REQ_APPROVED, b_vote(Q3, ""));
	CHECK(rm_state_request(&S, Q3)->state == RM_REQ_MERGED && S.def_version == 2);
	CHECK(rm_is_analyst(S.def, F.anna_pub, "risk_mix") &&
	      rm_is_analyst(S.def, F.ian_pub, "risk_mix"));

	/* withdrawn by its author only, then closed */
	OK(F.ian, RM_EV_REQ_SUBMITTED, b_submit(Q4, t4));
	NO(F.anna, RM_EV_REQ_WITHDRAWN, b_withdraw(Q4), "is not the author");
	OK(F.ian, RM_EV_REQ_WITHDRAWN, b_withdraw(Q4));
	CHECK(rm_state_request(&S, Q4)->state == RM_REQ_WITHDRAWN);
	NO(F.anna, RM_EV_REQ_APPROVED, b_vote(Q4, ""), "request " Q4 " is withdrawn");
	NO(F.ian, RM_EV_REQ_WITHDRAWN, b_withdraw(Q4), "request " Q4 " is withdrawn");

	/* a name taken by the time of the merge: the request fails, the
	 * approval is recorded, the definition stays */
	char *t5 = req_text("same_name", BANK_Q, "\"ian@insurer.example\"");
	char *t6 = req_text("same_name", BANK_Q " HAVING COUNT(*) > 1", "\"anna@bank.example\"");
	OK(F.ian, RM_EV_REQ_SUBMITTED, b_submit(Q5, t5));
	OK(F.anna, RM_EV_REQ_SUBMITTED, b_submit(Q6, t6));
	OK(F.anna, RM_EV_REQ_APPROVED, b_vote(Q5, ""));
	CHECK(S.def_version == 3);
	uint8_t vsha[32];
	memcpy(vsha, S.version_sha256, 32);
	size_t ncomp = S.def->ncomputations;
	line = describe(F.anna, RM_EV_REQ_APPROVED, b_vote(Q6, ""));
	dcr_buf_release(&B);
	CHECK(strstr(line, "every owner approved but the merge failed:") && strstr(line, "same_name"),
	      "%s", line);
	free(line);
	OK(F.anna, RM_EV_REQ_APPROVED, b_vote(Q6, ""));
	const rm_request *q6 = rm_state_request(&S, Q6);
	CHECK(q6->state == RM_REQ_FAILED && q6->failure && strstr(q6->failure, "same_name"),
	      "%s", q6->failure ? q6->failure : "");
	CHECK(S.def_version == 3 && memcmp(vsha, S.version_sha256, 32) == 0 &&
	      S.def->ncomputations == ncomp);
	NO(F.anna, RM_EV_REQ_APPROVED, b_vote(Q6, ""), "request " Q6 " is failed");

	/* stopped: no more requests */
	dcr_buf_init(&B);
	rm_body_stopped(&B, "done");
	OK(F.anna, RM_EV_STOPPED, &B);
	NO(F.ian, RM_EV_REQ_SUBMITTED, b_submit("77777777777777777777777777777777", t4),
	   "the room is stopped");
	free(t2);
	free(t4);
	free(t5);
	free(t6);
	free(def);
}

static void test_not_interactive(void)
{
	char *def = t_valid_def(&F);
	def = t_edit(def, "\"interactive\": true", "\"interactive\": false");
	char *t1 = req_text("bank_by_city", BANK_Q, "\"ian@insurer.example\"");
	start(def);
	publish();
	NO(F.ian, RM_EV_REQ_SUBMITTED, b_submit(Q1, t1),
	   "the room is not interactive (settings.interactive is false)");
	NO(F.anna, RM_EV_REQ_APPROVED, b_vote(Q1, ""), "no request " Q1);
	free(t1);
	free(def);
}

static dcr_buf *b_auto(const char *id, const uint8_t owner[32])
{
	const rm_request *q = rm_state_request(&S, id);
	uint8_t h[32];
	memcpy(h, q ? q->sha256 : (const uint8_t *)"0123456789abcdef0123456789abcdef", 32);
	dcr_buf_init(&B);
	rm_body_req_auto(&B, id, h, owner);
	return &B;
}

static void test_auto_approve(void)
{
	char *def = t_valid_def(&F);
	def = t_edit(def, "\"share_statistics\": false, \"unit\": \"email\",",
	             "\"share_statistics\": false, \"unit\": \"email\", \"auto_approve\": "
	             "{\"kinds\": [\"sql\"], \"privacy_min_rows_aggregated_at_least\": 10, "
	             "\"analysts\": [\"ian@insurer.example\"]},");
	char *t1 = req_text("bank_by_city", BANK_Q, "\"ian@insurer.example\"");
	char *t2 = req_text("risk_mix", BOTH_Q, "\"ian@insurer.example\"");
	char *lowk = req_text("bank_low_k", BANK_Q, "\"ian@insurer.example\"");
	lowk = t_edit(lowk, "\"min_rows_aggregated\": 10", "\"min_rows_aggregated\": 5");
	char *anna = req_text("bank_for_anna", BANK_Q, "\"anna@bank.example\"");
	start(def);
	const rm_dataset *ds = rm_def_dataset(S.def, "bank_customers");
	CHECK(ds->auto_approve && ds->auto_approve->kinds == (1u << RM_COMP_SQL) &&
	      ds->auto_approve->min_rows == 10 && ds->auto_approve->nanalysts == 1);
	char *shown = rm_def_to_json(S.def);
	CHECK(strstr(shown, "\"privacy_min_rows_aggregated_at_least\": 10") != NULL, "%s", shown);
	free(shown);
	publish();
	OK(F.ian, RM_EV_REQ_SUBMITTED, b_submit(Q1, t1));
	NO(F.anna, RM_EV_REQ_AUTO, b_auto(Q1, F.anna_pub), "is not the daemon");
	NO(F.daemon, RM_EV_REQ_AUTO, b_auto(Q1, F.ian_pub), "is not an affected owner");
	char *line = describe(F.daemon, RM_EV_REQ_AUTO, b_auto(Q1, F.anna_pub));
	dcr_buf_release(&B);
	CHECK(strstr(line, "dcrd approved request 11111111 \"Proposal bank_by_city\" for "
	                   "anna@bank.example by the auto_approve policy of its datasets; merged as "
	                   "definition version 2") != NULL,
	      "%s", line);
	free(line);
	OK(F.daemon, RM_EV_REQ_AUTO, b_auto(Q1, F.anna_pub));
	CHECK(rm_state_request(&S, Q1)->state == RM_REQ_MERGED &&
	      rm_state_request(&S, Q1)->owners[0].automatic);

	/* outside the policy */
	OK(F.ian, RM_EV_REQ_SUBMITTED, b_submit(Q2, lowk));
	NO(F.daemon, RM_EV_REQ_AUTO, b_auto(Q2, F.anna_pub),
	   "has privacy.min_rows_aggregated 5; the auto_approve policy of dataset bank_customers "
	   "needs at least 10");
	OK(F.ian, RM_EV_REQ_SUBMITTED, b_submit(Q3, anna));
	NO(F.daemon, RM_EV_REQ_AUTO, b_auto(Q3, F.anna_pub),
	   "has analyst anna@bank.example, whom the auto_approve policy of dataset bank_customers "
	   "does not list");

	/* two owners: the bank's policy approves, the insurer (no policy)
	 * approves by hand and completes it */
	OK(F.ian, RM_EV_REQ_SUBMITTED, b_submit(Q4, t2));
	NO(F.daemon, RM_EV_REQ_AUTO, b_auto(Q4, F.ian_pub),
	   "dataset insurer_customers, which computation risk_mix reads, has no auto_approve "
	   "policy");
	OK(F.daemon, RM_EV_REQ_AUTO, b_auto(Q4, F.anna_pub));
	NO(F.daemon, RM_EV_REQ_AUTO, b_auto(Q4, F.anna_pub), "has already approved");
	CHECK(rm_state_request(&S, Q4)->state == RM_REQ_OPEN);
	OK(F.ian, RM_EV_REQ_APPROVED, b_vote(Q4, "fine"));
	CHECK(rm_state_request(&S, Q4)->state == RM_REQ_MERGED && S.def_version == 3);

	/* policies name participants */
	char *badp = t_replace(def, "\"analysts\": [\"ian@insurer.example\"]",
	                       "\"analysts\": [\"who@else.example\"]");
	rm_def *d = NULL;
	dcr_err e;
	CHECK_FAILS(rm_def_parse(badp, strlen(badp), &d, &e), &e,
	            "datasets[0].auto_approve.analysts[0]: \"who@else.example\" is not a "
	            "participant's email");
	free(badp);
	badp = t_replace(def, "\"kinds\": [\"sql\"]", "\"kinds\": [\"perl\"]");
	CHECK_FAILS(rm_def_parse(badp, strlen(badp), &d, &e), &e,
	            "datasets[0].auto_approve.kinds: kinds[0] is not a computation kind");
	free(badp);
	free(t1);
	free(t2);
	free(lowk);
	free(anna);
	free(def);
}

static dcr_buf *b_preview(const char *id, const char *comp, const char *run)
{
	dcr_buf_init(&B);
	rm_body_req_preview(&B, id, comp, run);
	return &B;
}

#define P1 "0000000000000000000000000000aaa1"
#define P2 "0000000000000000000000000000aaa2"

static void test_preview(void)
{
	char *def = t_valid_def(&F);
	char *t1 = req_text("bank_by_city", BANK_Q, "\"ian@insurer.example\"");
	char *t2 = req_text("risk_mix", BOTH_Q, "\"ian@insurer.example\"");
	start(def);
	publish();
	OK(F.ian, RM_EV_REQ_SUBMITTED, b_submit(Q1, t1));
	OK(F.ian, RM_EV_REQ_SUBMITTED, b_submit(Q2, t2));
	NO(F.anna, RM_EV_REQ_PREVIEW, b_preview(Q1, "bank_by_city", P1),
	   "computation bank_by_city needs datasets not provisioned: bank_customers");
	rm_provision pv = {.dataset = "bank_customers", .blob = "b1", .file = "b.csv", .rows = 3,
	                   .bytes = 9};
	memset(pv.sha256, 0x3f, 32);
	dcr_buf_init(&B);
	rm_body_provisioned(&B, &pv);
	OK(F.anna, RM_EV_PROVISIONED, &B);
	NO(F.ian, RM_EV_REQ_PREVIEW, b_preview(Q1, "bank_by_city", P1),
	   "is not the affected owner of request " Q1);
	NO(F.anna, RM_EV_REQ_PREVIEW, b_preview(Q2, "risk_mix", P1),
	   "request " Q2 " reads the data of 2 owners: a preview would show one owner the others' "
	   "data before they agreed");
	NO(F.ian, RM_EV_REQ_PREVIEW, b_preview(Q2, "risk_mix", P1), "reads the data of 2 owners");
	NO(F.anna, RM_EV_REQ_PREVIEW, b_preview(Q1, "overlap", P1),
	   "request " Q1 " has no computation named \"overlap\"");
	NO(F.anna, RM_EV_REQ_PREVIEW, b_preview(Q1, "bank_by_city", "xyz"), "is not a run id");
	char *line = describe(F.anna, RM_EV_REQ_PREVIEW, b_preview(Q1, "bank_by_city", P1));
	dcr_buf_release(&B);
	CHECK(strstr(line, "anna@bank.example previewed request 11111111 \"Proposal bank_by_city\": "
	                   "run 00000000 of bank_by_city") != NULL,
	      "%s", line);
	free(line);
	OK(F.anna, RM_EV_REQ_PREVIEW, b_preview(Q1, "bank_by_city", P1));
	const rm_run *r = rm_state_run(&S, P1);
	CHECK(r && r->preview_of && strcmp(r->preview_of, Q1) == 0 && r->ninputs == 1 &&
	      strcmp(r->inputs[0].dataset, "bank_customers") == 0 && r->inputs[0].present);
	CHECK(rm_state_run_def(&S, r) != S.def &&
	      rm_def_computation(rm_state_run_def(&S, r), "bank_by_city"));
	CHECK(!rm_state_last_run(&S, "bank_by_city"));
	NO(F.anna, RM_EV_REQ_PREVIEW, b_preview(Q1, "bank_by_city", P1), "run " P1 " already exists");
	/* the daemon completes it like any run; only anna reads it */
	rm_run_col cols[] = {{"city", CMP_STRING}, {"n", CMP_INTEGER}};
	rm_run done = *r;
	done.result_blob = "res";
	done.cols = cols;
	done.ncols = 2;
	dcr_buf_init(&B);
	rm_body_run_completed(&B, &done);
	OK(F.daemon, RM_EV_RUN_COMPLETED, &B);
	r = rm_state_run(&S, P1);
	CHECK(r->state == RM_RUN_DONE);
	CHECK(rm_may_read_run(&S, F.anna_pub, r) && !rm_may_read_run(&S, F.ian_pub, r));
	dcr_buf_init(&B);
	rm_body_retrieved(&B, P1);
	NO(F.ian, RM_EV_RETRIEVED, &B, "run " P1 " is a preview of request " Q1
	   ": only the owner who asked for it reads it");
	dcr_buf_init(&B);
	rm_body_retrieved(&B, P1);
	OK(F.anna, RM_EV_RETRIEVED, &B);
	/* approved: merged; the preview stays the owner's */
	OK(F.anna, RM_EV_REQ_APPROVED, b_vote(Q1, "seen the preview"));
	CHECK(S.def_version == 2 && !rm_state_last_run(&S, "bank_by_city"));
	CHECK(!rm_may_read_run(&S, F.ian_pub, rm_state_run(&S, P1)));
	NO(F.anna, RM_EV_REQ_PREVIEW, b_preview(Q1, "bank_by_city", P2), "request " Q1 " is merged");
	free(t1);
	free(t2);
	free(def);
}

int main(void)
{
	t_fixture_init(&F);
	es_room_new(ROOM);
	test_single_owner();
	test_two_owners();
	test_not_interactive();
	test_auto_approve();
	test_preview();
	rm_state_release(&S);
	t_fixture_release(&F);
	if (t_failures)
		fprintf(stderr, "%d check(s) failed\n", t_failures);
	return t_failures ? 1 : 0;
}
