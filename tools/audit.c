/* audit.c: `dcr audit`, the participant's and auditor's view of a room's log.
 *
 *   log ROOM|FILE         one human line per event (rm_describe, then rm_apply)
 *   export ROOM           the whole log, keys and latest checkpoint in one file
 *   verify FILE           offline: signatures, rules (rm_apply), Merkle root,
 *                         signed checkpoint, optionally an older checkpoint
 *   replay FILE           the room's state after each event (or one)
 *   proof ROOM SEQ        inclusion proof of one event, as a file
 *   verify-proof FILE     offline check of such a file
 *   checkpoint ROOM       the latest signed checkpoint, as a file
 *   witness ROOM          the checkpoint this client remembers (witness.h),
 *                         --list, --forget, --evidence FILE
 *
 * Commands that take FILE never open a socket: an auditor needs only the
 * file (and, to pin it, the daemon's public key). The checks themselves live
 * in audit_core.c so tests and the bench run exactly what `verify` runs;
 * this file parses arguments, talks to the daemon and prints. */
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "audit_core.h"

#define AU_CMD "audit"

static const char usage_main[] =
    "usage: dcr audit COMMAND [ARGS]\n"
    "\n"
    "Read and check a room's tamper-evident event log.\n"
    "\n"
    "commands (each has --help):\n"
    "  log ROOM|FILE           the log as text, one line per event\n"
    "  export ROOM [-o FILE]   the log, keys and latest signed checkpoint in one file\n"
    "  verify FILE [--checkpoint OLD] [--daemon-key KEY]\n"
    "                          check an export offline (exit 0 valid, 1 invalid)\n"
    "  replay FILE [--at SEQ]  the room's state after each event (or at SEQ)\n"
    "  proof ROOM SEQ [-o FILE]\n"
    "                          inclusion proof of one event against the checkpoint\n"
    "  verify-proof FILE [--daemon-key KEY]\n"
    "                          check a proof file offline\n"
    "  checkpoint ROOM [-o FILE]\n"
    "                          the latest signed checkpoint (for verify --checkpoint)\n"
    "  witness ROOM [--json] | --list | --evidence FILE\n"
    "                          the checkpoint this client remembers (and checks\n"
    "                          every host against); evidence of a lying host\n"
    "\n"
    "File formats: docs/event-format.md. Guide: docs/audit.md.\n";

/* ---- helpers -------------------------------------------------------------- */

static int fail(const char *sub, const dcr_err *err)
{
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "audit %s", sub);
	tl_fail(cmd, err);
	return CLI_EXIT_FAIL;
}

/* Writes bytes to path, or to stdout for NULL or "-". */
static int write_out(const char *path, const dcr_buf *b, dcr_err *err)
{
	if (!path || strcmp(path, "-") == 0) {
		if (isatty(STDOUT_FILENO))
			return dcr_err_set(err, DCR_EINVALID,
			                   "not writing a binary file to a terminal: use -o FILE "
			                   "or redirect the output");
		if (b->len && fwrite(b->data, 1, b->len, stdout) != b->len)
			return dcr_err_set(err, -EIO, "standard output: write failed");
		if (fflush(stdout) != 0)
			return dcr_err_set(err, -errno, "standard output: %s", strerror(errno));
		return 0;
	}
	return dcr_write_file_atomic(path, b->data, b->len, 0644, err);
}

static bool is_regular_file(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int parse_seq(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

static int parse_daemon_key(const char *sub, const char *s, uint8_t key[32])
{
	if (dcr_pub_parse(s, key) != 0) {
		fprintf(stderr, "dcr audit %s: --daemon-key: not an ed25519:<base64> public key\n",
		        sub);
		return CLI_EXIT_USAGE;
	}
	return 0;
}

static void print_key_line(FILE *f, const uint8_t key[32])
{
	char *s = dcr_pub_format(key);
	fputs(s ? s : "?", f);
	free(s);
}

/* Reads and decodes an export file. bytes must outlive x. */
static int load_export(const char *path, dcr_buf *bytes, au_export *x, dcr_err *err)
{
	int rc = cli_read_input(path, AU_EXPORT_BYTES_MAX, bytes, err);
	if (rc)
		return rc;
	rc = au_export_decode(bytes->data, bytes->len, x, err);
	if (rc)
		dcr_err_prefix(err, "%s", path);
	return rc;
}

/* The host's latest checkpoint of room, checked by the witness. */
static int witness_checkpoint(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], es_checkpoint *cp,
                              dcr_err *err)
{
	cl_witness *w = NULL;
	int rc = cl_witness_new(cl_server_name(c), room, NULL, &w, err);

	if (rc == 0)
		rc = cl_witness_checkpoint(c, w, cp, err);
	cl_witness_free(w);
	return rc;
}

/* ---- log ------------------------------------------------------------------ */

static const char usage_log[] =
    "usage: dcr audit log ROOM|FILE\n"
    "\n"
    "Prints the room's log, one line per event: UTC time, actor (email, or\n"
    "dcrd for the daemon), what happened. ROOM is a room id or name on the\n"
    "daemon; FILE an export file (read offline). Every event's signature is\n"
    "checked and the log replayed with the room rules; the first event that\n"
    "fails stops the listing (exit 1).\n";

typedef struct log_ctx {
	const uint8_t *room;
	rm_state st;
	dcr_buf out; /* printed once the witness accepted the log */
	dcr_err err;
} log_ctx;

static int log_print(void *ctx, uint64_t seq, const es_event *ev, const rm_state *st)
{
	(void)ctx;
	(void)seq;
	char *line = rm_describe(st, ev);
	puts(line ? line : "?");
	free(line);
	return 0;
}

/* Online: one event from the daemon. */
static int log_one(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	log_ctx *l = ctx;
	es_event ev;
	int rc = au_check_entry(l->room, seq, entry, n, &ev, &l->err);
	if (rc)
		return rc;
	{
		char *line = rm_describe(&l->st, &ev);
		dcr_buf_append_str(&l->out, line ? line : "?");
		dcr_buf_append_u8(&l->out, '\n');
		free(line);
	}
	rc = au_apply(&l->st, &ev, seq, &l->err);
	es_event_release(&ev);
	return rc;
}

static int audit_log(int argc, char **argv)
{
	char *pos[1];
	dcr_err err;
	int rc;

	CLI_PARSE("audit log", usage_log, argc, argv, NULL, pos, 1, 1, NULL);
	dcr_err_clear(&err);
	if (is_regular_file(pos[0])) {
		dcr_buf bytes;
		au_export x;
		rm_state st;
		dcr_buf_init(&bytes);
		rc = load_export(pos[0], &bytes, &x, &err);
		if (rc) {
			dcr_buf_release(&bytes);
			return fail("log", &err);
		}
		rm_state_init(&st, x.daemon_key);
		rc = au_replay(&x, x.n, &st, log_print, NULL, NULL, &err);
		fflush(stdout);
		rm_state_release(&st);
		au_export_release(&x);
		dcr_buf_release(&bytes);
		return rc ? fail("log", &err) : CLI_EXIT_OK;
	}

	cl_conn *c = NULL;
	uint8_t room[ES_ROOM_ID_BYTES];
	log_ctx l;
	memset(&l, 0, sizeof(l));
	if ((rc = cli_open_room(pos[0], &c, room, &err)))
		return fail("log", &err);
	l.room = room;
	rm_state_init(&l.st, cl_daemon_key(c));
	dcr_buf_init(&l.out);
	{
		cl_witness *w = NULL;
		rc = cl_witness_new(cl_server_name(c), room, NULL, &w, &err);
		if (rc == 0)
			rc = cl_witness_events(c, w, log_one, &l, NULL, &err);
		cl_witness_free(w);
	}
	/* Lines up to a rule failure are printed; nothing of a log the
	 * witness refused. */
	if ((rc == 0 || l.err.code) && l.out.len)
		fwrite(l.out.data, 1, l.out.len, stdout);
	fflush(stdout);
	if (rc && l.err.code)
		err = l.err;
	dcr_buf_release(&l.out);
	rm_state_release(&l.st);
	cl_close(c);
	return rc ? fail("log", &err) : CLI_EXIT_OK;
}

/* ---- export --------------------------------------------------------------- */

static const char usage_export[] =
    "usage: dcr audit export ROOM [-o FILE]\n"
    "\n"
    "Writes the room's whole log to FILE (default: standard output) as one\n"
    "self-contained file: every event exactly as stored and signed, the\n"
    "participants' public keys, the daemon's public key and the latest signed\n"
    "checkpoint. Check it offline with `dcr audit verify FILE`. The format is\n"
    "specified in docs/event-format.md.\n";

typedef struct export_ctx {
	const uint8_t *room;
	dcr_buf all; /* entries back to back */
	size_t *off; /* offset of entry i in all */
	size_t *len;
	uint64_t n, cap;
	rm_state st;
	bool replay_ok;
	dcr_err rerr;
} export_ctx;

static int export_one(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	export_ctx *e = ctx;
	es_event ev;

	if (seq != e->n)
		return DCR_EPROTO;
	if (e->n >= AU_EVENTS_MAX)
		return DCR_ELIMIT;
	if (e->n == e->cap) {
		e->cap = e->cap ? 2 * e->cap : 1024;
		e->off = dcr_realloc(e->off, e->cap * sizeof(*e->off));
		e->len = dcr_realloc(e->len, e->cap * sizeof(*e->len));
	}
	e->off[e->n] = e->all.len;
	e->len[e->n] = n;
	dcr_buf_append(&e->all, entry, n);
	e->n++;
	/* Replayed only to list the participants; the file is written as the
	 * daemon serves it, and verify says what is wrong with it. */
	if (e->replay_ok) {
		if (au_check_entry(e->room, seq, entry, n, &ev, &e->rerr) == 0) {
			if (au_apply(&e->st, &ev, seq, &e->rerr) != 0)
				e->replay_ok = false;
			es_event_release(&ev);
		} else {
			e->replay_ok = false;
		}
	}
	return 0;
}

static int audit_export(int argc, char **argv)
{
	const char *outp = NULL;
	const cli_opt opts[] = {{"-o", &outp, NULL}, {"--output", &outp, NULL}, {NULL, NULL, NULL}};
	char *pos[1];
	uint8_t room[ES_ROOM_ID_BYTES];
	cl_conn *c = NULL;
	cl_witness *w = NULL;
	es_checkpoint cp;
	export_ctx e;
	dcr_buf out;
	dcr_err err;
	const uint8_t **ents = NULL;
	int rc;

	CLI_PARSE("audit export", usage_export, argc, argv, opts, pos, 1, 1, NULL);
	dcr_err_clear(&err);
	memset(&e, 0, sizeof(e));
	dcr_buf_init(&e.all);
	dcr_buf_init(&out);
	if ((rc = cli_open_room(pos[0], &c, room, &err)))
		return fail("export", &err);
	rm_state_init(&e.st, cl_daemon_key(c));
	e.room = room;
	e.replay_ok = true;
	/* The witness fetches the latest checkpoint (checked against the one
	 * this client remembers), then exactly the events it covers, whose
	 * root must be the checkpoint's: later appends do not make the file
	 * inconsistent. */
	if ((rc = cl_witness_new(cl_server_name(c), room, NULL, &w, &err)) ||
	    (rc = cl_witness_events(c, w, export_one, &e, &cp, &err)))
		goto out;
	if (e.n != cp.size) {
		rc = dcr_err_set(&err, DCR_EPROTO, "daemon sent %llu events, checkpoint says %llu",
		                 (unsigned long long)e.n, (unsigned long long)cp.size);
		goto out;
	}
	if (!e.replay_ok)
		fprintf(stderr,
		        "dcr audit export: warning: the log does not verify (%s); "
		        "exporting it as served\n",
		        e.rerr.msg);
	ents = dcr_calloc(e.n + 1, sizeof(*ents));
	for (uint64_t i = 0; i < e.n; i++)
		ents[i] = e.all.data + e.off[i];
	au_export_encode(&out, room, cl_daemon_key(c), &cp, ents, e.len, e.n, &e.st);
	if ((rc = write_out(outp, &out, &err)))
		goto out;
	if (outp && strcmp(outp, "-") != 0) {
		char hex[ES_ROOM_HEX_BYTES];
		es_room_format(room, hex);
		fprintf(stderr, "exported %llu events of room %s to %s\n", (unsigned long long)e.n,
		        hex, outp);
	}
out:
	free(ents);
	free(e.off);
	free(e.len);
	dcr_buf_release(&e.all);
	dcr_buf_release(&out);
	rm_state_release(&e.st);
	cl_witness_free(w);
	cl_close(c);
	return rc ? fail("export", &err) : CLI_EXIT_OK;
}

/* ---- verify --------------------------------------------------------------- */

static const char usage_verify[] =
    "usage: dcr audit verify FILE [--checkpoint OLD] [--daemon-key KEY] [--threads N]\n"
    "\n"
    "Checks an export file offline (no daemon): every event's signature, that\n"
    "every event was allowed by the room's rules when it happened (replaying\n"
    "them), the Merkle root against the daemon's signed checkpoint, and the\n"
    "participants' keys listed in the file.\n"
    "\n"
    "  --checkpoint OLD   also check that the log is an append-only extension\n"
    "                     of an older checkpoint: a file from `dcr audit\n"
    "                     checkpoint`, or an older export file\n"
    "  --daemon-key KEY   the daemon key you trust (ed25519:<base64>); the\n"
    "                     file's must match\n"
    "  --threads N        signature-checking threads (default: one per CPU)\n"
    "\n"
    "Prints `valid: ...` and exits 0, or `invalid: <first problem>` and exits 1.\n";

static int audit_verify(int argc, char **argv)
{
	const char *oldp = NULL, *dkey = NULL, *threads = NULL;
	const cli_opt opts[] = {{"--checkpoint", &oldp, NULL},
	                        {"--daemon-key", &dkey, NULL},
	                        {"--threads", &threads, NULL},
	                        {NULL, NULL, NULL}};
	char *pos[1];
	uint8_t key[32];
	es_checkpoint old;
	au_verify_opts vo;
	au_report rep;
	au_export x;
	dcr_buf bytes, ob;
	dcr_err err;
	uint64_t nt = 0;
	int rc;

	CLI_PARSE("audit verify", usage_verify, argc, argv, opts, pos, 1, 1, NULL);
	memset(&vo, 0, sizeof(vo));
	if (dkey) {
		if ((rc = parse_daemon_key("verify", dkey, key)))
			return rc;
		vo.daemon_key = key;
	}
	if (threads && (parse_seq(threads, &nt) || nt < 1 || nt > AU_THREADS_MAX)) {
		fprintf(stderr, "dcr audit verify: --threads: a number from 1 to %u\n",
		        AU_THREADS_MAX);
		return CLI_EXIT_USAGE;
	}
	vo.threads = (unsigned)nt;
	dcr_err_clear(&err);
	dcr_buf_init(&bytes);
	dcr_buf_init(&ob);
	if (oldp) {
		if ((rc = cli_read_input(oldp, AU_EXPORT_BYTES_MAX, &ob, &err)))
			goto io_fail;
		if ((rc = au_checkpoint_load(ob.data, ob.len, &old, &err))) {
			printf("invalid: --checkpoint %s: %s\n", oldp, err.msg);
			goto done;
		}
		vo.old_cp = &old;
	}
	if ((rc = cli_read_input(pos[0], AU_EXPORT_BYTES_MAX, &bytes, &err)))
		goto io_fail;
	if ((rc = au_export_decode(bytes.data, bytes.len, &x, &err))) {
		printf("invalid: %s\n", err.msg);
		goto done;
	}
	rc = au_verify(&x, &vo, &rep, &err);
	if (rc) {
		printf("invalid: %s\n", err.msg);
	} else {
		char room[ES_ROOM_HEX_BYTES], root[65];
		es_room_format(x.room, room);
		dcr_hex_encode(rep.root, 32, root);
		printf("valid: room %s \"%s\", %llu events, root %s", room, rep.name,
		       (unsigned long long)rep.events, root);
		if (vo.old_cp)
			printf(", extends checkpoint of %llu events", (unsigned long long)old.size);
		printf(", checkpoint signed by dcrd ");
		print_key_line(stdout, x.cp.key);
		printf("\n");
		if (rep.budgets[0])
			printf("epsilon budgets (replayed): %s\n", rep.budgets);
	}
	au_export_release(&x);
done:
	dcr_buf_release(&bytes);
	dcr_buf_release(&ob);
	fflush(stdout);
	return rc ? CLI_EXIT_FAIL : CLI_EXIT_OK;
io_fail:
	dcr_buf_release(&bytes);
	dcr_buf_release(&ob);
	return fail("verify", &err);
}

/* ---- replay --------------------------------------------------------------- */

static const char usage_replay[] =
    "usage: dcr audit replay FILE [--at SEQ]\n"
    "\n"
    "Replays an export file offline with the room's rules and prints the\n"
    "room's state after each event (or only after event SEQ): status,\n"
    "definition hash, provisioned datasets with their sha256, runs, requests.\n"
    "The file is verified first; if it is invalid, the states before the\n"
    "first bad event are printed, then `invalid: ...`, and the exit code is 1.\n";

typedef struct replay_ctx {
	uint64_t at; /* UINT64_MAX: every event */
	char *line;  /* rm_describe of the current event */
} replay_ctx;

static int replay_before(void *ctx, uint64_t seq, const es_event *ev, const rm_state *st)
{
	replay_ctx *r = ctx;
	if (r->at != UINT64_MAX && seq != r->at)
		return 0;
	free(r->line);
	r->line = rm_describe(st, ev);
	return 0;
}

static const char *run_state_name(enum rm_run_state s)
{
	switch (s) {
	case RM_RUN_QUEUED:
		return "requested";
	case RM_RUN_DONE:
		return "done";
	case RM_RUN_FAILED:
		return "failed";
	}
	return "?";
}

/* The definition version and every request: state, votes, what it made. */
static void print_requests(const rm_state *st)
{
	char h[65], buf[RM_ACTOR_NAME_BYTES];
	if (st->def_version) {
		dcr_hex_encode(st->version_sha256, 32, h);
		printf("  definition version %llu, sha256 %s\n", (unsigned long long)st->def_version,
		       h);
	}
	if (!st->nrequests)
		printf("  requests: none\n");
	for (size_t i = 0; i < st->nrequests; i++) {
		const rm_request *q = &st->requests[i];
		size_t ok = 0;
		for (size_t k = 0; k < q->nowners; k++)
			ok += q->owners[k].vote == RM_VOTE_APPROVED;
		printf("  %s %s by %s: %s, %zu of %zu affected owners approved",
		       i ? "         " : "requests:", q->id,
		       rm_actor_name(st->def, st->daemon_key, q->by, RM_ACTOR_FULL, buf, sizeof(buf)),
		       rm_req_state_name(q->state), ok, q->nowners);
		if (q->state == RM_REQ_MERGED)
			printf(", definition version %llu", (unsigned long long)q->version);
		else if (q->state == RM_REQ_FAILED)
			printf(": %s", q->failure);
		printf("\n");
	}
}

static int replay_after(void *ctx, uint64_t seq, const es_event *ev, const rm_state *st)
{
	replay_ctx *r = ctx;
	char h[65], buf[RM_ACTOR_NAME_BYTES];

	if (r->at != UINT64_MAX && seq != r->at)
		return 0;
	printf("after seq %llu (%s): %s\n", (unsigned long long)seq, ev->type,
	       r->line ? r->line : "");
	printf("  status: %s, %llu events\n", rm_status_name(st->status),
	       (unsigned long long)st->size);
	if (st->def) {
		dcr_hex_encode(st->def_sha256, 32, h);
		printf("  definition: \"%s\", sha256 %s\n", st->def->name ? st->def->name : "", h);
	} else {
		printf("  definition: none\n");
	}
	size_t shown = 0;
	if (st->def) {
		for (size_t i = 0; i < st->def->ndatasets; i++) {
			const rm_dataset *d = &st->def->datasets[i];
			const rm_provision *p = rm_state_provision(st, d->name);
			printf("  %s %s: ", shown++ ? "         " : "datasets:", d->name);
			if (p) {
				dcr_hex_encode(p->sha256, 32, h);
				printf("provisioned by %s at seq %llu, sha256 %s, %llu rows, %llu "
				       "bytes\n",
				       rm_actor_name(st->def, st->daemon_key, p->by, RM_ACTOR_FULL, buf, sizeof(buf)), (unsigned long long)p->seq,
				       h, (unsigned long long)p->rows,
				       (unsigned long long)p->bytes);
			} else {
				printf("not provisioned\n");
			}
		}
	}
	if (!shown)
		printf("  datasets: none\n");
	if (!st->nruns)
		printf("  runs: none\n");
	for (size_t i = 0; i < st->nruns; i++) {
		const rm_run *u = &st->runs[i];
		printf("  %s %s %s by %s: %s", i ? "     " : "runs:", u->computation, u->id,
		       rm_actor_name(st->def, st->daemon_key, u->by, RM_ACTOR_FULL, buf, sizeof(buf)), run_state_name(u->state));
		if (u->state == RM_RUN_DONE) {
			dcr_hex_encode(u->result_sha256, 32, h);
			printf(", result sha256 %s, %llu rows, retrieved %llu time%s", h,
			       (unsigned long long)u->rows, (unsigned long long)u->retrieved,
			       u->retrieved == 1 ? "" : "s");
		} else if (u->state == RM_RUN_FAILED) {
			printf(": %s", u->error ? u->error : "");
		}
		printf("\n");
	}
	print_requests(st);
	return 0;
}

static int audit_replay(int argc, char **argv)
{
	const char *at = NULL;
	const cli_opt opts[] = {{"--at", &at, NULL}, {NULL, NULL, NULL}};
	char *pos[1];
	replay_ctx r = {.at = UINT64_MAX, .line = NULL};
	au_report rep;
	au_export x;
	dcr_buf bytes;
	dcr_err err, verr;
	rm_state st;
	int rc, vrc;

	CLI_PARSE("audit replay", usage_replay, argc, argv, opts, pos, 1, 1, NULL);
	if (at && parse_seq(at, &r.at) != 0) {
		fprintf(stderr, "dcr audit replay: --at: not a sequence number: %s\n", at);
		return CLI_EXIT_USAGE;
	}
	dcr_err_clear(&err);
	dcr_err_clear(&verr);
	dcr_buf_init(&bytes);
	if ((rc = load_export(pos[0], &bytes, &x, &err))) {
		dcr_buf_release(&bytes);
		return fail("replay", &err);
	}
	if (r.at != UINT64_MAX && r.at >= x.n) {
		fprintf(stderr, "dcr audit replay: --at %llu: the log has %llu events (0..%llu)\n",
		        (unsigned long long)r.at, (unsigned long long)x.n,
		        (unsigned long long)(x.n ? x.n - 1 : 0));
		au_export_release(&x);
		dcr_buf_release(&bytes);
		return CLI_EXIT_USAGE;
	}
	vrc = au_verify(&x, NULL, &rep, &verr);
	uint64_t upto = vrc && rep.bad_seq != UINT64_MAX ? rep.bad_seq : x.n;
	rm_state_init(&st, x.daemon_key);
	rc = au_replay(&x, upto, &st, replay_before, replay_after, &r, &err);
	free(r.line);
	rm_state_release(&st);
	if (vrc)
		printf("invalid: %s\n", verr.msg);
	else if (rc)
		printf("invalid: %s\n", err.msg);
	fflush(stdout);
	au_export_release(&x);
	dcr_buf_release(&bytes);
	return vrc || rc ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* ---- proof / verify-proof -------------------------------------------------- */

static const char usage_proof[] =
    "usage: dcr audit proof ROOM SEQ [-o FILE]\n"
    "\n"
    "Writes to FILE (default: standard output) an inclusion proof that event\n"
    "SEQ is in the room's log: the event as stored, the latest checkpoint the\n"
    "daemon signed and the Merkle audit path between them. Anyone can check it\n"
    "offline with `dcr audit verify-proof FILE`.\n";

typedef struct one_ctx {
	dcr_buf entry;
	uint64_t got;
} one_ctx;

static int one_entry(void *ctx, uint64_t seq, const void *entry, size_t n)
{
	one_ctx *o = ctx;
	(void)seq;
	dcr_buf_reset(&o->entry);
	dcr_buf_append(&o->entry, entry, n);
	o->got++;
	return 0;
}

static int audit_proof(int argc, char **argv)
{
	const char *outp = NULL;
	const cli_opt opts[] = {{"-o", &outp, NULL}, {"--output", &outp, NULL}, {NULL, NULL, NULL}};
	char *pos[2];
	uint8_t room[ES_ROOM_ID_BYTES];
	char type[ES_TYPE_BYTES_MAX];
	cl_conn *c = NULL;
	one_ctx o;
	au_proof *p;
	dcr_buf out;
	dcr_err err;
	uint64_t seq;
	int rc;

	CLI_PARSE("audit proof", usage_proof, argc, argv, opts, pos, 2, 2, NULL);
	if (parse_seq(pos[1], &seq) != 0) {
		fprintf(stderr, "dcr audit proof: not a sequence number: %s\n", pos[1]);
		return CLI_EXIT_USAGE;
	}
	dcr_err_clear(&err);
	dcr_buf_init(&o.entry);
	dcr_buf_init(&out);
	o.got = 0;
	p = dcr_calloc(1, sizeof(*p));
	if ((rc = cli_open_room(pos[0], &c, room, &err)))
		goto out;
	if ((rc = witness_checkpoint(c, room, &p->cp, &err)))
		goto out;
	if (seq >= p->cp.size) {
		rc = dcr_err_set(&err, DCR_ENOTFOUND, "seq %llu: the room has %llu events",
		                 (unsigned long long)seq, (unsigned long long)p->cp.size);
		goto out;
	}
	if ((rc = cl_inclusion_proof(c, room, seq, p->cp.size, p->hashes, &p->nhashes, &err)))
		goto out;
	if ((rc = cl_events(c, room, seq, seq + 1, one_entry, &o, &err)))
		goto out;
	if (o.got != 1) {
		rc = dcr_err_set(&err, DCR_EPROTO, "daemon did not send event %llu",
		                 (unsigned long long)seq);
		goto out;
	}
	p->entry = o.entry.data;
	p->entry_n = o.entry.len;
	p->index = seq;
	/* Never hand out a proof that does not check. */
	if ((rc = au_proof_verify(p, cl_daemon_key(c), type, &err))) {
		dcr_err_prefix(&err, "the daemon's proof does not verify");
		goto out;
	}
	au_proof_encode(&out, p);
	if ((rc = write_out(outp, &out, &err)))
		goto out;
	if (outp && strcmp(outp, "-") != 0)
		fprintf(stderr,
		        "proof of seq %llu (%s) against the checkpoint at %llu events "
		        "written to %s\n",
		        (unsigned long long)seq, type, (unsigned long long)p->cp.size, outp);
out:
	free(p);
	dcr_buf_release(&o.entry);
	dcr_buf_release(&out);
	cl_close(c);
	return rc ? fail("proof", &err) : CLI_EXIT_OK;
}

static const char usage_verify_proof[] =
    "usage: dcr audit verify-proof FILE [--daemon-key KEY]\n"
    "\n"
    "Checks a proof file from `dcr audit proof` offline: the checkpoint's\n"
    "signature (by KEY, if given), the event's signature and that the event\n"
    "is included in the log at the checkpoint. Prints `valid: ...` and exits\n"
    "0, or `invalid: ...` and exits 1.\n";

static int audit_verify_proof(int argc, char **argv)
{
	const char *dkey = NULL;
	const cli_opt opts[] = {{"--daemon-key", &dkey, NULL}, {NULL, NULL, NULL}};
	char *pos[1];
	char type[ES_TYPE_BYTES_MAX];
	uint8_t key[32];
	au_proof *p;
	dcr_buf bytes;
	dcr_err err;
	int rc;

	CLI_PARSE("audit verify-proof", usage_verify_proof, argc, argv, opts, pos, 1, 1, NULL);
	if (dkey && (rc = parse_daemon_key("verify-proof", dkey, key)))
		return rc;
	dcr_err_clear(&err);
	dcr_buf_init(&bytes);
	if ((rc = cli_read_input(pos[0], AU_PROOF_BYTES_MAX, &bytes, &err))) {
		dcr_buf_release(&bytes);
		return fail("verify-proof", &err);
	}
	p = dcr_calloc(1, sizeof(*p));
	rc = au_proof_decode(bytes.data, bytes.len, p, &err);
	if (!rc)
		rc = au_proof_verify(p, dkey ? key : NULL, type, &err);
	if (rc) {
		printf("invalid: %s\n", err.msg);
	} else {
		char room[ES_ROOM_HEX_BYTES], root[65];
		es_room_format(p->cp.room, room);
		dcr_hex_encode(p->cp.root, 32, root);
		printf("valid: seq %llu (%s) is included in room %s at %llu events, root %s, "
		       "checkpoint signed by dcrd ",
		       (unsigned long long)p->index, type, room, (unsigned long long)p->cp.size,
		       root);
		print_key_line(stdout, p->cp.key);
		printf("\n");
	}
	fflush(stdout);
	free(p);
	dcr_buf_release(&bytes);
	return rc ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* ---- checkpoint ------------------------------------------------------------ */

static const char usage_checkpoint[] =
    "usage: dcr audit checkpoint ROOM [-o FILE]\n"
    "\n"
    "Writes the room's latest checkpoint signed by the daemon (room, number\n"
    "of events, Merkle root) to FILE (default: standard output), after\n"
    "checking its signature. Keep it: `dcr audit verify EXPORT --checkpoint\n"
    "FILE` later proves the log was only appended to since.\n";

static int audit_checkpoint(int argc, char **argv)
{
	const char *outp = NULL;
	const cli_opt opts[] = {{"-o", &outp, NULL}, {"--output", &outp, NULL}, {NULL, NULL, NULL}};
	char *pos[1];
	uint8_t room[ES_ROOM_ID_BYTES];
	cl_conn *c = NULL;
	es_checkpoint cp;
	dcr_buf out;
	dcr_err err;
	int rc;

	CLI_PARSE("audit checkpoint", usage_checkpoint, argc, argv, opts, pos, 1, 1, NULL);
	dcr_err_clear(&err);
	dcr_buf_init(&out);
	if ((rc = cli_open_room(pos[0], &c, room, &err)))
		goto out;
	/* signature, key, room, and consistency with the remembered one */
	if ((rc = witness_checkpoint(c, room, &cp, &err)))
		goto out;
	es_checkpoint_encode(&cp, &out);
	if ((rc = write_out(outp, &out, &err)))
		goto out;
	if (outp && strcmp(outp, "-") != 0) {
		char root[65];
		dcr_hex_encode(cp.root, 32, root);
		fprintf(stderr, "checkpoint at %llu events, root %s, written to %s\n",
		        (unsigned long long)cp.size, root, outp);
	}
out:
	dcr_buf_release(&out);
	cl_close(c);
	return rc ? fail("checkpoint", &err) : CLI_EXIT_OK;
}

/* ---- witness ---------------------------------------------------------------- */

static const char usage_witness[] =
    "usage: dcr audit witness ROOM [--json] [-o FILE] [--forget]\n"
    "       dcr audit witness --list [--json]\n"
    "       dcr audit witness --evidence FILE\n"
    "\n"
    "Every dcr command and the mount remember, per server and room, the last\n"
    "checkpoint the host signed that they have seen (in the configuration\n"
    "directory's checkpoints/), and refuse a host whose log does not extend it.\n"
    "This prints the remembered checkpoint of ROOM on this server, after\n"
    "checking the host's latest against it: compare it with other\n"
    "participants' (same size, same root, or the smaller one is a prefix of\n"
    "the larger: `dcr audit verify EXPORT --checkpoint FILE`).\n"
    "\n"
    "  --json             one JSON object (every field below)\n"
    "  -o FILE            also write the remembered checkpoint as a checkpoint\n"
    "                     file (for `dcr audit verify --checkpoint`)\n"
    "  --forget           forget the remembered checkpoint of ROOM (after a key\n"
    "                     change or restore you have checked with the host):\n"
    "                     the next command trusts the host's checkpoint anew\n"
    "  --list             every remembered checkpoint, without connecting\n"
    "  --evidence FILE    check an evidence file written when a host was\n"
    "                     refused (exit 0 when it shows what it claims)\n"
    "\n"
    "Formats: docs/event-format.md (8.3, 8.4). Threat model: docs/security.md.\n";

static void iso_time(uint64_t ms, char out[40])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char b[32];

	gmtime_r(&t, &tm);
	strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 40, "%s.%03uZ", b, (unsigned)(ms % 1000));
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void print_record(const cl_witness_record *r, bool json, bool first)
{
	char room[ES_ROOM_HEX_BYTES], root[65], sig[129], ts[40];
	char *key = dcr_pub_format(r->cp.key);

	es_room_format(r->cp.room, room);
	dcr_hex_encode(r->cp.root, 32, root);
	dcr_hex_encode(r->cp.sig, 64, sig);
	iso_time(r->cp.ts_ms, ts);
	if (json) {
		printf("%s{\"room\": \"%s\", \"server\": ", first ? "" : ",\n ", room);
		json_str(stdout, r->server);
		printf(", \"size\": %llu, \"root\": \"%s\", \"ts_ms\": %llu, \"daemon_key\": \"%s\", "
		       "\"signature\": \"%s\", \"file\": ",
		       (unsigned long long)r->cp.size, root, (unsigned long long)r->cp.ts_ms,
		       key ? key : "", sig);
		json_str(stdout, r->path);
		printf("}");
	} else {
		printf("room:       %s\nserver:     %s\nsize:       %llu\nroot:       %s\n"
		       "signed at:  %s (the host's clock)\ndaemon key: %s\nsignature:  %s\n"
		       "file:       %s\n",
		       room, r->server, (unsigned long long)r->cp.size, root, ts, key ? key : "?",
		       sig, r->path);
	}
	free(key);
}

static int witness_list(bool json)
{
	cl_witness_record *v = NULL;
	size_t n = 0;
	dcr_err err;
	char *dir;
	int rc;

	dcr_err_clear(&err);
	dir = cl_witness_dir(false, &err);
	if (!dir)
		return fail("witness", &err);
	rc = cl_witness_list(dir, &v, &n, &err);
	free(dir);
	if (rc)
		return fail("witness", &err);
	if (json)
		printf("[");
	for (size_t i = 0; i < n; i++) {
		if (!json && i)
			printf("\n");
		print_record(&v[i], json, i == 0);
	}
	if (json)
		printf("]\n");
	cl_witness_records_free(v, n);
	return CLI_EXIT_OK;
}

static void print_cp_line(const char *what, const es_checkpoint *cp)
{
	char root[65], ts[40];
	char *key = dcr_pub_format(cp->key);

	dcr_hex_encode(cp->root, 32, root);
	iso_time(cp->ts_ms, ts);
	printf("%s %llu events, root %s, signed at %s by %s\n", what,
	       (unsigned long long)cp->size, root, ts, key ? key : "?");
	free(key);
}

static int witness_evidence(const char *path)
{
	cl_witness_evidence ev;
	bool conclusive = false;
	dcr_buf b;
	dcr_err err;
	int rc;

	dcr_err_clear(&err);
	dcr_buf_init(&b);
	rc = cli_read_input(path, CL_WITNESS_EVIDENCE_BYTES_MAX, &b, &err);
	if (rc) {
		dcr_buf_release(&b);
		return fail("witness", &err);
	}
	rc = cl_witness_evidence_check(b.data, b.len, &ev, &conclusive, &err);
	dcr_buf_release(&b);
	if (rc) {
		printf("invalid: %s: %s\n", path, err.msg);
		return CLI_EXIT_FAIL;
	}
	{
		char room[ES_ROOM_HEX_BYTES], ts[40];
		es_room_format(ev.room, room);
		iso_time(ev.detected_ms, ts);
		printf("valid: %s evidence against the host of room %s (%s), seen at %s\n", ev.kind,
		       room, ev.server, ts);
	}
	print_cp_line("  remembered:", &ev.remembered);
	print_cp_line("  presented: ", &ev.presented);
	if (strcmp(ev.kind, "fork") == 0)
		printf("  proof on its own: one key signed two different logs of the same size\n");
	else if (strcmp(ev.kind, "shorter") == 0 && conclusive)
		printf("  proof on its own: the key signed a shorter log after a longer one\n");
	else if (strcmp(ev.kind, "shorter") == 0)
		printf("  the host showed an older, shorter checkpoint as its latest (a rollback): "
		       "ask it for a consistency proof to the remembered one, which it cannot "
		       "give if it lost those events\n");
	else if (strcmp(ev.kind, "inconsistent") == 0)
		printf("  the host's consistency proof (%zu hashes) does not verify: an honest "
		       "host can always give one, so ask it again, or check an export of its "
		       "log with `dcr audit verify EXPORT --checkpoint` of the remembered one\n",
		       ev.proof_n);
	else
		printf("  two daemon keys: not a proof against either; ask the host's operator "
		       "why the key changed\n");
	cl_witness_evidence_release(&ev);
	return CLI_EXIT_OK;
}

static int audit_witness(int argc, char **argv)
{
	const char *outp = NULL, *evp = NULL;
	bool json = false, forget = false, list = false;
	const cli_opt opts[] = {{"-o", &outp, NULL},          {"--output", &outp, NULL},
	                        {"--json", NULL, &json},      {"--forget", NULL, &forget},
	                        {"--list", NULL, &list},      {"--evidence", &evp, NULL},
	                        {NULL, NULL, NULL}};
	char *pos[1];
	int npos = 0, rc;
	uint8_t room[ES_ROOM_ID_BYTES];
	cl_conn *c = NULL;
	cl_witness *w = NULL;
	cl_witness_record r;
	dcr_err err, cerr;
	char *dir = NULL;

	CLI_PARSE("audit witness", usage_witness, argc, argv, opts, pos, 0, 1, &npos);
	if (evp)
		return npos ? (fputs(usage_witness, stderr), CLI_EXIT_USAGE) : witness_evidence(evp);
	if (list)
		return npos ? (fputs(usage_witness, stderr), CLI_EXIT_USAGE) : witness_list(json);
	if (npos != 1) {
		fprintf(stderr, "dcr audit witness: missing ROOM\n%s", usage_witness);
		return CLI_EXIT_USAGE;
	}
	memset(&r, 0, sizeof r);
	dcr_err_clear(&err);
	dcr_err_clear(&cerr);
	if ((rc = cli_open_room(pos[0], &c, room, &err)))
		goto out;
	if (!(dir = cl_witness_dir(true, &err))) {
		rc = err.code ? err.code : DCR_EINVALID;
		goto out;
	}
	if (forget) {
		char hex[ES_ROOM_HEX_BYTES];
		if ((rc = cl_witness_forget(dir, cl_server_name(c), room, &err)))
			goto out;
		es_room_format(room, hex);
		fprintf(stderr, "forgot the remembered checkpoint of room %s on %s\n", hex,
		        cl_server_name(c));
		goto out;
	}
	/* The host's latest first: a refusal is reported, and the remembered
	 * checkpoint (unchanged by it) still printed. */
	if ((rc = cl_witness_new(cl_server_name(c), room, dir, &w, &err)))
		goto out;
	int wrc = cl_witness_checkpoint(c, w, NULL, &cerr);
	if (wrc)
		tl_fail("audit witness", &cerr);
	if ((rc = cl_witness_load(dir, cl_server_name(c), room, &r, &err)))
		goto out;
	print_record(&r, json, true);
	if (json)
		printf("\n");
	if (outp) {
		dcr_buf b;
		dcr_buf_init(&b);
		es_checkpoint_encode(&r.cp, &b);
		rc = write_out(outp, &b, &err);
		dcr_buf_release(&b);
		if (rc)
			goto out;
	}
	rc = wrc;
	if (rc) {
		cl_witness_record_release(&r);
		cl_witness_free(w);
		free(dir);
		cl_close(c);
		return CLI_EXIT_FAIL;
	}
out:
	cl_witness_record_release(&r);
	cl_witness_free(w);
	free(dir);
	cl_close(c);
	return rc ? fail("witness", &err) : CLI_EXIT_OK;
}

/* ---- dispatch --------------------------------------------------------------- */

int cmd_audit(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} subs[] = {
	    {"log", audit_log},
	    {"export", audit_export},
	    {"verify", audit_verify},
	    {"replay", audit_replay},
	    {"proof", audit_proof},
	    {"verify-proof", audit_verify_proof},
	    {"checkpoint", audit_checkpoint},
	    {"witness", audit_witness},
	};

	if (argc < 2) {
		fputs(usage_main, stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(usage_main, stdout);
		return CLI_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (strcmp(argv[1], subs[i].name) == 0)
			return subs[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "dcr audit: unknown command \"%s\"\n%s", argv[1], usage_main);
	return CLI_EXIT_USAGE;
}
