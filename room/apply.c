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
	for (size_t i = 0; i < r->ninputs; i++) {
		free(r->inputs[i].dataset);
		free(r->inputs[i].blob);
		for (size_t k = 0; k < r->inputs[i].ndrop_blobs; k++)
			free(r->inputs[i].drop_blobs[k]);
		free(r->inputs[i].drop_blobs);
	}
	free(r->inputs);
	for (size_t i = 0; i < r->ncols; i++)
		free(r->cols[i].name);
	free(r->cols);
}

static void drop_release(rm_drop *d)
{
	free(d->file);
	free(d->blob);
}

void rm_state_release(rm_state *s)
{
	rm_def_free(s->def);
	free(s->def_json);
	for (size_t i = 0; i < s->nprovisions; i++) {
		free(s->provisions[i].dataset);
		free(s->provisions[i].blob);
		free(s->provisions[i].file);
		for (size_t k = 0; k < s->provisions[i].ndrops; k++)
			drop_release(&s->provisions[i].drops[k]);
		free(s->provisions[i].drops);
	}
	free(s->provisions);
	for (size_t i = 0; i < s->nruns; i++)
		run_release(&s->runs[i]);
	free(s->runs);
	free(s->stop_reason);
	free(s->run_index);
	free(s->dp_spent);
	memset(s, 0, sizeof *s);
}

static rm_provision *find_provision(const rm_state *s, const char *dataset)
{
	for (size_t i = 0; i < s->nprovisions; i++)
		if (strcmp(s->provisions[i].dataset, dataset) == 0)
			return &s->provisions[i];
	return NULL;
}

uint64_t rm_state_epsilon_spent(const rm_state *s, const char *dataset)
{
	for (size_t i = 0; s->dp_spent && s->def && i < s->def->ndatasets; i++)
		if (dataset && strcmp(s->def->datasets[i].name, dataset) == 0)
			return s->dp_spent[i];
	return 0;
}

/* The budget ledger (docs/rules.md, run.requested): a DP computation spends
 * its epsilon on every dataset it reads, directly or through upstream
 * computations; no dataset may go past its budget. */
static int check_budget(const rm_state *s, const rm_computation *c, dcr_err *err)
{
	const rm_def *d = s->def;
	int rc = 0;
	if (!c->dp_epsilon)
		return 0;
	bool *used = dcr_calloc(d->ndatasets + 1, sizeof(bool));
	rm_def_datasets_read(d, c, used);
	for (size_t i = 0; i < d->ndatasets && !rc; i++) {
		uint64_t spent = s->dp_spent ? s->dp_spent[i] : 0, budget = d->datasets[i].epsilon_budget;
		if (!used[i])
			continue;
		DCR_ASSERT(budget && spent <= budget); /* check_dp in def.c */
		if (c->dp_epsilon > budget - spent) {
			char a[32], b[32], sp[32], l[32];
			rc = dcr_err_set(err, DCR_EDENIED,
			                 "computation %s would spend epsilon %s on dataset %s, which "
			                 "has spent %s of its budget %s (%s left)",
			                 c->name, rm_epsilon_format(c->dp_epsilon, a, sizeof a),
			                 d->datasets[i].name, rm_epsilon_format(spent, sp, sizeof sp),
			                 rm_epsilon_format(budget, b, sizeof b),
			                 rm_epsilon_format(budget - spent, l, sizeof l));
		}
	}
	free(used);
	return rc;
}

static void spend_budget(rm_state *s, const rm_computation *c)
{
	const rm_def *d = s->def;
	if (!c->dp_epsilon)
		return;
	bool *used = dcr_calloc(d->ndatasets + 1, sizeof(bool));
	rm_def_datasets_read(d, c, used);
	if (!s->dp_spent)
		s->dp_spent = dcr_calloc(d->ndatasets + 1, sizeof(uint64_t));
	for (size_t i = 0; i < d->ndatasets; i++)
		if (used[i])
			s->dp_spent[i] += c->dp_epsilon;
	free(used);
}

const rm_provision *rm_state_provision(const rm_state *s, const char *dataset)
{
	const rm_provision *p = dataset ? find_provision(s, dataset) : NULL;
	return p && p->present ? p : NULL;
}

const rm_drop *rm_state_drop(const rm_state *s, const char *dataset, const char *file)
{
	const rm_provision *p = dataset && file ? find_provision(s, dataset) : NULL;
	for (size_t i = 0; p && i < p->ndrops; i++)
		if (strcmp(p->drops[i].file, file) == 0)
			return &p->drops[i];
	return NULL;
}

void rm_drops_sha256(const rm_drop *drops, size_t n, uint8_t out[32])
{
	uint8_t *cat = dcr_calloc(n ? n : 1, 32);
	for (size_t i = 0; i < n; i++)
		memcpy(cat + 32 * i, drops[i].sha256, 32);
	dcr_sha256(cat, 32 * n, out);
	free(cat);
}

bool rm_drop_name_valid(const char *file)
{
	size_t n = file ? strlen(file) : 0;
	if (n == 0 || n > DCR_RM_FILE_NAME_BYTES_MAX || strcmp(file, ".") == 0 ||
	    strcmp(file, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (file[i] == '/' || (unsigned char)file[i] < 0x20 || file[i] == 0x7f)
			return false;
	return true;
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
	if (rm_def_dataset(s->def, dataset)->append)
		return dcr_err_set(err, DCR_EINVALID,
		                   "dataset %s is an append dataset: withdraw its drops one at a "
		                   "time, each by its file name",
		                   dataset);
	return 0;
}

int rm_check_withdraw(const rm_state *s, const uint8_t key[32], const char *dataset,
                      const char *file, dcr_err *err)
{
	int rc = rm_check_provision(s, key, dataset, err);
	if (rc)
		return rc;
	if (!rm_def_dataset(s->def, dataset)->append)
		return dcr_err_set(err, DCR_EINVALID,
		                   "dataset %s is not an append dataset (drops \"replace\"): it has "
		                   "no drops to withdraw",
		                   dataset);
	if (!rm_state_drop(s, dataset, file))
		return dcr_err_set(err, DCR_ENOTFOUND, "dataset %s has no drop named \"%.255s\"",
		                   dataset, file ? file : "");
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
	if ((rc = check_budget(s, c, err)))
		return rc;
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

enum fkind { F_STR, F_UINT, F_BIN32, F_ARRAY, F_MAP };
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
		case F_ARRAY:
			if (dcr_mp_type(v) != DCR_MP_ARRAY)
				return dcr_err_set(err, DCR_EFORMAT, "body.%s: expected an array",
				                   f[j].key);
			break;
		case F_MAP:
			if (dcr_mp_type(v) != DCR_MP_MAP)
				return dcr_err_set(err, DCR_EFORMAT, "body.%s: expected a map",
				                   f[j].key);
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

/* ---- drops (docs/rules.md "Drops") ------------------------------------------ */

static rm_provision *provision_get(rm_state *s, char *dataset)
{
	rm_provision *p = find_provision(s, dataset);
	if (p) {
		free(dataset);
		return p;
	}
	s->provisions = dcr_realloc(s->provisions, (s->nprovisions + 1) * sizeof(rm_provision));
	p = &s->provisions[s->nprovisions++];
	memset(p, 0, sizeof *p);
	p->dataset = dataset;
	return p;
}

/* The union's summary in p after its drops changed by ev. */
static void drops_summarize(rm_provision *p, const es_event *ev)
{
	p->present = p->ndrops > 0;
	p->bytes = p->rows = 0;
	for (size_t i = 0; i < p->ndrops; i++) {
		p->bytes += p->drops[i].bytes;
		p->rows += p->drops[i].rows;
	}
	if (p->ndrops)
		rm_drops_sha256(p->drops, p->ndrops, p->sha256);
	else
		memset(p->sha256, 0, 32);
	memset(p->stats_sha256, 0, 32);
	memcpy(p->by, ev->actor, 32);
	p->seq = ev->seq;
	p->ts_ms = ev->ts_ms;
}

static void drop_remove(rm_provision *p, size_t at)
{
	drop_release(&p->drops[at]);
	memmove(&p->drops[at], &p->drops[at + 1], (p->ndrops - at - 1) * sizeof(rm_drop));
	p->ndrops--;
}

/* dataset.provisioned of an append dataset: a drop. A drop with the file
 * name and sha256 of one already in is refused (the same file counts
 * once); with the name of one already in and other bytes, it replaces
 * that drop (a corrected re-export of the same day). Takes dataset and
 * blob on success. */
static int add_drop(rm_state *s, const es_event *ev, char *dataset, char *blob, dcr_err *err)
{
	char *file = bstr(ev->body, "file");
	uint8_t sha[32];
	const rm_drop *old;
	int rc = 0;
	bbin32(ev->body, "sha256", sha);
	if (!rm_drop_name_valid(file)) {
		rc = dcr_err_set(err, DCR_EINVALID,
		                 "body.file: \"%.255s\" is not a drop name (dataset %s is an "
		                 "append dataset: each drop is named by its file name, 1 to %u "
		                 "bytes, without '/' or control characters, not . or ..)",
		                 file, dataset, (unsigned)DCR_RM_FILE_NAME_BYTES_MAX);
		goto out;
	}
	old = rm_state_drop(s, dataset, file);
	if (old && memcmp(old->sha256, sha, 32) == 0) {
		char hex[65];
		dcr_hex_encode(sha, 32, hex);
		rc = dcr_err_set(err, DCR_EEXIST,
		                 "drop \"%s\" of dataset %s is already in with sha256 %.12s (the "
		                 "same file dropped twice counts once)",
		                 file, dataset, hex);
		goto out;
	}
	const rm_provision *cur = find_provision(s, dataset);
	if (!old && cur && cur->ndrops >= DCR_RM_DROPS_MAX) {
		rc = dcr_err_set(err, DCR_ELIMIT, "dataset %s has %u drops, the most it may hold",
		                 dataset, (unsigned)DCR_RM_DROPS_MAX);
		goto out;
	}
	/* commit */
	rm_provision *p = provision_get(s, dataset);
	if (old)
		drop_remove(p, (size_t)(old - p->drops));
	p->drops = dcr_realloc(p->drops, (p->ndrops + 1) * sizeof(rm_drop));
	rm_drop *d = &p->drops[p->ndrops++];
	memset(d, 0, sizeof *d);
	d->file = file;
	file = NULL;
	memcpy(d->sha256, sha, 32);
	bbin32(ev->body, "stats_sha256", d->stats_sha256);
	d->blob = blob;
	d->bytes = buint(ev->body, "bytes");
	d->rows = buint(ev->body, "rows");
	memcpy(d->by, ev->actor, 32);
	d->seq = ev->seq;
	d->ts_ms = ev->ts_ms;
	drops_summarize(p, ev);
out:
	free(file);
	return rc;
}

/* dataset.deprovisioned {dataset, file}: the withdrawal of one drop. */
static int on_withdrawn(rm_state *s, const es_event *ev, dcr_err *err)
{
	static const field f[] = {{"dataset", F_STR, DCR_RM_NAME_BYTES_MAX},
	                          {"file", F_STR, DCR_RM_FILE_NAME_BYTES_MAX}};
	int rc = body_check(ev->body, f, 2, err);
	if (rc)
		return rc;
	char *dataset = bstr(ev->body, "dataset");
	char *file = bstr(ev->body, "file");
	rc = rm_check_withdraw(s, ev->actor, dataset, file, err);
	if (!rc) {
		rm_provision *p = find_provision(s, dataset);
		const rm_drop *d = rm_state_drop(s, dataset, file);
		drop_remove(p, (size_t)(d - p->drops));
		drops_summarize(p, ev);
	}
	free(dataset);
	free(file);
	return rc;
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
	if (rm_def_dataset(s->def, dataset)->append) {
		rc = add_drop(s, ev, dataset, blob, err);
		if (rc == 0)
			dataset = blob = NULL; /* taken */
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
	if (rc)
		return rc;
	if (ev->body && dcr_mp_type(ev->body) == DCR_MP_MAP && dcr_mp_get(ev->body, "file"))
		return on_withdrawn(s, ev, err);
	if ((rc = body_check(ev->body, f, 1, err)))
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

/* body.epsilon of run.requested: present exactly for a DP computation, and
 * then the computation's privacy.epsilon in canonical form. */
static int check_request_epsilon(const rm_state *s, const es_event *ev, const char *comp,
                                 dcr_err *err)
{
	const rm_computation *c = rm_def_computation(s->def, comp);
	const dcr_mpv *e = dcr_mp_get(ev->body, "epsilon");
	char want[32];
	const char *p;
	size_t n;
	if (!c->dp_epsilon && e)
		return dcr_err_set(err, DCR_EFORMAT,
		                   "body: unexpected field \"epsilon\" (computation %s is not "
		                   "differentially private)",
		                   comp);
	if (!c->dp_epsilon)
		return 0;
	rm_epsilon_format(c->dp_epsilon, want, sizeof want);
	if (!e)
		return dcr_err_set(err, DCR_EFORMAT,
		                   "body: missing field \"epsilon\" (computation %s is "
		                   "differentially private: the request states the epsilon it "
		                   "spends, \"%s\")",
		                   comp, want);
	DCR_ASSERT(dcr_mp_str(e, &p, &n) == 0);
	if (n != strlen(want) || memcmp(p, want, n) != 0)
		return dcr_err_set(err, DCR_EINVALID,
		                   "body.epsilon: \"%.*s\" but computation %s spends \"%s\"",
		                   (int)(n > 32 ? 32 : n), p, comp, want);
	return 0;
}

static int input_cmp(const void *a, const void *b)
{
	return strcmp(((const rm_run_input *)a)->dataset, ((const rm_run_input *)b)->dataset);
}

/* Every dataset the run's computation reads, directly or through upstream
 * computations, as provisioned now; sorted by name (bytewise), the order
 * of the run.completed inputs map. */
static void record_inputs(const rm_state *s, rm_run *r)
{
	const rm_def *d = s->def;
	bool *used = dcr_calloc(d->ndatasets + 1, sizeof(bool));
	rm_def_datasets_read(d, rm_def_computation(d, r->computation), used);
	r->inputs = dcr_calloc(d->ndatasets + 1, sizeof(rm_run_input));
	for (size_t i = 0; i < d->ndatasets; i++) {
		if (!used[i])
			continue;
		rm_run_input *in = &r->inputs[r->ninputs++];
		const rm_provision *p = rm_state_provision(s, d->datasets[i].name);
		in->dataset = dcr_strdup(d->datasets[i].name);
		if (p) {
			in->present = true;
			memcpy(in->sha256, p->sha256, 32);
			in->blob = p->blob ? dcr_strdup(p->blob) : NULL;
			if (p->ndrops) /* an append dataset: the union as requested */
				in->drop_blobs = dcr_calloc(p->ndrops, sizeof(char *));
			for (size_t k = 0; k < p->ndrops; k++)
				in->drop_blobs[in->ndrop_blobs++] = dcr_strdup(p->drops[k].blob);
		}
	}
	qsort(r->inputs, r->ninputs, sizeof(rm_run_input), input_cmp);
	free(used);
}

static int on_run_requested(rm_state *s, const es_event *ev, dcr_err *err)
{
	static const field f[] = {{"computation", F_STR, DCR_RM_NAME_BYTES_MAX},
	                          {"epsilon", F_STR, 32},
	                          {"run", F_STR, 32}};
	static const field f2[] = {{"computation", F_STR, DCR_RM_NAME_BYTES_MAX},
	                           {"run", F_STR, 32}};
	int rc = need_participant(s, ev->actor, err);
	if (!rc) {
		bool eps = ev->body && dcr_mp_type(ev->body) == DCR_MP_MAP &&
		           dcr_mp_get(ev->body, "epsilon");
		rc = eps ? body_check(ev->body, f, 3, err) : body_check(ev->body, f2, 2, err);
	}
	if (rc)
		return rc;
	char *comp = bstr(ev->body, "computation");
	char *id = bstr(ev->body, "run");
	if ((rc = rm_check_run(s, ev->actor, comp, err)) ||
	    (rc = check_request_epsilon(s, ev, comp, err)))
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
	record_inputs(s, r);
	r->state = RM_RUN_QUEUED;
	r->requested_seq = ev->seq;
	r->requested_ts_ms = ev->ts_ms;
	const rm_computation *c = rm_def_computation(s->def, r->computation);
	r->epsilon = c->dp_epsilon;
	spend_budget(s, c);
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

/* body.schema: 1..DCR_SQL_COLS_MAX [name, type] pairs, names non-empty and
 * unique case-insensitively (ASCII), types from the column vocabulary.
 * Fills cols (heap) on success. */
static int check_schema(const dcr_mpv *v, rm_run_col **out, size_t *nout, dcr_err *err)
{
	uint32_t n = dcr_mp_len(v);
	rm_run_col *cols = NULL;
	size_t nc = 0;
	int rc = 0;
	if (n == 0 || n > DCR_SQL_COLS_MAX)
		return dcr_err_set(err, DCR_EFORMAT, "body.schema: %u columns; 1 to %u allowed",
		                   (unsigned)n, DCR_SQL_COLS_MAX);
	cols = dcr_calloc(n, sizeof(rm_run_col));
	for (uint32_t i = 0; i < n && !rc; i++) {
		const dcr_mpv *c = dcr_mp_at(v, i);
		const char *name, *type;
		size_t nn, tn;
		if (dcr_mp_type(c) != DCR_MP_ARRAY || dcr_mp_len(c) != 2 ||
		    dcr_mp_str(dcr_mp_at(c, 0), &name, &nn) ||
		    dcr_mp_str(dcr_mp_at(c, 1), &type, &tn)) {
			rc = dcr_err_set(err, DCR_EFORMAT,
			                 "body.schema[%u]: expected [name, type] (two strings)", i);
			break;
		}
		if (nn == 0 || nn > DCR_RM_RESULT_COL_BYTES_MAX || memchr(name, 0, nn)) {
			rc = dcr_err_set(err, DCR_EFORMAT,
			                 "body.schema[%u]: a column name has 1 to %u bytes and no "
			                 "NUL",
			                 i, DCR_RM_RESULT_COL_BYTES_MAX);
			break;
		}
		enum cmp_type t;
		if (!cmp_type_parse(type, tn, &t)) {
			rc = dcr_err_set(err, DCR_EFORMAT,
			                 "body.schema[%u]: type must be \"string\", \"integer\" or "
			                 "\"float\"",
			                 i);
			break;
		}
		char *nm = dcr_strndup(name, nn);
		for (size_t j = 0; j < nc && !rc; j++)
			if (dcr_ascii_ncasecmp(cols[j].name, nm, SIZE_MAX) == 0)
				rc = dcr_err_set(err, DCR_EFORMAT,
				                 "body.schema[%u]: column name \"%.64s\" is already "
				                 "schema[%zu] (names are unique, case-insensitively)",
				                 i, nm, j);
		cols[nc].name = nm;
		cols[nc++].type = t;
	}
	if (rc) {
		for (size_t j = 0; j < nc; j++)
			free(cols[j].name);
		free(cols);
		return rc;
	}
	*out = cols;
	*nout = nc;
	return 0;
}

/* body.inputs must name exactly the datasets recorded at run.requested,
 * each with the SHA-256 provisioned then (bin 32), or nil for one that was
 * not provisioned then (read as an empty table). */
static int check_inputs(const rm_run *r, const dcr_mpv *v, dcr_err *err)
{
	uint32_t n = dcr_mp_len(v);
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		size_t kn;
		const dcr_mpv *val = dcr_mp_map_at(v, i, &k, &kn);
		const rm_run_input *in = NULL;
		for (size_t j = 0; j < r->ninputs && !in; j++)
			if (strlen(r->inputs[j].dataset) == kn &&
			    memcmp(r->inputs[j].dataset, k, kn) == 0)
				in = &r->inputs[j];
		if (!in)
			return dcr_err_set(err, DCR_EINVALID,
			                   "body.inputs: \"%.*s\" is not a dataset run %s reads",
			                   (int)(kn > 64 ? 64 : kn), k, r->id);
		if (!in->present) {
			if (dcr_mp_type(val) != DCR_MP_NIL)
				return dcr_err_set(err, DCR_EINVALID,
				                   "body.inputs.%s: must be nil: the dataset was not "
				                   "provisioned when the run was requested",
				                   in->dataset);
			continue;
		}
		const uint8_t *h;
		size_t hn;
		if (dcr_mp_bin(val, &h, &hn) || hn != 32)
			return dcr_err_set(err, DCR_EINVALID,
			                   "body.inputs.%s: expected the 32-byte sha256 provisioned "
			                   "when the run was requested",
			                   in->dataset);
		if (memcmp(h, in->sha256, 32) != 0) {
			char a[65], b[65];
			dcr_hex_encode(h, 32, a);
			dcr_hex_encode(in->sha256, 32, b);
			return dcr_err_set(err, DCR_EINVALID,
			                   "body.inputs.%s: sha256 %.12s is not the one provisioned "
			                   "when the run was requested (%.12s)",
			                   in->dataset, a, b);
		}
	}
	if (n != r->ninputs) {
		/* every key matched a distinct dataset (keys are unique), so one is
		 * missing */
		for (size_t j = 0; j < r->ninputs; j++)
			if (!dcr_mp_get(v, r->inputs[j].dataset))
				return dcr_err_set(err, DCR_EINVALID,
				                   "body.inputs: dataset %s is missing (run %s "
				                   "reads it)",
				                   r->inputs[j].dataset, r->id);
	}
	return 0;
}

static int on_run_completed(rm_state *s, const es_event *ev, dcr_err *err)
{
	static const field f[] = {
	    {"computation", F_STR, DCR_RM_NAME_BYTES_MAX},
	    {"duration_ms", F_UINT, 0},
	    {"inputs", F_MAP, 0},
	    {"result_blob", F_STR, DCR_RM_BLOB_ID_BYTES_MAX},
	    {"result_bytes", F_UINT, 0},
	    {"result_sha256", F_BIN32, 0},
	    {"rows", F_UINT, 0},
	    {"run", F_STR, 32},
	    {"schema", F_ARRAY, 0},
	    {"suppressed", F_UINT, 0},
	};
	rm_run *r;
	rm_run_col *cols = NULL;
	size_t ncols = 0;
	int rc = need_daemon(s, ev->actor, err);
	if (!rc)
		rc = body_check(ev->body, f, sizeof f / sizeof f[0], err);
	if (!rc)
		rc = daemon_run(s, ev, &r, err);
	if (!rc)
		rc = check_inputs(r, dcr_mp_get(ev->body, "inputs"), err);
	if (!rc && dcr_mp_len(dcr_mp_get(ev->body, "result_blob")) == 0)
		rc = dcr_err_set(err, DCR_EFORMAT, "body.result_blob: empty blob id");
	if (!rc)
		rc = check_schema(dcr_mp_get(ev->body, "schema"), &cols, &ncols, err);
	if (rc)
		return rc;
	r->state = RM_RUN_DONE;
	r->finished_ts_ms = ev->ts_ms;
	r->finished_seq = ev->seq;
	r->cols = cols;
	r->ncols = ncols;
	r->result_blob = bstr(ev->body, "result_blob");
	bbin32(ev->body, "result_sha256", r->result_sha256);
	r->rows = buint(ev->body, "rows");
	r->suppressed = buint(ev->body, "suppressed");
	r->result_bytes = buint(ev->body, "result_bytes");
	r->duration_ms = buint(ev->body, "duration_ms");
	return 0;
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
	if (!rc) {
		/* Only a class of the fixed vocabulary, never a message that
		 * could quote data (docs/privacy.md, "Errors"). */
		char *e = bstr(ev->body, "error");
		if (!cmp_error_class_valid(e))
			rc = dcr_err_set(err, DCR_EINVALID,
			                 "run.failed: the error is not one of the data-free "
			                 "error classes (docs/privacy.md)");
		free(e);
	}
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
