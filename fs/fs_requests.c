/* fs_requests.c: the mount's requests/ (docs/mount.md "Requests",
 * docs/rules.md "Requests").
 *
 *   requests/NAME            a proposal being written (cp x.json requests/):
 *                            at close it is validated (merged into the
 *                            definition and admitted, as dcr request submit
 *                            does) and signed as request.submitted; a
 *                            refusal fails the close and `status` says why
 *   requests/ID/request.json the request as signed
 *   requests/ID/status       state, author, hash, computations, affected
 *                            owners with their votes, merged or not
 *   requests/ID/approve      an affected owner writes a reason (or
 *   requests/ID/reject       nothing): request.approved / .rejected, bound
 *                            to the request hash, at close
 *   requests/ID/withdraw     the author writes anything: request.withdrawn
 *
 * Every rule is rm_apply's: the mount only refuses early with the same
 * checks (rm_check_request, rm_check_vote) and shows dcrd's refusal. */
#include <errno.h>
#include <sys/stat.h>

#include "fs_int.h"

/* A proposal file while it is open: exists for its writer only. */
struct fs_rqfile {
	uint64_t ino;
	uint64_t dir;
	char *name;
	int opens;
	struct fs_rqfile *next;
};

static struct fs_rqfile *rqfile_find(fs *f, uint64_t dir, const char *name)
{
	for (struct fs_rqfile *r = f->rqfiles; r; r = r->next)
		if (r->dir == dir && strcmp(r->name, name) == 0)
			return r;
	return NULL;
}

static const rm_request *req_of(const fs *f, const struct desc *d)
{
	return d->req ? rm_state_request(&f->st, d->req) : NULL;
}

int fs__req_resolve_child(fs *f, uint64_t dir, const struct desc *pd, const char *name,
                          struct desc *d)
{
	if (pd->kind == K_REQUESTS) {
		const rm_request *q = rm_state_request(&f->st, name);
		if (q && rm_may_read_room(&f->st, f->opt.me)) {
			d->kind = K_REQ;
			d->req = q->id;
			return 0;
		}
		if (rqfile_find(f, dir, name)) {
			d->kind = K_REQ_NEW;
			return 0;
		}
		return -ENOENT;
	}
	static const struct {
		const char *name;
		enum kind kind;
	} files[] = {
	    {"request.json", K_REQ_TEXT}, {"status", K_REQ_STATUS},     {"approve", K_REQ_APPROVE},
	    {"reject", K_REQ_REJECT},     {"withdraw", K_REQ_WITHDRAW},
	};
	d->req = pd->req;
	if (pd->kind == K_REQ_PREVIEW) {
		const rm_request *q = req_of(f, pd);
		size_t n = strlen(name);
		if (strcmp(name, "run") == 0) {
			d->kind = K_REQ_PREVIEW_RUN;
			return 0;
		}
		for (size_t i = 0; q && i < q->ncomputations; i++)
			if (n == strlen(q->computations[i]) + 4 &&
			    strncmp(name, q->computations[i], n - 4) == 0 &&
			    strcmp(name + n - 4, ".csv") == 0 &&
			    fs__req_preview_of(f, q->id, q->computations[i])) {
				d->kind = K_REQ_PREVIEW_RESULT;
				d->comp = q->computations[i];
				return 0;
			}
		return -ENOENT;
	}
	if (strcmp(name, "preview") == 0) {
		d->kind = K_REQ_PREVIEW;
		return 0;
	}
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
		if (strcmp(name, files[i].name) == 0) {
			d->kind = files[i].kind;
			return 0;
		}
	return -ENOENT;
}

void fs__req_names(fs *f, const struct desc *d, void (*add)(void *ctx, const char *name),
                   void *ctx)
{
	if (d->kind == K_REQUESTS) {
		if (!rm_may_read_room(&f->st, f->opt.me))
			return;
		for (size_t i = 0; i < f->st.nrequests; i++)
			add(ctx, f->st.requests[i].id);
		return;
	}
	if (d->kind == K_REQ_PREVIEW) {
		const rm_request *q = req_of(f, d);
		add(ctx, "run");
		for (size_t i = 0; q && i < q->ncomputations; i++)
			if (fs__req_preview_of(f, q->id, q->computations[i])) {
				char name[DCR_RM_NAME_BYTES_MAX + 8];
				snprintf(name, sizeof name, "%s.csv", q->computations[i]);
				add(ctx, name);
			}
		return;
	}
	static const char *const names[] = {"request.json", "status", "approve", "reject",
	                                    "withdraw",     "preview"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		add(ctx, names[i]);
}

bool fs__req_may_read(fs *f, const struct desc *d)
{
	if (d->kind == K_REQ_PREVIEW_RESULT)
		return fs__req_preview_of(f, d->req, d->comp) != NULL;
	return (d->kind == K_REQ_TEXT || d->kind == K_REQ_STATUS) &&
	       rm_may_read_room(&f->st, f->opt.me);
}

bool fs__req_may_write(fs *f, const struct desc *d)
{
	const rm_request *q = req_of(f, d);
	switch (d->kind) {
	case K_REQ_NEW:
		return rm_check_request(&f->st, f->opt.me, NULL) == 0;
	case K_REQ_APPROVE:
	case K_REQ_REJECT:
		return q && rm_check_vote(&f->st, f->opt.me, q->id, q->sha256, NULL) == 0;
	case K_REQ_WITHDRAW:
		return q && rm_check_req_withdraw(&f->st, f->opt.me, q->id, NULL) == 0;
	case K_REQ_PREVIEW_RUN:
		return q && rm_may_preview(&f->st, f->opt.me, q->id);
	default:
		return false;
	}
}

static void gen_status(fs *f, const rm_request *q, dcr_buf *b)
{
	char hex[65];
	dcr_hex_encode(q->sha256, 32, hex);
	dcr_buf_printf(b, "request:      %s\n", q->id);
	dcr_buf_printf(b, "state:        %s\n", rm_req_state_name(q->state));
	dcr_buf_printf(b, "title:        %s\n", q->title);
	dcr_buf_printf(b, "author:       %s\n", ACTOR_NAME(f, q->by));
	dcr_buf_printf(b, "sha256:       %s\n", hex);
	dcr_buf_append_str(b, "computations:");
	for (size_t i = 0; i < q->ncomputations; i++)
		dcr_buf_printf(b, "%s %s", i ? "," : "", q->computations[i]);
	dcr_buf_append_str(b, "\naffected owners (each must approve):\n");
	for (size_t i = 0; i < q->nowners; i++) {
		const rm_req_owner *o = &q->owners[i];
		dcr_buf_printf(b, "  %s: %s", ACTOR_NAME(f, o->key),
		               o->vote == RM_VOTE_APPROVED   ? "approved"
		               : o->vote == RM_VOTE_REJECTED ? "rejected"
		                                             : "pending");
		if (o->automatic)
			dcr_buf_append_str(b, " automatically, by the owner's auto_approve policy");
		else if (o->reason && *o->reason)
			dcr_buf_printf(b, " (%s)", o->reason);
		dcr_buf_append_str(b, "\n");
	}
	if (q->state == RM_REQ_MERGED)
		dcr_buf_printf(b, "merged:       definition version %llu\n",
		               (unsigned long long)q->version);
	else if (q->state == RM_REQ_FAILED)
		dcr_buf_printf(b, "merged:       no; the merge failed: %s\n", q->failure);
	else
		dcr_buf_append_str(b, "merged:       no\n");
}

int fs__req_gen(fs *f, const struct desc *d, dcr_buf *b)
{
	const rm_request *q = req_of(f, d);
	if (!q)
		return -ENOENT;
	if (d->kind == K_REQ_TEXT)
		dcr_buf_append_str(b, q->text);
	else if (d->kind == K_REQ_STATUS)
		gen_status(f, q, b);
	return 0;
}

int fs__req_create(fs *f, uint64_t parent, const char *name, uint64_t *ino)
{
	dcr_err err = {0};
	if (fs_is_temp_name(name))
		return -EACCES;
	if (rm_check_request(&f->st, f->opt.me, &err) != 0) {
		/* f->mu is held: the last error is set here, as
		 * fs__set_last_error words it */
		char ts[32];
		fs__iso_time(dcr_now_ms(), ts);
		free(f->last_error);
		f->last_error = dcr_asprintf("%s request %s: %s", ts, name, err.msg);
		return -fs_errno(err.code);
	}
	struct fs_rqfile *r = rqfile_find(f, parent, name);
	if (!r) {
		r = dcr_calloc(1, sizeof *r);
		r->dir = parent;
		r->name = dcr_strdup(name);
		r->ino = fs__node_get(f, parent, name);
		r->next = f->rqfiles;
		f->rqfiles = r;
	}
	r->opens++;
	*ino = r->ino;
	return 0;
}

int fs__req_reopen(fs *f, uint64_t ino, struct desc *d)
{
	node *n = fs__node_at(f, ino);
	struct desc pd;
	uint64_t rino = 0;
	if (!n || !n->name || fs__resolve(f, n->parent, &pd) < 0 || pd.kind != K_REQUESTS)
		return -ENOENT;
	int rc = fs__req_create(f, n->parent, n->name, &rino);
	if (rc < 0)
		return rc;
	memset(d, 0, sizeof *d);
	d->kind = K_REQ_NEW;
	return 0;
}

void fs__req_release(fs *f, fs_file *h)
{
	pthread_mutex_lock(&f->mu);
	for (struct fs_rqfile **p = &f->rqfiles; *p; p = &(*p)->next) {
		struct fs_rqfile *r = *p;
		if (r->ino != h->ino)
			continue;
		if (--r->opens == 0) {
			*p = r->next;
			free(r->name);
			free(r);
		}
		break;
	}
	pthread_mutex_unlock(&f->mu);
}

void fs__req_free_all(fs *f)
{
	while (f->rqfiles) {
		struct fs_rqfile *r = f->rqfiles;
		f->rqfiles = r->next;
		free(r->name);
		free(r);
	}
}

/* A proposal: validated (merged and admitted) here first, so the reason is
 * local and precise; dcrd checks again with the same rules. */
static int submit_request(fs *f, const char *text, size_t n, dcr_err *err)
{
	rm_request_doc doc;
	uint8_t raw[16];
	char id[33];
	dcr_buf body;
	int rc;

	pthread_mutex_lock(&f->mu);
	rc = rm_check_request(&f->st, f->opt.me, err);
	if (!rc)
		rc = rm_request_merge(f->st.def_json, text, n, &doc, err);
	pthread_mutex_unlock(&f->mu);
	if (rc) {
		dcr_err_prefix(err, "request");
		return rc;
	}
	rc = rm_def_admit(doc.merged, err);
	rm_request_doc_release(&doc);
	if (rc) {
		dcr_err_prefix(err, "request: the definition with this request");
		return rc;
	}
	dcr_random(raw, sizeof raw);
	dcr_hex_encode(raw, sizeof raw, id);
	dcr_buf_init(&body);
	char *t = dcr_strndup(text, n);
	rm_body_req_submitted(&body, id, t);
	free(t);
	rc = f->be.submit(f->be.ctx, RM_EV_REQ_SUBMITTED, body.data, body.len, err);
	dcr_buf_release(&body);
	return rc;
}

/* approve / reject (the text written is the reason, one trailing newline
 * dropped) and withdraw. */
static int submit_action(fs *f, enum kind k, const char *id, const char *text, size_t n,
                         dcr_err *err)
{
	dcr_buf body;
	uint8_t sha[32];
	int rc = 0;

	pthread_mutex_lock(&f->mu);
	const rm_request *q = rm_state_request(&f->st, id);
	if (!q)
		rc = dcr_err_set(err, DCR_ENOTFOUND, "no request %s", id);
	else
		memcpy(sha, q->sha256, 32);
	pthread_mutex_unlock(&f->mu);
	if (rc)
		return rc;
	while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
		n--;
	if (n > DCR_RM_REASON_BYTES_MAX)
		return dcr_err_set(err, DCR_ELIMIT, "a reason has at most %u bytes",
		                   DCR_RM_REASON_BYTES_MAX);
	char *reason = dcr_strndup(text, n);
	if (memchr(text, 0, n)) {
		free(reason);
		return dcr_err_set(err, DCR_EINVALID, "the reason contains a NUL byte");
	}
	dcr_buf_init(&body);
	if (k == K_REQ_WITHDRAW)
		rm_body_req_withdrawn(&body, id);
	else
		rm_body_req_vote(&body, id, sha, reason);
	rc = f->be.submit(f->be.ctx,
	                  k == K_REQ_WITHDRAW  ? RM_EV_REQ_WITHDRAWN
	                  : k == K_REQ_APPROVE ? RM_EV_REQ_APPROVED
	                                       : RM_EV_REQ_REJECTED,
	                  body.data, body.len, err);
	dcr_buf_release(&body);
	free(reason);
	return rc;
}

int fs__req_flush(fs *f, fs_file *h)
{
	dcr_err err = {0};
	int rc;
	if (!h->dirty)
		return 0;
	h->dirty = false;
	if (h->kind == K_REQ_NEW)
		rc = submit_request(f, (const char *)h->buf.data, h->buf.len, &err);
	else
		rc = submit_action(f, h->kind, h->name, (const char *)h->buf.data, h->buf.len,
		                   &err);
	if (rc < 0) {
		fs__set_last_error(f, h->kind == K_REQ_NEW ? "request" : h->name, &err);
		return -fs_errno(rc);
	}
	fs__fetch_apply(f, &err); /* our own event shows at once */
	return 0;
}

/* ---- preview/ (docs/rules.md "Previews") ------------------------------------ */

const rm_run *fs__req_preview_of(fs *f, const char *req, const char *comp)
{
	for (size_t i = f->st.nruns; req && comp && i-- > 0;) {
		const rm_run *r = &f->st.runs[i];
		if (r->preview_of && r->state == RM_RUN_DONE && strcmp(r->preview_of, req) == 0 &&
		    strcmp(r->computation, comp) == 0 && fs__key_eq(r->by, f->opt.me))
			return r;
	}
	return NULL;
}

int fs__req_preview_run(fs *f, const char *req, const char *text, size_t n)
{
	dcr_err err = {0};
	char comp[DCR_RM_NAME_BYTES_MAX + 1] = "", run[33];
	uint8_t raw[16];
	dcr_buf body;
	int rc = 0;
	bool failed = false;

	while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
		n--;
	if (n > DCR_RM_NAME_BYTES_MAX) {
		rc = dcr_err_set(&err, DCR_EINVALID, "preview: no computation named \"%.*s\"", 64,
		                 text);
		goto out;
	}
	pthread_mutex_lock(&f->mu);
	const rm_request *q = rm_state_request(&f->st, req);
	if (!q)
		rc = dcr_err_set(&err, DCR_ENOTFOUND, "no request %s", req);
	else if (n)
		snprintf(comp, sizeof comp, "%.*s", (int)n, text);
	else
		snprintf(comp, sizeof comp, "%s", q->computations[0]);
	pthread_mutex_unlock(&f->mu);
	if (rc)
		goto out;
	dcr_random(raw, sizeof raw);
	dcr_hex_encode(raw, sizeof raw, run);
	dcr_buf_init(&body);
	rm_body_req_preview(&body, req, comp, run);
	rc = f->be.submit(f->be.ctx, RM_EV_REQ_PREVIEW, body.data, body.len, &err);
	dcr_buf_release(&body);
	if (rc < 0)
		goto out;
	for (uint64_t t0 = dcr_mono_ms();;) {
		fs__fetch_apply(f, &err);
		pthread_mutex_lock(&f->mu);
		const rm_run *r = rm_state_run(&f->st, run);
		enum rm_run_state st = r ? r->state : RM_RUN_QUEUED;
		if (r && st == RM_RUN_FAILED) {
			failed = true;
			rc = dcr_err_set(&err, DCR_EINVALID, "preview run %s of %s failed: %s", run,
			                 comp, r->error);
		}
		pthread_mutex_unlock(&f->mu);
		if (st != RM_RUN_QUEUED)
			break;
		if (dcr_mono_ms() - t0 > FS_RUN_WAIT_MS_MAX) {
			rc = dcr_err_set(&err, DCR_ETIMEOUT, "preview run %s still not finished", run);
			break;
		}
		struct timespec ts = {0, (long)(f->opt.run_poll_ms ? f->opt.run_poll_ms : 50) * 1000000L};
		nanosleep(&ts, NULL);
	}
out:
	if (rc < 0) {
		fs__set_last_error(f, "preview", &err);
		return failed ? -EIO : -fs_errno(rc);
	}
	return 0;
}

int fs__req_preview_open(fs *f, fs_file *h, const char *req, const char *comp)
{
	dcr_err err = {0};
	dcr_buf body;
	enum rm_compkind kind = RM_COMP_SQL;
	pthread_mutex_lock(&f->mu);
	const rm_run *r = fs__req_preview_of(f, req, comp);
	if (r) {
		const rm_computation *c = rm_def_computation(rm_state_run_def(&f->st, r), comp);
		kind = c ? c->kind : RM_COMP_SQL;
		memcpy(h->run_id, r->id, 33);
		h->size = r->result_bytes;
	}
	pthread_mutex_unlock(&f->mu);
	if (!r)
		return -ENOENT;
	if (kind != RM_COMP_SQL) {
		/* its result is an archive of files (docs/compute.md): the CLI
		 * unpacks it; this file would show the archive's bytes */
		dcr_err_set(&err, DCR_EINVALID,
		            "the preview of %s computation %s is a set of files: read it with "
		            "dcr request preview ROOM %s %s -o DIR",
		            rm_compkind_name(kind), comp, req, comp);
		fs__set_last_error(f, "preview", &err);
		return -EOPNOTSUPP;
	}
	dcr_buf_init(&body);
	rm_body_retrieved(&body, h->run_id);
	int rc = f->be.submit(f->be.ctx, RM_EV_RETRIEVED, body.data, body.len, &err);
	dcr_buf_release(&body);
	if (rc < 0) {
		fs__set_last_error(f, "preview", &err);
		return -fs_errno(rc);
	}
	fs__fetch_apply(f, &err); /* our own event shows at once */
	return 0;
}
