/* test_dmn_rooms.c: rooms and events through dcrd and the client library:
 * create and publish, list and resolve, fetch events and replay them with
 * rm_apply, and the refusals: an event signed by another key than the
 * connection's (forged), the same event submitted twice (replayed), a
 * stale clock, a client signing as the daemon, a non-participant reading a
 * room. Positions: cl_submit's guess of its next position, a stale one
 * refused with the room's size before the signature check, to readers
 * only. Checkpoints are signed by the daemon key and inclusion proofs
 * verify against them. */
#include <pthread.h>

#include "test_dmn_common.h"

struct collect {
	rm_state st;
	uint64_t n;
	int rc;
	dcr_err err;
};

static int collect_one(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	struct collect *c = ctx;

	CHECK(seq == c->n);
	c->n++;
	if (c->rc == 0) {
		rm_step step;
		c->rc = rm_replay_step(&c->st, entry, n, NULL, NULL, &step);
		if (c->rc)
			rm_step_err(&step, &c->err);
	}
	return 0;
}

/* The entry of event seq, fetched. */
struct one {
	dcr_buf b;
};

static int keep_one(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	struct one *o = ctx;

	(void)seq;
	dcr_buf_reset(&o->b);
	dcr_buf_append(&o->b, entry, n);
	return 0;
}

static void test_lifecycle(td *t)
{
	cl_conn *a = td_connect(t, t->anna), *i = td_connect(t, t->ian),
	        *x = td_connect(t, t->carl);
	char *json = td_room_json(t, "overlap-room");
	uint8_t room[ES_ROOM_ID_BYTES], got[ES_ROOM_ID_BYTES];
	cl_room_info *rooms = NULL;
	size_t n = 0;
	struct collect col;
	dcr_err err;
	es_checkpoint cp;

	CHECK(a && i && x);
	if (!a || !i || !x)
		goto out;
	CHECK_OK(td_room_publish(a, json, room, &err), &err);

	/* Both participants list it; carl does not see it. */
	CHECK_OK(cl_rooms(i, &rooms, &n, &err), &err);
	CHECK(n == 1);
	if (n == 1) {
		CHECK(strcmp(rooms[0].name, "overlap-room") == 0);
		CHECK(strcmp(rooms[0].status, "published") == 0);
		CHECK(rooms[0].size == 2);
	}
	cl_rooms_free(rooms, n);
	CHECK_OK(cl_rooms(x, &rooms, &n, &err), &err);
	CHECK(n == 0);
	cl_rooms_free(rooms, n);
	CHECK_OK(cl_room_resolve(i, "overlap-room", got, &err), &err);
	CHECK(memcmp(got, room, sizeof room) == 0);
	CHECK_ERR(cl_room_resolve(x, "overlap-room", got, &err), DCR_ENOTFOUND, &err, NULL);

	/* Events, replayed on the client side with the daemon's key. */
	memset(&col, 0, sizeof col);
	rm_state_init(&col.st, cl_daemon_key(i));
	CHECK_OK(cl_events(i, room, 0, ES_SEQ_ANY, collect_one, &col, &err), &err);
	CHECK(col.n == 2);
	CHECK_OK(col.rc, &col.err);
	CHECK(col.st.status == RM_PUBLISHED);
	rm_state_release(&col.st);
	/* carl may not read them. */
	memset(&col, 0, sizeof col);
	rm_state_init(&col.st, cl_daemon_key(x));
	CHECK_ERR(cl_events(x, room, 0, ES_SEQ_ANY, collect_one, &col, &err), DCR_ENOTFOUND, &err,
	          "no room");
	CHECK(col.n == 0);
	rm_state_release(&col.st);

	/* Checkpoint: signed by the daemon, covers the whole room. */
	CHECK_OK(cl_checkpoint(i, room, &cp, &err), &err);
	CHECK(cp.size == 2);
	CHECK(memcmp(cp.key, cl_daemon_key(i), 32) == 0);
	CHECK_OK(es_checkpoint_verify(&cp, &err), &err);
	{
		uint8_t proof[64][32], leaf[32];
		size_t pn = 0;
		struct one e;
		dcr_buf_init(&e.b);
		CHECK_OK(cl_inclusion_proof(i, room, 1, cp.size, proof, &pn, &err), &err);
		CHECK(pn == 1);
		CHECK_OK(cl_events(i, room, 1, 2, keep_one, &e, &err), &err);
		es_leaf_hash(e.b.data, e.b.len, leaf);
		CHECK(es_verify_inclusion(1, cp.size, leaf, proof, pn, cp.root) == 0);
		leaf[0] ^= 1;
		CHECK(es_verify_inclusion(1, cp.size, leaf, proof, pn, cp.root) != 0);
		dcr_buf_release(&e.b);
	}
	CHECK_ERR(cl_checkpoint(x, room, &cp, &err), DCR_ENOTFOUND, &err, NULL);
	/* The log grows: the new checkpoint is consistent with the old one. */
	{
		es_checkpoint cp2;
		uint8_t proof[64][32];
		size_t pn = 0;
		dcr_buf body;
		dcr_buf_init(&body);
		rm_body_stopped(&body, "consistency check");
		CHECK_OK(cl_submit(a, room, RM_EV_STOPPED, body.data, body.len, NULL, &err), &err);
		dcr_buf_release(&body);
		CHECK_OK(cl_checkpoint(i, room, &cp2, &err), &err);
		CHECK(cp2.size == cp.size + 1);
		CHECK_OK(es_checkpoint_verify(&cp2, &err), &err);
		CHECK_OK(cl_consistency_proof(i, room, cp.size, cp2.size, proof, &pn, &err), &err);
		CHECK(pn > 0);
		CHECK(es_verify_consistency(cp.size, cp2.size, cp.root, cp2.root, proof, pn) == 0);
		proof[0][3] ^= 1;
		CHECK(es_verify_consistency(cp.size, cp2.size, cp.root, cp2.root, proof, pn) != 0);
		CHECK_ERR(cl_consistency_proof(x, room, 1, 2, proof, &pn, &err), DCR_ENOTFOUND,
		          &err, NULL);
		CHECK(cl_consistency_proof(i, room, 2, 99, proof, &pn, &err) < 0);
	}
out:
	free(json);
	cl_close(a);
	cl_close(i);
	cl_close(x);
}

static int submit_raw(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const dcr_buf *entry,
                      dcr_err *err)
{
	proto_map m;
	dcr_buf args;
	char hex[ES_ROOM_HEX_BYTES];
	int rc;

	es_room_format(room, hex);
	proto_map_init(&m);
	dcr_buf_init(&args);
	dcr_mpw_str(proto_map_key(&m, "room"), hex);
	dcr_mpw_bin(proto_map_key(&m, "entry"), entry->data, entry->len);
	proto_map_encode(&m, &args);
	proto_map_release(&m);
	rc = cl_call(c, "submit", args.data, args.len, NULL, NULL, err);
	dcr_buf_release(&args);
	return rc;
}

static uint64_t size_of(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES])
{
	cl_room_info *rooms = NULL;
	size_t n = 0, k;
	uint64_t size = UINT64_MAX;
	char hex[ES_ROOM_HEX_BYTES];
	dcr_err err;

	es_room_format(room, hex);
	if (cl_rooms(c, &rooms, &n, &err) < 0)
		return UINT64_MAX;
	for (k = 0; k < n; k++)
		if (strcmp(rooms[k].id, hex) == 0)
			size = rooms[k].size;
	cl_rooms_free(rooms, n);
	return size;
}

static void test_refusals(td *t)
{
	cl_conn *a = td_connect(t, t->anna), *i = td_connect(t, t->ian);
	char *json0 = td_room_json(t, "refusals");
	const char *key = "\"require_provisioned\": true";
	char *at = strstr(json0, key);
	/* Runs may be requested before provisioning here. */
	char *json = dcr_asprintf("%.*s\"require_provisioned\": false%s", (int)(at - json0), json0,
	                          at + strlen(key));

	free(json0);
	uint8_t room[ES_ROOM_ID_BYTES];
	struct one last;
	dcr_buf body, entry;
	dcr_key *fake_daemon = NULL;
	uint64_t size;
	char run[33];
	dcr_err err;

	dcr_buf_init(&last.b);
	dcr_buf_init(&body);
	dcr_buf_init(&entry);
	CHECK(a && i);
	if (!a || !i)
		goto out;
	CHECK_OK(td_room_publish(a, json, room, &err), &err);
	size = size_of(a, room);
	CHECK(size == 2);

	/* Forged: ian's connection submits an event signed by anna. */
	rm_body_run_requested(&body, "doubled", "0123456789abcdef0123456789abcdef");
	CHECK_OK(es_event_build(t->anna, room, size, dcr_now_ms(), RM_EV_RUN_REQUESTED, body.data,
	                        body.len, &entry, &err),
	         &err);
	CHECK_ERR(submit_raw(i, room, &entry, &err), DCR_EDENIED, &err, "another key");
	CHECK(size_of(a, room) == size);

	/* A corrupted signature. */
	entry.data[entry.len - 5] ^= 0x40;
	CHECK_ERR(submit_raw(a, room, &entry, &err), DCR_ESIG, &err, NULL);
	entry.data[entry.len - 5] ^= 0x40;

	/* Replayed: the same entry twice. The first is accepted... */
	CHECK_OK(submit_raw(a, room, &entry, &err), &err);
	/* (the daemon may already have appended the run's outcome: the run
	 * needs no data here and can finish within milliseconds) */
	uint64_t after = size_of(a, room);
	CHECK(after == size + 1 || after == size + 2);
	/* ...the second is refused and changes nothing. */
	CHECK_ERR(submit_raw(a, room, &entry, &err), DCR_ESEQ, &err, "replayed");
	CHECK(size_of(a, room) == size + 1 || size_of(a, room) == size + 2);
	/* Also replaying an older event at its old position fails. */
	CHECK_OK(cl_events(a, room, 1, 2, keep_one, &last, &err), &err);
	CHECK_ERR(submit_raw(a, room, &last.b, &err), DCR_ESEQ, &err, NULL);

	/* A clock far off. */
	size = size_of(a, room);
	dcr_buf_reset(&body);
	dcr_buf_reset(&entry);
	rm_body_run_requested(&body, "overlap", "11111111111111111111111111111111");
	CHECK_OK(es_event_build(t->ian, room, size, dcr_now_ms() - 3600 * 1000, RM_EV_RUN_REQUESTED,
	                        body.data, body.len, &entry, &err),
	         &err);
	CHECK_ERR(submit_raw(i, room, &entry, &err), DCR_EINVALID, &err, "clock");

	/* The room's rules: carl cannot run; ian may not run doubled. */
	CHECK_ERR(cl_run(i, room, "doubled", run, &err), DCR_EDENIED, &err,
	          "is not an analyst of computation doubled");
	/* the rule's reason alone: no "seq N (type): " for the client to parse */
	CHECK(strncmp(err.msg, "seq ", 4) != 0);
	{
		cl_conn *x = td_connect(t, t->carl);
		CHECK(x != NULL);
		if (x) {
			CHECK(cl_run(x, room, "overlap", run, &err) < 0);
			cl_close(x);
		}
	}

	/* An event for another room than the one named. */
	{
		uint8_t other[ES_ROOM_ID_BYTES];
		es_room_new(other);
		CHECK_ERR(submit_raw(a, other, &entry, &err), DCR_EINVALID, &err, NULL);
	}

	/* A client cannot create daemon events (run.completed signed by
	 * itself is refused by the room's rules; signed as the daemon needs
	 * the daemon's key, which the client does not have). */
	DCR_ASSERT(dcr_key_generate(&fake_daemon) == 0);
	dcr_buf_reset(&body);
	dcr_buf_reset(&entry);
	rm_body_run_failed(&body, "0123456789abcdef0123456789abcdef", "doubled", "sql error");
	CHECK_OK(es_event_build(t->anna, room, size_of(a, room), dcr_now_ms(), RM_EV_RUN_FAILED,
	                        body.data, body.len, &entry, &err),
	         &err);
	CHECK(submit_raw(a, room, &entry, &err) < 0);
out:
	dcr_key_free(fake_daemon);
	dcr_buf_release(&last.b);
	dcr_buf_release(&body);
	dcr_buf_release(&entry);
	free(json);
	cl_close(a);
	cl_close(i);
}

/* Concurrent writers on one room: every submit lands (cl_submit retries
 * on ESEQ), the daemon's own run events interleave, and the log replays. */
struct writer {
	td *t;
	const uint8_t *room;
	int ok;
	char last[33];
};

#define WRITERS    4
#define PER_WRITER 10

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	cl_conn *c = td_connect(w->t, w->t->anna);
	dcr_err err;

	if (!c)
		return NULL;
	for (int k = 0; k < PER_WRITER; k++) {
		if (cl_run(c, w->room, "doubled", w->last, &err) == 0)
			w->ok++;
		else
			fprintf(stderr, "cl_run: %s\n", err.msg);
	}
	cl_close(c);
	return NULL;
}

static void test_concurrent(td *t)
{
	cl_conn *a = td_connect(t, t->anna);
	char *json0 = td_room_json(t, "concurrent");
	const char *key = "\"require_provisioned\": true";
	char *at = strstr(json0, key);
	char *json = dcr_asprintf("%.*s\"require_provisioned\": false%s", (int)(at - json0), json0,
	                          at + strlen(key));
	struct writer w[WRITERS];
	pthread_t th[WRITERS];
	uint8_t room[ES_ROOM_ID_BYTES];
	struct collect col;
	uint64_t t0;
	dcr_err err;
	int total = 0;

	free(json0);
	CHECK(a != NULL);
	if (!a)
		goto out;
	CHECK_OK(td_room_publish(a, json, room, &err), &err);
	for (int k = 0; k < WRITERS; k++) {
		w[k] = (struct writer){t, room, 0, ""};
		pthread_create(&th[k], NULL, writer_main, &w[k]);
	}
	for (int k = 0; k < WRITERS; k++) {
		pthread_join(th[k], NULL);
		total += w[k].ok;
	}
	CHECK(total == WRITERS * PER_WRITER);
	/* Wait until every run has its outcome: 2 + 2 events per run. */
	t0 = dcr_mono_ms();
	while (size_of(a, room) < 2 + 2u * WRITERS * PER_WRITER && dcr_mono_ms() - t0 < 120000)
		usleep(20000);
	CHECK(size_of(a, room) == 2 + 2u * WRITERS * PER_WRITER);
	memset(&col, 0, sizeof col);
	rm_state_init(&col.st, cl_daemon_key(a));
	CHECK_OK(cl_events(a, room, 0, ES_SEQ_ANY, collect_one, &col, &err), &err);
	CHECK_OK(col.rc, &col.err);
	CHECK(col.st.nruns == WRITERS * PER_WRITER);
	for (size_t k = 0; k < col.st.nruns; k++)
		CHECK(col.st.runs[k].state == RM_RUN_DONE);
	rm_state_release(&col.st);
out:
	free(json);
	cl_close(a);
}

/* wait: wakes on an append, times out otherwise. */
struct waiter {
	td *t;
	const uint8_t *room;
	uint64_t size, got, ms;
	int rc;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	cl_conn *c = td_connect(w->t, w->t->ian);
	uint64_t t0 = dcr_mono_ms();
	dcr_err err;

	w->rc = c ? cl_wait(c, w->room, w->size, 20000, &w->got, &err) : -1;
	w->ms = dcr_mono_ms() - t0;
	cl_close(c);
	return NULL;
}

static void test_wait(td *t)
{
	cl_conn *a = td_connect(t, t->anna), *x = td_connect(t, t->carl);
	char *json = td_room_json(t, "waiting");
	uint8_t room[ES_ROOM_ID_BYTES];
	uint64_t size, got = 0, t0;
	struct waiter w;
	pthread_t th;
	dcr_buf body;
	dcr_err err;

	dcr_buf_init(&body);
	CHECK(a && x);
	if (!a || !x)
		goto out;
	CHECK_OK(td_room_publish(a, json, room, &err), &err);
	size = size_of(a, room);
	/* nothing happens: back after the timeout with the same size */
	t0 = dcr_mono_ms();
	CHECK_OK(cl_wait(a, room, size, 300, &got, &err), &err);
	CHECK(got == size);
	CHECK(dcr_mono_ms() - t0 >= 250);
	/* already beyond: at once */
	t0 = dcr_mono_ms();
	CHECK_OK(cl_wait(a, room, size - 1, 10000, &got, &err), &err);
	CHECK(got == size && dcr_mono_ms() - t0 < 2000);
	/* an append wakes a waiter */
	w = (struct waiter){t, room, size, 0, 0, -1};
	pthread_create(&th, NULL, waiter_main, &w);
	usleep(300 * 1000);
	rm_body_stopped(&body, "done waiting");
	CHECK_OK(cl_submit(a, room, RM_EV_STOPPED, body.data, body.len, NULL, &err), &err);
	pthread_join(th, NULL);
	CHECK(w.rc == 0);
	CHECK(w.got == size + 1);
	CHECK(w.ms < 10000);
	/* carl may not wait on the room */
	CHECK_ERR(cl_wait(x, room, 0, 100, &got, &err), DCR_ENOTFOUND, &err, NULL);
out:
	dcr_buf_release(&body);
	free(json);
	cl_close(a);
	cl_close(x);
}

/* Occurrences of needle in dcrd's log. */
static size_t log_count(td *t, const char *needle)
{
	char *log = td_log_text(t);
	size_t n = 0;

	for (const char *p = log; p && (p = strstr(p, needle)) != NULL; p++)
		n++;
	free(log);
	return n;
}

/* submit_raw keeping the response: *size gets the "size" the daemon sent
 * with the error (UINT64_MAX if none). */
static int submit_raw_size(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const dcr_buf *entry,
                           uint64_t *size, dcr_err *err)
{
	proto_map m;
	dcr_buf args, rb;
	dcr_mp_doc *d = NULL;
	char hex[ES_ROOM_HEX_BYTES];
	int rc;

	*size = UINT64_MAX;
	es_room_format(room, hex);
	proto_map_init(&m);
	dcr_buf_init(&args);
	dcr_buf_init(&rb);
	dcr_mpw_str(proto_map_key(&m, "room"), hex);
	dcr_mpw_bin(proto_map_key(&m, "entry"), entry->data, entry->len);
	proto_map_encode(&m, &args);
	proto_map_release(&m);
	rc = cl_call(c, "submit", args.data, args.len, &rb, NULL, err);
	if (rc < 0 && rb.len && proto_frame_parse(rb.data, rb.len, &d, NULL) == 0)
		dcr_mp_u64(dcr_mp_get(dcr_mp_root(d), "size"), size);
	dcr_mp_doc_free(d);
	dcr_buf_release(&rb);
	dcr_buf_release(&args);
	return rc;
}

/* Positions (docs/protocol.md, submit): cl_submit signs for the position
 * after its own last event without asking, and a stale position is refused
 * with the room's size before any signature check, to readers only. */
static void test_positions(td *t)
{
	cl_conn *a = td_connect(t, t->anna), *a2 = td_connect(t, t->anna),
	        *i = td_connect(t, t->ian), *x = td_connect(t, t->carl);
	char *json = td_room_json(t, "positions");
	uint8_t room[ES_ROOM_ID_BYTES];
	char hex[ES_ROOM_HEX_BYTES], size_line[96], eseq_line[128];
	dcr_buf body, entry;
	uint64_t seq = 0, size = 0;
	size_t asked;
	dcr_err err;

	dcr_buf_init(&body);
	dcr_buf_init(&entry);
	CHECK(a && a2 && i && x);
	if (!a || !a2 || !i || !x)
		goto out;
	CHECK_OK(cl_room_create(a, json, room, &err), &err);
	es_room_format(room, hex);
	snprintf(size_line, sizeof size_line, " size room=%s ", hex);
	snprintf(eseq_line, sizeof eseq_line, " submit room.draft_saved room=%s ESEQ", hex);
	rm_body_definition(&body, json);

	/* the first submit of a connection asks the size; the next do not */
	asked = log_count(t, size_line);
	CHECK_OK(cl_submit(a, room, RM_EV_SAVED, body.data, body.len, &seq, &err), &err);
	CHECK(seq == 1);
	CHECK(log_count(t, size_line) == asked + 1);
	CHECK_OK(cl_submit(a, room, RM_EV_SAVED, body.data, body.len, &seq, &err), &err);
	CHECK_OK(cl_submit(a, room, RM_EV_SAVED, body.data, body.len, &seq, &err), &err);
	CHECK(seq == 3);
	CHECK(log_count(t, size_line) == asked + 1);
	/* another connection appends: a's guess is stale, refused with the
	 * size, and the retry at that size lands, still without asking */
	CHECK_OK(cl_submit(a2, room, RM_EV_SAVED, body.data, body.len, &seq, &err), &err);
	CHECK(seq == 4);
	CHECK(log_count(t, size_line) == asked + 2);
	CHECK(log_count(t, eseq_line) == 0);
	CHECK_OK(cl_submit(a, room, RM_EV_SAVED, body.data, body.len, &seq, &err), &err);
	CHECK(seq == 5);
	CHECK(log_count(t, size_line) == asked + 2);
	CHECK(log_count(t, eseq_line) == 1);

	/* a stale position: ESEQ with the size, before the signature check
	 * (a corrupted signature there is refused the same way) */
	CHECK_OK(es_event_build(t->anna, room, 2, dcr_now_ms(), RM_EV_SAVED, body.data, body.len,
	                        &entry, &err),
	         &err);
	CHECK_ERR(submit_raw_size(a, room, &entry, &size, &err), DCR_ESEQ, &err,
	          "event seq 2 but the room is at 6");
	CHECK(size == 6);
	entry.data[entry.len - 5] ^= 0x40;
	CHECK_ERR(submit_raw_size(a, room, &entry, &size, &err), DCR_ESEQ, &err, NULL);
	CHECK(size == 6);
	/* at the current position the signature is checked */
	dcr_buf_reset(&entry);
	CHECK_OK(es_event_build(t->anna, room, 6, dcr_now_ms(), RM_EV_SAVED, body.data, body.len,
	                        &entry, &err),
	         &err);
	entry.data[entry.len - 5] ^= 0x40;
	CHECK_ERR(submit_raw_size(a, room, &entry, &size, &err), DCR_ESIG, &err, NULL);
	CHECK(size == UINT64_MAX);
	/* a participant who may not save the draft still reads the room... */
	dcr_buf_reset(&entry);
	CHECK_OK(es_event_build(t->ian, room, 3, dcr_now_ms(), RM_EV_SAVED, body.data, body.len,
	                        &entry, &err),
	         &err);
	CHECK_ERR(submit_raw_size(i, room, &entry, &size, &err), DCR_ESEQ, &err, NULL);
	CHECK(size == 6);
	/* ...but a key in no room learns nothing: no room, no size */
	dcr_buf_reset(&entry);
	CHECK_OK(es_event_build(t->carl, room, 3, dcr_now_ms(), RM_EV_SAVED, body.data, body.len,
	                        &entry, &err),
	         &err);
	CHECK_ERR(submit_raw_size(x, room, &entry, &size, &err), DCR_ENOTFOUND, &err, "no room");
	CHECK(size == UINT64_MAX);
	CHECK(size_of(a, room) == 6);
out:
	dcr_buf_release(&body);
	dcr_buf_release(&entry);
	free(json);
	cl_close(a);
	cl_close(a2);
	cl_close(i);
	cl_close(x);
}

int main(void)
{
	static td t; /* the atexit cleanup reads it after main returns */

	td_init(&t);
	if (td_start(&t, NULL) < 0)
		return 1;
	test_lifecycle(&t);
	test_refusals(&t);
	test_positions(&t);
	test_concurrent(&t);
	test_wait(&t);
	CHECK(td_stop(&t, SIGTERM) == 0);
	CHECK(td_log_has(&t, "anna@bank.example submit room.created room="));
	if (t_failures) {
		char *log = td_log_text(&t);
		fprintf(stderr, "---- dcrd log ----\n%s", log);
		free(log);
	}
	td_cleanup();
	return t_failures ? 1 : 0;
}
