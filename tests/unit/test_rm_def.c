/* test_rm_def.c: room definition parsing, validation and printing.
 * One valid definition (the DESIGN §4 example, completed, with real keys)
 * parses and round-trips; then one edit per validation rule, each checked
 * to fail with a message naming the field. */
#include "test_rm_common.h"

static t_fixture F;

/* Parses text that must fail; checks the message contains the needles. */
#define BAD(text, ...)                                                                             \
	do {                                                                                       \
		rm_def *d_ = NULL;                                                                 \
		dcr_err e_;                                                                        \
		dcr_err_clear(&e_);                                                                \
		int rc_ = rm_def_parse((text), strlen(text), &d_, &e_);                            \
		CHECK_FAILS(rc_, &e_, __VA_ARGS__);                                                  \
		if (getenv("RM_VERBOSE"))                                                          \
			fprintf(stderr, "ok: %s\n", e_.msg);                                       \
		CHECK(d_ == NULL);                                                                 \
		rm_def_free(d_);                                                                   \
	} while (0)

/* Parses (must succeed: a rule of replay accepts it), then the admission
 * check (rm_def_admit) must refuse it with the needles. */
#define ADMIT_BAD(text, ...)                                                                       \
	do {                                                                                       \
		rm_def *d_ = NULL;                                                                 \
		dcr_err e_;                                                                        \
		dcr_err_clear(&e_);                                                                \
		int rc_ = rm_def_parse((text), strlen(text), &d_, &e_);                            \
		CHECK(rc_ == 0);                                                                   \
		if (rc_ == 0) {                                                                    \
			rc_ = rm_def_admit(d_, &e_);                                               \
			CHECK_FAILS(rc_, &e_, __VA_ARGS__);                                        \
			if (getenv("RM_VERBOSE"))                                                  \
				fprintf(stderr, "refused at admission: %s\n", e_.msg);            \
		}                                                                                  \
		rm_def_free(d_);                                                                   \
	} while (0)

#define ADMIT_BAD_EDIT(from, to, ...)                                                              \
	do {                                                                                       \
		char *t_ = t_replace(valid, (from), (to));                                         \
		ADMIT_BAD(t_, __VA_ARGS__);                                                        \
		free(t_);                                                                          \
	} while (0)

/* Edit the valid definition once (from -> to) and expect failure. */
#define BAD_EDIT(from, to, ...)                                                                    \
	do {                                                                                       \
		char *t_ = t_replace(valid, (from), (to));                                         \
		BAD(t_, __VA_ARGS__);                                                              \
		free(t_);                                                                          \
	} while (0)

static void test_valid_roundtrip(const char *valid)
{
	rm_def *d = NULL, *d2 = NULL;
	dcr_err e;
	dcr_err_clear(&e);
	int rc = rm_def_parse(valid, strlen(valid), &d, &e);
	if (rc) {
		fprintf(stderr, "valid definition rejected: %s\n", e.msg);
		t_failures++;
		return;
	}
	CHECK(strcmp(d->name, "bank-insurer-overlap") == 0);
	CHECK(d->interactive && d->development && d->require_provisioned);
	CHECK(d->nparticipants == 2 && d->ndatasets == 3 && d->ncomputations == 5);
	CHECK(memcmp(d->participants[0].key, F.anna_pub, 32) == 0);
	CHECK(d->datasets[0].ncolumns == 4 && d->datasets[0].columns[0].format == CMP_FMT_EMAIL);
	CHECK(!d->datasets[0].columns[0].nullable && d->datasets[0].columns[1].nullable);
	CHECK(d->datasets[0].columns[2].type == CMP_INTEGER);
	CHECK(d->datasets[0].columns[3].type == CMP_FLOAT);
	/* defaults */
	CHECK(d->datasets[1].required && d->datasets[1].share_statistics);
	CHECK(d->datasets[1].columns[1].nullable);
	CHECK(d->datasets[2].kind == RM_DS_FILE && !d->datasets[2].required);
	CHECK(d->datasets[0].unit && strcmp(d->datasets[0].unit, "email") == 0);
	CHECK(d->datasets[0].columns[0].allow == CMP_ALLOW_JOIN);
	CHECK(d->datasets[0].columns[2].allow == (CMP_ALLOW_GROUP | CMP_ALLOW_AGGREGATE));
	CHECK(d->datasets[0].psrc.nunits == 1 && d->datasets[0].psrc.ncols == 4);
	/* descriptors for downstream filtered queries: overlap is filtered */
	CHECK(rm_def_computation(d, "overlap")->psrc.kind == CMP_PSRC_AGGREGATE);
	CHECK(rm_def_computation(d, "by_city")->psrc.kind == CMP_PSRC_OPAQUE);
	/* derived SQL inputs and result schemas */
	const rm_computation *ov = rm_def_computation(d, "overlap");
	CHECK(ov && ov->kind == RM_COMP_SQL && ov->min_rows_aggregated == 10);
	CHECK(ov && ov->ninputs == 2 && strcmp(ov->inputs[0], "bank_customers") == 0 &&
	      strcmp(ov->inputs[1], "insurer_customers") == 0);
	const rm_computation *bc = rm_def_computation(d, "by_city");
	CHECK(bc && bc->ninputs == 1 && strcmp(bc->inputs[0], "overlap") == 0);
	const rm_computation *sy = rm_def_computation(d, "bank_synthetic");
	CHECK(sy && sy->epsilon == 1.0 && sy->nmask == 1);
	/* result schemas come from the admission check, never from parsing */
	CHECK(ov && ov->nresult_cols == 0 && sy && sy->nresult_cols == 0);
	CHECK(rm_def_admit(d, &e) == 0);
	CHECK(ov && ov->nresult_cols == 2 && strcmp(ov->result_cols[0].name, "city") == 0 &&
	      strcmp(ov->result_cols[1].name, "n") == 0);
	CHECK(bc && bc->nresult_cols == 2 && strcmp(bc->result_cols[1].name, "twice") == 0);
	CHECK(sy && sy->nresult_cols == 4);
	CHECK(rm_def_computation(d, "churn")->nresult_cols == 0);
	CHECK(rm_def_admit(d, &e) == 0 && ov->nresult_cols == 2); /* twice: same */
	CHECK(rm_def_admit_json(valid, strlen(valid), &e) == 0);
	/* roles */
	CHECK(rm_is_owner(d, F.anna_pub, "bank_customers"));
	CHECK(!rm_is_owner(d, F.ian_pub, "bank_customers"));
	CHECK(!rm_is_owner(d, F.carl_pub, "bank_customers"));
	CHECK(rm_is_analyst(d, F.ian_pub, "churn") && !rm_is_analyst(d, F.anna_pub, "churn"));
	CHECK(rm_def_dataset(d, "nope") == NULL && rm_def_participant(d, F.carl_pub) == NULL);
	/* topological order: overlap before by_city, churn and summary_r */
	size_t order[5], pos[5];
	CHECK(rm_def_topo(d, order) == 0);
	for (size_t i = 0; i < 5; i++)
		pos[order[i]] = i;
	CHECK(pos[0] < pos[1] && pos[0] < pos[3] && pos[0] < pos[4]);
	bool used[3];
	rm_def_datasets_read(d, bc, used);
	CHECK(used[0] && used[1] && !used[2]);
	rm_def_datasets_read(d, rm_def_computation(d, "summary_r"), used);
	CHECK(used[0] && used[1] && used[2]);

	/* round trip */
	char *j1 = rm_def_to_json(d);
	rc = rm_def_parse(j1, strlen(j1), &d2, &e);
	if (rc) {
		fprintf(stderr, "printed definition rejected: %s\n%s", e.msg, j1);
		t_failures++;
	} else {
		char *j2 = rm_def_to_json(d2);
		CHECK(strcmp(j1, j2) == 0);
		CHECK(strstr(j1, "\n  \"format\": \"dcr.room/1\",\n") != NULL);
		CHECK(strstr(j1, "x-comment") == NULL);
		CHECK(d2->ncomputations == 5 && d2->computations[2].epsilon == 1.0);
		CHECK(d2->datasets[2].kind == RM_DS_FILE);
		free(j2);
	}
	free(j1);
	rm_def_free(d2);
	rm_def_free(d);
}

static void test_minimal_defaults(void)
{
	char *text = dcr_asprintf("{\"format\":\"dcr.room/1\",\"name\":\"r1\",\"participants\":"
	                          "[{\"email\":\"a@b.example\",\"key\":\"%s\"}]}",
	                          F.anna_s);
	rm_def *d = NULL;
	dcr_err e;
	CHECK(rm_def_parse(text, strlen(text), &d, &e) == 0);
	if (d) {
		CHECK(d->interactive && !d->development && d->require_provisioned);
		CHECK(strcmp(d->description, "") == 0 && d->ndatasets == 0);
	}
	rm_def_free(d);
	free(text);
}

/* Synthetic computations: mask formats (object form), rows, bounds, bins;
 * the array form takes the format from the column; printing round-trips. */
static void test_synth_fields(const char *valid)
{
	static const char *from = "\"mask\": [\"email\"], \"epsilon\": 1.0}";
	char *t = t_replace(valid, from,
	                    "\"mask\": {\"email\": \"email\", \"city\": \"postcode\", \"balance\": "
	                    "\"number\"}, \"epsilon\": 1.0, \"rows\": 500, \"bounds\": {\"age\": "
	                    "[18, 90.5]}, \"bins\": {\"age\": 8}}");
	rm_def *d = NULL, *d2 = NULL;
	dcr_err e;
	CHECK_OK(rm_def_parse(t, strlen(t), &d, &e), &e);
	const rm_computation *sy = d ? rm_def_computation(d, "bank_synthetic") : NULL;
	CHECK(sy && sy->nmask == 3 && sy->mask_object && sy->synth_rows == 500);
	if (sy) {
		cmp_column cols[4] = {{"email", CMP_STRING, CMP_FMT_EMAIL, false},
		                      {"city", CMP_STRING, CMP_FMT_NONE, true},
		                      {"age", CMP_INTEGER, CMP_FMT_NONE, true},
		                      {"balance", CMP_FLOAT, CMP_FMT_NONE, true}};
		cmp_synth_col sc[4];
		rm_computation_synth(sy, cols, 4, sc);
		CHECK(sc[0].mask == CMP_MASK_EMAIL && sc[1].mask == CMP_MASK_POSTCODE &&
		      sc[2].mask == CMP_MASK_NONE && sc[3].mask == CMP_MASK_NUMBER);
		CHECK(sc[2].has_bounds && sc[2].lo == 18 && sc[2].hi == 90.5 && sc[2].bins == 8);
		CHECK(!sc[3].has_bounds && sc[3].bins == 0);
		char *j = rm_def_to_json(d);
		CHECK(j && strstr(j, "\"postcode\"") && strstr(j, "\"rows\": 500"));
		CHECK_OK(rm_def_parse(j, strlen(j), &d2, &e), &e);
		const rm_computation *s2 = d2 ? rm_def_computation(d2, "bank_synthetic") : NULL;
		CHECK(s2 && s2->nmask == 3 && s2->nsynth_cols == 1 && s2->synth_cols[0].hi == 90.5);
		free(j);
	}
	rm_def_free(d);
	rm_def_free(d2);
	free(t);
	/* the array form: formats from the columns */
	t = t_replace(valid, from, "\"mask\": [\"email\", \"age\", \"city\"], \"epsilon\": 1.0}");
	d = NULL;
	CHECK_OK(rm_def_parse(t, strlen(t), &d, &e), &e);
	sy = d ? rm_def_computation(d, "bank_synthetic") : NULL;
	if (sy) {
		cmp_column cols[3] = {{"email", CMP_STRING, CMP_FMT_EMAIL, false},
		                      {"city", CMP_STRING, CMP_FMT_NONE, true},
		                      {"age", CMP_INTEGER, CMP_FMT_NONE, true}};
		cmp_synth_col sc[3];
		rm_computation_synth(sy, cols, 3, sc);
		CHECK(sc[0].mask == CMP_MASK_EMAIL && sc[1].mask == CMP_MASK_STRING &&
		      sc[2].mask == CMP_MASK_NUMBER);
	}
	rm_def_free(d);
	free(t);
	/* refused */
	BAD_EDIT(from, "\"mask\": {\"age\": \"iban\"}, \"epsilon\": 1.0}",
	         "computations[2].mask: format iban does not fit column \"age\" of type integer");
	BAD_EDIT(from, "\"mask\": {\"city\": \"number\"}, \"epsilon\": 1.0}",
	         "format number does not fit column \"city\"");
	BAD_EDIT(from, "\"mask\": {\"city\": \"credit_card\"}, \"epsilon\": 1.0}",
	         "computations[2].mask: column \"city\": expected a mask format");
	BAD_EDIT(from, "\"mask\": {\"mail\": \"email\"}, \"epsilon\": 1.0}",
	         "dataset bank_customers has no column \"mail\"");
	BAD_EDIT(from, "\"mask\": [], \"epsilon\": 1.0, \"rows\": 0}",
	         "computations[2].rows: expected an integer 1 to 10000000");
	BAD_EDIT(from, "\"mask\": [], \"epsilon\": 1.0, \"rows\": 1.5}", "computations[2].rows");
	BAD_EDIT(from, "\"mask\": [], \"epsilon\": 1.0, \"bounds\": {\"age\": [90, 18]}}",
	         "computations[2].bounds: column \"age\": expected [lo, hi]");
	BAD_EDIT(from, "\"mask\": [], \"epsilon\": 1.0, \"bounds\": {\"city\": [0, 1]}}",
	         "computations[2].bounds: \"city\" is not a numeric column of bank_customers");
	BAD_EDIT(from, "\"mask\": [\"age\"], \"epsilon\": 1.0, \"bins\": {\"age\": 4}}",
	         "computations[2].bins: \"age\" is not a numeric column");
	BAD_EDIT(from, "\"mask\": [], \"epsilon\": 1.0, \"bins\": {\"age\": 257}}",
	         "computations[2].bins: column \"age\": expected an integer 1 to 256");
	BAD_EDIT(from, "\"mask\": [], \"epsilon\": 1.0, \"bins\": {\"nope\": 4}}",
	         "\"nope\" is not a numeric column");
	BAD_EDIT("\"query\": \"SELECT city, n * 2 AS twice FROM overlap\"",
	         "\"query\": \"SELECT city, n * 2 AS twice FROM overlap\", \"rows\": 3",
	         "computations[1].rows: not a field of sql computations");
	/* over an upstream result: sql and synthetic results, and python or r
	 * only with declared columns (churn declares none); the columns are
	 * checked at admission */
	static const char *in = "\"input\": \"bank_customers\",\n     \"mask\": [\"email\"]";
	BAD_EDIT(in, "\"input\": \"churn\", \"mask\": []",
	         "computations[2].input: \"churn\" is not a table dataset, an sql or synthetic "
	         "computation, or a python or r computation that declares columns");
	ADMIT_BAD_EDIT(in, "\"input\": \"overlap\", \"mask\": [\"email\"]",
	               "computations[2] (\"bank_synthetic\"): mask: the result of overlap has no "
	               "column \"email\"");
	ADMIT_BAD_EDIT(in, "\"input\": \"overlap\", \"mask\": {\"n\": \"email\"}",
	               "mask: format email does not fit column \"n\" of type integer");
	ADMIT_BAD_EDIT(in, "\"input\": \"overlap\", \"mask\": [], \"bins\": {\"city\": 3}",
	               "bins: \"city\" is not a numeric column of the result of overlap");
	t = t_replace(valid, in,
	              "\"input\": \"overlap\", \"mask\": {\"city\": \"name\"}, \"bounds\": "
	              "{\"n\": [0, 100]}");
	d = NULL;
	CHECK_OK(rm_def_parse(t, strlen(t), &d, &e), &e);
	if (d) {
		CHECK_OK(rm_def_admit(d, &e), &e);
		sy = rm_def_computation(d, "bank_synthetic");
		CHECK(sy && sy->nresult_cols == 2 && strcmp(sy->result_cols[1].name, "n") == 0 &&
		      sy->result_cols[1].type == CMP_INTEGER);
	}
	rm_def_free(d);
	free(t);
}

int main(void)
{
	t_fixture_init(&F);
	char *valid = t_valid_def(&F);

	test_valid_roundtrip(valid);
	test_minimal_defaults();
	test_synth_fields(valid);

	/* duplicate names (case-insensitive, across datasets and computations) */
	BAD_EDIT("\"name\": \"by_city\"", "\"name\": \"overlap\"",
	         "computations[1].name: \"overlap\" is already the name of computations[0]");
	BAD_EDIT("\"name\": \"contracts\"", "\"name\": \"Overlap\"",
	         "computations[0].name: \"overlap\" is already the name of datasets[2]");
	BAD_EDIT("\"name\": \"age\"", "\"name\": \"CITY\"", "datasets[0].columns[2].name",
	         "columns[1]");
	/* unknown type, bad format */
	BAD_EDIT("{\"name\": \"risk\", \"type\": \"integer\",",
	         "{\"name\": \"risk\", \"type\": \"int\",",
	         "datasets[1].columns[1].type: unknown type \"int\"; expected string, integer or "
	         "float");
	BAD_EDIT("\"type\": \"integer\", \"nullable\": true,",
	         "\"type\": \"integer\", \"format\": \"date\",",
	         "datasets[0].columns[2].format: only string columns take a format");
	/* unresolved references */
	BAD_EDIT("\"owner_of\": [\"insurer_customers\"]", "\"owner_of\": [\"insurer_custmers\"]",
	         "participants[1].owner_of[0]: no dataset named \"insurer_custmers\"");
	BAD_EDIT("\"analyst_of\": [\"overlap\"]}", "\"analyst_of\": [\"overlapp\"]}",
	         "participants[0].analyst_of[0]: no computation named \"overlapp\"");
	BAD_EDIT("\"inputs\": [\"overlap\"]", "\"inputs\": [\"overlap\", \"nothing\"]",
	         "computations[3].inputs[1]: no dataset or computation named \"nothing\"");
	BAD_EDIT("\"input\": \"bank_customers\"", "\"input\": \"bank_custom\"",
	         "computations[2].input: no dataset named \"bank_custom\"");
	BAD_EDIT("\"mask\": [\"email\"]", "\"mask\": [\"mail\"]",
	         "computations[2].mask[0]: dataset bank_customers has no column \"mail\"");
	/* owners and analysts */
	BAD_EDIT("[\"bank_customers\", \"contracts\"]", "[\"bank_customers\"]",
	         "datasets[2] (\"contracts\"): no owner");
	BAD_EDIT(", \"summary_r\", \"by_city\"]", ", \"by_city\"]",
	         "computations[4] (\"summary_r\"): no analyst");
	/* keys and emails */
	{
		char *t = t_replace(valid, F.anna_s, "ed25519:AAAA");
		BAD(t, "participants[0].key: not an ed25519 public key (expected \"ed25519:\" "
		       "followed by base64 of 32 bytes that encode a curve point of large order)");
		free(t);
		/* 32 bytes that are not a point (y = 2), and y >= p */
		t = t_replace(valid, F.anna_s, "ed25519:AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
		BAD(t, "participants[0].key: not an ed25519 public key");
		free(t);
		t = t_replace(valid, F.anna_s, "ed25519:7f///////////////////////////////////////38=");
		BAD(t, "participants[0].key: not an ed25519 public key");
		free(t);
		/* the same key spelled with non-zero unused bits is refused */
		{
			char *k = dcr_strdup(F.anna_s);
			size_t n = strlen(k);
			const char *b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
			size_t v = (size_t)(strchr(b64, k[n - 2]) - b64);
			k[n - 2] = b64[v ^ 1];
			t = t_replace(valid, F.anna_s, k);
			BAD(t, "participants[0].key: not an ed25519 public key");
			free(t);
			free(k);
		}
		t = t_replace(valid, F.ian_s, F.anna_s);
		BAD(t, "participants[1].key: same key as participants[0]");
		free(t);
		t = t_replace(valid, F.anna_s, "ssh-ed25519 AAAA");
		BAD(t, "participants[0].key: not an ed25519 public key");
		free(t);
	}
	BAD_EDIT("\"anna@bank.example\"", "\"anna at bank\"",
	         "participants[0].email: \"anna at bank\" does not look like an email address");
	BAD_EDIT("\"ian@insurer.example\"", "\"ANNA@bank.example\"",
	         "participants[1].email: \"ANNA@bank.example\" is already participants[0]");
	/* cycles: between python computations, and an SQL query reading itself */
	{
		char *t =
		    t_replace(valid, "\"inputs\": [\"overlap\"]", "\"inputs\": [\"summary_r\"]");
		t = t_edit(t, "[\"overlap\", \"contracts\"]", "[\"churn\"]");
		BAD(t,
		    "computations[3] (\"churn\"): dependency cycle: churn -> summary_r -> churn");
		free(t);
	}
	BAD_EDIT("n * 2 AS twice FROM overlap", "n * 2 AS twice FROM by_city",
	         "dependency cycle: by_city -> by_city");
	/* units and column permissions (docs/room-format.md) */
	BAD_EDIT("\"unit\": \"email\",\n     \"columns\"", "\"unit\": \"mail\",\n     \"columns\"",
	         "datasets[0].unit: \"mail\" is not a column of bank_customers");
	BAD_EDIT("\"required\": false}", "\"required\": false, \"unit\": \"x\"}",
	         "datasets[2].unit: file datasets have no columns");
	BAD_EDIT("\"allow\": [\"join\"]}", "\"allow\": [\"joins\"]}",
	         "datasets[0].columns[0].allow[0]: expected \"group\", \"aggregate\", \"join\" or "
	         "\"minmax\"");
	BAD_EDIT("\"allow\": [\"join\"]}", "\"allow\": [\"join\", \"join\"]}",
	         "datasets[0].columns[0].allow[1]: \"join\" is listed twice");
	BAD_EDIT("\"allow\": [\"join\"]}", "\"allow\": \"join\"}",
	         "datasets[0].columns[0].allow: expected an array");
	/* the default is deny: without "group", city cannot be a group key */
	BAD_EDIT("\"nullable\": true, \"allow\": [\"group\"]}", "\"nullable\": true}",
	         "computations[0] (\"overlap\"): privacy filter: offset 7 (near \"b\"): column "
	         "bank_customers.city may not be used outside an aggregate in a filtered query "
	         "(its \"allow\" list lacks \"group\")");
	/* SQL against the declared schemas */
	/* a filtered query is parsed by our own parser: a rule */
	BAD_EDIT("GROUP BY b.city", "GROUP BY b.citi",
	         "computations[0] (\"overlap\"): privacy filter: offset 99 (near \"b\"): "
	         "bank_customers has no column \"citi\"");
	ADMIT_BAD_EDIT("GROUP BY b.city", "GROUP BY b.city HAVING abs() > 0",
	               "computations[0] (\"overlap\"): SQL error: ", "wrong number of arguments");
	ADMIT_BAD_EDIT("SELECT city, n * 2", "SELECT city, m * 2",
	               "computations[1] (\"by_city\"): SQL error: ", "no such column: m");
	BAD_EDIT("SELECT b.city, COUNT(*) AS n FROM bank_customers b JOIN insurer_customers "
	         "i USING (email) GROUP BY b.city",
	         "SELECT b.city, i.risk AS n FROM bank_customers b JOIN insurer_customers i "
	         "USING (email)",
	         "computations[0] (\"overlap\"): privacy filter: ", "must aggregate");
	ADMIT_BAD_EDIT("SELECT city, n * 2", "SELECT sqlite_version(), city, n * 2",
	               "computations[1] (\"by_city\"): ");
	{
		/* the admission check with its prefix, as rm_apply words definition errors */
		char *t = t_replace(valid, "GROUP BY b.city", "GROUP BY b.city HAVING abs() > 0");
		dcr_err e;
		CHECK_FAILS(rm_def_admit_json(t, strlen(t), &e), &e,
		          "definition: computations[0] (\"overlap\"): SQL error: wrong number");
		CHECK_FAILS(rm_def_admit_json("{", 1, &e), &e, "definition: line 1");
		free(t);
	}
	BAD_EDIT("FROM overlap\"}", "FROM overlap JOIN contracts\"}",
	         "computations[1] (\"by_city\"): the query reads file dataset contracts");
	BAD_EDIT("FROM overlap\"}", "FROM churn\"}",
	         "computations[1] (\"by_city\"): the query reads the result of python computation "
	         "churn, which declares no \"columns\"");
	/* python/r: columns (a tabular result SQL may read), logs, limits */
	{
		const char *churn = "\"script\": \"print(1)\\n\"}";
		char *t = t_replace(
		    valid, churn,
		    "\"script\": \"print(1)\\n\", \"logs\": \"on_error\", \"limits\": "
		    "{\"wall_seconds\": 5, \"memory_mb\": 512}, \"columns\": [{\"name\": "
		    "\"city\", \"type\": \"string\"}, {\"name\": \"score\", \"type\": "
		    "\"float\", \"nullable\": false}]}");
		t = t_edit(t, "FROM overlap\"}", "FROM churn\"}");
		t = t_edit(t, "SELECT city, n * 2 AS twice", "SELECT city, score * 2 AS twice");
		rm_def *d = NULL, *d2 = NULL;
		dcr_err e;
		CHECK_OK(rm_def_parse(t, strlen(t), &d, &e), &e);
		if (d) {
			const rm_computation *c = rm_def_computation(d, "churn");
			CHECK(c->ncolumns == 2 && c->columns[1].type == CMP_FLOAT &&
			      !c->columns[1].nullable && c->logs == RM_LOGS_ON_ERROR &&
			      c->limits.wall_seconds == 5 && c->limits.memory_mb == 512 &&
			      c->limits.cpu_seconds == 0);
			CHECK(c->psrc.kind == CMP_PSRC_OPAQUE);
			CHECK_OK(rm_def_admit(d, &e), &e);
			CHECK(c->nresult_cols == 2 && strcmp(c->result_cols[0].name, "city") == 0);
			const rm_computation *bc = rm_def_computation(d, "by_city");
			CHECK(bc->nresult_cols == 2 && bc->result_cols[1].type == CMP_FLOAT);
			char *j = rm_def_to_json(d);
			CHECK(strstr(j, "\"logs\": \"on_error\"") && strstr(j, "\"wall_seconds\": 5"));
			CHECK_OK(rm_def_parse(j, strlen(j), &d2, &e), &e);
			if (d2) {
				char *j2 = rm_def_to_json(d2);
				CHECK(strcmp(j, j2) == 0);
				free(j2);
			}
			free(j);
			rm_def_free(d2);
		}
		rm_def_free(d);
		/* a filtered query may not read a script's result (opaque) */
		char *t2 = t_replace(t, "FROM churn\"}", "FROM churn\", \"privacy\": "
		                                             "{\"min_rows_aggregated\": 5}}");
		BAD(t2, "computations[1] (\"by_city\"): privacy filter");
		free(t2);
		free(t);
	}
	BAD_EDIT("\"script\": \"print(1)\\n\"}", "\"script\": \"print(1)\\n\", \"logs\": \"sometimes\"}",
	         "computations[3].logs: unknown value \"sometimes\"; expected never, on_error or "
	         "always");
	BAD_EDIT("\"script\": \"print(1)\\n\"}",
	         "\"script\": \"print(1)\\n\", \"limits\": {\"wall_seconds\": 0}}",
	         "computations[3].limits.wall_seconds: expected an integer from 1 to 86400");
	BAD_EDIT("\"script\": \"print(1)\\n\"}",
	         "\"script\": \"print(1)\\n\", \"limits\": {\"memory_mb\": 1.5}}",
	         "computations[3].limits.memory_mb: expected an integer");
	BAD_EDIT("\"script\": \"print(1)\\n\"}",
	         "\"script\": \"print(1)\\n\", \"limits\": {\"memory_mb\": 15}}",
	         "computations[3].limits.memory_mb: expected an integer from 16 to 262144");
	BAD_EDIT("\"script\": \"print(1)\\n\"}",
	         "\"script\": \"print(1)\\n\", \"limits\": {\"processes\": 4097}}",
	         "computations[3].limits.processes: expected an integer from 1 to 4096");
	BAD_EDIT("\"script\": \"print(1)\\n\"}",
	         "\"script\": \"print(1)\\n\", \"limits\": {\"wall\": 1}}",
	         "computations[3].limits: unknown field \"wall\"");
	BAD_EDIT("\"script\": \"print(1)\\n\"}", "\"script\": \"print(1)\\n\", \"columns\": []}",
	         "computations[3].columns: a tabular result needs at least one column");
	BAD_EDIT("\"script\": \"print(1)\\n\"}",
	         "\"script\": \"print(1)\\n\", \"columns\": [{\"name\": \"a\", \"type\": "
	         "\"integer\", \"allow\": [\"group\"]}]}",
	         "computations[3].columns[0].allow: the result of a python computation is never "
	         "read by a filtered query");
	BAD_EDIT("\"script\": \"print(1)\\n\"}",
	         "\"script\": \"print(1)\\n\", \"columns\": [{\"name\": \"a\", \"type\": "
	         "\"integer\"}, {\"name\": \"A\", \"type\": \"string\"}]}",
	         "computations[3].columns[1].name: \"A\" is already the name of columns[0]");
	BAD_EDIT("\"query\": \"SELECT city, n * 2 AS twice FROM overlap\"}",
	         "\"query\": \"SELECT city, n * 2 AS twice FROM overlap\", \"logs\": \"always\"}",
	         "computations[1].logs: not a field of sql computations");
	BAD_EDIT("\"kind\": \"sql\",\n     \"query\"",
	         "\"kind\": \"sql\", \"inputs\": [\"overlap\"],\n     \"query\"",
	         "computations[1].inputs: not a field of sql computations");
	BAD_EDIT("\"script\": \"x <- 1\"", "\"query\": \"x <- 1\"",
	         "computations[4].query: not a field of r computations");
	BAD_EDIT("\"epsilon\": 1.0", "\"epsilon\": 0",
	         "computations[2].epsilon: expected a number");
	BAD_EDIT("\"min_rows_aggregated\": 10", "\"min_rows_aggregated\": -1",
	         "computations[0].privacy.min_rows_aggregated: expected an integer");
	/* kinds and their fields */
	BAD_EDIT("\"kind\": \"file\"", "\"kind\": \"blob\"",
	         "datasets[2].kind: unknown kind \"blob\"; expected table or file");
	BAD_EDIT("\"kind\": \"file\"", "\"kind\": \"file\", \"columns\": []",
	         "datasets[2].columns: file datasets have no columns");
	BAD_EDIT("\"kind\": \"file\"", "\"kind\": \"table\"", "datasets[2].columns: missing");
	BAD_EDIT(
	    "\"kind\": \"r\"", "\"kind\": \"julia\"",
	    "computations[4].kind: unknown kind \"julia\"; expected sql, python, r or synthetic");
	BAD_EDIT("\"script\": \"x <- 1\"", "\"inputs2\": 1", "computations[4]: unknown field");
	BAD_EDIT(", \"script\": \"x <- 1\"", "", "computations[4].script: missing (required)");
	BAD_EDIT(", \"epsilon\": 1.0", "", "computations[2].epsilon: missing");
	BAD_EDIT("\"min_rows_aggregated\": 10", "\"min_rows\": 10",
	         "computations[0].privacy: unknown field \"min_rows\"");
	BAD_EDIT("\"input\": \"bank_customers\"", "\"input\": \"contracts\"",
	         "computations[2].input: \"contracts\" is not a table dataset");
	BAD_EDIT("[\"bank_customers\", \"contracts\"]", "[\"bank_customers\", \"bank_customers\"]",
	         "participants[0].owner_of[1]: \"bank_customers\" is listed twice");
	BAD_EDIT("\"owner_of\": [\"insurer_customers\"]", "\"owner_of\": \"insurer_customers\"",
	         "participants[1].owner_of: expected an array");
	BAD_EDIT("\"email\": \"ian@insurer.example\", ", "", "participants[1].email: missing");
	BAD_EDIT("\"participants\": [", "\"participants\": [], \"x-p\": [",
	         "participants: at least one is needed");
	BAD_EDIT("\"type\": \"string\", \"nullable\": false, \"format\": \"email\"",
	         "\"type\": \"string\", \"format\": \"phone\"",
	         "datasets[0].columns[0].format: unknown format \"phone\"");
	/* names */
	BAD_EDIT("\"name\": \"contracts\"", "\"name\": \"con-tracts\"",
	         "datasets[2].name: \"con-tracts\" is not a valid name");
	BAD_EDIT("\"name\": \"contracts\"", "\"name\": \"sqlite_x\"",
	         "datasets[2].name: \"sqlite_x\" is not a valid name");
	BAD_EDIT("\"bank-insurer-overlap\"", "\"bank insurer\"",
	         "name: \"bank insurer\" is not a valid room name");
	/* JSON syntax, duplicate keys, unknown fields */
	BAD_EDIT("\"name\": \"bank-insurer-overlap\",", "\"name\": \"bank-insurer-overlap\"",
	         "line 4, column ");
	BAD_EDIT("\"description\":", "\"name\": \"again\", \"description\":", "line 4, column ",
	         "duplicate");
	BAD_EDIT("\"x-comment\"", "\"nmae\"", "unknown field \"nmae\" (did you mean \"name\"?");
	/* JSON rules of docs/room-format.md that are ours, not the library's */
	BAD_EDIT("\"ignored\"", "\"a\\u0000b\"", "line ");
	BAD_EDIT("\"ignored\"", "\"\\ud800\"", "line ");
	BAD_EDIT("\"ignored\"", "9223372036854775808", "line ");
	BAD_EDIT("\"ignored\"", "1e400", "line ");
	BAD_EDIT("\"ignored\"", "NaN", "line ");
	{
		/* nesting: at most 32 levels of [ and { (the root object is one),
		 * brackets inside strings do not count */
		char deep[128], deeper[128];
		memset(deep, 0, sizeof deep);
		memset(deeper, 0, sizeof deeper);
		for (int i = 0; i < 31; i++)
			deep[i] = '[', deep[31 + i] = ']';
		for (int i = 0; i < 32; i++)
			deeper[i] = '[', deeper[32 + i] = ']';
		char *t = t_replace(valid, "\"ignored\"", deep);
		rm_def *d = NULL;
		dcr_err e;
		CHECK(rm_def_parse(t, strlen(t), &d, &e) == 0);
		rm_def_free(d);
		free(t);
		BAD_EDIT("\"ignored\"", deeper, "nested deeper than 32 levels");
		t = t_replace(valid, "\"ignored\"", "[\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"{\"]");
		CHECK(rm_def_parse(t, strlen(t), &d, &e) == 0);
		rm_def_free(d);
		free(t);
	}
	{
		/* min_rows_aggregated: 0 to 1,000,000,000 */
		char *t = t_replace(valid, "\"min_rows_aggregated\": 10",
		                    "\"min_rows_aggregated\": 1000000000");
		rm_def *d = NULL;
		dcr_err e;
		CHECK(rm_def_parse(t, strlen(t), &d, &e) == 0);
		rm_def_free(d);
		free(t);
	}
	BAD_EDIT("\"min_rows_aggregated\": 10", "\"min_rows_aggregated\": 1000000001",
	         "privacy.min_rows_aggregated: expected an integer from 0 to 1000000000");
	BAD_EDIT("\"min_rows_aggregated\": 10", "\"min_rows_aggregated\": 10.0",
	         "privacy.min_rows_aggregated: expected an integer");
	/* the tokenizer: names in strings and comments are not read; quoted
	 * identifiers are */
	BAD_EDIT("FROM overlap\"", "FROM \\\"x\\\" -- overlap\\n WHERE 'overlap' = 1\"",
	         "computations[1] (\"by_city\"): the query reads no dataset or computation");
	{
		char *t = t_replace(valid, "FROM overlap\"", "FROM [OVERLAP] /* unclosed\"");
		rm_def *d = NULL;
		dcr_err e;
		CHECK(rm_def_parse(t, strlen(t), &d, &e) == 0);
		const rm_computation *bc = d ? rm_def_computation(d, "by_city") : NULL;
		CHECK(bc && bc->ninputs == 1 && strcmp(bc->inputs[0], "overlap") == 0);
		rm_def_free(d);
		free(t);
	}
	BAD_EDIT("FROM overlap\"", "FROM overlap WHERE city = 'open\"",
	         "computations[1] (\"by_city\"): unterminated string literal");
	BAD_EDIT("\"nullable\": false, \"format\"", "\"nulable\": false, \"format\"",
	         "datasets[0].columns[0]: unknown field \"nulable\" (did you mean \"nullable\"?");
	BAD_EDIT("\"x-comment\"", "\"owners\"",
	         "unknown field \"owners\" (expected format, name, description, settings, "
	         "participants, datasets, computations;");
	BAD_EDIT("\"require_provisioned\": true", "\"require_provisioned\": 1",
	         "settings.require_provisioned: expected true or false");
	BAD_EDIT("\"dcr.room/1\"", "\"dcr.room/2\"", "format: unknown format \"dcr.room/2\"");
	BAD("[]", "must be a JSON object");
	BAD("", "line 1, column ");
	/* limits */
	{
		char *longdesc = dcr_malloc(DCR_RM_DESCRIPTION_BYTES_MAX + 2);
		memset(longdesc, 'a', DCR_RM_DESCRIPTION_BYTES_MAX + 1);
		longdesc[DCR_RM_DESCRIPTION_BYTES_MAX + 1] = 0;
		BAD_EDIT("Customer overlap between a bank and an insurer", longdesc,
		         "description: 4097 bytes, at most 4096 allowed");
		free(longdesc);
		dcr_buf many;
		dcr_buf_init(&many);
		for (unsigned i = 0; i <= DCR_RM_PARTICIPANTS_MAX; i++)
			dcr_buf_printf(&many, "%s{}", i ? "," : "");
		char *t = dcr_asprintf("{\"format\":\"dcr.room/1\",\"name\":\"r\",\"participants\":"
		                       "[%s]}",
		                       dcr_buf_cstr(&many));
		BAD(t, "participants: 65 entries, at most 64 allowed");
		free(t);
		dcr_buf_release(&many);
	}
	{
		size_t n = DCR_RM_DEF_BYTES_MAX + 1;
		char *big = dcr_malloc(n + 1);
		memset(big, ' ', n);
		big[n] = 0;
		BAD(big, "exceeds the limit");
		free(big);
	}

	free(valid);
	t_fixture_release(&F);
	if (t_failures)
		fprintf(stderr, "%d check(s) failed\n", t_failures);
	return t_failures ? 1 : 0;
}
