/* cli_dev.c: `dcr dev run|status|result`, development runs
 * (settings.development; docs/rules.md "Development runs").
 *
 * A development run is the caller's own SQL, Python or R script over what
 * they may already read (datasets they own, results of computations they
 * are an analyst of). `dev run` signs dev.requested with the script text
 * and its inputs; dcrd runs it and records the outcome by hash; `dev
 * result` fetches the result (the requester only) and checks it against
 * the SHA-256 the daemon signed into the log. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static int fail(const char *cmd, dcr_err *err)
{
	tl_fail(cmd, err);
	return CLI_EXIT_FAIL;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *q = p;

	while (n > 0) {
		ssize_t w = write(fd, q, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

static bool parse_seconds(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > 7 * 24 * 3600)
		return false;
	*out = v;
	return true;
}

static void print_status(const cl_dev_status *st)
{
	printf("run %s (%s): %s", st->run_id, st->language, st->state);
	if (strcmp(st->state, "done") == 0)
		printf(", %llu bytes, %llu ms", (unsigned long long)st->result_bytes,
		       (unsigned long long)st->duration_ms);
	if (st->error)
		printf(": %s%s%s", st->error, st->detail ? ": " : "", st->detail ? st->detail : "");
	printf("\n  inputs:");
	for (size_t i = 0; i < st->ninputs; i++)
		printf("%s %s", i ? "," : "", st->inputs[i]);
	printf("%s\n", st->ninputs ? "" : " none");
}

/* ---- dev run --------------------------------------------------------------------- */

static const char run_usage[] =
    "usage: dcr dev run ROOM FILE [--input NAME ...] [--wait] [--timeout SECONDS]\n"
    "Runs the script FILE (.sql, .py or .R) as a development run of ROOM (the\n"
    "room's settings.development must be true) over the inputs: datasets you\n"
    "own and computations you are an analyst of (the result of their last\n"
    "completed run). Without --input, an SQL script reads the names its query\n"
    "uses; a Python or R script the names on its first line \"# inputs: a, b\".\n"
    "The script text and the inputs go into the room's log (dev.requested),\n"
    "which every participant reads: put no data in it. Prints the run id; with\n"
    "--wait, waits for the outcome (at most --timeout seconds, default 600) and\n"
    "exits 1 if the run failed. The result is yours alone: dcr dev result.\n";

int cli_cmd_dev_run(int argc, char **argv)
{
	bool wait = false;
	const char *timeout_s = NULL;
	const cli_opt opts[] = {
	    {"--wait", NULL, &wait}, {"--timeout", &timeout_s, NULL}, {NULL, NULL, NULL}};
	char *pos[2], **args = dcr_calloc((size_t)argc + 1, sizeof *args), **inputs = NULL;
	size_t ninputs = 0;
	int nargs = 0;
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES];
	char run_id[33];
	uint64_t timeout = 600, start, sleep_ms = 50;
	enum rm_dev_lang lang;
	dcr_buf script;
	rm_state st;
	bool have_state = false;
	cl_dev_status *ds = NULL;
	size_t nds = 0;
	int rc;

	dcr_buf_init(&script);
	/* --input may repeat: take those out before the common parser */
	for (int i = 0; i < argc; i++) {
		const char *v = NULL;
		if (strcmp(argv[i], "--") == 0) {
			while (i < argc)
				args[nargs++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], "--input") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "dcr dev run: option --input needs a value\n%s",
				        run_usage);
				rc = CLI_EXIT_USAGE;
				goto usage_out;
			}
			v = argv[++i];
		} else if (strncmp(argv[i], "--input=", 8) == 0) {
			v = argv[i] + 8;
		}
		if (v) {
			inputs = dcr_realloc(inputs, (ninputs + 1) * sizeof *inputs);
			inputs[ninputs++] = dcr_strdup(v);
		} else {
			args[nargs++] = argv[i];
		}
	}
	rc = cli_parse("dev run", run_usage, nargs, args, opts, pos, 2, 2, NULL);
	if (rc) {
		rc = rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
		goto usage_out;
	}
	if (timeout_s && !parse_seconds(timeout_s, &timeout)) {
		fprintf(stderr, "dcr dev run: --timeout: \"%s\" is not a number of seconds\n",
		        timeout_s);
		rc = CLI_EXIT_USAGE;
		goto usage_out;
	}
	rc = rm_dev_lang_of_file(pos[1], &lang, &err);
	if (rc == 0)
		rc = cli_read_input(pos[1], DCR_RM_SCRIPT_BYTES_MAX, &script, &err);
	if (rc == 0 && script.len == 0)
		rc = dcr_err_set(&err, DCR_EINVALID, "%s: empty script", pos[1]);
	if (rc == 0 && memchr(script.data, 0, script.len))
		rc = dcr_err_set(&err, DCR_EINVALID, "%s: contains a NUL byte", pos[1]);
	if (rc == 0)
		rc = cli_open_room(pos[0], &c, id, &err);
	if (rc == 0) {
		have_state = true;
		rc = tl_replay(c, id, &st, &err);
	}
	if (rc)
		goto out;
	if (ninputs == 0) {
		rc = rm_dev_infer_inputs(&st, lang, dcr_buf_cstr(&script), &inputs, &ninputs, &err);
		if (rc) {
			dcr_err_prefix(&err, "%s", pos[1]);
			goto out;
		}
	}
	/* refuse early, with the rule's words (rm_apply decides in the end) */
	{
		uint8_t me[32];
		dcr_key_public(cl_identity(c), me);
		rc = rm_check_dev(&st, me, &err);
		for (size_t i = 0; rc == 0 && i < ninputs; i++)
			rc = rm_check_dev_input(&st, me, inputs[i], &err);
	}
	if (rc == 0)
		rc = cl_dev_run(c, id, rm_dev_lang_name(lang), dcr_buf_cstr(&script),
		                (const char *const *)inputs, ninputs, run_id, &err);
	if (rc)
		goto out;
	printf("%s\n", run_id);
	fflush(stdout);
	if (!wait)
		goto out;
	start = dcr_mono_ms();
	for (;;) {
		cl_dev_status_free(ds, nds);
		ds = NULL;
		rc = cl_dev_status_get(c, id, run_id, &ds, &nds, &err);
		if (rc == 0 && nds != 1)
			rc = dcr_err_set(&err, DCR_EPROTO, "dev.status: %zu runs for one id", nds);
		if (rc)
			goto out;
		if (strcmp(ds->state, "done") == 0 || strcmp(ds->state, "failed") == 0)
			break;
		if (timeout && dcr_mono_ms() - start >= timeout * 1000) {
			rc = dcr_err_set(&err, DCR_ETIMEOUT,
			                 "development run %s still %s after %llu s (it goes on; "
			                 "see dcr dev status %s %s)",
			                 run_id, ds->state, (unsigned long long)timeout, pos[0],
			                 run_id);
			goto out;
		}
		usleep((useconds_t)(sleep_ms * 1000));
		if (sleep_ms < 500)
			sleep_ms *= 2;
	}
	print_status(ds);
	if (strcmp(ds->state, "failed") == 0)
		rc = dcr_err_set(&err, DCR_EINVALID, "development run %s failed: %s%s%s", run_id,
		                 ds->error ? ds->error : "(no error)", ds->detail ? ": " : "",
		                 ds->detail ? ds->detail : "");
out:
	cl_dev_status_free(ds, nds);
	if (have_state)
		rm_state_release(&st);
	cl_close(c);
	if (rc)
		rc = fail("dev run", &err);
usage_out:
	strv_free(inputs, ninputs);
	free(args);
	dcr_buf_release(&script);
	return rc;
}

/* ---- dev status ------------------------------------------------------------------ */

static const char status_usage[] =
    "usage: dcr dev status ROOM [RUN]\n"
    "Your development runs in ROOM (oldest first), or one of them: language,\n"
    "state (queued, running, done, failed), inputs, and for a failed run the\n"
    "error class and the message behind it.\n";

int cli_cmd_dev_status(int argc, char **argv)
{
	char *pos[2] = {NULL, NULL};
	int npos = 0;
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES];
	cl_dev_status *ds = NULL;
	size_t nds = 0;
	const cli_opt opts[] = {{NULL, NULL, NULL}};
	int rc;

	CLI_PARSE("dev status", status_usage, argc, argv, opts, pos, 1, 2, &npos);
	rc = cli_open_room(pos[0], &c, id, &err);
	if (rc == 0)
		rc = cl_dev_status_get(c, id, npos > 1 ? pos[1] : NULL, &ds, &nds, &err);
	if (rc == 0 && nds == 0)
		printf("no development runs of yours in this room\n");
	for (size_t i = 0; rc == 0 && i < nds; i++)
		print_status(&ds[i]);
	cl_dev_status_free(ds, nds);
	cl_close(c);
	return rc ? fail("dev status", &err) : CLI_EXIT_OK;
}

/* ---- dev result ------------------------------------------------------------------ */

static const char result_usage[] =
    "usage: dcr dev result ROOM RUN [-o FILE|DIR] [--logs]\n"
    "Writes the result of your development run RUN: for SQL the CSV (with a\n"
    "header row) to stdout, FILE, or DIR/result.csv when -o names a directory;\n"
    "for Python and R every output file under -o DIR (created if missing).\n"
    "With --logs, the run's stdout and stderr instead (to stdout and stderr,\n"
    "or as DIR/stdout and DIR/stderr): a development run's logs are always\n"
    "its requester's. The bytes are checked against the SHA-256 the daemon\n"
    "signed into the log before anything is written.\n";

/* A whole ranged object of a development run (the logs, a python/r result
 * archive) into out, at most max bytes, checked against sha. */
static int dev_read_all(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *run,
                        const char *what, uint64_t max, const uint8_t sha[32], dcr_buf *out,
                        dcr_err *err)
{
	uint8_t *buf = dcr_malloc(DCR_CHUNK_BYTES), got[32];
	uint64_t size = 0;
	int rc = 0;

	for (;;) {
		int n = cl_dev_read(c, room, run, what, out->len, buf, DCR_CHUNK_BYTES, &size, err);
		if (n < 0) {
			rc = n;
			break;
		}
		if (n == 0)
			break;
		if (out->len + (uint64_t)n > max) {
			rc = dcr_err_set(err, DCR_ELIMIT, "the %s of run %s is larger than %llu bytes",
			                 what, run, (unsigned long long)max);
			break;
		}
		dcr_buf_append(out, buf, (size_t)n);
	}
	free(buf);
	if (rc == 0) {
		dcr_sha256(out->data, out->len, got);
		if (memcmp(got, sha, 32) != 0)
			rc = dcr_err_set(err, DCR_EINTEGRITY,
			                 "the %s of development run %s is not the one the log records",
			                 what, run);
	}
	return rc;
}

/* SQL: the CSV streamed to stdout or path (replaced once checked). */
static int dev_result_csv(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], const char *run,
                          const uint8_t sha[32], const char *path, dcr_err *err)
{
	char *tmp = path ? dcr_asprintf("%s.dcr-tmp", path) : NULL;
	dcr_sha256_ctx *h = dcr_sha256_new();
	uint8_t *buf = dcr_malloc(DCR_CHUNK_BYTES), got[32];
	uint64_t off = 0, size = 0;
	int fd = -1, rc = 0;

	if (tmp) {
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
		if (fd < 0)
			rc = dcr_err_set(err, -errno, "%s: %s", tmp, strerror(errno));
	}
	while (rc == 0) {
		int n = cl_dev_read(c, room, run, "result", off, buf, DCR_CHUNK_BYTES, &size, err);
		if (n <= 0) {
			rc = n;
			break;
		}
		dcr_sha256_update(h, buf, (size_t)n);
		if (fd >= 0 ? write_all(fd, buf, (size_t)n) != 0
		            : fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			rc = dcr_err_set(err, -EIO, "writing %s: %s", tmp ? tmp : "stdout",
			                 strerror(errno));
		off += (uint64_t)n;
	}
	if (rc == 0) {
		dcr_sha256_final(h, got);
		if (memcmp(got, sha, 32) != 0)
			rc = dcr_err_set(err, DCR_EINTEGRITY,
			                 "the result of development run %s is not the one the log "
			                 "records",
			                 run);
	}
	if (fd >= 0) {
		if (rc == 0 && fsync(fd) != 0)
			rc = dcr_err_set(err, -errno, "%s: %s", tmp, strerror(errno));
		if (close(fd) != 0 && rc == 0)
			rc = dcr_err_set(err, -errno, "%s: %s", tmp, strerror(errno));
		if (rc == 0 && rename(tmp, path) != 0)
			rc = dcr_err_set(err, -errno, "renaming %s to %s: %s", tmp, path,
			                 strerror(errno));
		if (rc)
			unlink(tmp);
		else
			fprintf(stderr, "dcr dev result: %llu bytes written to %s\n",
			        (unsigned long long)off, path);
	}
	free(buf);
	dcr_sha256_free(h);
	free(tmp);
	return rc;
}

int cli_cmd_dev_result(int argc, char **argv)
{
	const char *outp = NULL;
	bool logs = false;
	const cli_opt opts[] = {{"-o", &outp, NULL},
	                        {"--out", &outp, NULL},
	                        {"--logs", NULL, &logs},
	                        {NULL, NULL, NULL}};
	char *pos[2];
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES], sha[32];
	enum rm_dev_lang lang = RM_DEV_SQL;
	bool has_logs = false;
	dcr_buf buf;
	rm_state st;
	bool have_state = false;
	struct stat sb;
	int rc;

	CLI_PARSE("dev result", result_usage, argc, argv, opts, pos, 2, 2, NULL);
	dcr_buf_init(&buf);
	rc = cli_open_room(pos[0], &c, id, &err);
	if (rc == 0) {
		have_state = true;
		rc = tl_replay(c, id, &st, &err);
	}
	if (rc)
		goto out;
	{
		const rm_dev *dv = rm_state_dev(&st, pos[1]);
		if (!dv || dv->state == RM_RUN_QUEUED) {
			/* the daemon words who may read it and what is missing */
			uint8_t one;
			(void)cl_dev_read(c, id, pos[1], "result", 0, &one, 1, NULL, &err);
			rc = err.code ? err.code
			              : dcr_err_set(&err, DCR_ESTATE,
			                            "development run %s has not finished", pos[1]);
			goto out;
		}
		if (dv->state != RM_RUN_DONE && !logs) {
			bool l = dv->logs_blob && dv->logs_blob[0];
			rc = dcr_err_set(&err, DCR_ESTATE, "development run %s failed: %s (no result%s)",
			                 pos[1], dv->error ? dv->error : "",
			                 l ? "; --logs shows its logs" : "");
			goto out;
		}
		lang = dv->lang;
		has_logs = dv->logs_blob && dv->logs_blob[0];
		memcpy(sha, logs ? dv->logs_sha256 : dv->result_sha256, 32);
	}
	if (logs || lang != RM_DEV_SQL) {
		dcr_archive a;
		if (logs && !has_logs) {
			rc = dcr_err_set(&err, DCR_ENOTFOUND,
			                 "development run %s has no logs (%s)", pos[1],
			                 lang == RM_DEV_SQL ? "an SQL run writes none"
			                                    : "its script never started");
			goto out;
		}
		if (!logs && !outp) {
			rc = dcr_err_set(&err, DCR_EINVALID,
			                 "the result of a %s run is files: give -o DIR",
			                 rm_dev_lang_name(lang));
			goto out;
		}
		rc = dev_read_all(c, id, pos[1], logs ? "logs" : "result",
		                  DMN_DEV_RESULT_INPUT_BYTES_MAX, sha, &buf, &err);
		if (rc == 0)
			rc = dcr_archive_read(buf.data, buf.len, &a, &err);
		if (rc)
			goto out;
		if (outp) {
			rc = cli_write_archive(&a, outp, &err);
			if (rc == 0)
				fprintf(stderr, "dcr dev result: %zu file%s written under %s\n", a.n,
				        a.n == 1 ? "" : "s", outp);
		} else {
			const dcr_archive_entry *o = dcr_archive_find(&a, "stdout");
			const dcr_archive_entry *e = dcr_archive_find(&a, "stderr");
			if (o)
				fwrite(o->data, 1, o->len, stdout);
			if (e)
				fwrite(e->data, 1, e->len, stderr);
		}
		dcr_archive_release(&a);
	} else {
		char *path = NULL;
		if (outp && stat(outp, &sb) == 0 && S_ISDIR(sb.st_mode))
			path = dcr_asprintf("%s/result.csv", outp);
		else if (outp)
			path = dcr_strdup(outp);
		rc = dev_result_csv(c, id, pos[1], sha, path, &err);
		free(path);
	}
out:
	dcr_buf_release(&buf);
	if (have_state)
		rm_state_release(&st);
	cl_close(c);
	return rc ? fail("dev result", &err) : CLI_EXIT_OK;
}

/* ---- dev ------------------------------------------------------------------------- */

static const char dev_usage[] =
    "usage: dcr dev run ROOM FILE [--input NAME ...] [--wait] [--timeout SECONDS]\n"
    "       dcr dev status ROOM [RUN]\n"
    "       dcr dev result ROOM RUN [-o FILE|DIR] [--logs]\n"
    "Development runs: your own SQL, Python or R script over the data you may\n"
    "already read (needs the room's settings.development). Each command takes\n"
    "--help.\n";

int cli_cmd_dev(int argc, char **argv)
{
	if (argc < 2) {
		fputs(dev_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(dev_usage, stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "run") == 0)
		return cli_cmd_dev_run(argc - 1, argv + 1);
	if (strcmp(argv[1], "status") == 0)
		return cli_cmd_dev_status(argc - 1, argv + 1);
	if (strcmp(argv[1], "result") == 0)
		return cli_cmd_dev_result(argc - 1, argv + 1);
	fprintf(stderr, "dcr dev: unknown subcommand \"%s\"\n%s", argv[1], dev_usage);
	return CLI_EXIT_USAGE;
}
