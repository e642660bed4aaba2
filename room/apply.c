/* apply.c: the room state and the one rule function rm_apply, plus the
 * permission checks built from the same code (docs/rules.md).
 *
 * rm_apply is pure: it reads only the state and the event and never the
 * clock, files or randomness, so the daemon (validating before it appends)
 * and every auditor (replaying a log) reach the same verdict. Each handler
 * first checks everything (actor, role, status, body) without touching the
 * state, then commits; nothing after the commit point can fail, so an
 * error leaves the state exactly as it was.
 *
 * Event bodies are strict: exactly the documented keys with the documented
 * types (rm_body_* in body.c writes them), so every event has one
 * encoding. Workload: one call per event on every replay; everything is
 * O(1) or linear in the (small, capped) definition, except run lookups,
 * which use a hash index because a long-lived room has many runs. */
#include <inttypes.h>
#include <jansson.h>

#include "room.h"

/* ---- state ----------------------------------------------------------------- */

const char *rm_status_name(enum rm_status s)
{
	switch (s) {
	case RM_NONE:
		return "none";
	case RM_DRAFT:
		return "draft";
	case RM_PUBLISHED:
		return "published";
	case RM_STOPPED:
		return "stopped";
	}
	return "?";
}

void rm_state_init(rm_state *s, const uint8_t daemon_key[32])
{
	memset(s, 0, sizeof *s);
	memcpy(s->daemon_key, daemon_key, 32);
	s->status = RM_NONE;
}

static void run_release(rm_run *r)
{
	free(r->id);
	free(r->computation);
	free(r->error);
	free(r->result_blob);
	free(r->schema_json);
	free(r->inputs_json);
}

void rm_state_release(rm_state *s)
{
	rm_def_free(s->def);
	free(s->def_json);
	for (size_t i = 0; i < s->nprovisions; i++) {
		free(s->provisions[i].dataset);
		free(s->provisions[i].blob);
		free(s->provisions[i].file);
	}
	free(s->provisions);
	for (size_t i = 0; i < s->nruns; i++)
		run_release(&s->runs[i]);
	free(s->runs);
	free(s->stop_reason);
	free(s->run_index);
	memset(s, 0, sizeof *s);
}

static rm_provision *find_provision(const rm_state *s, const char *dataset)
{
	for (size_t i = 0; i < s->nprovisions; i++)
		if (strcmp(s->provisions[i].dataset, dataset) == 0)
			return &s->provisions[i];
	return NULL;
}

const rm_provision *rm_state_provision(const rm_state *s, const char *dataset)
{
	const rm_provision *p = dataset ? find_provision(s, dataset) : NULL;
	return p && p->present ? p : NULL;
}

static uint64_t run_hash(const char *id)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *id; id++)
		h = (h ^ (uint8_t)*id) * 1099511628211ull;
	return h;
}

static void run_index_put(rm_state *s, size_t idx)
{
	size_t mask = s->run_index_cap - 1;
	size_t i = run_hash(s->runs[idx].id) & mask;
	while (s->run_index[i])
		i = (i + 1) & mask;
	s->run_index[i] = idx + 1;
}

/* Keeps the index at most half full; called before adding a run. */
static void run_index_grow(rm_state *s, size_t need)
{
	if (need * 2 <= s->run_index_cap)
		return;
	size_t cap = s->run_index_cap ? s->run_index_cap : 64;
	while (need * 2 > cap)
		cap *= 2;
	free(s->run_index);
	s->run_index = dcr_calloc(cap, sizeof(size_t));
	s->run_index_cap = cap;
	for (size_t i = 0; i < s->nruns; i++)
		run_index_put(s, i);
}

static rm_run *find_run(const rm_state *s, const char *id)
{
	if (!id || !s->run_index_cap)
		return NULL;
	size_t mask = s->run_index_cap - 1;
	for (size_t i = run_hash(id) & mask; s->run_index[i]; i = (i + 1) & mask) {
		rm_run *r = &s->runs[s->run_index[i] - 1];
		if (strcmp(r->id, id) == 0)
			return r;
	}
	return NULL;
}

const rm_run *rm_state_run(const rm_state *s, const char *run_id)
{
	return find_run(s, run_id);
}

const rm_run *rm_state_last_run(const rm_state *s, const char *computation)
{
	for (size_t i = s->nruns; i-- > 0;)
		if (strcmp(s->runs[i].computation, computation) == 0)
			return &s->runs[i];
	return NULL;
}

bool rm_state_is_participant(const rm_state *s, const uint8_t key[32])
{
	if (s->status == RM_NONE)
		return false;
	if (memcmp(s->creator, key, 32) == 0)
		return true;
	return rm_def_participant(s->def, key) != NULL;
}

/* ---- who --------------------------------------------------------------------- */

/* "anna@bank.example", "dcrd" or "ed25519:<base64>", in a compound literal. */
#define WHO(s, key)                                                                                \
	rm_actor_name((s)->def, (s)->daemon_key, (key), RM_ACTOR_FULL,                             \
	              (char[RM_ACTOR_NAME_BYTES]){0}, RM_ACTOR_NAME_BYTES)

/* ---- checks shared by rm_apply and the permission predicates ---------------- */

static int need_participant(const rm_state *s, const uint8_t key[32], dcr_err *err)
{
	if (s->status == RM_NONE)
		return dcr_err_set(err, DCR_ESTATE, "the room does not exist yet");
	if (!rm_state_is_participant(s, key))
		return dcr_err_set(err, DCR_EDENIED, "actor %s is not a participant of this room",
		                   WHO(s, key));
	return 0;
}

static int need_creator(const rm_state *s, const uint8_t key[32], dcr_err *err)
{
	int rc = need_participant(s, key, err);
	if (rc)
		return rc;
	if (memcmp(s->creator, key, 32) != 0)
		return dcr_err_set(err, DCR_EDENIED, "actor %s is not the creator of the room",
		                   WHO(s, key));
	return 0;
}

static int need_published(const rm_state *s, const char *what, dcr_err *err)
{
	if (s->status != RM_PUBLISHED)
		return dcr_err_set(err, DCR_ESTATE, "the room is %s; %s only while it is published",
		                   rm_status_name(s->status), what);
	return 0;
}

static int need_daemon(const rm_state *s, const uint8_t key[32], dcr_err *err)
{
	if (memcmp(s->daemon_key, key, 32) != 0)
		return dcr_err_set(err, DCR_EDENIED,
		                   "actor %s is not the daemon; only the daemon reports runs",
		                   WHO(s, key));
	if (s->status != RM_PUBLISHED && s->status != RM_STOPPED)
		return dcr_err_set(err, DCR_ESTATE,
		                   "the room is %s; runs are reported only "
		                   "while it is published or stopped",
		                   rm_status_name(s->status));
	return 0;
}

int rm_check_edit(const rm_state *s, const uint8_t key[32], dcr_err *err)
{
	int rc = need_creator(s, key, err);
	if (rc)
		return rc;
	if (s->status != RM_DRAFT)
		return dcr_err_set(err, DCR_ESTATE,
		                   "the room is %s; the definition can only change while draft",
		                   rm_status_name(s->status));
	return 0;
}

bool rm_may_edit(const rm_state *s, const uint8_t key[32])
{
	return rm_check_edit(s, key, NULL) == 0;
}

int rm_check_stop(const rm_state *s, const uint8_t key[32], dcr_err *err)
{
	int rc = need_creator(s, key, err);
	if (rc)
		return rc;
	if (s->status != RM_DRAFT && s->status != RM_PUBLISHED)
		return dcr_err_set(err, DCR_ESTATE, "the room is already %s",
		                   rm_status_name(s->status));
	return 0;
}

int rm_check_provision(const rm_state *s, const uint8_t key[32], const char *dataset, dcr_err *err)
{
	int rc = need_participant(s, key, err);
	if (!rc)
		rc = need_published(s, "datasets can be provisioned", err);
	if (rc)
		return rc;
	if (!rm_def_dataset(s->def, dataset))
		return dcr_err_set(err, DCR_ENOTFOUND, "no dataset named \"%s\" in this room",
		                   dataset ? dataset : "");
	if (!rm_is_owner(s->def, key, dataset))
		return dcr_err_set(err, DCR_EDENIED, "actor %s is not an owner of dataset %s",
		                   WHO(s, key), dataset);
	return 0;
}

bool rm_may_provision(const rm_state *s, const uint8_t key[32], const char *dataset)
{
	return rm_check_provision(s, key, dataset, NULL) == 0;
}

int rm_check_deprovision(const rm_state *s, const uint8_t key[32], const char *dataset,
                         dcr_err *err)
{
	int rc = rm_check_provision(s, key, dataset, err);
	if (rc)
		return rc;
	if (!rm_state_provision(s, dataset))
		return dcr_err_set(err, DCR_ESTATE, "dataset %s is not provisioned", dataset);
	return 0;
}

int rm_check_run(const rm_state *s, const uint8_t key[32], const char *computation, dcr_err *err)
{
	int rc = need_participant(s, key, err);
	if (!rc)
		rc = need_published(s, "computations can run", err);
	if (rc)
		return rc;
	const rm_computation *c = rm_def_computation(s->def, computation);
	if (!c)
		return dcr_err_set(err, DCR_ENOTFOUND, "no computation named \"%s\" in this room",
		                   computation ? computation : "");
	if (!rm_is_analyst(s->def, key, computation))
		return dcr_err_set(err, DCR_EDENIED, "actor %s is not an analyst of computation %s",
		                   WHO(s, key), computation);
	if (!s->def->require_provisioned)
		return 0;
	const rm_def *d = s->def;
	bool *used = dcr_calloc(d->ndatasets + 1, sizeof(bool));
	dcr_buf missing;
	dcr_buf_init(&missing);
	rm_def_datasets_read(d, c, used);
	for (size_t i = 0; i < d->ndatasets; i++)
		if (used[i] && d->datasets[i].required &&
		    !rm_state_provision(s, d->datasets[i].name))
			dcr_buf_printf(&missing, "%s%s", missing.len ? ", " : "",
			               d->datasets[i].name);
	if (missing.len)
		rc = dcr_err_set(err, DCR_ESTATE,
		                 "computation %s needs datasets not provisioned: %s", computation,
		                 dcr_buf_cstr(&missing));
	dcr_buf_release(&missing);
	free(used);
	return rc;
}

bool rm_may_run(const rm_state *s, const uint8_t key[32], const char *computation)
{
	return rm_check_run(s, key, computation, NULL) == 0;
}

int rm_check_retrieve(const rm_state *s, const uint8_t key[32], const char *run_id, dcr_err *err)
{
	int rc = need_participant(s, key, err);
	if (!rc)
		rc = need_published(s, "results can be retrieved", err);
	if (rc)
		return rc;
	const rm_run *r = find_run(s, run_id);
	if (!r)
		return dcr_err_set(err, DCR_ENOTFOUND, "no run %s in this room",
		                   run_id ? run_id : "");
	if (!rm_is_analyst(s->def, key, r->computation))
		return dcr_err_set(err, DCR_EDENIED, "actor %s is not an analyst of computation %s",
		                   WHO(s, key), r->computation);
	if (r->state != RM_RUN_DONE)
		return dcr_err_set(err, DCR_ESTATE, "run %s has %s", run_id,
		                   r->state == RM_RUN_QUEUED ? "not finished" : "failed");
	return 0;
}

bool rm_may_read_room(const rm_state *s, const uint8_t key[32])
{
	return rm_state_is_participant(s, key);
}

bool rm_may_read_stats(const rm_state *s, const uint8_t key[32], const char *dataset)
{
	const rm_dataset *ds = rm_def_dataset(s->def, dataset);
	if (!ds || s->status == RM_NONE)
		return false;
	if (rm_is_owner(s->def, key, dataset))
		return true;
	return ds->share_statistics && rm_state_is_participant(s, key);
}

bool rm_may_read_data(const rm_state *s, const uint8_t key[32], const char *dataset)
{
	return s->status != RM_NONE && rm_is_owner(s->def, key, dataset);
}

bool rm_may_read_result(const rm_state *s, const uint8_t key[32], const char *computation)
{
	return s->status != RM_NONE && rm_is_analyst(s->def, key, computation);
}

/* ---- bodies -------------------------------------------------------------------- */

enum fkind { F_STR, F_UINT, F_BIN32 };
typedef struct field {
	const char *key;
	enum fkind kind;
	size_t max; /* strings: bytes */
} field;

/* The body must hold exactly these fields with these types. */
static int body_check(const dcr_mpv *body, const field *f, size_t n, dcr_err *err)
{
	if (!body || dcr_mp_type(body) != DCR_MP_MAP)
		return dcr_err_set(err, DCR_EFORMAT, "body is not a map");
	uint32_t m = dcr_mp_len(body);
	for (uint32_t i = 0; i < m; i++) {
		const char *k;
		size_t kn;
		bool known = false;
		dcr_mp_map_at(body, i, &k, &kn);
		for (size_t j = 0; j < n && !known; j++)
			known = strlen(f[j].key) == kn && memcmp(f[j].key, k, kn) == 0;
		if (!known)
			return dcr_err_set(err, DCR_EFORMAT, "body: unexpected field \"%.*s\"",
			                   (int)(kn > 64 ? 64 : kn), k);
	}
	for (size_t j = 0; j < n; j++) {
		const dcr_mpv *v = dcr_mp_get(body, f[j].key);
		const char *p;
		const uint8_t *b;
		size_t len;
		uint64_t u;
		if (!v)
			return dcr_err_set(err, DCR_EFORMAT, "body: missing field \"%s\"",
			                   f[j].key);
		switch (f[j].kind) {
		case F_STR:
			if (dcr_mp_str(v, &p, &len))
				return dcr_err_set(err, DCR_EFORMAT, "body.%s: expected a string",
				                   f[j].key);
			if (memchr(p, 0, len))
				return dcr_err_set(err, DCR_EFORMAT,
				                   "body.%s: contains a NUL character", f[j].key);
			if (len > f[j].max)
				return dcr_err_set(err, DCR_ELIMIT,
				                   "body.%s: %zu bytes, at most %zu allowed",
				                   f[j].key, len, f[j].max);
			break;
		case F_UINT:
			if (dcr_mp_u64(v, &u))
				return dcr_err_set(err, DCR_EFORMAT,
				                   "body.%s: expected an unsigned integer",
				                   f[j].key);
			break;
		case F_BIN32:
			if (dcr_mp_bin(v, &b, &len) || len != 32)
				return dcr_err_set(err, DCR_EFORMAT,
				                   "body.%s: expected 32 bytes (binary)", f[j].key);
			break;
		}
	}
	return 0;
}

/* Accessors for checked bodies (cannot fail after body_check). */
static char *bstr(const dcr_mpv *body, const char *key)
{
	char *s = NULL;
	DCR_ASSERT(dcr_mp_strdup(dcr_mp_get(body, key), &s) == 0);
	return s;
}

static uint64_t buint(const dcr_mpv *body, const char *key)
{
	uint64_t u = 0;
	DCR_ASSERT(dcr_mp_u64(dcr_mp_get(body, key), &u) == 0);
	return u;
}

static void bbin32(const dcr_mpv *body, const char *key, uint8_t out[32])
{
	DCR_ASSERT(dcr_mp_get_binn(body, key, out, 32, NULL) == 0);
}

static bool run_id_valid(const char *id)
{
	if (strlen(id) != 32)
		return false;
	for (size_t i = 0; i < 32; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return true;
}

/* ---- handlers ------------------------------------------------------------------ */

static const field def_fields[] = {{"definition", F_STR, DCR_RM_DEF_BYTES_MAX}};

/* Parses the definition in a created/draft_saved body. The daemon's key
 * may not be a participant: daemon events and participant events must
 * stay apart, or the host could provision, run and read as a party. */
static int body_definition(const rm_state *s, const es_event *ev, char **json, rm_def **def,
                           dcr_err *err)
{
	int rc = body_check(ev->body, def_fields, 1, err);
	if (rc)
		return rc;
	*json = bstr(ev->body, "definition");
	rc = rm_def_parse(*json, strlen(*json), def, err);
	if (rc) {
		dcr_err_prefix(err, "definition");
	} else {
		for (size_t i = 0; i < (*def)->nparticipants && !rc; i++)
			if (memcmp((*def)->participants[i].key, s->daemon_key, 32) == 0)
				rc = dcr_err_set(err, DCR_EINVALID,
				                 "definition: participants[%zu].key: is the "
				                 "daemon's key; the host cannot be a participant",
				                 i);
		if (rc) {
			rm_def_free(*def);
			*def = NULL;
		}
	}
	if (rc) {
		free(*json);
		*json = NULL;
	}
	return rc;
}

static void commit_definition(rm_state *s, char *json, rm_def *def)
{
	rm_def_free(s->def);
	free(s->def_json);
	s->def = def;
	s->def_json = json;
	dcr_sha256(json, strlen(json), s->def_sha256);
}

static int on_created(rm_state *s, const es_event *ev, dcr_err *err)
{
	char *json;
	rm_def *def;
	if (s->status != RM_NONE)
		return dcr_err_set(err, DCR_ESTATE,
		                   "the room already exists; room.created is only the first event");
	if (memcmp(ev->actor, s->daemon_key, 32) == 0)
		return dcr_err_set(err, DCR_EDENIED, "the daemon cannot create rooms");
	int rc = body_definition(s, ev, &json, &def, err);
	if (rc)
		return rc;
	memcpy(s->room, ev->room, ES_ROOM_ID_BYTES);
	memcpy(s->creator, ev->actor, 32);
	s->status = RM_DRAFT;
	commit_definition(s, json, def);
	return 0;
}

static int on_saved(rm_state *s, const es_event *ev, dcr_err *err)
{
	char *json;
	rm_def *def;
	int rc = rm_check_edit(s, ev->actor, err);
	if (!rc)
		rc = body_definition(s, ev, &json, &def, err);
	if (rc)
		return rc;
	commit_definition(s, json, def);
	return 0;
}

static int on_published(rm_state *s, const es_event *ev, dcr_err *err)
{
	static const field f[] = {{"definition_sha256", F_BIN32, 0}};
	uint8_t h[32];
	char a[65], b[65];
	rm_def *def = NULL;
	int rc = rm_check_edit(s, ev->actor, err);
	if (!rc)
		rc = body_check(ev->body, f, 1, err);
	if (rc)
		return rc;
	bbin32(ev->body, "definition_sha256", h);
	if (memcmp(h, s->def_sha256, 32) != 0) {
		dcr_hex_encode(h, 32, a);
		dcr_hex_encode(s->def_sha256, 32, b);
		return dcr_err_set(err, DCR_EINVALID,
		                   "definition_sha256 %.12s does not match the current definition "
		                   "(sha256 %.12s): publish what you read",
		                   a, b);
	}
	/* Validated again: the rules of the room are checked at the moment it
	 * freezes, by the code that will enforce them. */
	rc = rm_def_parse(s->def_json, strlen(s->def_json), &def, err);
	if (rc) {
		dcr_err_prefix(err, "definition");
		return rc;
	}
	rm_def_free(def);
	s->status = RM_PUBLISHED;
	return 0;
}

static int on_stopped(rm_state *s, const es_event *ev, dcr_err *err)
{
	static const field f[] = {{"reason", F_STR, DCR_RM_REASON_BYTES_MAX}};
	int rc = rm_check_stop(s, ev->actor, err);
	if (!rc)
		rc = body_check(ev->body, f, 1, err);
	if (rc)
		return rc;
	free(s->stop_reason);
	s->stop_reason = bstr(ev->body, "reason");
	s->status = RM_STOPPED;
	return 0;
}

static int on_provisioned(rm_state *s, const es_event *ev, dcr_err *err)
{
	static const field f[] = {
	    {"blob", F_STR, DCR_RM_BLOB_ID_BYTES_MAX},
	    {"bytes", F_UINT, 0},
	    {"dataset", F_STR, DCR_RM_NAME_BYTES_MAX},
	    {"file", F_STR, DCR_RM_FILE_NAME_BYTES_MAX},
	    {"rows", F_UINT, 0},
	    {"sha256", F_BIN32, 0},
	    {"stats_sha256", F_BIN32, 0},
	};
	int rc = need_participant(s, ev->actor, err);
	if (!rc)
		rc = body_check(ev->body, f, sizeof f / sizeof f[0], err);
	if (rc)
		return rc;
	char *dataset = bstr(ev->body, "dataset");
	char *blob = bstr(ev->body, "blob");
	if ((rc = rm_check_provision(s, ev->actor, dataset, err)))
		goto out;
	if (!*blob) {
		rc = dcr_err_set(err, DCR_EFORMAT, "body.blob: empty blob id");
		goto out;
	}
	rm_provision *p = find_provision(s, dataset);
	if (!p) {
		s->provisions =
		    dcr_realloc(s->provisions, (s->nprovisions + 1) * sizeof(rm_provision));
		p = &s->provisions[s->nprovisions++];
		memset(p, 0, sizeof *p);
		p->dataset = dataset;
		dataset = NULL;
	}
	free(p->blob);
	free(p->file);
	p->present = true;
	memcpy(p->by, ev->actor, 32);
	bbin32(ev->body, "sha256", p->sha256);
	bbin32(ev->body, "stats_sha256", p->stats_sha256);
	p->blob = blob;
	blob = NULL;
	p->file = bstr(ev->body, "file");
	p->bytes = buint(ev->body, "bytes");
	p->rows = buint(ev->body, "rows");
	p->seq = ev->seq;
	p->ts_ms = ev->ts_ms;
out:
	free(dataset);
	free(blob);
	return rc;
}

static int on_deprovisioned(rm_state *s, const es_event *ev, dcr_err *err)
{
	static const field f[] = {{"dataset", F_STR, DCR_RM_NAME_BYTES_MAX}};
	int rc = need_participant(s, ev->actor, err);
	if (!rc)
		rc = body_check(ev->body, f, 1, err);
	if (rc)
		return rc;
	char *dataset = bstr(ev->body, "dataset");
	rc = rm_check_deprovision(s, ev->actor, dataset, err);
	if (!rc) {
		rm_provision *p = find_provision(s, dataset);
		p->present = false;
		p->seq = ev->seq;
		p->ts_ms = ev->ts_ms;
		memcpy(p->by, ev->actor, 32);
	}
	free(dataset);
	return rc;
}

static int on_run_requested(rm_state *s, const es_event *ev, dcr_err *err)
{
	static const field f[] = {{"computation", F_STR, DCR_RM_NAME_BYTES_MAX},
	                          {"run", F_STR, 32}};
	int rc = need_participant(s, ev->actor, err);
	if (!rc)
		rc = body_check(ev->body, f, 2, err);
	if (rc)
		return rc;
	char *comp = bstr(ev->body, "computation");
	char *id = bstr(ev->body, "run");
	if ((rc = rm_check_run(s, ev->actor, comp, err)))
		goto out;
	if (!run_id_valid(id)) {
		rc = dcr_err_set(err, DCR_EFORMAT,
		                 "body.run: \"%s\" is not a run id "
		                 "(32 lowercase hex characters)",
		                 id);
		goto out;
	}
	if (find_run(s, id)) {
		rc = dcr_err_set(err, DCR_EEXIST, "run %s already exists in this room", id);
		goto out;
	}
	if (s->nruns >= DCR_RM_RUNS_MAX) {
		rc = dcr_err_set(err, DCR_ELIMIT, "the room has %zu runs, the limit", s->nruns);
		goto out;
	}
	run_index_grow(s, s->nruns + 1);
	s->runs = dcr_realloc(s->runs, (s->nruns + 1) * sizeof(rm_run));
	rm_run *r = &s->runs[s->nruns];
	memset(r, 0, sizeof *r);
	r->id = id;
	r->computation = comp;
	id = comp = NULL;
	memcpy(r->by, ev->actor, 32);
	r->state = RM_RUN_QUEUED;
	r->requested_seq = ev->seq;
	r->requested_ts_ms = ev->ts_ms;
	run_index_put(s, s->nruns);
	s->nruns++;
out:
	free(comp);
	free(id);
	return rc;
}

/* The queued run named by a daemon body, whose computation must match. */
static int daemon_run(rm_state *s, const es_event *ev, rm_run **out, dcr_err *err)
{
	const char *p;
	size_t n;
	char id[33], comp[DCR_RM_NAME_BYTES_MAX + 1];
	DCR_ASSERT(dcr_mp_get_str(ev->body, "run", &p, &n, NULL) == 0);
	snprintf(id, sizeof id, "%.*s", (int)(n > 32 ? 32 : n), p);
	rm_run *r = n == 32 ? find_run(s, id) : NULL;
	if (!r)
		return dcr_err_set(err, DCR_ENOTFOUND, "no run %.*s in this room",
		                   (int)(n > 64 ? 64 : n), p);
	DCR_ASSERT(dcr_mp_get_str(ev->body, "computation", &p, &n, NULL) == 0);
	snprintf(comp, sizeof comp, "%.*s",
	         (int)(n > DCR_RM_NAME_BYTES_MAX ? DCR_RM_NAME_BYTES_MAX : n), p);
	if (n > DCR_RM_NAME_BYTES_MAX || strcmp(comp, r->computation) != 0)
		return dcr_err_set(err, DCR_EINVALID, "run %s is of computation %s, not %s", id,
		                   r->computation, comp);
	if (r->state != RM_RUN_QUEUED)
		return dcr_err_set(err, DCR_ESTATE, "run %s has already %s", id,
		                   r->state == RM_RUN_DONE ? "completed" : "failed");
	*out = r;
	return 0;
}

/* The meta JSON of run.completed: schema [["name","type"],...] and inputs
 * {"name": "sha256 hex" or ""} whose names are inputs of the computation. */
static int check_schema_json(const char *text, dcr_err *err);
static int check_inputs_json(const rm_computation *c, const char *text, dcr_err *err);

static int on_run_completed(rm_state *s, const es_event *ev, dcr_err *err)
{
	static const field f[] = {
	    {"computation", F_STR, DCR_RM_NAME_BYTES_MAX},
	    {"duration_ms", F_UINT, 0},
	    {"inputs", F_STR, DCR_RM_RUN_META_BYTES_MAX},
	    {"result_blob", F_STR, DCR_RM_BLOB_ID_BYTES_MAX},
	    {"result_bytes", F_UINT, 0},
	    {"result_sha256", F_BIN32, 0},
	    {"rows", F_UINT, 0},
	    {"run", F_STR, 32},
	    {"schema", F_STR, DCR_RM_RUN_META_BYTES_MAX},
	    {"suppressed", F_UINT, 0},
	};
	rm_run *r;
	int rc = need_daemon(s, ev->actor, err);
	if (!rc)
		rc = body_check(ev->body, f, sizeof f / sizeof f[0], err);
	if (!rc)
		rc = daemon_run(s, ev, &r, err);
	if (rc)
		return rc;
	char *schema = bstr(ev->body, "schema");
	char *inputs = bstr(ev->body, "inputs");
	char *blob = bstr(ev->body, "result_blob");
	if ((rc = check_schema_json(schema, err)) ||
	    (rc = check_inputs_json(rm_def_computation(s->def, r->computation), inputs, err)))
		goto out;
	if (!*blob) {
		rc = dcr_err_set(err, DCR_EFORMAT, "body.result_blob: empty blob id");
		goto out;
	}
	r->state = RM_RUN_DONE;
	r->finished_ts_ms = ev->ts_ms;
	r->finished_seq = ev->seq;
	r->schema_json = schema;
	r->inputs_json = inputs;
	r->result_blob = blob;
	schema = inputs = blob = NULL;
	bbin32(ev->body, "result_sha256", r->result_sha256);
	r->rows = buint(ev->body, "rows");
	r->suppressed = buint(ev->body, "suppressed");
	r->result_bytes = buint(ev->body, "result_bytes");
	r->duration_ms = buint(ev->body, "duration_ms");
out:
	free(schema);
	free(inputs);
	free(blob);
	return rc;
}

static int on_run_failed(rm_state *s, const es_event *ev, dcr_err *err)
{
	static const field f[] = {{"computation", F_STR, DCR_RM_NAME_BYTES_MAX},
	                          {"error", F_STR, DCR_RM_ERROR_BYTES_MAX},
	                          {"run", F_STR, 32}};
	rm_run *r;
	int rc = need_daemon(s, ev->actor, err);
	if (!rc)
		rc = body_check(ev->body, f, 3, err);
	if (!rc)
		rc = daemon_run(s, ev, &r, err);
	if (rc)
		return rc;
	r->state = RM_RUN_FAILED;
	r->finished_ts_ms = ev->ts_ms;
	r->finished_seq = ev->seq;
	r->error = bstr(ev->body, "error");
	return 0;
}

static int on_retrieved(rm_state *s, const es_event *ev, dcr_err *err)
{
	static const field f[] = {{"run", F_STR, 32}};
	int rc = need_participant(s, ev->actor, err);
	if (!rc)
		rc = body_check(ev->body, f, 1, err);
	if (rc)
		return rc;
	char *id = bstr(ev->body, "run");
	rc = rm_check_retrieve(s, ev->actor, id, err);
	if (!rc) {
		rm_run *r = find_run(s, id);
		if (r->retrieved++ == 0)
			r->retrieved_seq = ev->seq;
	}
	free(id);
	return rc;
}

static const struct {
	const char *type;
	int (*fn)(rm_state *, const es_event *, dcr_err *);
} handlers[] = {
    {RM_EV_CREATED, on_created},
    {RM_EV_SAVED, on_saved},
    {RM_EV_PUBLISHED, on_published},
    {RM_EV_STOPPED, on_stopped},
    {RM_EV_PROVISIONED, on_provisioned},
    {RM_EV_DEPROVISIONED, on_deprovisioned},
    {RM_EV_RUN_REQUESTED, on_run_requested},
    {RM_EV_RUN_COMPLETED, on_run_completed},
    {RM_EV_RUN_FAILED, on_run_failed},
    {RM_EV_RETRIEVED, on_retrieved},
};

static int apply(rm_state *s, const es_event *ev, dcr_err *err)
{
	if (ev->seq != s->size)
		return dcr_err_set(err, DCR_ESEQ,
		                   "event seq %" PRIu64 " but room has %" PRIu64
		                   " events: replayed or out of order",
		                   ev->seq, s->size);
	if (s->status != RM_NONE && memcmp(ev->room, s->room, ES_ROOM_ID_BYTES) != 0) {
		char here[ES_ROOM_HEX_BYTES];
		es_room_format(s->room, here);
		return dcr_err_set(err, DCR_EINVALID, "event is for room %s, not this room %s",
		                   ev->room_hex, here);
	}
	for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++) {
		if (strcmp(ev->type, handlers[i].type) != 0)
			continue;
		if (s->status == RM_NONE && handlers[i].fn != on_created)
			return dcr_err_set(err, DCR_ESTATE,
			                   "the room does not exist yet; the first event must be "
			                   "room.created");
		return handlers[i].fn(s, ev, err);
	}
	return dcr_err_set(err, DCR_EINVALID, "unknown event type");
}

int rm_apply_at(rm_state *s, const es_event *ev, rm_step *step)
{
	step->seq = ev->seq;
	snprintf(step->type, sizeof step->type, "%s", ev->type);
	dcr_err_clear(&step->reason);
	int rc = apply(s, ev, &step->reason);
	if (rc)
		return rc;
	s->size++;
	s->last_ts_ms = ev->ts_ms;
	return 0;
}

int rm_apply(rm_state *s, const es_event *ev, dcr_err *err)
{
	rm_step step;
	int rc = rm_apply_at(s, ev, &step);
	return rc ? rm_step_err(&step, err) : 0;
}

int rm_step_err(const rm_step *step, dcr_err *err)
{
	int rc = step->reason.code ? step->reason.code : DCR_EINVALID;
	const char *why = step->reason.msg[0] ? step->reason.msg : dcr_strerror(rc);
	if (!step->type[0])
		return dcr_err_set(err, rc, "seq %" PRIu64 ": %s", step->seq, why);
	return dcr_err_set(err, rc, "seq %" PRIu64 " (%s): %s", step->seq, step->type, why);
}

int rm_replay_step(rm_state *s, const void *entry, size_t n, rm_step_fn before, void *ctx,
                   rm_step *step)
{
	es_event ev;
	step->seq = s->size;
	step->type[0] = '\0';
	dcr_err_clear(&step->reason);
	int rc = es_event_decode(entry, n, &ev, &step->reason);
	if (rc)
		return rc;
	step->seq = ev.seq;
	snprintf(step->type, sizeof step->type, "%s", ev.type);
	rc = es_event_verify(&ev, &step->reason);
	if (!rc && before)
		rc = before(ctx, s, &ev, &step->reason);
	if (!rc)
		rc = rm_apply_at(s, &ev, step);
	if (rc && !step->reason.code)
		step->reason.code = rc; /* a hook that said no without a reason */
	es_event_release(&ev);
	return rc;
}

/* ---- run meta JSON ------------------------------------------------------------ */

static int check_schema_json(const char *text, dcr_err *err)
{
	json_error_t je;
	int rc = 0;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return dcr_err_set(err, DCR_EFORMAT, "body.schema: line %d, column %d: %s", je.line,
		                   je.column, je.text);
	if (!json_is_array(j)) {
		rc = dcr_err_set(err, DCR_EFORMAT, "body.schema: expected [[name, type], ...]");
		goto out;
	}
	for (size_t i = 0; i < json_array_size(j); i++) {
		json_t *c = json_array_get(j, i);
		const char *t = json_string_value(json_array_get(c, 1));
		enum cmp_type ty;
		if (!json_is_array(c) || json_array_size(c) != 2 ||
		    !json_is_string(json_array_get(c, 0)) || !t ||
		    !cmp_type_parse(t, strlen(t), &ty)) {
			rc = dcr_err_set(err, DCR_EFORMAT,
			                 "body.schema[%zu]: expected [name, \"string\"|\"integer\"|"
			                 "\"float\"]",
			                 i);
			goto out;
		}
	}
out:
	json_decref(j);
	return rc;
}

static int check_inputs_json(const rm_computation *c, const char *text, dcr_err *err)
{
	json_error_t je;
	int rc = 0;
	const char *key;
	json_t *v;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return dcr_err_set(err, DCR_EFORMAT, "body.inputs: line %d, column %d: %s", je.line,
		                   je.column, je.text);
	if (!json_is_object(j)) {
		rc = dcr_err_set(err, DCR_EFORMAT, "body.inputs: expected {\"input\": \"sha256\"}");
		goto out;
	}
	json_object_foreach(j, key, v)
	{
		bool known = false;
		const char *h = json_string_value(v);
		uint8_t raw[32];
		for (size_t i = 0; c && i < c->ninputs && !known; i++)
			known = strcmp(c->inputs[i], key) == 0;
		if (!known) {
			rc = dcr_err_set(err, DCR_EINVALID,
			                 "body.inputs: \"%s\" is not an input of "
			                 "computation %s",
			                 key, c ? c->name : "?");
			goto out;
		}
		/* "" marks an input that was not provisioned (read as empty) */
		if (!h || (*h && (strlen(h) != 64 || dcr_hex_decode(h, 64, raw, 32) != 0))) {
			rc = dcr_err_set(err, DCR_EFORMAT,
			                 "body.inputs.%s: expected a sha256 (64 hex characters) or "
			                 "\"\" for an input that was not provisioned",
			                 key);
			goto out;
		}
	}
out:
	json_decref(j);
	return rc;
}
