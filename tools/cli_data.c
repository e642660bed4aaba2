/* cli_data.c: `dcr provision|deprovision|datasets|run|status|result`.
 *
 * Data moves in bounded chunks (cl_provision reads the file through a
 * callback, results are read DCR_CHUNK_BYTES at a time), so memory does not
 * grow with the file. What the commands print about a room comes from the
 * replayed log (tl_replay), never from a separate daemon-side summary, except
 * the transient "running" state of a run, which only the daemon knows. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static int fail(const char *cmd, dcr_err *err)
{
	tl_fail(cmd, err);
	return CLI_EXIT_FAIL;
}

static void hex32(const uint8_t *p, char out[65])
{
	dcr_hex_encode(p, 32, out);
}

/* ---- provision ------------------------------------------------------------- */

static const char provision_usage[] =
    "usage: dcr provision ROOM DATASET FILE\n"
    "Uploads FILE (CSV with a header row; \"-\" reads stdin) as DATASET of ROOM.\n"
    "The daemon validates every row against the schema; on success the signed\n"
    "dataset.provisioned event records rows, bytes and the file's SHA-256,\n"
    "which are printed after checking that they are those of the bytes sent.\n"
    "A rejected file changes nothing: the error names the line and column.\n"
    "Into an append dataset (\"drops\": \"append\") FILE is one drop, named by its\n"
    "file name: the same file (name and bytes) again is already in and changes\n"
    "nothing; the same name with other bytes replaces that drop.\n"
    "FILE's name (the part after the last '/'; \"stdin\" for \"-\") is recorded\n"
    "and shown to every participant: it must be 1 to 255 bytes of UTF-8 without\n"
    "control, line separator or bidirectional formatting characters, and not\n"
    "., .., schema.json, stats.json or status (docs/rules.md \"File names\").\n"
    "Shows progress on stderr when it is a terminal.\n";

/* Reads the file for cl_provision (which hashes what it sends and refuses
 * to sign a provision whose sha256 or size the daemon reports otherwise). */
struct fd_reader {
	int fd;
};

static int read_fd(void *ctx, void *buf, size_t cap)
{
	struct fd_reader *r = ctx;

	if (cap > INT32_MAX)
		cap = INT32_MAX;
	for (;;) {
		ssize_t n = read(r->fd, buf, cap);

		if (n >= 0)
			return (int)n;
		if (errno != EINTR)
			return -errno;
	}
}

static void provision_progress(void *ctx, uint64_t done, uint64_t total)
{
	cli_progress_update(ctx, done, total);
}

/* Into an append dataset: is the drop named base already in with the
 * bytes of fd (then *same, and nothing is sent: the same file counts
 * once)? fd is rewound. */
static int drop_already_in(cl_conn *c, const uint8_t id[ES_ROOM_ID_BYTES], const char *dataset,
                           const char *base, int fd, bool *same, dcr_err *err)
{
	rm_state st;
	const rm_drop *dr;
	uint8_t h[32], *buf = NULL;
	char sha[65];
	int rc = tl_replay(c, id, &st, err);
	if (rc)
		return rc;
	dr = rm_state_drop(&st, dataset, base);
	if (dr) {
		dcr_sha256_ctx *x = dcr_sha256_new();
		ssize_t n;
		buf = dcr_malloc(1 << 16);
		while ((n = read(fd, buf, 1 << 16)) > 0)
			dcr_sha256_update(x, buf, (size_t)n);
		dcr_sha256_final(x, h);
		dcr_sha256_free(x);
		if (n < 0 || lseek(fd, 0, SEEK_SET) < 0) {
			rc = dcr_err_set(err, -errno, "%s: %s", base, strerror(errno));
		} else if (memcmp(h, dr->sha256, 32) == 0) {
			*same = true;
			hex32(h, sha);
			printf("drop %s of %s is already in (sha256 %s): unchanged, counted once\n",
			       base, dataset, sha);
		}
	}
	free(buf);
	rm_state_release(&st);
	return rc;
}

int cli_cmd_provision(int argc, char **argv)
{
	char *pos[3];
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES];
	struct fd_reader rd = {.fd = -1};
	cli_progress prog;
	struct stat sb;
	uint64_t total = 0;
	const char *base;
	rm_state st;
	bool have_state = false;
	int rc;

	CLI_PARSE("provision", provision_usage, argc, argv, NULL, pos, 3, 3, NULL);
	if (strcmp(pos[2], "-") == 0) {
		rd.fd = STDIN_FILENO;
		base = "stdin";
	} else {
		rd.fd = open(pos[2], O_RDONLY | O_CLOEXEC);
		if (rd.fd < 0) {
			rc = dcr_err_set(&err, -errno, "%s: %s", pos[2], strerror(errno));
			goto out;
		}
		base = strrchr(pos[2], '/') ? strrchr(pos[2], '/') + 1 : pos[2];
	}
	if (fstat(rd.fd, &sb) == 0 && S_ISREG(sb.st_mode))
		total = (uint64_t)sb.st_size;
	else if (rd.fd != STDIN_FILENO && fstat(rd.fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		rc = dcr_err_set(&err, -EISDIR, "%s: is a directory", pos[2]);
		goto out;
	}
	rc = cli_open_room(pos[0], &c, id, &err);
	if (rc)
		goto out;
	if (rd.fd != STDIN_FILENO) {
		bool same = false;
		rc = drop_already_in(c, id, pos[1], base, rd.fd, &same, &err);
		if (rc || same)
			goto out;
	}
	cli_progress_init(&prog, "provision", pos[1]);
	rc =
	    cl_provision(c, id, pos[1], base, total, read_fd, &rd, provision_progress, &prog, &err);
	cli_progress_end(&prog);
	if (rc == DCR_EEXIST && strstr(err.msg, "counts once")) {
		/* the same drop (name and bytes) already in, read from stdin:
		 * the rules refused to count it twice (docs/rules.md "Drops") */
		printf("drop %s of %s is already in: unchanged, counted once\n", base, pos[1]);
		rc = 0;
		goto out;
	}
	if (rc)
		goto out;
	/* What was recorded, as the log says it. */
	have_state = true;
	rc = tl_replay(c, id, &st, &err);
	if (rc)
		goto out;
	{
		const rm_provision *p = rm_state_provision(&st, pos[1]);
		char sha[65];

		if (!p) {
			rc = dcr_err_set(&err, DCR_EINTEGRITY,
			                 "the daemon accepted %s but the log has no "
			                 "dataset.provisioned event for it",
			                 pos[1]);
			goto out;
		}
		const rm_drop *dr = p->ndrops ? rm_state_drop(&st, pos[1], base) : NULL;
		if (dr) {
			hex32(dr->sha256, sha);
			printf("dropped %s into %s: %llu rows, %llu bytes, sha256 %s\n", base,
			       p->dataset, (unsigned long long)dr->rows,
			       (unsigned long long)dr->bytes, sha);
			printf("%s now holds %zu drops, %llu rows\n", p->dataset, p->ndrops,
			       (unsigned long long)p->rows);
			goto out;
		}
		hex32(p->sha256, sha);
		printf("provisioned %s: %llu rows, %llu bytes, sha256 %s\n", p->dataset,
		       (unsigned long long)p->rows, (unsigned long long)p->bytes, sha);
	}
out:
	if (have_state)
		rm_state_release(&st);
	cl_close(c);
	if (rd.fd > STDIN_FILENO)
		close(rd.fd);
	return rc ? fail("provision", &err) : CLI_EXIT_OK;
}

/* ---- deprovision ------------------------------------------------------------------ */

int cli_cmd_deprovision(int argc, char **argv)
{
	static const char usage[] =
	    "usage: dcr deprovision ROOM DATASET [--drop FILE]\n"
	    "Withdraws a dataset you own from ROOM (dataset.deprovisioned); runs that\n"
	    "need it are refused until it is provisioned again.\n"
	    "--drop FILE: withdraws one drop of an append dataset, by its file name\n"
	    "(the name `dcr status` lists); the other drops stay.\n";
	const char *drop = NULL;
	const cli_opt opts[] = {{"--drop", &drop, NULL}, {NULL, NULL, NULL}};
	char *pos[2];
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES];
	dcr_buf body;
	int rc;

	CLI_PARSE("deprovision", usage, argc, argv, opts, pos, 2, 2, NULL);
	dcr_buf_init(&body);
	rc = cli_open_room(pos[0], &c, id, &err);
	if (rc)
		goto out;
	if (drop)
		rm_body_withdrawn(&body, pos[1], drop);
	else
		rm_body_deprovisioned(&body, pos[1]);
	rc = cl_submit(c, id, RM_EV_DEPROVISIONED, body.data, body.len, NULL, &err);
	if (rc)
		goto out;
	if (drop)
		printf("withdrew %s from %s\n", drop, pos[1]);
	else
		printf("deprovisioned %s\n", pos[1]);
out:
	dcr_buf_release(&body);
	cl_close(c);
	return rc ? fail("deprovision", &err) : CLI_EXIT_OK;
}

/* ---- datasets ------------------------------------------------------------------------- */

struct ds_row {
	char *room, *dataset, *status, *rows, *bytes, *file, *sha;
	char *stats; /* statistics JSON of a provisioned dataset, or NULL */
};

static void ds_row_free(struct ds_row *r)
{
	free(r->room);
	free(r->dataset);
	free(r->status);
	free(r->rows);
	free(r->bytes);
	free(r->file);
	free(r->sha);
	free(r->stats);
}

int cli_cmd_datasets(int argc, char **argv)
{
	static const char usage[] =
	    "usage: dcr datasets [--brief] [--json]\n"
	    "Lists the datasets you own in every room you take part in, with what is\n"
	    "provisioned (from each room's replayed log), then the columns and\n"
	    "statistics of each provisioned one (as `dcr stats` prints them).\n"
	    "--brief prints the list only. --json prints the daemon's list of what\n"
	    "you provisioned instead.\n";
	bool json = false, brief = false;
	const cli_opt opts[] = {
	    {"--json", NULL, &json}, {"--brief", NULL, &brief}, {NULL, NULL, NULL}};
	cl_conn *c = NULL;
	dcr_err err = {0};
	cl_room_info *rooms = NULL;
	size_t nrooms = 0, nrows = 0, cap = 0;
	struct ds_row *rows = NULL;
	uint8_t me[32];
	dcr_buf out;
	int rc;

	CLI_PARSE("datasets", usage, argc, argv, opts, NULL, 0, 0, NULL);
	dcr_buf_init(&out);
	rc = tl_connect(&c, &err);
	if (rc)
		goto out;
	if (json) {
		rc = cl_datasets(c, &out, &err);
		if (rc)
			goto out;
		fwrite(out.data, 1, out.len, stdout);
		if (out.len && out.data[out.len - 1] != '\n')
			fputc('\n', stdout);
		goto out;
	}
	dcr_key_public(cl_identity(c), me);
	rc = cl_rooms(c, &rooms, &nrooms, &err);
	if (rc)
		goto out;
	for (size_t i = 0; i < nrooms; i++) {
		uint8_t id[ES_ROOM_ID_BYTES];
		rm_state st;

		if (es_room_parse(rooms[i].id, id) != 0)
			continue;
		rc = tl_replay(c, id, &st, &err);
		if (rc) {
			rm_state_release(&st);
			dcr_err_prefix(&err, "room %s", rooms[i].id);
			goto out;
		}
		for (size_t d = 0; st.def && d < st.def->ndatasets; d++) {
			const rm_dataset *ds = &st.def->datasets[d];
			const rm_provision *p;
			struct ds_row *r;

			if (!rm_is_owner(st.def, me, ds->name))
				continue;
			if (nrows == cap) {
				cap = cap ? 2 * cap : 16;
				rows = dcr_realloc(rows, cap * sizeof *rows);
			}
			r = &rows[nrows++];
			p = rm_state_provision(&st, ds->name);
			r->room = dcr_strdup(st.def->name);
			r->dataset = dcr_strdup(ds->name);
			if (p) {
				char sha[65];

				hex32(p->sha256, sha);
				r->status = dcr_strdup("provisioned");
				r->rows = dcr_asprintf("%llu", (unsigned long long)p->rows);
				r->bytes = dcr_asprintf("%llu", (unsigned long long)p->bytes);
				r->file = p->ndrops ? dcr_asprintf("%zu drops", p->ndrops)
				                    : dcr_strdup(p->file ? p->file : "");
				r->sha = dcr_strdup(sha);
				r->stats = NULL;
				if (!brief && ds->kind == RM_DS_TABLE) {
					dcr_buf sj;
					dcr_buf_init(&sj);
					rc = cl_stats(c, id, ds->name, &sj, &err);
					if (rc == 0)
						r->stats = dcr_strdup(dcr_buf_cstr(&sj));
					dcr_buf_release(&sj);
					if (rc) {
						rm_state_release(&st);
						dcr_err_prefix(&err, "statistics of %s", ds->name);
						goto out;
					}
				}
			} else {
				r->status = dcr_strdup("-");
				r->rows = dcr_strdup("-");
				r->bytes = dcr_strdup("-");
				r->file = dcr_strdup("-");
				r->sha = dcr_strdup("-");
				r->stats = NULL;
			}
		}
		rm_state_release(&st);
	}
	{
		int w[6] = {4, 7, 6, 4, 5, 4};
		const char *hdr[7] = {"ROOM",  "DATASET", "STATUS", "ROWS",
		                      "BYTES", "FILE",    "SHA256"};

		for (size_t i = 0; i < nrows; i++) {
			const char *f[6] = {rows[i].room, rows[i].dataset, rows[i].status,
			                    rows[i].rows, rows[i].bytes,   rows[i].file};
			for (int k = 0; k < 6; k++)
				if ((int)strlen(f[k]) > w[k])
					w[k] = (int)strlen(f[k]);
		}
		printf("%-*s  %-*s  %-*s  %*s  %*s  %-*s  %s\n", w[0], hdr[0], w[1], hdr[1], w[2],
		       hdr[2], w[3], hdr[3], w[4], hdr[4], w[5], hdr[5], hdr[6]);
		for (size_t i = 0; i < nrows; i++)
			printf("%-*s  %-*s  %-*s  %*s  %*s  %-*s  %s\n", w[0], rows[i].room, w[1],
			       rows[i].dataset, w[2], rows[i].status, w[3], rows[i].rows, w[4],
			       rows[i].bytes, w[5], rows[i].file, rows[i].sha);
		for (size_t i = 0; i < nrows && rc == 0; i++) {
			if (!rows[i].stats)
				continue;
			char *title = dcr_asprintf("%s / %s", rows[i].room, rows[i].dataset);
			fputc('\n', stdout);
			rc = cli_print_stats(stdout, title, rows[i].stats, &err);
			free(title);
		}
	}
out:
	for (size_t i = 0; i < nrows; i++)
		ds_row_free(&rows[i]);
	free(rows);
	if (rooms)
		cl_rooms_free(rooms, nrooms);
	dcr_buf_release(&out);
	cl_close(c);
	return rc ? fail("datasets", &err) : CLI_EXIT_OK;
}

/* ---- run ----------------------------------------------------------------------------- */

static bool parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return false;
	*out = v;
	return true;
}

/* State of run_id: from the daemon's status of the computation's last run
 * when that is our run (it knows "running"), else from the log. Fills
 * state ("queued", "running", "done", "failed") and, when finished, the
 * outcome fields of out. */
static int poll_run(cl_conn *c, const uint8_t id[ES_ROOM_ID_BYTES], const char *comp,
                    const char *run_id, cl_run_status *out, dcr_err *err)
{
	rm_state st;
	const rm_run *r;
	int rc;

	rc = cl_run_status(c, id, comp, out, err);
	if (rc)
		return rc;
	if (strcmp(out->run_id, run_id) == 0)
		return 0;
	/* Someone ran the computation again since: ask the log about ours. */
	cl_run_status_release(out);
	memset(out, 0, sizeof *out);
	rc = tl_replay(c, id, &st, err);
	if (rc)
		goto out;
	r = rm_state_run(&st, run_id);
	if (!r) {
		rc = dcr_err_set(err, DCR_ENOTFOUND, "run %s is not in the log", run_id);
		goto out;
	}
	snprintf(out->run_id, sizeof out->run_id, "%s", run_id);
	snprintf(out->state, sizeof out->state, "%s",
	         r->state == RM_RUN_DONE     ? "done"
	         : r->state == RM_RUN_FAILED ? "failed"
	                                     : "queued");
	out->error = r->error ? dcr_strdup(r->error) : NULL;
	out->rows = r->rows;
	out->suppressed = r->suppressed;
	out->duration_ms = r->duration_ms;
	out->result_bytes = r->result_bytes;
out:
	rm_state_release(&st);
	return rc;
}

int cli_cmd_run(int argc, char **argv)
{
	static const char usage[] =
	    "usage: dcr run ROOM COMPUTATION [--wait] [--timeout SECONDS]\n"
	    "Requests a run (analysts of COMPUTATION only) and prints its id. With\n"
	    "--wait, waits until it is done or failed (at most --timeout seconds,\n"
	    "default 600, 0 = no limit) and prints the outcome; exits 1 if the run\n"
	    "failed or the wait timed out.\n";
	bool wait = false;
	const char *timeout_s = NULL;
	const cli_opt opts[] = {
	    {"--wait", NULL, &wait}, {"--timeout", &timeout_s, NULL}, {NULL, NULL, NULL}};
	char *pos[2];
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES];
	char run_id[33];
	uint64_t timeout = 600, start, sleep_ms = 50;
	cl_run_status rs;
	bool have_rs = false;
	int rc;

	memset(&rs, 0, sizeof rs);
	CLI_PARSE("run", usage, argc, argv, opts, pos, 2, 2, NULL);
	if (timeout_s && !parse_uint(timeout_s, 7 * 24 * 3600, &timeout)) {
		fprintf(stderr, "dcr run: --timeout: \"%s\" is not a number of seconds\n",
		        timeout_s);
		return CLI_EXIT_USAGE;
	}
	rc = cli_open_room(pos[0], &c, id, &err);
	if (rc)
		goto out;
	{
		/* a DP computation's request states the epsilon it spends */
		rm_state st;
		char eps[32];
		const rm_computation *comp;
		rc = tl_replay(c, id, &st, &err);
		comp = rc || !st.def ? NULL : rm_def_computation(st.def, pos[1]);
		if (!rc)
			rc = comp && comp->dp_epsilon
			         ? cl_run_eps(c, id, pos[1],
			                      rm_epsilon_format(comp->dp_epsilon, eps, sizeof eps),
			                      run_id, &err)
			         : cl_run(c, id, pos[1], run_id, &err);
		rm_state_release(&st);
	}
	if (rc)
		goto out;
	printf("%s\n", run_id);
	fflush(stdout);
	if (!wait)
		goto out;
	start = dcr_mono_ms();
	for (;;) {
		if (have_rs)
			cl_run_status_release(&rs);
		memset(&rs, 0, sizeof rs);
		have_rs = true;
		rc = poll_run(c, id, pos[1], run_id, &rs, &err);
		if (rc)
			goto out;
		if (strcmp(rs.state, "done") == 0 || strcmp(rs.state, "failed") == 0)
			break;
		if (timeout && dcr_mono_ms() - start >= timeout * 1000) {
			rc = dcr_err_set(&err, DCR_ETIMEOUT,
			                 "run %s still %s after %llu s (it goes on; see dcr "
			                 "status %s %s)",
			                 run_id, rs.state, (unsigned long long)timeout, pos[0],
			                 pos[1]);
			goto out;
		}
		usleep((useconds_t)(sleep_ms * 1000));
		if (sleep_ms < 500)
			sleep_ms *= 2;
	}
	if (strcmp(rs.state, "failed") == 0) {
		rc = dcr_err_set(&err, DCR_EINVALID, "run %s failed: %s%s%s", run_id,
		                 rs.error ? rs.error : "(no error message)",
		                 rs.detail ? ": " : "", rs.detail ? rs.detail : "");
		goto out;
	}
	printf("done: %llu rows, %llu suppressed, %llu bytes, %llu ms\n",
	       (unsigned long long)rs.rows, (unsigned long long)rs.suppressed,
	       (unsigned long long)rs.result_bytes, (unsigned long long)rs.duration_ms);
out:
	if (have_rs)
		cl_run_status_release(&rs);
	cl_close(c);
	return rc ? fail("run", &err) : CLI_EXIT_OK;
}

/* ---- status -------------------------------------------------------------------------- */

static void print_list(const char *label, char **v, size_t n, bool *first)
{
	if (!n)
		return;
	printf("%s%s ", *first ? "" : ", ", label);
	for (size_t i = 0; i < n; i++)
		printf("%s%s", i ? " " : "", v[i]);
	*first = false;
}

static int status_room(cl_conn *c, const uint8_t id[ES_ROOM_ID_BYTES], dcr_err *err)
{
	rm_state st;
	es_checkpoint cp;
	uint8_t me[32];
	char hex[ES_ROOM_HEX_BYTES], buf[RM_ACTOR_NAME_BYTES];
	const rm_participant *p;
	int rc;

	rc = cli_replay_verified(c, id, &st, &cp, err);
	if (rc)
		goto out;
	if (!st.def) {
		rc = dcr_err_set(err, DCR_ENOTFOUND, "room has no definition");
		goto out;
	}
	dcr_key_public(cl_identity(c), me);
	es_room_format(st.room, hex);
	printf("room      %s (%s)\n", st.def->name, hex);
	printf("status    %s", rm_status_name(st.status));
	if (st.status == RM_STOPPED && st.stop_reason && *st.stop_reason)
		printf(" (%s)", st.stop_reason);
	printf("\nevents    %llu\n", (unsigned long long)st.size);
	{
		char root[65];

		dcr_hex_encode(cp.root, 32, root);
		printf("log       root %s of %llu events: signed by the daemon, matches the "
		       "events replayed\n",
		       root, (unsigned long long)cp.size);
	}
	printf("creator   %s\n", rm_actor_name(st.def, st.daemon_key, st.creator, RM_ACTOR_FULL, buf, sizeof buf));
	printf("you       %s:", rm_actor_name(st.def, st.daemon_key, me, RM_ACTOR_FULL, buf, sizeof buf));
	{
		bool first = true;

		printf(" ");
		if (memcmp(me, st.creator, 32) == 0) {
			printf("creator");
			first = false;
		}
		p = rm_def_participant(st.def, me);
		if (p) {
			print_list("owner of", p->owner_of, p->nowner_of, &first);
			print_list("analyst of", p->analyst_of, p->nanalyst_of, &first);
			if (first)
				printf("participant (auditor)");
		} else if (first) {
			printf("not a participant");
		}
		printf("\n");
	}
	printf("datasets\n");
	for (size_t i = 0; i < st.def->ndatasets; i++) {
		const rm_dataset *ds = &st.def->datasets[i];
		const rm_provision *pv = rm_state_provision(&st, ds->name);

		if (pv) {
			char sha[65];

			hex32(pv->sha256, sha);
			printf("  %-24s provisioned by %s: %llu rows, %llu bytes, sha256 %s\n",
			       ds->name, rm_actor_name(st.def, st.daemon_key, pv->by, RM_ACTOR_FULL, buf,
			                     sizeof buf),
			       (unsigned long long)pv->rows, (unsigned long long)pv->bytes, sha);
			/* an append dataset: its drops, in drop order */
			for (size_t k = 0; k < pv->ndrops; k++) {
				const rm_drop *dr = &pv->drops[k];
				hex32(dr->sha256, sha);
				printf("  %-24s drop %s: %llu rows, %llu bytes, sha256 %.12s\n", "",
				       dr->file, (unsigned long long)dr->rows,
				       (unsigned long long)dr->bytes, sha);
			}
		} else {
			printf("  %-24s not provisioned%s\n", ds->name,
			       ds->required ? " (required)" : "");
		}
		if (ds->epsilon_budget) {
			/* the budget ledger, replayed from the log */
			uint64_t spent = rm_state_epsilon_spent(&st, ds->name);
			char x[32], y[32], z[32];
			printf("  %-24s epsilon budget %s: %s spent, %s left\n", "",
			       rm_epsilon_format(ds->epsilon_budget, x, sizeof x),
			       rm_epsilon_format(spent, y, sizeof y),
			       rm_epsilon_format(ds->epsilon_budget - spent, z, sizeof z));
		}
	}
	printf("computations\n");
	for (size_t i = 0; i < st.def->ncomputations; i++) {
		const rm_computation *comp = &st.def->computations[i];
		const rm_run *r = rm_state_last_run(&st, comp->name);

		printf("  %-24s ", comp->name);
		if (!r)
			printf("never run\n");
		else if (r->state == RM_RUN_DONE)
			printf("done, run %s: %llu rows, %llu suppressed, %llu ms\n", r->id,
			       (unsigned long long)r->rows, (unsigned long long)r->suppressed,
			       (unsigned long long)r->duration_ms);
		else if (r->state == RM_RUN_FAILED)
			printf("failed, run %s: %s\n", r->id, r->error ? r->error : "");
		else
			printf("queued, run %s\n", r->id);
	}
out:
	rm_state_release(&st);
	return rc;
}

static int status_computation(cl_conn *c, const uint8_t id[ES_ROOM_ID_BYTES], const char *comp,
                              dcr_err *err)
{
	cl_run_status rs;
	int rc;

	memset(&rs, 0, sizeof rs);
	rc = cl_run_status(c, id, comp, &rs, err);
	if (rc)
		return rc;
	printf("computation  %s\n", comp);
	if (strcmp(rs.state, "none") == 0 || !rs.run_id[0]) {
		printf("state        none (never run)\n");
		goto out;
	}
	printf("run          %s\n", rs.run_id);
	printf("state        %s\n", rs.state);
	if (strcmp(rs.state, "done") == 0) {
		printf("rows         %llu\n", (unsigned long long)rs.rows);
		printf("suppressed   %llu\n", (unsigned long long)rs.suppressed);
		printf("bytes        %llu\n", (unsigned long long)rs.result_bytes);
		printf("duration     %llu ms\n", (unsigned long long)rs.duration_ms);
	}
	if (rs.error && *rs.error)
		printf("error        %s\n", rs.error);
	if (rs.detail && *rs.detail)
		printf("detail       %s\n", rs.detail);
out:
	cl_run_status_release(&rs);
	return 0;
}

int cli_cmd_status(int argc, char **argv)
{
	static const char usage[] =
	    "usage: dcr status ROOM [COMPUTATION]\n"
	    "Without COMPUTATION: the room's status, event count, your roles, the\n"
	    "provisioned datasets (rows, bytes, sha256) and the last run of each\n"
	    "computation, all from the replayed log, whose Merkle root is checked\n"
	    "against the daemon's signed checkpoint. With COMPUTATION: its last run\n"
	    "(state, rows, suppressed rows, error) as the daemon sees it now.\n";
	char *pos[2];
	int npos = 0, rc;
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES];

	CLI_PARSE("status", usage, argc, argv, NULL, pos, 1, 2, &npos);
	rc = cli_open_room(pos[0], &c, id, &err);
	if (rc)
		goto out;
	if (npos == 2)
		rc = status_computation(c, id, pos[1], &err);
	else
		rc = status_room(c, id, &err);
out:
	cl_close(c);
	return rc ? fail("status", &err) : CLI_EXIT_OK;
}

/* ---- result ------------------------------------------------------------------------ */

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t w = write(fd, b, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ---- downloads: dcr result, dcr data ------------------------------------------------ */

/* A download to stdout or to FILE: FILE is written as a temporary file
 * beside it and renamed over it only when the caller found the bytes good,
 * so a refused or broken transfer leaves FILE as it was. Every byte is
 * hashed for that check. */
typedef struct dl {
	const char *cmd, *outp;
	char *tmp;
	int fd;
	uint64_t off;
	dcr_sha256_ctx *hash;
	cli_progress prog;
	char label[64]; /* "run ID, " before "N bytes written to FILE" */
} dl;

/* mode: of a new FILE, before the umask (an existing FILE keeps its own). */
static int dl_begin(dl *d, const char *cmd, const char *what, const char *outp, mode_t mode,
                    dcr_err *err)
{
	struct stat st;
	mode_t mask;

	memset(d, 0, sizeof *d);
	d->cmd = cmd;
	d->outp = outp && strcmp(outp, "-") != 0 ? outp : NULL;
	d->fd = STDOUT_FILENO;
	d->hash = dcr_sha256_new();
	cli_progress_init(&d->prog, cmd, what);
	if (!d->outp)
		return 0;
	d->tmp = dcr_asprintf("%s.dcr-XXXXXX", d->outp);
	d->fd = mkostemp(d->tmp, O_CLOEXEC);
	if (d->fd < 0) {
		int rc = dcr_err_set(err, -errno, "%s: %s", d->outp, strerror(errno));
		free(d->tmp);
		d->tmp = NULL;
		d->fd = STDOUT_FILENO;
		return rc;
	}
	mask = umask(0);
	umask(mask);
	if (stat(d->outp, &st) == 0 && S_ISREG(st.st_mode))
		mode = st.st_mode & 07777;
	else
		mode &= ~mask;
	if (fchmod(d->fd, mode) != 0)
		return dcr_err_set(err, -errno, "%s: %s", d->tmp, strerror(errno));
	return 0;
}

/* Appends the next n bytes (size: the announced total, for progress and
 * to refuse more than announced). */
static int dl_put(dl *d, const void *p, size_t n, uint64_t size, const char *what, dcr_err *err)
{
	int rc;

	if (d->off + n > size)
		return dcr_err_set(err, DCR_EINTEGRITY,
		                   "%s: the daemon sent more than the %llu bytes it announced", what,
		                   (unsigned long long)size);
	dcr_sha256_update(d->hash, p, n);
	rc = write_all(d->fd, p, n);
	if (rc)
		return dcr_err_set(err, rc, "writing %s: %s", d->outp ? d->outp : "standard output",
		                   strerror(-rc));
	d->off += n;
	cli_progress_update(&d->prog, d->off, size);
	return 0;
}

/* Reads the whole of `what` (size bytes announced) with rd, chunk by
 * chunk, into the download. */
typedef int (*dl_read_fn)(void *ctx, uint64_t off, void *buf, size_t cap, dcr_err *err);

static int dl_pull(dl *d, dl_read_fn rd, void *ctx, uint64_t size, const char *what,
                   dcr_err *err)
{
	uint8_t *buf = dcr_malloc(DCR_CHUNK_BYTES);
	int rc = 0;

	for (;;) {
		int n = rd(ctx, d->off, buf, DCR_CHUNK_BYTES, err);

		if (n < 0) {
			rc = n;
			if (!err->code)
				dcr_err_set(err, rc, "reading the %s: %s", what, dcr_strerror(rc));
			break;
		}
		if (n == 0)
			break;
		rc = dl_put(d, buf, (size_t)n, size, what, err);
		if (rc)
			break;
	}
	free(buf);
	if (rc == 0 && d->off != size)
		rc = dcr_err_set(err, DCR_EINTEGRITY, "%s: got %llu bytes, %llu were announced", what,
		                 (unsigned long long)d->off, (unsigned long long)size);
	return rc;
}

/* The whole transfer's SHA-256 (once, after the last dl_put). */
static void dl_sha256(dl *d, uint8_t sha[DCR_SHA256_BYTES])
{
	dcr_sha256_final(d->hash, sha);
	dcr_sha256_free(d->hash);
	d->hash = NULL;
}

/* Ends the download: with rc == 0 FILE gets the bytes (fsync, rename),
 * otherwise the temporary file goes. Returns rc or the error of finishing. */
static int dl_end(dl *d, int rc, dcr_err *err)
{
	cli_progress_end(&d->prog);
	dcr_sha256_free(d->hash);
	if (d->tmp) {
		if (!rc && fsync(d->fd) != 0)
			rc = dcr_err_set(err, -errno, "%s: %s", d->tmp, strerror(errno));
		if (close(d->fd) != 0 && !rc)
			rc = dcr_err_set(err, -errno, "%s: %s", d->tmp, strerror(errno));
		if (!rc && rename(d->tmp, d->outp) != 0)
			rc = dcr_err_set(err, -errno, "renaming %s to %s: %s", d->tmp, d->outp,
			                 strerror(errno));
		if (rc)
			unlink(d->tmp);
		free(d->tmp);
	}
	if (!rc && d->outp)
		fprintf(stderr, "dcr %s: %s%llu bytes written to %s\n", d->cmd, d->label,
		        (unsigned long long)d->off, d->outp);
	return rc;
}

/* The SHA-256 of what arrived must be the one the log records. */
static int check_sha(const uint8_t want[DCR_SHA256_BYTES], const uint8_t got[DCR_SHA256_BYTES],
                     const char *what, dcr_err *err)
{
	char a[65], b[65];

	if (memcmp(want, got, DCR_SHA256_BYTES) == 0)
		return 0;
	hex32(want, a);
	hex32(got, b);
	return dcr_err_set(err, DCR_EINTEGRITY, "%s: sha256 %s, but the log records %s", what, b,
	                   a);
}

struct result_src {
	cl_conn *c;
	const uint8_t *room;
	const char *run_id;
};

static int result_read(void *ctx, uint64_t off, void *buf, size_t cap, dcr_err *err)
{
	struct result_src *r = ctx;
	return cl_result_read(r->c, r->room, r->run_id, off, buf, cap, err);
}

/* ---- results of several files: python and r ------------------------------------ */

/* Reads a whole ranged object (a result archive, logs) into out, at most
 * DCR_ARCHIVE_BYTES_MAX bytes. */
typedef int (*whole_read_fn)(void *ctx, uint64_t off, void *buf, size_t cap, uint64_t *size,
                             dcr_err *err);

static int read_whole(whole_read_fn rd, void *ctx, dcr_buf *out, const char *what, dcr_err *err)
{
	uint64_t size = UINT64_MAX;

	for (;;) {
		uint64_t now = 0;
		int n;
		dcr_buf_reserve(out, DCR_CHUNK_BYTES);
		n = rd(ctx, out->len, out->data + out->len, DCR_CHUNK_BYTES, &now, err);
		if (n < 0)
			return n;
		if (size == UINT64_MAX)
			size = now;
		if (now != size || size > DCR_ARCHIVE_BYTES_MAX)
			return dcr_err_set(err, DCR_EPROTO, "%s: the size changed or is too large",
			                   what);
		out->len += (size_t)n;
		if (out->len > size)
			return dcr_err_set(err, DCR_EINTEGRITY,
			                   "%s: the daemon sent more than the %llu bytes it announced",
			                   what, (unsigned long long)size);
		if (n == 0 || out->len == size)
			break;
	}
	if (out->len != size)
		return dcr_err_set(err, DCR_EINTEGRITY, "%s: got %zu bytes, %llu were announced",
		                   what, out->len, (unsigned long long)size);
	return 0;
}

struct ranged_src {
	cl_conn *c;
	const uint8_t *room;
	const char *run_id;
	uint64_t size; /* result: from result.open */
};

static int result_read_whole(void *ctx, uint64_t off, void *buf, size_t cap, uint64_t *size,
                             dcr_err *err)
{
	struct ranged_src *r = ctx;
	*size = r->size;
	return cl_result_read(r->c, r->room, r->run_id, off, buf, cap, err);
}

static int logs_read_whole(void *ctx, uint64_t off, void *buf, size_t cap, uint64_t *size,
                           dcr_err *err)
{
	struct ranged_src *r = ctx;
	return cl_logs_read(r->c, r->room, r->run_id, off, buf, cap, size, err);
}

/* mkdir -p of the directories of path below root (path relative,
 * validated by dcr_archive_read: no "..", no empty component). */
static int make_parents(const char *root, const char *path, dcr_err *err)
{
	char *full = dcr_asprintf("%s/%s", root, path);
	int rc = 0;

	for (char *p = full + strlen(root) + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = 0;
		if (mkdir(full, 0777) != 0 && errno != EEXIST)
			rc = dcr_err_set(err, -errno, "%s: %s", full, strerror(errno));
		*p = '/';
		if (rc)
			break;
	}
	free(full);
	return rc;
}

/* Writes data to root/name as a temporary file renamed into place. */
static int write_file_at(const char *root, const char *name, const void *data, size_t len,
                         dcr_err *err)
{
	char *path = dcr_asprintf("%s/%s", root, name);
	char *tmp = dcr_asprintf("%s.dcr-XXXXXX", path);
	int fd = -1, rc = make_parents(root, name, err);

	if (rc == 0) {
		fd = mkostemp(tmp, O_CLOEXEC);
		if (fd < 0)
			rc = dcr_err_set(err, -errno, "%s: %s", tmp, strerror(errno));
	}
	if (rc == 0) {
		mode_t mask = umask(0);
		umask(mask);
		if (fchmod(fd, 0666 & ~mask) != 0)
			rc = dcr_err_set(err, -errno, "%s: %s", tmp, strerror(errno));
	}
	if (rc == 0 && (rc = write_all(fd, data, len)) != 0)
		dcr_err_set(err, rc, "writing %s: %s", tmp, strerror(-rc));
	if (fd >= 0 && close(fd) != 0 && rc == 0)
		rc = dcr_err_set(err, -errno, "%s: %s", tmp, strerror(errno));
	if (rc == 0 && rename(tmp, path) != 0)
		rc = dcr_err_set(err, -errno, "renaming %s to %s: %s", tmp, path, strerror(errno));
	if (rc && fd >= 0)
		unlink(tmp);
	free(tmp);
	free(path);
	return rc;
}

int cli_write_archive(const dcr_archive *a, const char *dir, dcr_err *err)
{
	int rc = 0;

	if (mkdir(dir, 0777) != 0 && errno != EEXIST)
		return dcr_err_set(err, -errno, "%s: %s", dir, strerror(errno));
	for (size_t i = 0; rc == 0 && i < a->n; i++) {
		char *name = dcr_strndup(a->e[i].name, a->e[i].name_len);
		rc = write_file_at(dir, name, a->e[i].data, a->e[i].len, err);
		free(name);
	}
	return rc;
}

/* dcr result of a python/r/synthetic computation: the archive of its
 * output files, checked against the log, written under DIR; without -o,
 * the tabular result (dataset.csv) to stdout when the computation declares
 * columns (a synthetic one always has a table). */
static int result_script(cl_conn *c, const uint8_t id[ES_ROOM_ID_BYTES],
                         const rm_computation *comp, const char *outp, dcr_err *err)
{
	struct ranged_src src = {c, id, NULL, 0};
	char run_id[33] = "", what[64];
	dcr_buf buf;
	dcr_archive a;
	bool have_a = false;
	uint8_t sha[DCR_SHA256_BYTES];
	rm_state st;
	bool have_state = false;
	int rc;

	dcr_buf_init(&buf);
	if (!outp && !comp->ncolumns && comp->kind != RM_COMP_SYNTHETIC)
		return dcr_err_set(err, DCR_EINVALID,
		                   "the result of %s computation %s is files: give -o DIR to write "
		                   "them",
		                   rm_compkind_name(comp->kind), comp->name);
	rc = cl_result_open(c, id, comp->name, run_id, &src.size, err);
	if (rc)
		goto out;
	src.run_id = run_id;
	snprintf(what, sizeof what, "result of run %s", run_id);
	rc = read_whole(result_read_whole, &src, &buf, what, err);
	if (rc)
		goto out;
	dcr_sha256(buf.data, buf.len, sha);
	have_state = true;
	rc = tl_replay(c, id, &st, err);
	if (rc)
		goto out;
	{
		const rm_run *r = rm_state_run(&st, run_id);
		if (!r || r->state != RM_RUN_DONE)
			rc = dcr_err_set(err, DCR_EINTEGRITY,
			                 "run %s is not a completed run in the room's log", run_id);
		else
			rc = check_sha(r->result_sha256, sha, what, err);
	}
	if (rc == 0)
		rc = dcr_archive_read(buf.data, buf.len, &a, err);
	if (rc)
		goto out;
	have_a = true;
	if (outp) {
		rc = cli_write_archive(&a, outp, err);
		if (rc == 0)
			fprintf(stderr, "dcr result: run %s, %zu files written to %s\n", run_id, a.n,
			        outp);
	} else {
		const dcr_archive_entry *e = dcr_archive_find(&a, "dataset.csv");
		if (!e)
			rc = dcr_err_set(err, DCR_EINTEGRITY, "%s: no dataset.csv in the result",
			                 what);
		else if ((rc = write_all(STDOUT_FILENO, e->data, e->len)) != 0)
			dcr_err_set(err, rc, "writing standard output: %s", strerror(-rc));
	}
out:
	if (have_a)
		dcr_archive_release(&a);
	if (have_state)
		rm_state_release(&st);
	dcr_buf_release(&buf);
	return rc;
}

int cli_cmd_logs(int argc, char **argv)
{
	static const char usage[] =
	    "usage: dcr logs ROOM COMPUTATION [-o DIR]\n"
	    "Prints the standard output and standard error of the last finished run of\n"
	    "python or r COMPUTATION (its stdout to stdout, its stderr to stderr), or\n"
	    "writes them as DIR/stdout and DIR/stderr. Analysts only, and only as the\n"
	    "definition's \"logs\" allows: never (the default), on_error (a failed\n"
	    "run) or always. The bytes are checked against the SHA-256 in the log.\n";
	const char *outp = NULL;
	const cli_opt opts[] = {{"-o", &outp, NULL}, {"--out", &outp, NULL}, {NULL, NULL, NULL}};
	char *pos[2];
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES], sha[DCR_SHA256_BYTES];
	cl_run_status rs;
	dcr_buf buf;
	dcr_archive a;
	bool have_a = false, have_state = false, have_rs = false;
	rm_state st;
	char what[64];
	int rc;

	CLI_PARSE("logs", usage, argc, argv, opts, pos, 2, 2, NULL);
	dcr_buf_init(&buf);
	memset(&rs, 0, sizeof rs);
	rc = cli_open_room(pos[0], &c, id, &err);
	if (rc == 0) {
		rc = cl_run_status(c, id, pos[1], &rs, &err);
		have_rs = rc == 0;
	}
	if (rc == 0 && (!rs.run_id[0] || (strcmp(rs.state, "done") != 0 &&
	                                  strcmp(rs.state, "failed") != 0)))
		rc = dcr_err_set(&err, DCR_ENOTFOUND, "computation %s has no finished run (%s)",
		                 pos[1], rs.state);
	if (rc)
		goto out;
	snprintf(what, sizeof what, "logs of run %s", rs.run_id);
	{
		struct ranged_src src = {c, id, rs.run_id, 0};
		rc = read_whole(logs_read_whole, &src, &buf, what, &err);
	}
	if (rc)
		goto out;
	dcr_sha256(buf.data, buf.len, sha);
	have_state = true;
	rc = tl_replay(c, id, &st, &err);
	if (rc)
		goto out;
	{
		const rm_run *r = rm_state_run(&st, rs.run_id);
		if (!r || !r->logs_blob)
			rc = dcr_err_set(&err, DCR_EINTEGRITY, "run %s has no logs in the room's log",
			                 rs.run_id);
		else
			rc = check_sha(r->logs_sha256, sha, what, &err);
	}
	if (rc == 0)
		rc = dcr_archive_read(buf.data, buf.len, &a, &err);
	if (rc)
		goto out;
	have_a = true;
	if (outp) {
		rc = cli_write_archive(&a, outp, &err);
	} else {
		const dcr_archive_entry *o = dcr_archive_find(&a, "stdout");
		const dcr_archive_entry *e = dcr_archive_find(&a, "stderr");
		fflush(stdout);
		if (o && (rc = write_all(STDOUT_FILENO, o->data, o->len)) != 0)
			dcr_err_set(&err, rc, "writing standard output: %s", strerror(-rc));
		if (rc == 0 && e && (rc = write_all(STDERR_FILENO, e->data, e->len)) != 0)
			dcr_err_set(&err, rc, "writing standard error: %s", strerror(-rc));
	}
out:
	if (have_a)
		dcr_archive_release(&a);
	if (have_state)
		rm_state_release(&st);
	if (have_rs)
		cl_run_status_release(&rs);
	dcr_buf_release(&buf);
	cl_close(c);
	return rc ? fail("logs", &err) : CLI_EXIT_OK;
}

int cli_cmd_result(int argc, char **argv)
{
	static const char usage[] =
	    "usage: dcr result ROOM COMPUTATION [-o FILE|DIR]\n"
	    "Writes the result CSV (with a header row) of the last completed run of\n"
	    "COMPUTATION to stdout or FILE (analysts only; recorded in the log as\n"
	    "result.retrieved). The bytes are checked against the result SHA-256\n"
	    "the daemon signed into the log. FILE is replaced only once the whole\n"
	    "result arrived and checked. Shows progress on stderr when it is a\n"
	    "terminal.\n"
	    "For a python or r computation the result is its output files: -o DIR\n"
	    "writes every one of them under DIR (created if missing); without -o,\n"
	    "its tabular result (dataset.csv) goes to stdout when the computation\n"
	    "declares columns.\n"
	    "For a synthetic computation the result is two files: dataset.csv, the\n"
	    "synthetic table (to stdout without -o), and report.json, its privacy and\n"
	    "quality report (-o DIR writes both).\n";
	const char *outp = NULL;
	const cli_opt opts[] = {{"-o", &outp, NULL}, {"--out", &outp, NULL}, {NULL, NULL, NULL}};
	char *pos[2];
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES], sha[DCR_SHA256_BYTES];
	char run_id[33] = "", what[64];
	uint64_t size = 0;
	dl d;
	int rc;
	rm_state st;
	bool have_state = false;

	CLI_PARSE("result", usage, argc, argv, opts, pos, 2, 2, NULL);
	{
		/* python, r and synthetic: files, not one CSV */
		cl_conn *c0 = NULL;
		rm_state s0;
		bool script = false;
		rc = cli_open_room(pos[0], &c0, id, &err);
		if (rc == 0 && (rc = tl_replay(c0, id, &s0, &err)) == 0) {
			const rm_computation *cp =
			    s0.def ? rm_def_computation(s0.def, pos[1]) : NULL;
			script = cp && (cp->kind == RM_COMP_PYTHON || cp->kind == RM_COMP_R ||
			                cp->kind == RM_COMP_SYNTHETIC);
			if (script)
				rc = result_script(c0, id, cp, outp && strcmp(outp, "-") ? outp : NULL,
				                   &err);
			rm_state_release(&s0);
		}
		cl_close(c0);
		if (rc || script)
			return rc ? fail("result", &err) : CLI_EXIT_OK;
	}
	rc = dl_begin(&d, "result", pos[1], outp, 0666, &err);
	if (rc == 0)
		rc = cli_open_room(pos[0], &c, id, &err);
	if (rc == 0)
		rc = cl_result_open(c, id, pos[1], run_id, &size, &err);
	if (rc)
		goto out;
	snprintf(what, sizeof what, "result of run %s", run_id);
	snprintf(d.label, sizeof d.label, "run %s, ", run_id);
	{
		struct result_src src = {c, id, run_id};
		rc = dl_pull(&d, result_read, &src, size, what, &err);
	}
	if (rc)
		goto out;
	/* The bytes must be the result the daemon signed into the log. */
	dl_sha256(&d, sha);
	have_state = true;
	rc = tl_replay(c, id, &st, &err);
	if (rc)
		goto out;
	{
		const rm_run *r = rm_state_run(&st, run_id);

		if (!r || r->state != RM_RUN_DONE)
			rc = dcr_err_set(&err, DCR_EINTEGRITY,
			                 "run %s is not a completed run in the room's log", run_id);
		else
			rc = check_sha(r->result_sha256, sha, what, &err);
	}
out:
	if (have_state)
		rm_state_release(&st);
	cl_close(c);
	rc = dl_end(&d, rc, &err);
	return rc ? fail("result", &err) : CLI_EXIT_OK;
}

struct data_src {
	cl_conn *c;
	const uint8_t *room;
	const char *dataset;
	const uint8_t *sha256; /* the provision the log records: reads are pinned to it */
	uint64_t size;
	const char *drop; /* one drop of an append dataset; NULL: the provisioned file */
};

static int data_read(void *ctx, uint64_t off, void *buf, size_t cap, dcr_err *err)
{
	struct data_src *x = ctx;
	uint64_t now = 0;
	int n = x->drop ? cl_drop_read(x->c, x->room, x->dataset, x->drop, x->sha256, off, buf,
	                               cap, &now, err)
	                : cl_data_read(x->c, x->room, x->dataset, x->sha256, off, buf, cap, &now,
	                               err);

	if (n >= 0 && now != x->size)
		return dcr_err_set(err, DCR_ESTATE,
		                   "dataset %s was provisioned again during the download: run the "
		                   "command again",
		                   x->dataset);
	return n;
}

int cli_cmd_data(int argc, char **argv)
{
	static const char usage[] =
	    "usage: dcr data ROOM DATASET [--drop NAME] [-o FILE]\n"
	    "Writes the file provisioned for DATASET, as it was uploaded, to stdout or\n"
	    "FILE (the dataset's owners only: nobody else ever reads its rows). The\n"
	    "bytes are checked against the SHA-256 in the dataset.provisioned event;\n"
	    "FILE is replaced only once the whole file arrived and checked. Shows\n"
	    "progress on stderr when it is a terminal. --drop NAME: one drop of an\n"
	    "append dataset, by its file name.\n";
	const char *outp = NULL, *drop = NULL;
	const cli_opt opts[] = {{"-o", &outp, NULL},
	                        {"--out", &outp, NULL},
	                        {"--drop", &drop, NULL},
	                        {NULL, NULL, NULL}};
	char *pos[2];
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES], sha[DCR_SHA256_BYTES];
	char what[192];
	const rm_provision *p = NULL;
	dl d;
	int rc;
	rm_state st;
	bool have_state = false;

	CLI_PARSE("data", usage, argc, argv, opts, pos, 2, 2, NULL);
	snprintf(what, sizeof what, "file of dataset %s", pos[1]);
	rc = dl_begin(&d, "data", pos[1], outp, 0600, &err); /* raw rows: owner only */
	if (rc == 0)
		rc = cli_open_room(pos[0], &c, id, &err);
	if (rc)
		goto out;
	/* The log first: the provision the bytes must match. */
	have_state = true;
	rc = tl_replay(c, id, &st, &err);
	if (rc)
		goto out;
	p = rm_state_provision(&st, pos[1]);
	if (!st.def || !rm_def_dataset(st.def, pos[1])) {
		rc = dcr_err_set(&err, DCR_ENOTFOUND, "no dataset named \"%s\" in this room", pos[1]);
		goto out;
	}
	if (!p) {
		rc = dcr_err_set(&err, DCR_ENOTFOUND, "dataset %s is not provisioned", pos[1]);
		goto out;
	}
	const uint8_t *want = p->sha256;
	uint64_t size = p->bytes;
	if (rm_def_dataset(st.def, pos[1])->append) {
		/* a drop folder: one drop, by its name */
		const rm_drop *dr = drop ? rm_state_drop(&st, pos[1], drop) : NULL;
		if (!drop)
			rc = dcr_err_set(&err, DCR_EINVALID,
			                 "dataset %s is an append dataset: name one drop with --drop "
			                 "(dcr status lists them)",
			                 pos[1]);
		else if (!dr)
			rc = dcr_err_set(&err, DCR_ENOTFOUND, "dataset %s has no drop named \"%s\"",
			                 pos[1], drop);
		if (rc)
			goto out;
		want = dr->sha256;
		size = dr->bytes;
		snprintf(what, sizeof what, "drop %.60s of dataset %s", drop, pos[1]);
	} else if (drop) {
		rc = dcr_err_set(&err, DCR_EINVALID, "dataset %s is not an append dataset: it has no "
		                                     "drops",
		                 pos[1]);
		goto out;
	}
	{
		struct data_src src = {c, id, pos[1], want, size, drop};
		rc = dl_pull(&d, data_read, &src, size, what, &err);
	}
	if (rc)
		goto out;
	dl_sha256(&d, sha);
	rc = check_sha(want, sha, what, &err);
out:
	if (have_state)
		rm_state_release(&st);
	cl_close(c);
	rc = dl_end(&d, rc, &err);
	return rc ? fail("data", &err) : CLI_EXIT_OK;
}
