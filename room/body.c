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

void rm_body_run_completed(dcr_buf *out, const rm_run *r)
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 10);
	dcr_mpw_str(&w, "computation");
	dcr_mpw_str(&w, r->computation);
	dcr_mpw_str(&w, "duration_ms");
	dcr_mpw_uint(&w, r->duration_ms);
	dcr_mpw_str(&w, "inputs");
	dcr_mpw_map(&w, (uint32_t)r->ninputs); /* sorted at run.requested */
	for (size_t i = 0; i < r->ninputs; i++) {
		dcr_mpw_str(&w, r->inputs[i].dataset);
		if (r->inputs[i].present)
			dcr_mpw_bin(&w, r->inputs[i].sha256, 32);
		else
			dcr_mpw_nil(&w);
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

void rm_body_retrieved(dcr_buf *out, const char *run_id)
{
	dcr_mpw w;
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 1);
	dcr_mpw_str(&w, "run");
	dcr_mpw_str(&w, run_id);
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
