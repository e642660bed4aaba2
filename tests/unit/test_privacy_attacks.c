/* test_privacy_attacks.c: the catalogue of attacks on the privacy filter
 * (issue 10; docs/privacy.md, "Attacks and their outcome"), tried the way
 * an attacker would, against a real dcrd.
 *
 * The room: k = 10, a 204-row bank table (unit email) holding one victim
 * row (victim@bank.example, age 95, balance 987654.32), and a 30-row
 * policies table (unit email) owned by ian. Every attack is either refused
 * when the definition is parsed (rm_def_parse, i.e. rm_apply: dcrd refuses
 * room.created, which the test also checks for each one), or it runs and
 * no row of its result is about the victim. For the error leak, the
 * victim's bytes must be in no event of the log (which every participant
 * reads), not in dcrd's log, and not in the run status either participant
 * gets. */
#include <dirent.h>

#include "test_dmn_common.h"

#define VICTIM_EMAIL "victim@bank.example"
#define VICTIM_BALANCE "987654.32"

/* The room with one extra computation (or none): name, analyst role and
 * query of the attack. The other computations are the accepted attacks
 * that run below. */
static char *room_json(const td *t, const char *extra)
{
	return dcr_asprintf(
	    "{\"format\": \"dcr.room/1\", \"name\": \"attacks\",\n"
	    " \"participants\": [\n"
	    "  {\"email\": \"anna@bank.example\", \"key\": \"%s\", \"owner_of\": [\"bank\"],\n"
	    "   \"analyst_of\": [\"leaky\", \"overflow\", \"multiply\", \"down\", \"diff_all\", "
	    "\"diff_young\","
	    "%s \"by_city\"]},\n"
	    "  {\"email\": \"ian@insurer.example\", \"key\": \"%s\", \"owner_of\": [\"policies\"],\n"
	    "   \"analyst_of\": [\"up\"]}],\n"
	    " \"datasets\": [\n"
	    "  {\"name\": \"bank\", \"unit\": \"email\", \"columns\": [\n"
	    "    {\"name\": \"email\", \"type\": \"string\", \"nullable\": false, \"allow\": "
	    "[\"join\"]},\n"
	    "    {\"name\": \"name\", \"type\": \"string\"},\n"
	    "    {\"name\": \"age\", \"type\": \"integer\", \"allow\": [\"group\", "
	    "\"aggregate\"]},\n"
	    "    {\"name\": \"city\", \"type\": \"string\", \"allow\": [\"group\"]},\n"
	    "    {\"name\": \"balance\", \"type\": \"float\", \"allow\": [\"aggregate\"]},\n"
	    "    {\"name\": \"points\", \"type\": \"integer\", \"allow\": [\"aggregate\"]}]},\n"
	    "  {\"name\": \"policies\", \"unit\": \"email\", \"columns\": [\n"
	    "    {\"name\": \"email\", \"type\": \"string\", \"allow\": [\"join\"]},\n"
	    "    {\"name\": \"kind\", \"type\": \"string\", \"allow\": [\"group\"]}]}],\n"
	    " \"computations\": [\n"
	    /* 1: the error leak, without a filter (the analyst may read rows
	     * anyway; the error class must still carry no data) */
	    "  {\"name\": \"leaky\", \"kind\": \"sql\", \"query\": \"SELECT city, COUNT(*) FROM "
	    "bank GROUP BY city HAVING json_extract('{}', (SELECT group_concat(email||'='||balance, "
	    "';') FROM bank WHERE age > 90)) IS NULL\"},\n"
	    /* a filtered query that fails on the victim's row only */
	    "  {\"name\": \"overflow\", \"kind\": \"sql\", \"privacy\": {\"min_rows_aggregated\": "
	    "10}, \"query\": \"SELECT city, SUM(points) AS s FROM bank GROUP BY city\"},\n"
	    /* 2: row multiplication with a second dataset */
	    "  {\"name\": \"multiply\", \"kind\": \"sql\", \"privacy\": {\"min_rows_aggregated\": "
	    "10}, \"query\": \"SELECT b.age, COUNT(*) AS n, SUM(b.balance) AS s FROM bank b CROSS "
	    "JOIN policies p GROUP BY b.age ORDER BY b.age\"},\n"
	    /* 5: an unfiltered upstream (analyst ian) showing rows with their
	     * unit, cross-joined by a filtered downstream (analyst anna) */
	    "  {\"name\": \"up\", \"kind\": \"sql\", \"query\": \"SELECT b.email, b.age, b.balance "
	    "FROM bank b\"},\n"
	    "  {\"name\": \"down\", \"kind\": \"sql\", \"privacy\": {\"min_rows_aggregated\": 10}, "
	    "\"query\": \"SELECT u.age, COUNT(*) AS n, SUM(u.balance) AS s FROM up u CROSS JOIN "
	    "policies p GROUP BY u.age ORDER BY u.age\"},\n"
	    /* 6: differencing, still possible (documented; the DP aggregates) */
	    "  {\"name\": \"diff_all\", \"kind\": \"sql\", \"privacy\": {\"min_rows_aggregated\": "
	    "10}, \"query\": \"SELECT SUM(balance) AS s FROM bank WHERE city = 'Berlin'\"},\n"
	    "  {\"name\": \"diff_young\", \"kind\": \"sql\", \"privacy\": {\"min_rows_aggregated\": "
	    "10}, \"query\": \"SELECT SUM(balance) AS s FROM bank WHERE city = 'Berlin' AND age <= "
	    "90\"},\n"
	    "%s"
	    /* an honest query */
	    "  {\"name\": \"by_city\", \"kind\": \"sql\", \"privacy\": {\"min_rows_aggregated\": "
	    "10}, \"query\": \"SELECT city, COUNT(*) AS n, AVG(balance) AS avg_balance FROM bank "
	    "GROUP BY city ORDER BY city\"}]}\n",
	    t->anna_s, extra ? " \"attack\"," : "", t->ian_s, extra ? extra : "");
}

struct attack {
	const char *what;  /* the attack of the issue */
	const char *query; /* a filtered computation "attack" */
	const char *upstream; /* an unfiltered computation "attack_up" it reads, or NULL */
	const char *refusal;  /* what the definition error must say */
};

static const struct attack refused[] = {
    {"1. an error that quotes data, under the filter",
     "SELECT city, COUNT(*) FROM bank GROUP BY city HAVING json_extract('{}', (SELECT "
     "group_concat(email||'='||balance, ';') FROM bank WHERE age > 90)) IS NULL",
     NULL, "function json_extract() is not allowed in a filtered query"},
    {"2. row multiplication by a generated table",
     "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<10) SELECT email, "
     "name, balance FROM bank, n GROUP BY email",
     NULL, "WITH (common table expressions) is not allowed"},
    {"2. row multiplication by a self cross join",
     "SELECT a.city, COUNT(*) FROM bank a, bank b GROUP BY a.city", NULL,
     "bank is read twice (a self-join"},
    {"2. row multiplication by a self join with aliases",
     "SELECT a.age, SUM(b.balance) FROM bank a JOIN bank b ON a.email = b.email GROUP BY "
     "a.age",
     NULL, "bank is read twice"},
    {"3. max of a column not allowed minmax", "SELECT city, max(balance) FROM bank GROUP BY city",
     NULL, "column bank.balance may not be used in MAX()"},
    {"3. min of a column not allowed minmax", "SELECT min(balance) FROM bank", NULL,
     "column bank.balance may not be used in MIN()"},
    {"3. group_concat", "SELECT city, group_concat(email) FROM bank GROUP BY city", NULL,
     "group_concat() is not allowed in a filtered query"},
    {"3. json_group_array", "SELECT city, json_group_array(balance) FROM bank GROUP BY city",
     NULL, "json_group_array() is not allowed in a filtered query"},
    {"3. a scalar subquery in the select list",
     "SELECT city, (SELECT balance FROM bank WHERE age > 90) AS b, COUNT(*) FROM bank GROUP BY "
     "city",
     NULL, "subqueries are not allowed in a filtered query"},
    {"3. bare columns beside an aggregate (the victim's whole row)",
     "SELECT email, name, balance, max(age) FROM bank", NULL,
     "column bank.email may not be used outside an aggregate"},
    {"3. a bare allowed column beside an aggregate", "SELECT city, age, COUNT(*) FROM bank GROUP BY city",
     NULL, "column bank.age in the select list is neither aggregated nor a GROUP BY key"},
    {"3. FILTER (WHERE age > 90)",
     "SELECT city, SUM(balance) FILTER (WHERE age > 90) AS s FROM bank GROUP BY city", NULL,
     "the FILTER clause is not allowed"},
    {"3. FILTER in disguise: a condition inside the aggregate",
     "SELECT city, SUM(CASE WHEN age > 90 THEN balance ELSE 0 END) AS s FROM bank GROUP BY city",
     NULL, "the argument of SUM() must be one column"},
    {"4. CAST(age AS max(5)) past the must-aggregate check", "SELECT CAST(age AS max(5)) FROM bank",
     NULL, "CAST takes one type name here"},
    {"5. a filtered query over an unfiltered upstream hiding the unit",
     "SELECT COUNT(*) FROM attack_up", "SELECT name, balance FROM bank",
     "attack_up is an unfiltered computation that is not a row projection exposing its "
     "datasets' units"},
    {"5. an unfiltered upstream that self-joins, read under the filter",
     "SELECT COUNT(*) FROM attack_up", "SELECT a.email, b.balance FROM bank a, bank b",
     "attack_up is an unfiltered computation"},
    {"5. an unfiltered upstream with a generated table, read under the filter",
     "SELECT COUNT(*) FROM attack_up",
     "WITH n(i) AS (SELECT 1) SELECT b.email, b.balance FROM bank b, n",
     "attack_up is an unfiltered computation"},
    {"5. an unfiltered upstream that aggregates, read under the filter",
     "SELECT COUNT(*) FROM attack_up", "SELECT email, max(balance) AS m FROM bank GROUP BY email",
     "attack_up is an unfiltered computation"},
};

static void test_refused(td *t, cl_conn *a)
{
	for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++) {
		const struct attack *at = &refused[k];
		dcr_buf extra;
		dcr_buf_init(&extra);
		if (at->upstream) {
			dcr_buf_append_str(&extra, "  {\"name\": \"attack_up\", \"kind\": \"sql\", "
			                           "\"query\": ");
			char *q = dcr_asprintf("\"%s\"},\n", at->upstream);
			dcr_buf_append_str(&extra, q);
			free(q);
		}
		char *q = dcr_asprintf("  {\"name\": \"attack\", \"kind\": \"sql\", \"privacy\": "
		                       "{\"min_rows_aggregated\": 10}, \"query\": \"%s\"},\n",
		                       at->query);
		dcr_buf_append_str(&extra, q);
		free(q);
		char *json = room_json(t, dcr_buf_cstr(&extra));
		if (at->upstream) {
			/* ian is the upstream's analyst */
			char *j2 = dcr_asprintf("%s", json);
			char *p = strstr(j2, "\"analyst_of\": [\"up\"]");
			DCR_ASSERT(p);
			free(json);
			json = dcr_asprintf("%.*s\"analyst_of\": [\"up\", \"attack_up\"]%s",
			                    (int)(p - j2), j2, p + strlen("\"analyst_of\": [\"up\"]"));
			free(j2);
		}
		rm_def *d = NULL;
		dcr_err e;
		dcr_err_clear(&e);
		int rc = rm_def_parse(json, strlen(json), &d, &e);
		if (rc == 0 || !strstr(e.msg, at->refusal)) {
			fprintf(stderr, "attack %s\n  query %s\n  want refusal \"%s\"\n  got %d \"%s\"\n",
			        at->what, at->query, at->refusal, rc, e.msg);
			t_failures++;
		}
		rm_def_free(d);
		/* dcrd refuses the room too */
		uint8_t room[ES_ROOM_ID_BYTES];
		CHECK_ERR(cl_room_create(a, json, room, &e), DCR_EINVALID, &e, at->refusal);
		free(json);
		dcr_buf_release(&extra);
	}
	/* Negative control: the room without an attack is accepted. */
	char *json = room_json(t, NULL);
	rm_def *d = NULL;
	dcr_err e;
	CHECK_OK(rm_def_parse(json, strlen(json), &d, &e), &e);
	rm_def_free(d);
	free(json);
}

static bool has_bytes(const void *p, size_t n, const char *needle)
{
	size_t l = strlen(needle);
	for (size_t i = 0; i + l <= n; i++)
		if (memcmp((const uint8_t *)p + i, needle, l) == 0)
			return true;
	return false;
}

struct scan {
	int victim_hits;
	uint64_t events;
};

static int scan_event(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	struct scan *s = ctx;
	(void)seq;
	s->events++;
	if (has_bytes(entry, n, "victim") || has_bytes(entry, n, VICTIM_BALANCE) ||
	    has_bytes(entry, n, "987654"))
		s->victim_hits++;
	return 0;
}

/* Runs comp as c and returns its result CSV (heap), or NULL if it failed. */
static char *run_result(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *comp,
                        cl_run_status *st)
{
	char run[33];
	dcr_err err;
	dcr_buf res;
	dcr_buf_init(&res);
	memset(st, 0, sizeof *st);
	CHECK_OK(cl_run(c, room, comp, run, &err), &err);
	CHECK_OK(td_wait_run(c, room, comp, run, st, 120000, &err), &err);
	if (strcmp(st->state, "done") != 0)
		return NULL;
	CHECK_OK(td_result(c, room, comp, &res, &err), &err);
	return dcr_buf_cstr(&res);
}

int main(void)
{
	static td t; /* the atexit cleanup reads it after main returns */
	cl_conn *a = NULL, *i = NULL;
	uint8_t room[ES_ROOM_ID_BYTES];
	char *json = NULL;
	cl_run_status st;
	dcr_buf bank, pol;
	dcr_err err;

	td_init(&t);
	dcr_buf_init(&bank);
	dcr_buf_init(&pol);
	if (td_start(&t, NULL) < 0)
		return 1;
	a = td_connect(&t, t.anna);
	i = td_connect(&t, t.ian);
	CHECK(a && i);
	if (!a || !i)
		goto out;

	test_refused(&t, a);

	json = room_json(&t, NULL);
	CHECK_OK(td_room_publish(a, json, room, &err), &err);
	/* 203 people aged 20 to 29 in four cities, and the victim (95) */
	static const char *const cities[] = {"Berlin", "Hamburg", "Munich", "Cologne"};
	dcr_buf_append_str(&bank, "email,name,age,city,balance,points\n");
	for (int k = 0; k < 203; k++)
		dcr_buf_printf(&bank, "c%03d@mail.example,Customer %d,%d,%s,%d.00,1\n", k, k,
		               20 + k % 10, cities[k % 4], 100 + 37 * k);
	/* the victim's points overflow any sum they are part of */
	dcr_buf_append_str(&bank, VICTIM_EMAIL ",Victim,95,Berlin," VICTIM_BALANCE
	                          ",9223372036854775800\n");
	dcr_buf_append_str(&pol, "email,kind\n");
	for (int k = 0; k < 30; k++)
		dcr_buf_printf(&pol, "p%03d@mail.example,%s\n", k, k % 2 ? "car" : "home");
	CHECK_OK(td_provision(a, room, "bank", dcr_buf_cstr(&bank), &err), &err);
	CHECK_OK(td_provision(i, room, "policies", dcr_buf_cstr(&pol), &err), &err);

	/* 1. The error leak: the run fails with a class, nothing else. */
	char *r = run_result(a, room, "leaky", &st);
	CHECK(r == NULL && strcmp(st.state, "failed") == 0);
	CHECK(st.error && strcmp(st.error, "sql error: json path") == 0);
	if (st.error && strcmp(st.error, "sql error: json path") != 0)
		fprintf(stderr, "leaky failed with: %s\n", st.error);
	/* its analyst, anna, may see the message: the computation has no
	 * filter, she could read rows of it anyway */
	CHECK(st.detail && strstr(st.detail, "JSON path error"));
	cl_run_status_release(&st);
	free(r);
	/* a filtered computation failing on the victim's row: the class only,
	 * even for its analyst */
	r = run_result(a, room, "overflow", &st);
	CHECK(r == NULL && strcmp(st.state, "failed") == 0);
	CHECK(st.error && strcmp(st.error, "sql error: integer overflow") == 0);
	CHECK(st.detail == NULL);
	cl_run_status_release(&st);
	free(r);
	{
		/* every event of the log, as anna and as ian read it */
		struct scan sa = {0, 0}, si = {0, 0};
		CHECK_OK(cl_events(a, room, 0, ES_SEQ_ANY, scan_event, &sa, &err), &err);
		CHECK_OK(cl_events(i, room, 0, ES_SEQ_ANY, scan_event, &si, &err), &err);
		CHECK(sa.events > 4 && sa.events == si.events);
		CHECK(sa.victim_hits == 0 && si.victim_hits == 0);
		/* dcrd's log: the class, never the message */
		CHECK(td_log_wait(&t, "sql error: json path", 10000));
		char *log = td_log_text(&t);
		CHECK(!strstr(log, "victim") && !strstr(log, "987654"));
		CHECK(!strstr(log, "JSON path error"));
		free(log);
		/* the owner of the other dataset asks for the run status */
		cl_run_status s2;
		memset(&s2, 0, sizeof s2);
		CHECK_OK(cl_run_status(i, room, "leaky", &s2, &err), &err);
		CHECK(s2.error && strcmp(s2.error, "sql error: json path") == 0);
		CHECK(s2.detail == NULL);
		cl_run_status_release(&s2);
	}

	/* 2. Row multiplication: a cross join with 30 policies makes 30 rows
	 * of the victim's age group; it still holds one person. */
	r = run_result(a, room, "multiply", &st);
	CHECK(r && strcmp(st.state, "done") == 0);
	if (r) {
		/* ages 20..29: about 20 people (600 joined rows) each */
		CHECK(strstr(r, "age,n,s\r\n20,630,") != NULL);
		CHECK(!strstr(r, "\r\n95,") && !strstr(r, "987654"));
		CHECK(st.rows == 10 && st.suppressed == 1);
		if (!strstr(r, "age,n,s\r\n20,630,"))
			fprintf(stderr, "multiply: %s\n", r);
	}
	cl_run_status_release(&st);
	free(r);

	/* 5. The chain: ian's unfiltered projection of bank shows its unit;
	 * anna's filtered query cross-joins it and counts people, not rows. */
	r = run_result(i, room, "up", &st);
	CHECK(r && strstr(r, VICTIM_EMAIL)); /* ian, its analyst, sees the rows */
	cl_run_status_release(&st);
	free(r);
	r = run_result(a, room, "down", &st);
	CHECK(r && strcmp(st.state, "done") == 0);
	if (r) {
		CHECK(strstr(r, "age,n,s\r\n20,630,") != NULL);
		CHECK(!strstr(r, "\r\n95,") && !strstr(r, "987654"));
		CHECK(st.rows == 10 && st.suppressed == 1); /* the victim's age group */
	}
	cl_run_status_release(&st);
	free(r);

	/* 6. Differencing is not stopped by a threshold: both aggregates pass
	 * and their difference is the victim's balance (docs/privacy.md; the
	 * DP aggregates answer it). Kept here so a change is noticed. */
	{
		char *all = run_result(a, room, "diff_all", &st);
		cl_run_status_release(&st);
		char *young = run_result(a, room, "diff_young", &st);
		cl_run_status_release(&st);
		CHECK(all && young);
		if (all && young) {
			double s1 = strtod(strstr(all, "\r\n") + 2, NULL);
			double s2 = strtod(strstr(young, "\r\n") + 2, NULL);
			CHECK(s1 - s2 > 987654.0 && s1 - s2 < 987655.0);
		}
		free(all);
		free(young);
	}

	/* The honest query gives its result. */
	r = run_result(a, room, "by_city", &st);
	CHECK(r && strstr(r, "city,n,avg_balance\r\nBerlin,52,") != NULL);
	if (r && !strstr(r, "city,n,avg_balance\r\nBerlin,52,"))
		fprintf(stderr, "by_city: %s\n", r);
	cl_run_status_release(&st);
	free(r);
out:
	cl_close(a);
	cl_close(i);
	free(json);
	dcr_buf_release(&bank);
	dcr_buf_release(&pol);
	if (t_failures) {
		fprintf(stderr, "%d check(s) failed\n", t_failures);
		return 1;
	}
	return 0;
}
