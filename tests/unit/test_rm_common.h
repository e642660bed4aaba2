/* test_rm_common.h: fixtures shared by the room module's unit tests: real
 * generated keys, the DESIGN §4 example definition completed so that it is
 * valid, and string surgery on it for the negative cases (the CHECK macros
 * are test.h's). Header-only (static functions). */
#ifndef TEST_RM_COMMON_H
#define TEST_RM_COMMON_H

#include "../../room/room.h"
#include "test.h"

typedef struct t_fixture {
	dcr_key *anna, *ian, *carl, *daemon; /* carl is not a participant */
	uint8_t anna_pub[32], ian_pub[32], carl_pub[32], daemon_pub[32];
	char *anna_s, *ian_s, *carl_s; /* "ed25519:..." */
} t_fixture;

static void t_fixture_init(t_fixture *f)
{
	DCR_ASSERT(dcr_key_generate(&f->anna) == 0);
	DCR_ASSERT(dcr_key_generate(&f->ian) == 0);
	DCR_ASSERT(dcr_key_generate(&f->carl) == 0);
	DCR_ASSERT(dcr_key_generate(&f->daemon) == 0);
	dcr_key_public(f->anna, f->anna_pub);
	dcr_key_public(f->ian, f->ian_pub);
	dcr_key_public(f->carl, f->carl_pub);
	dcr_key_public(f->daemon, f->daemon_pub);
	f->anna_s = dcr_pub_format(f->anna_pub);
	f->ian_s = dcr_pub_format(f->ian_pub);
	f->carl_s = dcr_pub_format(f->carl_pub);
}

static void t_fixture_release(t_fixture *f)
{
	dcr_key_free(f->anna);
	dcr_key_free(f->ian);
	dcr_key_free(f->carl);
	dcr_key_free(f->daemon);
	free(f->anna_s);
	free(f->ian_s);
	free(f->carl_s);
}

/* The DESIGN §4 example, completed: insurer_customers declared, a city
 * column to group by, an analyst for every computation. @ANNA@ and @IAN@
 * are replaced by the keys. */
static const char t_def_template[] =
    "{\n"
    "  \"format\": \"dcr.room/1\",\n"
    "  \"name\": \"bank-insurer-overlap\",\n"
    "  \"description\": \"Customer overlap between a bank and an insurer\",\n"
    "  \"settings\": {\"interactive\": true, \"development\": true, \"require_provisioned\": "
    "true},\n"
    "  \"participants\": [\n"
    "    {\"email\": \"anna@bank.example\", \"key\": \"@ANNA@\",\n"
    "     \"owner_of\": [\"bank_customers\", \"contracts\"], \"analyst_of\": [\"overlap\"]},\n"
    "    {\"email\": \"ian@insurer.example\", \"key\": \"@IAN@\",\n"
    "     \"owner_of\": [\"insurer_customers\"],\n"
    "     \"analyst_of\": [\"overlap\", \"bank_synthetic\", \"churn\", \"summary_r\", "
    "\"by_city\"]}\n"
    "  ],\n"
    "  \"datasets\": [\n"
    "    {\"name\": \"bank_customers\", \"kind\": \"table\", \"required\": true, "
    "\"share_statistics\": false, \"unit\": \"email\",\n"
    "     \"columns\": [{\"name\": \"email\", \"type\": \"string\", \"nullable\": false, "
    "\"format\": \"email\", \"allow\": [\"join\"]},\n"
    "                 {\"name\": \"city\", \"type\": \"string\", \"nullable\": true, "
    "\"allow\": [\"group\"]},\n"
    "                 {\"name\": \"age\", \"type\": \"integer\", \"nullable\": true, "
    "\"allow\": [\"group\", \"aggregate\"]},\n"
    "                 {\"name\": \"balance\", \"type\": \"float\", \"nullable\": true, "
    "\"allow\": [\"aggregate\"]}]},\n"
    "    {\"name\": \"insurer_customers\", \"kind\": \"table\", \"share_statistics\": true,\n"
    "     \"unit\": \"email\",\n"
    "     \"columns\": [{\"name\": \"email\", \"type\": \"string\", \"nullable\": false, "
    "\"allow\": [\"join\"]},\n"
    "                 {\"name\": \"risk\", \"type\": \"integer\", \"allow\": [\"group\", "
    "\"aggregate\"]}]},\n"
    "    {\"name\": \"contracts\", \"kind\": \"file\", \"required\": false}\n"
    "  ],\n"
    "  \"computations\": [\n"
    "    {\"name\": \"overlap\", \"kind\": \"sql\", \"privacy\": {\"min_rows_aggregated\": 10},\n"
    "     \"query\": \"SELECT b.city, COUNT(*) AS n FROM bank_customers b JOIN insurer_customers i "
    "USING (email) GROUP BY b.city\"},\n"
    "    {\"name\": \"by_city\", \"kind\": \"sql\",\n"
    "     \"query\": \"SELECT city, n * 2 AS twice FROM overlap\"},\n"
    "    {\"name\": \"bank_synthetic\", \"kind\": \"synthetic\", \"input\": \"bank_customers\",\n"
    "     \"mask\": [\"email\"], \"epsilon\": 1.0},\n"
    "    {\"name\": \"churn\", \"kind\": \"python\", \"inputs\": [\"overlap\"], \"script\": "
    "\"print(1)\\n\"},\n"
    "    {\"name\": \"summary_r\", \"kind\": \"r\", \"inputs\": [\"overlap\", \"contracts\"], "
    "\"script\": \"x <- 1\"}\n"
    "  ],\n"
    "  \"x-comment\": \"ignored\"\n"
    "}\n";

/* Replaces the first occurrence of from by to; aborts if absent. Heap. */
__attribute__((unused)) static char *t_replace(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);
	if (!at) {
		fprintf(stderr, "t_replace: \"%s\" not found\n", from);
		abort();
	}
	return dcr_asprintf("%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
}

/* Replaces and frees the input. */
__attribute__((unused)) static char *t_edit(char *s, const char *from, const char *to)
{
	char *r = t_replace(s, from, to);
	free(s);
	return r;
}

static char *t_valid_def(const t_fixture *f)
{
	char *a = t_replace(t_def_template, "@ANNA@", f->anna_s);
	return t_edit(a, "@IAN@", f->ian_s);
}

#endif
