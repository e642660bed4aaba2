/* cli_room.c: `dcr room create|save|show|export|list|duplicate|publish|
 * stop|test`.
 *
 * Reads go through tl_replay (the events folded with rm_apply on this side);
 * writes are signed events submitted with cl_submit. The client does not
 * pre-check permissions: the daemon validates every event with rm_apply and
 * its refusal is what the user sees, so what the CLI shows is what the log
 * enforces. */
#include <unistd.h>

#include "cli.h"

static const char room_usage[] =
    "usage: dcr room SUBCOMMAND ...\n"
    "\n"
    "  create FILE.json              create a draft room (FILE \"-\" is stdin),\n"
    "                                print its id\n"
    "  save ROOM FILE.json           replace the draft definition (creator, draft)\n"
    "  show ROOM [--status]          the definition as normalised JSON; a status\n"
    "                                line on stderr (--status: only the status,\n"
    "                                on stdout)\n"
    "  export ROOM                   the definition exactly as signed (input for\n"
    "                                room create; its sha256 is what publish signs)\n"
    "  list                          rooms you take part in\n"
    "  duplicate ROOM [--name NAME]  new draft with the same definition (renamed\n"
    "                                with --name), print its id\n"
    "  publish ROOM                  freeze the definition (creator, draft)\n"
    "  stop ROOM [--reason TEXT]     stop the room (creator)\n"
    "  test ROOM                     run every computation on empty inputs and\n"
    "                                report each result's columns or error\n"
    "  invite ROOM EMAIL -o FILE     an invitation for EMAIL (server, its key,\n"
    "                                the room), taken with dcr join FILE\n"
    "\n"
    "ROOM is a room id (32 hex characters) or the name of a room you take part in.\n";

static int fail(const char *cmd, dcr_err *err)
{
	tl_fail(cmd, err);
	return CLI_EXIT_FAIL;
}

/* ---- create / save ---------------------------------------------------------- */

static int room_create(int argc, char **argv)
{
	static const char usage[] = "usage: dcr room create FILE.json\n"
	                            "Creates a draft room from a definition (\"-\" reads "
	                            "stdin) and prints its id.\n";
	char *pos[1];
	cl_conn *c = NULL;
	dcr_err err = {0};
	dcr_buf json;
	uint8_t id[ES_ROOM_ID_BYTES];
	char hex[ES_ROOM_HEX_BYTES];
	int rc;

	CLI_PARSE("room create", usage, argc, argv, NULL, pos, 1, 1, NULL);
	dcr_buf_init(&json);
	rc = cli_read_input(pos[0], DCR_RM_DEF_BYTES_MAX, &json, &err);
	if (rc)
		goto out;
	/* The admission check before signing (docs/rules.md); dcrd repeats it. */
	rc = rm_def_admit_json((const char *)json.data, json.len, &err);
	if (rc) {
		dcr_err_prefix(&err, "%s", strcmp(pos[0], "-") == 0 ? "stdin" : pos[0]);
		goto out;
	}
	rc = tl_connect(&c, &err);
	if (rc)
		goto out;
	rc = cl_room_create(c, (const char *)json.data, id, &err);
	if (rc) {
		dcr_err_prefix(&err, "%s", strcmp(pos[0], "-") == 0 ? "stdin" : pos[0]);
		goto out;
	}
	es_room_format(id, hex);
	printf("%s\n", hex);
out:
	cl_close(c);
	dcr_buf_release(&json);
	return rc ? fail("room create", &err) : CLI_EXIT_OK;
}

static int room_save(int argc, char **argv)
{
	static const char usage[] = "usage: dcr room save ROOM FILE.json\n"
	                            "Replaces the definition of a draft room (creator only; "
	                            "\"-\" reads stdin).\n";
	char *pos[2];
	cl_conn *c = NULL;
	dcr_err err = {0};
	dcr_buf json, body;
	uint8_t id[ES_ROOM_ID_BYTES];
	uint64_t seq = 0;
	int rc;

	CLI_PARSE("room save", usage, argc, argv, NULL, pos, 2, 2, NULL);
	dcr_buf_init(&json);
	dcr_buf_init(&body);
	rc = cli_read_input(pos[1], DCR_RM_DEF_BYTES_MAX, &json, &err);
	if (rc)
		goto out;
	rc = rm_def_admit_json((const char *)json.data, json.len, &err);
	if (rc) {
		dcr_err_prefix(&err, "%s", strcmp(pos[1], "-") == 0 ? "stdin" : pos[1]);
		goto out;
	}
	rc = cli_open_room(pos[0], &c, id, &err);
	if (rc)
		goto out;
	rm_body_definition(&body, (const char *)json.data);
	rc = cl_submit(c, id, RM_EV_SAVED, body.data, body.len, &seq, &err);
	if (rc)
		goto out;
	printf("saved draft of %s (event %llu)\n", pos[0], (unsigned long long)seq);
out:
	cl_close(c);
	dcr_buf_release(&body);
	dcr_buf_release(&json);
	return rc ? fail("room save", &err) : CLI_EXIT_OK;
}

/* ---- show / export ------------------------------------------------------------ */

static void status_line(FILE *f, const rm_state *st)
{
	char hex[ES_ROOM_HEX_BYTES];

	es_room_format(st->room, hex);
	fprintf(f, "room %s %s: %s, %llu events", hex, st->def ? st->def->name : "?",
	        rm_status_name(st->status), (unsigned long long)st->size);
	if (st->status == RM_STOPPED && st->stop_reason && *st->stop_reason)
		fprintf(f, " (stopped: %s)", st->stop_reason);
	fputc('\n', f);
}

static int room_show_export(int argc, char **argv, bool exp)
{
	static const char show_usage[] =
	    "usage: dcr room show ROOM [--status]\n"
	    "Prints the definition as normalised JSON (defaults filled in) on stdout\n"
	    "and \"room ID NAME: STATUS, N events\" on stderr; with --status only that\n"
	    "line, on stdout.\n";
	static const char export_usage[] =
	    "usage: dcr room export ROOM\n"
	    "Prints the definition text exactly as stored in the log (accepted by\n"
	    "dcr room create; its SHA-256 is what dcr room publish signs).\n";
	const char *cmd = exp ? "room export" : "room show";
	bool only_status = false;
	const cli_opt opts[] = {{"--status", NULL, &only_status}, {NULL, NULL, NULL}};
	char *pos[1];
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES];
	rm_state st;
	bool have_state = false;
	char *json = NULL;
	int rc;

	CLI_PARSE(cmd, exp ? export_usage : show_usage, argc, argv, exp ? NULL : opts, pos, 1, 1,
	          NULL);
	rc = cli_open_room(pos[0], &c, id, &err);
	if (rc)
		goto out;
	have_state = true;
	rc = tl_replay(c, id, &st, &err);
	if (rc)
		goto out;
	if (!st.def || !st.def_json) {
		rc = dcr_err_set(&err, DCR_ENOTFOUND, "room %s has no definition", pos[0]);
		goto out;
	}
	if (exp) {
		fputs(st.def_json, stdout);
		goto out;
	}
	if (only_status) {
		status_line(stdout, &st);
		goto out;
	}
	json = rm_def_to_json(st.def);
	fputs(json, stdout);
	fflush(stdout);
	status_line(stderr, &st);
out:
	free(json);
	if (have_state)
		rm_state_release(&st);
	cl_close(c);
	return rc ? fail(cmd, &err) : CLI_EXIT_OK;
}

/* ---- list ------------------------------------------------------------------------ */

static int room_list(int argc, char **argv)
{
	static const char usage[] = "usage: dcr room list\n"
	                            "Lists the rooms you created or take part in: id, name, "
	                            "status, events.\n";
	cl_conn *c = NULL;
	dcr_err err = {0};
	cl_room_info *rooms = NULL;
	size_t n = 0;
	int wname = 4, wstatus = 6, rc;

	CLI_PARSE("room list", usage, argc, argv, NULL, NULL, 0, 0, NULL);
	rc = tl_connect(&c, &err);
	if (rc)
		goto out;
	rc = cl_rooms(c, &rooms, &n, &err);
	if (rc)
		goto out;
	for (size_t i = 0; i < n; i++) {
		int l = (int)strlen(rooms[i].name ? rooms[i].name : "");
		int s = (int)strlen(rooms[i].status ? rooms[i].status : "");

		wname = l > wname ? l : wname;
		wstatus = s > wstatus ? s : wstatus;
	}
	printf("%-32s  %-*s  %-*s  %s\n", "ID", wname, "NAME", wstatus, "STATUS", "EVENTS");
	for (size_t i = 0; i < n; i++)
		printf("%-32s  %-*s  %-*s  %llu\n", rooms[i].id, wname,
		       rooms[i].name ? rooms[i].name : "", wstatus,
		       rooms[i].status ? rooms[i].status : "", (unsigned long long)rooms[i].size);
out:
	if (rooms)
		cl_rooms_free(rooms, n);
	cl_close(c);
	return rc ? fail("room list", &err) : CLI_EXIT_OK;
}

/* ---- duplicate ------------------------------------------------------------------- */

static int room_duplicate(int argc, char **argv)
{
	static const char usage[] =
	    "usage: dcr room duplicate ROOM [--name NAME]\n"
	    "Creates a new draft room with the definition of ROOM (any status) and\n"
	    "prints its id. --name gives the copy another name (then the copy's\n"
	    "definition is the normalised form, as dcr room show prints it).\n";
	const char *name = NULL;
	const cli_opt opts[] = {{"--name", &name, NULL}, {NULL, NULL, NULL}};
	char *pos[1];
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES], nid[ES_ROOM_ID_BYTES];
	char hex[ES_ROOM_HEX_BYTES];
	rm_state st;
	bool have_state = false;
	char *json = NULL;
	int rc;

	CLI_PARSE("room duplicate", usage, argc, argv, opts, pos, 1, 1, NULL);
	if (name && !rm_room_name_valid(name)) {
		fprintf(stderr,
		        "dcr room duplicate: \"%s\" is not a room name (1 to %u of A-Z a-z 0-9 "
		        ". _ -, not starting with . or -)\n",
		        name, DCR_RM_ROOM_NAME_BYTES_MAX);
		return CLI_EXIT_USAGE;
	}
	rc = cli_open_room(pos[0], &c, id, &err);
	if (rc)
		goto out;
	have_state = true;
	rc = tl_replay(c, id, &st, &err);
	if (rc)
		goto out;
	if (!st.def || !st.def_json) {
		rc = dcr_err_set(&err, DCR_ENOTFOUND, "room %s has no definition", pos[0]);
		goto out;
	}
	if (name) {
		char *old = st.def->name;

		st.def->name = (char *)name;
		json = rm_def_to_json(st.def);
		st.def->name = old;
	} else {
		json = dcr_strdup(st.def_json);
	}
	rc = rm_def_admit_json(json, strlen(json), &err);
	if (!rc)
		rc = cl_room_create(c, json, nid, &err);
	if (rc)
		goto out;
	es_room_format(nid, hex);
	printf("%s\n", hex);
out:
	free(json);
	if (have_state)
		rm_state_release(&st);
	cl_close(c);
	return rc ? fail("room duplicate", &err) : CLI_EXIT_OK;
}

/* ---- publish / stop ---------------------------------------------------------------- */

static int room_publish(int argc, char **argv)
{
	static const char usage[] =
	    "usage: dcr room publish ROOM\n"
	    "Publishes a draft room (creator only): signs room.published with the\n"
	    "SHA-256 of the current definition text, which freezes the contract.\n";
	char *pos[1];
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES], sha[DCR_SHA256_BYTES];
	char shahex[2 * DCR_SHA256_BYTES + 1];
	rm_state st;
	bool have_state = false;
	dcr_buf body;
	int rc;

	CLI_PARSE("room publish", usage, argc, argv, NULL, pos, 1, 1, NULL);
	dcr_buf_init(&body);
	rc = cli_open_room(pos[0], &c, id, &err);
	if (rc)
		goto out;
	have_state = true;
	rc = tl_replay(c, id, &st, &err);
	if (rc)
		goto out;
	if (!st.def_json) {
		rc = dcr_err_set(&err, DCR_ENOTFOUND, "room %s has no definition", pos[0]);
		goto out;
	}
	/* The hash of the text we replayed: if the draft changes before our
	 * event lands, rm_apply refuses the publish instead of freezing a
	 * definition we never saw. */
	rc = rm_def_admit_json(st.def_json, strlen(st.def_json), &err);
	if (rc)
		goto out;
	dcr_sha256(st.def_json, strlen(st.def_json), sha);
	rm_body_published(&body, sha);
	rc = cl_submit(c, id, RM_EV_PUBLISHED, body.data, body.len, NULL, &err);
	if (rc)
		goto out;
	dcr_hex_encode(sha, sizeof sha, shahex);
	printf("published %s, definition sha256 %s\n", st.def ? st.def->name : pos[0], shahex);
out:
	dcr_buf_release(&body);
	if (have_state)
		rm_state_release(&st);
	cl_close(c);
	return rc ? fail("room publish", &err) : CLI_EXIT_OK;
}

static int room_stop(int argc, char **argv)
{
	static const char usage[] = "usage: dcr room stop ROOM [--reason TEXT]\n"
	                            "Stops a room (creator only): no provisioning or runs "
	                            "afterwards; the log stays readable.\n";
	const char *reason = NULL;
	const cli_opt opts[] = {{"--reason", &reason, NULL}, {NULL, NULL, NULL}};
	char *pos[1];
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES];
	dcr_buf body;
	int rc;

	CLI_PARSE("room stop", usage, argc, argv, opts, pos, 1, 1, NULL);
	dcr_buf_init(&body);
	rc = cli_open_room(pos[0], &c, id, &err);
	if (rc)
		goto out;
	rm_body_stopped(&body, reason ? reason : "");
	rc = cl_submit(c, id, RM_EV_STOPPED, body.data, body.len, NULL, &err);
	if (rc)
		goto out;
	printf("stopped %s\n", pos[0]);
out:
	dcr_buf_release(&body);
	cl_close(c);
	return rc ? fail("room stop", &err) : CLI_EXIT_OK;
}

/* ---- test -------------------------------------------------------------------------- */

static int room_test(int argc, char **argv)
{
	static const char usage[] =
	    "usage: dcr room test ROOM\n"
	    "Runs every computation of ROOM on empty inputs (no real data is read)\n"
	    "and prints each result's columns and types, or its error. Exits 1 if\n"
	    "the daemon could not run the test.\n";
	char *pos[1];
	cl_conn *c = NULL;
	dcr_err err = {0};
	uint8_t id[ES_ROOM_ID_BYTES];
	dcr_buf report;
	int rc;

	CLI_PARSE("room test", usage, argc, argv, NULL, pos, 1, 1, NULL);
	dcr_buf_init(&report);
	rc = cli_open_room(pos[0], &c, id, &err);
	if (rc)
		goto out;
	rc = cl_room_test(c, id, &report, &err);
	if (rc)
		goto out;
	fwrite(report.data, 1, report.len, stdout);
	if (report.len && report.data[report.len - 1] != '\n')
		fputc('\n', stdout);
out:
	dcr_buf_release(&report);
	cl_close(c);
	return rc ? fail("room test", &err) : CLI_EXIT_OK;
}

/* ---- dispatch ------------------------------------------------------------------------ */

static int room_show(int argc, char **argv)
{
	return room_show_export(argc, argv, false);
}

static int room_export(int argc, char **argv)
{
	return room_show_export(argc, argv, true);
}

int cli_cmd_room(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} subs[] = {
	    {"create", room_create},   {"save", room_save}, {"show", room_show},
	    {"export", room_export},   {"list", room_list}, {"duplicate", room_duplicate},
	    {"publish", room_publish}, {"stop", room_stop}, {"test", room_test},
	    {"invite", cli_room_invite},
	};

	if (argc < 2) {
		fputs(room_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(room_usage, stdout);
		return CLI_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
		if (strcmp(argv[1], subs[i].name) == 0)
			return subs[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "dcr room: unknown subcommand \"%s\"\n%s", argv[1], room_usage);
	return CLI_EXIT_USAGE;
}
