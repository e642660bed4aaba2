/* test_audit_forge.c: the offline verifier (tools/audit_core.c) against
 * forged and tampered logs built with real keys.
 *
 * Builds an honest room log (every event type, signed by the creator, two
 * data owners and the daemon), then derives broken exports: flipped bits in
 * envelopes and signatures, a dropped event, two swapped events, an event
 * appended by the host with a forged signature, a validly signed provision
 * by a participant who does not own the dataset, a checkpoint from another
 * log, an older checkpoint the log does not extend, a truncated log, a
 * tampered participant list, a wrong daemon key. Each must be reported
 * invalid, naming the first bad event (seq and type) or the failed check,
 * with any number of verification threads. Inclusion proofs round-trip and
 * fail when tampered.
 *
 * `test_audit_forge write DIR` writes some of these exports to DIR for
 * tests/e2e/audit_forge.sh, which checks the same verdicts through
 * `dcr audit verify`. */
#include <sys/stat.h>

#include "../../base/base.h"
#include "../../eventstore/eventstore.h"
#include "../../room/room.h"
#include "../../tools/audit_core.h"

#include "test.h"

/* ---- a log under construction ------------------------------------------------ */

typedef struct tlog {
	uint8_t room[ES_ROOM_ID_BYTES];
	dcr_buf e[64];
	size_t n;
	uint64_t ts;
} tlog;

static dcr_key *kd, *ka, *ki, *km; /* daemon, anna (creator), ian, mallory */
static uint8_t pd[32], pa[32], pi_[32], pm[32];
static char *def_json;

static void tlog_init(tlog *l, uint8_t fill)
{
	memset(l, 0, sizeof(*l));
	memset(l->room, fill, sizeof(l->room));
	l->ts = 1795000000000ull;
}

static void tlog_release(tlog *l)
{
	for (size_t i = 0; i < l->n; i++)
		dcr_buf_release(&l->e[i]);
}

/* Signs type/body with k as the event at position seq. */
static void tlog_add_at(tlog *l, const dcr_key *k, uint64_t seq, const char *type, dcr_buf *body)
{
	dcr_err err;
	DCR_ASSERT(l->n < 64);
	dcr_buf_init(&l->e[l->n]);
	l->ts += 1000;
	int rc =
	    es_event_build(k, l->room, seq, l->ts, type, body->data, body->len, &l->e[l->n], &err);
	if (rc) {
		fprintf(stderr, "es_event_build: %s\n", err.msg);
		abort();
	}
	l->n++;
	dcr_buf_reset(body);
}

static void tlog_add(tlog *l, const dcr_key *k, const char *type, dcr_buf *body)
{
	tlog_add_at(l, k, l->n, type, body);
}

static void run_id(int i, char out[33])
{
	snprintf(out, 33, "%032x", 0xabc00 + i);
}

/* The honest log: every event type. Positions:
 *  0 room.created (anna)        1 room.draft_saved (anna)
 *  2 room.published (anna)      3 dataset.provisioned bank (anna)
 *  4 dataset.provisioned ins (ian)  5 run.requested overlap (anna)
 *  6 run.completed (dcrd)       7 result.retrieved (anna)
 *  8 run.requested (ian)        9 run.failed (dcrd)
 * 10 dataset.deprovisioned ins (ian)  11 room.stopped (anna) */
static void build_honest(tlog *l, size_t upto)
{
	dcr_buf b;
	char id[33];
	uint8_t h[32];
	rm_provision p;
	rm_run r;

	dcr_buf_init(&b);
	rm_body_definition(&b, def_json);
	tlog_add(l, ka, RM_EV_CREATED, &b);
	if (l->n >= upto)
		goto out;
	rm_body_definition(&b, def_json);
	tlog_add(l, ka, RM_EV_SAVED, &b);
	if (l->n >= upto)
		goto out;
	dcr_sha256(def_json, strlen(def_json), h);
	rm_body_published(&b, h);
	tlog_add(l, ka, RM_EV_PUBLISHED, &b);
	if (l->n >= upto)
		goto out;
	memset(&p, 0, sizeof(p));
	p.dataset = "bank_customers";
	p.blob = "b1";
	p.bytes = 1234;
	p.rows = 1000;
	memset(p.sha256, 0x3f, 32);
	memset(p.stats_sha256, 0x11, 32);
	p.file = "bank.csv";
	rm_body_provisioned(&b, &p);
	tlog_add(l, ka, RM_EV_PROVISIONED, &b);
	if (l->n >= upto)
		goto out;
	p.dataset = "insurer_customers";
	p.blob = "b2";
	memset(p.sha256, 0x4e, 32);
	p.file = "ins.csv";
	rm_body_provisioned(&b, &p);
	tlog_add(l, ki, RM_EV_PROVISIONED, &b);
	if (l->n >= upto)
		goto out;
	run_id(1, id);
	rm_body_run_requested(&b, "overlap", id);
	tlog_add(l, ka, RM_EV_RUN_REQUESTED, &b);
	if (l->n >= upto)
		goto out;
	memset(&r, 0, sizeof(r));
	r.id = id;
	r.computation = "overlap";
	r.state = RM_RUN_DONE;
	r.result_blob = "r1";
	r.rows = 1;
	r.result_bytes = 10;
	r.duration_ms = 5;
	memset(r.result_sha256, 0x77, 32);
	rm_run_col col = {"n", CMP_INTEGER};
	rm_run_input in[2] = {{.dataset = "bank_customers", .present = true},
	                      {.dataset = "insurer_customers", .present = true}};
	memset(in[0].sha256, 0x3f, 32);
	memset(in[1].sha256, 0x4e, 32);
	r.cols = &col;
	r.ncols = 1;
	r.inputs = in;
	r.ninputs = 2;
	rm_body_run_completed(&b, &r);
	tlog_add(l, kd, RM_EV_RUN_COMPLETED, &b);
	if (l->n >= upto)
		goto out;
	rm_body_retrieved(&b, id);
	tlog_add(l, ka, RM_EV_RETRIEVED, &b);
	if (l->n >= upto)
		goto out;
	run_id(2, id);
	rm_body_run_requested(&b, "overlap", id);
	tlog_add(l, ki, RM_EV_RUN_REQUESTED, &b);
	if (l->n >= upto)
		goto out;
	rm_body_run_failed(&b, id, "overlap", "memory limit");
	tlog_add(l, kd, RM_EV_RUN_FAILED, &b);
	if (l->n >= upto)
		goto out;
	rm_body_deprovisioned(&b, "insurer_customers");
	tlog_add(l, ki, RM_EV_DEPROVISIONED, &b);
	if (l->n >= upto)
		goto out;
	rm_body_stopped(&b, "study finished");
	tlog_add(l, ka, RM_EV_STOPPED, &b);
out:
	dcr_buf_release(&b);
}

/* Checkpoint signed by k over entries (pointers) [0, n). */
static void sign_cp(const uint8_t room[16], const uint8_t *const *ents, const size_t *lens,
                    size_t n, const dcr_key *k, es_checkpoint *cp)
{
	uint8_t(*leaves)[32] = dcr_malloc((n + 1) * 32);
	for (size_t i = 0; i < n; i++)
		es_leaf_hash(ents[i], lens[i], leaves[i]);
	memset(cp, 0, sizeof(*cp));
	memcpy(cp->room, room, 16);
	cp->size = n;
	es_merkle_root((const uint8_t(*)[32])leaves, n, cp->root);
	cp->ts_ms = 1795000999000ull;
	DCR_ASSERT(es_checkpoint_sign(cp, k) == 0);
	free(leaves);
}

/* A view of a log as pointer arrays that tampering can rearrange. */
typedef struct view {
	const uint8_t *ent[80];
	size_t len[80];
	size_t n;
	dcr_buf own[8]; /* modified copies */
	size_t nown;
} view;

static void view_of(view *v, const tlog *l)
{
	memset(v, 0, sizeof(*v));
	for (size_t i = 0; i < l->n; i++) {
		v->ent[i] = l->e[i].data;
		v->len[i] = l->e[i].len;
	}
	v->n = l->n;
}

static void view_release(view *v)
{
	for (size_t i = 0; i < v->nown; i++)
		dcr_buf_release(&v->own[i]);
}

/* Replaces entry i with a copy that has bit `bit` of byte `off` flipped. */
static void view_flip(view *v, size_t i, size_t off, int bit)
{
	dcr_buf *b = &v->own[v->nown++];
	dcr_buf_init(b);
	dcr_buf_append(b, v->ent[i], v->len[i]);
	DCR_ASSERT(off < b->len);
	b->data[off] ^= (uint8_t)(1u << bit);
	v->ent[i] = b->data;
}

/* The honest final state, for the participant list. */
static rm_state honest_final;

/* Export of a view; the checkpoint re-signed by the daemon over exactly
 * these entries (a dishonest host can do that) unless cp is given. */
static void export_view(const view *v, const uint8_t room[16], const es_checkpoint *cp,
                        dcr_buf *out)
{
	es_checkpoint c;
	if (cp)
		c = *cp;
	else
		sign_cp(room, v->ent, v->len, v->n, kd, &c);
	dcr_buf_reset(out);
	au_export_encode(out, room, pd, &c, v->ent, v->len, v->n, &honest_final);
}

/* Decodes and verifies; returns the code and fills msg/bad_seq. */
static int verify_bytes(const dcr_buf *b, const au_verify_opts *o, unsigned threads, char *msg,
                        size_t cap, uint64_t *bad_seq)
{
	au_export x;
	au_report rep;
	au_verify_opts vo;
	dcr_err err;
	int rc;

	memset(&vo, 0, sizeof(vo));
	if (o)
		vo = *o;
	vo.threads = threads;
	dcr_err_clear(&err);
	*bad_seq = UINT64_MAX;
	rc = au_export_decode(b->data, b->len, &x, &err);
	if (rc == 0) {
		rc = au_verify(&x, &vo, &rep, &err);
		*bad_seq = rep.bad_seq;
		au_export_release(&x);
	}
	snprintf(msg, cap, "%s", err.msg);
	return rc;
}

/* Must be valid with 1, 2 and 3 threads. */
static void expect_valid(const char *what, const dcr_buf *b, const au_verify_opts *o)
{
	char msg[DCR_ERR_MSG_BYTES];
	uint64_t bad;
	for (unsigned t = 1; t <= 3; t++) {
		int rc = verify_bytes(b, o, t, msg, sizeof(msg), &bad);
		if (rc) {
			fprintf(stderr, "%s (threads %u): expected valid, got: %s\n", what, t, msg);
			t_failures++;
		}
	}
}

/* Must be invalid, at seq (UINT64_MAX: not an event) with a message that
 * contains want, with 1, 2 and 3 threads. */
static void expect_invalid(const char *what, const dcr_buf *b, const au_verify_opts *o,
                           uint64_t seq, const char *want)
{
	char msg[DCR_ERR_MSG_BYTES], prefix[64];
	uint64_t bad;
	for (unsigned t = 1; t <= 3; t++) {
		int rc = verify_bytes(b, o, t, msg, sizeof(msg), &bad);
		bool ok = rc != 0 && strstr(msg, want) != NULL;
		if (seq != UINT64_MAX) {
			snprintf(prefix, sizeof(prefix), "seq %llu", (unsigned long long)seq);
			ok = ok && bad == seq && strncmp(msg, prefix, strlen(prefix)) == 0;
		}
		if (!ok) {
			fprintf(stderr,
			        "%s (threads %u): expected invalid at seq %lld with \"%s\", got rc "
			        "%d at %lld: %s\n",
			        what, t, seq == UINT64_MAX ? -1LL : (long long)seq, want, rc,
			        bad == UINT64_MAX ? -1LL : (long long)bad, msg);
			t_failures++;
		} else if (t == 1) {
			printf("ok: %s: invalid: %s\n", what, msg);
		}
	}
}

/* Offset of needle inside entry i's envelope. */
static size_t find_in(const view *v, size_t i, const void *needle, size_t n)
{
	const uint8_t *p = memmem(v->ent[i], v->len[i] - 64, needle, n);
	DCR_ASSERT(p);
	return (size_t)(p - v->ent[i]);
}

static void setup(void)
{
	char *fa, *fi;
	DCR_ASSERT(dcr_key_generate(&kd) == 0);
	DCR_ASSERT(dcr_key_generate(&ka) == 0);
	DCR_ASSERT(dcr_key_generate(&ki) == 0);
	DCR_ASSERT(dcr_key_generate(&km) == 0);
	dcr_key_public(kd, pd);
	dcr_key_public(ka, pa);
	dcr_key_public(ki, pi_);
	dcr_key_public(km, pm);
	fa = dcr_pub_format(pa);
	fi = dcr_pub_format(pi_);
	def_json = dcr_asprintf(
	    "{\"format\": \"dcr.room/1\", \"name\": \"forge-test\",\n"
	    " \"description\": \"audit forgery test\",\n"
	    " \"settings\": {\"require_provisioned\": true},\n"
	    " \"participants\": [\n"
	    "  {\"email\": \"anna@bank.example\", \"key\": \"%s\",\n"
	    "   \"owner_of\": [\"bank_customers\"], \"analyst_of\": [\"overlap\"]},\n"
	    "  {\"email\": \"ian@insurer.example\", \"key\": \"%s\",\n"
	    "   \"owner_of\": [\"insurer_customers\"], \"analyst_of\": [\"overlap\"]}],\n"
	    " \"datasets\": [\n"
	    "  {\"name\": \"bank_customers\", \"columns\": [{\"name\": \"email\", \"type\": "
	    "\"string\"}]},\n"
	    "  {\"name\": \"insurer_customers\", \"columns\": [{\"name\": \"email\", \"type\": "
	    "\"string\"}]}],\n"
	    " \"computations\": [\n"
	    "  {\"name\": \"overlap\", \"kind\": \"sql\",\n"
	    "   \"query\": \"SELECT COUNT(*) AS n FROM bank_customers b JOIN insurer_customers "
	    "i USING (email)\"}]}\n",
	    fa, fi);
	free(fa);
	free(fi);
}

static void teardown(void)
{
	dcr_key_free(kd);
	dcr_key_free(ka);
	dcr_key_free(ki);
	dcr_key_free(km);
	free(def_json);
	rm_state_release(&honest_final);
}

/* ---- the checks --------------------------------------------------------------- */

static void test_honest(tlog *l, dcr_buf *out)
{
	view v;
	dcr_err err;

	/* The honest log replays (this also checks the test's own events). */
	rm_state_init(&honest_final, pd);
	for (size_t i = 0; i < l->n; i++) {
		es_event ev;
		if (au_check_entry(l->room, i, l->e[i].data, l->e[i].len, &ev, &err) ||
		    au_apply(&honest_final, &ev, i, &err)) {
			fprintf(stderr, "honest log does not replay: %s\n", err.msg);
			abort();
		}
		es_event_release(&ev);
	}
	CHECK(honest_final.status == RM_STOPPED);
	view_of(&v, l);
	export_view(&v, l->room, NULL, out);
	expect_valid("honest log", out, NULL);

	/* Decoding round trip. */
	au_export x;
	CHECK(au_export_decode(out->data, out->len, &x, &err) == 0);
	CHECK(x.n == l->n && x.nparticipants == 2);
	CHECK(strcmp(x.participants[0].email, "anna@bank.example") == 0);
	CHECK(memcmp(x.participants[1].key, pi_, 32) == 0);
	CHECK(memcmp(x.daemon_key, pd, 32) == 0);
	for (size_t i = 0; i < l->n; i++)
		CHECK(x.entry_n[i] == l->e[i].len &&
		      memcmp(x.entry[i], l->e[i].data, x.entry_n[i]) == 0);
	au_report rep;
	CHECK(au_verify(&x, NULL, &rep, &err) == 0);
	CHECK(strcmp(rep.name, "forge-test") == 0 && rep.events == l->n);
	au_export_release(&x);

	/* Trailing byte, truncation: structure errors, not crashes. */
	dcr_buf t;
	dcr_buf_init(&t);
	dcr_buf_append(&t, out->data, out->len);
	dcr_buf_append_u8(&t, 0);
	expect_invalid("export with a trailing byte", &t, NULL, UINT64_MAX, "export file");
	t.len = out->len - 1;
	expect_invalid("truncated export", &t, NULL, UINT64_MAX, "export file");
	dcr_buf_release(&t);
	view_release(&v);
}

static void test_bitflips(const tlog *l)
{
	dcr_buf out;
	view v;
	char what[128];
	dcr_buf_init(&out);

	struct {
		size_t seq;
		const char *where;
		const void *needle;
		size_t n;
		int bit;
		const char *want;
	} cases[] = {
	    {3, "dataset name", "bank_customers", 14, 0, "bad signature"},
	    {3, "actor key", pa, 32, 3, "bad signature"},
	    {6, "run id", "00000000000000000000000000abc01", 31, 1, "bad signature"},
	    {0, "definition text", "forge-test", 10, 5, "bad signature"},
	    {11, "stop reason", "study finished", 14, 2, "bad signature"},
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		view_of(&v, l);
		size_t off = find_in(&v, cases[c].seq, cases[c].needle, cases[c].n) + 2;
		view_flip(&v, cases[c].seq, off, cases[c].bit);
		export_view(&v, l->room, NULL, &out);
		snprintf(what, sizeof(what), "bit flip in seq %zu envelope (%s)", cases[c].seq,
		         cases[c].where);
		expect_invalid(what, &out, NULL, cases[c].seq, cases[c].want);
		view_release(&v);
	}
	/* Structural bytes of the envelope: the map header, the type string:
	 * the event no longer decodes, or decodes to something unsigned. */
	size_t structural[] = {0, 1, 9};
	for (size_t c = 0; c < 3; c++) {
		view_of(&v, l);
		view_flip(&v, 4, structural[c], 6);
		export_view(&v, l->room, NULL, &out);
		snprintf(what, sizeof(what), "bit flip at envelope byte %zu of seq 4",
		         structural[c]);
		expect_invalid(what, &out, NULL, 4, "seq 4");
		view_release(&v);
	}
	/* Signature bytes: first, middle, last. */
	size_t sigoff[] = {64, 31, 1};
	for (size_t c = 0; c < 3; c++) {
		view_of(&v, l);
		view_flip(&v, 7, v.len[7] - sigoff[c], 0);
		export_view(&v, l->room, NULL, &out);
		snprintf(what, sizeof(what), "bit flip in seq 7 signature (byte %zu from end)",
		         sigoff[c]);
		expect_invalid(what, &out, NULL, 7, "seq 7 (result.retrieved): bad signature");
		view_release(&v);
	}
	/* Flip under the original checkpoint too: the event check comes first. */
	view_of(&v, l);
	es_checkpoint cp;
	sign_cp(l->room, v.ent, v.len, v.n, kd, &cp);
	view_flip(&v, 5, v.len[5] - 5, 7);
	export_view(&v, l->room, &cp, &out);
	expect_invalid("bit flip under the honest checkpoint", &out, NULL, 5,
	               "seq 5 (run.requested): bad signature");
	view_release(&v);
	/* Two bad events: the first is named, whatever the thread split. */
	view_of(&v, l);
	view_flip(&v, 9, v.len[9] - 2, 1);
	view_flip(&v, 2, v.len[2] - 2, 1);
	export_view(&v, l->room, NULL, &out);
	expect_invalid("two bad signatures", &out, NULL, 2,
	               "seq 2 (room.published): bad signature");
	view_release(&v);
	dcr_buf_release(&out);
}

static void test_reorder(const tlog *l)
{
	dcr_buf out;
	view v;
	dcr_buf_init(&out);

	view_of(&v, l);
	memmove(&v.ent[4], &v.ent[5], (v.n - 5) * sizeof(v.ent[0]));
	memmove(&v.len[4], &v.len[5], (v.n - 5) * sizeof(v.len[0]));
	v.n--;
	export_view(&v, l->room, NULL, &out);
	expect_invalid("dropped event 4", &out, NULL, 4, "signed for position 5");
	view_release(&v);

	/* Dropping the last event under the old checkpoint. */
	view_of(&v, l);
	es_checkpoint cp;
	sign_cp(l->room, v.ent, v.len, v.n, kd, &cp);
	v.n--;
	export_view(&v, l->room, &cp, &out);
	expect_invalid("dropped last event", &out, NULL, UINT64_MAX,
	               "checkpoint covers 12 events but the log has 11");
	view_release(&v);

	view_of(&v, l);
	const uint8_t *t = v.ent[7];
	size_t tn = v.len[7];
	v.ent[7] = v.ent[8];
	v.len[7] = v.len[8];
	v.ent[8] = t;
	v.len[8] = tn;
	export_view(&v, l->room, NULL, &out);
	expect_invalid("swapped events 7 and 8", &out, NULL, 7, "signed for position 8");
	view_release(&v);
	dcr_buf_release(&out);
}

/* A one-event log f in l's room: a dataset.provisioned of bank_customers
 * signed by k at seq, with made-up values (blob, n bytes and rows, file). */
static void forged_provision(const tlog *l, tlog *f, const dcr_key *k, uint64_t seq,
                             const char *blob, uint64_t n, const char *file)
{
	dcr_buf b;
	rm_provision p;

	tlog_init(f, 0);
	memcpy(f->room, l->room, 16);
	f->ts = l->ts;
	dcr_buf_init(&b);
	memset(&p, 0, sizeof(p));
	p.dataset = "bank_customers";
	p.blob = (char *)blob;
	p.bytes = n;
	p.rows = n;
	p.file = (char *)file;
	rm_body_provisioned(&b, &p);
	tlog_add_at(f, k, seq, RM_EV_PROVISIONED, &b);
	dcr_buf_release(&b);
}

/* The host appends an event claiming to be from anna, signed with its own
 * key (it has no other), and re-signs the checkpoint. */
static void forge_appended(const tlog *l, dcr_buf *out)
{
	tlog f;
	view v;

	forged_provision(l, &f, kd, l->n, "evil", 1, "x.csv");
	/* Put anna's key in the actor field. */
	uint8_t *act = memmem(f.e[0].data, f.e[0].len - 64, pd, 32);
	DCR_ASSERT(act);
	memcpy(act, pa, 32);
	view_of(&v, l);
	v.ent[v.n] = f.e[0].data;
	v.len[v.n] = f.e[0].len;
	v.n++;
	export_view(&v, l->room, NULL, out);
	view_release(&v);
	tlog_release(&f);
}

/* ian, validly signing, provisions anna's dataset right after publish
 * (the daemon would refuse it; a dishonest host could slip it in). */
static void forge_owner(const tlog *l, dcr_buf *out)
{
	tlog f;
	view v;

	forged_provision(l, &f, ki, 3, "b9", 9, "fake.csv");
	view_of(&v, l);
	v.ent[3] = f.e[0].data; /* replaces anna's provision at position 3 */
	v.len[3] = f.e[0].len;
	export_view(&v, l->room, NULL, out);
	view_release(&v);
	tlog_release(&f);
}

static void test_forgeries(const tlog *l)
{
	dcr_buf out;
	dcr_buf_init(&out);
	forge_appended(l, &out);
	expect_invalid("appended event with a forged signature", &out, NULL, 12,
	               "seq 12 (dataset.provisioned): bad signature");
	forge_owner(l, &out);
	expect_invalid("provision by a non-owner", &out, NULL, 3,
	               "seq 3 (dataset.provisioned): actor ian@insurer.example is not an owner of "
	               "dataset bank_customers");
	dcr_buf_release(&out);
}

static void test_checkpoints(const tlog *l)
{
	dcr_buf out;
	view v;
	tlog other, fork;
	es_checkpoint cp, old;
	au_verify_opts o;
	dcr_buf_init(&out);

	/* A checkpoint of another room's log. */
	tlog_init(&other, 0x22);
	build_honest(&other, 5);
	view_of(&v, &other);
	sign_cp(other.room, v.ent, v.len, v.n, kd, &cp);
	view_release(&v);
	view_of(&v, l);
	export_view(&v, l->room, &cp, &out);
	expect_invalid("checkpoint of another room", &out, NULL, UINT64_MAX,
	               "checkpoint is for room 2222");

	/* Same room, same size, different events (a fork). */
	tlog_init(&fork, 0);
	memcpy(fork.room, l->room, 16);
	fork.ts = l->ts + 77777;
	build_honest(&fork, 12);
	view fv;
	view_of(&fv, &fork);
	sign_cp(fork.room, fv.ent, fv.len, fv.n, kd, &cp);
	export_view(&v, l->room, &cp, &out);
	expect_invalid("checkpoint of a forked log", &out, NULL, UINT64_MAX,
	               "but the signed checkpoint says");

	/* Checkpoint signed by someone else. */
	sign_cp(l->room, v.ent, v.len, v.n, km, &cp);
	export_view(&v, l->room, &cp, &out);
	expect_invalid("checkpoint signed by another key", &out, NULL, UINT64_MAX,
	               "not by the daemon key");

	/* Checkpoint whose signature is broken. */
	sign_cp(l->room, v.ent, v.len, v.n, kd, &cp);
	cp.sig[10] ^= 1;
	export_view(&v, l->room, &cp, &out);
	expect_invalid("checkpoint with a bad signature", &out, NULL, UINT64_MAX,
	               "checkpoint: bad signature");

	/* Older checkpoints. */
	export_view(&v, l->room, NULL, &out);
	memset(&o, 0, sizeof(o));
	o.old_cp = &old;
	for (size_t k = 1; k <= v.n; k++) {
		sign_cp(l->room, v.ent, v.len, k, kd, &old);
		expect_valid("older checkpoint of a prefix", &out, &o);
	}
	sign_cp(fork.room, fv.ent, fv.len, 6, kd, &old);
	expect_invalid("older checkpoint of a forked log", &out, &o, UINT64_MAX,
	               "not an extension of the older checkpoint");
	sign_cp(l->room, v.ent, v.len, 6, km, &old);
	expect_invalid("older checkpoint signed by another key", &out, &o, UINT64_MAX,
	               "older checkpoint is signed by");
	/* The log was truncated after the older checkpoint. */
	sign_cp(l->room, v.ent, v.len, v.n, kd, &old);
	view tv = v;
	tv.n = 8;
	export_view(&tv, l->room, NULL, &out);
	expect_invalid("log truncated below an older checkpoint", &out, &o, UINT64_MAX,
	               "history was truncated");

	/* au_checkpoint_load accepts a checkpoint file and an export file. */
	dcr_buf cpf;
	dcr_err err;
	es_checkpoint got;
	dcr_buf_init(&cpf);
	sign_cp(l->room, v.ent, v.len, 4, kd, &old);
	es_checkpoint_encode(&old, &cpf);
	CHECK(au_checkpoint_load(cpf.data, cpf.len, &got, &err) == 0);
	CHECK(got.size == 4 && memcmp(got.root, old.root, 32) == 0);
	view pv = v;
	pv.n = 4;
	export_view(&pv, l->room, NULL, &cpf);
	CHECK(au_checkpoint_load(cpf.data, cpf.len, &got, &err) == 0);
	CHECK(got.size == 4 && memcmp(got.root, old.root, 32) == 0);
	/* The export's checkpoint bin starts at byte 14 (map, key, bin8
	 * header); byte 124 is inside its root or signature. */
	cpf.data[124] ^= 1;
	CHECK(au_checkpoint_load(cpf.data, cpf.len, &got, &err) != 0);
	CHECK(strstr(err.msg, "signature does not verify") != NULL);
	dcr_buf_release(&cpf);

	/* Daemon key pinning. */
	memset(&o, 0, sizeof(o));
	export_view(&v, l->room, NULL, &out);
	o.daemon_key = pd;
	expect_valid("pinned daemon key", &out, &o);
	o.daemon_key = pm;
	expect_invalid("wrong pinned daemon key", &out, &o, UINT64_MAX, "but you trust");

	view_release(&v);
	view_release(&fv);
	tlog_release(&other);
	tlog_release(&fork);
	dcr_buf_release(&out);
}

static void test_participants(const tlog *l)
{
	dcr_buf out;
	view v;
	dcr_buf_init(&out);
	view_of(&v, l);
	export_view(&v, l->room, NULL, &out);
	/* Change one letter of an email (same length keeps the structure);
	 * the definitions inside the entries hold the same text, so search
	 * from the participants key on. */
	uint8_t *sec = memmem(out.data, out.len, "\xacparticipants", 13);
	DCR_ASSERT(sec);
	size_t rest = out.len - (size_t)(sec - out.data);
	uint8_t *p = memmem(sec, rest, "ian@insurer", 11);
	DCR_ASSERT(p);
	p[0] = 'j';
	expect_invalid("tampered participant email", &out, NULL, UINT64_MAX,
	               "participants[1] (jan@insurer.example) does not match");
	/* A participant key swapped for mallory's. */
	export_view(&v, l->room, NULL, &out);
	sec = memmem(out.data, out.len, "\xacparticipants", 13);
	DCR_ASSERT(sec);
	p = memmem(sec, out.len - (size_t)(sec - out.data), pa, 32);
	DCR_ASSERT(p);
	memcpy(p, pm, 32);
	expect_invalid("tampered participant key", &out, NULL, UINT64_MAX,
	               "participants[0] (anna@bank.example) does not match");
	view_release(&v);
	dcr_buf_release(&out);
}

static void test_proofs(const tlog *l)
{
	view v;
	es_checkpoint cp;
	uint8_t(*leaves)[32];
	dcr_err err;
	char type[ES_TYPE_BYTES_MAX];

	view_of(&v, l);
	sign_cp(l->room, v.ent, v.len, v.n, kd, &cp);
	leaves = dcr_malloc(v.n * 32);
	for (size_t i = 0; i < v.n; i++)
		es_leaf_hash(v.ent[i], v.len[i], leaves[i]);
	for (size_t i = 0; i < v.n; i++) {
		au_proof p, q;
		dcr_buf b;
		memset(&p, 0, sizeof(p));
		p.cp = cp;
		p.entry = v.ent[i];
		p.entry_n = v.len[i];
		p.index = i;
		CHECK(es_merkle_inclusion((const uint8_t(*)[32])leaves, v.n, i, p.hashes,
		                          &p.nhashes) == 0);
		dcr_buf_init(&b);
		au_proof_encode(&b, &p);
		CHECK(au_proof_decode(b.data, b.len, &q, &err) == 0);
		CHECK(au_proof_verify(&q, pd, type, &err) == 0);
		if (i == 3)
			CHECK(strcmp(type, "dataset.provisioned") == 0);
		CHECK(au_proof_verify(&q, pm, type, &err) != 0);
		q.index = (i + 1) % v.n;
		CHECK(au_proof_verify(&q, NULL, type, &err) != 0);
		q.index = i;
		if (q.nhashes) {
			q.hashes[0][5] ^= 1;
			CHECK(au_proof_verify(&q, NULL, type, &err) != 0 &&
			      strstr(err.msg, "inclusion proof does not verify"));
			q.hashes[0][5] ^= 1;
		}
		b.data[b.len - 40] ^= 1; /* inside the last proof hash or the entry */
		if (au_proof_decode(b.data, b.len, &q, &err) == 0)
			CHECK(au_proof_verify(&q, NULL, type, &err) != 0);
		dcr_buf_release(&b);
	}
	free(leaves);
	view_release(&v);
}

/* Any single flipped bit anywhere in an export file (header, checkpoint,
 * keys, entries, participants) makes it invalid, and no prefix of it
 * decodes: nothing in the file is unauthenticated. Every length is tried
 * for truncation; for flips, every third byte (every region of the file)
 * with a rotating bit, to stay fast under ASan. */
static void test_every_byte(const tlog *l)
{
	dcr_buf out, t;
	view v;
	char msg[DCR_ERR_MSG_BYTES];
	uint64_t bad;
	size_t missed = 0;

	dcr_buf_init(&out);
	dcr_buf_init(&t);
	view_of(&v, l);
	export_view(&v, l->room, NULL, &out);
	for (size_t i = 0; i < out.len; i++) {
		au_export x;
		dcr_err err;
		if (au_export_decode(out.data, i, &x, &err) == 0) {
			fprintf(stderr, "prefix of %zu bytes decodes\n", i);
			t_failures++;
			au_export_release(&x);
		}
	}
	size_t nflips = 0;
	for (size_t i = 0; i < out.len; i += 3) { /* 3 and 8 coprime: every bit index */
		nflips++;
		dcr_buf_reset(&t);
		dcr_buf_append(&t, out.data, out.len);
		t.data[i] ^= (uint8_t)(1u << (i % 8));
		if (verify_bytes(&t, NULL, 2, msg, sizeof(msg), &bad) == 0) {
			if (missed++ < 5)
				fprintf(stderr, "flip of bit %zu of byte %zu is not detected\n",
				        i % 8, i);
			t_failures++;
		}
	}
	printf("ok: %zu single-bit flips (every third byte) and %zu truncations of an export, "
	       "all refused\n",
	       nflips, out.len);
	view_release(&v);
	dcr_buf_release(&t);
	dcr_buf_release(&out);
}

/* ---- crafted logs, one per rule of docs/rules.md the rules half checks ----------
 * Each is an export (re-signed checkpoint, as a dishonest host could make)
 * with the verdict `dcr audit verify` must give; tests/e2e/audit_forge.sh
 * requires tests/e2e/audit_rules.py, written from the docs alone, to give
 * the same verdict on each. */

typedef struct rcase {
	const char *name;
	dcr_buf out;
	uint64_t seq; /* UINT64_MAX: valid (or want == NULL) */
	const char *want;
} rcase;

#define NCASES 65 /* + 8 of build_request_cases */
static rcase cases[NCASES];
static size_t ncases;

static rcase *case_new(const char *name, uint64_t seq, const char *want)
{
	DCR_ASSERT(ncases < NCASES);
	rcase *c = &cases[ncases++];
	c->name = name;
	c->seq = seq;
	c->want = want;
	dcr_buf_init(&c->out);
	return c;
}

/* l with entry seq replaced by (k, type, body) signed at seq; exported. */
static void replace_export(const tlog *l, size_t seq, const dcr_key *k, const char *type,
                           dcr_buf *body, dcr_buf *out)
{
	tlog f;
	view v;
	tlog_init(&f, 0);
	memcpy(f.room, l->room, 16);
	f.ts = l->ts;
	tlog_add_at(&f, k, seq, type, body);
	view_of(&v, l);
	v.ent[seq] = f.e[0].data;
	v.len[seq] = f.e[0].len;
	export_view(&v, l->room, NULL, out);
	view_release(&v);
	tlog_release(&f);
}

/* A run.completed body for run 1 of the honest log with the given raw
 * inputs and schema (msgpack), other fields as the honest one. */
static void completed_raw(dcr_buf *b, const dcr_buf *inputs, const dcr_buf *schema,
                          bool rows_noncanonical)
{
	char id[33];
	uint8_t h[32];
	dcr_mpw w;
	run_id(1, id);
	memset(h, 0x77, 32);
	dcr_buf_reset(b);
	dcr_mpw_init(&w, b);
	dcr_mpw_map(&w, 10);
	dcr_mpw_str(&w, "computation");
	dcr_mpw_str(&w, "overlap");
	dcr_mpw_str(&w, "duration_ms");
	dcr_mpw_uint(&w, 5);
	dcr_mpw_str(&w, "inputs");
	dcr_mpw_raw(&w, inputs->data, inputs->len);
	dcr_mpw_str(&w, "result_blob");
	dcr_mpw_str(&w, "r1");
	dcr_mpw_str(&w, "result_bytes");
	dcr_mpw_uint(&w, 10);
	dcr_mpw_str(&w, "result_sha256");
	dcr_mpw_bin(&w, h, 32);
	dcr_mpw_str(&w, "rows");
	if (rows_noncanonical)
		dcr_mpw_raw(&w, "\xcd\x00\x01", 3); /* 1 as uint16 */
	else
		dcr_mpw_uint(&w, 1);
	dcr_mpw_str(&w, "run");
	dcr_mpw_str(&w, id);
	dcr_mpw_str(&w, "schema");
	dcr_mpw_raw(&w, schema->data, schema->len);
	dcr_mpw_str(&w, "suppressed");
	dcr_mpw_uint(&w, 0);
}

/* An envelope signed by k around a body that need not be canonical
 * (es_event_build refuses those): what a host that signs garbage makes. */
static void raw_event(const tlog *l, const dcr_key *k, uint64_t seq, const char *type,
                      const dcr_buf *body, dcr_buf *out)
{
	uint8_t pub[32], sig[64];
	char hex[ES_ROOM_HEX_BYTES];
	dcr_mpw w;
	dcr_key_public(k, pub);
	es_room_format(l->room, hex);
	dcr_buf_reset(out);
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 7);
	dcr_mpw_str(&w, "actor");
	dcr_mpw_bin(&w, pub, 32);
	dcr_mpw_str(&w, "body");
	dcr_mpw_raw(&w, body->data, body->len);
	dcr_mpw_str(&w, "room");
	dcr_mpw_str(&w, hex);
	dcr_mpw_str(&w, "seq");
	dcr_mpw_uint(&w, seq);
	dcr_mpw_str(&w, "ts");
	dcr_mpw_uint(&w, l->ts + 1);
	dcr_mpw_str(&w, "type");
	dcr_mpw_str(&w, type);
	dcr_mpw_str(&w, "v");
	dcr_mpw_uint(&w, 1);
	DCR_ASSERT(dcr_sign(k, DCR_DOMAIN_EVENT, out->data, out->len, sig) == 0);
	dcr_buf_append(out, sig, 64);
}

/* The honest log built with another definition, exported whole. */
static void honest_with(const char *def, size_t upto, dcr_buf *out)
{
	char *saved = def_json;
	tlog l2;
	view v;
	def_json = (char *)def;
	tlog_init(&l2, 0xd1);
	build_honest(&l2, upto);
	def_json = saved;
	view_of(&v, &l2);
	export_view(&v, l2.room, NULL, out);
	view_release(&v);
	tlog_release(&l2);
}

/* Replaces from by to in def_json (must occur). Heap. */
static char *def_edit(const char *from, const char *to)
{
	const char *at = strstr(def_json, from);
	DCR_ASSERT(at);
	return dcr_asprintf("%.*s%s%s", (int)(at - def_json), def_json, to, at + strlen(from));
}

#define RAW(var, body)                                                                             \
	dcr_buf var;                                                                               \
	do {                                                                                       \
		dcr_mpw w_;                                                                        \
		dcr_buf_init(&var);                                                                \
		dcr_mpw_init(&w_, &var);                                                           \
		dcr_mpw *w = &w_;                                                                  \
		body;                                                                              \
	} while (0)

/* Development runs (rules.md "Development runs"): the honest log up to
 * the retrieval (seq 7) with def (NULL: development on), then dev events
 * from evs, exported as case name. */
typedef struct dev_ev {
	int who; /* 0 anna, 1 ian, 2 daemon */
	const char *type;
	dcr_buf body;
} dev_ev;

static void dev_case(const char *name, uint64_t seq, const char *want, const char *def,
                     dev_ev *evs, size_t n)
{
	char *saved = def_json, *on = NULL;
	const dcr_key *keys[3] = {ka, ki, kd};
	tlog l2;
	view v;
	rcase *c = case_new(name, seq, want);
	if (!def)
		def = on = def_edit("\"settings\": {\"require_provisioned\": true}",
		                    "\"settings\": {\"require_provisioned\": true, "
		                    "\"development\": true}");
	def_json = (char *)def;
	tlog_init(&l2, 0xd2);
	build_honest(&l2, 8);
	def_json = saved;
	for (size_t i = 0; i < n; i++)
		tlog_add(&l2, keys[evs[i].who], evs[i].type, &evs[i].body);
	view_of(&v, &l2);
	export_view(&v, l2.room, NULL, &c->out);
	view_release(&v);
	tlog_release(&l2);
	free(on);
}

static void build_dev_cases(void)
{
	static const char *const both[] = {"bank_customers", "overlap"};
	static const char *const swapped[] = {"overlap", "bank_customers"};
	static const char *const bank[] = {"bank_customers"};
	char id1[33], id2[33];
	rm_dev_input in[2] = {{.name = "bank_customers"}, {.name = "overlap"}};
	rm_dev d;
	dev_ev e[4];

	for (size_t i = 0; i < 4; i++)
		dcr_buf_init(&e[i].body);
	run_id(41, id1);
	run_id(42, id2);
	memset(in[0].sha256, 0x3f, 32); /* bank_customers as provisioned */
	memset(in[1].sha256, 0x77, 32); /* overlap's result (run 1) */
	memset(&d, 0, sizeof d);
	d.id = id1;
	d.inputs = in;
	d.ninputs = 2;
	d.result_blob = "d1";
	d.result_bytes = 3;
	memset(d.result_sha256, 0x99, 32);
	d.logs_blob = "";
	dcr_sha256("", 0, d.logs_sha256);

	/* the owner reads their dataset and a result they are analyst of;
	 * ian runs python over nothing, which fails */
	e[0].who = 0, e[0].type = RM_EV_DEV_REQUESTED;
	rm_body_dev_requested(&e[0].body, id1, RM_DEV_SQL, "SELECT 1 AS x", both, 2);
	e[1].who = 2, e[1].type = RM_EV_DEV_COMPLETED;
	rm_body_dev_completed(&e[1].body, &d);
	e[2].who = 1, e[2].type = RM_EV_DEV_REQUESTED;
	rm_body_dev_requested(&e[2].body, id2, RM_DEV_PYTHON, "print(1)\n", NULL, 0);
	e[3].who = 2, e[3].type = RM_EV_DEV_FAILED;
	d.id = id2;
	d.error = "not supported";
	rm_body_dev_failed(&e[3].body, &d);
	dev_case("rules-dev-ok", UINT64_MAX, NULL, NULL, e, 4);

	/* ian reads anna's dataset: a validly signed forgery of the rules */
	e[0].who = 1;
	rm_body_dev_requested(&e[0].body, id1, RM_DEV_SQL, "SELECT * FROM bank_customers", bank, 1);
	dev_case("rules-dev-not-owner", 8,
	         "actor ian@insurer.example is not an owner of dataset bank_customers", NULL, e,
	         1);
	/* inputs not sorted */
	e[0].who = 0;
	rm_body_dev_requested(&e[0].body, id1, RM_DEV_SQL, "SELECT 1", swapped, 2);
	dev_case("rules-dev-unsorted", 8, "is not after", NULL, e, 1);
	/* development off: refused with that reason */
	rm_body_dev_requested(&e[0].body, id1, RM_DEV_SQL, "SELECT 1", NULL, 0);
	dev_case("rules-dev-off", 8, "development runs are off in this room", def_json, e, 1);
	/* the daemon reports another hash than the one recorded */
	rm_body_dev_requested(&e[0].body, id1, RM_DEV_SQL, "SELECT 1 AS x", both, 2);
	d.id = id1;
	memset(in[0].sha256, 0x4e, 32);
	rm_body_dev_completed(&e[1].body, &d);
	dev_case("rules-dev-wrong-hash", 9, "body.inputs.bank_customers", NULL, e, 2);
	/* no logs kept, but a hash of something */
	rm_body_dev_requested(&e[0].body, id1, RM_DEV_SQL, "SELECT 1 AS x", both, 2);
	memset(d.logs_sha256, 0, 32);
	rm_body_dev_failed(&e[1].body, &d);
	e[1].type = RM_EV_DEV_FAILED;
	dev_case("rules-dev-logs-hash", 9, "must be the SHA-256 of no bytes", NULL, e, 2);
	/* an outcome signed by a participant */
	rm_body_dev_requested(&e[0].body, id1, RM_DEV_SQL, "SELECT 1 AS x", both, 2);
	dcr_sha256("", 0, d.logs_sha256);
	rm_body_dev_failed(&e[1].body, &d);
	e[1].who = 0;
	dev_case("rules-dev-outcome-by-participant", 9, "is not the daemon", NULL, e, 2);
	for (size_t i = 0; i < 4; i++)
		dcr_buf_release(&e[i].body);
}

static void build_cases(const tlog *l)
{
	dcr_buf b;
	uint8_t h3f[32], h4e[32], h00[32];
	char *t, *fi;
	char id[33];
	rcase *c;

	memset(h3f, 0x3f, 32);
	memset(h4e, 0x4e, 32);
	memset(h00, 0, 32);
	dcr_buf_init(&b);
	RAW(good_in, dcr_mpw_map(w, 2); dcr_mpw_str(w, "bank_customers"); dcr_mpw_bin(w, h3f, 32);
	    dcr_mpw_str(w, "insurer_customers"); dcr_mpw_bin(w, h4e, 32));
	RAW(good_schema, dcr_mpw_array(w, 1); dcr_mpw_array(w, 2); dcr_mpw_str(w, "n");
	    dcr_mpw_str(w, "integer"));

	/* the hand-written honest completion is accepted (the base of the
	 * variants below) */
	completed_raw(&b, &good_in, &good_schema, false);
	c = case_new("rules-completed-ok", UINT64_MAX, NULL);
	replace_export(l, 6, kd, RM_EV_RUN_COMPLETED, &b, &c->out);

	/* run.failed carries a data-free class, never a message that could
	 * quote data (privacy.md, "Errors"): a daemon that leaks is caught */
	run_id(2, id);
	rm_body_run_failed(&b, id, "overlap", "JSON path error near 'victim@bank.example=987654.32'");
	c = case_new("rules-failed-leaky-error", 9, "not one of the data-free error classes");
	replace_export(l, 9, kd, RM_EV_RUN_FAILED, &b, &c->out);
	rm_body_run_failed(&b, id, "overlap", "sql error: json path");
	c = case_new("rules-failed-class-ok", UINT64_MAX, NULL);
	replace_export(l, 9, kd, RM_EV_RUN_FAILED, &b, &c->out);
	/* the class of a run past its temporary disk quota (compute.md) */
	rm_body_run_failed(&b, id, "overlap", "temp disk limit");
	c = case_new("rules-failed-class-ok-tmp", UINT64_MAX, NULL);
	replace_export(l, 9, kd, RM_EV_RUN_FAILED, &b, &c->out);

	/* inputs: a wrong hash, a missing dataset, {}, nil for a provisioned one */
	RAW(in_wrong, dcr_mpw_map(w, 2); dcr_mpw_str(w, "bank_customers"); dcr_mpw_bin(w, h00, 32);
	    dcr_mpw_str(w, "insurer_customers"); dcr_mpw_bin(w, h4e, 32));
	completed_raw(&b, &in_wrong, &good_schema, false);
	c = case_new("rules-input-wrong-hash", 6, "body.inputs.bank_customers: sha256");
	replace_export(l, 6, kd, RM_EV_RUN_COMPLETED, &b, &c->out);
	RAW(in_missing, dcr_mpw_map(w, 1); dcr_mpw_str(w, "bank_customers");
	    dcr_mpw_bin(w, h3f, 32));
	completed_raw(&b, &in_missing, &good_schema, false);
	c = case_new("rules-input-missing", 6, "dataset insurer_customers is missing");
	replace_export(l, 6, kd, RM_EV_RUN_COMPLETED, &b, &c->out);
	RAW(in_empty, dcr_mpw_map(w, 0));
	completed_raw(&b, &in_empty, &good_schema, false);
	c = case_new("rules-input-empty", 6, "is missing");
	replace_export(l, 6, kd, RM_EV_RUN_COMPLETED, &b, &c->out);
	RAW(in_nil, dcr_mpw_map(w, 2); dcr_mpw_str(w, "bank_customers"); dcr_mpw_nil(w);
	    dcr_mpw_str(w, "insurer_customers"); dcr_mpw_bin(w, h4e, 32));
	completed_raw(&b, &in_nil, &good_schema, false);
	c = case_new("rules-input-nil", 6, "body.inputs.bank_customers: expected");
	replace_export(l, 6, kd, RM_EV_RUN_COMPLETED, &b, &c->out);
	RAW(in_json, dcr_mpw_str(w, "{\"bank_customers\": \"3f3f\"}"));
	completed_raw(&b, &in_json, &good_schema, false);
	c = case_new("rules-input-json", 6, "body.inputs: expected a map");
	replace_export(l, 6, kd, RM_EV_RUN_COMPLETED, &b, &c->out);

	/* schema: duplicate (case-insensitively), empty name, bad type, JSON text */
	RAW(s_dup, dcr_mpw_array(w, 2); dcr_mpw_array(w, 2); dcr_mpw_str(w, "n");
	    dcr_mpw_str(w, "integer"); dcr_mpw_array(w, 2); dcr_mpw_str(w, "N");
	    dcr_mpw_str(w, "string"));
	completed_raw(&b, &good_in, &s_dup, false);
	c = case_new("rules-schema-duplicate", 6, "is already schema[0]");
	replace_export(l, 6, kd, RM_EV_RUN_COMPLETED, &b, &c->out);
	RAW(s_empty, dcr_mpw_array(w, 1); dcr_mpw_array(w, 2); dcr_mpw_str(w, "");
	    dcr_mpw_str(w, "integer"));
	completed_raw(&b, &good_in, &s_empty, false);
	c = case_new("rules-schema-empty-name", 6, "a column name has 1 to 1024 bytes");
	replace_export(l, 6, kd, RM_EV_RUN_COMPLETED, &b, &c->out);
	RAW(s_type, dcr_mpw_array(w, 1); dcr_mpw_array(w, 2); dcr_mpw_str(w, "n");
	    dcr_mpw_str(w, "INTEGER"));
	completed_raw(&b, &good_in, &s_type, false);
	c = case_new("rules-schema-type", 6, "type must be");
	replace_export(l, 6, kd, RM_EV_RUN_COMPLETED, &b, &c->out);
	RAW(s_none, dcr_mpw_array(w, 0));
	completed_raw(&b, &good_in, &s_none, false);
	c = case_new("rules-schema-no-columns", 6, "0 columns");
	replace_export(l, 6, kd, RM_EV_RUN_COMPLETED, &b, &c->out);
	RAW(s_json, dcr_mpw_str(w, "[[\"n\", \"integer\"]]"));
	completed_raw(&b, &good_in, &s_json, false);
	c = case_new("rules-schema-json", 6, "body.schema: expected an array");
	replace_export(l, 6, kd, RM_EV_RUN_COMPLETED, &b, &c->out);

	/* a body that is not canonical msgpack, validly signed */
	{
		view v;
		dcr_buf ent;
		dcr_buf_init(&ent);
		completed_raw(&b, &good_in, &good_schema, true);
		raw_event(l, kd, 6, RM_EV_RUN_COMPLETED, &b, &ent);
		c = case_new("rules-noncanonical", 6, "seq 6");
		view_of(&v, l);
		v.ent[6] = ent.data;
		v.len[6] = ent.len;
		export_view(&v, l->room, NULL, &c->out);
		view_release(&v);
		dcr_buf_release(&ent);
		dcr_buf_reset(&b);
	}

	/* a run id in upper-case hex */
	snprintf(id, sizeof id, "%032X", 0xabc01);
	rm_body_run_requested(&b, "overlap", id);
	c = case_new("rules-run-id-upper", 5, "32 lowercase hex");
	replace_export(l, 5, ka, RM_EV_RUN_REQUESTED, &b, &c->out);

	/* definitions: a key that is not a curve point, min_rows over the
	 * bound, a \u0000, nesting over 32, a query that reads nothing */
	fi = dcr_pub_format(pi_);
	t = def_edit(fi, "ed25519:AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
	rm_body_definition(&b, t);
	c = case_new("rules-key-not-a-point", 1, "participants[1].key: not an ed25519");
	replace_export(l, 1, ka, RM_EV_SAVED, &b, &c->out);
	free(t);
	free(fi);
	t = def_edit("\"kind\": \"sql\",", "\"kind\": \"sql\", \"privacy\": "
	                                    "{\"min_rows_aggregated\": 1000000001},");
	rm_body_definition(&b, t);
	c = case_new("rules-min-rows", 1, "min_rows_aggregated");
	replace_export(l, 1, ka, RM_EV_SAVED, &b, &c->out);
	free(t);
	t = def_edit("audit forgery test", "audit\\u0000test");
	rm_body_definition(&b, t);
	c = case_new("rules-nul", 1, "seq 1 (room.draft_saved): definition: line");
	replace_export(l, 1, ka, RM_EV_SAVED, &b, &c->out);
	free(t);
	{
		char deep[80] = "";
		for (int i = 0; i < 32; i++)
			deep[i] = '[', deep[32 + i] = ']';
		char *x = dcr_asprintf("{\"x-deep\": %s, ", deep);
		t = def_edit("{", x);
		free(x);
	}
	rm_body_definition(&b, t);
	c = case_new("rules-depth", 1, "nested deeper than 32 levels");
	replace_export(l, 1, ka, RM_EV_SAVED, &b, &c->out);
	free(t);
	t = def_edit("FROM bank_customers b JOIN insurer_customers i USING (email)",
	             "FROM (SELECT 'bank_customers' AS email) -- insurer_customers");
	rm_body_definition(&b, t);
	c = case_new("rules-query-reads-nothing", 1, "the query reads no dataset");
	replace_export(l, 1, ka, RM_EV_SAVED, &b, &c->out);
	free(t);

	/* whole logs with another query: SQL that does not compile is valid
	 * (admission, not a rule); quoted identifiers are read; a name in a
	 * comment is not (so the honest completion names an input the run
	 * does not read) */
	/* the privacy rules (privacy.md): a filtered query in the subset over
	 * columns allowed for their use is valid; group_concat is not */
	{
		char *u = def_edit("\"kind\": \"sql\",",
		                   "\"kind\": \"sql\", \"privacy\": {\"min_rows_aggregated\": 5},");
		for (int k = 0; k < 2; k++) {
			const char *from = k ? "{\"name\": \"insurer_customers\", \"columns\": [{\"name\": "
			                       "\"email\", \"type\": \"string\"}"
			                     : "{\"name\": \"bank_customers\", \"columns\": [{\"name\": "
			                       "\"email\", \"type\": \"string\"}";
			const char *to = k ? "{\"name\": \"insurer_customers\", \"unit\": \"email\", "
			                     "\"columns\": [{\"name\": \"email\", \"type\": \"string\", "
			                     "\"allow\": [\"join\"]}"
			                   : "{\"name\": \"bank_customers\", \"unit\": \"email\", "
			                     "\"columns\": [{\"name\": \"email\", \"type\": \"string\", "
			                     "\"allow\": [\"join\"]}";
			char *at = strstr(u, from);
			DCR_ASSERT(at);
			char *v = dcr_asprintf("%.*s%s%s", (int)(at - u), u, to, at + strlen(from));
			free(u);
			u = v;
		}
		c = case_new("rules-privacy-ok", UINT64_MAX, NULL);
		honest_with(u, 12, &c->out);
		char *at = strstr(u, "COUNT(*) AS n");
		DCR_ASSERT(at);
		char *bad = dcr_asprintf("%.*sgroup_concat(b.email) AS n%s", (int)(at - u), u,
		                         at + strlen("COUNT(*) AS n"));
		rm_body_definition(&b, bad);
		c = case_new("rules-privacy-group-concat", 1,
		             "privacy filter: offset 7 (near \"group_concat\"): group_concat() is not "
		             "allowed");
		replace_export(l, 1, ka, RM_EV_SAVED, &b, &c->out);
		free(bad);
		/* more of the subset, the same verdict from both verifiers */
		static const struct {
			const char *name, *query, *want;
		} pq[] = {
		    {"rules-privacy-bare-column",
		     "SELECT b.email, COUNT(*) AS n FROM bank_customers b JOIN insurer_customers i "
		     "USING (email)",
		     "column bank_customers.email may not be used outside an aggregate"},
		    {"rules-privacy-self-join",
		     "SELECT COUNT(*) AS n FROM bank_customers b JOIN bank_customers i USING (email)",
		     "bank_customers is read twice"},
		    {"rules-privacy-case-in-sum",
		     "SELECT SUM(CASE WHEN 1 THEN 1 END) AS n FROM bank_customers b JOIN "
		     "insurer_customers i USING (email)",
		     "the argument of SUM() must be one column"},
		    {"rules-privacy-join-only",
		     "SELECT COUNT(DISTINCT b.email) AS n FROM bank_customers b JOIN "
		     "insurer_customers i ON b.email = i.email",
		     "may not be used in COUNT()"},
		    {"rules-privacy-ok-having",
		     "SELECT COUNT(*) AS n FROM bank_customers b CROSS JOIN insurer_customers i "
		     "WHERE 1 = 1 HAVING COUNT(*) > 0 ORDER BY 1 LIMIT 5",
		     NULL},
		};
		const char *q0 = "SELECT COUNT(*) AS n FROM bank_customers b JOIN insurer_customers i "
		                 "USING (email)";
		for (size_t k = 0; k < sizeof pq / sizeof pq[0]; k++) {
			char *qa = strstr(u, q0);
			DCR_ASSERT(qa);
			char *v = dcr_asprintf("%.*s%s%s", (int)(qa - u), u, pq[k].query,
			                       qa + strlen(q0));
			c = case_new(pq[k].name, pq[k].want ? 1 : UINT64_MAX, pq[k].want);
			if (pq[k].want) {
				rm_body_definition(&b, v);
				replace_export(l, 1, ka, RM_EV_SAVED, &b, &c->out);
			} else {
				honest_with(v, 12, &c->out);
			}
			free(v);
		}
		free(u);
	}
	t = def_edit("USING (email)", "USING (emial)");
	c = case_new("rules-sql-does-not-compile", UINT64_MAX, NULL);
	honest_with(t, 12, &c->out);
	free(t);
	t = def_edit("FROM bank_customers b JOIN insurer_customers i",
	             "FROM \\\"bank_customers\\\" b JOIN [INSURER_CUSTOMERS] i");
	c = case_new("rules-quoted-identifiers", UINT64_MAX, NULL);
	honest_with(t, 12, &c->out);
	free(t);
	t = def_edit("FROM bank_customers b JOIN insurer_customers i USING (email)",
	             "FROM bank_customers b /* insurer_customers */ WHERE 'insurer_customers' "
	             "<> x'00'");
	c = case_new("rules-name-in-comment", 6, "\"insurer_customers\" is not a dataset run");
	honest_with(t, 12, &c->out);
	free(t);

	/* provisioned again after the request: the run reports the data of
	 * the request (valid), not the new one (invalid) */
	for (int k = 0; k < 2; k++) {
		tlog l3;
		view v;
		rm_provision p;
		rm_run r;
		rm_run_col col = {"n", CMP_INTEGER};
		rm_run_input in[2] = {{.dataset = "bank_customers", .present = true},
		                      {.dataset = "insurer_customers", .present = true}};
		tlog_init(&l3, 0xd2);
		build_honest(&l3, 6); /* up to run.requested */
		memset(&p, 0, sizeof p);
		p.dataset = "bank_customers";
		p.blob = "b3";
		p.bytes = 1;
		p.rows = 1;
		p.file = "bank2.csv";
		memset(p.sha256, 0x55, 32);
		rm_body_provisioned(&b, &p);
		tlog_add(&l3, ka, RM_EV_PROVISIONED, &b);
		memset(&r, 0, sizeof r);
		run_id(1, id);
		r.id = id;
		r.computation = "overlap";
		r.result_blob = "r1";
		r.cols = &col;
		r.ncols = 1;
		memset(in[0].sha256, k ? 0x55 : 0x3f, 32);
		memset(in[1].sha256, 0x4e, 32);
		r.inputs = in;
		r.ninputs = 2;
		rm_body_run_completed(&b, &r);
		tlog_add(&l3, kd, RM_EV_RUN_COMPLETED, &b);
		c = k ? case_new("rules-reprovisioned-new-hash", 7, "is not the one provisioned")
		      : case_new("rules-reprovisioned-old-hash", UINT64_MAX, NULL);
		view_of(&v, &l3);
		export_view(&v, l3.room, NULL, &c->out);
		view_release(&v);
		tlog_release(&l3);
	}

	/* drops of an append dataset (rules.md "Drops"): bank_customers takes
	 * drops; a second drop, a withdrawal and a run over the union are
	 * valid; a duplicate, the withdrawal of a drop that is not there, a
	 * drop by a non-owner, a whole-dataset deprovision and a completion
	 * that reports a drop's own hash instead of the union's are not */
	{
		char *ap = def_edit("{\"name\": \"bank_customers\", \"columns\"",
		                    "{\"name\": \"bank_customers\", \"drops\": \"append\", "
		                    "\"columns\"");
		char *saved = def_json;
		static const struct {
			const char *name, *want;
			int what; /* 0 ok, 1 duplicate, 2 withdraw missing, 3 non-owner,
			             4 whole deprovision, 5 drop's own hash */
			uint64_t seq;
		} dc[] = {
		    {"rules-drops-ok", NULL, 0, UINT64_MAX},
		    {"rules-drops-duplicate", "already in", 1, 5},
		    {"rules-drops-withdraw-missing", "has no drop named", 2, 6},
		    {"rules-drops-non-owner", "is not an owner of dataset bank_customers", 3, 5},
		    {"rules-drops-whole-deprovision", "withdraw its drops one at a time", 4, 6},
		    {"rules-drops-own-hash", "is not the one provisioned", 5, 8},
		};
		def_json = ap;
		for (size_t k = 0; k < sizeof dc / sizeof dc[0]; k++) {
			tlog l4;
			view v;
			rm_provision p;
			rm_run r;
			rm_run_col col = {"n", CMP_INTEGER};
			rm_run_input in[2] = {{.dataset = "bank_customers", .present = true},
			                      {.dataset = "insurer_customers", .present = true}};
			uint8_t cat[64];
			tlog_init(&l4, (uint8_t)(0xe0 + k));
			build_honest(&l4, 5); /* bank.csv (3f..) is the first drop */
			memset(&p, 0, sizeof p);
			p.dataset = "bank_customers";
			p.blob = "b3";
			p.bytes = 2;
			p.rows = 2;
			p.file = dc[k].what == 1 ? "bank.csv" : "bank2.csv";
			memset(p.sha256, dc[k].what == 1 ? 0x3f : 0x55, 32);
			rm_body_provisioned(&b, &p);
			tlog_add(&l4, dc[k].what == 3 ? ki : ka, RM_EV_PROVISIONED, &b);
			if (dc[k].what == 4)
				rm_body_deprovisioned(&b, "bank_customers");
			else
				rm_body_withdrawn(&b, "bank_customers",
				                  dc[k].what == 2 ? "nope.csv" : "bank.csv");
			tlog_add(&l4, ka, RM_EV_DEPROVISIONED, &b);
			run_id(1, id);
			rm_body_run_requested(&b, "overlap", id);
			tlog_add(&l4, ka, RM_EV_RUN_REQUESTED, &b);
			memset(&r, 0, sizeof r);
			r.id = id;
			r.computation = "overlap";
			r.result_blob = "r1";
			r.cols = &col;
			r.ncols = 1;
			/* the union of one drop (bank2.csv): SHA-256 of its sha256 */
			memset(cat, 0x55, 32);
			if (dc[k].what == 5)
				memset(in[0].sha256, 0x55, 32);
			else
				dcr_sha256(cat, 32, in[0].sha256);
			memset(in[1].sha256, 0x4e, 32);
			r.inputs = in;
			r.ninputs = 2;
			rm_body_run_completed(&b, &r);
			tlog_add(&l4, kd, RM_EV_RUN_COMPLETED, &b);
			c = case_new(dc[k].name, dc[k].seq, dc[k].want);
			view_of(&v, &l4);
			export_view(&v, l4.room, NULL, &c->out);
			view_release(&v);
			tlog_release(&l4);
		}
		def_json = saved;
		free(ap);
	}

	/* the file name rule (rules.md "File names"): bank_customers provisioned
	 * under a name that forges lines, escapes a terminal or breaks the
	 * mount's folder; and one valid name outside ASCII */
	{
		static char longest[DCR_RM_FILE_NAME_BYTES_MAX + 2];
		static const struct {
			const char *name, *file;
		} fc[] = {
		    {"rules-file-name-ok", "donn\xc3\xa9" "es 2026.csv"},
		    {"rules-file-name-newline", "x.csv\nmallory provisioned y.csv"},
		    {"rules-file-name-ansi", "\x1b[2J\x1b[31mx.csv"},
		    {"rules-file-name-c1", "\xc2\x9b" "2Jx.csv"},
		    {"rules-file-name-bidi", "x\xe2\x80\xaevsc.exe"},
		    {"rules-file-name-slash", "a/b.csv"},
		    {"rules-file-name-dotdot", ".."},
		    {"rules-file-name-status", "status"},
		    {"rules-file-name-long", longest},
		};
		memset(longest, 'x', DCR_RM_FILE_NAME_BYTES_MAX + 1);
		for (size_t k = 0; k < sizeof fc / sizeof fc[0]; k++) {
			tlog l5;
			view v;
			rm_provision p;
			tlog_init(&l5, (uint8_t)(0x70 + k));
			build_honest(&l5, 3); /* up to room.published */
			memset(&p, 0, sizeof p);
			p.dataset = "bank_customers";
			p.blob = "b1";
			p.bytes = 1;
			p.rows = 1;
			p.file = (char *)fc[k].file;
			memset(p.sha256, 0x3f, 32);
			rm_body_provisioned(&b, &p);
			tlog_add(&l5, ka, RM_EV_PROVISIONED, &b);
			c = k ? case_new(fc[k].name, 3, "body.file: ")
			      : case_new(fc[k].name, UINT64_MAX, NULL);
			view_of(&v, &l5);
			export_view(&v, l5.room, NULL, &c->out);
			view_release(&v);
			tlog_release(&l5);
		}
	}

	build_dev_cases();

	/* an export of 0 events */
	{
		view v;
		memset(&v, 0, sizeof v);
		c = case_new("rules-no-events", UINT64_MAX, "no events");
		export_view(&v, l->room, NULL, &c->out);
	}

	dcr_buf_release(&good_in);
	dcr_buf_release(&good_schema);
	dcr_buf_release(&in_wrong);
	dcr_buf_release(&in_missing);
	dcr_buf_release(&in_empty);
	dcr_buf_release(&in_nil);
	dcr_buf_release(&in_json);
	dcr_buf_release(&s_dup);
	dcr_buf_release(&s_empty);
	dcr_buf_release(&s_type);
	dcr_buf_release(&s_none);
	dcr_buf_release(&s_json);
	dcr_buf_release(&b);
}

/* ---- crafted logs: requests (docs/rules.md "Requests") ------------------------ */

#define RQ1 "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
#define RQ2 "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"
#define RQ3 "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"

/* Request texts: one computation named name reading bank_customers only
 * (both = false) or both datasets. */
static char *req_doc(const char *name, bool both)
{
	return dcr_asprintf(
	    "{\"title\": \"%s\", \"computations\": [{\"name\": \"%s\", \"kind\": \"sql\", "
	    "\"query\": \"%s\", \"analysts\": [\"ian@insurer.example\"]}]}",
	    name, name,
	    both ? "SELECT COUNT(*) AS n FROM bank_customers b JOIN insurer_customers i USING (email)"
	         : "SELECT COUNT(*) AS n FROM bank_customers");
}

static void req_vote(tlog *l, const dcr_key *k, const char *type, const char *id,
                     const char *text, const char *reason)
{
	dcr_buf b;
	uint8_t h[32];
	dcr_buf_init(&b);
	dcr_sha256(text, strlen(text), h);
	rm_body_req_vote(&b, id, h, reason);
	tlog_add(l, k, type, &b);
	dcr_buf_release(&b);
}

static void req_add(tlog *l, const dcr_key *k, const char *type, dcr_buf *b)
{
	tlog_add(l, k, type, b);
}

/* The published room with both datasets provisioned (5 events), then
 * step(l) appends; exported whole. */
static void request_case(const char *name, uint64_t seq, const char *want, const char *def,
                         void (*step)(tlog *))
{
	char *saved = def_json;
	tlog l2;
	view v;
	rcase *c = case_new(name, seq, want);
	if (def)
		def_json = (char *)def;
	tlog_init(&l2, 0xe1);
	build_honest(&l2, 5);
	def_json = saved;
	step(&l2);
	view_of(&v, &l2);
	export_view(&v, l2.room, NULL, &c->out);
	view_release(&v);
	tlog_release(&l2);
}

/* 5 submitted (bank only), 6 approved by anna: merged; 7 ian runs it;
 * 8 submitted (both), 9 approved by anna, 10 rejected by ian; 11
 * submitted, 12 withdrawn. */
static void step_ok(tlog *l)
{
	dcr_buf b;
	char *t1 = req_doc("bank_n", false), *t2 = req_doc("both_n", true);
	char *t3 = req_doc("bank_m", false);
	dcr_buf_init(&b);
	rm_body_req_submitted(&b, RQ1, t1);
	req_add(l, ki, RM_EV_REQ_SUBMITTED, &b);
	req_vote(l, ka, RM_EV_REQ_APPROVED, RQ1, t1, "fine");
	rm_body_run_requested(&b, "bank_n", "000000000000000000000000000abcff");
	req_add(l, ki, RM_EV_RUN_REQUESTED, &b);
	rm_body_req_submitted(&b, RQ2, t2);
	req_add(l, ki, RM_EV_REQ_SUBMITTED, &b);
	req_vote(l, ka, RM_EV_REQ_APPROVED, RQ2, t2, "");
	req_vote(l, ki, RM_EV_REQ_REJECTED, RQ2, t2, "no");
	rm_body_req_submitted(&b, RQ3, t3);
	req_add(l, ki, RM_EV_REQ_SUBMITTED, &b);
	rm_body_req_withdrawn(&b, RQ3);
	req_add(l, ki, RM_EV_REQ_WITHDRAWN, &b);
	dcr_buf_release(&b);
	free(t1);
	free(t2);
	free(t3);
}

/* 6: ian approves a request that reads only the bank's data. */
static void step_unaffected(tlog *l)
{
	dcr_buf b;
	char *t1 = req_doc("bank_n", false);
	dcr_buf_init(&b);
	rm_body_req_submitted(&b, RQ1, t1);
	req_add(l, ki, RM_EV_REQ_SUBMITTED, &b);
	req_vote(l, ki, RM_EV_REQ_APPROVED, RQ1, t1, "");
	dcr_buf_release(&b);
	free(t1);
}

/* 7: the computation of a request one of two owners approved is run as
 * if it had merged. */
static void step_unmerged_run(tlog *l)
{
	dcr_buf b;
	char *t2 = req_doc("both_n", true);
	dcr_buf_init(&b);
	rm_body_req_submitted(&b, RQ2, t2);
	req_add(l, ki, RM_EV_REQ_SUBMITTED, &b);
	req_vote(l, ka, RM_EV_REQ_APPROVED, RQ2, t2, "");
	rm_body_run_requested(&b, "both_n", "000000000000000000000000000abcfe");
	req_add(l, ki, RM_EV_RUN_REQUESTED, &b);
	dcr_buf_release(&b);
	free(t2);
}

/* 6: anna approves another text than the one submitted. */
static void step_other_hash(tlog *l)
{
	dcr_buf b;
	char *t1 = req_doc("bank_n", false), *t9 = req_doc("bank_nine", false);
	dcr_buf_init(&b);
	rm_body_req_submitted(&b, RQ1, t1);
	req_add(l, ki, RM_EV_REQ_SUBMITTED, &b);
	req_vote(l, ka, RM_EV_REQ_APPROVED, RQ1, t9, "");
	dcr_buf_release(&b);
	free(t1);
	free(t9);
}

/* 5: a request in a room without interactivity. */
static void step_submit(tlog *l)
{
	dcr_buf b;
	char *t1 = req_doc("bank_n", false);
	dcr_buf_init(&b);
	rm_body_req_submitted(&b, RQ1, t1);
	req_add(l, ki, RM_EV_REQ_SUBMITTED, &b);
	dcr_buf_release(&b);
	free(t1);
}

/* 6: dcrd records the bank's approval of a request its policy (sql, k >=
 * 10) allows: merged. */
static void step_auto_ok(tlog *l)
{
	dcr_buf b;
	char *t1 = dcr_asprintf("{\"title\": \"k\", \"computations\": [{\"name\": \"bank_k\", "
	                        "\"kind\": \"sql\", \"privacy\": {\"min_rows_aggregated\": 10}, "
	                        "\"query\": \"SELECT COUNT(*) AS n FROM bank_customers\", "
	                        "\"analysts\": [\"ian@insurer.example\"]}]}");
	uint8_t h[32];
	dcr_buf_init(&b);
	rm_body_req_submitted(&b, RQ1, t1);
	req_add(l, ki, RM_EV_REQ_SUBMITTED, &b);
	dcr_sha256(t1, strlen(t1), h);
	rm_body_req_auto(&b, RQ1, h, pa);
	req_add(l, kd, RM_EV_REQ_AUTO, &b);
	rm_body_run_requested(&b, "bank_k", "000000000000000000000000000abcfd");
	req_add(l, ki, RM_EV_RUN_REQUESTED, &b);
	dcr_buf_release(&b);
	free(t1);
}

/* 6: dcrd claims the bank's policy approves a query without the
 * minimum group size the policy requires. */
static void step_auto_forged(tlog *l)
{
	dcr_buf b;
	char *t1 = req_doc("bank_n", false);
	uint8_t h[32];
	dcr_buf_init(&b);
	rm_body_req_submitted(&b, RQ1, t1);
	req_add(l, ki, RM_EV_REQ_SUBMITTED, &b);
	dcr_sha256(t1, strlen(t1), h);
	rm_body_req_auto(&b, RQ1, h, pa);
	req_add(l, kd, RM_EV_REQ_AUTO, &b);
	dcr_buf_release(&b);
	free(t1);
}

/* 7: the bank previews a request that also reads the insurer's data. */
static void step_preview_two(tlog *l)
{
	dcr_buf b;
	char *t2 = req_doc("both_n", true);
	dcr_buf_init(&b);
	rm_body_req_submitted(&b, RQ2, t2);
	req_add(l, ki, RM_EV_REQ_SUBMITTED, &b);
	req_vote(l, ka, RM_EV_REQ_APPROVED, RQ2, t2, "");
	rm_body_req_preview(&b, RQ2, "both_n", "000000000000000000000000000abcfc");
	req_add(l, ka, RM_EV_REQ_PREVIEW, &b);
	dcr_buf_release(&b);
	free(t2);
}

static void build_request_cases(void)
{
	request_case("rules-request-preview-two-owners", 7,
	             "reads the data of 2 owners: a preview would show one owner the others' data",
	             NULL, step_preview_two);
	char *policy = def_edit("{\"name\": \"bank_customers\",",
	                        "{\"name\": \"bank_customers\", \"auto_approve\": {\"kinds\": "
	                        "[\"sql\"], \"privacy_min_rows_aggregated_at_least\": 10},");
	request_case("rules-request-auto-ok", UINT64_MAX, NULL, policy, step_auto_ok);
	request_case("rules-request-auto-forged", 6,
	             "has privacy.min_rows_aggregated 0; the auto_approve policy of dataset "
	             "bank_customers needs at least 10",
	             policy, step_auto_forged);
	free(policy);
	char *frozen = def_edit("\"settings\": {", "\"settings\": {\"interactive\": false, ");
	request_case("rules-request-ok", UINT64_MAX, NULL, NULL, step_ok);
	request_case("rules-request-unaffected-owner", 6, "is not an affected owner of request", NULL,
	             step_unaffected);
	request_case("rules-request-run-unmerged", 7, "no computation named \"both_n\"", NULL,
	             step_unmerged_run);
	request_case("rules-request-other-hash", 6, "is not the SHA-256 of request", NULL,
	             step_other_hash);
	request_case("rules-request-not-interactive", 5, "the room is not interactive", frozen,
	             step_submit);
	free(frozen);
}

static void test_rules_cases(void)
{
	for (size_t i = 0; i < ncases; i++) {
		if (!cases[i].want)
			expect_valid(cases[i].name, &cases[i].out, NULL);
		else
			expect_invalid(cases[i].name, &cases[i].out, NULL, cases[i].seq,
			               cases[i].want);
	}
}

static void release_cases(void)
{
	for (size_t i = 0; i < ncases; i++)
		dcr_buf_release(&cases[i].out);
}

/* ---- files for the e2e test ----------------------------------------------------- */

static int write_file(const char *dir, const char *name, const dcr_buf *b)
{
	char *path = dcr_asprintf("%s/%s", dir, name);
	dcr_err err;
	int rc = dcr_write_file_atomic(path, b->data, b->len, 0644, &err);
	if (rc)
		fprintf(stderr, "%s\n", err.msg);
	free(path);
	return rc;
}

static int write_files(const char *dir, const tlog *l)
{
	dcr_buf out;
	view v;
	es_checkpoint cp;
	int rc = 0;
	char *k;
	dcr_buf_init(&out);

	view_of(&v, l);
	export_view(&v, l->room, NULL, &out);
	rc |= write_file(dir, "valid.export", &out);
	forge_appended(l, &out);
	rc |= write_file(dir, "forged-append.export", &out);
	forge_owner(l, &out);
	rc |= write_file(dir, "non-owner.export", &out);
	sign_cp(l->room, v.ent, v.len, 5, kd, &cp);
	dcr_buf_reset(&out);
	es_checkpoint_encode(&cp, &out);
	rc |= write_file(dir, "prefix5.checkpoint", &out);
	cp.root[0] ^= 1;
	DCR_ASSERT(es_checkpoint_sign(&cp, kd) == 0);
	dcr_buf_reset(&out);
	es_checkpoint_encode(&cp, &out);
	rc |= write_file(dir, "fork5.checkpoint", &out);
	dcr_buf_reset(&out);
	k = dcr_pub_format(pd);
	dcr_buf_printf(&out, "%s\n", k);
	free(k);
	rc |= write_file(dir, "daemon.key", &out);
	for (size_t i = 0; i < ncases; i++) {
		char *name = dcr_asprintf("%s.export", cases[i].name);
		rc |= write_file(dir, name, &cases[i].out);
		free(name);
	}
	view_release(&v);
	dcr_buf_release(&out);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	tlog l;
	dcr_buf out;

	setup();
	tlog_init(&l, 0xd0);
	build_honest(&l, 12);
	dcr_buf_init(&out);
	test_honest(&l, &out);
	build_cases(&l);
	build_request_cases();
	if (argc == 3 && strcmp(argv[1], "write") == 0) {
		int rc = write_files(argv[2], &l);
		release_cases();
		dcr_buf_release(&out);
		tlog_release(&l);
		teardown();
		return rc;
	}
	test_bitflips(&l);
	test_reorder(&l);
	test_forgeries(&l);
	test_checkpoints(&l);
	test_participants(&l);
	test_proofs(&l);
	test_every_byte(&l);
	test_rules_cases();
	release_cases();
	dcr_buf_release(&out);
	tlog_release(&l);
	teardown();
	if (t_failures)
		fprintf(stderr, "%d failures\n", t_failures);
	return t_failures ? 1 : 0;
}
