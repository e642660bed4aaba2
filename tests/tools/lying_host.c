/* lying_host.c: a test-only tool that does what a malicious host could do
 * to a stopped dcrd's data directory: rewrite one old event of a room and
 * re-sign everything with the daemon's own key (tests/e2e/witness.sh).
 *
 *   dcr_lying_host rewrite DATA_DIR ROOM SEQ
 *   dcr_lying_host resign DATA_DIR
 *
 * resign makes a new daemon key (DATA_DIR/daemon.pem replaced) and
 * rebuilds the store with every checkpoint signed by it: a host that
 * changed its key (rooms without daemon-signed events still replay).
 *
 * The event at SEQ must be one the daemon signed (a run outcome): the host
 * holds no participant's key. It is signed again with its timestamp moved
 * by one millisecond (same type, same body), so the rewritten log still
 * replays under the rules and verifies on its own; only a client that
 * remembers a checkpoint of the original log can tell. The store is
 * rebuilt (every room, every entry, the Merkle tree and checkpoints signed
 * by DATA_DIR/daemon.pem) in DATA_DIR/events.new, then swapped in place of
 * DATA_DIR/events (kept as events.orig). The daemon's side table (caches
 * of prepared tables and similar) is not copied: dcrd rebuilds it. */
#include <sys/stat.h>
#include <unistd.h>

#include "../../base/base.h"
#include "../../eventstore/eventstore.h"

typedef struct room_log {
	uint8_t id[ES_ROOM_ID_BYTES];
	dcr_buf *e;
	size_t n, cap;
} room_log;

typedef struct all_logs {
	room_log *r;
	size_t n, cap;
	es_store *s;
} all_logs;

static int keep_entry(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	room_log *l = ctx;

	if (seq != l->n)
		return DCR_EINTEGRITY;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->e = dcr_realloc(l->e, l->cap * sizeof *l->e);
	}
	dcr_buf_init(&l->e[l->n]);
	dcr_buf_append(&l->e[l->n++], entry, n);
	return 0;
}

static int keep_room(void *ctx, const uint8_t room[ES_ROOM_ID_BYTES])
{
	all_logs *a = ctx;
	room_log *l;

	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 8;
		a->r = dcr_realloc(a->r, a->cap * sizeof *a->r);
	}
	l = &a->r[a->n++];
	memset(l, 0, sizeof *l);
	memcpy(l->id, room, ES_ROOM_ID_BYTES);
	return es_fold(a->s, room, 0, ES_SEQ_ANY, keep_entry, l);
}

/* The body's bytes inside an envelope: after actor (the first key, 32
 * bytes) and the "body" key, up to the "room" key, the last of its kind. */
static int body_span(const uint8_t *env, size_t n, size_t *off, size_t *len)
{
	static const uint8_t room_key[] = {0xa4, 'r', 'o', 'o', 'm', 0xd9, 0x20};
	size_t start = 1 + 6 + 2 + 32 + 5, end = 0;

	if (n < start || env[start - 5] != 0xa4 || memcmp(env + start - 4, "body", 4) != 0)
		return -1;
	for (size_t i = start; i + sizeof room_key <= n; i++)
		if (memcmp(env + i, room_key, sizeof room_key) == 0)
			end = i;
	if (end <= start)
		return -1;
	*off = start;
	*len = end - start;
	return 0;
}

/* room_hex NULL: resign with a new key. */
static int rewrite(const char *data, const char *room_hex, uint64_t seq)
{
	char *keyp = dcr_asprintf("%s/daemon.pem", data), *evd = dcr_asprintf("%s/events", data);
	char *newd = dcr_asprintf("%s/events.new", data), *oldd = dcr_asprintf("%s/events.orig", data);
	uint8_t room[ES_ROOM_ID_BYTES], pub[32];
	all_logs a;
	dcr_key *k = NULL;
	es_store *out = NULL;
	es_event ev;
	dcr_buf repl;
	dcr_err err;
	es_options opt;
	bool decoded = false;
	int rc;

	memset(&a, 0, sizeof a);
	dcr_err_clear(&err);
	dcr_buf_init(&repl);
	if (room_hex && (rc = es_room_parse(room_hex, room)) < 0) {
		dcr_err_set(&err, rc, "not a room id: %s", room_hex);
		goto out;
	}
	if (room_hex)
		rc = dcr_key_load(keyp, &k, &err);
	else if ((rc = dcr_key_generate(&k)) == 0)
		rc = dcr_key_save(k, keyp, true, &err);
	if (rc < 0)
		goto out;
	dcr_key_public(k, pub);
	if ((rc = es_open(&a.s, evd, NULL, &err)) < 0)
		goto out;
	rc = es_rooms(a.s, keep_room, &a);
	es_close(a.s);
	a.s = NULL;
	if (rc < 0) {
		dcr_err_set(&err, rc, "reading %s", evd);
		goto out;
	}
	room_log *l = NULL;
	if (!room_hex)
		goto rebuild;
	for (size_t i = 0; i < a.n; i++)
		if (memcmp(a.r[i].id, room, ES_ROOM_ID_BYTES) == 0)
			l = &a.r[i];
	if (!l || seq >= l->n) {
		rc = dcr_err_set(&err, DCR_ENOTFOUND, "room %s has no event %llu", room_hex,
		                 (unsigned long long)seq);
		goto out;
	}
	if ((rc = es_event_decode(l->e[seq].data, l->e[seq].len, &ev, &err)) < 0)
		goto out;
	decoded = true;
	if (memcmp(ev.actor, pub, 32) != 0) {
		rc = dcr_err_set(&err, DCR_EDENIED,
		                 "event %llu (%s) is not signed by the daemon: the host cannot "
		                 "re-sign it",
		                 (unsigned long long)seq, ev.type);
		goto out;
	}
	{
		size_t off, len;
		if (body_span(ev.env, ev.env_n, &off, &len) != 0) {
			rc = dcr_err_set(&err, DCR_EFORMAT, "event %llu: body not found",
			                 (unsigned long long)seq);
			goto out;
		}
		rc = es_event_build(k, room, seq, ev.ts_ms + 1, ev.type, ev.env + off, len, &repl,
		                    &err);
		if (rc < 0)
			goto out;
	}
	dcr_buf_release(&l->e[seq]);
	l->e[seq] = repl;
	dcr_buf_init(&repl);
rebuild:
	/* the whole store again, every checkpoint signed by the daemon key */
	memset(&opt, 0, sizeof opt);
	opt.checkpoint_key = k;
	if ((rc = es_open(&out, newd, &opt, &err)) < 0)
		goto out;
	for (size_t i = 0; i < a.n; i++)
		for (size_t j = 0; j < a.r[i].n; j++) {
			uint64_t got;
			rc = es_append(out, a.r[i].id, j, a.r[i].e[j].data, a.r[i].e[j].len, &got,
			               NULL, &err);
			if (rc < 0)
				goto out;
		}
	es_close(out);
	out = NULL;
	if (rename(evd, oldd) != 0 || rename(newd, evd) != 0) {
		rc = dcr_err_set(&err, -errno, "swapping %s: %s", evd, strerror(errno));
		goto out;
	}
	if (room_hex)
		printf("rewrote event %llu (%s) of room %s and re-signed %zu rooms\n",
		       (unsigned long long)seq, ev.type, room_hex, a.n);
	else
		printf("re-signed %zu rooms with a new daemon key\n", a.n);
	rc = 0;
out:
	if (rc < 0)
		fprintf(stderr, "dcr_lying_host: %s\n", err.msg[0] ? err.msg : dcr_strerror(rc));
	if (decoded)
		es_event_release(&ev);
	es_close(out);
	for (size_t i = 0; i < a.n; i++) {
		for (size_t j = 0; j < a.r[i].n; j++)
			dcr_buf_release(&a.r[i].e[j]);
		free(a.r[i].e);
	}
	free(a.r);
	dcr_buf_release(&repl);
	dcr_key_free(k);
	free(keyp);
	free(evd);
	free(newd);
	free(oldd);
	return rc;
}

int main(int argc, char **argv)
{
	char *end;
	unsigned long long seq;

	if (argc == 3 && strcmp(argv[1], "resign") == 0)
		return rewrite(argv[2], NULL, 0) < 0 ? 1 : 0;
	if (argc != 5 || strcmp(argv[1], "rewrite") != 0) {
		fprintf(stderr, "usage: dcr_lying_host rewrite DATA_DIR ROOM SEQ\n"
		                "       dcr_lying_host resign DATA_DIR\n");
		return 2;
	}
	errno = 0;
	seq = strtoull(argv[4], &end, 10);
	if (errno || *end || !*argv[4]) {
		fprintf(stderr, "dcr_lying_host: not a sequence number: %s\n", argv[4]);
		return 2;
	}
	return rewrite(argv[2], argv[3], seq) < 0 ? 1 : 0;
}
