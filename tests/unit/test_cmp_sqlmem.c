/* test_cmp_sqlmem.c: the SQL memory limit fails closed. compute enforces
 * a run's memory limit through an allocator hook that SQLite accepts only
 * before it is initialised; here something else in the process initialises
 * SQLite first, so the hook cannot be installed, and every run and check
 * must then be refused with a clear error instead of running unbounded.
 * (The normal case, the hook installed and the limit enforced, is in
 * test_cmp_sql.) */
#include <stdio.h>
#include <string.h>

#include "../../compute/compute.h"

/* From SQLite (only compute/ includes sqlite3.h): what another library in
 * the process might call before compute runs its first query. */
int sqlite3_initialize(void);

static int failures;

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);      \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

int main(void)
{
	cmp_result res;
	dcr_err err;
	int rc;

	CHECK(sqlite3_initialize() == 0);
	cmp_result_init(&res);
	rc = cmp_sql_run("SELECT 1 AS x", NULL, 0, 0, NULL, &res, &err);
	CHECK(rc == DCR_EINTERNAL);
	CHECK(strstr(err.msg, "memory limit cannot be enforced") != NULL);
	CHECK(res.rows == 0);
	rc = cmp_sql_check("SELECT 1 AS x", NULL, 0, 0, &res, &err);
	CHECK(rc == DCR_EINTERNAL);
	CHECK(strstr(err.msg, "memory limit cannot be enforced") != NULL);
	cmp_result_release(&res);
	if (failures)
		fprintf(stderr, "%d failures\n", failures);
	return failures ? 1 : 0;
}
