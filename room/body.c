/* body.c: the event bodies of a room, written one way (canonical msgpack
 * maps with keys in bytewise order, exactly the fields rm_apply requires),
 * and the human audit line of an event (rm_describe).
 *
 * rm_describe reads untrusted bodies that may not have passed rm_apply
 * yet: it never fails, it prints what it can, and it strips control
 * characters so one event is always one line. */
#include <inttypes.h>
#include <time.h>

#include "room.h"

/* ---- builders ----------------------------------------------------------------- */

void rm_body_dev_requested(dcr_buf *out, const char *run_id, enum rm_dev_lang lang,
                           const char *script, const char *const *inputs, size_t ninputs)
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 4);
	dcr_mpw_str(&w, "inputs");
	dcr_mpw_array(&w, (uint32_t)ninputs);
	for (size_t i = 0; i < ninputs; i++)
		dcr_mpw_str(&w, inputs[i]);
	dcr_mpw_str(&w, "language");
	dcr_mpw_str(&w, rm_dev_lang_name(lang));
	dcr_mpw_str(&w, "run");
	dcr_mpw_str(&w, run_id);
	dcr_mpw_str(&w, "script");
	dcr_mpw_str(&w, script);
}

static void dev_logs(dcr_mpw *w, const rm_dev *d)
{
	dcr_mpw_str(w, "logs_blob");
	dcr_mpw_str(w, d->logs_blob ? d->logs_blob : "");
	dcr_mpw_str(w, "logs_sha256");
	dcr_mpw_bin(w, d->logs_sha256, 32);
}

void rm_body_dev_completed(dcr_buf *out, const rm_dev *d)
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 8);
	dcr_mpw_str(&w, "duration_ms");
	dcr_mpw_uint(&w, d->duration_ms);
	dcr_mpw_str(&w, "inputs");
	dcr_mpw_map(&w, (uint32_t)d->ninputs); /* d->inputs are sorted: canonical order */
	for (size_t i = 0; i < d->ninputs; i++) {
		dcr_mpw_str(&w, d->inputs[i].name);
		dcr_mpw_bin(&w, d->inputs[i].sha256, 32);
	}
	dev_logs(&w, d);
	dcr_mpw_str(&w, "result_blob");
	dcr_mpw_str(&w, d->result_blob);
	dcr_mpw_str(&w, "result_bytes");
	dcr_mpw_uint(&w, d->result_bytes);
	dcr_mpw_str(&w, "result_sha256");
	dcr_mpw_bin(&w, d->result_sha256, 32);
	dcr_mpw_str(&w, "run");
	dcr_mpw_str(&w, d->id);
}

void rm_body_dev_failed(dcr_buf *out, const rm_dev *d)
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 4);
	dcr_mpw_str(&w, "error");
	dcr_mpw_str(&w, d->error);
	dev_logs(&w, d);
	dcr_mpw_str(&w, "run");
	dcr_mpw_str(&w, d->id);
}

void rm_body_definition(dcr_buf *out, const char *json)
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 1);
	dcr_mpw_str(&w, "definition");
	dcr_mpw_str(&w, json);
}

void rm_body_published(dcr_buf *out, const uint8_t def_sha256[32])
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 1);
	dcr_mpw_str(&w, "definition_sha256");
	dcr_mpw_bin(&w, def_sha256, 32);
}

void rm_body_stopped(dcr_buf *out, const char *reason)
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 1);
	dcr_mpw_str(&w, "reason");
	dcr_mpw_str(&w, reason ? reason : "");
}

void rm_body_provisioned(dcr_buf *out, const rm_provision *p)
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 7);
	dcr_mpw_str(&w, "blob");
	dcr_mpw_str(&w, p->blob);
	dcr_mpw_str(&w, "bytes");
	dcr_mpw_uint(&w, p->bytes);
	dcr_mpw_str(&w, "dataset");
	dcr_mpw_str(&w, p->dataset);
	dcr_mpw_str(&w, "file");
	dcr_mpw_str(&w, p->file ? p->file : "");
	dcr_mpw_str(&w, "rows");
	dcr_mpw_uint(&w, p->rows);
	dcr_mpw_str(&w, "sha256");
	dcr_mpw_bin(&w, p->sha256, 32);
	dcr_mpw_str(&w, "stats_sha256");
	dcr_mpw_bin(&w, p->stats_sha256, 32);
}

void rm_body_deprovisioned(dcr_buf *out, const char *dataset)
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 1);
	dcr_mpw_str(&w, "dataset");
	dcr_mpw_str(&w, dataset);
}

void rm_body_withdrawn(dcr_buf *out, const char *dataset, const char *file)
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 2);
	dcr_mpw_str(&w, "dataset");
	dcr_mpw_str(&w, dataset);
	dcr_mpw_str(&w, "file");
	dcr_mpw_str(&w, file);
}

void rm_body_run_requested_eps(dcr_buf *out, const char *computation, const char *epsilon,
                               const char *run_id)
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, epsilon ? 3 : 2);
	dcr_mpw_str(&w, "computation");
	dcr_mpw_str(&w, computation);
	if (epsilon) {
		dcr_mpw_str(&w, "epsilon");
		dcr_mpw_str(&w, epsilon);
	}
	dcr_mpw_str(&w, "run");
	dcr_mpw_str(&w, run_id);
}

void rm_body_run_requested(dcr_buf *out, const char *computation, const char *run_id)
{
	rm_body_run_requested_eps(out, computation, NULL, run_id);
}

static void run_completed(dcr_buf *out, const rm_run *r, bool script)
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, script ? 13 : 10);
	dcr_mpw_str(&w, "computation");
	dcr_mpw_str(&w, r->computation);
	dcr_mpw_str(&w, "duration_ms");
	dcr_mpw_uint(&w, r->duration_ms);
	if (script) { /* keys sorted bytewise */
		dcr_mpw_str(&w, "files");
		dcr_mpw_uint(&w, r->files);
	}
	dcr_mpw_str(&w, "inputs");
	dcr_mpw_map(&w, (uint32_t)r->ninputs); /* sorted at run.requested */
	for (size_t i = 0; i < r->ninputs; i++) {
		dcr_mpw_str(&w, r->inputs[i].dataset);
		if (r->inputs[i].present)
			dcr_mpw_bin(&w, r->inputs[i].sha256, 32);
		else
			dcr_mpw_nil(&w);
	}
	if (script) {
		dcr_mpw_str(&w, "logs_blob");
		dcr_mpw_str(&w, r->logs_blob);
		dcr_mpw_str(&w, "logs_sha256");
		dcr_mpw_bin(&w, r->logs_sha256, 32);
	}
	dcr_mpw_str(&w, "result_blob");
	dcr_mpw_str(&w, r->result_blob);
	dcr_mpw_str(&w, "result_bytes");
	dcr_mpw_uint(&w, r->result_bytes);
	dcr_mpw_str(&w, "result_sha256");
	dcr_mpw_bin(&w, r->result_sha256, 32);
	dcr_mpw_str(&w, "rows");
	dcr_mpw_uint(&w, r->rows);
	dcr_mpw_str(&w, "run");
	dcr_mpw_str(&w, r->id);
	dcr_mpw_str(&w, "schema");
	dcr_mpw_array(&w, (uint32_t)r->ncols);
	for (size_t i = 0; i < r->ncols; i++) {
		dcr_mpw_array(&w, 2);
		dcr_mpw_str(&w, r->cols[i].name);
		dcr_mpw_str(&w, cmp_type_name(r->cols[i].type));
	}
	dcr_mpw_str(&w, "suppressed");
	dcr_mpw_uint(&w, r->suppressed);
}

void rm_body_run_completed(dcr_buf *out, const rm_run *r)
{
	run_completed(out, r, false);
}

void rm_body_run_completed_script(dcr_buf *out, const rm_run *r)
{
	DCR_ASSERT(r->logs_blob);
	run_completed(out, r, true);
}

void rm_body_run_failed(dcr_buf *out, const char *run_id, const char *computation,
                        const char *error)
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 3);
	dcr_mpw_str(&w, "computation");
	dcr_mpw_str(&w, computation);
	dcr_mpw_str(&w, "error");
	dcr_mpw_str(&w, error ? error : "");
	dcr_mpw_str(&w, "run");
	dcr_mpw_str(&w, run_id);
}

void rm_body_run_failed_logs(dcr_buf *out, const char *run_id, const char *computation,
                             const char *error, const char *logs_blob,
                             const uint8_t logs_sha256[32])
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 5);
	dcr_mpw_str(&w, "computation");
	dcr_mpw_str(&w, computation);
	dcr_mpw_str(&w, "error");
	dcr_mpw_str(&w, error ? error : "");
	dcr_mpw_str(&w, "logs_blob");
	dcr_mpw_str(&w, logs_blob);
	dcr_mpw_str(&w, "logs_sha256");
	dcr_mpw_bin(&w, logs_sha256, 32);
	dcr_mpw_str(&w, "run");
	dcr_mpw_str(&w, run_id);
}

void rm_body_retrieved(dcr_buf *out, const char *run_id)
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 1);
	dcr_mpw_str(&w, "run");
	dcr_mpw_str(&w, run_id);
}

/* ---- request bodies (docs/event-format.md "Requests") ------------------------- */

void rm_body_req_submitted(dcr_buf *out, const char *id, const char *text)
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 2);
	dcr_mpw_str(&w, "request");
	dcr_mpw_str(&w, id);
	dcr_mpw_str(&w, "text");
	dcr_mpw_str(&w, text);
}

void rm_body_req_withdrawn(dcr_buf *out, const char *id)
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 1);
	dcr_mpw_str(&w, "request");
	dcr_mpw_str(&w, id);
}

void rm_body_req_vote(dcr_buf *out, const char *id, const uint8_t sha256[32], const char *reason)
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 3);
	dcr_mpw_str(&w, "reason");
	dcr_mpw_str(&w, reason ? reason : "");
	dcr_mpw_str(&w, "request");
	dcr_mpw_str(&w, id);
	dcr_mpw_str(&w, "request_sha256");
	dcr_mpw_bin(&w, sha256, 32);
}

void rm_body_req_preview(dcr_buf *out, const char *id, const char *computation,
                         const char *run_id)
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 3);
	dcr_mpw_str(&w, "computation");
	dcr_mpw_str(&w, computation);
	dcr_mpw_str(&w, "request");
	dcr_mpw_str(&w, id);
	dcr_mpw_str(&w, "run");
	dcr_mpw_str(&w, run_id);
}

void rm_body_req_auto(dcr_buf *out, const char *id, const uint8_t sha256[32],
                      const uint8_t owner[32])
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 3);
	dcr_mpw_str(&w, "owner");
	dcr_mpw_bin(&w, owner, 32);
	dcr_mpw_str(&w, "request");
	dcr_mpw_str(&w, id);
	dcr_mpw_str(&w, "request_sha256");
	dcr_mpw_bin(&w, sha256, 32);
}

/* ---- rm_describe ---------------------------------------------------------------- */

/* Appends a body string field, control characters replaced, at most max
 * bytes (then "..."); "?" when absent. */
static void put_field_ex(dcr_buf *b, const es_event *ev, const char *key, size_t max, bool ellipsis)
{
	const char *p;
	size_t n;
	if (dcr_mp_str(dcr_mp_get(ev->body, key), &p, &n) != 0) {
		dcr_buf_append_str(b, "?");
		return;
	}
	for (size_t i = 0; i < n && i < max; i++) {
		unsigned char c = (unsigned char)p[i];
		dcr_buf_append_u8(b, c < 0x20 || c == 0x7f ? ' ' : c);
	}
	if (n > max && ellipsis)
		dcr_buf_append_str(b, "...");
}

static void put_field(dcr_buf *b, const es_event *ev, const char *key, size_t max)
{
	put_field_ex(b, ev, key, max, true);
}

/* Run ids are shown by their first 8 characters, like short git hashes. */
static void put_run(dcr_buf *b, const es_event *ev)
{
	put_field_ex(b, ev, "run", 8, false);
}

static uint64_t get_uint(const es_event *ev, const char *key)
{
	uint64_t u = 0;
	(void)dcr_mp_u64(dcr_mp_get(ev->body, key), &u);
	return u;
}

/* First 12 hex chars of a 32-byte bin field, or "?". */
static void put_hash(dcr_buf *b, const es_event *ev, const char *key)
{
	const uint8_t *p;
	size_t n;
	char hex[65];
	if (dcr_mp_bin(dcr_mp_get(ev->body, key), &p, &n) != 0 || n != 32) {
		dcr_buf_append_str(b, "?");
		return;
	}
	dcr_hex_encode(p, 32, hex);
	dcr_buf_append(b, hex, 12);
}

const char *rm_actor_name(const rm_def *def, const uint8_t *daemon_key, const uint8_t key[32],
                          enum rm_actor_form form, char *buf, size_t cap)
{
	const rm_participant *p = def ? rm_def_participant(def, key) : NULL;
	if (p) {
		snprintf(buf, cap, "%s", p->email);
	} else if (daemon_key && memcmp(key, daemon_key, 32) == 0) {
		snprintf(buf, cap, "dcrd");
	} else {
		char *k = dcr_pub_format(key);
		if (form == RM_ACTOR_SHORT)
			k[strlen("ed25519:") + 12] = '\0';
		snprintf(buf, cap, "%s", k);
		free(k);
	}
	return buf;
}

static void put_actor(dcr_buf *b, const rm_state *s, const rm_def *def, const es_event *ev)
{
	char name[RM_ACTOR_NAME_BYTES];
	dcr_buf_append_str(b, rm_actor_name(def ? def : s->def, s->daemon_key, ev->actor,
	                                    RM_ACTOR_SHORT, name, sizeof name));
}

/* A DP request: ", spending epsilon 0.5 (bank_customers: 1.5 of 5 spent)",
 * the ledger after the event (the line is written for valid events). */
static void put_spend(dcr_buf *b, const rm_state *before, const es_event *ev)
{
	const char *p;
	size_t n;
	char x[32], y[32];
	if (dcr_mp_str(dcr_mp_get(ev->body, "epsilon"), &p, &n) != 0)
		return;
	dcr_buf_printf(b, ", spending epsilon %.*s", (int)(n > 32 ? 32 : n), p);
	const rm_computation *c = NULL;
	if (before->def && dcr_mp_str(dcr_mp_get(ev->body, "computation"), &p, &n) == 0 &&
	    n <= DCR_RM_NAME_BYTES_MAX) {
		char name[DCR_RM_NAME_BYTES_MAX + 1];
		snprintf(name, sizeof name, "%.*s", (int)n, p);
		c = rm_def_computation(before->def, name);
	}
	if (!c || !c->dp_epsilon)
		return;
	bool *used = dcr_calloc(before->def->ndatasets + 1, sizeof(bool));
	rm_def_datasets_read(before->def, c, used);
	const char *sep = " (";
	for (size_t i = 0; i < before->def->ndatasets; i++) {
		const rm_dataset *ds = &before->def->datasets[i];
		if (!used[i])
			continue;
		dcr_buf_printf(b, "%s%s: %s of %s spent", sep, ds->name,
		               rm_epsilon_format(rm_state_epsilon_spent(before, ds->name) +
		                                     c->dp_epsilon,
		                                 x, sizeof x),
		               rm_epsilon_format(ds->epsilon_budget, y, sizeof y));
		sep = ", ";
	}
	if (*sep == ',')
		dcr_buf_append_str(b, ")");
	free(used);
}

/* Appends at most max bytes of s, control characters replaced, in quotes. */
static void put_quoted(dcr_buf *b, const char *s, size_t max)
{
	dcr_buf_append_str(b, " \"");
	for (size_t i = 0; s[i] && i < max; i++) {
		unsigned char c = (unsigned char)s[i];
		dcr_buf_append_u8(b, c < 0x20 || c == 0x7f ? ' ' : c);
	}
	dcr_buf_append_str(b, "\"");
}

/* The request an event names, in the state before it, or NULL. */
static const rm_request *described_request(const rm_state *before, const es_event *ev)
{
	const char *p;
	size_t n;
	char id[33];
	if (dcr_mp_str(dcr_mp_get(ev->body, "request"), &p, &n) != 0 || n != 32)
		return NULL;
	snprintf(id, sizeof id, "%.*s", 32, p);
	return rm_state_request(before, id);
}

/* Request events: "submitted request 4f1c2a9b "Churn by city" (sha256
 * ...)", "approved request 4f1c2a9b: reason", and for the last approval
 * what it made: "; merged as definition version 2" or "; the merge
 * failed". Written from the state before the event. */
static void describe_request(dcr_buf *b, const rm_state *before, const es_event *ev)
{
	const rm_request *q = described_request(before, ev);
	const char *type = ev->type;
	if (strcmp(type, RM_EV_REQ_SUBMITTED) == 0) {
		const char *p = "";
		size_t n = 0;
		uint8_t h[32];
		char hex[65];
		(void)dcr_mp_str(dcr_mp_get(ev->body, "text"), &p, &n);
		dcr_sha256(p, n, h);
		dcr_hex_encode(h, 32, hex);
		dcr_buf_append_str(b, "submitted request ");
		put_field_ex(b, ev, "request", 8, false);
		rm_request_doc doc;
		dcr_err e;
		if (before->def_json && rm_request_merge(before->def_json, p, n, &doc, &e) == 0) {
			put_quoted(b, doc.title, 80);
			dcr_buf_append_str(b, ":");
			for (size_t i = 0; i < doc.nnames; i++)
				dcr_buf_printf(b, "%s %s", i ? "," : "", doc.names[i]);
			rm_request_doc_release(&doc);
		}
		dcr_buf_printf(b, " (sha256 %.12s)", hex);
		return;
	}
	if (strcmp(type, RM_EV_REQ_PREVIEW) == 0) {
		dcr_buf_append_str(b, "previewed request ");
		put_field_ex(b, ev, "request", 8, false);
		if (q)
			put_quoted(b, q->title, 80);
		dcr_buf_append_str(b, ": run ");
		put_run(b, ev);
		dcr_buf_append_str(b, " of ");
		put_field(b, ev, "computation", 64);
		return;
	}
	if (strcmp(type, RM_EV_REQ_WITHDRAWN) == 0) {
		dcr_buf_append_str(b, "withdrew request ");
		put_field_ex(b, ev, "request", 8, false);
		if (q)
			put_quoted(b, q->title, 80);
		return;
	}
	bool autom = strcmp(type, RM_EV_REQ_AUTO) == 0;
	bool approve = autom || strcmp(type, RM_EV_REQ_APPROVED) == 0;
	const uint8_t *voter = ev->actor;
	dcr_buf_append_str(b, approve ? "approved request " : "rejected request ");
	put_field_ex(b, ev, "request", 8, false);
	if (q)
		put_quoted(b, q->title, 80);
	const char *p;
	size_t n;
	if (autom) {
		const uint8_t *k;
		char name[RM_ACTOR_NAME_BYTES];
		if (dcr_mp_bin(dcr_mp_get(ev->body, "owner"), &k, &n) != 0 || n != 32)
			return;
		voter = k;
		dcr_buf_printf(b, " for %s by the auto_approve policy of its datasets",
		               rm_actor_name(before->def, before->daemon_key, k, RM_ACTOR_SHORT,
		                             name, sizeof name));
	} else if (dcr_mp_str(dcr_mp_get(ev->body, "reason"), &p, &n) == 0 && n) {
		dcr_buf_append_str(b, ": ");
		put_field(b, ev, "reason", 200);
	}
	if (!approve || !q || q->state != RM_REQ_OPEN)
		return;
	size_t pending = 0;
	for (size_t i = 0; i < q->nowners; i++)
		pending += q->owners[i].vote != RM_VOTE_APPROVED &&
		           memcmp(q->owners[i].key, voter, 32) != 0;
	if (pending)
		dcr_buf_printf(b, " (%zu more approval%s needed)", pending, pending == 1 ? "" : "s");
	else {
		rm_request_doc doc;
		dcr_err e;
		if (rm_request_merge(before->def_json, q->text, strlen(q->text), &doc, &e) == 0)
			dcr_buf_printf(b, "; merged as definition version %" PRIu64,
			               before->def_version + 1);
		else
		{
			dcr_buf_append_str(b, "; every owner approved but the merge failed:");
			put_quoted(b, e.msg, 300);
		}
		rm_request_doc_release(&doc);
	}
}

/* The file of a provisioning or a drop (docs/privacy.md "File names"):
 * ", file NAME", control characters as spaces, at most 255 bytes. */
static void put_file(dcr_buf *b, const es_event *ev)
{
	const char *p;
	size_t n;
	if (dcr_mp_str(dcr_mp_get(ev->body, "file"), &p, &n) != 0 || n == 0)
		return;
	dcr_buf_append_str(b, ", file ");
	put_field(b, ev, "file", DCR_RM_FILE_NAME_BYTES_MAX);
}

/* Is ev a drop into an append dataset (per the definition before it)? */
static bool is_drop(const rm_state *before, const es_event *ev)
{
	const char *p;
	size_t n;
	char name[DCR_RM_NAME_BYTES_MAX + 1];
	if (!before->def || dcr_mp_str(dcr_mp_get(ev->body, "dataset"), &p, &n) != 0 ||
	    n >= sizeof name)
		return false;
	memcpy(name, p, n);
	name[n] = 0;
	const rm_dataset *ds = rm_def_dataset(before->def, name);
	return ds && ds->append;
}

char *rm_describe(const rm_state *before, const es_event *ev)
{
	dcr_buf b;
	char when[32] = "?";
	time_t t = (time_t)(ev->ts_ms / 1000);
	struct tm tm;
	rm_def *created = NULL;
	const char *type = ev->type;

	dcr_buf_init(&b);
	if (gmtime_r(&t, &tm))
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* The creator's email is in the definition the event carries. */
	if (strcmp(type, RM_EV_CREATED) == 0) {
		const char *p;
		size_t n;
		dcr_err e;
		if (dcr_mp_str(dcr_mp_get(ev->body, "definition"), &p, &n) == 0)
			(void)rm_def_parse(p, n, &created, &e);
	}
	dcr_buf_printf(&b, "%s ", when);
	put_actor(&b, before, created, ev);
	dcr_buf_append_str(&b, " ");

	if (strcmp(type, RM_EV_CREATED) == 0 || strcmp(type, RM_EV_SAVED) == 0) {
		const char *p = "";
		size_t n = 0;
		uint8_t h[32];
		char hex[65];
		(void)dcr_mp_str(dcr_mp_get(ev->body, "definition"), &p, &n);
		dcr_sha256(p, n, h);
		dcr_hex_encode(h, 32, hex);
		if (created)
			dcr_buf_printf(&b, "created the room %s (definition sha256 %.12s)",
			               created->name, hex);
		else if (strcmp(type, RM_EV_CREATED) == 0)
			dcr_buf_printf(&b, "created the room (definition sha256 %.12s)", hex);
		else
			dcr_buf_printf(&b, "saved a draft (definition sha256 %.12s)", hex);
	} else if (strcmp(type, RM_EV_PUBLISHED) == 0) {
		dcr_buf_append_str(&b, "published the room (definition sha256 ");
		put_hash(&b, ev, "definition_sha256");
		dcr_buf_append_str(&b, ")");
	} else if (strcmp(type, RM_EV_STOPPED) == 0) {
		dcr_buf_append_str(&b, "stopped the room: ");
		put_field(&b, ev, "reason", 200);
	} else if (strcmp(type, RM_EV_PROVISIONED) == 0) {
		dcr_buf_append_str(&b, is_drop(before, ev) ? "dropped " : "provisioned ");
		put_field(&b, ev, "dataset", 64);
		dcr_buf_printf(&b, ": %" PRIu64 " rows, %" PRIu64 " bytes, sha256 ",
		               get_uint(ev, "rows"), get_uint(ev, "bytes"));
		put_hash(&b, ev, "sha256");
		put_file(&b, ev);
	} else if (strcmp(type, RM_EV_DEPROVISIONED) == 0) {
		bool drop = dcr_mp_get(ev->body, "file") != NULL;
		dcr_buf_append_str(&b, drop ? "withdrew from " : "deprovisioned ");
		put_field(&b, ev, "dataset", 64);
		if (drop)
			put_file(&b, ev);
	} else if (strcmp(type, RM_EV_RUN_REQUESTED) == 0) {
		dcr_buf_append_str(&b, "requested run ");
		put_run(&b, ev);
		dcr_buf_append_str(&b, " of ");
		put_field(&b, ev, "computation", 64);
		put_spend(&b, before, ev);
	} else if (strcmp(type, RM_EV_RUN_COMPLETED) == 0) {
		dcr_buf_append_str(&b, "completed run ");
		put_run(&b, ev);
		dcr_buf_append_str(&b, " of ");
		put_field(&b, ev, "computation", 64);
		dcr_buf_printf(&b, ": %" PRIu64 " rows, %" PRIu64 " suppressed",
		               get_uint(ev, "rows"), get_uint(ev, "suppressed"));
		if (dcr_mp_get(ev->body, "files"))
			dcr_buf_printf(&b, ", %" PRIu64 " files", get_uint(ev, "files"));
	} else if (strcmp(type, RM_EV_RUN_FAILED) == 0) {
		dcr_buf_append_str(&b, "failed run ");
		put_run(&b, ev);
		dcr_buf_append_str(&b, " of ");
		put_field(&b, ev, "computation", 64);
		dcr_buf_append_str(&b, ": ");
		put_field(&b, ev, "error", 200);
	} else if (strcmp(type, RM_EV_RETRIEVED) == 0) {
		const char *p;
		size_t n;
		const rm_run *r = NULL;
		char id[33];
		if (dcr_mp_str(dcr_mp_get(ev->body, "run"), &p, &n) == 0 && n == 32) {
			snprintf(id, sizeof id, "%.*s", 32, p);
			r = rm_state_run(before, id);
		}
		dcr_buf_append_str(&b, "retrieved the result of run ");
		put_run(&b, ev);
		if (r)
			dcr_buf_printf(&b, " of %s", r->computation);
	} else if (strcmp(type, RM_EV_DEV_REQUESTED) == 0) {
		const dcr_mpv *in = dcr_mp_get(ev->body, "inputs");
		const char *p;
		size_t n;
		uint8_t h[32];
		char hex[65] = "?";
		dcr_buf_append_str(&b, "requested development run ");
		put_run(&b, ev);
		dcr_buf_append_str(&b, " (");
		put_field(&b, ev, "language", 16);
		if (dcr_mp_str(dcr_mp_get(ev->body, "script"), &p, &n) == 0) {
			dcr_sha256(p, n, h);
			dcr_hex_encode(h, 32, hex);
		}
		dcr_buf_printf(&b, ", script sha256 %.12s) reading ", hex);
		for (uint32_t i = 0; i < dcr_mp_len(in) && i < 32; i++) {
			dcr_buf_append_str(&b, i ? ", " : "");
			if (dcr_mp_str(dcr_mp_at(in, i), &p, &n) != 0) {
				dcr_buf_append_str(&b, "?");
				continue;
			}
			for (size_t k = 0; k < n && k < 64; k++)
				dcr_buf_append_u8(&b, (unsigned char)p[k] < 0x20 || p[k] == 0x7f
				                          ? ' '
				                          : (unsigned char)p[k]);
		}
		if (dcr_mp_len(in) == 0)
			dcr_buf_append_str(&b, "nothing");
	} else if (strcmp(type, RM_EV_DEV_COMPLETED) == 0) {
		dcr_buf_append_str(&b, "completed development run ");
		put_run(&b, ev);
		dcr_buf_printf(&b, ": %" PRIu64 " bytes, result sha256 ", get_uint(ev, "result_bytes"));
		put_hash(&b, ev, "result_sha256");
	} else if (strcmp(type, RM_EV_DEV_FAILED) == 0) {
		dcr_buf_append_str(&b, "failed development run ");
		put_run(&b, ev);
		dcr_buf_append_str(&b, ": ");
		put_field(&b, ev, "error", 200);
	} else if (strncmp(type, "request.", 8) == 0 &&
	           (strcmp(type, RM_EV_REQ_SUBMITTED) == 0 || strcmp(type, RM_EV_REQ_WITHDRAWN) == 0 ||
	            strcmp(type, RM_EV_REQ_APPROVED) == 0 || strcmp(type, RM_EV_REQ_REJECTED) == 0 ||
	            strcmp(type, RM_EV_REQ_AUTO) == 0 || strcmp(type, RM_EV_REQ_PREVIEW) == 0)) {
		describe_request(&b, before, ev);
	} else {
		dcr_buf_append_str(&b, "sent an event of unknown type ");
		for (const char *c = type; *c; c++)
			dcr_buf_append_u8(&b, (unsigned char)*c < 0x20 ? ' ' : (unsigned char)*c);
	}
	rm_def_free(created);
	char *out = dcr_strdup(dcr_buf_cstr(&b));
	dcr_buf_release(&b);
	return out;
}
