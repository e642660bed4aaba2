/* audit_core.c: export and proof files, and the offline verifier.
 *
 * The verifier runs signature checks on `threads` worker threads over
 * contiguous index ranges (each also computes its leaf hashes) while the
 * calling thread replays the room with rm_apply. Each side remembers only
 * its first failure; the reported failure is the lowest position, and at
 * equal positions the signature failure (checked first for a single event).
 * Nothing is printed here; the caller words the summary.
 *
 * Invariant: a valid export means every entry decodes, sits at the position
 * its envelope names in the export's room, is signed by its actor, is
 * allowed by rm_apply given everything before it, the leaves hash to the
 * root the daemon signed for exactly this many events, and the listed
 * participants are those of the replayed definition. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "../base/base.h"
#include "../eventstore/eventstore.h"
#include "../room/room.h"
#include "audit_core.h"

/* ---- small helpers -------------------------------------------------------- */

static void hex32(const uint8_t h[32], char out[65])
{
	dcr_hex_encode(h, 32, out);
}

/* "ed25519:<base64>" in a caller buffer. */
static void pub_str(const uint8_t pub[32], char *out, size_t cap)
{
	char *s = dcr_pub_format(pub);
	snprintf(out, cap, "%s", s ? s : "?");
	free(s);
}

static const dcr_mp_limits au_export_limits = {
    .bytes_max = AU_EXPORT_BYTES_MAX,
    .depth_max = 4,
    .str_max = DCR_EVENT_BYTES_MAX + DCR_ED25519_SIG_BYTES,
    .elems_max = AU_EVENTS_MAX,
};

static const dcr_mp_limits au_proof_limits = {
    .bytes_max = AU_PROOF_BYTES_MAX,
    .depth_max = 4,
    .str_max = DCR_EVENT_BYTES_MAX + DCR_ED25519_SIG_BYTES,
    .elems_max = 64,
};

/* Requires map m to have exactly the keys listed (NULL-terminated). */
static int exact_keys(const dcr_mpv *m, const char *what, const char *const *keys, dcr_err *err)
{
	uint32_t want = 0;
	while (keys[want])
		want++;
	if (dcr_mp_type(m) != DCR_MP_MAP)
		return dcr_err_set(err, DCR_EFORMAT, "%s: not a map", what);
	for (uint32_t i = 0; i < dcr_mp_len(m); i++) {
		const char *k;
		size_t kn;
		dcr_mp_map_at(m, i, &k, &kn);
		bool known = false;
		for (uint32_t j = 0; j < want; j++)
			if (strlen(keys[j]) == kn && memcmp(keys[j], k, kn) == 0)
				known = true;
		if (!known)
			return dcr_err_set(err, DCR_EFORMAT, "%s: unknown field \"%.*s\"", what,
			                   (int)(kn > 64 ? 64 : kn), k);
	}
	for (uint32_t j = 0; j < want; j++)
		if (!dcr_mp_get(m, keys[j]))
			return dcr_err_set(err, DCR_EFORMAT, "%s: missing field \"%s\"", what,
			                   keys[j]);
	return 0;
}

static int check_format(const dcr_mpv *root, const char *want, dcr_err *err)
{
	const char *f;
	size_t fn;
	int rc = dcr_mp_get_str(root, "format", &f, &fn, err);
	if (rc)
		return rc;
	if (fn != strlen(want) || memcmp(f, want, fn) != 0)
		return dcr_err_set(err, DCR_EFORMAT, "format is \"%.*s\", expected \"%s\"",
		                   (int)(fn > 64 ? 64 : fn), f, want);
	return 0;
}

/* ---- export files ------------------------------------------------------- */

void au_export_encode(dcr_buf *out, const uint8_t room[ES_ROOM_ID_BYTES],
                      const uint8_t daemon_key[DCR_ED25519_PUB_BYTES], const es_checkpoint *cp,
                      const uint8_t *const *entries, const size_t *entry_n, uint64_t n,
                      const rm_state *final)
{
	dcr_mpw w;
	dcr_buf cpb;
	char hex[ES_ROOM_HEX_BYTES];

	DCR_ASSERT(n <= AU_EVENTS_MAX);
	dcr_buf_init(&cpb);
	es_checkpoint_encode(cp, &cpb);
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 6);
	dcr_mpw_str(&w, "checkpoint");
	dcr_mpw_bin(&w, cpb.data, cpb.len);
	dcr_mpw_str(&w, "daemon_key");
	dcr_mpw_bin(&w, daemon_key, DCR_ED25519_PUB_BYTES);
	dcr_mpw_str(&w, "entries");
	dcr_mpw_array(&w, (uint32_t)n);
	for (uint64_t i = 0; i < n; i++)
		dcr_mpw_bin(&w, entries[i], entry_n[i]);
	dcr_mpw_str(&w, "format");
	dcr_mpw_str(&w, AU_EXPORT_FORMAT);
	dcr_mpw_str(&w, "participants");
	const rm_def *d = final ? final->def : NULL;
	size_t np = d ? d->nparticipants : 0;
	dcr_mpw_array(&w, (uint32_t)np);
	for (size_t i = 0; i < np; i++) {
		dcr_mpw_map(&w, 2);
		dcr_mpw_str(&w, "email");
		dcr_mpw_str(&w, d->participants[i].email);
		dcr_mpw_str(&w, "key");
		dcr_mpw_bin(&w, d->participants[i].key, DCR_ED25519_PUB_BYTES);
	}
	dcr_mpw_str(&w, "room");
	es_room_format(room, hex);
	dcr_mpw_str(&w, hex);
	dcr_buf_release(&cpb);
}

void au_export_release(au_export *x)
{
	if (!x)
		return;
	for (size_t i = 0; i < x->nparticipants; i++)
		free(x->participants[i].email);
	free(x->participants);
	free(x->entry);
	free(x->entry_n);
	dcr_mp_doc_free(x->doc);
	memset(x, 0, sizeof(*x));
}

int au_export_decode(const void *bytes, size_t n, au_export *x, dcr_err *err)
{
	static const char *const keys[] = {"checkpoint",   "daemon_key", "entries", "format",
	                                   "participants", "room",       NULL};
	static const char *const pkeys[] = {"email", "key", NULL};
	const dcr_mpv *root, *v;
	const uint8_t *p;
	const char *s;
	size_t pn, sn;
	char hex[ES_ROOM_HEX_BYTES];
	int rc;

	memset(x, 0, sizeof(*x));
	rc = dcr_mp_parse(bytes, n, &au_export_limits, &x->doc, err);
	if (rc) {
		dcr_err_prefix(err, "export file");
		goto out;
	}
	root = dcr_mp_root(x->doc);
	if ((rc = exact_keys(root, "export file", keys, err)))
		goto out;
	if ((rc = check_format(root, AU_EXPORT_FORMAT, err)))
		goto out;
	if ((rc = dcr_mp_get_str(root, "room", &s, &sn, err)))
		goto out;
	if (sn != ES_ROOM_HEX_BYTES - 1) {
		rc = dcr_err_set(err, DCR_EFORMAT, "export file: room is not 32 hex characters");
		goto out;
	}
	memcpy(hex, s, sn);
	hex[sn] = 0;
	if (es_room_parse(hex, x->room) != 0) {
		rc = dcr_err_set(err, DCR_EFORMAT, "export file: room is not 32 hex characters");
		goto out;
	}
	es_room_format(x->room, hex);
	if (memcmp(hex, s, sn) != 0) {
		rc = dcr_err_set(err, DCR_EFORMAT, "export file: room id is not lowercase hex");
		goto out;
	}
	if ((rc = dcr_mp_get_binn(root, "daemon_key", x->daemon_key, DCR_ED25519_PUB_BYTES, err)))
		goto out;
	if ((rc = dcr_mp_get_bin(root, "checkpoint", &p, &pn, err)))
		goto out;
	if ((rc = es_checkpoint_decode(p, pn, &x->cp, err))) {
		dcr_err_prefix(err, "export file: checkpoint");
		goto out;
	}
	v = dcr_mp_get(root, "entries");
	if (dcr_mp_type(v) != DCR_MP_ARRAY) {
		rc = dcr_err_set(err, DCR_EFORMAT, "export file: entries is not an array");
		goto out;
	}
	x->n = dcr_mp_len(v);
	x->entry = dcr_calloc(x->n ? x->n : 1, sizeof(*x->entry));
	x->entry_n = dcr_calloc(x->n ? x->n : 1, sizeof(*x->entry_n));
	for (uint64_t i = 0; i < x->n; i++) {
		if (dcr_mp_bin(dcr_mp_at(v, (uint32_t)i), &x->entry[i], &x->entry_n[i]) != 0) {
			rc = dcr_err_set(err, DCR_EFORMAT, "export file: entries[%llu] is not bin",
			                 (unsigned long long)i);
			goto out;
		}
	}
	v = dcr_mp_get(root, "participants");
	if (dcr_mp_type(v) != DCR_MP_ARRAY || dcr_mp_len(v) > AU_PARTICIPANTS_MAX) {
		rc = dcr_err_set(err, DCR_EFORMAT,
		                 "export file: participants is not an array of at most %u",
		                 AU_PARTICIPANTS_MAX);
		goto out;
	}
	x->participants = dcr_calloc(dcr_mp_len(v) + 1, sizeof(*x->participants));
	for (uint32_t i = 0; i < dcr_mp_len(v); i++) {
		const dcr_mpv *e = dcr_mp_at(v, i);
		char what[48];
		snprintf(what, sizeof(what), "export file: participants[%u]", i);
		if ((rc = exact_keys(e, what, pkeys, err)))
			goto out;
		if ((rc = dcr_mp_strdup(dcr_mp_get(e, "email"), &x->participants[i].email))) {
			rc = dcr_err_set(err, DCR_EFORMAT, "%s.email: not a string", what);
			goto out;
		}
		x->nparticipants = i + 1;
		if ((rc = dcr_mp_get_binn(e, "key", x->participants[i].key, DCR_ED25519_PUB_BYTES,
		                          err))) {
			dcr_err_prefix(err, "%s", what);
			goto out;
		}
	}
	rc = 0;
out:
	if (rc)
		au_export_release(x);
	return rc;
}

int au_checkpoint_load(const void *bytes, size_t n, es_checkpoint *cp, dcr_err *err)
{
	dcr_err e1, e2;
	au_export x;
	int rc;

	dcr_err_clear(&e1);
	dcr_err_clear(&e2);
	if (n <= AU_CHECKPOINT_BYTES_MAX && es_checkpoint_decode(bytes, n, cp, &e1) == 0)
		goto verify;
	if (au_export_decode(bytes, n, &x, &e2) == 0) {
		*cp = x.cp;
		au_export_release(&x);
		goto verify;
	}
	return dcr_err_set(err, DCR_EFORMAT,
	                   "neither a checkpoint file (%s) nor an export file (%s)",
	                   e1.msg[0] ? e1.msg : "too large", e2.msg);
verify:
	rc = es_checkpoint_verify(cp, err);
	if (rc)
		dcr_err_prefix(err, "checkpoint");
	return rc;
}

/* ---- per-event checks ---------------------------------------------------- */

static int check_entry(const uint8_t room[ES_ROOM_ID_BYTES], uint64_t seq, const void *entry,
                       size_t n, es_event *ev, bool verify_sig, dcr_err *err)
{
	dcr_err e;
	int rc;

	memset(ev, 0, sizeof(*ev));
	dcr_err_clear(&e);
	rc = es_event_decode(entry, n, ev, &e);
	if (rc) {
		memset(ev, 0, sizeof(*ev));
		return dcr_err_set(err, rc, "seq %llu: malformed event: %s",
		                   (unsigned long long)seq, e.msg);
	}
	if (memcmp(ev->room, room, ES_ROOM_ID_BYTES) != 0) {
		char want[ES_ROOM_HEX_BYTES];
		es_room_format(room, want);
		rc = dcr_err_set(err, DCR_EINTEGRITY,
		                 "seq %llu (%s): event belongs to room %s, not %s",
		                 (unsigned long long)seq, ev->type, ev->room_hex, want);
		goto fail;
	}
	if (ev->seq != seq) {
		rc = dcr_err_set(
		    err, DCR_EINTEGRITY,
		    "seq %llu (%s): event was signed for position %llu (events dropped, "
		    "inserted or reordered)",
		    (unsigned long long)seq, ev->type, (unsigned long long)ev->seq);
		goto fail;
	}
	rc = verify_sig ? es_event_verify(ev, &e) : 0;
	if (rc) {
		rc = dcr_err_set(err, rc == DCR_EKEY ? DCR_EKEY : DCR_ESIG,
		                 "seq %llu (%s): bad signature", (unsigned long long)seq, ev->type);
		goto fail;
	}
	return 0;
fail:
	es_event_release(ev);
	memset(ev, 0, sizeof(*ev));
	return rc;
}

int au_check_entry(const uint8_t room[ES_ROOM_ID_BYTES], uint64_t seq, const void *entry, size_t n,
                   es_event *ev, dcr_err *err)
{
	return check_entry(room, seq, entry, n, ev, true, err);
}

int au_apply(rm_state *st, const es_event *ev, uint64_t seq, dcr_err *err)
{
	rm_step step;
	int rc = rm_apply_at(st, ev, &step);

	(void)seq; /* check_entry made it ev->seq */
	return rc ? rm_step_err(&step, err) : 0;
}

int au_replay(const au_export *x, uint64_t upto, rm_state *st, au_event_fn before,
              au_event_fn after, void *ctx, dcr_err *err)
{
	int rc = 0;

	if (upto > x->n)
		upto = x->n;
	for (uint64_t i = 0; i < upto; i++) {
		es_event ev;
		rc = au_check_entry(x->room, i, x->entry[i], x->entry_n[i], &ev, err);
		if (rc)
			return rc;
		if (before && (rc = before(ctx, i, &ev, st)))
			goto next;
		if ((rc = au_apply(st, &ev, i, err)))
			goto next;
		if (after)
			rc = after(ctx, i, &ev, st);
	next:
		es_event_release(&ev);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- the verifier -------------------------------------------------------- */

static unsigned online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > (long)AU_THREADS_MAX ? AU_THREADS_MAX : (unsigned)n;
}

typedef struct sig_job {
	const au_export *x;
	uint64_t lo, hi;
	uint8_t (*leaves)[32];
	_Atomic uint64_t *first_bad; /* lowest failing position seen so far */
	uint64_t bad;                /* this job's first failure, or UINT64_MAX */
	dcr_err err;
} sig_job;

static void lower_to(_Atomic uint64_t *a, uint64_t v)
{
	uint64_t cur = atomic_load(a);
	while (v < cur && !atomic_compare_exchange_weak(a, &cur, v))
		;
}

static void *sig_worker(void *arg)
{
	sig_job *j = arg;
	const au_export *x = j->x;

	for (uint64_t i = j->lo; i < j->hi; i++) {
		es_event ev;
		es_leaf_hash(x->entry[i], x->entry_n[i], j->leaves[i]);
		if (i > atomic_load(j->first_bad))
			continue; /* result no longer matters; keep hashing */
		if (au_check_entry(x->room, i, x->entry[i], x->entry_n[i], &ev, &j->err)) {
			j->bad = i;
			lower_to(j->first_bad, i);
			continue;
		}
		es_event_release(&ev);
	}
	return NULL;
}

/* Same participants, same order, as the replayed definition. */
static int check_participants(const au_export *x, const rm_state *st, dcr_err *err)
{
	const rm_def *d = st->def;
	size_t np = d ? d->nparticipants : 0;

	if (x->nparticipants != np)
		return dcr_err_set(err, DCR_EINTEGRITY,
		                   "participants: the export lists %zu, the replayed definition "
		                   "declares %zu",
		                   x->nparticipants, np);
	for (size_t i = 0; i < np; i++) {
		if (strcmp(x->participants[i].email, d->participants[i].email) != 0 ||
		    memcmp(x->participants[i].key, d->participants[i].key, 32) != 0)
			return dcr_err_set(err, DCR_EINTEGRITY,
			                   "participants[%zu] (%s) does not match the replayed "
			                   "definition",
			                   i, x->participants[i].email);
	}
	return 0;
}

static int check_checkpoints(const au_export *x, const au_verify_opts *opt,
                             const uint8_t (*leaves)[32], au_report *rep, dcr_err *err)
{
	char a[65], b[65], ka[64], kb[64];
	dcr_err e;
	uint8_t r[32];
	int rc;

	dcr_err_clear(&e);
	es_merkle_root(leaves, x->n, rep->root);
	if ((rc = es_checkpoint_verify(&x->cp, &e)))
		return dcr_err_set(err, DCR_ESIG, "checkpoint: bad signature (%s)", e.msg);
	if (memcmp(x->cp.key, x->daemon_key, 32) != 0) {
		pub_str(x->cp.key, ka, sizeof(ka));
		pub_str(x->daemon_key, kb, sizeof(kb));
		return dcr_err_set(err, DCR_EINTEGRITY,
		                   "checkpoint is signed by %s, not by the daemon key %s", ka, kb);
	}
	if (memcmp(x->cp.room, x->room, ES_ROOM_ID_BYTES) != 0) {
		es_room_format(x->cp.room, a);
		return dcr_err_set(err, DCR_EINTEGRITY, "checkpoint is for room %s", a);
	}
	if (x->cp.size != x->n)
		return dcr_err_set(err, DCR_EINTEGRITY,
		                   "checkpoint covers %llu events but the log has %llu",
		                   (unsigned long long)x->cp.size, (unsigned long long)x->n);
	if (memcmp(x->cp.root, rep->root, 32) != 0) {
		hex32(rep->root, a);
		hex32(x->cp.root, b);
		return dcr_err_set(err, DCR_EINTEGRITY,
		                   "Merkle root of the %llu events is %s but the signed checkpoint "
		                   "says %s",
		                   (unsigned long long)x->n, a, b);
	}
	if (!opt || !opt->old_cp)
		return 0;

	const es_checkpoint *old = opt->old_cp;
	if ((rc = es_checkpoint_verify(old, &e)))
		return dcr_err_set(err, DCR_ESIG, "older checkpoint: bad signature (%s)", e.msg);
	if (memcmp(old->key, x->daemon_key, 32) != 0) {
		pub_str(old->key, ka, sizeof(ka));
		pub_str(x->daemon_key, kb, sizeof(kb));
		return dcr_err_set(err, DCR_EINTEGRITY,
		                   "older checkpoint is signed by %s, not by the daemon key %s", ka,
		                   kb);
	}
	if (memcmp(old->room, x->room, ES_ROOM_ID_BYTES) != 0) {
		es_room_format(old->room, a);
		return dcr_err_set(err, DCR_EINTEGRITY, "older checkpoint is for room %s", a);
	}
	if (old->size > x->n)
		return dcr_err_set(err, DCR_EINTEGRITY,
		                   "older checkpoint covers %llu events but the log has only %llu "
		                   "(history was truncated)",
		                   (unsigned long long)old->size, (unsigned long long)x->n);
	es_merkle_root(leaves, old->size, r);
	if (memcmp(r, old->root, 32) != 0) {
		hex32(r, a);
		hex32(old->root, b);
		return dcr_err_set(
		    err, DCR_EINTEGRITY,
		    "log is not an extension of the older checkpoint: its first %llu "
		    "events have root %s, the older checkpoint says %s",
		    (unsigned long long)old->size, a, b);
	}
	if (old->size == 0 || old->size == x->n)
		return 0; /* empty prefix, or the same tree: the root check is the proof */
	uint8_t proof[AU_PROOF_HASHES_MAX][32];
	size_t pn = 0;
	if ((rc = es_merkle_consistency(leaves, old->size, x->n, proof, &pn)))
		return dcr_err_set(err, rc, "consistency proof: cannot compute (%s)",
		                   dcr_strerror(rc));
	if (es_verify_consistency(old->size, x->n, old->root, rep->root,
	                          (const uint8_t(*)[32])proof, pn) != 0)
		return dcr_err_set(err, DCR_EINTEGRITY,
		                   "consistency proof from size %llu to %llu does not verify",
		                   (unsigned long long)old->size, (unsigned long long)x->n);
	return 0;
}

int au_verify(const au_export *x, const au_verify_opts *opt, au_report *rep, dcr_err *err)
{
	unsigned nthreads = opt && opt->threads ? opt->threads : online_cpus();
	sig_job jobs[AU_THREADS_MAX];
	pthread_t tids[AU_THREADS_MAX];
	_Atomic uint64_t first_bad = UINT64_MAX;
	uint8_t(*leaves)[32] = NULL;
	uint64_t t0 = dcr_mono_ms();
	uint64_t rbad = UINT64_MAX, sbad = UINT64_MAX;
	const dcr_err *serr = NULL;
	dcr_err rerr;
	bool threaded[AU_THREADS_MAX];
	rm_state st;
	int rc = 0;

	memset(rep, 0, sizeof(*rep));
	rep->events = x->n;
	rep->bad_seq = UINT64_MAX;
	dcr_err_clear(&rerr);
	rm_state_init(&st, x->daemon_key);

	if (opt && opt->daemon_key && memcmp(opt->daemon_key, x->daemon_key, 32) != 0) {
		char ka[64], kb[64];
		pub_str(x->daemon_key, ka, sizeof(ka));
		pub_str(opt->daemon_key, kb, sizeof(kb));
		rc = dcr_err_set(err, DCR_EINTEGRITY,
		                 "the export names daemon key %s, but you trust %s", ka, kb);
		goto out;
	}
	if (x->n == 0) {
		/* A room exists from its room.created on: an empty log proves
		 * nothing (docs/event-format.md, 8.1). */
		rc = dcr_err_set(err, DCR_EFORMAT,
		                 "export file: no events (a room's log starts with room.created)");
		goto out;
	}
	if (nthreads > AU_THREADS_MAX)
		nthreads = AU_THREADS_MAX;
	if (nthreads > x->n)
		nthreads = x->n ? (unsigned)x->n : 1;
	leaves = dcr_malloc((x->n ? x->n : 1) * sizeof(*leaves));

	for (unsigned t = 0; t < nthreads; t++) {
		sig_job *j = &jobs[t];
		memset(j, 0, sizeof(*j));
		j->x = x;
		j->lo = x->n * t / nthreads;
		j->hi = x->n * (t + 1) / nthreads;
		j->leaves = leaves;
		j->first_bad = &first_bad;
		j->bad = UINT64_MAX;
		dcr_err_clear(&j->err);
		threaded[t] = pthread_create(&tids[t], NULL, sig_worker, j) == 0;
		if (!threaded[t])
			sig_worker(j); /* no thread: check the range here */
	}

	/* Replay on this thread while the workers check signatures; an event
	 * is applied before its signature is known, but nothing after the
	 * first failure of either kind is reported. */
	for (uint64_t i = 0; i < x->n; i++) {
		es_event ev;
		if (i > atomic_load(&first_bad))
			break;
		if (check_entry(x->room, i, x->entry[i], x->entry_n[i], &ev, false, &rerr)) {
			rbad = i;
			break;
		}
		int arc = au_apply(&st, &ev, i, &rerr);
		es_event_release(&ev);
		if (arc) {
			rbad = i;
			break;
		}
	}

	for (unsigned t = 0; t < nthreads; t++) {
		if (threaded[t])
			pthread_join(tids[t], NULL);
		if (jobs[t].bad < sbad) {
			sbad = jobs[t].bad;
			serr = &jobs[t].err;
		}
	}
	if (sbad != UINT64_MAX || rbad != UINT64_MAX) {
		if (sbad <= rbad) {
			rep->bad_seq = sbad;
			rc = dcr_err_set(err, serr->code, "%s", serr->msg);
		} else {
			rep->bad_seq = rbad;
			rc = dcr_err_set(err, rerr.code, "%s", rerr.msg);
		}
		goto out;
	}
	if (st.def && st.def->name)
		snprintf(rep->name, sizeof(rep->name), "%s", st.def->name);
	for (size_t i = 0; st.def && i < st.def->ndatasets; i++) {
		const rm_dataset *ds = &st.def->datasets[i];
		uint64_t spent = rm_state_epsilon_spent(&st, ds->name);
		size_t at = strlen(rep->budgets);
		char b[32], y[32], z[32];
		if (!ds->epsilon_budget)
			continue;
		snprintf(rep->budgets + at, sizeof rep->budgets - at, "%s%s: %s of %s spent, %s left",
		         at ? "; " : "", ds->name, rm_epsilon_format(spent, y, sizeof y),
		         rm_epsilon_format(ds->epsilon_budget, b, sizeof b),
		         rm_epsilon_format(ds->epsilon_budget - spent, z, sizeof z));
	}
	if ((rc = check_participants(x, &st, err)))
		goto out;
	if ((rc = check_checkpoints(x, opt, (const uint8_t(*)[32])leaves, rep, err)))
		goto out;
	rc = 0;
out:
	free(leaves);
	rm_state_release(&st);
	rep->verify_ms = dcr_mono_ms() - t0;
	if (rc == 0)
		dcr_err_clear(err);
	return rc;
}

/* ---- proof files ------------------------------------------------------- */

void au_proof_encode(dcr_buf *out, const au_proof *p)
{
	dcr_mpw w;
	dcr_buf cpb;

	DCR_ASSERT(p->nhashes <= AU_PROOF_HASHES_MAX);
	dcr_buf_init(&cpb);
	es_checkpoint_encode(&p->cp, &cpb);
	dcr_mpw_init(&w, out);
	dcr_mpw_map(&w, 5);
	dcr_mpw_str(&w, "checkpoint");
	dcr_mpw_bin(&w, cpb.data, cpb.len);
	dcr_mpw_str(&w, "entry");
	dcr_mpw_bin(&w, p->entry, p->entry_n);
	dcr_mpw_str(&w, "format");
	dcr_mpw_str(&w, AU_PROOF_FORMAT);
	dcr_mpw_str(&w, "index");
	dcr_mpw_uint(&w, p->index);
	dcr_mpw_str(&w, "proof");
	dcr_mpw_array(&w, (uint32_t)p->nhashes);
	for (size_t i = 0; i < p->nhashes; i++)
		dcr_mpw_bin(&w, p->hashes[i], 32);
	dcr_buf_release(&cpb);
}

int au_proof_decode(const void *bytes, size_t n, au_proof *p, dcr_err *err)
{
	static const char *const keys[] = {"checkpoint", "entry", "format", "index", "proof", NULL};
	dcr_mp_doc *doc = NULL;
	const dcr_mpv *root, *v;
	const uint8_t *b;
	size_t bn;
	int rc;

	memset(p, 0, sizeof(*p));
	if ((rc = dcr_mp_parse(bytes, n, &au_proof_limits, &doc, err))) {
		dcr_err_prefix(err, "proof file");
		goto out;
	}
	root = dcr_mp_root(doc);
	if ((rc = exact_keys(root, "proof file", keys, err)) ||
	    (rc = check_format(root, AU_PROOF_FORMAT, err)))
		goto out;
	if ((rc = dcr_mp_get_bin(root, "checkpoint", &b, &bn, err)))
		goto out;
	if ((rc = es_checkpoint_decode(b, bn, &p->cp, err))) {
		dcr_err_prefix(err, "proof file: checkpoint");
		goto out;
	}
	if ((rc = dcr_mp_get_bin(root, "entry", &p->entry, &p->entry_n, err)) ||
	    (rc = dcr_mp_get_u64(root, "index", &p->index, err)))
		goto out;
	v = dcr_mp_get(root, "proof");
	if (dcr_mp_type(v) != DCR_MP_ARRAY || dcr_mp_len(v) > AU_PROOF_HASHES_MAX) {
		rc = dcr_err_set(err, DCR_EFORMAT,
		                 "proof file: proof is not an array of at most %u "
		                 "hashes",
		                 AU_PROOF_HASHES_MAX);
		goto out;
	}
	p->nhashes = dcr_mp_len(v);
	for (size_t i = 0; i < p->nhashes; i++) {
		if (dcr_mp_bin(dcr_mp_at(v, (uint32_t)i), &b, &bn) || bn != 32) {
			rc = dcr_err_set(err, DCR_EFORMAT, "proof file: proof[%zu] is not 32 bytes",
			                 i);
			goto out;
		}
		memcpy(p->hashes[i], b, 32);
	}
	rc = 0;
out:
	/* entry points into the caller's bytes, not into doc. */
	dcr_mp_doc_free(doc);
	return rc;
}

int au_proof_verify(const au_proof *p, const uint8_t *daemon_key, char *ev_type, dcr_err *err)
{
	char room[ES_ROOM_HEX_BYTES];
	es_event ev;
	dcr_err e;
	uint8_t leaf[32];
	int rc;

	dcr_err_clear(&e);
	if (es_checkpoint_verify(&p->cp, &e) != 0)
		return dcr_err_set(err, DCR_ESIG, "checkpoint: bad signature (%s)", e.msg);
	if (daemon_key && memcmp(daemon_key, p->cp.key, 32) != 0) {
		char ka[64], kb[64];
		pub_str(p->cp.key, ka, sizeof(ka));
		pub_str(daemon_key, kb, sizeof(kb));
		return dcr_err_set(err, DCR_EINTEGRITY,
		                   "checkpoint is signed by %s, but you trust %s", ka, kb);
	}
	if (p->index >= p->cp.size)
		return dcr_err_set(err, DCR_EINTEGRITY,
		                   "seq %llu is beyond the checkpoint's %llu events",
		                   (unsigned long long)p->index, (unsigned long long)p->cp.size);
	if ((rc = au_check_entry(p->cp.room, p->index, p->entry, p->entry_n, &ev, err)))
		return rc;
	if (ev_type)
		snprintf(ev_type, ES_TYPE_BYTES_MAX, "%s", ev.type);
	es_leaf_hash(p->entry, p->entry_n, leaf);
	if (es_verify_inclusion(p->index, p->cp.size, leaf, (const uint8_t(*)[32])p->hashes,
	                        p->nhashes, p->cp.root) != 0) {
		es_room_format(p->cp.room, room);
		rc = dcr_err_set(err, DCR_EINTEGRITY,
		                 "seq %llu (%s): inclusion proof does not verify against the "
		                 "checkpoint of room %s at size %llu",
		                 (unsigned long long)p->index, ev.type, room,
		                 (unsigned long long)p->cp.size);
	}
	es_event_release(&ev);
	return rc;
}
