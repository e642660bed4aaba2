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
	free(r->logs_blob);
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
	free(r->preview_of);
}

static void request_release(rm_request *q)
{
	free(q->id);
	free(q->text);
	free(q->title);
	for (size_t i = 0; i < q->ncomputations; i++)
		free(q->computations[i]);
	free(q->computations);
	for (size_t i = 0; i < q->nowners; i++)
		free(q->owners[i].reason);
	free(q->owners);
	free(q->failure);
	rm_def_free(q->preview_def);
}

static void drop_release(rm_drop *d)
{
	free(d->file);
	free(d->blob);
}

static void dev_release(rm_dev *d)
{
	free(d->id);
	free(d->script);
	for (size_t i = 0; i < d->ninputs; i++) {
		free(d->inputs[i].name);
		free(d->inputs[i].blob);
		free(d->inputs[i].file);
		free(d->inputs[i].run);
		for (size_t k = 0; k < d->inputs[i].ndrop_blobs; k++)
			free(d->inputs[i].drop_blobs[k]);
		free(d->inputs[i].drop_blobs);
	}
	free(d->inputs);
	free(d->error);
	free(d->result_blob);
	free(d->logs_blob);
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
	for (size_t i = 0; i < s->nrequests; i++)
		request_release(&s->requests[i]);
	free(s->requests);
	free(s->stop_reason);
	free(s->run_index);
	free(s->dp_spent);
	for (size_t i = 0; i < s->ndevs; i++)
		dev_release(&s->devs[i]);
	free(s->devs);
	free(s->dev_index);
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

/* The code point of the UTF-8 sequence at s[i..n) and its length in *k,
 * or -1 when it is not valid UTF-8 (overlong, surrogate, past U+10FFFF,
 * truncated, stray continuation byte). */
static int32_t utf8_at(const uint8_t *s, size_t n, size_t i, size_t *k)
{
	uint8_t b = s[i];
	uint32_t cp;
	size_t m;
	if (b < 0x80) {
		*k = 1;
		return b;
	}
	if ((b & 0xe0) == 0xc0) {
		m = 1;
		cp = b & 0x1f;
	} else if ((b & 0xf0) == 0xe0) {
		m = 2;
		cp = b & 0x0f;
	} else if ((b & 0xf8) == 0xf0) {
		m = 3;
		cp = b & 0x07;
	} else {
		return -1;
	}
	if (n - i <= m)
		return -1;
	for (size_t j = 1; j <= m; j++) {
		if ((s[i + j] & 0xc0) != 0x80)
			return -1;
		cp = cp << 6 | (s[i + j] & 0x3f);
	}
	if ((m == 1 && cp < 0x80) || (m == 2 && cp < 0x800) || (m == 3 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*k = m + 1;
	return (int32_t)cp;
}

/* What kind of character the rule refuses cp as, or NULL (docs/rules.md
 * "File names"). */
static const char *file_name_bad_char(uint32_t cp)
{
	if (cp == '/')
		return "'/'";
	if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f))
		return "a control character";
	if (cp == 0x2028 || cp == 0x2029)
		return "a line or paragraph separator";
	if (cp == 0x061c || cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
	    (cp >= 0x2066 && cp <= 0x2069))
		return "a bidirectional formatting character";
	return NULL;
}

const char *const rm_ds_own_files[RM_DS_OWN_FILES] = {"schema.json", "stats.json", "status"};

int rm_file_name_check(const char *name, size_t n, dcr_err *err)
{
	const uint8_t *s = (const uint8_t *)name;
	if (n == 0)
		return dcr_err_set(err, DCR_EINVALID, "the file name is empty");
	if (n > DCR_RM_FILE_NAME_BYTES_MAX)
		return dcr_err_set(err, DCR_EINVALID,
		                   "the file name is %zu bytes long, at most %u allowed", n,
		                   (unsigned)DCR_RM_FILE_NAME_BYTES_MAX);
	for (size_t i = 0, k = 0; i < n; i += k) {
		int32_t cp = utf8_at(s, n, i, &k);
		const char *what;
		if (cp < 0)
			return dcr_err_set(err, DCR_EINVALID,
			                   "the file name is not valid UTF-8 at byte %zu (0x%02x)",
			                   i, s[i]);
		if ((what = file_name_bad_char((uint32_t)cp)) != NULL) {
			if (cp < 0x80)
				return dcr_err_set(err, DCR_EINVALID,
				                   "the file name has %s at byte %zu (0x%02x); a file "
				                   "name holds no '/' and no control characters",
				                   what, i, (unsigned)cp);
			return dcr_err_set(err, DCR_EINVALID,
			                   "the file name has %s at byte %zu (U+%04X); a file name "
			                   "holds no control, line separator or bidirectional "
			                   "formatting characters",
			                   what, i, (unsigned)cp);
		}
	}
	if ((n == 1 && name[0] == '.') || (n == 2 && name[0] == '.' && name[1] == '.'))
		return dcr_err_set(err, DCR_EINVALID, "the file name is \"%.*s\" (a folder, not a "
		                   "file)", (int)n, name);
	for (size_t i = 0; i < RM_DS_OWN_FILES; i++)
		if (strlen(rm_ds_own_files[i]) == n && memcmp(rm_ds_own_files[i], name, n) == 0)
			return dcr_err_set(err, DCR_EINVALID,
			                   "the file name is \"%s\", the name of a file of the mount's "
			                   "own in a dataset folder (schema.json, stats.json, status)",
			                   rm_ds_own_files[i]);
	return 0;
}

bool rm_file_name_valid(const char *name)
{
	return name && rm_file_name_check(name, strlen(name), NULL) == 0;
}

static uint64_t run_hash(const char *id)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *id; id++)
		h = (h ^ (uint8_t)*id) * 1099511628211ull;
	return h;
}

/* An open-addressing index of ids (runs; development runs, whose ids share
 * one namespace with runs: rm_apply refuses an id used by either). Slot i
 * holds 1 + the entry's position, 0 when empty; the table is kept at most
 * half full. id_at names the entry at a position. */
typedef const char *(*id_at_fn)(const rm_state *s, size_t k);

static const char *run_id_at(const rm_state *s, size_t k)
{
	return s->runs[k].id;
}

static const char *dev_id_at(const rm_state *s, size_t k)
{
	return s->devs[k].id;
}

static void idx_put(size_t *slots, size_t cap, const char *id, size_t k)
{
	size_t mask = cap - 1;
	size_t i = run_hash(id) & mask;
	while (slots[i])
		i = (i + 1) & mask;
	slots[i] = k + 1;
}

/* Called before adding entry number need - 1 (n entries now). */
static void idx_grow(const rm_state *s, size_t **slots, size_t *cap, size_t need, size_t n,
                     id_at_fn id_at)
{
	if (need * 2 <= *cap)
		return;
	size_t c = *cap ? *cap : 64;
	while (need * 2 > c)
		c *= 2;
	free(*slots);
	*slots = dcr_calloc(c, sizeof(size_t));
	*cap = c;
	for (size_t k = 0; k < n; k++)
		idx_put(*slots, c, id_at(s, k), k);
}

/* The position of id, or SIZE_MAX. */
static size_t idx_find(const rm_state *s, const size_t *slots, size_t cap, const char *id,
                       id_at_fn id_at)
{
	if (!id || !cap)
		return SIZE_MAX;
	size_t mask = cap - 1;
	for (size_t i = run_hash(id) & mask; slots[i]; i = (i + 1) & mask)
		if (strcmp(id_at(s, slots[i] - 1), id) == 0)
			return slots[i] - 1;
	return SIZE_MAX;
}

static void run_index_put(rm_state *s, size_t idx)
{
	idx_put(s->run_index, s->run_index_cap, s->runs[idx].id, idx);
}

static void run_index_grow(rm_state *s, size_t need)
{
	idx_grow(s, &s->run_index, &s->run_index_cap, need, s->nruns, run_id_at);
}

static rm_run *find_run(const rm_state *s, const char *id)
{
	size_t k = idx_find(s, s->run_index, s->run_index_cap, id, run_id_at);
	return k == SIZE_MAX ? NULL : &s->runs[k];
}

const rm_run *rm_state_run(const rm_state *s, const char *run_id)
{
	return find_run(s, run_id);
}

static void dev_index_put(rm_state *s, size_t idx)
{
	idx_put(s->dev_index, s->dev_index_cap, s->devs[idx].id, idx);
}

static void dev_index_grow(rm_state *s, size_t need)
{
	idx_grow(s, &s->dev_index, &s->dev_index_cap, need, s->ndevs, dev_id_at);
}

static rm_dev *find_dev(const rm_state *s, const char *id)
{
	size_t k = idx_find(s, s->dev_index, s->dev_index_cap, id, dev_id_at);
	return k == SIZE_MAX ? NULL : &s->devs[k];
}

const rm_dev *rm_state_dev(const rm_state *s, const char *run_id)
{
	return find_dev(s, run_id);
}

const rm_run *rm_state_last_run(const rm_state *s, const char *computation)
{
	for (size_t i = s->nruns; i-- > 0;)
		if (strcmp(s->runs[i].computation, computation) == 0 && !s->runs[i].preview_of)
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
	if (r->preview_of && memcmp(r->by, key, 32) != 0)
		return dcr_err_set(err, DCR_EDENIED,
		                   "run %s is a preview of request %s: only the owner who asked "
		                   "for it reads it",
		                   run_id, r->preview_of);
	if (!r->preview_of && !rm_is_analyst(s->def, key, r->computation))
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

int rm_check_read_logs(const rm_state *s, const uint8_t key[32], const char *run_id,
                       dcr_err *err)
{
	const rm_run *r = rm_state_run(s, run_id);
	const rm_computation *c = r && s->def ? rm_def_computation(s->def, r->computation) : NULL;
	if (!r || !c || !rm_may_read_result(s, key, r->computation))
		return dcr_err_set(err, DCR_EDENIED, "you may not read the logs of run %s", run_id);
	if (c->kind != RM_COMP_PYTHON && c->kind != RM_COMP_R)
		return dcr_err_set(err, DCR_ENOTFOUND,
		                   "computation %s is a %s computation: only python and r runs "
		                   "have logs",
		                   c->name, rm_compkind_name(c->kind));
	if (c->logs == RM_LOGS_NEVER)
		return dcr_err_set(err, DCR_EDENIED,
		                   "the logs of computation %s are never shown (its definition "
		                   "says \"logs\": \"never\", the default, because prints can "
		                   "leak rows)",
		                   c->name);
	if (c->logs == RM_LOGS_ON_ERROR && r->state != RM_RUN_FAILED)
		return dcr_err_set(err, DCR_EDENIED,
		                   "the logs of computation %s are shown only for a failed run "
		                   "(\"logs\": \"on_error\"); run %s %s",
		                   c->name, run_id,
		                   r->state == RM_RUN_DONE ? "completed" : "has not finished");
	if (!r->logs_blob)
		return dcr_err_set(err, DCR_ENOTFOUND,
		                   "run %s has no logs (the script did not start)", run_id);
	return 0;
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
	s->def_version = 1; /* docs/rules.md "Definition versions" */
	memcpy(s->version_sha256, s->def_sha256, 32);
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

/* body.file of dataset.provisioned: a file name (rm_file_name_check). */
static int file_name_rule(const dcr_mpv *body, const char *dataset, dcr_err *err)
{
	const char *p;
	size_t n;
	dcr_err e = {0};
	int rc = dcr_mp_str(dcr_mp_get(body, "file"), &p, &n);
	if (rc == 0 && rm_file_name_check(p, n, &e) < 0)
		rc = dcr_err_set(err, DCR_EINVALID, "body.file: %s (dataset %s)", e.msg, dataset);
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
	if ((rc = file_name_rule(ev->body, dataset, err)))
		goto out;
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
	const rm_def *d = rm_state_run_def(s, r);
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
	if (find_run(s, id) || find_dev(s, id)) {
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

/* The computation a daemon run body names is a python or r computation of
 * the current definition: its run.completed and run.failed take the
 * script fields (files, logs). */
static bool body_names_script(const rm_state *s, const dcr_mpv *body)
{
	const char *p;
	size_t n;
	char comp[DCR_RM_NAME_BYTES_MAX + 1], run[33];
	const rm_computation *c;
	const rm_def *def = s->def;
	if (!s->def || dcr_mp_get_str(body, "computation", &p, &n, NULL) != 0 ||
	    n > DCR_RM_NAME_BYTES_MAX || memchr(p, 0, n))
		return false;
	memcpy(comp, p, n);
	comp[n] = 0;
	/* a preview run's computation is in its request's merged definition */
	if (dcr_mp_get_str(body, "run", &p, &n, NULL) == 0 && n < sizeof run && !memchr(p, 0, n)) {
		memcpy(run, p, n);
		run[n] = 0;
		def = rm_state_run_def(s, rm_state_run(s, run));
	}
	c = rm_def_computation(def, comp);
	return c && (c->kind == RM_COMP_PYTHON || c->kind == RM_COMP_R);
}

static int check_logs_blob(const dcr_mpv *body, dcr_err *err)
{
	if (dcr_mp_len(dcr_mp_get(body, "logs_blob")) == 0)
		return dcr_err_set(err, DCR_EFORMAT, "body.logs_blob: empty blob id");
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
	    /* python and r only: */
	    {"files", F_UINT, 0},
	    {"logs_blob", F_STR, DCR_RM_BLOB_ID_BYTES_MAX},
	    {"logs_sha256", F_BIN32, 0},
	};
	rm_run *r;
	rm_run_col *cols = NULL;
	size_t ncols = 0;
	bool script = false;
	const rm_computation *c = NULL;
	int rc = need_daemon(s, ev->actor, err);
	if (!rc) {
		script = body_names_script(s, ev->body);
		rc = body_check(ev->body, f, script ? 13 : 10, err);
	}
	if (!rc)
		rc = daemon_run(s, ev, &r, err);
	if (!rc)
		rc = check_inputs(r, dcr_mp_get(ev->body, "inputs"), err);
	if (!rc && dcr_mp_len(dcr_mp_get(ev->body, "result_blob")) == 0)
		rc = dcr_err_set(err, DCR_EFORMAT, "body.result_blob: empty blob id");
	if (!rc && script)
		rc = check_logs_blob(ev->body, err);
	if (!rc && !script)
		rc = check_schema(dcr_mp_get(ev->body, "schema"), &cols, &ncols, err);
	if (!rc && script) {
		/* a script's schema is its declared columns, exactly (none:
		 * empty), and nothing is suppressed */
		const dcr_mpv *sc = dcr_mp_get(ev->body, "schema");
		c = rm_def_computation(rm_state_run_def(s, r), r->computation);
		DCR_ASSERT(c);
		if (c->ncolumns && (rc = check_schema(sc, &cols, &ncols, err)) == 0) {
			bool same = ncols == c->ncolumns;
			for (size_t i = 0; same && i < ncols; i++)
				same = strcmp(cols[i].name, c->columns[i].name) == 0 &&
				       cols[i].type == c->columns[i].type;
			if (!same)
				rc = dcr_err_set(err, DCR_EINVALID,
				                 "body.schema: not the columns computation %s "
				                 "declares",
				                 c->name);
		} else if (!c->ncolumns && dcr_mp_len(sc) != 0) {
			rc = dcr_err_set(err, DCR_EINVALID,
			                 "body.schema: must be empty: computation %s declares no "
			                 "columns",
			                 c->name);
		}
		if (!rc && buint(ev->body, "suppressed") != 0)
			rc = dcr_err_set(err, DCR_EINVALID,
			                 "body.suppressed: must be 0 for a %s computation",
			                 rm_compkind_name(c->kind));
		if (!rc && !c->ncolumns && buint(ev->body, "rows") != 0)
			rc = dcr_err_set(err, DCR_EINVALID,
			                 "body.rows: must be 0: computation %s declares no columns",
			                 c->name);
	}
	if (rc) {
		for (size_t j = 0; j < ncols; j++)
			free(cols[j].name);
		free(cols);
		return rc;
	}
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
	if (script) {
		r->files = buint(ev->body, "files");
		r->logs_blob = bstr(ev->body, "logs_blob");
		bbin32(ev->body, "logs_sha256", r->logs_sha256);
	}
	return 0;
}

static int on_run_failed(rm_state *s, const es_event *ev, dcr_err *err)
{
	static const field f[] = {{"computation", F_STR, DCR_RM_NAME_BYTES_MAX},
	                          {"error", F_STR, DCR_RM_ERROR_BYTES_MAX},
	                          {"run", F_STR, 32},
	                          /* python and r, when the script started: */
	                          {"logs_blob", F_STR, DCR_RM_BLOB_ID_BYTES_MAX},
	                          {"logs_sha256", F_BIN32, 0}};
	rm_run *r;
	bool logs = false;
	int rc = need_daemon(s, ev->actor, err);
	if (!rc) {
		logs = body_names_script(s, ev->body) && ev->body &&
		       dcr_mp_type(ev->body) == DCR_MP_MAP &&
		       (dcr_mp_get(ev->body, "logs_blob") || dcr_mp_get(ev->body, "logs_sha256"));
		rc = body_check(ev->body, f, logs ? 5 : 3, err);
	}
	if (!rc && logs)
		rc = check_logs_blob(ev->body, err);
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
	if (logs) {
		r->logs_blob = bstr(ev->body, "logs_blob");
		bbin32(ev->body, "logs_sha256", r->logs_sha256);
	}
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

/* ---- development runs ------------------------------------------------------------ */

const char *rm_dev_lang_name(enum rm_dev_lang l)
{
	switch (l) {
	case RM_DEV_SQL:
		return "sql";
	case RM_DEV_PYTHON:
		return "python";
	case RM_DEV_R:
		return "r";
	}
	return "?";
}

static bool dev_lang_parse(const char *p, size_t n, enum rm_dev_lang *out)
{
	static const enum rm_dev_lang all[] = {RM_DEV_SQL, RM_DEV_PYTHON, RM_DEV_R};
	for (size_t i = 0; i < 3; i++) {
		const char *name = rm_dev_lang_name(all[i]);
		if (strlen(name) == n && memcmp(name, p, n) == 0) {
			*out = all[i];
			return true;
		}
	}
	return false;
}

int rm_check_dev(const rm_state *s, const uint8_t key[32], dcr_err *err)
{
	int rc = need_participant(s, key, err);
	if (rc)
		return rc;
	if (!s->def->development)
		return dcr_err_set(err, DCR_EDENIED,
		                   "development runs are off in this room "
		                   "(settings.development is false)");
	return need_published(s, "development runs are allowed", err);
}

/* The last completed run of a computation (NULL if none). */
static const rm_run *last_done(const rm_state *s, const char *computation)
{
	for (size_t i = s->nruns; i-- > 0;)
		if (s->runs[i].state == RM_RUN_DONE &&
		    strcmp(s->runs[i].computation, computation) == 0)
			return &s->runs[i];
	return NULL;
}

int rm_check_dev_input(const rm_state *s, const uint8_t key[32], const char *name, dcr_err *err)
{
	const rm_dataset *ds = rm_def_dataset(s->def, name);
	if (ds) {
		if (!rm_is_owner(s->def, key, name))
			return dcr_err_set(err, DCR_EDENIED,
			                   "actor %s is not an owner of dataset %s (a development "
			                   "run reads only the datasets its requester owns)",
			                   WHO(s, key), name);
		if (ds->epsilon_budget)
			return dcr_err_set(err, DCR_EDENIED,
			                   "dataset %s has an epsilon_budget: a development run may "
			                   "not read it",
			                   name);
		if (!rm_state_provision(s, name))
			return dcr_err_set(err, DCR_ESTATE, "dataset %s is not provisioned", name);
		return 0;
	}
	if (rm_def_computation(s->def, name)) {
		if (!rm_is_analyst(s->def, key, name))
			return dcr_err_set(err, DCR_EDENIED,
			                   "actor %s is not an analyst of computation %s (a "
			                   "development run reads only results its requester may "
			                   "read)",
			                   WHO(s, key), name);
		if (!last_done(s, name))
			return dcr_err_set(err, DCR_ESTATE,
			                   "computation %s has no completed run to read", name);
		return 0;
	}
	return dcr_err_set(err, DCR_ENOTFOUND, "no dataset or computation named \"%s\" in this room",
	                   name);
}

int rm_check_dev_read(const rm_state *s, const uint8_t key[32], const char *run_id, dcr_err *err)
{
	int rc = need_participant(s, key, err);
	if (rc)
		return rc;
	const rm_dev *d = find_dev(s, run_id);
	if (!d)
		return dcr_err_set(err, DCR_ENOTFOUND, "no development run %s in this room",
		                   run_id ? run_id : "");
	if (memcmp(d->by, key, 32) != 0)
		return dcr_err_set(err, DCR_EDENIED,
		                   "actor %s did not request development run %s (only its "
		                   "requester reads it)",
		                   WHO(s, key), run_id);
	return 0;
}

static int dev_input_cmp(const void *a, const void *b)
{
	return strcmp(((const rm_dev_input *)a)->name, ((const rm_dev_input *)b)->name);
}

static void dev_inputs_free(rm_dev_input *in, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(in[i].name);
		free(in[i].blob);
		free(in[i].file);
		free(in[i].run);
	}
	free(in);
}

static int on_dev_requested(rm_state *s, const es_event *ev, dcr_err *err)
{
	static const field f[] = {{"inputs", F_ARRAY, 0},
	                          {"language", F_STR, 16},
	                          {"run", F_STR, 32},
	                          {"script", F_STR, DCR_RM_SCRIPT_BYTES_MAX}};
	const dcr_mpv *inv;
	const char *p;
	size_t n, nin = 0;
	enum rm_dev_lang lang = RM_DEV_SQL;
	rm_dev_input *in = NULL;
	char *id = NULL;
	int rc = need_participant(s, ev->actor, err);
	if (!rc)
		rc = body_check(ev->body, f, 4, err);
	if (!rc)
		rc = rm_check_dev(s, ev->actor, err);
	if (rc)
		return rc;
	DCR_ASSERT(dcr_mp_get_str(ev->body, "language", &p, &n, NULL) == 0);
	if (!dev_lang_parse(p, n, &lang))
		return dcr_err_set(err, DCR_EINVALID,
		                   "body.language: \"%.*s\" is not \"sql\", \"python\" or \"r\"",
		                   (int)(n > 16 ? 16 : n), p);
	DCR_ASSERT(dcr_mp_get_str(ev->body, "script", &p, &n, NULL) == 0);
	if (n == 0)
		return dcr_err_set(err, DCR_EINVALID, "body.script: empty");
	id = bstr(ev->body, "run");
	if (!run_id_valid(id)) {
		rc = dcr_err_set(err, DCR_EFORMAT,
		                 "body.run: \"%s\" is not a run id (32 lowercase hex characters)",
		                 id);
		goto out;
	}
	if (find_run(s, id) || find_dev(s, id)) {
		rc = dcr_err_set(err, DCR_EEXIST, "run %s already exists in this room", id);
		goto out;
	}
	if (s->ndevs >= DCR_RM_DEVS_MAX) {
		rc = dcr_err_set(err, DCR_ELIMIT, "the room has %zu development runs, the limit",
		                 s->ndevs);
		goto out;
	}
	inv = dcr_mp_get(ev->body, "inputs");
	if (dcr_mp_len(inv) > DCR_RM_DEV_INPUTS_MAX) {
		rc = dcr_err_set(err, DCR_ELIMIT, "body.inputs: %u inputs, at most %u allowed",
		                 (unsigned)dcr_mp_len(inv), DCR_RM_DEV_INPUTS_MAX);
		goto out;
	}
	in = dcr_calloc(dcr_mp_len(inv) + 1, sizeof *in);
	for (uint32_t i = 0; i < dcr_mp_len(inv); i++) {
		char *name;
		if (dcr_mp_str(dcr_mp_at(inv, i), &p, &n) || n == 0 ||
		    n > DCR_RM_NAME_BYTES_MAX || memchr(p, 0, n)) {
			rc = dcr_err_set(err, DCR_EFORMAT,
			                 "body.inputs[%u]: expected a name (a string of 1 to %u "
			                 "bytes)",
			                 i, DCR_RM_NAME_BYTES_MAX);
			goto out;
		}
		name = dcr_strndup(p, n);
		in[nin++].name = name;
		if (i > 0 && strcmp(in[i - 1].name, name) >= 0) {
			rc = dcr_err_set(err, DCR_EFORMAT,
			                 "body.inputs[%u]: \"%s\" is not after \"%s\" (names are "
			                 "sorted bytewise, each once)",
			                 i, name, in[i - 1].name);
			goto out;
		}
		if ((rc = rm_check_dev_input(s, ev->actor, name, err)))
			goto out;
		if (rm_def_dataset(s->def, name)) {
			const rm_provision *pv = rm_state_provision(s, name);
			DCR_ASSERT(pv); /* rm_check_dev_input */
			in[i].is_dataset = true;
			memcpy(in[i].sha256, pv->sha256, 32);
			in[i].blob = pv->blob ? dcr_strdup(pv->blob) : NULL; /* NULL: append */
			in[i].file = pv->file ? dcr_strdup(pv->file) : NULL;
			if (pv->ndrops) /* an append dataset: the union as requested */
				in[i].drop_blobs = dcr_calloc(pv->ndrops, sizeof(char *));
			for (size_t k = 0; k < pv->ndrops; k++)
				in[i].drop_blobs[in[i].ndrop_blobs++] = dcr_strdup(pv->drops[k].blob);
		} else {
			const rm_run *r = last_done(s, name);
			DCR_ASSERT(r);
			memcpy(in[i].sha256, r->result_sha256, 32);
			in[i].blob = dcr_strdup(r->result_blob);
			in[i].run = dcr_strdup(r->id);
		}
	}
	/* commit */
	dev_index_grow(s, s->ndevs + 1);
	s->devs = dcr_realloc(s->devs, (s->ndevs + 1) * sizeof(rm_dev));
	rm_dev *d = &s->devs[s->ndevs];
	memset(d, 0, sizeof *d);
	d->id = id;
	id = NULL;
	memcpy(d->by, ev->actor, 32);
	d->lang = lang;
	d->script = bstr(ev->body, "script");
	dcr_sha256(d->script, strlen(d->script), d->script_sha256);
	d->inputs = in;
	d->ninputs = nin;
	in = NULL;
	nin = 0;
	qsort(d->inputs, d->ninputs, sizeof *d->inputs, dev_input_cmp); /* already sorted */
	d->state = RM_RUN_QUEUED;
	d->requested_seq = ev->seq;
	d->requested_ts_ms = ev->ts_ms;
	dev_index_put(s, s->ndevs);
	s->ndevs++;
out:
	dev_inputs_free(in, nin);
	free(id);
	return rc;
}

/* The queued development run named by a daemon body. */
static int daemon_dev(rm_state *s, const es_event *ev, rm_dev **out, dcr_err *err)
{
	const char *p;
	size_t n;
	char id[33];
	DCR_ASSERT(dcr_mp_get_str(ev->body, "run", &p, &n, NULL) == 0);
	snprintf(id, sizeof id, "%.*s", (int)(n > 32 ? 32 : n), p);
	rm_dev *d = n == 32 ? find_dev(s, id) : NULL;
	if (!d)
		return dcr_err_set(err, DCR_ENOTFOUND, "no development run %.*s in this room",
		                   (int)(n > 64 ? 64 : n), p);
	if (d->state != RM_RUN_QUEUED)
		return dcr_err_set(err, DCR_ESTATE, "development run %s has already %s", id,
		                   d->state == RM_RUN_DONE ? "completed" : "failed");
	*out = d;
	return 0;
}

/* logs_blob "" (no logs kept) goes with the SHA-256 of zero bytes. */
static int check_dev_logs(const es_event *ev, dcr_err *err)
{
	static const uint8_t empty_sha[32] = {
	    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
	    0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
	    0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
	uint8_t h[32];
	if (dcr_mp_len(dcr_mp_get(ev->body, "logs_blob")) != 0)
		return 0;
	bbin32(ev->body, "logs_sha256", h);
	if (memcmp(h, empty_sha, 32) != 0)
		return dcr_err_set(err, DCR_EINVALID,
		                   "body.logs_sha256: must be the SHA-256 of no bytes when "
		                   "logs_blob is empty (no logs kept)");
	return 0;
}

/* body.inputs: exactly the recorded inputs, each with its recorded hash. */
static int check_dev_inputs(const rm_dev *d, const dcr_mpv *v, dcr_err *err)
{
	uint32_t n = dcr_mp_len(v);
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		size_t kn;
		const dcr_mpv *val = dcr_mp_map_at(v, i, &k, &kn);
		const rm_dev_input *in = NULL;
		const uint8_t *h;
		size_t hn;
		for (size_t j = 0; j < d->ninputs && !in; j++)
			if (strlen(d->inputs[j].name) == kn && memcmp(d->inputs[j].name, k, kn) == 0)
				in = &d->inputs[j];
		if (!in)
			return dcr_err_set(err, DCR_EINVALID,
			                   "body.inputs: \"%.*s\" is not an input of development "
			                   "run %s",
			                   (int)(kn > 64 ? 64 : kn), k, d->id);
		if (dcr_mp_bin(val, &h, &hn) || hn != 32 || memcmp(h, in->sha256, 32) != 0)
			return dcr_err_set(err, DCR_EINVALID,
			                   "body.inputs.%s: expected the 32-byte sha256 recorded when "
			                   "the development run was requested",
			                   in->name);
	}
	for (size_t j = 0; j < d->ninputs && n != d->ninputs; j++)
		if (!dcr_mp_get(v, d->inputs[j].name))
			return dcr_err_set(err, DCR_EINVALID,
			                   "body.inputs: %s is missing (development run %s reads it)",
			                   d->inputs[j].name, d->id);
	return 0;
}

static int on_dev_completed(rm_state *s, const es_event *ev, dcr_err *err)
{
	static const field f[] = {
	    {"duration_ms", F_UINT, 0},
	    {"inputs", F_MAP, 0},
	    {"logs_blob", F_STR, DCR_RM_BLOB_ID_BYTES_MAX},
	    {"logs_sha256", F_BIN32, 0},
	    {"result_blob", F_STR, DCR_RM_BLOB_ID_BYTES_MAX},
	    {"result_bytes", F_UINT, 0},
	    {"result_sha256", F_BIN32, 0},
	    {"run", F_STR, 32},
	};
	rm_dev *d;
	int rc = need_daemon(s, ev->actor, err);
	if (!rc)
		rc = body_check(ev->body, f, sizeof f / sizeof f[0], err);
	if (!rc)
		rc = daemon_dev(s, ev, &d, err);
	if (!rc)
		rc = check_dev_inputs(d, dcr_mp_get(ev->body, "inputs"), err);
	if (!rc && dcr_mp_len(dcr_mp_get(ev->body, "result_blob")) == 0)
		rc = dcr_err_set(err, DCR_EFORMAT, "body.result_blob: empty blob id");
	if (!rc)
		rc = check_dev_logs(ev, err);
	if (rc)
		return rc;
	d->state = RM_RUN_DONE;
	d->finished_seq = ev->seq;
	d->finished_ts_ms = ev->ts_ms;
	d->result_blob = bstr(ev->body, "result_blob");
	bbin32(ev->body, "result_sha256", d->result_sha256);
	d->result_bytes = buint(ev->body, "result_bytes");
	d->duration_ms = buint(ev->body, "duration_ms");
	d->logs_blob = bstr(ev->body, "logs_blob");
	bbin32(ev->body, "logs_sha256", d->logs_sha256);
	return 0;
}

static int on_dev_failed(rm_state *s, const es_event *ev, dcr_err *err)
{
	static const field f[] = {{"error", F_STR, DCR_RM_ERROR_BYTES_MAX},
	                          {"logs_blob", F_STR, DCR_RM_BLOB_ID_BYTES_MAX},
	                          {"logs_sha256", F_BIN32, 0},
	                          {"run", F_STR, 32}};
	rm_dev *d;
	int rc = need_daemon(s, ev->actor, err);
	if (!rc)
		rc = body_check(ev->body, f, 4, err);
	if (!rc) {
		char *e = bstr(ev->body, "error");
		if (!cmp_error_class_valid(e))
			rc = dcr_err_set(err, DCR_EINVALID,
			                 "dev.failed: the error is not one of the data-free error "
			                 "classes (docs/privacy.md)");
		free(e);
	}
	if (!rc)
		rc = daemon_dev(s, ev, &d, err);
	if (!rc)
		rc = check_dev_logs(ev, err);
	if (rc)
		return rc;
	d->state = RM_RUN_FAILED;
	d->finished_seq = ev->seq;
	d->finished_ts_ms = ev->ts_ms;
	d->error = bstr(ev->body, "error");
	d->logs_blob = bstr(ev->body, "logs_blob");
	bbin32(ev->body, "logs_sha256", d->logs_sha256);
	return 0;
}

/* ---- requests (docs/rules.md "Requests") --------------------------------------- */

const char *rm_req_state_name(enum rm_req_state st)
{
	switch (st) {
	case RM_REQ_OPEN:
		return "open";
	case RM_REQ_MERGED:
		return "merged";
	case RM_REQ_REJECTED:
		return "rejected";
	case RM_REQ_WITHDRAWN:
		return "withdrawn";
	case RM_REQ_FAILED:
		return "failed";
	}
	return "?";
}

static rm_request *find_request(const rm_state *s, const char *id)
{
	for (size_t i = 0; id && i < s->nrequests; i++)
		if (strcmp(s->requests[i].id, id) == 0)
			return &s->requests[i];
	return NULL;
}

const rm_request *rm_state_request(const rm_state *s, const char *id)
{
	return find_request(s, id);
}

void rm_request_affected(const rm_def *def, char *const *names, size_t n, uint8_t (**keys)[32],
                         size_t *nkeys)
{
	bool *used = dcr_calloc(def->ndatasets + 1, sizeof(bool));
	for (size_t i = 0; i < n; i++) {
		const rm_computation *c = rm_def_computation(def, names[i]);
		if (c)
			rm_def_datasets_read(def, c, used);
	}
	*keys = dcr_calloc(def->nparticipants + 1, 32);
	*nkeys = 0;
	for (size_t p = 0; p < def->nparticipants; p++) {
		bool owns = false;
		for (size_t i = 0; i < def->ndatasets && !owns; i++)
			owns = used[i] && rm_is_owner(def, def->participants[p].key,
			                              def->datasets[i].name);
		if (owns)
			memcpy((*keys)[(*nkeys)++], def->participants[p].key, 32);
	}
	free(used);
}

int rm_check_request(const rm_state *s, const uint8_t key[32], dcr_err *err)
{
	int rc = need_participant(s, key, err);
	if (!rc)
		rc = need_published(s, "requests can be submitted", err);
	if (rc)
		return rc;
	if (!s->def->interactive)
		return dcr_err_set(err, DCR_EDENIED,
		                   "the room is not interactive (settings.interactive is false): "
		                   "its computations are fixed and requests are refused");
	return 0;
}

/* The request named by a body, which must be open. */
static int open_request(const rm_state *s, const char *id, const char *what, rm_request **out,
                        dcr_err *err)
{
	rm_request *q = find_request(s, id);
	if (!q)
		return dcr_err_set(err, DCR_ENOTFOUND, "no request %s in this room", id ? id : "");
	if (q->state != RM_REQ_OPEN)
		return dcr_err_set(err, DCR_ESTATE, "request %s is %s; only an open request can be %s",
		                   id, rm_req_state_name(q->state), what);
	*out = q;
	return 0;
}

static rm_req_owner *req_owner(rm_request *q, const uint8_t key[32])
{
	for (size_t i = 0; i < q->nowners; i++)
		if (memcmp(q->owners[i].key, key, 32) == 0)
			return &q->owners[i];
	return NULL;
}

int rm_check_vote(const rm_state *s, const uint8_t key[32], const char *id,
                  const uint8_t sha256[32], dcr_err *err)
{
	rm_request *q;
	int rc = need_participant(s, key, err);
	if (!rc)
		rc = need_published(s, "requests can be approved or rejected", err);
	if (!rc)
		rc = open_request(s, id, "approved or rejected", &q, err);
	if (rc)
		return rc;
	rm_req_owner *o = req_owner(q, key);
	if (!o)
		return dcr_err_set(err, DCR_EDENIED,
		                   "actor %s is not an affected owner of request %s (only owners "
		                   "of the datasets it reads approve it)",
		                   WHO(s, key), id);
	if (o->vote != RM_VOTE_NONE)
		return dcr_err_set(err, DCR_EEXIST, "actor %s has already %s request %s", WHO(s, key),
		                   o->vote == RM_VOTE_APPROVED ? "approved" : "rejected", id);
	if (memcmp(sha256, q->sha256, 32) != 0) {
		char a[65], b[65];
		dcr_hex_encode(sha256, 32, a);
		dcr_hex_encode(q->sha256, 32, b);
		return dcr_err_set(err, DCR_EINVALID,
		                   "request_sha256 %.12s is not the SHA-256 of request %s (%.12s): "
		                   "approve or reject what you read",
		                   a, id, b);
	}
	return 0;
}

static int on_req_submitted(rm_state *s, const es_event *ev, dcr_err *err)
{
	static const field f[] = {{"request", F_STR, 32}, {"text", F_STR, DCR_RM_DEF_BYTES_MAX}};
	rm_request_doc doc = {0};
	uint8_t(*keys)[32] = NULL;
	size_t nkeys = 0;
	char *id = NULL, *text = NULL;
	int rc = need_participant(s, ev->actor, err);
	if (!rc)
		rc = body_check(ev->body, f, 2, err);
	if (!rc)
		rc = rm_check_request(s, ev->actor, err);
	if (rc)
		return rc;
	id = bstr(ev->body, "request");
	text = bstr(ev->body, "text");
	if (!run_id_valid(id)) {
		rc = dcr_err_set(err, DCR_EFORMAT,
		                 "body.request: \"%s\" is not a request id (32 lowercase hex "
		                 "characters)",
		                 id);
		goto out;
	}
	if (find_request(s, id)) {
		rc = dcr_err_set(err, DCR_EEXIST, "request %s already exists in this room", id);
		goto out;
	}
	if (s->nrequests >= DCR_RM_REQUESTS_MAX) {
		rc = dcr_err_set(err, DCR_ELIMIT, "the room has %zu requests, the limit",
		                 s->nrequests);
		goto out;
	}
	rc = rm_request_merge(s->def_json, text, strlen(text), &doc, err);
	if (rc) {
		dcr_err_prefix(err, "request");
		goto out;
	}
	rm_request_affected(doc.merged, doc.names, doc.nnames, &keys, &nkeys);
	if (!nkeys) {
		rc = dcr_err_set(err, DCR_EINVALID,
		                 "request: its computations read no dataset, so no owner could "
		                 "approve it");
		goto out;
	}
	s->requests = dcr_realloc(s->requests, (s->nrequests + 1) * sizeof(rm_request));
	rm_request *q = &s->requests[s->nrequests++];
	memset(q, 0, sizeof *q);
	q->id = id;
	q->text = text;
	id = text = NULL;
	memcpy(q->by, ev->actor, 32);
	q->seq = ev->seq;
	q->ts_ms = ev->ts_ms;
	dcr_sha256(q->text, strlen(q->text), q->sha256);
	q->title = doc.title;
	doc.title = NULL;
	q->computations = doc.names;
	q->ncomputations = doc.nnames;
	doc.names = NULL;
	doc.nnames = 0;
	q->owners = dcr_calloc(nkeys, sizeof(rm_req_owner));
	q->nowners = nkeys;
	for (size_t i = 0; i < nkeys; i++)
		memcpy(q->owners[i].key, keys[i], 32);
	q->state = RM_REQ_OPEN;
out:
	rm_request_doc_release(&doc);
	free(keys);
	free(id);
	free(text);
	return rc;
}

int rm_check_req_withdraw(const rm_state *s, const uint8_t key[32], const char *id, dcr_err *err)
{
	rm_request *q;
	int rc = need_participant(s, key, err);
	if (!rc)
		rc = need_published(s, "requests can be withdrawn", err);
	if (!rc)
		rc = open_request(s, id, "withdrawn", &q, err);
	if (!rc && memcmp(q->by, key, 32) != 0)
		rc = dcr_err_set(err, DCR_EDENIED,
		                 "actor %s is not the author of request %s; only its author "
		                 "withdraws it",
		                 WHO(s, key), id);
	return rc;
}

static int on_req_withdrawn(rm_state *s, const es_event *ev, dcr_err *err)
{
	static const field f[] = {{"request", F_STR, 32}};
	int rc = need_participant(s, ev->actor, err);
	if (!rc)
		rc = body_check(ev->body, f, 1, err);
	if (rc)
		return rc;
	char *id = bstr(ev->body, "request");
	rc = rm_check_req_withdraw(s, ev->actor, id, err);
	if (!rc) {
		rm_request *q = find_request(s, id);
		q->state = RM_REQ_WITHDRAWN;
		q->closed_seq = ev->seq;
	}
	free(id);
	return rc;
}

/* The merge (docs/rules.md "The merge"): the request's computations join
 * the current definition, validated again as a whole; a definition that no
 * longer accepts them (a name taken by a request merged since) leaves the
 * request failed and the definition as it was. */
static void req_merge(rm_state *s, rm_request *q, uint64_t seq)
{
	rm_request_doc doc;
	dcr_err e;
	q->closed_seq = seq;
	if (rm_request_merge(s->def_json, q->text, strlen(q->text), &doc, &e) != 0) {
		q->state = RM_REQ_FAILED;
		q->failure = dcr_strdup(e.msg);
		return;
	}
	uint8_t chain[64];
	memcpy(chain, s->version_sha256, 32);
	memcpy(chain + 32, q->sha256, 32);
	dcr_sha256(chain, sizeof chain, s->version_sha256);
	s->def_version++;
	rm_def_free(s->def);
	free(s->def_json);
	s->def = doc.merged;
	s->def_json = doc.merged_json;
	doc.merged = NULL;
	doc.merged_json = NULL;
	rm_request_doc_release(&doc);
	q->state = RM_REQ_MERGED;
	q->version = s->def_version;
}

static int on_vote(rm_state *s, const es_event *ev, bool approve, dcr_err *err)
{
	static const field f[] = {{"reason", F_STR, DCR_RM_REASON_BYTES_MAX},
	                          {"request", F_STR, 32},
	                          {"request_sha256", F_BIN32, 0}};
	uint8_t h[32];
	int rc = need_participant(s, ev->actor, err);
	if (!rc)
		rc = body_check(ev->body, f, 3, err);
	if (rc)
		return rc;
	char *id = bstr(ev->body, "request");
	bbin32(ev->body, "request_sha256", h);
	rc = rm_check_vote(s, ev->actor, id, h, err);
	if (!rc) {
		rm_request *q = find_request(s, id);
		rm_req_owner *o = req_owner(q, ev->actor);
		o->vote = approve ? RM_VOTE_APPROVED : RM_VOTE_REJECTED;
		o->reason = bstr(ev->body, "reason");
		o->seq = ev->seq;
		if (!approve) {
			q->state = RM_REQ_REJECTED;
			q->closed_seq = ev->seq;
		} else {
			bool all = true;
			for (size_t i = 0; i < q->nowners; i++)
				all = all && q->owners[i].vote == RM_VOTE_APPROVED;
			if (all)
				req_merge(s, q, ev->seq);
		}
	}
	free(id);
	return rc;
}

int rm_check_policy(const rm_state *s, const rm_request *q, const uint8_t owner[32],
                    dcr_err *err)
{
	rm_request_doc doc;
	int rc = rm_request_merge(s->def_json, q->text, strlen(q->text), &doc, err);
	if (rc) {
		dcr_err_prefix(err, "request %s no longer merges", q->id);
		return rc;
	}
	const rm_def *d = doc.merged;
	bool *used = dcr_calloc(d->ndatasets + 1, sizeof(bool));
	for (size_t i = 0; i < d->ndatasets && !rc; i++) {
		const rm_dataset *ds = &d->datasets[i];
		const rm_policy *p = ds->auto_approve;
		if (!rm_is_owner(d, owner, ds->name))
			continue;
		for (size_t c = 0; c < doc.nnames && !rc; c++) {
			const rm_computation *comp = rm_def_computation(d, doc.names[c]);
			memset(used, 0, d->ndatasets * sizeof(bool));
			rm_def_datasets_read(d, comp, used);
			if (!used[i])
				continue;
			if (!p) {
				rc = dcr_err_set(err, DCR_EDENIED,
				                 "dataset %s, which computation %s reads, has no "
				                 "auto_approve policy",
				                 ds->name, comp->name);
			} else if (!(p->kinds & (1u << comp->kind))) {
				rc = dcr_err_set(err, DCR_EDENIED,
				                 "computation %s is of kind %s, which the auto_approve "
				                 "policy of dataset %s does not list",
				                 comp->name, rm_compkind_name(comp->kind), ds->name);
			} else if (p->min_rows && comp->min_rows_aggregated < p->min_rows) {
				rc = dcr_err_set(err, DCR_EDENIED,
				                 "computation %s has privacy.min_rows_aggregated %lld; "
				                 "the auto_approve policy of dataset %s needs at least "
				                 "%lld",
				                 comp->name, comp->min_rows_aggregated, ds->name,
				                 p->min_rows);
			}
			for (size_t k = 0; k < d->nparticipants && !rc && p && p->nanalysts; k++) {
				const rm_participant *pa = &d->participants[k];
				bool listed = false;
				if (!rm_is_analyst(d, pa->key, comp->name))
					continue;
				for (size_t j = 0; j < p->nanalysts && !listed; j++)
					listed = strcmp(p->analysts[j], pa->email) == 0;
				if (!listed)
					rc = dcr_err_set(err, DCR_EDENIED,
					                 "computation %s has analyst %s, whom the "
					                 "auto_approve policy of dataset %s does not list",
					                 comp->name, pa->email, ds->name);
			}
		}
	}
	free(used);
	rm_request_doc_release(&doc);
	return rc;
}

/* request.auto_approved: the daemon records an owner's approval under the
 * owner's policies, which the rule checks again. */
static int on_req_auto(rm_state *s, const es_event *ev, dcr_err *err)
{
	static const field f[] = {
	    {"owner", F_BIN32, 0}, {"request", F_STR, 32}, {"request_sha256", F_BIN32, 0}};
	uint8_t h[32], owner[32];
	if (memcmp(s->daemon_key, ev->actor, 32) != 0)
		return dcr_err_set(err, DCR_EDENIED,
		                   "actor %s is not the daemon; only the daemon records "
		                   "automatic approvals",
		                   WHO(s, ev->actor));
	int rc = body_check(ev->body, f, 3, err);
	if (rc)
		return rc;
	char *id = bstr(ev->body, "request");
	bbin32(ev->body, "request_sha256", h);
	bbin32(ev->body, "owner", owner);
	rc = rm_check_vote(s, owner, id, h, err);
	if (!rc)
		rc = rm_check_policy(s, find_request(s, id), owner, err);
	if (!rc) {
		rm_request *q = find_request(s, id);
		rm_req_owner *o = req_owner(q, owner);
		o->vote = RM_VOTE_APPROVED;
		o->automatic = true;
		o->reason = dcr_strdup("auto_approve policy");
		o->seq = ev->seq;
		bool all = true;
		for (size_t i = 0; i < q->nowners; i++)
			all = all && q->owners[i].vote == RM_VOTE_APPROVED;
		if (all)
			req_merge(s, q, ev->seq);
	}
	free(id);
	return rc;
}

const rm_def *rm_state_run_def(const rm_state *s, const rm_run *r)
{
	const rm_request *q = r && r->preview_of ? find_request(s, r->preview_of) : NULL;
	return q && q->preview_def ? q->preview_def : s->def;
}

bool rm_may_read_run(const rm_state *s, const uint8_t key[32], const rm_run *r)
{
	if (r->preview_of)
		return s->status != RM_NONE && memcmp(r->by, key, 32) == 0;
	return rm_may_read_result(s, key, r->computation);
}

/* The sole-owner part of a preview's checks. */
static int check_preview_owner(const rm_state *s, const uint8_t key[32], const char *id,
                               rm_request **out, dcr_err *err)
{
	rm_request *q;
	int rc = need_participant(s, key, err);
	if (!rc)
		rc = need_published(s, "requests can be previewed", err);
	if (!rc)
		rc = open_request(s, id, "previewed", &q, err);
	if (rc)
		return rc;
	*out = q;
	if (q->nowners != 1)
		return dcr_err_set(err, DCR_EDENIED,
		                   "request %s reads the data of %zu owners: a preview would show "
		                   "one owner the others' data before they agreed (only a request "
		                   "with a sole affected owner can be previewed)",
		                   id, q->nowners);
	if (memcmp(q->owners[0].key, key, 32) != 0)
		return dcr_err_set(err, DCR_EDENIED,
		                   "actor %s is not the affected owner of request %s; only that "
		                   "owner previews it",
		                   WHO(s, key), id);
	return 0;
}

bool rm_may_preview(const rm_state *s, const uint8_t key[32], const char *id)
{
	rm_request *q;
	return check_preview_owner(s, key, id, &q, NULL) == 0;
}

/* rm_check_preview; on success *merged is the request merged into the
 * current definition (the caller frees it). */
static int check_preview(const rm_state *s, const uint8_t key[32], const char *id,
                         const char *comp, rm_request_doc *doc, dcr_err *err)
{
	rm_request *q;
	int rc = check_preview_owner(s, key, id, &q, err);
	if (rc)
		return rc;
	bool mine = false;
	for (size_t i = 0; i < q->ncomputations && !mine; i++)
		mine = comp && strcmp(q->computations[i], comp) == 0;
	if (!mine)
		return dcr_err_set(err, DCR_ENOTFOUND, "request %s has no computation named \"%s\"",
		                   id, comp ? comp : "");
	rc = rm_request_merge(s->def_json, q->text, strlen(q->text), doc, err);
	if (rc) {
		dcr_err_prefix(err, "request %s no longer merges", id);
		return rc;
	}
	const rm_def *d = doc->merged;
	const rm_computation *c = rm_def_computation(d, comp);
	if (c->dp_epsilon)
		rc = dcr_err_set(err, DCR_EDENIED,
		                 "computation %s is differentially private: a preview would spend "
		                 "the datasets' epsilon budget before the request is approved",
		                 comp);
	if (!rc && d->require_provisioned) {
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
			                 "computation %s needs datasets not provisioned: %s", comp,
			                 dcr_buf_cstr(&missing));
		dcr_buf_release(&missing);
		free(used);
	}
	if (rc)
		rm_request_doc_release(doc);
	return rc;
}

int rm_check_preview(const rm_state *s, const uint8_t key[32], const char *id,
                     const char *computation, dcr_err *err)
{
	rm_request_doc doc;
	int rc = check_preview(s, key, id, computation, &doc, err);
	if (!rc)
		rm_request_doc_release(&doc);
	return rc;
}

static int on_req_preview(rm_state *s, const es_event *ev, dcr_err *err)
{
	static const field f[] = {{"computation", F_STR, DCR_RM_NAME_BYTES_MAX},
	                          {"request", F_STR, 32},
	                          {"run", F_STR, 32}};
	rm_request_doc doc;
	int rc = need_participant(s, ev->actor, err);
	if (!rc)
		rc = body_check(ev->body, f, 3, err);
	if (rc)
		return rc;
	char *id = bstr(ev->body, "request");
	char *comp = bstr(ev->body, "computation");
	char *run = bstr(ev->body, "run");
	rc = check_preview(s, ev->actor, id, comp, &doc, err);
	if (rc)
		goto out;
	if (!run_id_valid(run))
		rc = dcr_err_set(err, DCR_EFORMAT,
		                 "body.run: \"%s\" is not a run id (32 lowercase hex characters)",
		                 run);
	else if (find_run(s, run))
		rc = dcr_err_set(err, DCR_EEXIST, "run %s already exists in this room", run);
	else if (s->nruns >= DCR_RM_RUNS_MAX)
		rc = dcr_err_set(err, DCR_ELIMIT, "the room has %zu runs, the limit", s->nruns);
	if (rc) {
		rm_request_doc_release(&doc);
		goto out;
	}
	rm_request *q = find_request(s, id);
	if (!q->preview_def) {
		q->preview_def = doc.merged;
		doc.merged = NULL;
	}
	rm_request_doc_release(&doc);
	run_index_grow(s, s->nruns + 1);
	s->runs = dcr_realloc(s->runs, (s->nruns + 1) * sizeof(rm_run));
	rm_run *r = &s->runs[s->nruns];
	memset(r, 0, sizeof *r);
	r->id = run;
	r->computation = comp;
	r->preview_of = id;
	run = comp = id = NULL;
	memcpy(r->by, ev->actor, 32);
	record_inputs(s, r);
	r->state = RM_RUN_QUEUED;
	r->requested_seq = ev->seq;
	r->requested_ts_ms = ev->ts_ms;
	run_index_put(s, s->nruns);
	s->nruns++;
out:
	free(id);
	free(comp);
	free(run);
	return rc;
}

static int on_req_approved(rm_state *s, const es_event *ev, dcr_err *err)
{
	return on_vote(s, ev, true, err);
}

static int on_req_rejected(rm_state *s, const es_event *ev, dcr_err *err)
{
	return on_vote(s, ev, false, err);
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
    {RM_EV_DEV_REQUESTED, on_dev_requested},
    {RM_EV_DEV_COMPLETED, on_dev_completed},
    {RM_EV_DEV_FAILED, on_dev_failed},
    {RM_EV_REQ_SUBMITTED, on_req_submitted},
    {RM_EV_REQ_WITHDRAWN, on_req_withdrawn},
    {RM_EV_REQ_APPROVED, on_req_approved},
    {RM_EV_REQ_REJECTED, on_req_rejected},
    {RM_EV_REQ_AUTO, on_req_auto},
    {RM_EV_REQ_PREVIEW, on_req_preview},
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
