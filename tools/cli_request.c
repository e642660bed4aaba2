/* cli_request.c: `dcr request validate|submit|list|show|approve|reject|
 * withdraw` (docs/cli.md, docs/rules.md "Requests").
 *
 * Reads replay the room's log with rm_apply on this side (tl_replay);
 * writes are signed events submitted with cl_submit, which dcrd checks with
 * the same rm_apply. validate and submit run the admission check
 * (rm_def_admit on the definition with the request merged) before anything
 * is signed, as dcrd does again before it appends. */
#include "cli.h"

static const char request_usage[] =
    "usage: dcr request SUBCOMMAND ROOM ...\n"
    "\n"
    "  validate ROOM FILE.json       check a request against the room: the affected\n"
    "                                data owners, each new computation's result\n"
    "                                columns on empty inputs, or the error\n"
    "  submit ROOM FILE.json [--id ID]  validate, then propose it; prints its id\n"
    "  submit ROOM --from-dev SCRIPT --name NAME [--analyst EMAIL[,EMAIL...]]\n"
    "                                propose a development script as computation\n"
    "                                NAME (validate takes --from-dev too)\n"
    "  list ROOM                     every request: id, state, approvals, title\n"
    "  show ROOM ID [--text]         a request's status (--text: the request as\n"
    "                                signed, its SHA-256 is what votes bind to)\n"
    "  approve ROOM ID [--reason TEXT] [--sha256 HEX]\n"
    "                                approve as an affected owner; the last\n"
    "                                approval merges the request\n"
    "  reject ROOM ID [--reason TEXT] [--sha256 HEX]\n"
    "  withdraw ROOM ID              withdraw your own open request\n"
    "  preview ROOM ID [COMPUTATION] [-o FILE]\n"
    "                                the sole affected owner runs a requested\n"
    "                                computation before approving and reads it\n"
    "\n"
    "FILE \"-\" is stdin. A request file is JSON: {\"title\", \"description\",\n"
    "\"computations\": [computation + \"analysts\": [EMAIL...]]} (docs/room-format.md,\n"
    "\"Requests\").\n";

static int fail(const char *cmd, dcr_err *err)
{
	tl_fail(cmd, err);
	return CLI_EXIT_FAIL;
}

static const char *who(const rm_state *st, const uint8_t key[32], char *buf)
{
	return rm_actor_name(st->def, st->daemon_key, key, RM_ACTOR_FULL, buf, RM_ACTOR_NAME_BYTES);
}

/* The request of FILE merged into the room's current definition and
 * admitted (SQLite compiles it on empty inputs). Prints the report on out.
 * Returns 0 when the request would be accepted. */
static int check_request(FILE *out, const rm_state *st, const char *file, const dcr_buf *text,
                         dcr_err *err)
{
	rm_request_doc doc;
	uint8_t(*keys)[32] = NULL;
	size_t nkeys = 0;
	char name[RM_ACTOR_NAME_BYTES];
	int rc;

	if (!st->def_json)
		return dcr_err_set(err, DCR_ENOTFOUND, "the room has no definition");
	/* published and interactive: the creator stands for any participant */
	rc = rm_check_request(st, st->creator, err);
	if (rc)
		return rc;
	rc = rm_request_merge(st->def_json, (const char *)text->data, text->len, &doc, err);
	if (rc) {
		dcr_err_prefix(err, "%s: request", file);
		return rc;
	}
	dcr_err admit;
	dcr_err_clear(&admit);
	(void)rm_def_admit(doc.merged, &admit); /* each computation keeps its own error */
	rm_request_affected(doc.merged, doc.names, doc.nnames, &keys, &nkeys);
	fprintf(out, "request \"%s\": %zu computation%s\n", doc.title, doc.nnames,
	        doc.nnames == 1 ? "" : "s");
	fprintf(out, "affected data owners (each must approve):");
	for (size_t i = 0; i < nkeys; i++)
		fprintf(out, "%s %s", i ? "," : "", who(st, keys[i], name));
	fprintf(out, "%s\n", nkeys ? "" : " none");
	for (size_t i = 0; i < doc.nnames; i++) {
		const rm_computation *c = rm_def_computation(doc.merged, doc.names[i]);
		fprintf(out, "  %s (%s): ", c->name, rm_compkind_name(c->kind));
		if (c->admit_error) {
			fprintf(out, "error: %s\n", c->admit_error);
			if (!rc)
				rc = dcr_err_set(err, DCR_EINVALID, "%s: computation %s: %s", file,
				                 c->name, c->admit_error);
		} else if (c->nresult_cols) {
			for (size_t k = 0; k < c->nresult_cols; k++)
				fprintf(out, "%s%s %s", k ? ", " : "", c->result_cols[k].name,
				        cmp_type_name(c->result_cols[k].type));
			fputc('\n', out);
		} else {
			fputs("columns known after a run\n", out);
		}
	}
	if (!rc && admit.code)
		rc = dcr_err_set(err, admit.code, "%s: %s", file, admit.msg);
	if (!rc && !nkeys)
		rc = dcr_err_set(err, DCR_EINVALID,
		                 "%s: its computations read no dataset, so no owner could approve it",
		                 file);
	free(keys);
	rm_request_doc_release(&doc);
	return rc;
}

/* The request document of --from-dev: one computation NAME of the
 * development script FILE (language from its extension; the inputs of a
 * python or r script from its "# inputs:" first line, as dev runs read
 * them; sql reads what its query names), for the analysts of the comma
 * list analysts (default: you). */
static int dev_request(const rm_state *st, const uint8_t me[32], const char *file, const char *name,
                       const char *analysts, const char *title, const char *descr, dcr_buf *doc,
                       dcr_err *err)
{
	enum rm_dev_lang lang;
	dcr_buf script;
	char **inputs = NULL;
	size_t ninputs = 0;
	int rc;

	dcr_buf_init(&script);
	rc = rm_dev_lang_of_file(file, &lang, err);
	if (rc == 0)
		rc = cli_read_input(file, DCR_RM_SCRIPT_BYTES_MAX, &script, err);
	if (rc == 0 && script.len == 0)
		rc = dcr_err_set(err, DCR_EINVALID, "%s: empty script", file);
	if (rc == 0 && memchr(script.data, 0, script.len))
		rc = dcr_err_set(err, DCR_EINVALID, "%s: contains a NUL byte", file);
	if (rc == 0 && lang != RM_DEV_SQL) {
		rc = rm_dev_infer_inputs(st, lang, dcr_buf_cstr(&script), &inputs, &ninputs, err);
		if (rc)
			dcr_err_prefix(err, "%s", file);
	}
	if (rc == 0 && !analysts) {
		const rm_participant *pt = st->def ? rm_def_participant(st->def, me) : NULL;
		if (!pt)
			rc = dcr_err_set(err, DCR_EINVALID,
			                 "--analyst: you are not a participant; name the analysts");
		else
			analysts = pt->email;
	}
	if (rc)
		goto out;
	dcr_buf_append_str(doc, "{\"title\": ");
	if (title) {
		dcr_json_str(doc, title, strlen(title));
	} else {
		char *t = dcr_asprintf("%s (from %s)", name, file);
		dcr_json_str(doc, t, strlen(t));
		free(t);
	}
	if (descr) {
		dcr_buf_append_str(doc, ",\n \"description\": ");
		dcr_json_str(doc, descr, strlen(descr));
	}
	dcr_buf_append_str(doc, ",\n \"computations\": [{\"name\": ");
	dcr_json_str(doc, name, strlen(name));
	dcr_buf_printf(doc, ", \"kind\": \"%s\", ", rm_dev_lang_name(lang));
	if (lang == RM_DEV_SQL) {
		dcr_buf_append_str(doc, "\"query\": ");
	} else {
		dcr_buf_append_str(doc, "\"inputs\": [");
		for (size_t i = 0; i < ninputs; i++) {
			dcr_buf_append_str(doc, i ? ", " : "");
			dcr_json_str(doc, inputs[i], strlen(inputs[i]));
		}
		dcr_buf_append_str(doc, "],\n   \"script\": ");
	}
	dcr_json_str(doc, (const char *)script.data, script.len);
	dcr_buf_append_str(doc, ",\n   \"analysts\": [");
	for (const char *a = analysts, *e;; a = e + 1) {
		e = strchr(a, ',');
		if (!e)
			e = a + strlen(a);
		dcr_buf_append_str(doc, a == analysts ? "" : ", ");
		dcr_json_str(doc, a, (size_t)(e - a));
		if (!*e)
			break;
	}
	dcr_buf_append_str(doc, "]}]}\n");
out:
	for (size_t i = 0; i < ninputs; i++)
		free(inputs[i]);
	free(inputs);
	dcr_buf_release(&script);
	return rc;
}

#define FROM_DEV_USAGE                                                                             \
	"--from-dev SCRIPT proposes a development script (.sql, .py or .R, as\n"                   \
	"`dcr dev run` takes it) as one computation NAME: the language from the\n"                 \
	"extension, a python or r script's inputs from its first line \"# inputs: a, b\",\n"       \
	"an sql query's from the names it reads; analysts --analyst (default: you),\n"             \
	"title --title (default \"NAME (from SCRIPT)\").\n"

static int req_validate_submit(int argc, char **argv, bool submit)
{
	static const char v_usage[] =
	    "usage: dcr request validate ROOM FILE.json\n"
	    "Checks a request against the room's current definition without submitting it:\n"
	    "prints the affected data owners (the owners of every dataset the new\n"
	    "computations read, directly or through other computations) and each new\n"
	    "computation's result columns on empty inputs, or its error. Exits 1 if the\n"
	    "room would refuse it.\n"
	    "       dcr request validate ROOM --from-dev SCRIPT --name NAME [--analyst ...]\n"
	    "                            [--title TEXT] [--description TEXT]\n" FROM_DEV_USAGE;
	static const char s_usage[] =
	    "usage: dcr request submit ROOM FILE.json [--id ID]\n"
	    "       dcr request submit ROOM --from-dev SCRIPT --name NAME [--analyst EMAIL[,EMAIL...]]\n"
	    "                          [--title TEXT] [--description TEXT] [--id ID]\n"
	    "Validates a request (as dcr request validate) and submits it as\n"
	    "request.submitted; prints the request id (32 hex characters, random unless\n"
	    "--id is given). Every affected owner must then approve it.\n" FROM_DEV_USAGE;
	const char *cmd = submit ? "request submit" : "request validate";
	const char *idopt = NULL, *dev = NULL, *name = NULL, *analysts = NULL, *title = NULL,
	           *descr = NULL;
	const cli_opt opts[] = {{"--id", &idopt, NULL},
	                        {"--from-dev", &dev, NULL},
	                        {"--name", &name, NULL},
	                        {"--analyst", &analysts, NULL},
	                        {"--title", &title, NULL},
	                        {"--description", &descr, NULL},
	                        {NULL, NULL, NULL}};
	char *pos[2];
	int npos = 0;
	const char *file;
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES];
	rm_state st;
	bool have_state = false;
	dcr_buf text, body;
	char qid[33];
	int rc;

	CLI_PARSE(cmd, submit ? s_usage : v_usage, argc, argv, submit ? opts : opts + 1, pos, 1, 2,
	          &npos);
	if ((npos == 2) == (dev != NULL) || (!dev && (name || analysts || title || descr)) ||
	    (dev && !name)) {
		fprintf(stderr, "dcr %s: %s\n%s", cmd,
		        dev ? (npos == 2 ? "FILE.json and --from-dev are exclusive"
		                         : "--from-dev needs --name NAME")
		            : (npos == 2 ? "--name, --analyst, --title and --description go with "
		                           "--from-dev"
		                         : "missing FILE.json (or --from-dev SCRIPT)"),
		        submit ? s_usage : v_usage);
		return CLI_EXIT_USAGE;
	}
	file = dev ? dev : strcmp(pos[1], "-") == 0 ? "stdin" : pos[1];
	dcr_buf_init(&text);
	dcr_buf_init(&body);
	if (!dev) {
		rc = cli_read_input(pos[1], DCR_RM_DEF_BYTES_MAX, &text, &err);
		if (rc)
			goto out;
	}
	rc = cli_open_room(pos[0], &c, id, &err);
	if (rc)
		goto out;
	have_state = true;
	rc = tl_replay(c, id, &st, &err);
	if (rc)
		goto out;
	if (dev) {
		uint8_t me[32];
		dcr_key_public(cl_identity(c), me);
		rc = dev_request(&st, me, dev, name, analysts, title, descr, &text, &err);
		if (rc)
			goto out;
	}
	rc = check_request(submit ? stderr : stdout, &st, file, &text, &err);
	if (rc || !submit)
		goto out;
	if (idopt) {
		snprintf(qid, sizeof qid, "%s", idopt);
	} else {
		uint8_t raw[16];
		dcr_random(raw, sizeof raw);
		dcr_hex_encode(raw, sizeof raw, qid);
	}
	rm_body_req_submitted(&body, qid, dcr_buf_cstr(&text));
	rc = cl_submit(c, id, RM_EV_REQ_SUBMITTED, body.data, body.len, NULL, &err);
	if (rc)
		goto out;
	printf("%s\n", qid);
out:
	dcr_buf_release(&body);
	dcr_buf_release(&text);
	if (have_state)
		rm_state_release(&st);
	cl_close(c);
	return rc ? fail(cmd, &err) : CLI_EXIT_OK;
}

static int req_validate(int argc, char **argv)
{
	return req_validate_submit(argc, argv, false);
}

static int req_submit(int argc, char **argv)
{
	return req_validate_submit(argc, argv, true);
}

/* Connects, replays ROOM; the request ID of pos[1] when want_id. */
static int open_state(const char *room, const char *qid, cl_conn **c, uint8_t id[ES_ROOM_ID_BYTES],
                      rm_state *st, bool *have, const rm_request **q, dcr_err *err)
{
	int rc = cli_open_room(room, c, id, err);
	if (rc)
		return rc;
	*have = true;
	rc = tl_replay(*c, id, st, err);
	if (rc || !qid)
		return rc;
	*q = rm_state_request(st, qid);
	if (!*q)
		return dcr_err_set(err, DCR_ENOTFOUND, "no request %s in room %s", qid, room);
	return 0;
}

static size_t approvals(const rm_request *q)
{
	size_t n = 0;
	for (size_t i = 0; i < q->nowners; i++)
		n += q->owners[i].vote == RM_VOTE_APPROVED;
	return n;
}

static int req_list(int argc, char **argv)
{
	static const char usage[] = "usage: dcr request list ROOM\n"
	                            "Lists the room's requests: id, state, approvals of the "
	                            "affected owners, author, title.\n";
	char *pos[1];
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES];
	rm_state st;
	bool have_state = false;
	char name[RM_ACTOR_NAME_BYTES];
	int rc;

	CLI_PARSE("request list", usage, argc, argv, NULL, pos, 1, 1, NULL);
	rc = open_state(pos[0], NULL, &c, id, &st, &have_state, NULL, &err);
	if (rc)
		goto out;
	for (size_t i = 0; i < st.nrequests; i++) {
		const rm_request *q = &st.requests[i];
		printf("%s %-9s %zu/%zu approved  %s  %s\n", q->id, rm_req_state_name(q->state),
		       approvals(q), q->nowners, who(&st, q->by, name), q->title);
	}
	if (!st.nrequests)
		printf("no requests (definition version %llu)\n",
		       (unsigned long long)st.def_version);
out:
	if (have_state)
		rm_state_release(&st);
	cl_close(c);
	return rc ? fail("request list", &err) : CLI_EXIT_OK;
}

static int req_show(int argc, char **argv)
{
	static const char usage[] =
	    "usage: dcr request show ROOM ID [--text]\n"
	    "Prints a request's state, author, computations, the affected owners with\n"
	    "their votes and reasons, and whether it merged (the definition version it\n"
	    "made) or why not. --text prints the request exactly as signed instead.\n";
	bool text = false;
	const cli_opt opts[] = {{"--text", NULL, &text}, {NULL, NULL, NULL}};
	char *pos[2];
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES];
	rm_state st;
	bool have_state = false;
	const rm_request *q = NULL;
	char name[RM_ACTOR_NAME_BYTES], hex[65];
	int rc;

	CLI_PARSE("request show", usage, argc, argv, opts, pos, 2, 2, NULL);
	rc = open_state(pos[0], pos[1], &c, id, &st, &have_state, &q, &err);
	if (rc)
		goto out;
	if (text) {
		fputs(q->text, stdout);
		goto out;
	}
	dcr_hex_encode(q->sha256, 32, hex);
	printf("request %s: %s\n", q->id, rm_req_state_name(q->state));
	printf("title: %s\n", q->title);
	printf("author: %s\n", who(&st, q->by, name));
	printf("sha256: %s\n", hex);
	printf("computations:");
	for (size_t i = 0; i < q->ncomputations; i++)
		printf("%s %s", i ? "," : "", q->computations[i]);
	printf("\naffected owners:\n");
	for (size_t i = 0; i < q->nowners; i++) {
		const rm_req_owner *o = &q->owners[i];
		printf("  %s: %s", who(&st, o->key, name),
		       o->vote == RM_VOTE_APPROVED   ? "approved"
		       : o->vote == RM_VOTE_REJECTED ? "rejected"
		                                     : "pending");
		if (o->automatic)
			printf(" automatically, by the owner's auto_approve policy");
		else if (o->reason && *o->reason)
			printf(" (%s)", o->reason);
		putchar('\n');
	}
	if (q->state == RM_REQ_MERGED)
		printf("merged: definition version %llu\n", (unsigned long long)q->version);
	else if (q->state == RM_REQ_FAILED)
		printf("merge failed: %s\n", q->failure);
	else
		printf("merged: no\n");
out:
	if (have_state)
		rm_state_release(&st);
	cl_close(c);
	return rc ? fail("request show", &err) : CLI_EXIT_OK;
}

static int req_vote(int argc, char **argv, bool approve)
{
	static const char a_usage[] =
	    "usage: dcr request approve ROOM ID [--reason TEXT] [--sha256 HEX]\n"
	    "Approves a request as one of its affected owners, bound to the SHA-256 of\n"
	    "the request text (the one replayed now, or --sha256: the one you read with\n"
	    "dcr request show). The last approval merges the request's computations\n"
	    "into the room's definition.\n";
	static const char r_usage[] =
	    "usage: dcr request reject ROOM ID [--reason TEXT] [--sha256 HEX]\n"
	    "Rejects a request as one of its affected owners: it closes, nothing merges.\n";
	const char *cmd = approve ? "request approve" : "request reject";
	const char *reason = NULL, *shaopt = NULL;
	const cli_opt opts[] = {
	    {"--reason", &reason, NULL}, {"--sha256", &shaopt, NULL}, {NULL, NULL, NULL}};
	char *pos[2];
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES], sha[32];
	rm_state st;
	bool have_state = false;
	const rm_request *q = NULL;
	dcr_buf body;
	int rc;

	CLI_PARSE(cmd, approve ? a_usage : r_usage, argc, argv, opts, pos, 2, 2, NULL);
	dcr_buf_init(&body);
	if (shaopt && (strlen(shaopt) != 64 || dcr_hex_decode(shaopt, 64, sha, 32) != 0)) {
		rc = dcr_err_set(&err, DCR_EINVALID, "--sha256: not 64 hex characters");
		goto out;
	}
	rc = open_state(pos[0], pos[1], &c, id, &st, &have_state, &q, &err);
	if (rc)
		goto out;
	if (!shaopt)
		memcpy(sha, q->sha256, 32);
	rm_body_req_vote(&body, q->id, sha, reason ? reason : "");
	rc = cl_submit(c, id, approve ? RM_EV_REQ_APPROVED : RM_EV_REQ_REJECTED, body.data,
	               body.len, NULL, &err);
	if (rc)
		goto out;
	/* What the vote did, from the log it is now in. */
	rm_state_release(&st);
	rc = tl_replay(c, id, &st, &err);
	if (rc)
		goto out;
	q = rm_state_request(&st, pos[1]);
	if (!approve)
		printf("rejected request %s\n", pos[1]);
	else if (q && q->state == RM_REQ_MERGED)
		printf("approved request %s: merged, definition version %llu\n", pos[1],
		       (unsigned long long)q->version);
	else if (q && q->state == RM_REQ_FAILED)
		printf("approved request %s: every owner approved but the merge failed: %s\n",
		       pos[1], q->failure);
	else
		printf("approved request %s: %zu of %zu affected owners approved\n", pos[1],
		       q ? approvals(q) : 0, q ? q->nowners : 0);
out:
	dcr_buf_release(&body);
	if (have_state)
		rm_state_release(&st);
	cl_close(c);
	return rc ? fail(cmd, &err) : CLI_EXIT_OK;
}

static int req_approve(int argc, char **argv)
{
	return req_vote(argc, argv, true);
}

static int req_reject(int argc, char **argv)
{
	return req_vote(argc, argv, false);
}

/* Replays until run id is no longer queued (cl_wait between replays) or
 * the timeout passes. */
static int wait_run(cl_conn *c, const uint8_t id[ES_ROOM_ID_BYTES], const char *run,
                    uint64_t timeout_ms, rm_state *st, dcr_err *err)
{
	uint64_t until = dcr_now_ms() + timeout_ms;
	for (;;) {
		rm_state_release(st);
		int rc = tl_replay(c, id, st, err);
		if (rc)
			return rc;
		const rm_run *r = rm_state_run(st, run);
		if (r && r->state != RM_RUN_QUEUED)
			return 0;
		uint64_t now = dcr_now_ms(), size = 0;
		if (now >= until)
			return dcr_err_set(err, DCR_ETIMEOUT, "run %s has not finished after %llu s",
			                   run, (unsigned long long)(timeout_ms / 1000));
		rc = cl_wait(c, id, st->size, until - now, &size, err);
		if (rc)
			return rc;
	}
}

static int req_preview(int argc, char **argv)
{
	static const char usage[] =
	    "usage: dcr request preview ROOM ID [COMPUTATION] [-o FILE] [--timeout SECONDS]\n"
	    "Runs a requested computation (the request's first, or COMPUTATION) before\n"
	    "approving it, and prints its result (CSV) or writes it to FILE (a python or\n"
	    "r computation without columns: its files, under the directory FILE).\n"
	    "The bytes are checked against the SHA-256 in the log. Only the\n"
	    "sole affected owner of a request may; the run and its retrieval are\n"
	    "events, the result is for that owner only. Waits up to --timeout\n"
	    "seconds (default 300).\n";
	const char *out = NULL, *tmo = NULL;
	const cli_opt opts[] = {
	    {"-o", &out, NULL}, {"--timeout", &tmo, NULL}, {NULL, NULL, NULL}};
	char *pos[3];
	int npos = 0;
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES], raw[16];
	rm_state st;
	bool have_state = false;
	const rm_request *q = NULL;
	dcr_buf body;
	char run[33], comp[DCR_RM_NAME_BYTES_MAX + 1];
	uint64_t timeout_s = 300;
	FILE *f = NULL;
	uint8_t *buf = NULL;
	dcr_buf whole;
	dcr_archive a;
	bool have_a = false;
	int rc;

	dcr_buf_init(&whole);
	CLI_PARSE("request preview", usage, argc, argv, opts, pos, 2, 3, &npos);
	dcr_buf_init(&body);
	if (tmo) {
		char *end;
		unsigned long long v = strtoull(tmo, &end, 10);
		if (!*tmo || *end || v == 0 || v > 86400) {
			fprintf(stderr, "dcr request preview: --timeout: \"%s\" is not a number of "
			                "seconds (1 to 86400)\n",
			        tmo);
			return CLI_EXIT_USAGE;
		}
		timeout_s = v;
	}
	rc = open_state(pos[0], pos[1], &c, id, &st, &have_state, &q, &err);
	if (rc)
		goto out;
	snprintf(comp, sizeof comp, "%s", npos > 2 ? pos[2] : q->computations[0]);
	dcr_random(raw, sizeof raw);
	dcr_hex_encode(raw, sizeof raw, run);
	rm_body_req_preview(&body, q->id, comp, run);
	rc = cl_submit(c, id, RM_EV_REQ_PREVIEW, body.data, body.len, NULL, &err);
	if (rc)
		goto out;
	fprintf(stderr, "preview run %s of %s\n", run, comp);
	rc = wait_run(c, id, run, timeout_s * 1000, &st, &err);
	if (rc)
		goto out;
	const rm_run *r = rm_state_run(&st, run);
	if (r->state == RM_RUN_FAILED) {
		rc = dcr_err_set(&err, DCR_EINVALID, "preview run %s failed: %s", run, r->error);
		goto out;
	}
	uint64_t size = r->result_bytes;
	dcr_buf_reset(&body);
	rm_body_retrieved(&body, run);
	rc = cl_submit(c, id, RM_EV_RETRIEVED, body.data, body.len, NULL, &err);
	if (rc)
		goto out;
	/* the whole result (at most what dcrd serves of a run), checked
	 * against the hash the log holds before anything is written */
	if (size > DCR_PREVIEW_BYTES_MAX) {
		rc = dcr_err_set(&err, DCR_ELIMIT,
		                 "the preview's result is %llu bytes, more than %llu: read it with "
		                 "dcr result once merged",
		                 (unsigned long long)size,
		                 (unsigned long long)DCR_PREVIEW_BYTES_MAX);
		goto out;
	}
	buf = dcr_malloc(DMN_RESULT_READ_BYTES_MAX);
	for (uint64_t off = 0; off < size;) {
		int n = cl_result_read(c, id, run, off, buf, DMN_RESULT_READ_BYTES_MAX, &err);
		if (n < 0) {
			rc = n;
			goto out;
		}
		if (n == 0) {
			rc = dcr_err_set(&err, DCR_EPROTO, "result of run %s ends at %llu of %llu bytes",
			                 run, (unsigned long long)off, (unsigned long long)size);
			goto out;
		}
		dcr_buf_append(&whole, buf, (size_t)n);
		off += (uint64_t)n;
	}
	{
		uint8_t sha[DCR_SHA256_BYTES];
		dcr_sha256(whole.data, whole.len, sha);
		if (memcmp(sha, r->result_sha256, sizeof sha) != 0) {
			rc = dcr_err_set(&err, DCR_EINTEGRITY,
			                 "the result of preview run %s does not match the SHA-256 "
			                 "in the room's log",
			                 run);
			goto out;
		}
	}
	/* the state was replayed again while waiting: look the run's
	 * definition up in it */
	const rm_computation *cd = rm_def_computation(rm_state_run_def(&st, r), comp);
	const uint8_t *data = whole.data;
	size_t len = whole.len;
	if (cd && cd->kind != RM_COMP_SQL) {
		/* python, r, synthetic: the result archive (docs/compute.md) */
		rc = dcr_archive_read(whole.data, whole.len, &a, &err);
		if (rc)
			goto out;
		have_a = true;
		const dcr_archive_entry *e = dcr_archive_find(&a, "dataset.csv");
		if (!e || (out && !cd->ncolumns && cd->kind != RM_COMP_SYNTHETIC)) {
			if (!out) {
				rc = dcr_err_set(&err, DCR_EINVALID,
				                 "the result of %s computation %s is files: give -o DIR "
				                 "to write them",
				                 rm_compkind_name(cd->kind), comp);
				goto out;
			}
			rc = cli_write_archive(&a, out, &err);
			if (rc == 0)
				fprintf(stderr, "wrote %zu files to %s\n", a.n, out);
			goto out;
		}
		data = e->data;
		len = e->len;
	}
	f = out ? fopen(out, "wb") : stdout;
	if (!f) {
		rc = dcr_err_set(&err, errno ? -errno : DCR_EINVALID, "%s: %s", out, strerror(errno));
		goto out;
	}
	if (len && fwrite(data, 1, len, f) != len) {
		rc = dcr_err_set(&err, errno ? -errno : DCR_EINVALID, "writing %s: %s",
		                 out ? out : "stdout", strerror(errno));
		goto out;
	}
	if (out)
		fprintf(stderr, "wrote %zu bytes to %s\n", len, out);
out:
	if (f && f != stdout && fclose(f) != 0 && !rc)
		rc = dcr_err_set(&err, errno ? -errno : DCR_EINVALID, "%s: %s", out, strerror(errno));
	free(buf);
	if (have_a)
		dcr_archive_release(&a);
	dcr_buf_release(&whole);
	dcr_buf_release(&body);
	if (have_state)
		rm_state_release(&st);
	cl_close(c);
	return rc ? fail("request preview", &err) : CLI_EXIT_OK;
}

static int req_withdraw(int argc, char **argv)
{
	static const char usage[] = "usage: dcr request withdraw ROOM ID\n"
	                            "Withdraws your own open request; it closes, nothing merges.\n";
	char *pos[2];
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES];
	dcr_buf body;
	int rc;

	CLI_PARSE("request withdraw", usage, argc, argv, NULL, pos, 2, 2, NULL);
	dcr_buf_init(&body);
	rc = cli_open_room(pos[0], &c, id, &err);
	if (rc)
		goto out;
	rm_body_req_withdrawn(&body, pos[1]);
	rc = cl_submit(c, id, RM_EV_REQ_WITHDRAWN, body.data, body.len, NULL, &err);
	if (rc)
		goto out;
	printf("withdrew request %s\n", pos[1]);
out:
	dcr_buf_release(&body);
	cl_close(c);
	return rc ? fail("request withdraw", &err) : CLI_EXIT_OK;
}

int cli_cmd_request(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} subs[] = {
	    {"validate", req_validate}, {"submit", req_submit},   {"list", req_list},
	    {"show", req_show},         {"approve", req_approve}, {"reject", req_reject},
	    {"withdraw", req_withdraw}, {"preview", req_preview},
	};

	if (argc < 2) {
		fputs(request_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(request_usage, stdout);
		return CLI_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
		if (strcmp(argv[1], subs[i].name) == 0)
			return subs[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "dcr request: unknown subcommand \"%s\"\n%s", argv[1], request_usage);
	return CLI_EXIT_USAGE;
}
