/* quota.c: disk quotas per room, per key and per run, and the expiry of
 * uploads never signed (docs/daemon.md, "Limits and quotas").
 *
 * What counts: the bytes of the files participants upload. A key is
 * charged for the files it provisioned that are present in any room (an
 * append dataset's drops each to its uploader), plus its uploads in
 * progress and those finished but not yet signed (dataset.provisioned);
 * a room for the same files of its datasets, whoever uploaded them. The
 * derived blobs (statistics, prepared tables) and the results of runs are
 * dcrd's own work and are bounded per run instead (result limits,
 * docs/compute.md). A key's disk quota covers its uploads plus the
 * temporary files of the runs it requested while they compute (a shared
 * cmp_tmp_budget per key), and every run's temporary files have a quota of
 * their own (cmp_sql_tmp_setup).
 *
 * Quotas are host policies, not rules: an upload past one is refused
 * with ELIMIT naming the quota, at upload.begin when the client says the
 * size, else at the chunk that passes it; nothing stored is touched.
 * Stored bytes are summed from the rooms' states when an upload begins;
 * the uploads in flight are counted here (pending) as their chunks
 * arrive, so two uploads of one key at once cannot both pass. A file
 * signed while another of the same key uploads is, for that other
 * upload, in neither sum (it left pending, the base was taken before):
 * the quota can be passed by at most such files, never by a stream.
 *
 * Uploads finished but never signed expire after --upload-expiry-s: the
 * reaper thread (started and joined by the main thread) removes them and
 * deletes their blobs (file and statistics) while dcrd runs; so does a
 * dataset.provisioned that is refused after taking its upload.
 *
 * Lock: quota.mu guards pending, budgets and stop; taken after up.mu (the
 * reaper takes up.mu, lets go, then quota.mu), nothing taken under it. */
#include "dmn_int.h"

struct dmn_quota_ent {
	uint8_t id[32]; /* a key, or a room id (ES_ROOM_ID_BYTES) zero-padded */
	bool room;
	uint64_t pending; /* bytes of uploads in progress or unsigned */
};

struct dmn_quota_budget {
	uint8_t key[32];
	cmp_tmp_budget *b;
	unsigned runs; /* runs of this key computing now */
};

static uint64_t mb(uint64_t v, uint64_t dflt)
{
	return (v ? v : dflt) << 20;
}

static uint64_t q_room_bytes(const dmn *d)
{
	return mb(d->opt.max_room_blob_mb, DMN_QUOTA_ROOM_BLOB_MB);
}

static uint64_t q_key_bytes(const dmn *d)
{
	return mb(d->opt.max_key_blob_mb, DMN_QUOTA_KEY_BLOB_MB);
}

static uint64_t q_key_disk_bytes(const dmn *d)
{
	return mb(d->opt.max_key_disk_mb, DMN_QUOTA_KEY_DISK_MB);
}

static uint64_t q_expiry_ms(const dmn *d)
{
	return (d->opt.upload_expiry_s ? d->opt.upload_expiry_s : DMN_UPLOAD_EXPIRY_S) * 1000;
}

/* Caller holds quota.mu. */
static struct dmn_quota_ent *ent_find(dmn *d, const uint8_t *id, size_t n, bool room, bool add)
{
	dmn_quota *q = &d->quota;
	uint8_t k[32] = {0};

	DMN_ASSERT_HELD(&q->mu);
	memcpy(k, id, n);
	for (size_t i = 0; i < q->n; i++)
		if (q->ents[i].room == room && memcmp(q->ents[i].id, k, 32) == 0)
			return &q->ents[i];
	if (!add)
		return NULL;
	if (q->n == q->cap) {
		q->cap = q->cap ? 2 * q->cap : 16;
		q->ents = dcr_realloc(q->ents, q->cap * sizeof *q->ents);
	}
	memset(&q->ents[q->n], 0, sizeof q->ents[0]);
	memcpy(q->ents[q->n].id, k, 32);
	q->ents[q->n].room = room;
	return &q->ents[q->n++];
}

/* Caller holds quota.mu: drops entries back at zero. */
static void ents_compact(dmn_quota *q)
{
	size_t j = 0;
	for (size_t i = 0; i < q->n; i++)
		if (q->ents[i].pending)
			q->ents[j++] = q->ents[i];
	q->n = j;
}

static struct dmn_quota_budget *budget_find(dmn_quota *q, const uint8_t key[32])
{
	for (size_t i = 0; i < q->nbudgets; i++)
		if (memcmp(q->budgets[i].key, key, 32) == 0)
			return &q->budgets[i];
	return NULL;
}

void dmn__quota_stored(dmn *d, const uint8_t key[32], const uint8_t room[ES_ROOM_ID_BYTES],
                       uint64_t *key_bytes, uint64_t *room_bytes)
{
	size_t n;
	dmn_room **rl = dmn__rooms_list(d, &n);

	*key_bytes = 0;
	if (room_bytes)
		*room_bytes = 0;
	for (size_t i = 0; i < n; i++) {
		dmn_room *r = rl[i];
		bool this_room = room && memcmp(r->id, room, ES_ROOM_ID_BYTES) == 0;
		dmn__mutex_lock(&r->mu);
		for (size_t j = 0; j < r->st.nprovisions; j++) {
			const rm_provision *p = &r->st.provisions[j];
			if (!p->present)
				continue;
			if (p->ndrops) {
				for (size_t k = 0; k < p->ndrops; k++) {
					if (memcmp(p->drops[k].by, key, 32) == 0)
						*key_bytes += p->drops[k].bytes;
					if (this_room && room_bytes)
						*room_bytes += p->drops[k].bytes;
				}
				continue;
			}
			if (memcmp(p->by, key, 32) == 0)
				*key_bytes += p->bytes;
			if (this_room && room_bytes)
				*room_bytes += p->bytes;
		}
		dmn__mutex_unlock(&r->mu);
	}
	free(rl);
}

static uint64_t pending_of(dmn *d, const uint8_t *id, size_t n, bool room)
{
	struct dmn_quota_ent *e = ent_find(d, id, n, room, false);
	return e ? e->pending : 0;
}

static void mib(char *out, size_t cap, uint64_t bytes)
{
	snprintf(out, cap, "%.1f MiB", (double)bytes / (1024.0 * 1024.0));
}

int dmn__quota_charge(dmn *d, const uint8_t key[32], const uint8_t room[ES_ROOM_ID_BYTES],
                      uint64_t key_base, uint64_t room_base, uint64_t n, bool dry,
                      dcr_err *err)
{
	dmn_quota *q = &d->quota;
	uint64_t kp, rp, tmp = 0, lim;
	char a[32], b[32];
	int rc = 0;

	dmn__mutex_lock(&q->mu);
	kp = pending_of(d, key, 32, false);
	rp = pending_of(d, room, ES_ROOM_ID_BYTES, true);
	{
		struct dmn_quota_budget *kb = budget_find(q, key);
		if (kb)
			tmp = cmp_tmp_budget_used(kb->b);
	}
	if (room_base + rp + n > (lim = q_room_bytes(d))) {
		mib(a, sizeof a, room_base + rp);
		mib(b, sizeof b, lim);
		rc = dcr_err_set(err, DCR_ELIMIT,
		                 "room upload quota: the room's datasets and uploads in progress "
		                 "hold %s of its %s (--max-room-blob-mb); this upload needs %llu "
		                 "bytes more. Deprovision data of the room or ask the host to "
		                 "raise the quota",
		                 a, b, (unsigned long long)n);
	} else if (key_base + kp + n > (lim = q_key_bytes(d))) {
		mib(a, sizeof a, key_base + kp);
		mib(b, sizeof b, lim);
		rc = dcr_err_set(err, DCR_ELIMIT,
		                 "key upload quota: the files you provisioned and your uploads in "
		                 "progress hold %s of your %s (--max-key-blob-mb); this upload "
		                 "needs %llu bytes more. Deprovision datasets you own or ask the "
		                 "host to raise the quota",
		                 a, b, (unsigned long long)n);
	} else if (key_base + kp + tmp + n > (lim = q_key_disk_bytes(d))) {
		mib(a, sizeof a, key_base + kp + tmp);
		mib(b, sizeof b, lim);
		rc = dcr_err_set(err, DCR_ELIMIT,
		                 "key disk quota: your uploads and the temporary files of your "
		                 "runs hold %s of your %s (--max-key-disk-mb); this upload needs "
		                 "%llu bytes more. Wait for your runs, deprovision datasets or ask "
		                 "the host to raise the quota",
		                 a, b, (unsigned long long)n);
	}
	if (rc == 0 && !dry && n) {
		ent_find(d, key, 32, false, true)->pending += n;
		ent_find(d, room, ES_ROOM_ID_BYTES, true, true)->pending += n;
	}
	dmn__mutex_unlock(&q->mu);
	return rc;
}

void dmn__quota_release(dmn *d, const uint8_t key[32], const uint8_t room[ES_ROOM_ID_BYTES],
                        uint64_t n)
{
	dmn_quota *q = &d->quota;
	struct dmn_quota_ent *e;

	if (!n)
		return;
	dmn__mutex_lock(&q->mu);
	e = ent_find(d, key, 32, false, false);
	DCR_ASSERT(e && e->pending >= n);
	e->pending -= n;
	e = ent_find(d, room, ES_ROOM_ID_BYTES, true, false);
	DCR_ASSERT(e && e->pending >= n);
	e->pending -= n;
	ents_compact(q);
	dmn__mutex_unlock(&q->mu);
}

void dmn__upload_settle(dmn *d, dmn_done_upload *u, bool signed_)
{
	if (!u)
		return;
	if (!signed_ && u->p.blob)
		dmn__blobs_drop_withdrawn(d, u->p.blob);
	dmn__quota_release(d, u->actor, u->room, u->p.bytes);
	dmn__done_upload_free(u);
}

/* Unlinks (under up.mu) the unsigned uploads that are too old, or beyond
 * DMN_UPLOADS_PENDING_MAX (the list is newest first); then settles them. */
void dmn__uploads_expire(dmn *d)
{
	uint64_t now = dcr_now_ms(), ttl = q_expiry_ms(d);
	dmn_done_upload *gone = NULL, **pp;
	size_t kept = 0;

	dmn__mutex_lock(&d->up.mu);
	pp = &d->up.done;
	while (*pp) {
		dmn_done_upload *x = *pp;
		if (kept >= DMN_UPLOADS_PENDING_MAX || now - x->done_ms >= ttl) {
			*pp = x->next;
			x->next = gone;
			gone = x;
			continue;
		}
		kept++;
		pp = &x->next;
	}
	dmn__mutex_unlock(&d->up.mu);
	while (gone) {
		dmn_done_upload *x = gone;
		char *who = dmn__who(dmn__room_find(d, x->room), x->actor);
		gone = x->next;
		dmn__log(d, DMN_LOG_INFO,
		         "%s upload of %s (%llu bytes, blob %s) expired unsigned after %llu s: "
		         "its blobs are removed",
		         who, x->p.dataset, (unsigned long long)x->p.bytes, x->p.blob,
		         (unsigned long long)((now - x->done_ms) / 1000));
		free(who);
		dmn__upload_settle(d, x, false);
	}
}

cmp_tmp_budget *dmn__quota_run_enter(dmn *d, const uint8_t key[32])
{
	dmn_quota *q = &d->quota;
	struct dmn_quota_budget *kb;
	uint64_t stored, pending, disk = q_key_disk_bytes(d), room;
	cmp_tmp_budget *b;

	dmn__quota_stored(d, key, NULL, &stored, NULL);
	dmn__mutex_lock(&q->mu);
	pending = pending_of(d, key, 32, false);
	kb = budget_find(q, key);
	if (!kb) {
		if (q->nbudgets == q->capbudgets) {
			q->capbudgets = q->capbudgets ? 2 * q->capbudgets : 8;
			q->budgets = dcr_realloc(q->budgets, q->capbudgets * sizeof *q->budgets);
		}
		kb = &q->budgets[q->nbudgets++];
		memcpy(kb->key, key, 32);
		kb->b = cmp_tmp_budget_new(0);
		kb->runs = 0;
	}
	kb->runs++;
	/* What the key's uploads leave of its disk quota, for the temporary
	 * files of all its runs together. */
	room = stored + pending < disk ? disk - stored - pending : 0;
	cmp_tmp_budget_set_limit(kb->b, room);
	b = kb->b;
	dmn__mutex_unlock(&q->mu);
	return b;
}

void dmn__quota_run_leave(dmn *d, const uint8_t key[32])
{
	dmn_quota *q = &d->quota;
	struct dmn_quota_budget *kb;

	dmn__mutex_lock(&q->mu);
	kb = budget_find(q, key);
	DCR_ASSERT(kb && kb->runs > 0);
	if (--kb->runs == 0) {
		cmp_tmp_budget_unref(kb->b);
		*kb = q->budgets[--q->nbudgets];
	}
	dmn__mutex_unlock(&q->mu);
}

static void *reaper_main(void *arg)
{
	dmn *d = arg;
	dmn_quota *q = &d->quota;
	uint64_t period = q_expiry_ms(d) / 10;

	if (period < 100)
		period = 100;
	if (period > 10000)
		period = 10000;
	dmn__mutex_lock(&q->mu);
	while (!q->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)(period / 1000);
		ts.tv_nsec += (long)(period % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		dmn__cond_timedwait(&q->cv, &q->mu, &ts);
		if (q->stop)
			break;
		dmn__mutex_unlock(&q->mu);
		dmn__uploads_expire(d);
		dmn__mutex_lock(&q->mu);
	}
	dmn__mutex_unlock(&q->mu);
	return NULL;
}

void dmn__quota_init(dmn *d)
{
	pthread_condattr_t ca;

	dmn__mutex_init(&d->quota.mu);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->quota.cv, &ca);
	pthread_condattr_destroy(&ca);
}

int dmn__quota_start(dmn *d, dcr_err *err)
{
	char *dir = dcr_asprintf("%s/sqltmp", d->dir);
	int rc = cmp_sql_tmp_setup(dir, mb(d->opt.max_run_tmp_mb, DMN_QUOTA_RUN_TMP_MB), err);

	free(dir);
	if (rc < 0)
		return rc;
	if (pthread_create(&d->quota.reaper, NULL, reaper_main, d) != 0)
		return dcr_err_set(err, DCR_EINTERNAL, "cannot start the upload reaper thread");
	d->quota.reaper_started = true;
	return 0;
}

void dmn__quota_stop(dmn *d)
{
	if (!d->quota.reaper_started)
		return;
	dmn__mutex_lock(&d->quota.mu);
	d->quota.stop = true;
	pthread_cond_broadcast(&d->quota.cv);
	dmn__mutex_unlock(&d->quota.mu);
	pthread_join(d->quota.reaper, NULL);
	d->quota.reaper_started = false;
}

void dmn__quota_release_all(dmn *d)
{
	DCR_ASSERT(d->quota.nbudgets == 0);
	free(d->quota.ents);
	free(d->quota.budgets);
	dmn__mutex_destroy(&d->quota.mu);
	pthread_cond_destroy(&d->quota.cv);
}
