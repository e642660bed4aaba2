/* cli.h: internals of the dcr command-line client shared by tools/dcr.c
 * (main, option parsing, identity and connection helpers, keygen, whoami)
 * and the command files tools/cli_room.c (dcr room ...) and tools/cli_data.c
 * (provision, deprovision, datasets, run, status, result).
 *
 * Exit codes of every command: 0 success, 1 failure (message on stderr as
 * "dcr <command>: <what went wrong>"), 2 usage error. */
#ifndef DCR_CLI_H
#define DCR_CLI_H

#include "tools.h"
#include "../room/room.h"

#define CLI_EXIT_OK    0
#define CLI_EXIT_FAIL  1
#define CLI_EXIT_USAGE 2

/* One option of a command. value != NULL: the option takes an argument
 * ("--reason TEXT" or "--reason=TEXT"); else flag is set when present. */
typedef struct cli_opt {
	const char *name; /* "--reason"; short aliases as a second entry */
	const char **value;
	bool *flag;
} cli_opt;

/* Parses argv[1..argc) of command cmd (argv[0] is the command word).
 * Positional arguments go to pos (at most pos_max; "-" is positional, "--"
 * ends options). Returns 0 to go on, CLI_PARSE_HELP when usage was printed
 * for --help/-h (the command then exits 0), or CLI_EXIT_USAGE after
 * printing what was wrong and the usage to stderr. */
#define CLI_PARSE_HELP (-1)
int cli_parse(const char *cmd, const char *usage, int argc, char **argv, const cli_opt *opts,
              char **pos, int pos_min, int pos_max, int *npos);
#define CLI_PARSE(...)                                                                             \
	do {                                                                                       \
		int cli_r_ = cli_parse(__VA_ARGS__);                                               \
		if (cli_r_)                                                                        \
			return cli_r_ == CLI_PARSE_HELP ? CLI_EXIT_OK : cli_r_;                    \
	} while (0)

/* Reads a whole file, or stdin for "-", of at most max_bytes; NUL
 * terminated (dcr_buf_cstr). Errors name the file. */
int cli_read_input(const char *path, size_t max_bytes, dcr_buf *out, dcr_err *err);

/* Connects (tl_connect) and resolves ROOM (id or unique name). On failure
 * nothing is left open and err says why. */
int cli_open_room(const char *room, cl_conn **c, uint8_t id[ES_ROOM_ID_BYTES], dcr_err *err);

/* tl_replay, and the checkpoint it was checked against. Every replay goes
 * through the witness (proto/witness.h): the daemon's latest signed
 * checkpoint (its signature by the connection's daemon key, its room, and
 * consistent with the one remembered for this server and room), then
 * exactly the cp->size events it covers, whose Merkle root must be its
 * root (DCR_EINTEGRITY otherwise). st is always initialised (release it). */
int cli_replay_verified(cl_conn *c, const uint8_t room[ES_ROOM_ID_BYTES], rm_state *st,
                        es_checkpoint *cp, dcr_err *err);

/* Human sizes ("12.3 MiB") into buf. */
void cli_human_bytes(uint64_t n, char *buf, size_t cap);

/* Prints a dataset's statistics JSON (docs/compute.md) as a table under
 * the line "TITLE: N rows, B bytes". DCR_EFORMAT when it is not that JSON. */
int cli_print_stats(FILE *out, const char *title, const char *json, dcr_err *err);

/* Progress line on stderr (only when stderr is a terminal). */
typedef struct cli_progress {
	const char *cmd;
	const char *what;
	bool tty;
	uint64_t last_ms;
	bool shown;
} cli_progress;
void cli_progress_init(cli_progress *p, const char *cmd, const char *what);
void cli_progress_update(cli_progress *p, uint64_t done, uint64_t total);
void cli_progress_end(cli_progress *p);

/* Writes every file of an archive (base/archive.c) under dir, created if
 * missing; each file replaced whole (temporary file, rename). */
int cli_write_archive(const dcr_archive *a, const char *dir, dcr_err *err);

/* Commands. argv[0] is the command word ("room", "provision", ...). */
int cli_cmd_room(int argc, char **argv);
int cli_cmd_dev(int argc, char **argv); /* dev run|status|result (cli_dev.c) */
int cli_cmd_dev_run(int argc, char **argv);
int cli_cmd_dev_status(int argc, char **argv);
int cli_cmd_dev_result(int argc, char **argv);
int cli_cmd_provision(int argc, char **argv);
int cli_cmd_deprovision(int argc, char **argv);
int cli_cmd_datasets(int argc, char **argv);
int cli_cmd_stats(int argc, char **argv);
int cli_cmd_run(int argc, char **argv);
int cli_cmd_status(int argc, char **argv);
int cli_cmd_result(int argc, char **argv);
int cli_cmd_logs(int argc, char **argv);
int cli_cmd_data(int argc, char **argv);
int cli_cmd_request(int argc, char **argv); /* cli_request.c */
int cli_cmd_admin(int argc, char **argv);   /* admin status|backup (cli_admin.c) */
int cli_cmd_join(int argc, char **argv);    /* join FILE (cli_remote.c) */
int cli_room_invite(int argc, char **argv); /* room invite (cli_remote.c) */

#endif
