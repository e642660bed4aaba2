/* bench_cmp.c: compute benchmark (docs/benchmarks.md, section "Compute").
 *
 *   bench_cmp [--rows N] [--dir DIR] [--keep] [--save-images] [--unsorted] [--sqlite3 PATH]
 *
 * Generates bank.csv (email,name,age,city,balance) and insurer.csv
 * (email,policy,premium,risk_class), N rows each (default 1,000,000), 30% of
 * the insurer's emails shared with the bank, into a fresh temp dir (or DIR),
 * then measures in one run:
 *   1. provisioning: CSV validation + statistics + AES-256-GCM over 1 MiB
 *      chunks, as the daemon does on upload (MB/s of CSV);
 *   2. the prepared image (cmp_prepare_ex, clustered and indexed on the
 *      join key found by cmp_sql_join_columns), built after the provision
 *      is acknowledged (seconds until ready);
 *   3. the overlap query through cmp_sql_run on the prepared images
 *      (median of 3), against the sqlite3 shell: .import of both CSVs and
 *      the query (whole process wall time), and the query alone (the
 *      shell's own ".timer" figure).
 * The files and the shell run come from bench_overlap.h (fixed-seed PRNG,
 * so runs are comparable), shared with bench_dmn --overlap, which times
 * the same query through dcrd. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../compute/compute.h"
#include "bench_overlap.h"

#define QUERY BENCH_OVERLAP_QUERY

/* CPU time of this process: the figure that stays meaningful when the
 * machine is shared (wall time is printed too). */
static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Whether provision() holds the validated rows, as dcrd's uploads do for
 * the prepared table (cmp_ingest_keep_rows). */
static bool prov_keep;

/* Provisioning as the daemon does it: validate + stats, encrypt. */
static int provision(const cmp_schema *s, const char *label, const dcr_buf *csv, bool validate,
                     bool encrypt, double *secs, double *cpu)
{
	uint8_t key[DCR_AES_KEY_BYTES], nonce[DCR_GCM_NONCE_BYTES] = {0}, tag[DCR_GCM_TAG_BYTES];
	dcr_random(key, sizeof(key));
	uint8_t *ct = dcr_malloc(DCR_CHUNK_BYTES);
	cmp_ingest *in;
	dcr_err err;
	dcr_buf stats;
	dcr_buf_init(&stats);
	uint64_t rows = 0;
	double t0 = bench_now_s(), c0 = cpu_s();
	cmp_ingest_new(s, label, &in);
	if (prov_keep)
		cmp_ingest_keep_rows(in, csv->len);
	int rc = 0;
	for (size_t off = 0, chunk = 0; off < csv->len && !rc; off += DCR_CHUNK_BYTES, chunk++) {
		size_t n = csv->len - off < DCR_CHUNK_BYTES ? csv->len - off : DCR_CHUNK_BYTES;
		if (validate)
			rc = cmp_ingest_feed(in, csv->data + off, n, &err);
		dcr_put_be64(nonce + 4, chunk);
		if (!rc && encrypt)
			rc = dcr_gcm_seal(key, nonce, NULL, 0, csv->data + off, n, ct, tag);
	}
	if (!rc && validate)
		rc = cmp_ingest_finish(in, &rows, &stats, &err);
	/* dcrd hands the rows to the build, which frees them later */
	cmp_rows *held = cmp_ingest_take_rows(in);
	*secs = bench_now_s() - t0;
	*cpu = cpu_s() - c0;
	cmp_rows_free(held);
	if (rc)
		fprintf(stderr, "bench_cmp: provision %s: %s\n", label, err.msg);
	cmp_ingest_free(in);
	dcr_buf_release(&stats);
	free(ct);
	return rc;
}

struct reader {
	const dcr_buf *b;
	size_t off;
};

static int buf_read(void *ctx, void *out, size_t cap)
{
	struct reader *r = ctx;
	size_t n = r->b->len - r->off < cap ? r->b->len - r->off : cap;
	memcpy(out, r->b->data + r->off, n);
	r->off += n;
	return (int)n;
}

int main(int argc, char **argv)
{
	uint64_t rows = 1000000;
	const char *dir = NULL, *sqlite3 = "/usr/bin/sqlite3";
	bool keep = false, save_images = false, unsorted = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rows") && i + 1 < argc)
			rows = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--sqlite3") && i + 1 < argc)
			sqlite3 = argv[++i];
		else if (!strcmp(argv[i], "--keep"))
			keep = true;
		else if (!strcmp(argv[i], "--unsorted"))
			unsorted = true;
		else if (!strcmp(argv[i], "--save-images"))
			save_images = keep = true;
		else {
			fprintf(stderr, "usage: bench_cmp [--rows N] [--dir DIR] [--keep] "
			                "[--save-images] [--unsorted] [--sqlite3 PATH]\n");
			return 2;
		}
	}
	char tmpl[] = "/tmp/bench_cmp.XXXXXX";
	bool made = false;
	if (!dir) {
		dir = mkdtemp(tmpl);
		if (!dir) {
			perror("mkdtemp");
			return 1;
		}
		made = true;
	}
	int ret = 1;
	dcr_buf bank, ins, bimg, iimg;
	dcr_buf_init(&bank);
	dcr_buf_init(&ins);
	dcr_buf_init(&bimg);
	dcr_buf_init(&iimg);
	char bpath[4096], ipath[4096];
	snprintf(bpath, sizeof(bpath), "%s/bank.csv", dir);
	snprintf(ipath, sizeof(ipath), "%s/insurer.csv", dir);

	double t = bench_now_s();
	if (unsorted)
		bench_overlap_gen_unsorted(rows, &bank, &ins);
	else
		bench_overlap_gen(rows, &bank, &ins);
	if (bench_write_file(bpath, &bank) || bench_write_file(ipath, &ins))
		goto out;
	printf("bench_cmp: %llu rows each; bank.csv %.1f MB, insurer.csv %.1f MB (generated in "
	       "%.1f s, %s)\n",
	       (unsigned long long)rows, bank.len / 1e6, ins.len / 1e6, bench_now_s() - t, dir);

	static const cmp_column bcols[] = {{"email", CMP_STRING, CMP_FMT_EMAIL, false},
	                                   {"name", CMP_STRING, CMP_FMT_NONE, true},
	                                   {"age", CMP_INTEGER, CMP_FMT_NONE, true},
	                                   {"city", CMP_STRING, CMP_FMT_NONE, true},
	                                   {"balance", CMP_FLOAT, CMP_FMT_NONE, true}};
	static const cmp_column icols[] = {{"email", CMP_STRING, CMP_FMT_EMAIL, false},
	                                   {"policy", CMP_STRING, CMP_FMT_NONE, false},
	                                   {"premium", CMP_FLOAT, CMP_FMT_NONE, false},
	                                   {"risk_class", CMP_STRING, CMP_FMT_NONE, false}};
	cmp_schema bs = {bcols, 5}, is = {icols, 4};

	double pb, pi, vb, vi, eb, ei, cpb, cpi, cvb, cvi, ceb, cei;
	if (provision(&bs, "bank.csv", &bank, true, false, &vb, &cvb) ||
	    provision(&is, "insurer.csv", &ins, true, false, &vi, &cvi) ||
	    provision(&bs, "bank.csv", &bank, false, true, &eb, &ceb) ||
	    provision(&is, "insurer.csv", &ins, false, true, &ei, &cei) ||
	    provision(&bs, "bank.csv", &bank, true, true, &pb, &cpb) ||
	    provision(&is, "insurer.csv", &ins, true, true, &pi, &cpi))
		goto out;
	double mb = (bank.len + ins.len) / 1e6;
	printf("provision (validate + statistics + AES-256-GCM, 1 MiB chunks): %.0f MB/s wall, "
	       "%.0f MB/s CPU (bank %.0f, insurer %.0f MB/s wall)\n",
	       mb / (pb + pi), mb / (cpb + cpi), bank.len / 1e6 / pb, ins.len / 1e6 / pi);
	printf("  parts: validate + statistics alone %.0f MB/s wall, %.0f MB/s CPU; AES-256-GCM "
	       "alone %.0f MB/s\n",
	       mb / (vb + vi), mb / (cvb + cvi), mb / (eb + ei));
	{
		/* What holding the rows for the prepared table costs the
		 * validation (dcrd's uploads do it: docs/daemon.md, "Uploads
		 * and prepared tables"): 5 runs each, interleaved, medians. */
		double cpu[2][5], w;
		for (int k = 0; k < 5; k++)
			for (int hold = 0; hold < 2; hold++) {
				double c1, c2;
				prov_keep = hold;
				if (provision(&bs, "bank.csv", &bank, true, false, &w, &c1) ||
				    provision(&is, "insurer.csv", &ins, true, false, &w, &c2))
					goto out;
				cpu[hold][k] = c1 + c2;
			}
		prov_keep = false;
		qsort(cpu[0], 5, sizeof(double), bench_cmp_double);
		qsort(cpu[1], 5, sizeof(double), bench_cmp_double);
		printf("  validate + statistics holding the rows: %.3f s CPU against %.3f s "
		       "(medians of 5; +%.0f%%)\n",
		       cpu[1][2], cpu[0][2], 100.0 * (cpu[1][2] - cpu[0][2]) / cpu[0][2]);
	}

	dcr_err err;
	/* Index the join keys the query names, as the daemon can. */
	const char *bidx[5], *iidx[4];
	size_t nb = 0, ni = 0;
	bool used[5];
	if (cmp_sql_join_columns(QUERY, &bs, used, &err))
		goto out;
	for (size_t c = 0; c < bs.ncols; c++)
		if (used[c])
			bidx[nb++] = bs.cols[c].name;
	if (cmp_sql_join_columns(QUERY, &is, used, &err))
		goto out;
	for (size_t c = 0; c < is.ncols; c++)
		if (used[c])
			iidx[ni++] = is.cols[c].name;
	struct reader rb = {&bank, 0}, ri = {&ins, 0};
	t = bench_now_s();
	if (cmp_prepare_ex(&bs, "bank", bidx, nb, buf_read, &rb, &bimg, &err)) {
		fprintf(stderr, "bench_cmp: prepare bank: %s\n", err.msg);
		goto out;
	}
	double tb = bench_now_s() - t;
	t = bench_now_s();
	if (cmp_prepare_ex(&is, "insurer", iidx, ni, buf_read, &ri, &iimg, &err)) {
		fprintf(stderr, "bench_cmp: prepare insurer: %s\n", err.msg);
		goto out;
	}
	double ti = bench_now_s() - t;
	printf("prepared image (rows clustered and indexed on the join key%s%s), ready after "
	       "provision: bank %.2f s (%.0f MB), insurer %.2f s (%.0f MB)\n",
	       nb ? " " : "", nb ? bidx[0] : "", tb, bimg.len / 1e6, ti, iimg.len / 1e6);

	if (save_images) {
		char p1[4200], p2[4200];
		snprintf(p1, sizeof(p1), "%s/bank.db", dir);
		snprintf(p2, sizeof(p2), "%s/insurer.db", dir);
		if (bench_write_file(p1, &bimg) || bench_write_file(p2, &iimg))
			goto out;
	}
	cmp_input inputs[2] = {{"bank", bs, bimg.data, bimg.len, NULL},
	                       {"insurer", is, iimg.data, iimg.len, NULL}};
	double runs[3], cpus[3];
	char first_csv[256] = "";
	uint64_t res_rows = 0;
	for (int k = 0; k < 3; k++) {
		cmp_result res;
		cmp_result_init(&res);
		t = bench_now_s();
		double c = cpu_s();
		int rc = cmp_sql_run(QUERY, inputs, 2, 10, NULL, &res, &err);
		runs[k] = bench_now_s() - t;
		cpus[k] = cpu_s() - c;
		if (rc) {
			fprintf(stderr, "bench_cmp: run: %s\n", err.msg);
			cmp_result_release(&res);
			goto out;
		}
		res_rows = res.rows;
		snprintf(first_csv, sizeof(first_csv), "%.*s",
		         (int)(res.csv.len < 120 ? res.csv.len : 120), (const char *)res.csv.data);
		cmp_result_release(&res);
	}
	qsort(runs, 3, sizeof(double), bench_cmp_double);
	qsort(cpus, 3, sizeof(double), bench_cmp_double);
	printf("query via cmp_sql_run (k = 10): %.3f s wall median of 3 (min %.3f), %.3f s CPU, "
	       "%llu result rows\n",
	       runs[1], runs[0], cpus[1], (unsigned long long)res_rows);

	double wall_import, cpu_import, q_dummy, qc_dummy, wall_all, cpu_all, q_shell, qc_shell;
	if (access(sqlite3, X_OK) != 0) {
		printf("sqlite3 shell: %s not found, comparison skipped\n", sqlite3);
	} else if (bench_sqlite3_shell(sqlite3, dir, false, &wall_import, &cpu_import, &q_dummy,
	                               &qc_dummy) ||
	           bench_sqlite3_shell(sqlite3, dir, true, &wall_all, &cpu_all, &q_shell,
	                               &qc_shell)) {
		fprintf(stderr, "bench_cmp: the sqlite3 shell failed\n");
		goto out;
	} else {
		printf("sqlite3 shell (%s): import only %.2f s wall; import + query %.2f s wall, "
		       "%.2f s CPU; query alone %.3f s wall, %.3f s CPU\n",
		       sqlite3, wall_import, wall_all, cpu_all, q_shell, qc_shell);
		printf("speedup of cmp_sql_run vs shell import + query: %.1fx wall, %.1fx CPU "
		       "(target >= 5x)\n",
		       wall_all / runs[1], cpu_all / cpus[1]);
		printf("speedup of cmp_sql_run vs shell query alone:    %.1fx wall, %.1fx CPU "
		       "(stretch >= 8x)\n",
		       q_shell / runs[1], qc_shell / cpus[1]);
	}
	(void)first_csv;
	ret = 0;
out:
	if (made && !keep) {
		unlink(bpath);
		unlink(ipath);
		rmdir(dir);
	}
	dcr_buf_release(&bank);
	dcr_buf_release(&ins);
	dcr_buf_release(&bimg);
	dcr_buf_release(&iimg);
	return ret;
}
