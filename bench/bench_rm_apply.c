/* bench_rm_apply.c: cost of the room rules.
 *
 * Measures (1) rm_def_parse of a realistic definition (JSON, validation and
 * the SQL tokenizer; no SQLite: compiling is the admission check), (2) replay of a room's log from stored
 * entries (decode + signature check + rm_apply) and (3) rm_apply alone,
 * over a log of N run.requested/run.completed pairs, and rm_describe.
 *
 * usage: bench_rm_apply [N runs, default 10000] */
#include <time.h>

#include "../room/room.h"
#include "bench_harness.h"

static const char def_fmt[] =
    "{\"format\": \"dcr.room/1\", \"name\": \"bench\",\n"
    " \"participants\": [\n"
    "  {\"email\": \"anna@bank.example\", \"key\": \"%s\", \"owner_of\": [\"bank_customers\"],"
    "   \"analyst_of\": [\"overlap\"]},\n"
    "  {\"email\": \"ian@insurer.example\", \"key\": \"%s\", \"owner_of\": "
    "[\"insurer_customers\"], \"analyst_of\": [\"overlap\", \"by_city\"]}],\n"
    " \"datasets\": [\n"
    "  {\"name\": \"bank_customers\", \"columns\": [{\"name\": \"email\", \"type\": \"string\","
    "   \"allow\": [\"join\"]}, {\"name\": \"city\", \"type\": \"string\", \"allow\": [\"group\"]},"
    "   {\"name\": \"age\", \"type\": \"integer\"}]},\n"
    "  {\"name\": \"insurer_customers\", \"columns\": [{\"name\": \"email\", \"type\": "
    "\"string\", \"allow\": [\"join\"]}, {\"name\": \"risk\", \"type\": \"integer\"}]}],\n"
    " \"computations\": [\n"
    "  {\"name\": \"overlap\", \"kind\": \"sql\", \"privacy\": {\"min_rows_aggregated\": 10},"
    "   \"query\": \"SELECT b.city, COUNT(*) AS n FROM bank_customers b JOIN insurer_customers i "
    "USING (email) GROUP BY b.city\"},\n"
    "  {\"name\": \"by_city\", \"kind\": \"sql\", \"query\": \"SELECT city, n FROM overlap\"}]}\n";

typedef struct logbuf {
	dcr_buf *e;
	uint64_t n, cap;
} logbuf;

static void emit(logbuf *l, rm_state *s, const dcr_key *k, const uint8_t *room, const char *type,
                 dcr_buf *body)
{
	dcr_err e;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 1024;
		l->e = dcr_realloc(l->e, l->cap * sizeof(dcr_buf));
	}
	dcr_buf_init(&l->e[l->n]);
	DCR_ASSERT(es_event_build(k, room, l->n, 1795608000000ull + l->n, type, body->data,
	                          body->len, &l->e[l->n], &e) == 0);
	rm_step step;
	if (rm_replay_step(s, l->e[l->n].data, l->e[l->n].len, NULL, NULL, &step) != 0) {
		rm_step_err(&step, &e);
		fprintf(stderr, "%s\n", e.msg);
		exit(1);
	}
	l->n++;
	dcr_buf_reset(body);
}

int main(int argc, char **argv)
{
	long runs = argc > 1 ? strtol(argv[1], NULL, 10) : 10000;
	dcr_key *anna, *ian, *daemon;
	uint8_t ap[32], ip[32], dp[32], room[ES_ROOM_ID_BYTES];
	dcr_err e;
	rm_state s;
	rm_step step;
	rm_def *d;
	dcr_buf body;
	logbuf l = {0};

	DCR_ASSERT(dcr_key_generate(&anna) == 0 && dcr_key_generate(&ian) == 0 &&
	           dcr_key_generate(&daemon) == 0);
	dcr_key_public(anna, ap);
	dcr_key_public(ian, ip);
	dcr_key_public(daemon, dp);
	char *as = dcr_pub_format(ap), *is = dcr_pub_format(ip);
	char *def = dcr_asprintf(def_fmt, as, is);

	int iters = 300;
	double t0 = bench_now_s();
	for (int i = 0; i < iters; i++) {
		if (rm_def_parse(def, strlen(def), &d, &e) != 0) {
			fprintf(stderr, "%s\n", e.msg);
			return 1;
		}
		rm_def_free(d);
	}
	printf("rm_def_parse (2 datasets, 2 sql computations): %.1f us\n",
	       (bench_now_s() - t0) / iters * 1e6);

	es_room_new(room);
	rm_state_init(&s, dp);
	dcr_buf_init(&body);
	rm_body_definition(&body, def);
	emit(&l, &s, anna, room, RM_EV_CREATED, &body);
	rm_body_published(&body, s.def_sha256);
	emit(&l, &s, anna, room, RM_EV_PUBLISHED, &body);
	rm_provision p = {.dataset = "bank_customers", .blob = "b1", .file = "b.csv", .rows = 1};
	rm_body_provisioned(&body, &p);
	emit(&l, &s, anna, room, RM_EV_PROVISIONED, &body);
	p.dataset = "insurer_customers";
	rm_body_provisioned(&body, &p);
	emit(&l, &s, ian, room, RM_EV_PROVISIONED, &body);
	for (long i = 0; i < runs; i++) {
		char id[33];
		snprintf(id, sizeof id, "%032lx", (unsigned long)i * 2654435761ul);
		rm_body_run_requested(&body, "overlap", id);
		emit(&l, &s, ian, room, RM_EV_RUN_REQUESTED, &body);
		rm_run_col cols[] = {{"city", CMP_STRING}, {"n", CMP_INTEGER}};
		const rm_run *q = rm_state_run(&s, id);
		rm_run r = {.id = id,
		            .computation = "overlap",
		            .result_blob = "r",
		            .rows = 12,
		            .cols = cols,
		            .ncols = 2,
		            .inputs = q->inputs,
		            .ninputs = q->ninputs};
		rm_body_run_completed(&body, &r);
		emit(&l, &s, daemon, room, RM_EV_RUN_COMPLETED, &body);
	}
	rm_state_release(&s);

	rm_state_init(&s, dp);
	t0 = bench_now_s();
	for (uint64_t i = 0; i < l.n; i++)
		DCR_ASSERT(rm_replay_step(&s, l.e[i].data, l.e[i].len, NULL, NULL, &step) == 0);
	double t = bench_now_s() - t0;
	printf("replay (decode + verify + rm_apply): %llu events in %.3f s, %.0f events/s\n",
	       (unsigned long long)l.n, t, (double)l.n / t);
	rm_state_release(&s);

	es_event *evs = dcr_calloc(l.n, sizeof(es_event));
	for (uint64_t i = 0; i < l.n; i++)
		DCR_ASSERT(es_event_decode(l.e[i].data, l.e[i].len, &evs[i], &e) == 0);
	rm_state_init(&s, dp);
	t0 = bench_now_s();
	for (uint64_t i = 0; i < l.n; i++)
		DCR_ASSERT(rm_apply(&s, &evs[i], &e) == 0);
	t = bench_now_s() - t0;
	printf("rm_apply alone: %.3f s, %.2f us/event\n", t, t / (double)l.n * 1e6);
	t0 = bench_now_s();
	for (uint64_t i = 4; i < l.n; i++)
		free(rm_describe(&s, &evs[i]));
	printf("rm_describe: %.2f us/event\n", (bench_now_s() - t0) / (double)(l.n - 4) * 1e6);

	rm_state_release(&s);
	for (uint64_t i = 0; i < l.n; i++) {
		es_event_release(&evs[i]);
		dcr_buf_release(&l.e[i]);
	}
	free(evs);
	free(l.e);
	dcr_buf_release(&body);
	free(def);
	free(as);
	free(is);
	dcr_key_free(anna);
	dcr_key_free(ian);
	dcr_key_free(daemon);
	return 0;
}
