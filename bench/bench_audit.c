/* bench_audit.c: how fast the offline auditor verifies a big room.
 *
 * Builds a valid export of N events (default 100,000) in memory: a room is
 * created and published, both owners provision, then analysts request runs
 * that the daemon completes and the analyst retrieves, over and over, all
 * signed with real keys and all passing rm_apply. Then measures:
 *   - the machine's raw Ed25519 verification rate on one core (the limit);
 *   - au_verify (decode, signatures, replay, Merkle root, checkpoint) with
 *     1 and 2 signature threads, in events/s;
 *   - au_export_decode alone.
 * Usage: bench_audit [EVENTS] [-o FILE]  (FILE: also write the export, to
 * time `dcr audit verify FILE` on it). Results go to docs/benchmarks.md. */
#include <pthread.h>
#include <time.h>

#include "../base/base.h"
#include "../eventstore/eventstore.h"
#include "../room/room.h"
#include "../tools/audit_core.h"

static dcr_key *kd, *ka, *ki;
static uint8_t pd[32];
static uint8_t room[ES_ROOM_ID_BYTES];

typedef struct blog {
	dcr_buf all;
	size_t *off, *len;
	uint64_t n, cap;
	uint64_t ts;
} blog;

static void add(blog *l, const dcr_key *k, const char *type, dcr_buf *body)
{
	dcr_err err;
	size_t before = l->all.len;
	DCR_ASSERT(l->n < l->cap);
	l->ts += 7;
	if (es_event_build(k, room, l->n, l->ts, type, body->data, body->len, &l->all, &err)) {
		fprintf(stderr, "es_event_build: %s\n", err.msg);
		exit(1);
	}
	l->off[l->n] = before;
	l->len[l->n] = l->all.len - before;
	l->n++;
	dcr_buf_reset(body);
}

static char *definition(void)
{
	uint8_t pa[32], pi[32];
	dcr_key_public(ka, pa);
	dcr_key_public(ki, pi);
	char *fa = dcr_pub_format(pa), *fi = dcr_pub_format(pi);
	char *json = dcr_asprintf(
	    "{\"format\": \"dcr.room/1\", \"name\": \"bench-audit\",\n"
	    " \"settings\": {\"require_provisioned\": true},\n"
	    " \"participants\": [\n"
	    "  {\"email\": \"anna@bank.example\", \"key\": \"%s\",\n"
	    "   \"owner_of\": [\"bank_customers\"], \"analyst_of\": [\"overlap\"]},\n"
	    "  {\"email\": \"ian@insurer.example\", \"key\": \"%s\",\n"
	    "   \"owner_of\": [\"insurer_customers\"], \"analyst_of\": [\"overlap\"]}],\n"
	    " \"datasets\": [\n"
	    "  {\"name\": \"bank_customers\", \"columns\": [{\"name\": \"email\", \"type\": "
	    "\"string\"}]},\n"
	    "  {\"name\": \"insurer_customers\", \"columns\": [{\"name\": \"email\", \"type\": "
	    "\"string\"}]}],\n"
	    " \"computations\": [\n"
	    "  {\"name\": \"overlap\", \"kind\": \"sql\",\n"
	    "   \"query\": \"SELECT COUNT(*) AS n FROM bank_customers b JOIN insurer_customers "
	    "i USING (email)\"}]}\n",
	    fa, fi);
	free(fa);
	free(fi);
	return json;
}

static void build(blog *l, uint64_t n)
{
	dcr_buf b;
	uint8_t h[32];
	char id[33];
	char *def = definition();
	rm_provision p;
	rm_run r;

	dcr_buf_init(&b);
	rm_body_definition(&b, def);
	add(l, ka, RM_EV_CREATED, &b);
	dcr_sha256(def, strlen(def), h);
	rm_body_published(&b, h);
	add(l, ka, RM_EV_PUBLISHED, &b);
	memset(&p, 0, sizeof(p));
	p.dataset = "bank_customers";
	p.blob = "0f3c9a1b2c3d4e5f60718293a4b5c6d7";
	p.bytes = 123456;
	p.rows = 1000;
	p.file = "bank.csv";
	memset(p.sha256, 0x3f, 32);
	memset(p.stats_sha256, 0x11, 32);
	rm_body_provisioned(&b, &p);
	add(l, ka, RM_EV_PROVISIONED, &b);
	p.dataset = "insurer_customers";
	p.file = "insurer.csv";
	rm_body_provisioned(&b, &p);
	add(l, ki, RM_EV_PROVISIONED, &b);
	memset(&r, 0, sizeof(r));
	r.computation = "overlap";
	r.result_blob = "9a8b7c6d5e4f30211203f4e5d6c7b8a9";
	r.rows = 12;
	r.result_bytes = 345;
	r.duration_ms = 40;
	rm_run_col col = {"n", CMP_INTEGER};
	rm_run_input in[2] = {{.dataset = "bank_customers", .present = true},
	                      {.dataset = "insurer_customers", .present = true}};
	memcpy(in[0].sha256, p.sha256, 32);
	memcpy(in[1].sha256, p.sha256, 32);
	r.cols = &col;
	r.ncols = 1;
	r.inputs = in;
	r.ninputs = 2;
	memset(r.result_sha256, 0x77, 32);
	for (uint64_t i = 0; l->n < n; i++) {
		const dcr_key *analyst = i % 2 ? ki : ka;
		snprintf(id, sizeof(id), "%032llx", (unsigned long long)i);
		r.id = id;
		rm_body_run_requested(&b, "overlap", id);
		add(l, analyst, RM_EV_RUN_REQUESTED, &b);
		if (l->n >= n)
			break;
		rm_body_run_completed(&b, &r);
		add(l, kd, RM_EV_RUN_COMPLETED, &b);
		if (l->n >= n)
			break;
		rm_body_retrieved(&b, id);
		add(l, analyst, RM_EV_RETRIEVED, &b);
	}
	dcr_buf_release(&b);
	free(def);
}

typedef struct raw_job {
	const uint8_t *const *ents;
	const size_t *len;
	const uint8_t (*actors)[32];
	uint64_t lo, hi;
} raw_job;

static void *raw_worker(void *arg)
{
	raw_job *j = arg;
	for (uint64_t i = j->lo; i < j->hi; i++) {
		size_t env_n = j->len[i] - DCR_ED25519_SIG_BYTES;
		DCR_ASSERT(dcr_verify(j->actors[i], DCR_DOMAIN_EVENT, j->ents[i], env_n,
		                      j->ents[i] + env_n) == 0);
	}
	return NULL;
}

/* CPU time of the whole process (all threads), ms: robust against other
 * load on a shared machine, unlike wall time. */
static uint64_t cpu_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static double secs(uint64_t ms)
{
	return (double)ms / 1000.0;
}

int main(int argc, char **argv)
{
	uint64_t n = 100000;
	const char *outp = NULL;
	blog l;
	dcr_buf file;
	dcr_err err;
	es_checkpoint cp;
	rm_state st;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
			outp = argv[++i];
		else
			n = strtoull(argv[i], NULL, 10);
	}
	if (n < 5 || n > AU_EVENTS_MAX) {
		fprintf(stderr, "usage: bench_audit [EVENTS >= 5] [-o FILE]\n");
		return 2;
	}
	DCR_ASSERT(dcr_key_generate(&kd) == 0);
	DCR_ASSERT(dcr_key_generate(&ka) == 0);
	DCR_ASSERT(dcr_key_generate(&ki) == 0);
	dcr_key_public(kd, pd);
	es_room_new(room);

	memset(&l, 0, sizeof(l));
	dcr_buf_init(&l.all);
	l.cap = n;
	l.off = dcr_calloc(n, sizeof(size_t));
	l.len = dcr_calloc(n, sizeof(size_t));
	l.ts = 1795000000000ull;
	uint64_t t0 = dcr_mono_ms();
	build(&l, n);
	uint64_t t_build = dcr_mono_ms() - t0;

	/* Checkpoint and export (the participants come from a replay). */
	const uint8_t **ents = dcr_calloc(n, sizeof(*ents));
	uint8_t(*leaves)[32] = dcr_malloc(n * 32);
	for (uint64_t i = 0; i < n; i++) {
		ents[i] = l.all.data + l.off[i];
		es_leaf_hash(ents[i], l.len[i], leaves[i]);
	}
	memset(&cp, 0, sizeof(cp));
	memcpy(cp.room, room, sizeof(room));
	cp.size = n;
	es_merkle_root((const uint8_t(*)[32])leaves, n, cp.root);
	cp.ts_ms = l.ts;
	DCR_ASSERT(es_checkpoint_sign(&cp, kd) == 0);
	rm_state_init(&st, pd);
	for (uint64_t i = 0; i < 2; i++) {
		es_event ev;
		DCR_ASSERT(au_check_entry(room, i, ents[i], l.len[i], &ev, &err) == 0);
		DCR_ASSERT(au_apply(&st, &ev, i, &err) == 0);
		es_event_release(&ev);
	}
	dcr_buf_init(&file);
	au_export_encode(&file, room, pd, &cp, ents, l.len, n, &st);
	rm_state_release(&st);
	if (outp && dcr_write_file_atomic(outp, file.data, file.len, 0644, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}

	/* The limit: raw signature verification on one core (actors taken
	 * from a decode done before timing). */
	uint64_t nsig = n < 20000 ? n : 20000;
	uint8_t(*actors)[32] = dcr_malloc(nsig * 32);
	for (uint64_t i = 0; i < nsig; i++) {
		es_event ev;
		DCR_ASSERT(es_event_decode(ents[i], l.len[i], &ev, &err) == 0);
		memcpy(actors[i], ev.actor, 32);
		es_event_release(&ev);
	}
	t0 = dcr_mono_ms();
	uint64_t c0 = cpu_ms();
	for (uint64_t i = 0; i < nsig; i++) {
		size_t env_n = l.len[i] - DCR_ED25519_SIG_BYTES;
		DCR_ASSERT(
		    dcr_verify(actors[i], DCR_DOMAIN_EVENT, ents[i], env_n, ents[i] + env_n) == 0);
	}
	uint64_t t_sig = dcr_mono_ms() - t0;
	uint64_t c_sig = cpu_ms() - c0;
	double sig_rate = (double)nsig / secs(t_sig ? t_sig : 1);
	double sig_cpu_rate = (double)nsig / secs(c_sig ? c_sig : 1);
	/* The same on two threads: what two cores give through OpenSSL. */
	raw_job rj[2];
	pthread_t rt[2];
	t0 = dcr_mono_ms();
	for (int t = 0; t < 2; t++) {
		rj[t] = (raw_job){ents, l.len, (const uint8_t(*)[32])actors, nsig * t / 2,
		                  nsig * (t + 1) / 2};
		DCR_ASSERT(pthread_create(&rt[t], NULL, raw_worker, &rj[t]) == 0);
	}
	for (int t = 0; t < 2; t++)
		pthread_join(rt[t], NULL);
	uint64_t t_sig2 = dcr_mono_ms() - t0;
	double sig_rate2 = (double)nsig / secs(t_sig2 ? t_sig2 : 1);
	free(actors);

	au_export x;
	t0 = dcr_mono_ms();
	DCR_ASSERT(au_export_decode(file.data, file.len, &x, &err) == 0);
	uint64_t t_decode = dcr_mono_ms() - t0;

	/* Sequential part: decode + rm_apply, no signatures. */
	rm_state_init(&st, pd);
	t0 = dcr_mono_ms();
	for (uint64_t i = 0; i < n; i++) {
		es_event ev;
		DCR_ASSERT(es_event_decode(ents[i], l.len[i], &ev, &err) == 0);
		if (au_apply(&st, &ev, i, &err)) {
			fprintf(stderr, "replay: %s\n", err.msg);
			return 1;
		}
		es_event_release(&ev);
	}
	uint64_t t_replay = dcr_mono_ms() - t0;
	rm_state_release(&st);
	/* Leaf hashes and root. */
	t0 = dcr_mono_ms();
	for (uint64_t i = 0; i < n; i++)
		es_leaf_hash(ents[i], l.len[i], leaves[i]);
	uint8_t root[32];
	es_merkle_root((const uint8_t(*)[32])leaves, n, root);
	uint64_t t_merkle = dcr_mono_ms() - t0;

	printf("bench_audit: %llu events, export %.1f MiB, built and signed in %.2f s\n",
	       (unsigned long long)n, (double)file.len / 1048576.0, secs(t_build));
	printf("  ed25519 verify, 1 core:    %8.0f /s wall, %8.0f per CPU-second (dcr_verify "
	       "over %llu envelopes)\n",
	       sig_rate, sig_cpu_rate, (unsigned long long)nsig);
	printf("  ed25519 verify, 2 threads: %8.0f /s (%.2fx one core)\n", sig_rate2,
	       sig_rate2 / sig_rate);
	printf("  export decode:             %8.2f s\n", secs(t_decode));
	printf("  replay (decode + rm_apply, no signatures): %.0f events/s (%.2f s)\n",
	       (double)n / secs(t_replay ? t_replay : 1), secs(t_replay));
	printf("  leaf hashes + Merkle root: %.0f events/s (%.2f s)\n",
	       (double)n / secs(t_merkle ? t_merkle : 1), secs(t_merkle));
	for (unsigned t = 1; t <= 2; t++) {
		au_verify_opts o;
		au_report rep;
		memset(&o, 0, sizeof(o));
		o.threads = t;
		t0 = dcr_mono_ms();
		uint64_t cv0 = cpu_ms();
		int rc = au_verify(&x, &o, &rep, &err);
		uint64_t dt = dcr_mono_ms() - t0;
		uint64_t dc = cpu_ms() - cv0;
		if (rc) {
			fprintf(stderr, "verify failed: %s\n", err.msg);
			return 1;
		}
		printf("  au_verify, %u thread%s:      %8.0f events/s (%.2f s wall, %.2f s CPU, "
		       "%.0f events per CPU-second; %.2fx the 1-core signature rate)\n",
		       t, t > 1 ? "s" : " ", (double)n / secs(dt ? dt : 1), secs(dt), secs(dc),
		       (double)n / secs(dc ? dc : 1), ((double)n / secs(dt ? dt : 1)) / sig_rate);
	}
	au_export_release(&x);
	dcr_buf_release(&file);
	free(ents);
	free(leaves);
	free(l.off);
	free(l.len);
	dcr_buf_release(&l.all);
	dcr_key_free(kd);
	dcr_key_free(ka);
	dcr_key_free(ki);
	return 0;
}
