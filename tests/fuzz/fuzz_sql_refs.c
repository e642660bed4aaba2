/* fuzz_sql_refs.c: queries are hostile input too. A room definition
 * carries SQL written by its creator; compute/ must tokenize it
 * (cmp_sql_refs, cmp_sql_join_columns), check it (cmp_sql_check: one
 * SELECT, compiles, reads only the inputs, aggregates under the privacy
 * filter) and run it (cmp_sql_run) without crashing whatever the text.
 *
 * Two tables: t (id integer, name string, score float) and u (email
 * string, risk float); the names the room knows are t, u and two names of
 * computations. The minimum row count of the privacy filter (0 or 5) comes
 * from the data. Oracles:
 * - dependency analysis is sound: if cmp_sql_refs says the query does not
 *   name t (or u), then the query checks against the other table alone
 *   exactly when it checks against both (the room derives a computation's
 *   inputs from cmp_sql_refs, so a table read without being named would be
 *   a hidden dependency);
 * - an accepted query has 1..DCR_SQL_COLS_MAX named result columns, and
 *   runs over small prepared tables (two rows each) within tight limits
 *   without crashing (its result may be an error: time, memory). */
#include "../../compute/compute.h"
#include "fuzz.h"

static const cmp_column t_cols[] = {
    {"id", CMP_INTEGER, CMP_FMT_NONE, false},
    {"name", CMP_STRING, CMP_FMT_NONE, true},
    {"score", CMP_FLOAT, CMP_FMT_NONE, true},
};
static const cmp_column u_cols[] = {
    {"email", CMP_STRING, CMP_FMT_EMAIL, false},
    {"risk", CMP_FLOAT, CMP_FMT_NONE, true},
};
static const char t_csv[] = "id,name,score\n1,alpha,0.5\n2,,\n";
static const char u_csv[] = "email,risk\na@b.example,1.5\nc@d.example,\n";

static cmp_input inputs[2]; /* t, u */
static dcr_buf images[2];
static bool ready;

typedef struct reader {
	const char *p;
	size_t n, at;
} reader;

static int read_mem(void *ctx, void *buf, size_t cap)
{
	reader *r = ctx;
	size_t k = r->n - r->at < cap ? r->n - r->at : cap;

	memcpy(buf, r->p + r->at, k);
	r->at += k;
	return (int)k;
}

static void setup(void)
{
	const char *csv[2] = {t_csv, u_csv};
	dcr_err err;
	int i;

	inputs[0].name = "t";
	inputs[0].schema.cols = t_cols;
	inputs[0].schema.ncols = sizeof t_cols / sizeof t_cols[0];
	inputs[1].name = "u";
	inputs[1].schema.cols = u_cols;
	inputs[1].schema.ncols = sizeof u_cols / sizeof u_cols[0];
	for (i = 0; i < 2; i++) {
		reader r = {csv[i], strlen(csv[i]), 0};

		dcr_buf_init(&images[i]);
		if (cmp_prepare(&inputs[i].schema, inputs[i].name, read_mem, &r, &images[i],
		                &err) != 0) {
			fprintf(stderr, "fuzz_sql_refs: setup: %s\n", err.msg);
			abort();
		}
	}
	ready = true;
}

static int check(const char *q, const cmp_input *in, size_t n, long long min_rows, cmp_result *res)
{
	cmp_input local[2];
	dcr_err err;
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		local[i] = in[i];
		local[i].image = NULL;
		local[i].image_n = 0;
	}
	rc = cmp_sql_check(q, local, n, min_rows, res, &err);
	if (rc != 0)
		FUZZ_CHECK(err.code == rc && err.msg[0] != '\0');
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"t", "u", "overlap", "by_city"};
	bool used[4], jused[3];
	long long min_rows = (fuzz_hash(data, size) & 1) ? 5 : 0;
	cmp_result res;
	dcr_err err;
	char *q;
	int rc, rc_both;

	if (!ready)
		setup();
	q = dcr_malloc(size + 1);
	memcpy(q, data, size);
	q[size] = '\0';
	cmp_result_init(&res);

	rc = cmp_sql_refs(q, names, 4, used, &err);
	if (rc != 0) {
		FUZZ_CHECK(err.code == rc && err.msg[0] != '\0');
		goto out;
	}
	(void)cmp_sql_join_columns(q, &inputs[0].schema, jused, &err);
	{
		/* the filtered subset's parser (a rule of rm_apply: it runs on
		 * every replay) in both modes, with units: never a crash, and
		 * the same verdict and message twice */
		static const cmp_pcol tp[] = {{"id", CMP_ALLOW_ALL}, {"name", CMP_ALLOW_GROUP},
		                              {"score", CMP_ALLOW_AGGREGATE}};
		static const cmp_pcol up[] = {{"email", CMP_ALLOW_JOIN}, {"risk", CMP_ALLOW_MINMAX}};
		static const char *const tu[] = {"id"}, *const uu[] = {"email"};
		cmp_psource src[3] = {{"t", CMP_PSRC_TABLE, tp, 3, tu, 1, NULL},
		                      {"u", CMP_PSRC_TABLE, up, 2, uu, 1, NULL},
		                      {"overlap", CMP_PSRC_AGGREGATE, NULL, 0, NULL, 0, NULL}};
		for (int proj = 0; proj < 2; proj++) {
			cmp_pquery pq;
			dcr_err e1, e2;
			int r1 = cmp_pquery_parse(q, src, 3, proj, &pq, &e1);
			if (r1 == 0) {
				FUZZ_CHECK(pq.nfrom >= 1 && pq.nfrom <= 3);
				FUZZ_CHECK(!proj || pq.nunits == pq.nfrom);
				cmp_pquery_release(&pq);
			} else {
				FUZZ_CHECK(e1.code == r1 && e1.msg[0] != '\0');
			}
			int r2 = cmp_pquery_parse(q, src, 3, proj, &pq, &e2);
			FUZZ_CHECK(r1 == r2 && (r1 == 0 || strcmp(e1.msg, e2.msg) == 0));
			if (r2 == 0)
				cmp_pquery_release(&pq);
		}
	}

	rc_both = check(q, inputs, 2, min_rows, &res);
	if (rc_both == 0) {
		FUZZ_CHECK(res.ncols >= 1 && res.ncols <= DCR_SQL_COLS_MAX);
		for (size_t i = 0; i < res.ncols; i++)
			FUZZ_CHECK(res.cols[i].name != NULL);
	}
	/* a table the query does not name must not matter */
	for (int drop = 0; drop < 2; drop++) {
		if (used[drop])
			continue;
		rc = check(q, &inputs[1 - drop], 1, min_rows, NULL);
		if ((rc == 0) != (rc_both == 0)) {
			fprintf(stderr,
			        "fuzz_sql_refs: cmp_sql_refs says the query does not name %s, "
			        "yet it checks %s with %s and %s without it\n",
			        names[drop], rc_both ? "fails" : "passes", names[drop],
			        rc ? "fails" : "passes");
			abort();
		}
	}
	if (rc_both == 0) {
		cmp_sql_limits lim = {.time_ms = 1000,
		                      .memory_bytes = 64u << 20,
		                      .rows_max = 1000,
		                      .bytes_max = 1u << 20};
		cmp_input run_in[2] = {inputs[0], inputs[1]};
		cmp_result out;

		run_in[0].image = images[0].data;
		run_in[0].image_n = images[0].len;
		run_in[1].image = images[1].data;
		run_in[1].image_n = images[1].len;
		cmp_result_init(&out);
		rc = cmp_sql_run(q, run_in, 2, min_rows, &lim, &out, &err);
		if (rc == 0)
			FUZZ_CHECK(out.ncols == res.ncols);
		else
			FUZZ_CHECK(err.code == rc && err.msg[0] != '\0');
		cmp_result_release(&out);
	}
out:
	cmp_result_release(&res);
	free(q);
	return 0;
}
