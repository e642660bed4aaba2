/* bench_overlap.h: the bank/insurer overlap workload of issue 4, shared by
 * bench_cmp (in process) and bench_dmn --overlap (through dcrd), so both
 * measure the same files and the same query against the same sqlite3 shell.
 *
 * bank.csv is email,name,age,city,balance and insurer.csv
 * email,policy,premium,risk_class, N rows each; 30% of the insurer's rows
 * carry an email of the bank. Generation uses a fixed-seed PRNG, so the
 * files are identical from run to run and between the two benchmarks.
 *
 * Header-only (static functions, each used by both benchmarks). Include it
 * after the system headers and base.h; it needs <sys/resource.h>,
 * <sys/wait.h>, <time.h> and <unistd.h>. */
#ifndef DCR_BENCH_OVERLAP_H
#define DCR_BENCH_OVERLAP_H

#include "bench_harness.h"

#define BENCH_OVERLAP_QUERY                                                                        \
	"SELECT b.city, i.risk_class, COUNT(*), AVG(i.premium) FROM bank b JOIN insurer i "        \
	"ON b.email = i.email GROUP BY 1, 2"

#define BENCH_N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* splitmix64 */
static uint64_t bench_rnd(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Appends both files (header line first) to bank and ins. */
static void bench_overlap_gen(uint64_t rows, dcr_buf *bank, dcr_buf *ins)
{
	static const char *const firsts[] = {
	    "Anna", "Ben",  "Chiara", "David", "Elif", "Farid", "Grace", "Hugo", "Ines", "Jonas",
	    "Kira", "Luca", "Mara",   "Noah",  "Olga", "Paul",  "Rosa",  "Sami", "Tara", "Umar"};
	static const char *const lasts[] = {
	    "Meier",   "Rossi",   "Dupont",  "Schmid", "Keller", "Weber",  "Huber",      "Moser",
	    "Brunner", "Fischer", "Baumann", "Frei",   "Gerber", "Widmer", "Zimmermann", "Graf"};
	static const char *const cities[] = {"Zurich",
	                                     "Geneva",
	                                     "Basel",
	                                     "Bern",
	                                     "Lausanne",
	                                     "Winterthur",
	                                     "Lucerne",
	                                     "St. Gallen",
	                                     "Lugano",
	                                     "Biel",
	                                     "Thun",
	                                     "Koniz",
	                                     "La Chaux-de-Fonds",
	                                     "Fribourg",
	                                     "Schaffhausen",
	                                     "Chur",
	                                     "Vernier",
	                                     "Neuchatel",
	                                     "Uster",
	                                     "Sion"};
	static const char *const risks[] = {"A", "B", "C", "D", "E"};
	uint64_t state = 0x853c49e6748fea9bull;

	dcr_buf_append_str(bank, "email,name,age,city,balance\n");
	dcr_buf_append_str(ins, "email,policy,premium,risk_class\n");
	for (uint64_t i = 0; i < rows; i++) {
		uint64_t r = bench_rnd(&state);
		/* Quote a name now and then, as exports do. */
		const char *q = (r & 15) == 0 ? "\"" : "";
		dcr_buf_printf(
		    bank, "cust%07llu@mail.example,%s%s %s%s,%u,%s,%llu.%02u\n",
		    (unsigned long long)i, q, firsts[r % BENCH_N_OF(firsts)],
		    lasts[(r >> 8) % BENCH_N_OF(lasts)], q, (unsigned)(18 + (r >> 16) % 72),
		    cities[(r >> 24) % BENCH_N_OF(cities)],
		    (unsigned long long)((r >> 32) % 200000), (unsigned)((r >> 52) % 100));
	}
	for (uint64_t i = 0; i < rows; i++) {
		uint64_t r = bench_rnd(&state);
		/* 30% of the insurer's customers are the bank's too. */
		uint64_t id = (r % 100) < 30 ? (r >> 8) % rows : rows + i;
		dcr_buf_printf(ins, "cust%07llu@mail.example,P%08llu,%llu.%02u,%s\n",
		               (unsigned long long)id, (unsigned long long)(i * 7 + 13),
		               (unsigned long long)(200 + (r >> 20) % 3000),
		               (unsigned)((r >> 40) % 100), risks[(r >> 48) % BENCH_N_OF(risks)]);
	}
}

/* Issue 16's files: the same columns and distributions, but the emails are
 * userN@example.com written in N order, so the file order is not the
 * emails' string order (user10 < user2), as in real exports. bank.csv is
 * about 54 MB and insurer.csv 41 MB at 1,000,000 rows; 30% of the
 * insurer's rows carry an email of the bank. */
__attribute__((unused)) static void bench_overlap_gen_unsorted(uint64_t rows, dcr_buf *bank, dcr_buf *ins)
{
	static const char *const firsts[] = {"Anna", "Ben",  "Chiara", "David", "Elif",
	                                     "Farid", "Grace", "Hugo", "Ines", "Jonas"};
	static const char *const lasts[] = {"Meier", "Rossi", "Dupont", "Schmid",
	                                    "Keller", "Weber", "Huber",  "Moser"};
	static const char *const cities[] = {"Zurich", "Geneva", "Basel",  "Bern",
	                                     "Lausanne", "Winterthur", "Lucerne", "Lugano",
	                                     "Biel",   "Thun",   "Fribourg", "Chur",
	                                     "Sion",   "Uster",  "Vernier", "Neuchatel",
	                                     "Koniz",  "Schaffhausen", "St. Gallen", "Aarau"};
	static const char *const risks[] = {"A", "B", "C", "D", "E"};
	uint64_t state = 0x2545f4914f6cdd1dull;

	dcr_buf_append_str(bank, "email,name,age,city,balance\n");
	dcr_buf_append_str(ins, "email,policy,premium,risk_class\n");
	for (uint64_t i = 0; i < rows; i++) {
		uint64_t r = bench_rnd(&state);
		dcr_buf_printf(bank, "user%llu@example.com,%s %s,%u,%s,%llu.%02u\n",
		               (unsigned long long)i, firsts[r % BENCH_N_OF(firsts)],
		               lasts[(r >> 8) % BENCH_N_OF(lasts)], (unsigned)(18 + (r >> 16) % 72),
		               cities[(r >> 24) % BENCH_N_OF(cities)],
		               (unsigned long long)((r >> 32) % 200000), (unsigned)((r >> 52) % 100));
	}
	for (uint64_t i = 0; i < rows; i++) {
		uint64_t r = bench_rnd(&state);
		/* 30% of the insurer's customers are the bank's too. */
		uint64_t id = (r % 100) < 30 ? (r >> 8) % rows : rows + i;
		dcr_buf_printf(ins, "user%llu@example.com,P%07llu,%llu.%02u,%s\n",
		               (unsigned long long)id, (unsigned long long)i,
		               (unsigned long long)(200 + (r >> 20) % 3000),
		               (unsigned)((r >> 40) % 100), risks[(r >> 48) % BENCH_N_OF(risks)]);
	}
}

static int bench_write_file(const char *path, const dcr_buf *b)
{
	FILE *f = fopen(path, "wb");

	if (!f || fwrite(b->data, 1, b->len, f) != b->len || fclose(f) != 0) {
		fprintf(stderr, "bench: cannot write %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Runs the sqlite3 shell on DIR/bank.csv and DIR/insurer.csv (.mode csv,
 * .import of both, then with_query the overlap query under .timer on).
 * *wall_s and *cpu_total_s are the whole process's (wait4 rusage);
 * *query_s and *query_cpu_s the query's own, from the shell's "Run Time"
 * line (0 without with_query). Returns 0, or -1 if the shell failed. */
/* Peak RSS of the last shell run by bench_sqlite3_shell, MB. */
__attribute__((unused)) static double bench_shell_maxrss_mb;

static int bench_sqlite3_shell(const char *sqlite3, const char *dir, bool with_query,
                               double *wall_s, double *cpu_total_s, double *query_s,
                               double *query_cpu_s)
{
	char script[8192];
	int in[2], out[2];

	snprintf(script, sizeof(script),
	         ".mode csv\n.import '%s/bank.csv' bank\n.import '%s/insurer.csv' insurer\n"
	         "%s",
	         dir, dir, with_query ? ".timer on\n" BENCH_OVERLAP_QUERY ";\n" : "");
	if (pipe(in))
		return -1;
	if (pipe(out)) {
		close(in[0]);
		close(in[1]);
		return -1;
	}
	double t0 = bench_now_s();
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		execl(sqlite3, sqlite3, ":memory:", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	size_t sl = strlen(script);
	if (write(in[1], script, sl) != (ssize_t)sl)
		fprintf(stderr, "bench: short write to sqlite3\n");
	close(in[1]);
	dcr_buf o;
	dcr_buf_init(&o);
	char buf[4096];
	ssize_t n;
	while ((n = read(out[0], buf, sizeof(buf))) > 0)
		dcr_buf_append(&o, buf, (size_t)n);
	close(out[0]);
	int st;
	struct rusage ru;
	wait4(pid, &st, 0, &ru);
	*wall_s = bench_now_s() - t0;
	bench_shell_maxrss_mb = (double)ru.ru_maxrss / 1024;
	*cpu_total_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	*query_s = *query_cpu_s = 0;
	const char *rt = strstr(dcr_buf_cstr(&o), "Run Time: real ");
	if (rt) {
		char *e;
		*query_s = strtod(rt + 15, &e);
		const char *u = strstr(e, "user "), *sy = strstr(e, "sys ");
		if (u && sy)
			*query_cpu_s = strtod(u + 5, NULL) + strtod(sy + 4, NULL);
	}
	int rc = WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
	if (with_query && !rt)
		rc = -1;
	dcr_buf_release(&o);
	return rc;
}

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

#endif
