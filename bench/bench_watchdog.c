/* bench_watchdog.c: how far past its time limit a SQL run or a definition
 * check goes (docs/benchmarks.md, "Time limits").
 *
 *   bench_watchdog [--limit-ms N] [--repeat N] [--case N] [--no-check]
 *
 * Each case is a query of few, expensive VM steps (one LIKE, instr or
 * replace over a long string per row): the time limit's clock is looked at
 * only between steps, so what matters is how long one step may take and
 * how soon after the deadline the run notices. For each case it prints the
 * limit, the time the call took, the overrun (time - limit) and the error.
 * The same source builds against any version of compute/ (it uses only
 * cmp_sql_run and cmp_sql_check), so before/after figures come from one
 * program. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../compute/compute.h"

/* Per row of an endless counter, a string of n bytes is made
 * (replace(hex(zeroblob(n / 2)), '0', 'a'), a few VM steps) and searched
 * by one function call. */
#define ROWS "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) "
#define BIG(n) "(replace(hex(zeroblob(" n " / 2)), '0', 'a') || x)"

static const struct bcase {
	const char *name;
	const char *query;
} cases[] = {
    {"8 MiB string per row, LIKE '%a%a%a%a%a%a%a%a%b'",
     ROWS "SELECT COUNT(*) AS n FROM c WHERE " BIG("8388608") " LIKE '%a%a%a%a%a%a%a%a%b'"},
    {"8 MiB string per row, LIKE '%b%'",
     ROWS "SELECT COUNT(*) AS n FROM c WHERE " BIG("8388608") " LIKE '%b%'"},
    {"1 MiB string per row, LIKE '%a%a%a%a%a%a%a%a%b'",
     ROWS "SELECT COUNT(*) AS n FROM c WHERE " BIG("1048576") " LIKE '%a%a%a%a%a%a%a%a%b'"},
    {"1 MiB string per row, instr(s, 512 KiB of it || 'b')",
     ROWS "SELECT COUNT(*) AS n FROM c WHERE instr(" BIG("1048576") ", "
          "replace(hex(zeroblob(262144)), '0', 'a') || 'b') > 0"},
    {"256 KiB string per row, instr(s, 128 KiB of it || 'b')",
     ROWS "SELECT COUNT(*) AS n FROM c WHERE instr(" BIG("262144") ", "
          "replace(hex(zeroblob(65536)), '0', 'a') || 'b') > 0"},
    {"plain counter (cheap steps)", ROWS "SELECT COUNT(*) AS n FROM c"},
};

int main(int argc, char **argv)
{
	uint64_t limit = 2000;
	int repeat = 1;
	long only = -1; /* --case N: that case alone (0-based) */
	bool check = true;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--limit-ms") == 0 && i + 1 < argc)
			limit = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
			repeat = (int)strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--case") == 0 && i + 1 < argc)
			only = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--no-check") == 0)
			check = false;
		else {
			fprintf(stderr, "usage: bench_watchdog [--limit-ms N] [--repeat N] [--case N] "
			                "[--no-check]\n");
			return 2;
		}
	}
	printf("%-55s %8s %8s %8s  %s\n", "case (cmp_sql_run)", "limit", "took", "overrun",
	       "outcome");
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
		for (int r = 0; r < repeat && (only < 0 || (size_t)only == k); r++) {
			cmp_sql_limits lim = {.time_ms = limit};
			cmp_result res;
			dcr_err err;
			uint64_t t0 = dcr_mono_ms(), ms;
			int rc;

			cmp_result_init(&res);
			dcr_err_clear(&err);
			rc = cmp_sql_run(cases[k].query, NULL, 0, 0, &lim, &res, &err);
			ms = dcr_mono_ms() - t0;
			printf("%-55.55s %8llu %8llu %8lld  %s\n", cases[k].name,
			       (unsigned long long)limit, (unsigned long long)ms,
			       (long long)ms - (long long)limit, rc == 0 ? "completed" : err.msg);
			fflush(stdout);
			cmp_result_release(&res);
		}
	/* The definition check (2 s limit, steps bounded too): the same
	 * queries on empty tables make up their own data. */
	printf("%-55s %8s %8s %8s  %s\n", "case (cmp_sql_check)", "limit", "took", "overrun",
	       "outcome");
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
		for (int r = 0; r < repeat && check && (only < 0 || (size_t)only == k); r++) {
			cmp_result res;
			dcr_err err;
			uint64_t t0 = dcr_mono_ms(), ms;
			int rc;

			cmp_result_init(&res);
			dcr_err_clear(&err);
			rc = cmp_sql_check(cases[k].query, NULL, 0, 0, &res, &err);
			ms = dcr_mono_ms() - t0;
			printf("%-55.55s %8u %8llu %8lld  %s\n", cases[k].name,
			       (unsigned)DCR_SQL_CHECK_TIME_MS, (unsigned long long)ms,
			       (long long)ms - (long long)DCR_SQL_CHECK_TIME_MS,
			       rc == 0 ? "completed" : err.msg);
			fflush(stdout);
			cmp_result_release(&res);
		}
	return 0;
}
